"""Rule prepare_data: decode one source's dataset once into its cache; write the store's
summary, with the digests of the zip the folder source was unpacked from when it is there."""

from pathlib import Path

from convnext_tinyimagenet import atomic
from convnext_tinyimagenet.data.archive import check_archive
from convnext_tinyimagenet.data.store import load_store
from convnext_tinyimagenet.workflow import rule_log

with rule_log(snakemake):
    store = load_store(snakemake.params.data, progress=False)
    info = dict(store.info)
    archive = snakemake.params.archive
    if archive is not None:  # the folder source: its zip's md5 (checked) and sha256, if present
        path = Path(archive["archive"])
        digests = check_archive(path, archive["md5"]) if path.is_file() else None
        info["archive"] = {"path": str(path), "url": archive["url"]}
        info["archive"] |= digests or {"md5": None, "sha256": None}  # unpacked by hand
    atomic.write_json(snakemake.output[0], info)

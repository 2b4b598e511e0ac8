"""Rule prepare_data: decode the dataset once into its cache; write the store's summary."""

from convnext_tinyimagenet import atomic
from convnext_tinyimagenet.data.store import load_store
from convnext_tinyimagenet.workflow import rule_log

with rule_log(snakemake):
    store = load_store(snakemake.params.data, progress=False)
    atomic.write_json(snakemake.output[0], store.info)

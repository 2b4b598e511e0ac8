"""TinyImageNet as one decoded, cached store, from any of three sources.

Sources: ``hf`` (a Hugging Face dataset, hub or local, whose ClassLabel names must be the sorted
wnids; the baseline notebook read ``zh-plus/tiny-imagenet``), ``folder`` (the
``tiny-imagenet-200.zip`` layout in place; the improved notebook) and ``synthetic`` (learnable
stand-in data for offline demos and tests). Each data version is decoded once into
``cache_dir/<source>-<fingerprint[:16]>/``, built in a temporary sibling and renamed into place
(so it appears only complete), and memory-mapped by later loads. meta.json records the digest of
each array file; a load checks them (once per process) before it maps one, so damaged pixels,
labels or image ids stop the run in one line instead of being trained on. The room for the cache
is checked before the build, and its image files are allocated in full before they are filled.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.lib.format import open_memmap
from PIL import Image
from tqdm import tqdm  # plain bars: tqdm.auto warns in a notebook without ipywidgets

from convnext_tinyimagenet import atomic, storage
from convnext_tinyimagenet.errors import ArtifactError

# Bump when the cache layout or decoding changes: it is part of every fingerprint, so old caches
# are simply not found again instead of being misread. 2: meta.json holds the files' digests.
CACHE_FORMAT = 2
# Bump when make_synthetic's output changes for the same parameters.
SYNTHETIC_VERSION = 1

# What torchvision's ImageFolder (which the improved notebook used) accepts as an image file.
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")

_SPLITS = ("train", "val")
_ID_DTYPE = "<U16"  # image ids are 16 hex characters


class DataError(ArtifactError):
    """The data (or the data config) is unusable; the message names the file, split or key."""


@dataclass(frozen=True, eq=False)
class Split:
    """One split of the store, in a fixed row order."""

    images: np.ndarray  # uint8 (N, H, W, 3) RGB, usually a read-only memmap of the cache
    labels: np.ndarray  # int64 (N,), indices into Store.classes
    image_ids: np.ndarray  # str (N,): image_id of each image, stable across sources

    def __post_init__(self) -> None:
        n = len(self.images)
        if len(self.labels) != n or len(self.image_ids) != n:
            raise ValueError(
                f"split arrays disagree in length: {n} images, {len(self.labels)} labels, "
                f"{len(self.image_ids)} image ids"
            )

    def __len__(self) -> int:
        return len(self.labels)


def hold_out(split: Split, per_class: int) -> tuple[Split, Split]:
    """`split` as (what trains, what is held out): `per_class` rows of each class held out,
    drawn with a fixed seed (0) so that every seed and variant holds out the same images; both
    keep the split's row order. DataError when a class would keep no training image."""
    labels = np.asarray(split.labels)
    rng, held = np.random.default_rng(0), []
    for label in np.unique(labels):
        rows = np.flatnonzero(labels == label)
        if len(rows) <= per_class:
            raise DataError(
                f"train.holdout_per_class = {per_class}: class {label} has {len(rows)} training "
                f"images, none would train; allowed: below the smallest class's count"
            )
        held.append(rng.choice(rows, per_class, replace=False))
    mask = np.zeros(len(labels), dtype=bool)
    mask[np.concatenate(held)] = True
    pick = [np.flatnonzero(~mask), np.flatnonzero(mask)]
    return tuple(  # type: ignore[return-value]
        Split(split.images[rows], labels[rows], np.asarray(split.image_ids)[rows]) for rows in pick
    )


@dataclass(frozen=True, eq=False)
class Store:
    """The decoded dataset: both splits, class names and provenance."""

    train: Split
    val: Split
    classes: tuple[str, ...]  # wnids for TinyImageNet; label i is classes[i]
    fingerprint: str  # of the source, its version (or synthetic parameters) and cache format
    info: dict  # JSON-able provenance: source, id/revision or root or parameters, counts, cache


@dataclass(frozen=True)
class _Plan:
    """What a source will produce, known before anything is decoded."""

    fingerprint: str
    info: dict
    images: int  # in both splits: the cache's size is known before the build
    # (out_dir, progress): writes {train,val}_{images,labels,image_ids}.npy, returns the classes
    build: Callable[[Path, bool], tuple[str, ...]]


def image_id(pixels: np.ndarray) -> str:
    """The first 16 hex digits of the SHA-256 of uint8 (H, W, 3) pixels: the same picture gets
    the same id from every source, so predictions on one source's store join with another's."""
    if pixels.dtype != np.uint8 or pixels.ndim != 3 or pixels.shape[2] != 3:
        raise ValueError(f"expected uint8 (H, W, 3) pixels, got {pixels.dtype} {pixels.shape}")
    return hashlib.sha256(np.ascontiguousarray(pixels).data).hexdigest()[:16]


def load_store(data_cfg: dict, *, progress: bool = True) -> Store:
    """Load the `data:` section's dataset, decoding it only if this version is not cached yet;
    a DataError names the config key, split, class or file at fault."""
    source, image_size = data_cfg["source"], data_cfg["image_size"]  # as the schema checked
    cache_root = Path(data_cfg["cache_dir"]).expanduser()
    planners = {"hf": _plan_hf, "folder": _plan_folder, "synthetic": _plan_synthetic}
    plan = planners[source](data_cfg, image_size)
    cache_dir = cache_root / f"{source}-{plan.fingerprint[:16]}"
    if not cache_dir.exists():
        _build_cache(plan, cache_dir, image_size, progress)
    return _open_cache(cache_dir, plan.fingerprint)


# Config helpers and validation shared by all sources -----------------------------------------
def _fingerprint(payload: dict) -> str:
    text = json.dumps({"cache_format": CACHE_FORMAT, **payload}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()


def _save_labels(out_dir: Path, split: str, labels: np.ndarray, classes: tuple, name: str) -> None:
    """Write a split's labels into the cache once they are in range and, for the train split
    (`name` in messages), every class has images."""
    if len(labels) == 0:
        raise DataError(f"the {name} split is empty")
    bad = (labels < 0) | (labels >= len(classes))
    if bad.any():
        raise DataError(
            f"the {name} split has {int(bad.sum())} label(s) outside [0, {len(classes)}), "
            f"first {int(labels[bad][0])} at row {int(np.flatnonzero(bad)[0])}"
        )
    empty = np.flatnonzero(np.bincount(labels, minlength=len(classes)) == 0)
    if split == "train" and len(empty):
        missing = [classes[i] for i in empty]
        raise DataError(
            f"class {missing[0]!r} (index {classes.index(missing[0])}) has no images in the "
            f"train split ({len(missing)} class(es) without images: {missing[:5]})"
        )
    np.save(out_dir / f"{split}_labels.npy", labels)


# Decoding --------------------------------------------------------------------------------------
def _decode_image(source: bytes | Path, image_size: int, what: str) -> np.ndarray:
    """Decode one encoded image (bytes or a file) to uint8 RGB, checking its size."""
    try:
        with Image.open(io.BytesIO(source) if isinstance(source, bytes) else source) as im:
            # TinyImageNet holds some grayscale JPEGs; the network wants 3 equal channels.
            rgb = im.convert("RGB") if im.mode != "RGB" else im
            pixels = np.asarray(rgb, dtype=np.uint8)
    except (OSError, SyntaxError, ValueError, EOFError, Image.DecompressionBombError) as exc:
        raise DataError(f"cannot decode {what}: {exc}") from exc
    if pixels.shape != (image_size, image_size, 3):
        height, width = pixels.shape[:2]
        raise DataError(f"{what} is {width}x{height}, expected {image_size}x{image_size}")
    return pixels


def _decode_split(sources: Iterable[bytes | Path | None], describe: Callable[[int], str],
                  count: int, out_dir: Path, split: str, image_size: int,
                  progress: bool) -> None:  # fmt: skip
    """Decode `count` images, with their ids, straight into the cache file: 110,000 images of
    64x64x3 bytes are 1.35 GB, which a list of PIL images would hold, then again as one array."""
    shape = (count, image_size, image_size, 3)
    images = _image_file(out_dir / f"{split}_images.npy", shape)
    ids = np.empty(count, dtype=_ID_DTYPE)
    done = 0
    with tqdm(total=count, desc=f"decoding {split}", unit="img", disable=not progress) as bar:
        for source in sources:
            if source is None:
                raise DataError(f"{describe(done)} holds no image data")
            images[done] = pixels = _decode_image(source, image_size, describe(done))
            ids[done] = image_id(pixels)
            done += 1
            bar.update()
    if done != count:  # a source that yields fewer rows than it announced is a bug, not data
        raise DataError(f"{split}: expected {count} images, decoded {done}")
    images.flush()
    del images
    np.save(out_dir / f"{split}_image_ids.npy", ids)


# Source: Hugging Face datasets -----------------------------------------------------------------
def _plan_hf(data_cfg: dict, image_size: int) -> _Plan:
    hf_cfg = data_cfg["hf"]
    dataset_id = str(hf_cfg["id"])
    names = {"train": hf_cfg.get("train_split") or "train"}
    names["val"] = hf_cfg.get("val_split") or "valid"
    local = Path(dataset_id).expanduser().is_dir()
    revision = None if local else hf_cfg.get("revision")
    splits, classes = _hf_splits(dataset_id, revision, local, names)
    split_fingerprints = {split: ds._fingerprint for split, ds in splits.items()}
    fingerprint = _fingerprint({"source": "hf", "id": dataset_id, "revision": revision,
                                "image_size": image_size, "splits": names,
                                "split_fingerprints": split_fingerprints})  # fmt: skip
    info = {"source": "hf", "id": dataset_id, "revision": revision,
            # the hub commit `revision` stood for at load time (a branch such as `main` moves)
            "resolved_revision": None if local else hub_commit(splits["train"]),
            "local": local, "train_split": names["train"], "val_split": names["val"],
            "split_fingerprints": split_fingerprints}  # fmt: skip

    def build(out_dir: Path, progress: bool) -> tuple[str, ...]:
        for split, ds in splits.items():
            _save_labels(out_dir, split, _hf_labels(ds, names[split]), classes, names[split])
        for split, ds in splits.items():
            where = f"split {names[split]!r} of {dataset_id!r}"
            _decode_split(_hf_image_sources(ds), lambda i, w=where: f"image at row {i} of {w}",
                          len(ds), out_dir, split, image_size, progress)  # fmt: skip
        return classes

    return _Plan(fingerprint, info, sum(len(ds) for ds in splits.values()), build)


def hub_commit(dataset: Any) -> str | None:
    """The hub commit a loaded dataset came from, or None where unknown: `datasets` caches a hub
    dataset under `.../<name>/<config>/<version>/<commit sha>/` (the nearest 40-hex folder)."""
    for entry in getattr(dataset, "cache_files", None) or []:
        for part in reversed(Path(entry.get("filename", "")).parent.parts):
            if re.match(r"^[0-9a-f]{40}$", part):
                return part
    return None


def _hf_splits(dataset_id: str, revision: str | None, local: bool, names: dict) -> tuple:
    """The dataset's configured splits, by our split name, and the class names of their
    ClassLabel feature (one feature set serves all splits)."""
    import datasets  # heavy import (about a second); only the hf source needs it

    try:  # revision is None for a local directory
        path = str(Path(dataset_id).expanduser()) if local else dataset_id
        dataset_dict = datasets.load_dataset(path, revision=revision)
    except Exception as exc:  # any loader failure becomes one readable message
        how = "local directory" if local else f"revision {revision!r}"
        reason = " ".join(str(exc).split()) or type(exc).__name__
        raise DataError(
            f"cannot load Hugging Face dataset {dataset_id!r} ({how}): {reason}. Offline? See "
            "docs/troubleshooting.md#offline-machine (a copied cache, or the zip's folder)"
        ) from exc
    for split, name in names.items():
        if name not in dataset_dict:
            raise DataError(
                f"Hugging Face dataset {dataset_id!r} has no split {name!r} "
                f"(data.hf.{split}_split); available: {sorted(dataset_dict)}"
            )
    splits = {split: dataset_dict[name] for split, name in names.items()}
    for split, ds in splits.items():
        features = ds.features
        where = f"split {names[split]!r} of {dataset_id!r}"
        if not isinstance(features.get("image"), datasets.Image):
            raise DataError(f"{where} has no 'image' column of type Image: {dict(features)}")
        if not isinstance(features.get("label"), datasets.ClassLabel):
            raise DataError(
                f"{where} has no 'label' column of type ClassLabel "
                f"(got {features.get('label')}); class names come from it"
            )
    classes = tuple(splits["train"].features["label"].names)
    _check_class_order(classes, dataset_id)
    return splits, classes


def _check_class_order(classes: tuple[str, ...], dataset_id: str) -> None:
    """Refuse ClassLabel names that are not the sorted wnids: ImageFolder over the zip (the
    improved notebook, the folder source) numbers the classes in sorted wnid order, and label i
    must mean the same class whichever source a run read."""
    for i in range(1, len(classes)):  # ClassLabel itself refuses a name listed twice
        if classes[i - 1] > classes[i]:
            raise DataError(
                f"Hugging Face dataset {dataset_id!r}: its ClassLabel names are not in sorted "
                f"wnid order (ImageFolder's): class {classes[i]!r} (label {i}) comes after "
                f"{classes[i - 1]!r} (label {i - 1})"
            )


def _hf_labels(ds: Any, name: str) -> np.ndarray:
    column = ds.with_format("arrow")["label"]
    if column.null_count:
        raise DataError(f"the {name} split has {column.null_count} missing label(s)")
    return column.to_numpy().astype(np.int64)


def _hf_image_sources(ds: Any, batch_size: int = 1024) -> Iterator[bytes | Path | None]:
    """Encoded images (bytes, else a local path), read from the Arrow storage so that our decoder
    names a failing row and `datasets` builds no PIL object per row."""
    table = ds.with_format("arrow")
    for start in range(0, len(ds), batch_size):
        for chunk in table[start : start + batch_size]["image"].chunks:
            paths = chunk.field("path").to_pylist()
            for data, path in zip(chunk.field("bytes").to_pylist(), paths, strict=True):
                yield data if data is not None else (Path(path) if path else None)


# Source: the tiny-imagenet-200.zip folder layout -----------------------------------------------
def _plan_folder(data_cfg: dict, image_size: int) -> _Plan:
    root = Path(data_cfg["folder"]["root"]).expanduser().resolve()
    classes, splits = _list_folder(root)
    images = [rel for rel, _ in splits["train"] + splits["val"]]
    # Sizes and modification times identify the version without reading 110,000 files.
    stats = [_stat(root, rel) for rel in sorted(["wnids.txt", "val/val_annotations.txt", *images])]
    fingerprint = _fingerprint(
        {"source": "folder", "image_size": image_size, "wnids": classes, "files": stats}
    )

    def build(out_dir: Path, progress: bool) -> tuple[str, ...]:
        for split, entries in splits.items():
            labels = np.array([label for _, label in entries], dtype=np.int64)
            _save_labels(out_dir, split, labels, classes, split)
        for split, entries in splits.items():
            paths = [root / rel for rel, _ in entries]
            _decode_split(paths, lambda i, p=paths: f"image file {p[i]}", len(paths), out_dir,
                          split, image_size, progress)  # fmt: skip
        return classes

    return _Plan(fingerprint, {"source": "folder", "root": str(root)}, len(images), build)


def folder_version(data_cfg: dict) -> str:
    """What the workflow watches of the folder source (a change reruns prepare_data, and the runs
    after it): its fingerprint, "" before the unpack, or why it is unusable (prepare_data says)."""
    if not (Path(data_cfg["folder"]["root"]).expanduser() / "wnids.txt").is_file():
        return ""
    try:
        return _plan_folder(data_cfg, data_cfg["image_size"]).fingerprint
    except DataError as exc:
        return str(exc)


def _stat(root: Path, rel: str) -> tuple[str, int, int]:
    try:
        st = (root / rel).stat()
    except OSError as exc:
        raise DataError(f"cannot read {root / rel}: {exc}") from exc
    return rel, st.st_size, st.st_mtime_ns


def _require_path(path: Path, kind: str) -> Path:
    if not (path.is_dir() if kind == "directory" else path.is_file()):
        raise DataError(f"TinyImageNet {kind} {path} does not exist")
    return path


def _image_names(directory: Path) -> list[str]:
    """Image file names in `directory`, plain string order (as ImageFolder sorts them)."""
    if not directory.is_dir():
        return []
    with os.scandir(directory) as entries:
        images = [e for e in entries if e.name.lower().endswith(IMAGE_EXTENSIONS)]
    try:
        return sorted(e.name for e in images if e.is_file())
    except OSError as exc:  # a symlink loop, a file that cannot be read
        raise DataError(f"cannot read {exc.filename}: {exc.strerror}") from None


def _list_folder(root: Path) -> tuple[tuple[str, ...], dict[str, list[tuple[str, int]]]]:
    """The classes, and per split every image (path from `root`) with its label in published
    row order, checked against wnids.txt and the annotations."""
    _require_path(root, "directory")
    wnids_file = _require_path(root / "wnids.txt", "file")
    wnids = [line.strip() for line in _text(wnids_file).splitlines() if line.strip()]
    if not wnids:
        raise DataError(f"{wnids_file} lists no classes")
    if len(set(wnids)) != len(wnids):
        raise DataError(f"{wnids_file} lists a class twice")
    # Sorted wnids are the published label order (ImageFolder's, and the HF dataset's).
    classes = tuple(sorted(wnids))
    index = {wnid: i for i, wnid in enumerate(classes)}
    train_dir = _require_path(root / "train", "directory")
    unknown = sorted(p.name for p in train_dir.iterdir() if p.is_dir() and p.name not in index)
    if unknown:
        raise DataError(f"{train_dir / unknown[0]} is not a class listed in {wnids_file}")
    train = [
        (f"train/{wnid}/images/{name}", label)
        for wnid, label in index.items()
        for name in _image_names(train_dir / wnid / "images")
    ]
    return classes, {"train": train, "val": _list_val(root, index)}


def _list_val(root: Path, index: dict[str, int]) -> list[tuple[str, int]]:
    """The validation images with their labels, sorted by label then name."""
    val_dir = _require_path(root / "val" / "images", "directory")
    annotations = _require_path(root / "val" / "val_annotations.txt", "file")
    labels = _read_annotations(annotations, index)
    for name in _image_names(val_dir):
        if name not in labels:
            raise DataError(f"{val_dir / name} has no entry in {annotations}")
    for name in labels:
        if not (val_dir / name).is_file():
            raise DataError(f"{val_dir / name}, listed in {annotations}, does not exist")
    by_label = sorted(labels.items(), key=lambda item: (item[1], item[0]))
    return [(f"val/images/{name}", label) for name, label in by_label]


def _text(path: Path) -> str:
    """A text file of the dataset, as UTF-8 (TinyImageNet's are ASCII); DataError names it."""
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise DataError(
            f"{path}: not UTF-8 text (byte {exc.start}); is it the dataset's?"
        ) from None


def _read_annotations(path: Path, index: dict[str, int]) -> dict[str, int]:
    """val_annotations.txt: `file<TAB>wnid<TAB>x0<TAB>y0<TAB>x1<TAB>y1` per line."""
    labels: dict[str, int] = {}
    for lineno, line in enumerate(_text(path).splitlines(), start=1):
        if not line.strip():
            continue
        fields = line.split("\t")
        if len(fields) < 2:
            raise DataError(f"{path}, line {lineno}: expected tab-separated file name and wnid")
        name, wnid = fields[0].strip(), fields[1].strip()
        if name in ("", ".", "..") or "/" in name or "\\" in name:
            raise DataError(  # "../../train/..." would add a training image to validation
                f"{path}, line {lineno}: {name!r} is not a file name in val/images; allowed: "
                "a plain file name, no folder"
            )
        if wnid not in index:
            raise DataError(f"{path}, line {lineno}: wnid {wnid!r} is not in wnids.txt")
        if name in labels:
            raise DataError(f"{path}, line {lineno}: {name} is annotated twice")
        labels[name] = index[wnid]
    return labels


# Source: synthetic -----------------------------------------------------------------------------
# Per-image brightness of the pattern: base + stripes + blob, in [0.3, 1.0] of the class colour.
_SHADE_BASE, _SHADE_STRIPES, _SHADE_BLOB = 0.3, 0.45, 0.25
_JITTER = 0.04  # per-image brightness (relative) and colour (std, half of it) jitter
_BLOB_SIGMA = 0.15  # blob radius, as a fraction of the image side
_CHUNK = 128  # images per generation task; fixed so output never depends on the thread count
# Triangular noise u + v - 255 from two uniform bytes: std sqrt(2 * (256**2 - 1) / 12).
_TRIANGULAR_STD = float(np.sqrt(2 * (256**2 - 1) / 12))
# The config's synthetic parameters (image_size comes from data.image_size) and their types.
_SYNTHETIC_TYPES = {"num_classes": int, "train_per_class": int, "val_per_class": int,
                    "grayscale_fraction": float, "noise": float, "seed": int}  # fmt: skip


def make_synthetic(num_classes: int, train_per_class: int, val_per_class: int, image_size: int,
                   grayscale_fraction: float, noise: float,
                   seed: int) -> tuple[Split, Split, tuple[str, ...]]:  # fmt: skip
    """A learnable, deterministic stand-in for TinyImageNet: train, val, class names.

    Each class has its own colour (a lattice in the RGB cube: even 200 classes sit at least 0.14
    apart), stripe orientation and frequency, and blob position; each image jitters them and adds
    per-pixel noise of std `noise` (in units of 0..255). Colour separates the classes; the pattern
    keeps grayscale images (`grayscale_fraction` of each split, R = G = B by PIL's luma) learnable.
    Rows are in class order, classes named ``s000``, ``s001``, ...; `seed` is the only randomness.
    A parameter out of range raises DataError naming it.
    """
    params = dict(num_classes=num_classes, train_per_class=train_per_class,
                  val_per_class=val_per_class, image_size=image_size,
                  grayscale_fraction=grayscale_fraction, noise=noise, seed=seed)  # fmt: skip
    return _synthesise(params, lambda split, shape: np.empty(shape, np.uint8), progress=False)


def _synthesise(params: dict, allocate: Callable, progress: bool) -> tuple[Split, Split, tuple]:
    """make_synthetic, with the image arrays from `allocate(split, shape)` (memory or a file)."""
    num_classes, size = params["num_classes"], params["image_size"]
    # Independent streams: the validation images do not change when train_per_class does.
    proto_seq, train_seq, val_seq = np.random.SeedSequence(params["seed"]).spawn(3)
    protos = _class_prototypes(num_classes, np.random.default_rng(proto_seq))
    splits = []
    for split, seq in (("train", train_seq), ("val", val_seq)):
        images = allocate(split, (num_classes * params[f"{split}_per_class"], size, size, 3))
        splits.append(_render_split(protos, images, seq, params, progress))
    width = max(3, len(str(num_classes - 1)))  # names sort in label order
    return splits[0], splits[1], tuple(f"s{i:0{width}d}" for i in range(num_classes))


def _class_prototypes(num_classes: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Per-class colour, stripe direction/frequency and blob centre."""
    levels = int(np.ceil(num_classes ** (1 / 3) - 1e-9))
    grid = np.linspace(0.2, 0.9, levels) if levels > 1 else np.array([0.55])
    lattice = np.stack(np.meshgrid(grid, grid, grid, indexing="ij"), axis=-1).reshape(-1, 3)
    colours = lattice[rng.permutation(len(lattice))[:num_classes]]
    return {
        "colour": colours.astype(np.float32),
        "angle": rng.permutation(num_classes) * (np.pi / num_classes) + rng.uniform(0, 0.1),
        "cycles": rng.uniform(1.5, 5.0, num_classes),  # stripe periods across the image
        "centre": rng.uniform(0.25, 0.75, (num_classes, 2)),  # blob (y, x), image-relative
    }


def _render_split(
    protos: dict, images: np.ndarray, seq: np.random.SeedSequence, params: dict, progress: bool
) -> Split:
    """Fill `images` (N, H, W, 3), N a multiple of the class count, in class order."""
    num_classes, count = len(protos["colour"]), len(images)
    labels = np.repeat(np.arange(num_classes, dtype=np.int64), count // num_classes)
    mask_seq, *chunk_seqs = seq.spawn(1 + -(-count // _CHUNK))
    # Exactly round(fraction * N) grayscale images, spread over all classes at random.
    grayscale = np.zeros(count, dtype=bool)
    num_gray = round(params["grayscale_fraction"] * count)
    grayscale[np.random.default_rng(mask_seq).permutation(count)[:num_gray]] = True
    ids = np.empty(count, dtype=_ID_DTYPE)

    def render(chunk: int) -> slice:
        rows = slice(chunk * _CHUNK, min(count, (chunk + 1) * _CHUNK))
        rng = np.random.default_rng(chunk_seqs[chunk])
        _render_chunk(protos, labels[rows], params["noise"], rng, out=images[rows])
        for i in range(rows.start, rows.stop):
            if grayscale[i]:
                images[i] = _to_grayscale(images[i])
            ids[i] = image_id(images[i])
        return rows

    # numpy and hashlib release the GIL, so threads use every core; chunks own their streams.
    bar = tqdm(total=count, desc="generating images", unit="img", disable=not progress)
    with bar, ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1)) as pool:
        for chunk in pool.map(render, range(len(chunk_seqs))):
            bar.update(chunk.stop - chunk.start)
    return Split(images, labels, ids)


def _render_chunk(
    protos: dict, labels: np.ndarray, noise: float, rng: np.random.Generator, *, out: np.ndarray
) -> None:
    """Write the images for `labels` into `out` (B, H, W, 3), working in (B, 3, H, W) float32
    (contiguous rows, fast in numpy) until the final cast reorders the channels."""
    b, size = len(labels), out.shape[1]
    rows, cols = _shade_factors(protos, labels, size, rng)
    # Small jitter: neighbouring lattice colours are 0.14 apart at 200 classes.
    colour = protos["colour"][labels] * rng.uniform(1 - _JITTER, 1 + _JITTER, (b, 1))
    colour = np.clip(colour + rng.normal(0, _JITTER / 2, (b, 3)), 0, 1) * 255
    # The noise is u + v - 255 (u, v uniform bytes), scaled to std noise*255; its -255 offset
    # and the +0.5 that makes the final cast round ride along as the fifth matmul term.
    scale = np.float32(noise * 255 / _TRIANGULAR_STD)
    offset = np.full((b, 3, 1, size), 0.5 - 255 * scale)
    right = np.concatenate([colour[:, :, None, None] * cols[:, None], offset], axis=2)
    pixels = rows[:, None].astype(np.float32) @ right.astype(np.float32)  # (B, 3, H, W)
    if noise > 0:
        uv = rng.bit_generator.random_raw(-(-2 * pixels.size // 8)).view(np.uint8)
        tri = np.add(uv[: pixels.size], uv[pixels.size : 2 * pixels.size], dtype=np.int16)
        pixels += tri.reshape(pixels.shape) * scale
    # With the +0.5 already in, truncating a value clipped to [0, 256) rounds to 0..255.
    np.clip(pixels, 0, 255.99, out=pixels)
    np.copyto(out, pixels.transpose(0, 2, 3, 1), casting="unsafe")


def _shade_factors(protos: dict, labels: np.ndarray, size: int, rng: np.random.Generator):
    """Row (B, H, 5) and column (B, 4, W) factors of each image's shade (stripes and blob):
    sin(a*x + c*y + phase) splits into row x column products, so the shade is one batched
    (H x 5) @ (5 x W) matmul per image and channel."""
    b = len(labels)
    t = ((np.arange(size) + 0.5) / size).astype(np.float32)
    freq = 2 * np.pi * protos["cycles"][labels]
    angle = protos["angle"][labels]
    phase = rng.uniform(0, 2 * np.pi, b)
    ax = (freq * np.cos(angle))[:, None] * t + phase[:, None]
    cy = (freq * np.sin(angle))[:, None] * t
    centre = protos["centre"][labels] + rng.normal(0, 0.04, (b, 2))
    gauss_y = np.exp(-((t - centre[:, :1]) ** 2) / (2 * _BLOB_SIGMA**2))
    gauss_x = np.exp(-((t - centre[:, 1:]) ** 2) / (2 * _BLOB_SIGMA**2))
    one, half = np.ones((b, size)), _SHADE_STRIPES / 2
    rows = np.stack([one, np.cos(cy), np.sin(cy), gauss_y, one], axis=-1)
    cols = [(_SHADE_BASE + half) * one, half * np.sin(ax), half * np.cos(ax), _SHADE_BLOB * gauss_x]
    return rows, np.stack(cols, axis=1)


def _to_grayscale(pixels: np.ndarray) -> np.ndarray:
    """PIL's RGB -> L conversion (ITU-R 601-2 luma, fixed point), replicated to 3 channels."""
    rgb = pixels.astype(np.uint32)
    luma = (rgb[..., 0] * 19595 + rgb[..., 1] * 38470 + rgb[..., 2] * 7471 + 0x8000) >> 16
    return np.repeat(luma.astype(np.uint8)[..., None], 3, axis=-1)


def _plan_synthetic(data_cfg: dict, image_size: int) -> _Plan:
    params = {k: to(data_cfg["synthetic"][k]) for k, to in _SYNTHETIC_TYPES.items()}
    params["image_size"] = image_size
    info = {"source": "synthetic", "generator": SYNTHETIC_VERSION, "params": params}

    def build(out_dir: Path, progress: bool) -> tuple[str, ...]:
        def allocate(split: str, shape: tuple[int, ...]) -> np.ndarray:
            # Straight into the cache file: no second copy in memory.
            return _image_file(out_dir / f"{split}_images.npy", shape)

        train, val, classes = _synthesise(params, allocate, progress)
        for split, part in (("train", train), ("val", val)):
            _save_labels(out_dir, split, part.labels, classes, split)
            part.images.flush()
            np.save(out_dir / f"{split}_image_ids.npy", part.image_ids)
        return classes

    per_class = params["train_per_class"] + params["val_per_class"]
    return _Plan(_fingerprint(info), info, params["num_classes"] * per_class, build)


# Cache -----------------------------------------------------------------------------------------
_ARRAYS = [f"{split}_{kind}.npy" for split in _SPLITS for kind in ("images", "labels", "image_ids")]
# Bytes per image beyond its pixels: an int64 label and a 16-character id (<U16, 4 bytes each).
_ROW_BYTES = 8 + 64


def _image_file(path: Path, shape: tuple[int, ...]) -> np.ndarray:
    """A new uint8 .npy file of `shape`, memory-mapped for writing, its blocks allocated now: a
    memory-mapped write that finds the disk full is SIGBUS, which kills the process silently."""
    images = open_memmap(path, mode="w+", dtype=np.uint8, shape=shape)
    storage.reserve(path, "the data cache")
    return images


def _build_cache(plan: _Plan, cache_dir: Path, image_size: int, progress: bool) -> None:
    """Build the cache in a temporary sibling, then rename it into place in one step; first
    check the disk has room for it."""
    needed = plan.images * (image_size * image_size * 3 + _ROW_BYTES) + (1 << 20)
    storage.check_space(cache_dir.parent, needed, f"the data cache {cache_dir.name}")
    with atomic.partial_dir(cache_dir) as tmp:
        try:
            classes = plan.build(tmp, progress)
        except OSError as exc:
            if exc.errno not in storage.NO_SPACE:
                raise
            raise storage.no_space(cache_dir.parent, "the data cache", exc) from exc
        counts = {f"num_{split}": len(np.load(tmp / f"{split}_labels.npy")) for split in _SPLITS}
        info = {**plan.info, "fingerprint": plan.fingerprint, "image_size": image_size,
                "num_classes": len(classes), **counts}  # fmt: skip
        digests = {name: storage.file_digest(tmp / name) for name in _ARRAYS}
        meta = {"format": CACHE_FORMAT, "fingerprint": plan.fingerprint, "classes": list(classes),
                "info": info, "digests": digests}  # fmt: skip
        meta["digest"] = _meta_digest(meta)
        atomic.write_json(tmp / "meta.json", meta)
        (tmp / atomic.PARTIAL_LOCK).unlink()  # the lock stays held until the block ends
        try:
            tmp.replace(cache_dir)
        except OSError:
            # Another process finished the same version first; its cache is as good as ours.
            if not (cache_dir / "meta.json").is_file():
                raise


def _meta_digest(meta: dict) -> str:
    """Digest of meta.json's other keys (the class names and provenance it holds)."""
    digest = storage.hasher()
    digest.update(
        json.dumps({k: v for k, v in meta.items() if k != "digest"}, sort_keys=True).encode()
    )
    return storage.hexdigest(digest)


def _open_cache(cache_dir: Path, fingerprint: str) -> Store:
    """Memory-map a complete cache directory, checking it is the version asked for and that
    every file still matches the digest recorded when it was built."""
    hint = f"delete {cache_dir} to rebuild it"
    try:
        meta = json.loads((cache_dir / "meta.json").read_text())
    except (OSError, ValueError) as exc:
        raise DataError(
            f"cache file {cache_dir / 'meta.json'} is unreadable ({exc}); {hint}"
        ) from exc
    if not isinstance(meta, dict) or meta.get("digest") != _meta_digest(meta):
        raise DataError(f"cache file {cache_dir / 'meta.json'} is damaged; {hint}")
    if meta.get("format") != CACHE_FORMAT or meta.get("fingerprint") != fingerprint:
        raise DataError(f"cache {cache_dir} holds another data version; {hint}")
    arrays = {}
    for name in _ARRAYS:
        path = cache_dir / name
        storage.verify_file(path, meta["digests"].get(name), hint)
        try:
            arrays[name] = np.load(path, mmap_mode="r")
        except Exception as exc:  # a header numpy cannot parse raises TokenError, SyntaxError...
            raise DataError(f"cache file {path} is unreadable ({exc}); {hint}") from exc
    try:
        splits = {split: Split(*(arrays[name] for name in _ARRAYS if name.startswith(split)))
                  for split in _SPLITS}  # fmt: skip
    except ValueError as exc:
        raise DataError(f"cache {cache_dir} is inconsistent ({exc}); {hint}") from exc
    info = {**meta["info"], "cache": str(cache_dir)}
    return Store(splits["train"], splits["val"], tuple(meta["classes"]), fingerprint, info)

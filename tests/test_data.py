"""The decoded store: three sources, one result, decoded once.

The folder and Hugging Face fixtures hold the *same* JPEG files (3 classes, 4 train and 2
validation images each, two of them grayscale), so the two sources must give identical stores.
The Hugging Face rows are written in the folder's published order (class, then file name), so
the stores are compared row by row, not after sorting.
"""

import hashlib
import io
import json
import re
from pathlib import Path

import datasets
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

from convnext_tinyimagenet.config import ConfigError, load_config
from convnext_tinyimagenet.data import store as data
from convnext_tinyimagenet.data.store import DataError, image_id, load_store, make_synthetic

from .conftest import SMOKE

# Written to wnids.txt out of order: the label order must still be the sorted one.
WNIDS_FILE_ORDER = ("n01641577", "n01443537", "n01629819")
WNIDS = tuple(sorted(WNIDS_FILE_ORDER))
# Train file suffixes: plain string order puts "_10" before "_2", as ImageFolder does.
TRAIN_SUFFIXES = (0, 1, 2, 10)
# val_annotations.txt in file order: (file name, wnid).
VAL_ANNOTATIONS = (
    ("val_0.JPEG", "n01641577"),
    ("val_1.JPEG", "n01443537"),
    ("val_2.JPEG", "n01629819"),
    ("val_3.JPEG", "n01443537"),
    ("val_10.JPEG", "n01641577"),
    ("val_11.JPEG", "n01629819"),
)
GRAYSCALE = {"train/n01629819/images/n01629819_1.JPEG", "val/images/val_10.JPEG"}

# The published row order: class index, then file name as a string.
EXPECTED_TRAIN = [f"train/{w}/images/{w}_{i}.JPEG" for w in WNIDS for i in (0, 1, 10, 2)]
EXPECTED_VAL = [
    f"val/images/val_{k}.JPEG"
    for k in (1, 3, 11, 2, 0, 10)  # classes 0, 1, 2; names as strings
]


def _jpeg(rel: str) -> bytes:
    """A distinct 64x64 JPEG per relative path; grayscale ones are saved in mode L."""
    rng = np.random.default_rng(int(hashlib.sha256(rel.encode()).hexdigest()[:8], 16))
    colour = rng.integers(40, 216, 3)
    pixels = np.clip(colour + rng.normal(0, 30, (64, 64, 3)), 0, 255).astype(np.uint8)
    image = Image.fromarray(pixels)
    if rel in GRAYSCALE:
        image = image.convert("L")
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG")
    return buffer.getvalue()


def _wnid(rel: str) -> str:
    if rel.startswith("train/"):
        return rel.split("/")[1]
    return dict(VAL_ANNOTATIONS)[rel.split("/")[-1]]


def _label(rel: str) -> int:
    return WNIDS.index(_wnid(rel))


@pytest.fixture(autouse=True)
def _hf_cache(tmp_path, monkeypatch):
    # Keep the Arrow files `datasets` writes out of the user's ~/.cache.
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "hf-cache")


@pytest.fixture
def folder(tmp_path) -> Path:
    """The tiny-imagenet-200.zip layout, with box files like the real one."""
    root = tmp_path / "tiny-imagenet-200"
    for rel in EXPECTED_TRAIN + EXPECTED_VAL:
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(_jpeg(rel))
    for wnid in WNIDS:
        (root / "train" / wnid / f"{wnid}_boxes.txt").write_text("ignored\n")
    (root / "wnids.txt").write_text("\n".join(WNIDS_FILE_ORDER) + "\n")
    lines = [f"{name}\t{wnid}\t0\t0\t63\t63" for name, wnid in VAL_ANNOTATIONS]
    (root / "val" / "val_annotations.txt").write_text("\n".join(lines) + "\n")
    return root


def _write_parquet(path: Path, rels: list[str], jpeg_of, names=WNIDS) -> None:
    """A split whose ClassLabel lists `names` (label i is names[i])."""
    features = datasets.Features(
        {"image": datasets.Image(), "label": datasets.ClassLabel(names=list(names))}
    )
    table = {
        "image": [{"bytes": jpeg_of(rel), "path": None} for rel in rels],
        "label": [names.index(_wnid(rel)) for rel in rels],
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    datasets.Dataset.from_dict(table, features=features).to_parquet(str(path))


@pytest.fixture
def hf_dir(tmp_path, folder) -> Path:
    """A local copy of the zh-plus/tiny-imagenet layout holding the folder's JPEG bytes."""
    root = tmp_path / "hf-tiny-imagenet"
    read = lambda rel: (folder / rel).read_bytes()  # noqa: E731
    _write_parquet(root / "data" / "train-00000-of-00001.parquet", EXPECTED_TRAIN, read)
    _write_parquet(root / "data" / "valid-00000-of-00001.parquet", EXPECTED_VAL, read)
    return root


def _cfg(tmp_path: Path, source: str, **section) -> dict:
    cfg = {
        "source": source,
        "image_size": 64,
        "input_size": 224,
        "cache_dir": str(tmp_path / "cache"),
        "hf": {"id": "unused", "revision": "main", "train_split": "train", "val_split": "valid"},
        "folder": {"root": str(tmp_path / "unused")},
        "synthetic": {
            "num_classes": 4,
            "train_per_class": 5,
            "val_per_class": 3,
            "grayscale_fraction": 0.25,
            "noise": 0.25,
            "seed": 0,
        },
    }
    cfg[source] = {**cfg[source], **section}
    return cfg


def _load(cfg: dict) -> data.Store:
    return load_store(cfg, progress=False)


def _tree_digest(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


# --------------------------------------------------------------------------------------------
# image_id


def test_image_id_is_the_sha256_prefix_of_the_pixel_bytes():
    pixels = np.arange(2 * 3 * 3, dtype=np.uint8).reshape(2, 3, 3)
    assert image_id(pixels) == hashlib.sha256(pixels.tobytes()).hexdigest()[:16]
    # A non-contiguous view hashes as its C-contiguous copy.
    wide = np.zeros((2, 6, 3), dtype=np.uint8)
    wide[:, ::2] = pixels
    assert image_id(wide[:, ::2]) == image_id(pixels)


@pytest.mark.parametrize(
    "pixels",
    [np.zeros((4, 4, 3), np.float32), np.zeros((4, 4), np.uint8), np.zeros((4, 4, 4), np.uint8)],
)
def test_image_id_rejects_anything_but_uint8_rgb(pixels):
    with pytest.raises(ValueError, match="uint8"):
        image_id(pixels)


# --------------------------------------------------------------------------------------------
# Folder and Hugging Face sources


def test_folder_and_hf_give_the_same_store(tmp_path, folder, hf_dir):
    from_folder = _load(_cfg(tmp_path, "folder", root=str(folder)))
    from_hf = _load(_cfg(tmp_path, "hf", id=str(hf_dir)))
    assert from_folder.classes == from_hf.classes == WNIDS
    # the Hugging Face class list is wnids.txt sorted (the file itself is out of order)
    assert from_hf.classes == tuple(sorted((folder / "wnids.txt").read_text().split()))
    for split in ("train", "val"):
        a, b = getattr(from_folder, split), getattr(from_hf, split)
        np.testing.assert_array_equal(a.images, b.images)
        np.testing.assert_array_equal(a.labels, b.labels)
        np.testing.assert_array_equal(a.image_ids, b.image_ids)
    assert from_folder.fingerprint != from_hf.fingerprint
    assert from_hf.info["revision"] is None  # a local directory has no revision
    assert from_hf.info["resolved_revision"] is None
    assert from_hf.info["val_split"] == "valid"
    assert from_folder.info["root"] == str(folder.resolve())


def test_the_hub_commit_is_read_from_where_datasets_cached_the_files(tmp_path):
    """`datasets` caches a hub dataset under .../<commit sha>/: that sha is what `main` meant."""
    sha = "5a77092c28e51558c5586e9c5eb71a7e17a5e43f"
    cached = tmp_path / "zh-plus___tiny-imagenet" / "default" / "0.0.0" / sha
    datasets.Dataset.from_dict({"label": [0, 1]}).save_to_disk(str(cached))
    assert data.hub_commit(datasets.load_from_disk(str(cached))) == sha
    elsewhere = tmp_path / "not-a-commit"
    datasets.Dataset.from_dict({"label": [0, 1]}).save_to_disk(str(elsewhere))
    assert data.hub_commit(datasets.load_from_disk(str(elsewhere))) is None
    assert data.hub_commit(datasets.Dataset.from_dict({"label": [0]})) is None  # in memory


def test_folder_rows_follow_the_published_order_and_decode_like_pil(tmp_path, folder):
    store = _load(_cfg(tmp_path, "folder", root=str(folder)))
    for split, expected in (("train", EXPECTED_TRAIN), ("val", EXPECTED_VAL)):
        got = getattr(store, split)
        assert got.images.dtype == np.uint8 and got.images.shape == (len(expected), 64, 64, 3)
        assert got.labels.dtype == np.int64
        assert got.labels.tolist() == [_label(rel) for rel in expected]
        for i, rel in enumerate(expected):  # an independent decode of each expected file
            with Image.open(folder / rel) as im:
                np.testing.assert_array_equal(got.images[i], np.asarray(im.convert("RGB")))
            assert got.image_ids[i] == image_id(np.asarray(got.images[i]))
    assert store.info | {"cache": None} == store.info | {
        "source": "folder",
        "num_classes": 3,
        "num_train": 12,
        "num_val": 6,
        "fingerprint": store.fingerprint,
        "cache": None,
    }
    json.dumps(store.info)  # provenance must be JSON-able


def test_grayscale_images_become_rgb_with_equal_channels(tmp_path, folder):
    store = _load(_cfg(tmp_path, "folder", root=str(folder)))
    for split, expected in (("train", EXPECTED_TRAIN), ("val", EXPECTED_VAL)):
        images = np.asarray(getattr(store, split).images)
        equal = (images[..., 0] == images[..., 1]).all((1, 2)) & (
            images[..., 1] == images[..., 2]
        ).all((1, 2))
        assert {rel for rel, gray in zip(expected, equal, strict=True) if gray} == (
            GRAYSCALE & set(expected)
        )


# --------------------------------------------------------------------------------------------
# Errors name what is at fault


@pytest.mark.parametrize(
    "content", [b"this is not a JPEG", "truncated"], ids=["garbage", "truncated"]
)
def test_a_corrupt_image_names_the_file(tmp_path, folder, content):
    rel = "train/n01629819/images/n01629819_2.JPEG"
    if content == "truncated":
        content = (folder / rel).read_bytes()[:300]
    (folder / rel).write_bytes(content)
    with pytest.raises(DataError, match=r"n01629819_2\.JPEG"):
        _load(_cfg(tmp_path, "folder", root=str(folder)))


def test_a_wrong_image_size_is_named(tmp_path, folder):
    rel = "val/images/val_3.JPEG"
    Image.new("RGB", (32, 48)).save(folder / rel, format="JPEG")
    with pytest.raises(DataError, match=r"val_3\.JPEG is 32x48, expected 64x64"):
        _load(_cfg(tmp_path, "folder", root=str(folder)))


def test_a_class_without_train_images_is_named(tmp_path, folder):
    for path in (folder / "train" / "n01629819" / "images").iterdir():
        path.unlink()
    with pytest.raises(DataError, match=r"'n01629819'.*no images in the train split"):
        _load(_cfg(tmp_path, "folder", root=str(folder)))


def test_a_missing_root_is_named(tmp_path):
    missing = tmp_path / "nowhere" / "tiny-imagenet-200"
    with pytest.raises(DataError, match=str(missing)):
        _load(_cfg(tmp_path, "folder", root=str(missing)))


def _drop_wnids(root: Path) -> None:
    (root / "wnids.txt").unlink()


def _drop_annotations(root: Path) -> None:
    (root / "val" / "val_annotations.txt").unlink()


def _unknown_wnid(root: Path) -> None:
    with (root / "val" / "val_annotations.txt").open("a") as f:
        f.write("val_99.JPEG\tn09999999\t0\t0\t1\t1\n")


def _missing_listed_image(root: Path) -> None:
    (root / "val" / "images" / "val_2.JPEG").unlink()


def _unlisted_val_image(root: Path) -> None:
    (root / "val" / "images" / "val_7.JPEG").write_bytes(_jpeg("extra"))


def _unknown_train_class(root: Path) -> None:
    (root / "train" / "n02000000" / "images").mkdir(parents=True)


def _missing_train_dir(root: Path) -> None:
    for wnid in WNIDS:
        for path in (root / "train" / wnid / "images").iterdir():
            path.unlink()
        (root / "train" / wnid / "images").rmdir()
        (root / "train" / wnid / f"{wnid}_boxes.txt").unlink()
        (root / "train" / wnid).rmdir()
    (root / "train").rmdir()


def _annotation_leaving_val_images(root: Path) -> None:
    # issue 20: a training image listed as a validation one, through its relative path
    wnid = WNIDS[0]
    with (root / "val" / "val_annotations.txt").open("a") as f:
        f.write(f"../../train/{wnid}/images/{wnid}_0.JPEG\t{wnid}\t0\t0\t1\t1\n")


def _symlink_loop(root: Path) -> None:
    images = root / "train" / WNIDS[0] / "images"
    (images / "loop_a.JPEG").symlink_to("loop_b.JPEG")
    (images / "loop_b.JPEG").symlink_to("loop_a.JPEG")


def _latin1_wnids(root: Path) -> None:
    with (root / "wnids.txt").open("ab") as f:
        f.write(b"n0\xe9\n")


@pytest.mark.parametrize(
    ("breakage", "named"),
    [
        (_annotation_leaving_val_images, r"'\.\./\.\./train/.*' is not a file name in val/images"),
        (_latin1_wnids, r"wnids\.txt: not UTF-8 text"),
        (_symlink_loop, r"loop_[ab]\.JPEG: Too many levels of symbolic links"),
        (_drop_wnids, "wnids.txt"),
        (_drop_annotations, "val_annotations.txt"),
        (_unknown_wnid, "n09999999"),
        (_missing_listed_image, r"val_2\.JPEG"),
        (_unlisted_val_image, r"val_7\.JPEG"),
        (_unknown_train_class, "n02000000"),
        (_missing_train_dir, r"tiny-imagenet-200/train "),
    ],
    ids=lambda x: getattr(x, "__name__", ""),
)
def test_a_broken_folder_layout_is_named(tmp_path, folder, breakage, named):
    breakage(folder)
    with pytest.raises(DataError, match=named):
        _load(_cfg(tmp_path, "folder", root=str(folder)))
    assert not (tmp_path / "cache").exists() or not any((tmp_path / "cache").iterdir())


def test_an_out_of_range_hf_label_names_the_split(tmp_path, hf_dir):
    # ClassLabel refuses to encode such a label, so patch the stored column and keep the
    # features metadata that declares three class names.
    path = hf_dir / "data" / "valid-00000-of-00001.parquet"
    table = pq.read_table(path)
    labels = pa.array([0, 1, 2, 3, 1, 2], pa.int64())
    patched = table.set_column(table.schema.get_field_index("label"), "label", labels)
    pq.write_table(patched.replace_schema_metadata(table.schema.metadata), path)
    with pytest.raises(DataError, match=r"valid split .*outside \[0, 3\).*first 3 at row 3"):
        _load(_cfg(tmp_path, "hf", id=str(hf_dir)))


@pytest.mark.parametrize(
    ("names", "named"),
    [
        (WNIDS_FILE_ORDER, r"class 'n01443537' \(label 1\) comes after 'n01641577' \(label 0\)"),
        (WNIDS[::-1], r"class 'n01629819' \(label 1\) comes after 'n01641577' \(label 0\)"),
    ],
    ids=["file-order", "reversed"],
)
def test_hf_class_names_out_of_sorted_order_are_refused(tmp_path, folder, hf_dir, names, named):
    """Each row keeps its true class, only the label numbering differs: accepting it would
    shift every label against the folder source's (ImageFolder's) numbering."""
    read = lambda rel: (folder / rel).read_bytes()  # noqa: E731
    for split, rels in (("train", EXPECTED_TRAIN), ("valid", EXPECTED_VAL)):
        _write_parquet(hf_dir / "data" / f"{split}-00000-of-00001.parquet", rels, read, names)
    with pytest.raises(DataError) as caught:
        _load(_cfg(tmp_path, "hf", id=str(hf_dir)))
    message = str(caught.value)
    assert f"'{hf_dir}': its ClassLabel names are not in sorted wnid order" in message
    assert re.search(named, message) and "\n" not in message
    assert not (tmp_path / "cache").exists()


def test_an_unreachable_hub_points_to_the_offline_remedies(tmp_path, monkeypatch):
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)  # as HF_HUB_OFFLINE=1 does
    with pytest.raises(DataError) as caught:
        _load(_cfg(tmp_path, "hf", id="zh-plus/tiny-imagenet"))
    message = str(caught.value)
    assert "\n" not in message and "'zh-plus/tiny-imagenet'" in message
    assert message.endswith("See docs/troubleshooting.md#offline-machine (a copied cache, or the "
                            "zip's folder)")  # fmt: skip


def test_a_missing_hf_split_is_named_with_the_available_ones(tmp_path, hf_dir):
    with pytest.raises(DataError, match=r"no split 'validation'.*\['train', 'valid'\]"):
        _load(_cfg(tmp_path, "hf", id=str(hf_dir), val_split="validation"))


def test_an_undecodable_hf_image_names_split_and_row(tmp_path, folder, hf_dir):
    def jpeg_of(rel):
        return b"broken" if rel == EXPECTED_TRAIN[5] else (folder / rel).read_bytes()

    _write_parquet(hf_dir / "data" / "train-00000-of-00001.parquet", EXPECTED_TRAIN, jpeg_of)
    with pytest.raises(DataError, match="row 5 of split 'train'"):
        _load(_cfg(tmp_path, "hf", id=str(hf_dir)))


def test_a_plain_integer_label_column_is_refused(tmp_path, folder):
    root = tmp_path / "plain"
    features = datasets.Features({"image": datasets.Image(), "label": datasets.Value("int64")})
    for split, rels in (("train", EXPECTED_TRAIN), ("valid", EXPECTED_VAL)):
        rows = {"image": [str(folder / r) for r in rels], "label": [_label(r) for r in rels]}
        dataset = datasets.Dataset.from_dict(rows, features=features)
        dataset.to_parquet(str(root / "data" / f"{split}-00000-of-00001.parquet"))
    with pytest.raises(DataError, match="'label' column of type ClassLabel"):
        _load(_cfg(tmp_path, "hf", id=str(root)))


# --------------------------------------------------------------------------------------------
# Cache


def _forbid_decoding(monkeypatch) -> None:
    def refuse(*args, **kwargs):
        raise AssertionError("decoded although the cache holds this version")

    monkeypatch.setattr(data, "_decode_image", refuse)


@pytest.mark.parametrize("source", ["folder", "hf", "synthetic"])
def test_a_second_load_reuses_the_cache(tmp_path, folder, hf_dir, monkeypatch, source):
    section = {"folder": {"root": str(folder)}, "hf": {"id": str(hf_dir)}, "synthetic": {}}
    cfg = _cfg(tmp_path, source, **section[source])
    first = _load(cfg)
    _forbid_decoding(monkeypatch)
    monkeypatch.setattr(data, "_render_chunk", lambda *a, **k: pytest.fail("generated again"))
    second = _load(cfg)
    assert second.fingerprint == first.fingerprint and second.info == first.info
    for split in ("train", "val"):
        a, b = getattr(first, split), getattr(second, split)
        np.testing.assert_array_equal(a.images, b.images)
        np.testing.assert_array_equal(a.labels, b.labels)
        np.testing.assert_array_equal(a.image_ids, b.image_ids)
    cache = Path(first.info["cache"])
    assert cache.parent == tmp_path / "cache"
    assert cache.name == f"{source}-{first.fingerprint[:16]}"
    assert sorted(p.name for p in cache.parent.iterdir()) == [cache.name]  # no leftovers


def test_cached_arrays_are_read_only_memmaps(tmp_path):
    store = _load(_cfg(tmp_path, "synthetic"))
    for split in (store.train, store.val):
        for array in (split.images, split.labels, split.image_ids):
            assert isinstance(array, np.memmap)
            assert not array.flags.writeable
    meta = json.loads((Path(store.info["cache"]) / "meta.json").read_text())
    assert meta["classes"] == list(store.classes) and meta["fingerprint"] == store.fingerprint


def test_changed_files_are_a_new_version_in_a_new_cache(tmp_path, folder, monkeypatch):
    cfg = _cfg(tmp_path, "folder", root=str(folder))
    old = _load(cfg)
    rel = EXPECTED_VAL[0]
    Image.new("RGB", (64, 64), (1, 2, 3)).save(folder / rel, format="JPEG")
    new = _load(cfg)
    assert new.fingerprint != old.fingerprint
    assert new.info["cache"] != old.info["cache"]
    assert new.val.image_ids[0] != old.val.image_ids[0]
    np.testing.assert_array_equal(new.val.image_ids[1:], old.val.image_ids[1:])


def test_a_failing_load_leaves_an_existing_cache_byte_identical(tmp_path, folder):
    cfg = _cfg(tmp_path, "folder", root=str(folder))
    cache = Path(_load(cfg).info["cache"])
    before = _tree_digest(tmp_path / "cache")
    # A new version whose decoding fails half way.
    (folder / "train" / "n01641577" / "images" / "n01641577_1.JPEG").write_bytes(b"corrupt")
    with pytest.raises(DataError, match=r"n01641577_1\.JPEG"):
        _load(cfg)
    assert _tree_digest(tmp_path / "cache") == before
    assert [p.name for p in (tmp_path / "cache").iterdir()] == [cache.name]


def test_a_crash_mid_decoding_leaves_no_cache(tmp_path, folder, monkeypatch):
    calls = []
    decode = data._decode_image

    def crash_on_the_fifth(*args):
        calls.append(args)
        if len(calls) == 5:
            raise KeyboardInterrupt
        return decode(*args)

    monkeypatch.setattr(data, "_decode_image", crash_on_the_fifth)
    cfg = _cfg(tmp_path, "folder", root=str(folder))
    with pytest.raises(KeyboardInterrupt):
        _load(cfg)
    assert list((tmp_path / "cache").iterdir()) == []
    monkeypatch.setattr(data, "_decode_image", decode)
    assert len(_load(cfg).train) == 12


# --------------------------------------------------------------------------------------------
# Synthetic data

SYNTH = {
    "num_classes": 10,
    "train_per_class": 20,
    "val_per_class": 10,
    "image_size": 32,
    "grayscale_fraction": 0.0,
    "noise": 0.25,
    "seed": 0,
}


def test_synthetic_is_deterministic_and_depends_on_the_seed():
    a = make_synthetic(**SYNTH)
    b = make_synthetic(**SYNTH)
    c = make_synthetic(**SYNTH | {"seed": 1})
    for x, y, z in zip(a[:2], b[:2], c[:2], strict=True):
        np.testing.assert_array_equal(x.images, y.images)
        np.testing.assert_array_equal(x.image_ids, y.image_ids)
        assert not np.array_equal(x.images, z.images)
        assert not set(x.image_ids) & set(z.image_ids)
    assert a[2] == b[2] == c[2]


def test_synthetic_validation_does_not_depend_on_the_train_size():
    _, val, _ = make_synthetic(**SYNTH)
    _, other_val, _ = make_synthetic(**SYNTH | {"train_per_class": 7})
    np.testing.assert_array_equal(val.images, other_val.images)


@pytest.mark.parametrize(("num_classes", "size"), [(1, 8), (7, 64), (300, 16)])
def test_synthetic_shapes_dtypes_and_balanced_labels(num_classes, size):
    train, val, classes = make_synthetic(num_classes, 3, 2, size, 0.1, 0.25, 5)
    assert len(classes) == num_classes and list(classes) == sorted(classes)
    assert classes[0] == "s000"
    for split, per_class in ((train, 3), (val, 2)):
        assert split.images.shape == (num_classes * per_class, size, size, 3)
        assert split.images.dtype == np.uint8 and split.labels.dtype == np.int64
        assert np.bincount(split.labels).tolist() == [per_class] * num_classes
        assert split.image_ids.dtype.kind == "U"
        assert split.image_ids.tolist() == [image_id(im) for im in split.images]
        assert len(set(split.image_ids.tolist())) == len(split)


def test_synthetic_has_exactly_the_grayscale_fraction():
    train, val, _ = make_synthetic(**SYNTH | {"grayscale_fraction": 0.25})
    for split in (train, val):
        images = split.images.astype(int)
        gray = (np.abs(np.diff(images, axis=-1)) == 0).all((1, 2, 3))
        assert gray.sum() == round(0.25 * len(split))
        # The colour images really have colour.
        assert (np.abs(images[~gray, ..., 0] - images[~gray, ..., 2]).mean((1, 2)) > 5).all()


def test_synthetic_classes_are_separable_by_mean_colour():
    train, val, _ = make_synthetic(**SYNTH | {"num_classes": 27})
    colour = lambda s: s.images.reshape(len(s), -1, 3).mean(1)  # noqa: E731
    means = np.stack([colour(train)[train.labels == c].mean(0) for c in range(27)])
    distance = ((colour(val)[:, None] - means[None]) ** 2).sum(-1)
    accuracy = (distance.argmin(1) == val.labels).mean()
    assert accuracy > 0.9


def test_synthetic_noise_has_the_requested_strength():
    # Same seed, so the same per-image draws; only the noise differs. Mid-grey pixels of the
    # clean images stay unclipped at noise 0.05 (std 12.75 of 255).
    clean, _, _ = make_synthetic(**SYNTH | {"noise": 0.0})
    noisy, _, _ = make_synthetic(**SYNTH | {"noise": 0.05})
    a, b = clean.images.astype(float), noisy.images.astype(float)
    mid = (a > 60) & (a < 195)
    assert (b - a)[mid].std() == pytest.approx(0.05 * 255, rel=0.03)
    assert abs((b - a)[mid].mean()) < 0.3
    # Rounding reaches both ends of the range once noise saturates.
    loud, _, _ = make_synthetic(**SYNTH | {"noise": 1.0})
    assert (loud.images == 0).any() and (loud.images == 255).any()


def test_synthetic_store_matches_make_synthetic(tmp_path):
    cfg = _cfg(tmp_path, "synthetic")
    store = _load(cfg)
    params = {**cfg["synthetic"], "image_size": 64}
    train, val, classes = make_synthetic(**params)
    assert store.classes == classes == ("s000", "s001", "s002", "s003")
    np.testing.assert_array_equal(store.train.images, train.images)
    np.testing.assert_array_equal(store.val.image_ids, val.image_ids)
    assert store.info["params"] == params
    for key, value in (("noise", 0.1), ("seed", 1)):
        other = _load(_cfg(tmp_path, "synthetic", **{key: value}))
        assert other.fingerprint != store.fingerprint
        expected, _, _ = make_synthetic(**params | {key: value})
        np.testing.assert_array_equal(other.train.images, expected.images)


@pytest.mark.parametrize(
    ("key", "value"),
    [("num_classes", 0), ("train_per_class", 0), ("grayscale_fraction", 1.5), ("noise", -1.0)],
)
def test_bad_synthetic_parameters_are_named(key, value):
    """The schema is the one check of the data settings: the config refuses them at load."""
    with pytest.raises(ConfigError, match=rf"data\.synthetic\.{key} = {value}"):
        load_config([SMOKE], [f"data.synthetic.{key}={value}"])

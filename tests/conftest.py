"""Shared fixtures: the smoke config pointed at a temporary cache."""

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from convnext_tinyimagenet.config import load_config

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "config" / "config.yaml"  # what a user tunes
STUDY = ROOT / "config" / "study.yaml"  # the published study's facts
SMOKE = ROOT / "config" / "smoke.yaml"
SHARED_PUBLISHED = ROOT.parent / "shared" / "published"


@pytest.fixture(scope="session")
def smoke_cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("data-cache")


def smoke_config(cache: Path, *overrides: str) -> dict:
    """The defaults + smoke.yaml with the data cache in `cache`, one seed (0, as a run's
    settings hold; override with `seeds=[N]`) and extra --set overrides."""
    return load_config([SMOKE], [f"data.cache_dir={cache}", "seeds=[0]", *overrides])


def image_folder(root: Path, size: int, classes: int = 3, train: int = 8, val: int = 4) -> Path:
    """A folder in the tiny-imagenet-200.zip layout: PNGs of `size` pixels, one colour per
    class with noise."""
    rng = np.random.default_rng(0)
    wnids = [f"n{k:08d}" for k in range(classes)]

    def image(path: Path, label: int) -> None:
        pixels = np.full((size, size, 3), 60 * label + 40, np.uint8)
        noise = rng.integers(0, 30, pixels.shape, dtype=np.uint8)
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(pixels + noise).save(path)

    lines = []
    for label, wnid in enumerate(wnids):
        for i in range(train):
            image(root / "train" / wnid / "images" / f"{wnid}_{i}.png", label)
        for i in range(val):
            image(root / "val" / "images" / f"val_{label}_{i}.png", label)
            lines.append(f"val_{label}_{i}.png\t{wnid}\t0\t0\t1\t1")
    (root / "wnids.txt").write_text("\n".join(wnids) + "\n")
    (root / "val" / "val_annotations.txt").write_text("\n".join(lines) + "\n")
    return root

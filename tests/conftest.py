"""Shared fixtures: the smoke config pointed at a temporary cache."""

from pathlib import Path

import pytest

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

"""What a run was: seed, versions, device, commit, data and times, written beside its results."""

from __future__ import annotations

import datetime as dt
import importlib.metadata
import os
import platform
import re
import subprocess
import sys
from pathlib import Path

import torch

PACKAGES = ("torch", "torchvision", "timm", "numpy", "datasets", "huggingface-hub", "safetensors",
            "pillow", "convnext-tinyimagenet")  # fmt: skip
REPO_ROOT = Path(__file__).resolve().parents[2]
# Where there is no checkout (the Docker image copies no .git), the commit comes from this
# variable: the Dockerfile sets it from its GIT_COMMIT build argument, a full sha with "-dirty"
# appended when the tree had uncommitted edits (README: `git rev-parse HEAD` and `git diff`).
COMMIT_VARIABLE = "CONVNEXT_TINYIMAGENET_COMMIT"
_BUILT_COMMIT = re.compile(r"^([0-9a-f]{40})(-dirty)?$")


def now() -> str:
    """Current UTC time, ISO 8601 with seconds."""
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


def versions() -> dict[str, str | None]:
    """Python and package versions (None where a package is not installed)."""
    found: dict[str, str | None] = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            found[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            found[name] = None
    found["cuda"] = torch.version.cuda
    found["cudnn"] = str(torch.backends.cudnn.version()) if torch.cuda.is_available() else None
    return found


def device_info(device: torch.device) -> dict:
    """The device a run used, by name, with the host's CPU count."""
    info = {"device": str(device), "cpu_count": os.cpu_count(), "platform": platform.platform()}
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        info |= {"name": props.name, "memory_gib": round(props.total_memory / 2**30, 1)}
    else:
        info["name"] = platform.processor() or platform.machine()
    info["torch_threads"] = torch.get_num_threads()
    return info


def git_commit(root: Path = REPO_ROOT) -> dict:
    """The checkout's commit and whether it had uncommitted changes; outside a checkout, the
    image's (:data:`COMMIT_VARIABLE`, ``source: "image"``); None where neither is known."""

    def git(*args: str) -> str | None:
        try:
            result = subprocess.run(
                ["git", *args], cwd=root, capture_output=True, text=True, timeout=10, check=True
            )
        except (OSError, subprocess.SubprocessError):
            return None
        return result.stdout.strip()

    commit = git("rev-parse", "HEAD")
    if commit is None:
        built = _BUILT_COMMIT.match(os.environ.get(COMMIT_VARIABLE, "").strip())
        if built:  # anything else (a tag, a short sha, a typo) is not a commit: not recorded
            return {"commit": built[1], "dirty": built[2] is not None, "source": "image"}
        return {"commit": None, "dirty": None}
    status = git("status", "--porcelain", "--untracked-files=no")
    return {"commit": commit, "dirty": bool(status) if status is not None else None}


def collect(*, seed: int, device: torch.device, data: dict, config_digest: str) -> dict:
    """A provenance record; the caller adds start/end times and run-specific facts."""
    return {
        "seed": seed,
        "config_digest": config_digest,
        "command": [Path(sys.argv[0]).name, *sys.argv[1:]],
        "versions": versions(),
        "device": device_info(device),
        "git": git_commit(),
        "data": data,
    }

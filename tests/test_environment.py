"""The pinned environment (envs/): every release envs/lock.txt pins installs on every patch
release of the Python minor version `make` builds with, down to Debian 12's own python3.11
(3.11.2), as the installed packages' own metadata (Requires-Python) says. The image test
(.ci/image-test.sh) also resolves envs/ with Debian's python3.11 itself."""

import re
from importlib import metadata

from packaging.specifiers import SpecifierSet

from .conftest import ROOT
from .test_container import python_minor_ci_uses

LOCK = ROOT / "envs" / "lock.txt"


def pins() -> dict[str, str]:
    return dict(re.findall(r"^([A-Za-z0-9_.-]+)==(\S+)$", LOCK.read_text(), re.MULTILINE))


def test_every_pinned_release_installs_on_every_patch_release_of_the_minor():
    oldest = f"{python_minor_ci_uses()}.0"  # 3.11.0: Debian 12 has 3.11.2, pyenv users 3.11.x
    locked = pins()
    assert len(locked) > 100  # the whole environment, not only requirements.txt's pins
    problems = []
    for name, version in locked.items():
        installed = metadata.distribution(name)
        if installed.version != version:  # its metadata would speak for another release
            problems.append(f"{name}: {installed.version} installed, {version} pinned (make venv)")
            continue
        requires = installed.metadata["Requires-Python"] or ""
        if not SpecifierSet(requires).contains(oldest):
            problems.append(f"{name}=={version} requires Python {requires}, not {oldest}")
    assert not problems, "\n".join(problems)

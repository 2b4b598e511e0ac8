"""The Dockerfile, read as text: what the image test does not cover. `make image-test`
(.ci/image-test.sh, run by CI after `make test`) builds the image and runs the demo, the checks
and the packages' versions inside it, rebuilds it after a code change (only the late layers) and
for root; what a build and a run cannot show stays here: the base image's pin and its Python
minor, the volumes, the TeX pins, the project's own install without unpinned build tools, and
the build context. hadolint (`make lint`) checks the rest of its form."""

import json
import re
import shlex
import sys
import tomllib

import pytest
import yaml

from .conftest import ROOT

DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"


def parse_dockerfile(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, with `\\` continuations joined and comments dropped.

    As Docker reads it: a comment line inside a continued instruction is skipped, not ended on.
    """
    instructions: list[tuple[str, str]] = []
    pending: list[str] = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        continued = line.endswith("\\")
        pending.append(line[:-1].strip() if continued else line)
        if not continued:
            keyword, _, args = " ".join(pending).partition(" ")
            instructions.append((keyword.upper(), args.strip()))
            pending = []
    assert not pending, "the Dockerfile ends inside a continued instruction"
    return instructions


def parse_pairs(args: str) -> dict[str, str]:
    """`KEY=value KEY2="value 2"` (ARG, ENV) as a dict; a bare ARG name maps to ''."""
    pairs = {}
    for word in shlex.split(args):
        key, _, value = word.partition("=")
        pairs[key] = value
    return pairs


def substitute(value: str, variables: dict[str, str]) -> str:
    """`${NAME}` and `$NAME` replaced from `variables` (what Docker does in most instructions)."""
    return re.sub(r"\$\{(\w+)\}|\$(\w+)", lambda m: variables.get(m[1] or m[2], m[0]), value)


def json_or_words(args: str) -> list[str]:
    """Arguments in exec form (a JSON list) or shell form (space-separated)."""
    return json.loads(args) if args.startswith("[") else args.split()


def pip_installs(instructions) -> list[list[str]]:
    """The argument words of every `pip install` in a RUN, split at `&&`, `;` and `|`."""
    installs = []
    for keyword, args in instructions:
        if keyword != "RUN":
            continue
        for command in re.split(r"&&|;|\|", args):
            words = shlex.split(command)
            if words[:1] in (["pip"], ["pip3"]) or words[1:3] == ["-m", "pip"]:
                words = words[words.index("pip") + 1 :]
                if words[:1] == ["install"]:
                    installs.append(words[1:])
    return installs


@pytest.fixture(scope="module")
def instructions():
    return parse_dockerfile(DOCKERFILE.read_text())


@pytest.fixture(scope="module")
def variables(instructions) -> dict[str, str]:
    """ARG defaults and ENV values, resolved in order."""
    values: dict[str, str] = {}
    for keyword, args in instructions:
        if keyword in ("ARG", "ENV"):
            for key, value in parse_pairs(args).items():
                values[key] = substitute(value, values)
    return values


def test_parser_joins_continuations_and_skips_comments():
    text = 'FROM base:1.0\n# a comment\nRUN a \\\n    # inside\n    && b\nENV X=1 \\\n  Y="2 3"\n'
    parsed = parse_dockerfile(text)
    assert parsed == [("FROM", "base:1.0"), ("RUN", "a && b"), ("ENV", 'X=1 Y="2 3"')]
    assert parse_pairs(parsed[2][1]) == {"X": "1", "Y": "2 3"}
    assert pip_installs([("RUN", "python -m venv v && pip install --no-cache-dir -r r.txt")]) == [
        ["--no-cache-dir", "-r", "r.txt"]
    ]


def python_minor_ci_uses() -> str:
    """The Python `make` builds .venv with, which is what CI (.ci/run -> make test) tests."""
    makefile = (ROOT / "Makefile").read_text()
    match = re.search(r"^PYTHON\s*\?=\s*python(\d+\.\d+)\s*$", makefile, re.MULTILINE)
    assert match, "Makefile: no `PYTHON ?= pythonX.Y` line"
    return match[1]


def test_base_image_is_pinned_to_the_python_minor_ci_tests(instructions):
    bases = [args for keyword, args in instructions if keyword == "FROM"]
    assert len(bases) == 1, "one stage: the image that runs is the image that was checked"
    image, _, tag = bases[0].partition(":")
    assert image in ("python", "docker.io/library/python"), image
    match = re.fullmatch(r"(\d+)\.(\d+)\.(\d+)-[a-z]+-[a-z]+", tag)
    assert match, f"base tag {tag!r} is not an exact version (like 3.11.7-slim-bookworm)"
    minor = f"{match[1]}.{match[2]}"
    assert minor == python_minor_ci_uses()
    assert minor == f"{sys.version_info.major}.{sys.version_info.minor}"
    requires = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["requires-python"]
    assert re.fullmatch(r">=\s*" + re.escape(minor) + r"(\.0)?(,.*)?", requires), requires


def test_the_project_installs_without_unpinned_packages_or_build_tools(instructions):
    """The image test compares the installed releases with envs/lock.txt; what pip fetches only
    to build (an isolated build's newest setuptools) leaves no trace there."""
    makefile = (ROOT / "Makefile").read_text()
    assert "--no-build-isolation -e ." in makefile  # as `make` installs it
    for words in pip_installs(instructions):
        if "-r" in words:
            continue
        names = [w for w in words if not w.startswith("-")]
        assert names == ["."] and "--no-deps" in words, f"unpinned install: pip install {words}"
        assert "--no-build-isolation" in words, f"unpinned build backend: pip install {words}"


def test_results_and_download_caches_are_volumes(instructions, variables):
    workdir = [args for keyword, args in instructions if keyword == "WORKDIR"][-1]
    volumes = {
        substitute(v, variables).rstrip("/")
        for keyword, args in instructions
        if keyword == "VOLUME"
        for v in json_or_words(args)
    }
    expected = {
        f"{workdir}/results",
        f"{workdir}/resources",  # the decoded dataset (1.35 GB) and the published predictions
        variables["HF_HOME"],  # Hugging Face datasets and hub downloads (timm weights)
        variables["TORCH_HOME"],
    }
    assert expected <= volumes, f"not volumes: {sorted(expected - volumes)}"


def test_tex_packages_are_the_ones_the_workflow_names(instructions):
    makefile = (ROOT / "Makefile").read_text()
    tex = re.search(r"^TEX_PACKAGES := (.+)$", makefile, re.MULTILINE)[1].split()
    installed = {}
    for keyword, args in instructions:
        if keyword == "RUN" and "apt-get install" in args:
            for word in shlex.split(args):
                name, _, version = word.partition("=")
                if re.fullmatch(r"[a-z0-9][a-z0-9.+-]+", name):
                    installed[name] = version
    for package in tex:
        assert package in installed, f"{package} not installed: the image could not build the PDF"
        assert installed[package], f"{package} has no pinned version"


def test_the_workflow_runs_in_the_image_the_docs_build():
    """The config's `container`, the image of every rule under Apptainer, is the tag the README's
    and docs/reproducing.md's `docker build -t` give (make image-test builds that tag)."""
    container = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())["container"]
    scheme, _, image = container.partition("://")
    assert scheme == "docker-daemon"  # Apptainer reads a locally built image from the daemon
    for doc in ("README.md", "docs/reproducing.md"):
        assert set(re.findall(r"-t (\S+) \.$", (ROOT / doc).read_text(), re.MULTILINE)) == {image}


def dockerignore_patterns() -> set[str]:
    lines = DOCKERIGNORE.read_text().splitlines()
    return {
        line.strip().removeprefix("**/").strip("/")
        for line in lines
        if line.strip() and not line.startswith("#")
    }


@pytest.mark.parametrize(
    "path",
    [
        ".git",
        ".venv",
        "results",
        "resources",
        ".snakemake",
        "__pycache__",
        ".pytest_cache",
        ".ruff_cache",
    ],
)
def test_dockerignore_keeps_environments_outputs_and_caches_out(path):
    assert path in dockerignore_patterns()

"""The Dockerfile, read as text: no Docker engine is needed (none runs on the development
machines or in CI). It must install what CI installs, on the Python minor version CI tests,
copy everything the workflow reads, and end as a non-root user; hadolint (`make lint`) checks
the rest of its form."""

import json
import re
import shlex
import sys
import tomllib

import pytest

from .conftest import ROOT
from .test_workflow import WORKFLOW_FILES

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


def test_installs_exactly_the_requirements_file_ci_installs(instructions):
    copies = [args.split() for keyword, args in instructions if keyword == "COPY"]
    # requirements.txt reads `-c lock.txt` beside it, so the whole folder goes in
    assert ["envs/", "envs/"] in copies or ["envs", "envs"] in copies
    installs = pip_installs(instructions)
    requirement_files = [
        words[i + 1] for words in installs for i, w in enumerate(words) if w in ("-r", "-c")
    ]
    assert requirement_files == ["envs/requirements.txt"]
    makefile = (ROOT / "Makefile").read_text()
    assert "-r envs/requirements.txt" in makefile  # the file `make test` and `make demo` install
    for words in installs:
        names = [w for w in words if not w.startswith("-")]
        if "-r" in words:
            assert names == ["envs/requirements.txt"], words
        else:  # only the project itself, without pulling in anything unpinned, its build
            # backend included (setuptools is pinned in requirements.txt)
            assert names == ["."] and "--no-deps" in words, f"unpinned install: pip install {words}"
            assert "--no-build-isolation" in words, f"unpinned build backend: pip install {words}"
    assert "--no-build-isolation -e ." in makefile


def test_layers_install_packages_before_the_code_arrives(instructions):
    def position(predicate) -> int:
        return next(i for i, (k, a) in enumerate(instructions) if predicate(k, a))

    requirements = position(lambda k, a: k == "RUN" and "envs/requirements.txt" in a)
    first_code = position(lambda k, a: k == "COPY" and not a.startswith("envs"))
    assert requirements < first_code, "a code change would reinstall every package"


def test_copies_everything_the_workflow_reads(instructions):
    sources = set()
    for keyword, args in instructions:
        if keyword == "COPY":
            words = [w for w in json_or_words(args) if not w.startswith("--")]
            sources.update(w.rstrip("/") for w in words[:-1])
    readme = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["readme"]
    needed = {*WORKFLOW_FILES, "src", "pyproject.toml", readme, "envs", "profiles"}
    assert needed <= sources, f"not copied: {sorted(needed - sources)}"
    for source in sources:
        assert (ROOT / source).exists(), f"COPY {source}: no such path in the repository"


def test_runs_as_a_non_root_user_at_the_end(instructions, variables):
    users = [substitute(args, variables) for keyword, args in instructions if keyword == "USER"]
    assert users, "no USER: the container would run as root"
    user = users[-1].split(":")[0]
    assert user not in ("root", "0", ""), users[-1]
    assert not user.startswith("$"), f"USER {users[-1]} has no default"


def test_environment_and_workdir_serve_the_workflow(instructions, variables):
    venv_bin = f"{variables['VIRTUAL_ENV']}/bin"
    assert variables["PATH"].split(":")[0] == venv_bin  # the rules call `python` from PATH
    workdirs = [args for keyword, args in instructions if keyword == "WORKDIR"]
    assert workdirs and workdirs[-1].startswith("/")
    snakemake_cmd = [json_or_words(a) for k, a in instructions if k == "CMD"][-1]
    assert snakemake_cmd[0] == "snakemake"
    for i, word in enumerate(snakemake_cmd):
        if word == "--configfile":
            assert (ROOT / snakemake_cmd[i + 1]).is_file()


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


def test_dockerignore_keeps_what_the_image_copies(instructions):
    patterns = dockerignore_patterns()
    for keyword, args in instructions:
        if keyword == "COPY":
            for source in json_or_words(args)[:-1]:
                assert source.rstrip("/") not in patterns, f"COPY {source} is in .dockerignore"


def test_image_records_the_commit_it_was_built_from(instructions, variables):
    """The image copies no .git: a build argument carries the commit into provenance.json."""
    from convnext_tinyimagenet.train.provenance import COMMIT_VARIABLE

    args = [parse_pairs(a) for k, a in instructions if k == "ARG"]
    assert any("GIT_COMMIT" in pairs for pairs in args), "no ARG GIT_COMMIT"
    envs = [parse_pairs(a) for k, a in instructions if k == "ENV"]
    assert {COMMIT_VARIABLE: "${GIT_COMMIT}"} in envs, f"no ENV {COMMIT_VARIABLE}=${{GIT_COMMIT}}"
    # after every RUN: a new commit must not invalidate the installed packages' layers
    keywords = [k for k, _ in instructions]
    last_run = max(i for i, k in enumerate(keywords) if k == "RUN")
    first_arg = min(i for i, (k, a) in enumerate(instructions) if k == "ARG" and "GIT_COMMIT" in a)
    assert first_arg > last_run

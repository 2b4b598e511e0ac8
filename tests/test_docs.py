"""The documents that travel with the artifact agree with the code: the citation file with
pyproject and the config, the license with pyproject, results/README.md with the rules."""

import re
import tomllib

import pytest
import yaml

from .conftest import CONFIG, ROOT

PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


@pytest.fixture(scope="module")
def citation() -> dict:
    return yaml.safe_load((ROOT / "CITATION.cff").read_text())


def test_citation_is_cff_and_names_this_version(citation):
    assert citation["cff-version"] == "1.2.0"
    for key in ("message", "title", "authors", "date-released"):
        assert citation[key], key
    assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", str(citation["date-released"]))
    assert citation["version"] == PYPROJECT["version"]
    assert citation["license"] == PYPROJECT["license"]["text"]


def test_citation_references_the_original_study_at_the_commit_config_pins(citation):
    published = yaml.safe_load(CONFIG.read_text())["published"]
    (original,) = citation["references"]
    assert original["repository-code"] == published["repository"]
    assert original["commit"] == published["commit"]


def test_license_is_the_one_pyproject_declares():
    text = (ROOT / "LICENSE").read_text()
    assert text.startswith(f"{PYPROJECT['license']['text']} License")
    assert re.search(r"^Copyright \(c\) \d{4} \S", text, re.MULTILINE)


def rule_outputs() -> set[str]:
    """Every file name a rule writes under the output folder, `{experiment}` as `<experiment>`,
    without its extension (the README lists `.png`/`.pdf` and `.md`/`.tex` pairs once)."""
    names = set()
    for rules in (ROOT / "rules").glob("*.smk"):
        for path in re.findall(r'f"\{OUT\}/([^"]+)"', rules.read_text()):
            if path.startswith("logs/"):
                continue
            name = re.sub(r"\{+experiment\}+", "<experiment>", path.rsplit("/", 1)[-1])
            if "." in name:
                names.add(name.rsplit(".", 1)[0])
            elif name.isupper():  # SHA256SUMS; other names without a dot are folders
                names.add(name)
    return names


def test_results_readme_describes_every_output():
    readme = (ROOT / "results" / "README.md").read_text()
    outputs = rule_outputs()
    assert {"experiment", "summary", "learning_curves", "SHA256SUMS"} <= outputs  # parsed at all
    # named in code spans: `summary.json`, `learning_curves`, `<experiment>/class_grid`
    missing = sorted(n for n in outputs if not re.search(rf"[`/]{re.escape(n)}[`.]", readme))
    assert not missing, f"results/README.md does not describe: {missing}"

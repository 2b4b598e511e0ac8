"""The documents that travel with the artifact agree with the code: the citation file with
pyproject and the config, the license with pyproject, results/README.md with the rules."""

import re
import tomllib

import pytest
import yaml

from convnext_tinyimagenet.run_folder import FILES

from .conftest import ROOT, STUDY

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
    published = yaml.safe_load(STUDY.read_text())["published"]
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
    names = {name.rsplit(".", 1)[0] for name in FILES.values()}  # a run folder's files
    for rules in (ROOT / "rules").glob("*.smk"):
        for path in re.findall(r'f"\{(?:OUT|RUN)\}/([^"{]+)"', rules.read_text()):
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


# --- README.md as a front page, the rest in docs/*.md -------------------------------------------

README = ROOT / "README.md"
DOCS = sorted((ROOT / "docs").glob("*.md"))
README_MAX_BYTES = 12_000
LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)\)")


def prose(text: str) -> str:
    """`text` without fenced code blocks, inline code and HTML comments: only real links remain."""
    text = re.sub(r"^```.*?^```", "", text, flags=re.MULTILINE | re.DOTALL)
    text = re.sub(r"<!--.*?-->", "", text, flags=re.DOTALL)
    return re.sub(r"`[^`\n]*`", "", text)


def relative_links(path) -> list[str]:
    """Every link target in `path` that is not a URL (http, https, mailto)."""
    return [t for t in LINK.findall(prose(path.read_text())) if not re.match(r"[a-z]+:", t)]


def anchors(path) -> set[str]:
    """GitHub's anchors for the headings of the Markdown file `path`."""
    seen: dict[str, int] = {}
    result = set()
    for heading in re.findall(r"^#{1,6}\s+(.+?)\s*#*\s*$", prose(path.read_text()), re.MULTILINE):
        text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link's text only
        slug = re.sub(r"[^\w\- ]", "", text.lower()).replace(" ", "-")
        count = seen.get(slug, 0)
        seen[slug] = count + 1
        result.add(slug if count == 0 else f"{slug}-{count}")
    return result


def test_readme_is_a_front_page_of_at_most_12_kb():
    size = len(README.read_bytes())
    assert size <= README_MAX_BYTES, f"README.md is {size} bytes; move detail to docs/"


def test_docs_exist():
    assert DOCS, "docs/*.md holds what the README links to"


@pytest.mark.parametrize("page", [README, *DOCS], ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_point_to_existing_files_and_headings(page):
    broken = []
    for target in relative_links(page):
        file, _, anchor = target.partition("#")
        linked = (page.parent / file).resolve() if file else page
        if not linked.exists():
            broken.append(f"{target} (no such file)")
        elif anchor and (linked.suffix != ".md" or anchor not in anchors(linked)):
            broken.append(f"{target} (no such heading)")
    assert not broken, f"{page.name}: broken links {broken}"


def test_anchor_slugs_follow_github():
    assert anchors(ROOT / "docs" / "reproducing.md") >= {"with-docker", "without-docker-venv--cuda"}


def test_every_doc_is_linked_from_the_readme():
    linked = {(ROOT / t.partition("#")[0]).resolve() for t in relative_links(README)}
    unlinked = [p.name for p in DOCS if p.resolve() not in linked]
    assert not unlinked, f"README.md does not link to docs/{unlinked}"

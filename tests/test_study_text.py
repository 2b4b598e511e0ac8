"""The "what made the difference" sentences of a study, from hand-built study records."""

import shutil
import subprocess

import pytest

from convnext_tinyimagenet import atomic
from convnext_tinyimagenet.report import study


def experiment(title, parent=None):
    """An experiment record; only its title and parent matter to the sentences."""
    return {"title": title, "from": parent, "runs": {}, "accuracy": None}


def seed(difference, p, newcombe=(0.0, 0.0)):
    return {"difference": difference, "counts": {}, "mcnemar_p": p, "newcombe95": list(newcombe)}


def over_seeds(n, mean, low=None, high=None):
    return {"n": n, "mean": mean, "sd": None if low is None else 0.1, "low": low, "high": high}


STUDY = {
    "experiments": {
        "base": experiment("Base_recipe (100% data)"),
        "up": experiment("Up & away", "base"),
        "down": experiment("Down", "base"),
        "single": experiment("Single seed", "base"),
        "orphan": experiment("Orphan", "not_run"),
    },
    "effects": {
        # two seeds, a t interval that excludes zero
        "up": {
            "reference": "base",
            "seeds": {"0": seed(1.0, 0.0004), "1": seed(1.5, 0.0123)},
            "difference": over_seeds(2, 1.25, 0.25, 2.25),
        },
        # two seeds, a t interval that includes zero
        "down": {
            "reference": "base",
            "seeds": {"0": seed(-0.4, 0.5), "1": seed(-0.5, 0.25)},
            "difference": over_seeds(2, -0.45, -1.3, 0.4),
        },
        "orphan": None,
        # one seed: its paired Newcombe interval
        "single": {
            "reference": "base",
            "seeds": {"3": seed(2.0, 0.03, (0.5, 3.5))},
            "difference": over_seeds(1, 2.0),
        },
    },
}


def test_one_sentence_per_effect_in_study_order():
    sentences = study.difference_sentences(STUDY)
    assert len(sentences) == 3
    assert [s.split(",")[0] for s in sentences] == ["Up & away", "Down", "Single seed"]
    assert not any("Orphan" in s for s in sentences)


def test_positive_effect_over_seeds_excludes_zero():
    sentence = study.difference_sentences(STUDY)[0]
    assert sentence == (
        "Up & away, against Base_recipe (100% data), on 2 seeds: raises accuracy by 1.25 points, "
        "95 % interval [+0.25, +2.25] points (t 95 % over 2 seeds); the interval excludes zero: "
        "larger than the seed-to-seed noise. McNemar p < 0.001 (seed 0), p = 0.012 (seed 1)."
    )


def test_negative_effect_includes_zero():
    sentence = study.difference_sentences(STUDY)[1]
    assert "on 2 seeds: lowers accuracy by 0.45 points" in sentence
    assert "[-1.30, +0.40] points (t 95 % over 2 seeds)" in sentence
    assert (
        "the interval includes zero: not distinguishable from no effect at this number of seeds"
        in sentence
    )
    assert "McNemar p = 0.500 (seed 0), p = 0.250 (seed 1)." in sentence


def test_one_seed_uses_its_newcombe_interval():
    sentence = study.difference_sentences(STUDY)[2]
    assert "on 1 seed: raises accuracy by 2.00 points" in sentence
    assert "[+0.50, +3.50] points (paired Newcombe 95 %, seed 3)" in sentence
    assert "the interval excludes zero: larger than the test-set sampling noise" in sentence
    assert sentence.endswith("McNemar p = 0.030 (seed 3).")


@pytest.mark.parametrize("mean", [0.0, -0.004, 0.004])
def test_an_effect_that_rounds_to_zero_leaves_accuracy_unchanged(mean):
    effect = STUDY["effects"]["down"] | {"difference": over_seeds(2, mean, -1.0, 1.0)}
    record = STUDY | {"effects": {"down": effect}}
    (sentence,) = study.difference_sentences(record)
    assert "leaves accuracy unchanged (0.00 points)" in sentence


def test_without_effects_one_sentence_says_so():
    record = STUDY | {"effects": {"orphan": None}}
    assert study.difference_sentences(record) == [study.NO_EFFECTS]
    assert study.difference_tex(record) == study.NO_EFFECTS + "\n"
    assert study.difference_markdown(record) == study.NO_EFFECTS + "\n"


def test_tex_is_an_escaped_itemize():
    tex = study.difference_tex(STUDY)
    assert tex.startswith("\\begin{itemize}\n") and tex.endswith("\\end{itemize}\n")
    assert tex.count("\\item ") == 3
    assert r"Base\_recipe (100\% data)" in tex
    assert r"Up \& away" in tex
    assert r"95 \% interval" in tex
    assert r"McNemar p \textless{} 0.001" in tex


def test_write_difference_section_writes_both(tmp_path):
    path = atomic.write_json(tmp_path / "study.json", STUDY)
    tex, md = tmp_path / "out" / "difference.tex", tmp_path / "out" / "difference.md"
    assert study.write_difference_section(path, tex, md) == [tex, md]
    assert tex.read_text() == study.difference_tex(STUDY)
    lines = md.read_text().splitlines()
    assert lines == [f"- {s}" for s in study.difference_sentences(STUDY)]


@pytest.mark.skipif(shutil.which("latexmk") is None, reason="latexmk not installed")
def test_fragment_compiles(tmp_path):
    (tmp_path / "frag.tex").write_text(study.difference_tex(STUDY))
    (tmp_path / "none.tex").write_text(study.difference_tex(STUDY | {"effects": {}}))
    (tmp_path / "doc.tex").write_text(
        "\\documentclass{article}\n\\usepackage{booktabs}\n\\begin{document}\n"
        "\\input{frag}\n\\input{none}\n\\end{document}\n"
    )
    command = ["latexmk", "-pdf", "-interaction=nonstopmode", "-halt-on-error", "doc.tex"]
    result = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout[-3000:]
    assert (tmp_path / "doc.pdf").is_file()

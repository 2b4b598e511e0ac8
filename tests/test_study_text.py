"""The "One change at a time" sentences of a study, from hand-built study records: one case per
sentence template, each with the record that triggers it."""

import shutil
import subprocess

import pytest

from convnext_tinyimagenet import atomic
from convnext_tinyimagenet.report import study


def experiment(title, parent=None, n=1, sd=None):
    """An experiment record; its title, parent and spread over seeds matter to the sentences."""
    return {"title": title, "from": parent, "runs": {}, "accuracy": {"n": n, "sd": sd}}


def effect(difference, interval, *, seeds=("0", "1"), tost=(-9.0, 9.0), margin=0.5, p=0.5):
    """A variant's effect against "base" with its Holm interval and TOST interval; the verdicts
    are read from the printed bounds, as :func:`study.adjust` reads them."""
    excludes = study.printed(interval[0]) > 0 or study.printed(interval[1]) < 0
    within = margin is not None and -margin < study.printed(tost[0])
    within = within and study.printed(tost[1]) < margin
    per_seed = {s: {"difference": difference, "mcnemar_p": 0.0004} for s in seeds}
    return {
        "reference": "base",
        "seeds": per_seed,
        "difference": difference,
        "bootstrap": {"p_greater": 0.9876},
        "holm": {"p": p, "level": 0.975, "interval": list(interval), "excludes_zero": excludes},
        "equivalence": {
            "margin": margin,
            "level": 0.95,
            "interval": list(tost),
            "within_margin": within,
        },
    }


def record(effect_record):
    return {
        "experiments": {
            "base": experiment("Base_recipe (100% data)", n=2, sd=0.2),
            "up": experiment("Up & away", "base"),
        },
        "effects": {"up": effect_record},
        "alpha": 0.05,
        "family": ["up"],
        "decomposition": {"contributions": {}, "declared": [], "gap": None},
        "power": None,
    }


CASES = {
    "raises beyond seeds and images": (
        effect(1.25, (0.25, 2.25)),
        "variant − parent +1.25 points, Holm-adjusted 97.50 % interval [+0.25, +2.25] "
        "(Holm p 0.500), P(variant > parent) 0.988; the adjusted interval excludes zero: the "
        "change raises accuracy beyond the noise of seeds and images.",
    ),
    "lowers beyond the image noise of one seed": (
        effect(-2.0, (-3.5, -0.5), seeds=("3",)),
        "the adjusted interval excludes zero: the change lowers accuracy beyond the image noise "
        "of this one seed (its seed-to-seed noise is not measured).",
    ),
    "beyond the noise and within the margin": (
        effect(0.2, (0.1, 0.3), tost=(0.12, 0.28)),
        "the change raises accuracy beyond the noise of seeds and images, by no more than 0.50 "
        "points: its 95.00 % interval [+0.12, +0.28] lies within ±0.50 points (TOST).",
    ),
    "no larger than the margin": (
        effect(0.05, (-0.3, 0.4), tost=(-0.25, 0.35)),
        "no larger than 0.50 points: its 95.00 % interval [-0.25, +0.35] lies within ±0.50 "
        "points (TOST).",
    ),
    "inconclusive beyond the margin": (
        effect(-0.45, (-1.3, 0.4), tost=(-1.2, 0.3)),
        "inconclusive: the adjusted interval includes zero and the TOST interval [-1.20, +0.30] "
        "reaches beyond ±0.50 points.",
    ),
    "inconclusive without a margin": (
        effect(0.05, (-0.3, 0.4), tost=(-0.25, 0.35), margin=None),
        "inconclusive: the adjusted interval includes zero, and no equivalence margin is "
        "declared, so nothing says the effect is small.",
    ),
    # a lower bound of +0.004 prints as +0.00: the printed interval includes zero, and so does
    # the verdict
    "a bound that prints as zero": (
        effect(0.5, (0.004, 1.0), tost=(-0.1, 0.9)),
        "[+0.00, +1.00] (Holm p 0.500), P(variant > parent) 0.988; inconclusive: the adjusted "
        "interval includes zero and the TOST interval [-0.10, +0.90] reaches beyond ±0.50 points.",
    ),
    # and a TOST bound of 0.496 prints as 0.50, which is not within ±0.50
    "a TOST bound that prints on the margin": (
        effect(0.1, (-0.3, 0.5), tost=(-0.2, 0.496)),
        "inconclusive: the adjusted interval includes zero and the TOST interval [-0.20, +0.50] "
        "reaches beyond ±0.50 points.",
    ),
}


@pytest.mark.parametrize("case", CASES)
def test_each_template_on_the_record_that_triggers_it(case):
    effect_record, expected = CASES[case]
    sentence, *_ = study.difference_sentences(record(effect_record))
    assert expected in sentence
    assert sentence.startswith("Up & away, against Base_recipe (100% data), on seed")
    assert "unchanged" not in sentence
    # the claim follows the printed interval: never "raises" / "lowers" across zero
    claims = "excludes zero" in sentence
    assert claims == effect_record["holm"]["excludes_zero"]


def test_per_seed_differences_end_the_sentence():
    sentence, *_ = study.difference_sentences(record(effect(1.25, (0.25, 2.25))))
    assert sentence.startswith("Up & away, against Base_recipe (100% data), on seeds 0, 1: ")
    assert sentence.endswith(
        "Per seed: +1.25 (seed 0, McNemar p < 0.001), +1.25 (seed 1, McNemar p < 0.001)."
    )


def test_the_family_sentence_names_its_size():
    sentences = study.difference_sentences(record(effect(1.25, (0.25, 2.25))))
    assert sentences[1] == (
        "Holm's adjustment runs over these 1 effects at a family-wise 0.05; each interval is at "
        "the level Holm's step-down gives it, and a verdict reads the bounds as printed."
    )


DECOMPOSITION = {
    "recipe": "base",
    "against": "up",
    "declared": ["up", "other"],
    "contributions": {"up": -1.25},
    "sum": -1.25,
    "gap": 3.5,
}


@pytest.mark.parametrize(
    ("published", "expected"),
    [
        (3.69, "is +3.50 points in this build and +3.69 points as published."),
        (None, "is +3.50 points in this build."),
    ],
)
def test_the_decomposition_sentence(published, expected):
    study_record = record(effect(1.25, (0.25, 2.25)))
    study_record["decomposition"] = DECOMPOSITION | {"published_gap": published}
    sentence = study.decomposition_sentence(study_record)
    assert sentence.startswith(
        "Left out one at a time, 1 of the 2 changes declared (up) contribute -1.25 points "
        "together (each: base − variant); Base_recipe (100% data) minus Up & away "
    )
    assert expected in sentence
    assert sentence.endswith(
        "need not add up to the gap: changes interact, and a change can matter only beside another."
    )


def test_no_decomposition_without_leave_one_out_runs():
    assert study.decomposition_sentence(record(effect(1.0, (0.5, 1.5)))) is None


@pytest.mark.parametrize(
    ("seed_sd", "expected"),
    [
        (
            0.25,
            "with 3 seeds per effect, a pooled seed-to-seed SD of 0.25 points and an image "
            "noise of 0.10 points",
        ),
        (
            None,
            "with 3 seeds per effect, no measured seed-to-seed noise (one seed per "
            "experiment) and an image noise of 0.10 points",
        ),
    ],
)
def test_the_power_sentence(seed_sd, expected):
    study_record = record(effect(1.0, (0.5, 1.5)))
    study_record["power"] = {
        "smallest_effect": 1.234,
        "power": 0.8,
        "seeds": 3,
        "seed_sd": seed_sd,
        "image_sd": 0.1,
    }
    sentence = study.power_sentence(study_record)
    assert expected in sentence
    assert "80 % power at Holm's strictest level (0.05 / 1) is about 1.23 points" in sentence


def test_without_effects_one_sentence_says_so_and_the_selection_follows():
    study_record = record(None)
    no_effects, selection = study.difference_sentences(study_record)
    assert no_effects == study.NO_EFFECTS
    assert selection.startswith("Selection bias is not measured in this build")
    assert study.difference_markdown(study_record) == f"- {no_effects}\n- {selection}\n"
    assert study.difference_tex(study_record).count("\\item ") == 2


def test_tex_is_an_escaped_itemize():
    tex = study.difference_tex(record(effect(1.25, (0.25, 2.25))))
    assert tex.startswith("\\begin{itemize}\n") and tex.endswith("\\end{itemize}\n")
    assert tex.count("\\item ") == 3  # the effect, the family, the selection bias
    assert r"Base\_recipe (100\% data)" in tex
    assert r"Up \& away" in tex
    assert r"97.50 \% interval" in tex


def test_write_difference_section_writes_both(tmp_path):
    study_record = record(effect(1.25, (0.25, 2.25)))
    path = atomic.write_json(tmp_path / "study.json", study_record)
    tex, md = tmp_path / "out" / "difference.tex", tmp_path / "out" / "difference.md"
    assert study.write_difference_section(path, tex, md) == [tex, md]
    assert tex.read_text() == study.difference_tex(study_record)
    lines = md.read_text().splitlines()
    assert lines == [f"- {s}" for s in study.difference_sentences(study_record)]


@pytest.mark.skipif(shutil.which("latexmk") is None, reason="latexmk not installed")
def test_fragment_compiles(tmp_path):
    study_record = record(effect(-0.45, (-1.3, 0.4), tost=(-1.2, 0.3)))
    (tmp_path / "frag.tex").write_text(study.difference_tex(study_record))
    (tmp_path / "none.tex").write_text(study.difference_tex(record(None)))
    (tmp_path / "doc.tex").write_text(
        "\\documentclass{article}\n\\usepackage{booktabs}\n\\begin{document}\n"
        "\\input{frag}\n\\input{none}\n\\end{document}\n"
    )
    command = ["latexmk", "-pdf", "-interaction=nonstopmode", "-halt-on-error", "doc.tex"]
    result = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout[-3000:]
    assert (tmp_path / "doc.pdf").is_file()

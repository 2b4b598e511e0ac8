"""The ablation study over runs: each experiment's accuracy over its seeds, and each variant's
effect (variant − its `from` parent, same seed paired) with McNemar's exact test and intervals.

The data model is one run per (experiment, seed); with one seed today, an interval over seeds is
None and the table and figure fall back on the one seed's paired Newcombe interval.
`summarize_study` writes study.json; the ablation table and forest plot read only that file.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from convnext_tinyimagenet import atomic
from convnext_tinyimagenet.errors import ArtifactError
from convnext_tinyimagenet.numbers import NA, pct, signed
from convnext_tinyimagenet.report.figures import save_figure
from convnext_tinyimagenet.report.tables import latex_escape, save_table
from convnext_tinyimagenet.run_folder import read_predictions, read_summary
from convnext_tinyimagenet.stats import (
    mcnemar_exact_p,
    mean_interval,
    newcombe_paired_difference,
    paired_counts,
)

# experiment -> seed -> {"summary": path, "predictions": path}
Runs = Mapping[str, Mapping[int, Mapping[str, Path]]]


class StudyError(ArtifactError):
    """Two runs that cannot be paired, in one line."""


def paired_correct(variant: pd.DataFrame, reference: pd.DataFrame, what: str) -> pd.DataFrame:
    """Both runs' `correct` per image, merged on `image_id` (columns `variant`, `reference`).

    Raises StudyError when the image sets differ or an id repeats: the pairing would be wrong.
    `what` names the pair in the message.
    """
    ids = {"variant": variant["image_id"], "reference": reference["image_id"]}
    repeated = {role: int(col.duplicated().sum()) for role, col in ids.items()}
    if any(repeated.values()):
        raise StudyError(f"{what}: repeated image ids ({repeated}); cannot pair the predictions")
    only_variant = len(set(ids["variant"]) - set(ids["reference"]))
    only_reference = len(set(ids["reference"]) - set(ids["variant"]))
    if only_variant or only_reference:
        raise StudyError(
            f"{what}: the predictions cover different images ({only_variant} only in the "
            f"variant, {only_reference} only in the reference); rerun both on the same data"
        )
    merged = variant[["image_id", "correct"]].merge(
        reference[["image_id", "correct"]], on="image_id", suffixes=("_variant", "_reference")
    )
    return merged.rename(columns={"correct_variant": "variant", "correct_reference": "reference"})


def seed_effect(variant: pd.DataFrame, reference: pd.DataFrame, what: str) -> dict:
    """One seed's effect from two predictions frames: the difference (pp, variant − reference),
    the paired 2x2 counts, McNemar's exact p and the paired Newcombe 95 % interval."""
    merged = paired_correct(variant, reference, what)
    counts = paired_counts(merged["variant"].to_numpy(), merged["reference"].to_numpy())
    # (a + b) / n − (a + c) / n = (b − c) / n: only the discordant images move the difference
    difference = 100.0 * (counts["first_only"] - counts["second_only"]) / counts["n"]
    return {
        "difference": difference,
        "counts": counts,
        "mcnemar_p": mcnemar_exact_p(counts["first_only"], counts["second_only"]),
        "newcombe95": list(newcombe_paired_difference(counts)),
    }


def experiment_record(runs: Mapping[int, Mapping[str, Path]], title: str, parent: str | None):
    """An experiment's runs (seed -> exact and batch-mean accuracy) and their means over seeds."""
    summaries = {seed: read_summary(files["summary"]) for seed, files in sorted(runs.items())}
    accuracies = {
        str(seed): {key: s[key] for key in ("accuracy", "accuracy_batch_mean")}
        for seed, s in summaries.items()
    }
    return {
        "title": title,
        "from": parent,
        "runs": accuracies,
        "accuracy": mean_interval([s["accuracy"] for s in summaries.values()]),
        "accuracy_batch_mean": mean_interval(
            [s["accuracy_batch_mean"] for s in summaries.values()]
        ),
    }


def effect_record(name: str, parent: str, runs: Runs) -> dict:
    """A variant's effect over the seeds it shares with its parent, each seed paired."""
    seeds = sorted(set(runs[name]) & set(runs[parent]))
    if not seeds:
        raise StudyError(f"{name} and its reference {parent} share no seed; nothing to pair")
    per_seed = {
        str(seed): seed_effect(
            read_predictions(runs[name][seed]["predictions"]),
            read_predictions(runs[parent][seed]["predictions"]),
            f"{name} vs {parent}, seed {seed}",
        )
        for seed in seeds
    }
    differences = [effect["difference"] for effect in per_seed.values()]
    return {"reference": parent, "seeds": per_seed, "difference": mean_interval(differences)}


def study(runs: Runs, parents: Mapping[str, str | None], titles: Mapping[str, str]) -> dict:
    """The study of `runs` (experiment -> seed -> its files), in their order. A variant whose
    parent does not run has no effect (None): there is nothing to pair it with."""
    experiments = {
        name: experiment_record(seeds, titles.get(name, name), parents.get(name))
        for name, seeds in runs.items()
    }
    effects = {
        name: effect_record(name, parent, runs) if parent in runs else None
        for name, parent in parents.items()
        if name in runs and parent is not None
    }
    return {"experiments": experiments, "effects": effects}


def summarize_study(
    runs: Runs, path: Path, *, parents: Mapping[str, str | None], titles: Mapping[str, str]
) -> Path:
    """Write the study of `runs` (see :func:`study`) to `path` as JSON."""
    return atomic.write_json(Path(path), study(runs, parents, titles))


def read_study(path: Path) -> dict:
    """Read a study.json written by :func:`summarize_study`."""
    return json.loads(Path(path).read_text(encoding="utf-8"))


# --------------------------------------------------------------------------- table
def p_value(p: float) -> str:
    """A p-value to three decimals; below 0.001 as "< 0.001"."""
    return "< 0.001" if p < 0.001 else f"{p:.3f}"


def effect_interval(effect: Mapping) -> tuple[float, float, str]:
    """The interval a variant's effect is shown with, and its label: the t-interval over seeds
    when there are several, else the one seed's paired Newcombe interval."""
    difference = effect["difference"]
    if difference["low"] is not None:
        return difference["low"], difference["high"], f"t 95 % over {difference['n']} seeds"
    (seed, only), *_ = effect["seeds"].items()
    low, high = only["newcombe95"]
    return low, high, f"paired Newcombe 95 %, seed {seed}"


def _accuracy_cell(accuracy: Mapping) -> str:
    """The mean ± sd over seeds and its t-interval within the accuracies possible, 0 to 100 %
    (with few seeds the interval can reach past them); one seed: its value."""
    if accuracy["low"] is None:
        return pct(accuracy["mean"])
    low, high = max(0.0, accuracy["low"]), min(100.0, accuracy["high"])
    return f"{pct(accuracy['mean'])} ± {pct(accuracy['sd'])} [{pct(low)}, {pct(high)}]"


def _effect_cells(effect: Mapping | None) -> dict[str, str]:
    if effect is None:
        return {"Effect (pp)": NA, "95 % interval (pp)": NA, "Interval": NA, "McNemar p": NA}
    low, high, label = effect_interval(effect)
    seeds = effect["seeds"]
    if len(seeds) == 1:
        p = p_value(next(iter(seeds.values()))["mcnemar_p"])
    else:
        p = "; ".join(f"seed {seed}: {p_value(e['mcnemar_p'])}" for seed, e in seeds.items())
    return {
        "Effect (pp)": signed(effect["difference"]["mean"]),
        "95 % interval (pp)": f"[{signed(low)}, {signed(high)}]",
        "Interval": label,
        "McNemar p": p,
    }


def ablation_frame(study: Mapping) -> pd.DataFrame:
    """One row per experiment: title, parent, seeds, exact and batch-mean accuracy (mean ± sd
    [t 95 %] over seeds, or the one value), its effect against its parent with the interval and
    McNemar's p."""
    rows = []
    for name, experiment in study["experiments"].items():
        row = {
            "Experiment": experiment["title"],
            "Variant of": experiment["from"] or NA,
            "Seeds": ", ".join(experiment["runs"]),
            "Accuracy (%)": _accuracy_cell(experiment["accuracy"]),
            "Batch mean (%)": _accuracy_cell(experiment["accuracy_batch_mean"]),
        }
        rows.append(row | _effect_cells(study["effects"].get(name)))
    return pd.DataFrame(rows)


def make_ablation_table(study: Path, md: Path, tex: Path) -> list[Path]:
    """The ablation table (:func:`ablation_frame`) of a study.json."""
    frame = ablation_frame(read_study(study))
    return save_table(frame, md, tex, align=r"p{0.22\linewidth}llrrrrp{0.14\linewidth}r")


# --------------------------------------------------------------------------- figure
def ablation_effects_figure(study: Mapping) -> Figure:
    """A forest plot: one row per variant (its title), its effect in points with its interval as
    a bar (see :func:`effect_interval`), and a line at no effect."""
    rows = [
        (study["experiments"][name]["title"], effect)
        for name, effect in study["effects"].items()
        if effect is not None
    ]
    fig = Figure(figsize=(9, 1.4 + 0.45 * max(1, len(rows))), layout="constrained")
    ax = fig.subplots()
    ax.axvline(0, color="black", linewidth=0.8)
    if not rows:
        ax.text(
            0.5, 0.5, "no variant with a running reference", ha="center", transform=ax.transAxes
        )
    for y, (_, effect) in enumerate(rows):
        low, high, _ = effect_interval(effect)
        ax.plot([low, high], [y, y], color="tab:blue", linewidth=2)
        ax.plot(effect["difference"]["mean"], y, "o", color="tab:blue")
    kinds = sorted({effect_interval(effect)[2].split(",")[0] for _, effect in rows})
    ax.set_yticks(np.arange(len(rows)), [title for title, _ in rows])
    ax.set_ylim(len(rows) - 0.5, -0.5)  # config order, top down
    ax.set_xlabel("variant − reference, accuracy (points)")
    ax.set_title(f"effect of each change, {'; '.join(kinds) or 'no'} interval", fontsize="medium")
    ax.grid(axis="x", alpha=0.3)
    return fig


def plot_ablation_effects(study: Path, png: Path, pdf: Path, *, dpi: int) -> list[Path]:
    """The forest plot of a study.json's effects."""
    return save_figure(ablation_effects_figure(read_study(study)), png, pdf, dpi)


# --------------------------------------------------------------------------- sentences
NO_EFFECTS = "No variant ran beside its reference, so no change can be measured."


def _direction(mean: float) -> str:
    """The effect's direction and size in words, to the two decimals of :func:`signed`."""
    if signed(mean) == "+0.00":
        return "leaves accuracy unchanged (0.00 points)"
    verb = "raises" if mean > 0 else "lowers"
    return f"{verb} accuracy by {pct(abs(mean))} points"


def _verdict(low: float, high: float, seeds: int) -> str:
    """Whether the interval excludes zero, and what that means at this number of seeds."""
    if low <= 0 <= high:
        return (
            "the interval includes zero: not distinguishable from no effect at this number of seeds"
        )
    if seeds > 1:
        return "the interval excludes zero: larger than the seed-to-seed noise"
    return (
        "the interval excludes zero: larger than the test-set sampling noise of this one seed "
        "(the seed-to-seed noise is not measured)"
    )


def _mcnemar(seeds: Mapping[str, Mapping]) -> str:
    """Each seed's McNemar p, e.g. "McNemar p = 0.012 (seed 0), p < 0.001 (seed 1)"."""
    parts = []
    for seed, effect in seeds.items():
        p = p_value(effect["mcnemar_p"])
        parts.append(f"p {p if p.startswith('<') else '= ' + p} (seed {seed})")
    return "McNemar " + ", ".join(parts)


def difference_sentence(study: Mapping, name: str) -> str:
    """One plain sentence on variant `name`'s effect against its reference (see
    :func:`difference_sentences`)."""
    effect = study["effects"][name]
    titles = {key: experiment["title"] for key, experiment in study["experiments"].items()}
    low, high, label = effect_interval(effect)
    n = len(effect["seeds"])
    return (
        f"{titles[name]}, against {titles[effect['reference']]}, on {n} "
        f"seed{'' if n == 1 else 's'}: {_direction(effect['difference']['mean'])}, "
        f"95 % interval [{signed(low)}, {signed(high)}] points ({label}); "
        f"{_verdict(low, high, n)}. {_mcnemar(effect['seeds'])}."
    )


def difference_sentences(study: Mapping) -> list[str]:
    """What made the difference: a sentence per variant that ran beside its reference, in study
    order (variants without an effect are left out); one sentence saying so when none did."""
    names = [name for name, effect in study["effects"].items() if effect is not None]
    return [difference_sentence(study, name) for name in names] or [NO_EFFECTS]


def difference_tex(study: Mapping) -> str:
    """:func:`difference_sentences` as LaTeX: an itemize list, or a paragraph without effects."""
    sentences = [latex_escape(sentence) for sentence in difference_sentences(study)]
    if sentences == [latex_escape(NO_EFFECTS)]:
        return sentences[0] + "\n"
    # "{}" keeps a leading "[" from reading as \item's optional argument
    items = "".join(f"  \\item {{}}{sentence}\n" for sentence in sentences)
    return f"\\begin{{itemize}}\n{items}\\end{{itemize}}\n"


def difference_markdown(study: Mapping) -> str:
    """:func:`difference_sentences` as Markdown: a bullet list, or a paragraph without effects."""
    sentences = difference_sentences(study)
    if sentences == [NO_EFFECTS]:
        return NO_EFFECTS + "\n"
    return "".join(f"- {sentence}\n" for sentence in sentences)


def write_difference_section(study: Path, tex: Path, md: Path) -> list[Path]:
    """The "what made the difference" sentences of a study.json, as LaTeX and Markdown."""
    record = read_study(study)
    return [
        atomic.write_text(tex, difference_tex(record)),
        atomic.write_text(md, difference_markdown(record)),
    ]

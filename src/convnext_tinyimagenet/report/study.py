"""The ablation study over runs: each experiment's accuracy over its seeds, and each variant's
effect (variant − its `from` parent, the same seeds and images paired).

The primary interval of an effect is a two-way bootstrap over seeds and images
(:func:`stats.two_way_bootstrap`), adjusted by Holm over the family of effects; "no larger than
M points" needs an equivalence test (TOST) at the configured margin. Per-seed differences,
McNemar's exact p and the paired Newcombe interval stay as secondary numbers. Verdicts are
decided on the bounds as printed (two decimals). `summarize_study` writes study.json; the
ablation table, the forest plot and the sentences read only that file.
"""

from __future__ import annotations

import json
import math
import statistics
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
    bootstrap_p,
    holm,
    mcnemar_exact_p,
    mean_interval,
    newcombe_paired_difference,
    paired_counts,
    percentile_interval,
    two_way_bootstrap,
)

# experiment -> seed -> {"summary": path, "predictions": path}
Runs = Mapping[str, Mapping[int, Mapping[str, Path]]]
POWER = 0.8  # the power at which the smallest detectable effect is stated


class StudyError(ArtifactError):
    """Two runs that cannot be paired, in one line."""


def paired_correct(variant: pd.DataFrame, reference: pd.DataFrame, what: str) -> pd.DataFrame:
    """Both runs' `correct` per image, merged on `image_id` and sorted by it (columns
    `image_id`, `variant`, `reference`).

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
    merged = merged.rename(columns={"correct_variant": "variant", "correct_reference": "reference"})
    return merged.sort_values("image_id", ignore_index=True)


def seed_effect(merged: pd.DataFrame) -> dict:
    """One seed's effect from :func:`paired_correct`: the difference (pp, variant − reference),
    the paired 2x2 counts, McNemar's exact p and the paired Newcombe 95 % interval."""
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
        "selection": selection_record(summaries),
    }


def selection_record(summaries: Mapping[int, Mapping]) -> dict | None:
    """For runs whose epoch was chosen on held-out training images: per seed, that epoch and
    its validation accuracy, the epoch choosing on the validation images would have kept (in
    the same run) and its accuracy, and the difference, that choice's optimism; their mean.
    None for runs that chose on the validation images."""
    if not all("validation_selection" in s for s in summaries.values()):
        return None
    seeds = {
        str(seed): {
            "holdout_epoch": s["best_epoch"],
            "holdout_accuracy": s["accuracy"],
            "validation_epoch": s["validation_selection"]["epoch"],
            "validation_accuracy": s["validation_selection"]["accuracy"],
            "optimism": s["validation_selection"]["accuracy"] - s["accuracy"],
        }
        for seed, s in summaries.items()
    }
    return {"seeds": seeds, "optimism": float(np.mean([s["optimism"] for s in seeds.values()]))}


def paired_seeds(name: str, parent: str, runs: Runs) -> dict[int, pd.DataFrame]:
    """Each seed both runs share -> :func:`paired_correct`; every seed on the same images."""
    seeds = sorted(set(runs[name]) & set(runs[parent]))
    if not seeds:
        raise StudyError(f"{name} and its reference {parent} share no seed; nothing to pair")
    frames = {
        seed: paired_correct(
            read_predictions(runs[name][seed]["predictions"]),
            read_predictions(runs[parent][seed]["predictions"]),
            f"{name} vs {parent}, seed {seed}",
        )
        for seed in seeds
    }
    first = frames[seeds[0]]["image_id"]
    for seed, frame in frames.items():
        if not frame["image_id"].equals(first):
            raise StudyError(
                f"{name} vs {parent}: seed {seed} covers other images than seed {seeds[0]}; "
                "every seed must be evaluated on the same validation images"
            )
    return frames


def effect_record(name: str, parent: str, runs: Runs, bootstrap: Mapping) -> tuple[dict, list]:
    """A variant's effect over the seeds it shares with its parent, and its bootstrap draws.

    The record holds the per-seed effects, both runs' mean accuracy over exactly those seeds
    (so that they subtract to the effect), and the unadjusted bootstrap summary.
    """
    frames = paired_seeds(name, parent, runs)
    per_seed = {str(seed): seed_effect(frame) for seed, frame in frames.items()}
    differences = np.stack(
        [
            frame["variant"].to_numpy(int) - frame["reference"].to_numpy(int)
            for frame in frames.values()
        ]
    )
    result = two_way_bootstrap(differences, bootstrap["replicates"], bootstrap["seed"])
    n = differences.shape[1]
    accuracy = {
        role: 100.0 * float(np.mean([frame[role].sum() / n for frame in frames.values()]))
        for role in ("variant", "reference")
    }
    record = {
        "reference": parent,
        "seeds": per_seed,
        "accuracy": accuracy,
        "difference": result["mean"],
        "bootstrap": {
            "interval95": list(percentile_interval(result["draws"], 0.95)),
            "p": bootstrap_p(result["draws"]),
            "p_greater": float(np.mean(result["draws"] > 0)),
            "image_var": result["image_var"],
            "seed_var": result["seed_var"],
        },
    }
    return record, result["draws"]


def printed(value: float) -> float:
    """A bound as the tables and sentences print it (two decimals): verdicts use this."""
    return float(signed(value))


def adjust(effects: Mapping[str, dict], draws: Mapping[str, list], settings: Mapping) -> None:
    """Holm over the family of `effects` (in place): each effect's adjusted p, the interval at
    the level that Holm's step-down applies to it (it excludes zero exactly when the adjusted
    p is below alpha), the TOST interval at 1 − 2 alpha / m and the verdicts on their bounds."""
    alpha, margin, m = settings["alpha"], settings["equivalence_margin_pp"], len(effects)
    raw = [effect["bootstrap"]["p"] for effect in effects.values()]
    for (name, effect), p, adjusted in zip(effects.items(), raw, holm(raw), strict=True):
        # Holm multiplies p by (m − i + 1), or carries a larger earlier product: the level
        # 1 − alpha p / adjusted makes "interval excludes 0" the same as "adjusted < alpha"
        share = p / adjusted if adjusted > 0 else 1 / m
        level = 1 - alpha * min(1.0, share)
        low, high = percentile_interval(draws[name], level)
        tost = percentile_interval(draws[name], 1 - 2 * alpha / m)
        effect["holm"] = {
            "p": adjusted,
            "level": level,
            "interval": [low, high],
            "excludes_zero": printed(low) > 0 or printed(high) < 0,
        }
        within = margin is not None and -margin < printed(tost[0]) and printed(tost[1]) < margin
        effect["equivalence"] = {
            "margin": margin,
            "level": 1 - 2 * alpha / m,
            "interval": list(tost),
            "within_margin": within,
        }


def decomposition(study: Mapping, decompose: Mapping, published_gap: float | None) -> dict:
    """The leave-one-out contributions (recipe − variant) of `decompose`'s variants that ran,
    their sum, and the gap between its recipe and the recipe it is compared with."""
    experiments, effects = study["experiments"], study["effects"]
    recipe, against = decompose["recipe"], decompose["against"]
    ran = [name for name in decompose["leave_one_out"] if effects.get(name)]
    contributions = {name: -effects[name]["difference"] for name in ran}
    gap = None
    if recipe in experiments and against in experiments:
        gap = experiments[recipe]["accuracy"]["mean"] - experiments[against]["accuracy"]["mean"]
    return {
        "recipe": recipe,
        "against": against,
        "declared": list(decompose["leave_one_out"]),
        "contributions": contributions,
        "sum": sum(contributions.values()) if ran else None,
        "gap": gap,
        "published_gap": published_gap,
    }


def power(study: Mapping, alpha: float) -> dict | None:
    """The smallest effect the design detects with :data:`POWER` at Holm's strictest level
    (alpha / m, two-sided): (z(1 − alpha / 2m) + z(POWER)) x SE. SE² is the variance of a
    paired difference's mean over k seeds, 2 s² / k with s² the seed variance of an accuracy
    pooled over the experiments, plus the image part shared by the seeds (the median over the
    effects). Without a seed spread (one seed everywhere) the seed part is left out and said
    to be. None without effects."""
    effects = [effect for effect in study["effects"].values() if effect]
    if not effects:
        return None
    seeds = max(len(effect["seeds"]) for effect in effects)
    spread = [e["accuracy"] for e in study["experiments"].values() if e["accuracy"]["n"] > 1]
    dof = sum(a["n"] - 1 for a in spread)
    pooled = sum((a["n"] - 1) * a["sd"] ** 2 for a in spread) / dof if dof else None
    image_var = float(np.median([effect["bootstrap"]["image_var"] for effect in effects]))
    se = math.sqrt(image_var + (2 * pooled / seeds if pooled is not None else 0.0))
    z = statistics.NormalDist().inv_cdf
    return {
        "smallest_effect": (z(1 - alpha / (2 * len(effects))) + z(POWER)) * se,
        "power": POWER,
        "seeds": seeds,
        "seed_sd": None if pooled is None else math.sqrt(pooled),
        "image_sd": math.sqrt(image_var),
    }


def study(
    runs: Runs,
    parents: Mapping[str, str | None],
    titles: Mapping[str, str],
    settings: Mapping,
    published_gap: float | None = None,
) -> dict:
    """The study of `runs` (experiment -> seed -> its files), in their order; `settings` is the
    config's `study` section. A variant whose parent does not run has no effect (None)."""
    experiments = {
        name: experiment_record(seeds, titles.get(name, name), parents.get(name))
        for name, seeds in runs.items()
    }
    effects, draws = {}, {}
    for name, parent in parents.items():
        # a run that chose its epoch on held-out images measures the selection, not a change
        if name in runs and parent is not None and experiments[name]["selection"] is None:
            effects[name] = None
            if parent in runs:
                effects[name], draws[name] = effect_record(
                    name, parent, runs, settings["bootstrap"]
                )
    adjust({name: effects[name] for name in draws}, draws, settings)
    record = {"experiments": experiments, "effects": effects, "alpha": settings["alpha"]}
    record["family"] = list(draws)
    record["decomposition"] = decomposition(record, settings["decompose"], published_gap)
    record["power"] = power(record, settings["alpha"])
    return record


def summarize_study(runs: Runs, path: Path, **kwargs) -> Path:
    """Write the study of `runs` (see :func:`study` for the keywords) to `path` as JSON."""
    return atomic.write_json(Path(path), study(runs, **kwargs))


def read_study(path: Path) -> dict:
    """Read a study.json written by :func:`summarize_study`."""
    return json.loads(Path(path).read_text(encoding="utf-8"))


# --------------------------------------------------------------------------- table
def p_value(p: float) -> str:
    """A p-value to three decimals; below 0.001 as "< 0.001"."""
    return "< 0.001" if p < 0.001 else f"{p:.3f}"


def interval_text(bounds) -> str:
    """`[-0.25, +1.30]`: the bounds as the verdicts read them."""
    low, high = bounds
    return f"[{signed(low)}, {signed(high)}]"


def verdict(effect: Mapping) -> str:
    """The short verdict: raises / lowers (Holm), within ±M (TOST), both, or inconclusive."""
    holm_, equivalence = effect["holm"], effect["equivalence"]
    words = []
    if holm_["excludes_zero"]:
        words.append("raises" if effect["difference"] > 0 else "lowers")
    if equivalence["within_margin"]:
        words.append(f"within ±{pct(equivalence['margin'])} pp (TOST)")
    return ", ".join(words) or "inconclusive"


def _accuracy_cell(accuracy: Mapping) -> str:
    """The mean ± sd over seeds and its t-interval within the accuracies possible, 0 to 100 %
    (with few seeds the interval can reach past them); one seed: its value."""
    if accuracy["low"] is None:
        return pct(accuracy["mean"])
    low, high = max(0.0, accuracy["low"]), min(100.0, accuracy["high"])
    return f"{pct(accuracy['mean'])} ± {pct(accuracy['sd'])} [{pct(low)}, {pct(high)}]"


EFFECT_COLUMNS = (
    "Effect, variant − parent (pp)",
    "Holm-adjusted interval (pp)",
    "P(variant > parent)",
    "Verdict (Holm p)",
    "Per seed: variant − parent (McNemar p)",
)


def _effect_cells(effect: Mapping | None) -> dict[str, str]:
    if effect is None:
        return dict.fromkeys(EFFECT_COLUMNS, NA)
    per_seed = "; ".join(
        f"{seed}: {signed(e['difference'])} ({p_value(e['mcnemar_p'])})"
        for seed, e in effect["seeds"].items()
    )
    holm_ = effect["holm"]
    cells = (
        signed(effect["difference"]),
        f"{interval_text(holm_['interval'])} at {100 * holm_['level']:.2f} %",
        f"{effect['bootstrap']['p_greater']:.3f}",
        f"{verdict(effect)} ({p_value(holm_['p'])})",
        per_seed,
    )
    return dict(zip(EFFECT_COLUMNS, cells, strict=True))


def ablation_frame(study: Mapping) -> pd.DataFrame:
    """One row per experiment: title, parent, seeds, exact and batch-mean accuracy (mean ± sd
    [t 95 %] over seeds, or the one value), and its effect against its parent over the seeds
    both ran (listed in the last column): the Holm-adjusted bootstrap interval, P(variant >
    parent), the verdict with Holm's p, and each seed's difference with McNemar's p."""
    rows = []
    for name, experiment in study["experiments"].items():
        row = {
            "Experiment": experiment["title"],
            "Variant of": experiment["from"] or NA,
            "Seeds": ", ".join(experiment["runs"]),
            "Accuracy (%)": _accuracy_cell(experiment["accuracy"]),
            "Batch mean (%)": _accuracy_cell(experiment["accuracy_batch_mean"]),
        }
        cells = _effect_cells(study["effects"].get(name))
        if experiment.get("selection"):  # it measures the selection, not a change
            cells["Verdict (Holm p)"] = "selection bias (text)"
        rows.append(row | cells)
    return pd.DataFrame(rows)


def make_ablation_table(study: Path, md: Path, tex: Path) -> list[Path]:
    """The ablation table (:func:`ablation_frame`) of a study.json."""
    frame = ablation_frame(read_study(study))
    widths = (0.14, 0.08, 0.05, 0.1, 0.1, 0.06, 0.11, 0.08, 0.1, 0.1)
    align = "".join(rf"p{{{w}\linewidth}}" for w in widths)
    return save_table(frame, md, tex, align=align)


# --------------------------------------------------------------------------- figure
COLOURS = {"raises": "tab:green", "lowers": "tab:red", "inconclusive": "tab:gray"}


def ablation_effects_figure(study: Mapping) -> Figure:
    """A forest plot: one row per variant (its title), its effect in points with its
    Holm-adjusted bootstrap interval as a bar, coloured by verdict, a line at no effect and
    the equivalence margin shaded."""
    rows = [
        (study["experiments"][name]["title"], effect)
        for name, effect in study["effects"].items()
        if effect is not None
    ]
    fig = Figure(figsize=(9, 1.6 + 0.45 * max(1, len(rows))), layout="constrained")
    ax = fig.subplots()
    ax.axvline(0, color="black", linewidth=0.8)
    if not rows:
        ax.text(0.5, 0.5, "no variant with a running parent", ha="center", transform=ax.transAxes)
    margins = {effect["equivalence"]["margin"] for _, effect in rows} - {None}
    for margin in margins:
        ax.axvspan(-margin, margin, color="tab:blue", alpha=0.08, label=f"±{margin} pp margin")
    for y, (_, effect) in enumerate(rows):
        colour = COLOURS.get(verdict(effect).split(",")[0], "tab:blue")
        ax.plot(effect["holm"]["interval"], [y, y], color=colour, linewidth=2)
        ax.plot(effect["difference"], y, "o", color=colour)
    ax.set_yticks(np.arange(len(rows)), [title for title, _ in rows])
    ax.set_ylim(len(rows) - 0.5, -0.5)  # config order, top down
    ax.set_xlabel("variant − parent, accuracy (points)")
    ax.set_title("Holm-adjusted intervals over seeds and images", fontsize="medium")
    if margins:
        ax.legend(loc="lower right", fontsize="small")
    ax.grid(axis="x", alpha=0.3)
    return fig


def plot_ablation_effects(study: Path, png: Path, pdf: Path, *, dpi: int) -> list[Path]:
    """The forest plot of a study.json's effects."""
    return save_figure(ablation_effects_figure(read_study(study)), png, pdf, dpi)


# --------------------------------------------------------------------------- sentences
NO_EFFECTS = "No variant ran beside its parent, so no change can be measured."


def _finding(effect: Mapping) -> str:
    """What the effect's intervals allow one to say, on their printed bounds."""
    holm_, equivalence = effect["holm"], effect["equivalence"]
    margin = equivalence["margin"]
    tost = (
        f"its {100 * equivalence['level']:.2f} % interval {interval_text(equivalence['interval'])}"
        f" lies within ±{pct(margin)} points (TOST)"
        if equivalence["within_margin"]
        else ""
    )
    if holm_["excludes_zero"]:
        verb = "raises" if effect["difference"] > 0 else "lowers"
        noise = "the noise of seeds and images"
        if len(effect["seeds"]) == 1:
            noise = "the image noise of this one seed (its seed-to-seed noise is not measured)"
        found = f"the adjusted interval excludes zero: the change {verb} accuracy beyond {noise}"
        return found + (f", by no more than {pct(margin)} points: {tost}" if tost else "")
    if tost:
        return f"no larger than {pct(margin)} points: {tost}"
    if margin is None:
        return (
            "inconclusive: the adjusted interval includes zero, and no equivalence margin is "
            "declared, so nothing says the effect is small"
        )
    return (
        f"inconclusive: the adjusted interval includes zero and the TOST interval "
        f"{interval_text(equivalence['interval'])} reaches beyond ±{pct(margin)} points"
    )


def difference_sentence(study: Mapping, name: str) -> str:
    """One plain sentence on variant `name`'s effect against its parent."""
    effect = study["effects"][name]
    titles = {key: experiment["title"] for key, experiment in study["experiments"].items()}
    holm_, seeds = effect["holm"], list(effect["seeds"])
    per_seed = ", ".join(
        f"{signed(e['difference'])} (seed {seed}, McNemar p {p_value(e['mcnemar_p'])})"
        for seed, e in effect["seeds"].items()
    )
    return (
        f"{titles[name]}, against {titles[effect['reference']]}, on seed"
        f"{'' if len(seeds) == 1 else 's'} {', '.join(seeds)}: variant − parent "
        f"{signed(effect['difference'])} points, Holm-adjusted {100 * holm_['level']:.2f} % "
        f"interval {interval_text(holm_['interval'])} (Holm p {p_value(holm_['p'])}), "
        f"P(variant > parent) {effect['bootstrap']['p_greater']:.3f}; {_finding(effect)}. "
        f"Per seed: {per_seed}."
    )


def decomposition_sentence(study: Mapping) -> str | None:
    """The leave-one-out contributions beside the gap they are read against."""
    parts, titles = study["decomposition"], study["experiments"]
    ran, declared = parts["contributions"], parts["declared"]
    if not ran or parts["gap"] is None:
        return None
    recipe, against = titles[parts["recipe"]]["title"], titles[parts["against"]]["title"]
    published = parts["published_gap"]
    return (
        f"Left out one at a time, {len(ran)} of the {len(declared)} changes declared "
        f"({', '.join(ran)}) contribute {signed(parts['sum'])} points together "
        f"(each: {parts['recipe']} − variant); {recipe} minus {against} is "
        f"{signed(parts['gap'])} points in this build"
        + (f" and {signed(published)} points as published" if published is not None else "")
        + ". Leave-one-out contributions need not add up to the gap: changes interact, and "
        "a change can matter only beside another."
    )


def power_sentence(study: Mapping) -> str | None:
    """The smallest effect the design detects, so that "inconclusive" has a size."""
    p = study["power"]
    if p is None:
        return None
    m = len(study["family"])
    noise = (
        f"a pooled seed-to-seed SD of {pct(p['seed_sd'])} points"
        if p["seed_sd"] is not None
        else "no measured seed-to-seed noise (one seed per experiment)"
    )
    return (
        f"Power: with {p['seeds']} seed{'' if p['seeds'] == 1 else 's'} per effect, {noise} "
        f"and an image noise of {pct(p['image_sd'])} points, the smallest effect detected with "
        f"{100 * p['power']:.0f} % power at Holm's strictest level ({study['alpha']} / {m}) "
        f"is about {pct(p['smallest_effect'])} points; an inconclusive effect may be smaller "
        "than that or not measured precisely enough."
    )


def selection_sentences(study: Mapping) -> list[str]:
    """What choosing the epoch on the reported validation images adds, per experiment that
    measured it; one sentence saying it is not measured when none did."""
    measured = {n: e for n, e in study["experiments"].items() if e.get("selection")}
    if not measured:
        return [
            "Selection bias is not measured in this build: every run chose its epoch on the "
            "validation images it reports, as the notebooks did, which makes each accuracy here "
            "optimistic by an unmeasured amount (config/selection.yaml measures it)."
        ]
    sentences = []
    for experiment in measured.values():
        seeds, optimism = experiment["selection"]["seeds"], experiment["selection"]["optimism"]
        runs = "; ".join(
            f"seed {seed}: epoch {s['validation_epoch']} at {pct(s['validation_accuracy'])} % "
            f"against epoch {s['holdout_epoch']} at {pct(s['holdout_accuracy'])} %"
            for seed, s in seeds.items()
        )
        sentences.append(
            f"Selection bias, measured in {experiment['title']}: choosing the epoch on the "
            "validation images it reports (as the notebooks did) rather than on held-out "
            f"training images adds {signed(optimism)} points, the mean over {len(seeds)} seed"
            f"{'' if len(seeds) == 1 else 's'} ({runs}; both epochs of the same run)."
        )
    return sentences


def difference_sentences(study: Mapping) -> list[str]:
    """One change at a time: a sentence per variant that ran beside its parent, in study
    order, then the family, the decomposition, the power and the selection bias; without
    effects, one sentence saying so and the selection bias."""
    names = [name for name, effect in study["effects"].items() if effect is not None]
    if not names:
        return [NO_EFFECTS, *selection_sentences(study)]
    family = (
        f"Holm's adjustment runs over these {len(names)} effects at a family-wise "
        f"{study['alpha']}; each interval is at the level Holm's step-down gives it, and a "
        "verdict reads the bounds as printed."
    )
    extra = [decomposition_sentence(study), power_sentence(study), *selection_sentences(study)]
    return (
        [difference_sentence(study, name) for name in names]
        + [family]
        + [sentence for sentence in extra if sentence]
    )


def difference_tex(study: Mapping) -> str:
    """:func:`difference_sentences` as a LaTeX itemize list."""
    sentences = [latex_escape(sentence) for sentence in difference_sentences(study)]
    # "{}" keeps a leading "[" from reading as \item's optional argument
    items = "".join(f"  \\item {{}}{sentence}\n" for sentence in sentences)
    return f"\\begin{{itemize}}\n{items}\\end{{itemize}}\n"


def difference_markdown(study: Mapping) -> str:
    """:func:`difference_sentences` as a Markdown bullet list."""
    return "".join(f"- {sentence}\n" for sentence in difference_sentences(study))


def write_difference_section(study: Path, tex: Path, md: Path) -> list[Path]:
    """The "One change at a time" sentences of a study.json, as LaTeX and Markdown."""
    record = read_study(study)
    return [
        atomic.write_text(tex, difference_tex(record)),
        atomic.write_text(md, difference_markdown(record)),
    ]

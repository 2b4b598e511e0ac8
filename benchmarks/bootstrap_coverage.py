"""Coverage of the study's 95 % interval (stats.two_way_bootstrap) on synthetic Bernoulli data.

Each simulated study pairs a variant with its parent on n images and k seeds. Image i has a
difficulty a_i ~ N(2, 2) (logit; about 80 % accuracy) and its own effect e_i ~ N(0.05, 0.3);
seed s shifts the parent by u_s and the variant by v_s ~ N(0, sd) (logit). Each (seed, image) is
right with probability sigmoid(a_i + u_s) for the parent and sigmoid(a_i + e_i + v_s) for the
variant, independently: the seed x image flips. The true effect is the mean over the population
of images and seeds (1,000,000 images; the seeds by quadrature). Prints one Markdown row per
setting: coverage of the true effect with its binomial standard error, and the mean width.

    python benchmarks/bootstrap_coverage.py [--studies 1000] [--images 10000]

Run by hand (minutes on 2 cores); docs/statistics.md holds its output. Not a test.
"""

import argparse
import math
import time

import numpy as np

from convnext_tinyimagenet.stats import percentile_interval, two_way_bootstrap


def sigmoid(x):
    return 1 / (1 + np.exp(-x))


def true_effect(rng, seed_sd: float) -> float:
    """E over images and seeds of sigmoid(a + e + v) − sigmoid(a + u): 1,000,000 images drawn,
    the seed shifts integrated by 40-point Gauss-Hermite quadrature (u and v independent)."""
    a, e = rng.normal(2.0, 2.0, 1_000_000), rng.normal(0.05, 0.3, 1_000_000)
    nodes, weights = np.polynomial.hermite_e.hermegauss(40 if seed_sd else 1)
    weights = weights / weights.sum()
    shifts = seed_sd * nodes
    variant = sum(w * sigmoid(a + e + s).mean() for s, w in zip(shifts, weights, strict=True))
    parent = sum(w * sigmoid(a + s).mean() for s, w in zip(shifts, weights, strict=True))
    return 100 * float(variant - parent)


def one_study(rng, seeds: int, images: int, seed_sd: float) -> np.ndarray:
    a, e = rng.normal(2.0, 2.0, images), rng.normal(0.05, 0.3, images)
    u, v = rng.normal(0, seed_sd, (seeds, 1)), rng.normal(0, seed_sd, (seeds, 1))
    parent = rng.random((seeds, images)) < sigmoid(a + u)
    variant = rng.random((seeds, images)) < sigmoid(a + e + v)
    return variant.astype(np.int8) - parent.astype(np.int8)


def coverage(seeds: int, images: int, seed_sd: float, studies: int, replicates: int) -> dict:
    rng = np.random.default_rng(seeds * 1000 + round(seed_sd * 1000))
    truth = true_effect(rng, seed_sd)
    hits, widths = 0, []
    for study in range(studies):
        draws = two_way_bootstrap(one_study(rng, seeds, images, seed_sd), replicates, study)
        low, high = percentile_interval(draws["draws"], 0.95)
        hits += low <= truth <= high
        widths.append(high - low)
    share = hits / studies
    return {
        "truth": truth,
        "coverage": share,
        "se": math.sqrt(share * (1 - share) / studies),
        "width": float(np.mean(widths)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--studies", type=int, default=1000)
    parser.add_argument("--images", type=int, default=10_000)
    parser.add_argument("--replicates", type=int, default=2000)
    args = parser.parse_args()
    print(
        f"n = {args.images} images, {args.studies} simulated studies per row, "
        f"{args.replicates} bootstrap replicates each"
    )
    columns = ["seeds", "seed SD (logit)", "seed SD of accuracy (pp)", "true effect (pp)"]
    print("| " + " | ".join([*columns, "coverage", "mean width (pp)"]) + " |")
    print("|--:|--:|--:|--:|--:|--:|")
    for seeds, seed_sd in [
        (1, 0.0),
        (2, 0.0),
        (3, 0.0),
        (3, 0.01),
        (3, 0.025),
        (3, 0.05),
        (5, 0.05),
    ]:
        start = time.perf_counter()
        row = coverage(seeds, args.images, seed_sd, args.studies, args.replicates)
        # d accuracy / d logit shift = E[p (1 - p)] = 0.112 at a ~ N(2, 2)
        print(
            f"| {seeds} | {seed_sd} | {100 * 0.112 * seed_sd:.2f} | {row['truth']:.3f} | "
            f"{100 * row['coverage']:.1f} % ± {100 * row['se']:.1f} | {row['width']:.2f} |"
            f"  <!-- {time.perf_counter() - start:.0f} s -->",
            flush=True,
        )


if __name__ == "__main__":
    main()

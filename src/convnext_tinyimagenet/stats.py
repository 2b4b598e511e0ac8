"""Statistics of accuracies in plain numpy, in percentage points: batch means, Wilson and
Newcombe intervals (one run, two independent or paired runs), McNemar, t over seeds, the
two-way bootstrap over seeds and images, Holm's adjustment and equivalence (TOST)."""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np

Z95 = 1.959963984540054  # two-sided 95 % standard normal quantile


def wilson_interval(successes: int, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval of a binomial proportion, as fractions in [0, 1]."""
    if n <= 0:
        raise ValueError("the Wilson interval needs at least one trial")
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


def batch_means(values: np.ndarray, batch_size: int) -> float:
    """Mean of per-batch means over consecutive batches (the last one may be short).

    With 10,000 images and batch 32: 312 full batches and one of 16, each weighted equally,
    which is how the improved notebook's logged 86.30 % differs from the exact 86.31 %.
    """
    values = np.asarray(values, dtype=np.float64)
    means = [values[i : i + batch_size].mean() for i in range(0, len(values), batch_size)]
    return float(np.mean(means))


def accuracy_interval(correct: int, n: int) -> dict:
    """Accuracy (%) of `correct` out of `n` with its Wilson 95 % interval, shaped as in
    summary.json: `n`, `correct`, `accuracy`, `wilson95`."""
    low, high = wilson_interval(correct, n)
    return {
        "n": n,
        "correct": correct,
        "accuracy": 100.0 * correct / n,
        "wilson95": [100.0 * low, 100.0 * high],
    }


def newcombe_difference(a: Mapping, b: Mapping) -> tuple[float, float]:
    """95 % interval of accuracy(a) − accuracy(b) from their `accuracy` and `wilson95` (%):
    Newcombe's hybrid score method for independent runs (conservative for paired ones)."""
    pa, pb = a["accuracy"], b["accuracy"]
    (la, ua), (lb, ub) = a["wilson95"], b["wilson95"]
    diff = pa - pb
    return (
        diff - math.sqrt((pa - la) ** 2 + (ub - pb) ** 2),
        diff + math.sqrt((ua - pa) ** 2 + (pb - lb) ** 2),
    )


def paired_counts(first: np.ndarray, second: np.ndarray) -> dict[str, int]:
    """The paired 2x2 table of two runs' per-image correctness (same images, same order): `n`,
    `both` correct, `first_only`, `second_only` (the discordant pairs) and `neither`."""
    first = np.asarray(first, dtype=bool)
    second = np.asarray(second, dtype=bool)
    if first.shape != second.shape:
        raise ValueError(f"paired runs differ in length: {first.shape} vs {second.shape}")
    return {
        "n": int(first.size),
        "both": int((first & second).sum()),
        "first_only": int((first & ~second).sum()),
        "second_only": int((~first & second).sum()),
        "neither": int((~first & ~second).sum()),
    }


def newcombe_paired_difference(counts: Mapping[str, int]) -> tuple[float, float]:
    """95 % interval of accuracy(first) − accuracy(second) from a :func:`paired_counts` table.

    Newcombe (1998b), method 10: Wilson intervals of both margins combined by square-and-add
    with the cross term -2 phi (p1 - l1)(u2 - p2), where phi is the 2x2 table's phi coefficient
    corrected for continuity: with A = ad - bc, (A - N/2) / sqrt(efgh) when A > N/2, 0 when
    0 <= A <= N/2, A / sqrt(efgh) when A < 0 (0 when a margin is empty).
    """
    n = counts["n"]
    a, b, c, d = (counts[k] for k in ("both", "first_only", "second_only", "neither"))
    first, second = accuracy_interval(a + b, n), accuracy_interval(a + c, n)
    p1, (l1, u1) = first["accuracy"], first["wilson95"]
    p2, (l2, u2) = second["accuracy"], second["wilson95"]
    margins = (a + b) * (c + d) * (a + c) * (b + d)
    cross = a * d - b * c
    corrected = cross - n / 2 if cross > n / 2 else min(cross, 0)
    phi = corrected / math.sqrt(margins) if margins else 0.0
    diff = p1 - p2
    low = diff - math.sqrt(
        max(0.0, (p1 - l1) ** 2 - 2 * phi * (p1 - l1) * (u2 - p2) + (u2 - p2) ** 2)
    )
    high = diff + math.sqrt(
        max(0.0, (u1 - p1) ** 2 - 2 * phi * (u1 - p1) * (p2 - l2) + (p2 - l2) ** 2)
    )
    return low, high


def mcnemar_exact_p(first_only: int, second_only: int) -> float:
    """Two-sided exact McNemar p-value: is one run right where the other is wrong more often?

    Under the null each of the ``k = first_only + second_only`` discordant images is equally
    likely to favour either run, so the smaller count is Binomial(k, 1/2); the p-value doubles
    its lower tail (capped at 1). 1.0 when there is no discordant image.
    """
    k = first_only + second_only
    if k == 0:
        return 1.0
    tail = sum(math.comb(k, i) for i in range(min(first_only, second_only) + 1))
    return min(1.0, 2 * tail / 2**k)  # exact integers until the one division


def t_cdf(t: float, df: int) -> float:
    """Student's t distribution function for an integer number of degrees of freedom.

    The closed forms of Abramowitz and Stegun 26.7.3 (odd df) and 26.7.4 (even df), in
    theta = atan(t / sqrt(df)): finite sums, exact to rounding.
    """
    if df < 1:
        raise ValueError(f"degrees of freedom must be at least 1, not {df}")
    theta = math.atan(t / math.sqrt(df))
    cos2 = math.cos(theta) ** 2
    term, total = 1.0, 1.0
    if df % 2:  # odd: A = 2/pi (theta + sin cos (1 + 2/3 cos^2 + 2*4/(3*5) cos^4 + ...))
        for k in range(1, (df - 1) // 2):
            term *= cos2 * (2 * k) / (2 * k + 1)
            total += term
        inner = math.sin(theta) * math.cos(theta) * total if df > 1 else 0.0
        share = 2 / math.pi * (theta + inner)
    else:  # even: A = sin (1 + 1/2 cos^2 + 1*3/(2*4) cos^4 + ...)
        for k in range(1, df // 2):
            term *= cos2 * (2 * k - 1) / (2 * k)
            total += term
        share = math.sin(theta) * total
    return 0.5 + 0.5 * share


def t_quantile(p: float, df: int) -> float:
    """The p-quantile of Student's t with `df` degrees of freedom (bisection on :func:`t_cdf`)."""
    if not 0 < p < 1:
        raise ValueError(f"a quantile needs 0 < p < 1, not {p}")
    if p < 0.5:
        return -t_quantile(1 - p, df)
    low, high = 0.0, 1.0
    while t_cdf(high, df) < p:
        high *= 2
    for _ in range(200):  # the interval halves each step: far below float resolution
        middle = (low + high) / 2
        low, high = (middle, high) if t_cdf(middle, df) < p else (low, middle)
    return (low + high) / 2


def mean_interval(values, level: float = 0.95) -> dict:
    """Mean, sample standard deviation and the t-interval of the mean, over runs (seeds).

    With one value the spread is unknown: sd and the interval are None.
    """
    values = np.asarray(values, dtype=np.float64)
    n, mean = len(values), float(values.mean())
    if n < 2:
        return {"n": n, "mean": mean, "sd": None, "low": None, "high": None}
    sd = float(values.std(ddof=1))
    half = t_quantile(0.5 + level / 2, n - 1) * sd / math.sqrt(n)
    return {"n": n, "mean": mean, "sd": sd, "low": mean - half, "high": mean + half}


def two_way_bootstrap(differences, replicates: int, seed: int) -> dict:
    """The bootstrap distribution of a paired effect over seeds and images, in points.

    `differences` is seeds x images of variant − parent correctness (-1, 0 or 1), the same
    images in every row. The effect's error is split in two parts, each drawn on its own:

    - seeds: each seed's mean carries its training randomness and which images flip in that
      seed. Their spread enters as s(seed means) / sqrt(k) times Student's t with k − 1 degrees
      of freedom: k = 3 seeds resampled with replacement give ten distinct means, too few for a
      tail (docs/statistics.md has the simulation).
    - images: the images are resampled with replacement, one draw for every seed and both runs,
      each image's mean over seeds shrunk to its part shared by the seeds (the ANOVA estimate
      s²(image means) − MSE / k): the flips that differ by seed are in the seed part already.
      Those means take only the 2k + 1 values j / k, so a multinomial draw of their counts is
      the same resampling at a fraction of the cost.

    With one seed the two cannot be told apart: the images are resampled unshrunk and the seed
    noise is not measured (`seed_var` None). Returns the `mean` and the `draws` (points) and
    the variance of each part (points²).
    """
    d = np.asarray(differences, dtype=np.int64)
    k, n = d.shape
    rng = np.random.default_rng(seed)
    per_image = d.mean(axis=0)
    values, counts = np.unique(d.sum(axis=0), return_counts=True)
    image_part = rng.multinomial(n, counts / n, size=replicates) @ (values / k) / n
    image_part -= per_image.mean()
    shrink, seed_var = _crossed_parts(d) if k > 1 else (1.0, None)
    draws = d.mean() + shrink * image_part
    if seed_var is not None:
        draws = draws + math.sqrt(seed_var) * rng.standard_t(k - 1, size=replicates)
    return {
        "mean": 100.0 * float(d.mean()),
        "draws": 100.0 * draws,
        "image_var": 1e4 * shrink**2 * float(per_image.var()) / n,
        "seed_var": None if seed_var is None else 1e4 * seed_var,
    }


def _crossed_parts(d: np.ndarray) -> tuple[float, float]:
    """For seeds x images: the factor that shrinks each image's mean over seeds to the part the
    seeds share (two-way ANOVA, sqrt(1 − (MSE / k) / s²(image means)), 0 when that is negative),
    and the variance of the mean over seeds, s²(seed means) / k."""
    k, n = d.shape
    seed_means, per_image = d.mean(axis=1), d.mean(axis=0)
    residual = d - seed_means[:, None] - per_image[None, :] + d.mean()
    mse = float((residual**2).sum()) / ((k - 1) * (n - 1))
    spread = float(per_image.var(ddof=1))
    shrink = math.sqrt(max(0.0, 1 - mse / k / spread)) if spread > 0 else 0.0
    return shrink, float(seed_means.var(ddof=1)) / k


def percentile_interval(draws, level: float) -> tuple[float, float]:
    """The equal-tailed percentile interval of bootstrap `draws` at `level`; inverted-CDF
    quantiles, so a lower bound above 0 means fewer than (1 − level) / 2 of the draws are ≤ 0."""
    tail = (1 - level) / 2
    low, high = np.quantile(draws, [tail, 1 - tail], method="inverted_cdf")
    return float(low), float(high)


def bootstrap_p(draws) -> float:
    """Two-sided bootstrap p-value of no effect: twice the smaller share of draws on either
    side of 0, capped at 1."""
    draws = np.asarray(draws)
    return min(1.0, 2 * min(float(np.mean(draws <= 0)), float(np.mean(draws >= 0))))


def holm(p_values) -> list[float]:
    """Holm's (1979) step-down adjusted p-values, in the order given: the i-th smallest of m
    times (m − i + 1), kept non-decreasing in that order, capped at 1."""
    p = np.asarray(p_values, dtype=np.float64)
    order = np.argsort(p, kind="stable")
    steps = np.maximum.accumulate(p[order] * (len(p) - np.arange(len(p))))
    adjusted = np.empty_like(p)
    adjusted[order] = np.minimum(1.0, steps)
    return adjusted.tolist()

"""Statistics of accuracies in plain numpy, in percentage points: batch means, Wilson and
Newcombe intervals (one run, two independent or paired runs), McNemar, t over seeds."""

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

    Newcombe (1998b), method 10: square-and-add with the cross term -2 phi (p1 - l1)(u2 - p2),
    phi the phi coefficient of the 2x2 table (0 when a margin is empty).
    """
    n = counts["n"]
    a, b, c, d = (counts[k] for k in ("both", "first_only", "second_only", "neither"))
    first, second = accuracy_interval(a + b, n), accuracy_interval(a + c, n)
    p1, (l1, u1) = first["accuracy"], first["wilson95"]
    p2, (l2, u2) = second["accuracy"], second["wilson95"]
    margins = (a + b) * (c + d) * (a + c) * (b + d)
    phi = (a * d - b * c) / math.sqrt(margins) if margins else 0.0
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

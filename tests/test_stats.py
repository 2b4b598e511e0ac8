"""The statistics against published worked examples and reference libraries' values, written
here: Newcombe (1998a, 1998b), Fagerland, Lydersen and Laake (2017), Holm (1979) as
statsmodels computes it, Student's t tables and scipy.stats.t.interval."""

import math
import subprocess
import sys

import numpy as np
import pytest

from convnext_tinyimagenet import stats
from convnext_tinyimagenet.stats import mean_interval, t_cdf, t_quantile

from .conftest import ROOT


def table(a, b, c, d):
    """A paired 2x2 table: both right, only the first, only the second, neither."""
    return {"n": a + b + c + d, "both": a, "first_only": b, "second_only": c, "neither": d}


# --------------------------------------------------------------------------- one proportion
@pytest.mark.parametrize(
    ("correct", "n", "low", "high"),
    # Newcombe (1998a), Table I, method 3 (Wilson score, no continuity correction)
    [
        (81, 263, 0.2553, 0.3662),
        (15, 148, 0.0624, 0.1605),
        (0, 20, 0.0, 0.1611),
        (1, 29, 0.0061, 0.1718),
    ],
)
def test_wilson_interval_holds_newcombes_table(correct, n, low, high):
    assert stats.wilson_interval(correct, n) == pytest.approx((low, high), abs=5e-5)
    interval = stats.accuracy_interval(correct, n)
    assert interval["accuracy"] == pytest.approx(100 * correct / n)
    assert interval["wilson95"] == pytest.approx([100 * low, 100 * high], abs=5e-3)


# --------------------------------------------------------------------------- two proportions
def test_newcombe_difference_matches_published_example():
    """Newcombe (1998b), Table II, example (a): 56/70 - 48/80, method 10: 0.0524 to 0.3339."""
    low, high = stats.newcombe_difference(
        stats.accuracy_interval(56, 70), stats.accuracy_interval(48, 80)
    )
    assert (low, high) == pytest.approx((5.24, 33.39), abs=0.01)


@pytest.mark.parametrize(
    ("counts", "low", "high"),
    [
        # Fagerland, Lydersen and Laake (2017): Cavo et al., difference -0.0621
        (table(59, 6, 16, 80), -11.86, -0.46),
        # Bentur et al., difference -0.2857
        (table(1, 1, 7, 12), -50.7, -2.6),
    ],
)
def test_paired_newcombe_is_method_10_as_published(counts, low, high):
    result = stats.newcombe_paired_difference(counts)
    assert result == pytest.approx((low, high), abs=0.01 if abs(low) < 20 else 0.05)


def test_the_continuity_corrected_phi_keeps_zero_inside_on_10000_images():
    # the plain phi gave [-1.0006, -0.0002]: "excludes zero"; method 10 gives [-1.0009, +0.0002]
    low, high = stats.newcombe_paired_difference(table(8100, 300, 350, 1250))
    assert low == pytest.approx(-1.0009, abs=1e-4) and high == pytest.approx(0.0002, abs=1e-4)
    assert low < 0 < high


def test_paired_interval_without_correlation_is_the_independent_one():
    # a d == b c (36 x 16 == 24 x 24): phi = 0, so the cross term vanishes
    first = second = stats.accuracy_interval(60, 100)
    assert stats.newcombe_paired_difference(table(36, 24, 24, 16)) == pytest.approx(
        stats.newcombe_difference(first, second)
    )


def test_paired_interval_approaches_the_paired_wald_interval():
    # large n: the score interval converges on d +/- z sqrt((b + c) / n^2 - (b - c)^2 / n^3)
    counts = table(80_000, 6_000, 4_000, 10_000)
    n, b, c = counts["n"], counts["first_only"], counts["second_only"]
    half = 100 * stats.Z95 * math.sqrt((b + c) / n**2 - (b - c) ** 2 / n**3)
    low, high = stats.newcombe_paired_difference(counts)
    assert (low, high) == pytest.approx((2.0 - half, 2.0 + half), abs=0.01)
    # pairing narrows the interval: these runs agree on 90 % of the images
    wide = stats.newcombe_difference(
        stats.accuracy_interval(86_000, n), stats.accuracy_interval(84_000, n)
    )
    assert high - low < 0.7 * (wide[1] - wide[0])


@pytest.mark.parametrize(
    ("first_only", "second_only", "p"),
    [
        (6, 16, 0.052478790283203125),  # Cavo et al.: exact conditional p 0.052 (statsmodels)
        (1, 7, 0.0703125),  # Bentur et al.: 0.070
        (5, 0, 2 / 32),
        (4, 4, 1.0),
        (0, 0, 1.0),
    ],
)
def test_mcnemar_exact_p(first_only, second_only, p):
    assert stats.mcnemar_exact_p(first_only, second_only) == pytest.approx(p)
    assert stats.mcnemar_exact_p(second_only, first_only) == pytest.approx(p)


# --------------------------------------------------------------------------- over seeds
@pytest.mark.parametrize(
    ("df", "quantile"),
    # two-sided 95 % critical values of Student's t (any table): t_{0.975, df}
    [(1, 12.7062), (2, 4.3027), (3, 3.1824), (4, 2.7764), (5, 2.5706), (10, 2.2281), (30, 2.0423)],
)
def test_t_quantile_matches_the_table(df, quantile):
    assert t_quantile(0.975, df) == pytest.approx(quantile, abs=1e-4)
    assert t_quantile(0.025, df) == pytest.approx(-quantile, abs=1e-4)


def test_t_cdf_closed_forms():
    assert t_cdf(0.0, 7) == 0.5
    assert t_cdf(1.0, 1) == pytest.approx(0.75)  # Cauchy: 1/2 + atan(1)/pi
    assert t_cdf(1.0, 2) == pytest.approx(0.5 + 0.5 / math.sqrt(3))  # 1/2 + t / (2 sqrt(2 + t^2))
    assert t_cdf(-2.0, 5) == pytest.approx(1 - t_cdf(2.0, 5))
    assert t_cdf(40.0, 200) == pytest.approx(1.0)
    with pytest.raises(ValueError):
        t_cdf(1.0, 0)


def test_mean_interval_is_scipys_t_interval():
    # scipy.stats.t.interval(0.95, 2, loc=86.4, scale=sem([86.1, 86.3, 86.8]))
    result = mean_interval([86.1, 86.3, 86.8])
    assert result["n"] == 3 and result["mean"] == pytest.approx(86.4)
    assert result["sd"] == pytest.approx(math.sqrt((0.09 + 0.01 + 0.16) / 2))
    assert (result["low"], result["high"]) == pytest.approx(
        (85.50433141049703, 87.29566858950295), abs=1e-9
    )


def test_one_seed_has_no_interval():
    assert mean_interval(np.array([82.61])) == {
        "n": 1,
        "mean": 82.61,
        "sd": None,
        "low": None,
        "high": None,
    }


# --------------------------------------------------------------------------- the family
def test_holm_matches_statsmodels():
    # statsmodels.stats.multitest.multipletests(p, method="holm")[1]
    p = [0.01, 0.04, 0.03, 0.005, 0.2, 0.04]
    assert stats.holm(p) == pytest.approx([0.05, 0.12, 0.12, 0.03, 0.2, 0.12])
    assert stats.holm([0.02, 0.03]) == pytest.approx([0.04, 0.04])  # kept non-decreasing
    assert stats.holm([0.6, 0.7]) == [1.0, 1.0]


# --------------------------------------------------------------------------- the bootstrap
def differences(rows):
    """seeds x images of -1 / 0 / +1 from (plus, minus, zero) counts per seed."""
    return np.array([[1] * p + [-1] * m + [0] * z for p, m, z in rows])


def test_one_seed_bootstrap_has_the_paired_standard_error():
    # 10,000 images, 300 only the variant right, 350 only the parent: the resampled mean's SD is
    # the paired difference's, sqrt((b + c) / n^2 - (b - c)^2 / n^3), in points
    result = stats.two_way_bootstrap(differences([(300, 350, 9350)]), 40_000, seed=1)
    n, b, c = 10_000, 300, 350
    assert result["mean"] == pytest.approx(-0.5)
    assert np.std(result["draws"]) == pytest.approx(
        100 * math.sqrt((b + c) / n**2 - (b - c) ** 2 / n**3), rel=0.02
    )
    assert result["seed_var"] is None


def test_seeds_whose_images_agree_give_the_t_interval_over_seeds():
    # every image moves the same way within a seed (no image noise); the seed means 2, 6, 10 %
    # give the t-interval 6 +/- 4.3027 * 4 / sqrt(3) (t table, 2 degrees of freedom)
    d = np.array([[1] * 2 + [0] * 98, [1] * 6 + [0] * 94, [1] * 10 + [0] * 90])
    rng = np.random.default_rng(0)
    d = d[:, rng.permutation(100)]  # the same images in each seed, in another order
    d = np.repeat(d, 100, axis=1)  # 10,000 images
    result = stats.two_way_bootstrap(d, 200_000, seed=2)
    low, high = stats.percentile_interval(result["draws"], 0.95)
    half = 4.3027 * 4 / math.sqrt(3)
    assert result["seed_var"] == pytest.approx(16 / 3)
    assert (low, high) == pytest.approx((6 - half, 6 + half), abs=0.15)


def test_flips_that_differ_by_seed_are_counted_once():
    # each seed flips its own images: the image means' spread is all seed x image interaction,
    # so the shrunken image part vanishes and the seed means carry the whole error
    d = np.zeros((3, 3000), dtype=int)
    for seed in range(3):
        d[seed, seed * 1000 : seed * 1000 + 30] = 1
    result = stats.two_way_bootstrap(d, 2000, seed=0)
    assert result["image_var"] == pytest.approx(0.0)
    assert result["seed_var"] == 0.0  # all three seed means are 1 %


def test_the_bootstrap_is_seeded_and_its_p_matches_its_interval():
    d = differences([(330, 300, 9370), (320, 290, 9390), (340, 310, 9350)])
    first, again = (stats.two_way_bootstrap(d, 5000, seed=7) for _ in range(2))
    assert np.array_equal(first["draws"], again["draws"])
    p = stats.bootstrap_p(first["draws"])
    for level in (0.9, 0.95, 0.99):
        low, high = stats.percentile_interval(first["draws"], level)
        assert (low > 0 or high < 0) == (p < 1 - level)


def test_the_coverage_benchmark_runs_and_prints_its_table():
    # docs/statistics.md's table comes from this script at --studies 2000; here a few studies
    script = ROOT / "benchmarks" / "bootstrap_coverage.py"
    command = [
        sys.executable,
        str(script),
        "--studies",
        "3",
        "--images",
        "500",
        "--replicates",
        "1000",
    ]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300, check=True)
    rows = [line for line in result.stdout.splitlines() if line.startswith("| ")]
    assert rows[0].startswith("| seeds | seed SD (logit) |") and len(rows) == 1 + 7
    for row in rows[1:]:
        coverage = float(row.split("|")[5].split("%")[0])
        assert 0 <= coverage <= 100

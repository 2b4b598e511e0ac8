"""Statistics over seeds, against tabulated and hand-computed values."""

import math

import numpy as np
import pytest

from convnext_tinyimagenet.stats import mean_interval, t_cdf, t_quantile


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


def test_mean_interval_by_hand():
    # three seeds: 86.1, 86.3, 86.8 -> mean 86.4, sd sqrt(((-.3)^2 + (-.1)^2 + .4^2) / 2) = 0.3606
    result = mean_interval([86.1, 86.3, 86.8])
    sd = math.sqrt((0.09 + 0.01 + 0.16) / 2)
    half = 4.302653 * sd / math.sqrt(3)
    assert result["n"] == 3 and result["mean"] == pytest.approx(86.4)
    assert result["sd"] == pytest.approx(sd)
    assert (result["low"], result["high"]) == pytest.approx((86.4 - half, 86.4 + half), abs=1e-6)


def test_one_seed_has_no_interval():
    assert mean_interval(np.array([82.61])) == {
        "n": 1,
        "mean": 82.61,
        "sd": None,
        "low": None,
        "high": None,
    }

"""Welch's interval for a difference between two independent groups (two studies)."""

import pytest
from scipy import stats as scipy_stats

from synthmix.experiment.stats import welch_difference


@pytest.mark.parametrize(("a", "b"), [
    ([0.97, 0.96, 0.975], [0.98, 0.982, 0.979, 0.985, 0.981]),
    ([0.5, 0.52, 0.49, 0.51], [0.40, 0.47, 0.44]),
])
def test_welch_matches_scipy(a, b):
    got = welch_difference(a, b)
    want = scipy_stats.ttest_ind(a, b, equal_var=False).confidence_interval(0.95)
    assert got["ci_low"] == pytest.approx(want.low) and got["ci_high"] == pytest.approx(want.high)
    assert got["mean"] == pytest.approx(sum(a) / len(a) - sum(b) / len(b))
    assert (got["n_a"], got["n_b"]) == (len(a), len(b))
    expected = ("higher" if want.low > 0 else "lower" if want.high < 0
                else "no clear difference")
    assert got["verdict"] == expected


def test_welch_needs_two_values_a_side_and_handles_no_spread():
    assert welch_difference([0.9], [0.8, 0.85]) is None
    same = welch_difference([0.9, 0.9], [0.8, 0.8])
    assert same["ci_low"] == same["ci_high"] == pytest.approx(0.1) and same["verdict"] == "higher"

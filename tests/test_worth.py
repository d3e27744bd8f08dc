"""The worth analysis on learning curves with known answers, including the edge cases that must
be stated as bounds rather than extrapolated."""

from __future__ import annotations

import math

import pytest

from synthmix.experiment.plan import Cell
from synthmix.experiment.stats import paired_difference, t_interval
from synthmix.experiment.worth import (
    equivalent_over_repeats,
    real_equivalent,
    worth_analysis,
)

SIZES = [100, 1000, 10000]


def test_real_equivalent_interpolates_in_log_size() -> None:
    scores = [0.5, 0.7, 0.9]
    assert real_equivalent(SIZES, scores, 0.7)["value"] == pytest.approx(1000)
    # Half way in score between 100 and 1000 is half way in log size: sqrt(100 * 1000).
    assert real_equivalent(SIZES, scores, 0.6)["value"] == pytest.approx(math.sqrt(1e5))
    assert real_equivalent(SIZES, scores, 0.5)["value"] == pytest.approx(100)


def test_worth_more_than_all_real_data_is_a_bound() -> None:
    eq = real_equivalent(SIZES, [0.5, 0.7, 0.9], 0.95)
    assert eq["value"] is None and eq["bound"] == "above" and eq["limit"] == 10000
    assert "more than 10,000" in eq["text"]


def test_worth_nothing_is_a_bound() -> None:
    eq = real_equivalent(SIZES, [0.5, 0.7, 0.9], 0.1)  # e.g. a chance-level synthetic set
    assert eq["value"] is None and eq["bound"] == "below" and eq["limit"] == 100
    assert "fewer than 100" in eq["text"]


def test_a_noisy_non_monotone_curve_is_made_monotone_first() -> None:
    # 1000 real scored lower than 100 by noise: the isotonic fit pools them (0.6, 0.6).
    eq = real_equivalent(SIZES, [0.62, 0.58, 0.9], 0.6)
    assert eq["value"] == pytest.approx(100)  # the first size that reaches the pooled level
    eq = real_equivalent(SIZES, [0.62, 0.58, 0.9], 0.75)
    assert eq["value"] == pytest.approx(math.exp((math.log(1000) + math.log(10000)) / 2))


def test_interval_over_repeats_and_censoring() -> None:
    real = {100: {0: 0.5, 1: 0.52}, 1000: {0: 0.7, 1: 0.72}, 10000: {0: 0.9, 1: 0.92}}
    eq = equivalent_over_repeats(real, {0: 0.7, 1: 0.72})
    assert eq["estimate"]["value"] == pytest.approx(1000)
    assert eq["n"] == 2 and eq["interval"] == [pytest.approx(1000), pytest.approx(1000)]
    eq = equivalent_over_repeats(real, {0: 0.6, 1: 0.99})
    # Repeat 1 lies above its whole curve: it counts at 10,000 and the upper end is a bound.
    assert eq["per_repeat"][1]["bound"] == "above" and eq["censored"] == 1
    assert eq["ci"]["high_bound"] and eq["ci"]["high"] == 10000
    assert eq["estimate"]["value"] == pytest.approx(math.sqrt(math.sqrt(1e5) * 1e4))
    assert eq["ci"]["text"].endswith("to more than 10,000") and not eq["ci"]["resolved"]


def test_t_interval_and_paired_verdicts() -> None:
    s = t_interval([1.0, 2.0, 3.0])
    half = 4.302652729911275 * 1.0 / math.sqrt(3)  # t(0.975, 2) * sd / sqrt(n)
    assert s["ci_low"] == pytest.approx(2 - half) and s["ci_high"] == pytest.approx(2 + half)
    up = paired_difference({0: 0.9, 1: 0.91, 2: 0.92}, {0: 0.8, 1: 0.8, 2: 0.81})
    assert up["verdict"] == "higher" and up["mean"] == pytest.approx(0.106666, abs=1e-5)
    flat = paired_difference({0: 0.9, 1: 0.8}, {0: 0.85, 1: 0.85})
    assert flat["verdict"] == "no clear difference"
    assert paired_difference({0: 0.9}, {1: 0.9}) is None


def _cells() -> tuple[list[Cell], dict[str, dict]]:
    """Learning curves of a known world: real-only F1 = 0.1 * log10(n) + 0.5; the synthetic
    set alone scores like 1,000 real images; added to n real images it scores like 2n + 1000."""
    cells, metrics = [], {}

    def add(n_real: int, n_syn: int, k: int, f1: float) -> None:
        run_dir = f"r{n_real}-s{n_syn}/seed-{k}"
        cells.append(Cell("worth", run_dir, n_real / 10000, n_real, n_syn, k, 0, run_dir))
        metrics[run_dir] = {"macro_f1": f1}

    for k, jitter in enumerate((-0.002, 0.002)):
        for n in (100, 1000, 10000):
            add(n, 0, k, 0.1 * math.log10(n) + 0.5 + jitter)
            add(n, 5000, k, 0.1 * math.log10(2 * n + 1000) + 0.5 + jitter)
        add(0, 5000, k, 0.1 * math.log10(1000) + 0.5 + jitter)
    return cells, metrics


def test_worth_analysis_recovers_the_known_answers() -> None:
    cells, metrics = _cells()
    w = worth_analysis(cells, metrics, lambda c: c.run_dir, 5000)
    full = w["synthetic_equivalents"][-1]
    assert full["synthetic"] == 5000
    assert full["estimate"]["value"] == pytest.approx(1000, rel=1e-6)
    aug = {a["real"]: a for a in w["augmentation"]}
    assert aug[100]["gain"] == pytest.approx(12.0, rel=1e-6)  # 100 + synthetic ~ 1,200 real
    assert aug[1000]["gain"] == pytest.approx(3.0, rel=1e-6)
    assert aug[10000]["equivalent"]["estimate"]["bound"] == "above"  # 21,000 > all real data
    assert aug[100]["difference"]["verdict"] == "higher"
    assert "5,000 synthetic images are worth about 1,000 real ones" in w["answer"]
    assert "12.0x as much real data" in w["answer"]


def test_answers_for_the_edge_cases_are_stated_as_bounds() -> None:
    from synthmix.experiment.worth import answer

    real = {100: {0: 0.5, 1: 0.5}, 1000: {0: 0.7, 1: 0.7}}
    below = {"synthetic_equivalents": [{"synthetic": 600, **equivalent_over_repeats(
        real, {0: 0.05, 1: 0.06})}], "augmentation": []}
    assert answer(below) == ("600 synthetic images are worth fewer real images than the "
                             "smallest real subset tried (100 real images; n=2 repeats).")
    above = {"synthetic_equivalents": [{"synthetic": 600, **equivalent_over_repeats(
        real, {0: 0.9, 1: 0.91})}], "augmentation": []}
    assert answer(above).startswith("600 synthetic images are worth more than all 1,000 real")

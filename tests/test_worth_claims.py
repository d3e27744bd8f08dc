"""What the worth answer may claim, on learning curves with known answers: a claim follows its
verdict, intervals stay inside the sizes tried, the point lies inside its own interval."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from synthmix.experiment.plan import Cell
from synthmix.experiment.report_render import Table
from synthmix.experiment.report_worth import worth_section
from synthmix.experiment.worth import equivalent_over_repeats, real_equivalent, worth_analysis
from synthmix.experiment.worth_text import answer, worth_sentence

SIZES = (100, 1000, 10000)


def _world(plus_noise: tuple[float, ...], syn_noise: tuple[float, ...] = ()) -> dict:
    """Real-only F1 = 0.1 log10(n) + 0.5 (+ a per-repeat shift that cancels in a repeat's own
    inversion); 100 real + synthetic scores like 1,200 real images (a 12x gain) plus
    `plus_noise[k]` in repeat k; the synthetic set alone like 1,000 real (+ `syn_noise[k]`)."""
    cells, metrics = [], {}

    def add(n_real: int, n_syn: int, k: int, f1: float) -> None:
        run_dir = f"r{n_real}-s{n_syn}/seed-{k}"
        cells.append(Cell("worth", run_dir, n_real / 10000, n_real, n_syn, k, 0, run_dir))
        metrics[run_dir] = {"macro_f1": f1}

    for k, noise in enumerate(plus_noise):
        shift = 0.003 * k
        for n in SIZES:
            add(n, 0, k, 0.1 * math.log10(n) + 0.5 + shift)
        add(100, 5000, k, 0.1 * math.log10(1200) + 0.5 + shift + noise)
        add(0, 5000, k, 0.1 * math.log10(1000) + 0.5 + shift
            + (syn_noise[k] if syn_noise else 0.0))
    return worth_analysis(cells, metrics, lambda c: c.run_dir, 5000)


def test_a_clear_gain_is_claimed_with_its_interval_and_n() -> None:
    w = _world((0.0, 0.004, -0.004))  # small noise: 12x, interval well above 1x
    a = w["augmentation"][0]
    assert a["verdict"] == "higher" and a["difference"]["verdict"] == "higher"
    assert a["gain"] == pytest.approx(12.0, rel=0.05)
    assert 1 < a["gain_ci"]["low"] < a["gain"] < a["gain_ci"]["high"]
    assert "Added to 100 real images, they are like having 12.0x as much real data (95% CI " \
        in w["answer"]
    assert "n=3 repeats" in w["answer"] and "no clear effect" not in w["answer"].split(".")[1]


def test_an_unclear_gain_is_no_clear_effect_never_a_multiplier() -> None:
    # Repeat 1 gains nothing: the gain's interval reaches below 1x and the paired difference
    # includes 0, so the answer must not print "12x" (the old code printed the mean curve's
    # multiple beside "no clear difference").
    w = _world((0.0, -0.1, 0.0))
    a = w["augmentation"][0]
    assert a["difference"]["verdict"] == "no clear difference"
    assert a["verdict"] == "no clear effect" and a["gain_ci"]["low"] <= 1
    assert a["gain_ci"]["ci_text"].startswith("below 1x to ")  # the t interval ends under 100
    assert a["gain"] is None and a["gain_text"].startswith("no clear effect (95% CI below 1x")
    sentence = next(s for s in w["answer"].split(". ") if s.startswith("Added to 100"))
    assert "they have no clear effect (95% CI " in sentence and "as much real data" not in sentence
    assert "At no real size tried is the effect clear" in w["answer"]


def test_gain_interval_excluding_1x_is_not_claimed_against_its_paired_difference() -> None:
    # Every repeat's inversion is above 1x, but the paired difference is wide: no claim.
    w = _world((0.0, 0.0, 0.0))
    a = w["augmentation"][0]
    a["difference"] = {**a["difference"], "verdict": "no clear difference"}
    from synthmix.experiment.worth import gain_over_repeats

    assert gain_over_repeats(a["equivalent"], 100, a["difference"])["verdict"] == \
        "no clear effect"


def test_interval_ends_beyond_the_sizes_tried_are_bounds() -> None:
    real = {s: {0: 0.1 * math.log10(s) + 0.5, 1: 0.1 * math.log10(s) + 0.5} for s in SIZES}
    # Repeats at 150 and 8,000 real images: the t interval (n=2) runs far past both ends.
    eq = equivalent_over_repeats(real, {0: 0.1 * math.log10(150) + 0.5,
                                        1: 0.1 * math.log10(8000) + 0.5})
    ci = eq["ci"]
    assert ci["low_bound"] and ci["high_bound"] and ci["low"] == 100 and ci["high"] == 10000
    assert ci["text"] == "fewer than 100 to more than 10,000" and not ci["resolved"]
    assert eq["estimate"]["value"] == pytest.approx(math.sqrt(150 * 8000))
    text = worth_sentence({"synthetic": 600, "trained": 540, **eq})
    assert text == ("600 synthetic images (540 trained on, 60 held out): the data cannot tell "
                    "how many real images they are worth (95% CI fewer than 100 to more than "
                    "10,000 real images, n=2 repeats).")
    # One end inside: a number there, a bound at the other end, and "cannot tell" said.
    eq = equivalent_over_repeats(real, {0: 0.1 * math.log10(5000) + 0.5,
                                        1: 0.1 * math.log10(9000) + 0.5})
    assert not eq["ci"]["low_bound"] and eq["ci"]["high_bound"]
    assert eq["ci"]["text"].endswith(" to more than 10,000")
    assert "but the data cannot tell it to within a factor of 2" in worth_sentence(
        {"synthetic": 600, **eq})


def test_a_narrow_interval_is_stated_as_a_number() -> None:
    real = {s: {k: 0.1 * math.log10(s) + 0.5 for k in range(3)} for s in SIZES}
    eq = equivalent_over_repeats(real, {k: 0.1 * math.log10(v) + 0.5
                                        for k, v in enumerate((900, 1000, 1100))})
    assert eq["ci"]["resolved"] and 700 < eq["ci"]["low"] < 997 < eq["ci"]["high"] < 1300
    assert worth_sentence({"synthetic": 600, **eq}).startswith(
        "600 synthetic images are worth about 997 real ones (95% CI ")


def test_the_point_lies_inside_its_interval_where_the_old_estimate_did_not() -> None:
    # Repeat 0's curve dips (isotonic pooling flattens it at 0.8), repeat 1's rises: each
    # repeat's score sits exactly at 1,000 real images on its own curve, so the per-repeat
    # interval is [1,000, 1,000]. The old point, the mean curve read at the mean score,
    # was 681: outside its own interval.
    real = {100: {0: 0.5, 1: 0.5}, 1000: {0: 0.9, 1: 0.7}, 10000: {0: 0.7, 1: 0.9}}
    target = {0: 0.8, 1: 0.7}
    means = [sum(real[s].values()) / 2 for s in SIZES]
    old = real_equivalent(SIZES, means, sum(target.values()) / 2)["value"]
    assert old == pytest.approx(10 ** (2 + 0.25 / 0.3))
    eq = equivalent_over_repeats(real, target)
    lo, hi = eq["interval"]
    assert lo == pytest.approx(1000) and hi == pytest.approx(1000) and not lo <= old <= hi
    assert lo - 1e-6 <= eq["estimate"]["value"] <= hi + 1e-6


def test_report_tables_follow_the_same_rules(tmp_path: Path) -> None:
    w = _world((0.0, -0.1, 0.0), syn_noise=(0.0, 0.25, 0.0))
    blocks = worth_section(tmp_path, {"worth": w, "dataset": "known"})
    gain_table, eq_table = [b for b in blocks if isinstance(b, Table)]
    row = next(r for r in gain_table.rows if r[0] == "100")
    assert row[-1].startswith("no clear effect (95% CI ") and "12" not in row[-1]
    eq_row = eq_table.rows[0]
    assert eq_row[2].endswith("more than 10,000") and eq_row[3].startswith("cannot tell")
    assert (tmp_path / "figures" / "worth.png").is_file()
    assert answer(w) == w["answer"]


def test_sizes_count_the_real_validation_images_seen() -> None:
    import torch

    from synthmix.experiment.mixes import build_mix, real_val_count, synthetic_trained

    # 100 of a 5,000 pool validate on max(round(100 / 5000 * 556), 5 per class) = 50 images.
    assert real_val_count(100, 5000, 556, 10, 5) == 50
    assert real_val_count(2500, 5000, 556, 10, 5) == 278
    assert real_val_count(0, 5000, 556, 10, 5) == 0
    assert synthetic_trained(7000) == 6300
    y = torch.arange(10).repeat_interleave(500)
    vy = torch.arange(10).repeat_interleave(56)[:556]
    x, vx = torch.zeros(len(y), 1, 2, 2), torch.zeros(len(vy), 1, 2, 2)
    mixed = build_mix(100, 0, (x, y), (vx, vy), (x[:0], y[:0]), seed=0, min_val_per_class=5)
    assert len(mixed.val_y) == 50  # what the axis counts is what the classifier saw
    w = _world((0.0, 0.004, -0.004))
    from synthmix.experiment.worth import reanalyse

    # The same world, its real sizes now counting their validation images.

    for key in ("real_only", "real_plus_synthetic"):
        for p in w[key]:
            p["train"] = p["size"]
            p["size"] = p["size"] + (50 if p["size"] == 100 else p["size"] // 10)
    seen = reanalyse(w)
    assert seen["augmentation"][0]["real"] == 100 and seen["augmentation"][0]["seen"] == 150
    assert "Added to 100 real training images (150 real images seen, counting the 50 it " \
        "early-stopped on)" in seen["answer"]

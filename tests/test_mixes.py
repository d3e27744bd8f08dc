import numpy as np
import pytest
import torch

from synthmix.data.splits import stratified_prefix
from synthmix.errors import ConfigError
from synthmix.experiment.mixes import STUDY_MIXES, Mix, affordable_total, build_mix, mix_counts


def pool(n_per_class, k=10, offset=0.0, seed=0):
    y = torch.arange(k).repeat_interleave(n_per_class)
    x = torch.full((len(y), 1, 4, 4), offset) + torch.arange(len(y)).float()[:, None, None, None]
    return x, y


def test_stratified_prefix_is_balanced_nested_and_exact():
    labels = np.repeat(np.arange(10), 90)
    small = stratified_prefix(labels, 0.1, seed=3)
    big = stratified_prefix(labels, 0.5, seed=3)
    assert len(small) == 90 and len(big) == 450
    assert np.all(np.bincount(labels[small], minlength=10) == 9)
    assert set(small) <= set(big)  # 10% real is inside 50% real
    assert len(stratified_prefix(labels, None, 0, count=77)) == 77
    assert not np.array_equal(stratified_prefix(labels, 0.1, 4), small)


def test_fraction_of_pools_sizes_change_between_experiments():
    sizes = {m.name: mix_counts(m, "fraction-of-pools", 27000, 26880, None) for m in STUDY_MIXES}
    assert sizes == {
        "Exp 1": (27000, 0),
        "Exp 2": (0, 26880),
        "Exp 3": (13500, 13440),
        "Exp 4": (2700, 24192),
        "Exp 5": (24300, 2688),
    }


def test_fixed_total_sizes_are_equal():
    for m in STUDY_MIXES:
        r, s = mix_counts(m, "fixed-total", 27000, 26880, 20000)
        assert r + s == 20000
        assert r == round(20000 * m.real / (m.real + m.synthetic))
    with pytest.raises(ConfigError, match="pools hold"):
        mix_counts(Mix("big", 0.0, 1.0), "fixed-total", 100, 50, 80)


def test_fixed_total_default_is_what_every_mix_can_afford():
    # The study's own sizes: Exp 2 (all synthetic) can only have the 26,880 synthetic images.
    assert affordable_total(list(STUDY_MIXES), 27000, 26880) == 26880
    for m in STUDY_MIXES:
        r, s = mix_counts(m, "fixed-total", 27000, 26880, 26880)
        assert r <= 27000 and s <= 26880 and r + s == 26880
    # Exp 4 (10/90) with a small synthetic pool: 90% of the total must fit in 900 images.
    assert affordable_total([Mix("Exp 4", 0.1, 0.9)], 5000, 900) == 1000
    with pytest.raises(ConfigError, match="outside"):
        mix_counts(Mix("bad", 1.5, 0.0), "fraction-of-pools", 100, 50, None)


@pytest.mark.parametrize("semantics", ["fraction-of-pools", "fixed-total"])
def test_build_mix_sizes_balance_and_validation(semantics):
    real, real_val, syn = pool(90), pool(10, offset=10_000), pool(80, offset=-10_000)
    totals = set()
    for mix in STUDY_MIXES:
        n_real, n_syn = mix_counts(mix, semantics, 900, 800, 800)
        m = build_mix(n_real, n_syn, real, real_val, syn, seed=0)
        counts = np.bincount(m.train_y.numpy(), minlength=10)
        assert counts.max() - counts.min() <= 1, (mix, counts)
        is_real = m.train_x[:, 0, 0, 0] >= 0
        assert int(is_real.sum()) == m.n_real
        assert len(m.train_y) == m.n_real + m.n_synthetic
        if mix.real > 0:
            # 10% of the real data available: the same share of the real validation split.
            assert (m.val_x[:, 0, 0, 0] >= 10_000).all()
            assert len(m.val_y) == round(m.n_real / 900 * 100)
            totals.add(len(m.train_y))
        else:
            # no real data: held-out synthetic images, disjoint from the training ones
            assert (m.val_x[:, 0, 0, 0] < 0).all()
            assert len(m.val_y) > 0
            train_ids = set(m.train_x[:, 0, 0, 0].tolist())
            assert not train_ids & set(m.val_x[:, 0, 0, 0].tolist())
    if semantics == "fixed-total":
        assert totals == {800}
    else:
        assert len(totals) == 4  # the study's semantics: sizes differ

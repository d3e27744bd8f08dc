"""The study's splits (SPEC section 1): exact sizes, disjoint, stratified, seeded, saved."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from synthmix.data import StudySplits, make_study_splits
from synthmix.data.splits import SPLIT_NAMES, stratified_take
from synthmix.errors import ConfigError, DataError

# The official per-class train counts of MNIST; CIFAR-10 has 5,000 of each class.
MNIST_COUNTS = (5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949)


def labels_from_counts(counts: tuple[int, ...], seed: int = 0) -> np.ndarray:
    labels = np.repeat(np.arange(len(counts)), counts)
    return np.random.default_rng(seed).permutation(labels).astype(np.int64)


@pytest.mark.parametrize(("counts", "sizes"), [
    (MNIST_COUNTS, (27000, 3000, 27000, 3000)),
    ((5000,) * 10, (22500, 2500, 22500, 2500)),
])
def test_study_sizes_disjoint_and_stratified(counts: tuple[int, ...],
                                             sizes: tuple[int, ...]) -> None:
    labels = labels_from_counts(counts)
    s = make_study_splits(labels, seed=0)
    assert tuple(s.sizes()[n] for n in SPLIT_NAMES) == sizes
    sets = [getattr(s, n) for n in SPLIT_NAMES]
    union = np.concatenate(sets)
    assert len(np.unique(union)) == len(union) == len(labels)  # disjoint and covering
    assert not s.overlap
    total = np.bincount(labels)
    for idx in sets:
        assert idx.dtype == np.int64 and (np.diff(idx) > 0).all()  # sorted, unique
        share = len(idx) / len(labels)
        # each class within one image of its exact proportional share (largest remainder)
        assert np.all(np.abs(np.bincount(labels[idx], minlength=10) - total * share) < 1 + 1e-9)


def test_same_seed_same_splits_other_seed_differs() -> None:
    labels = labels_from_counts((300, 200, 100))
    a, b = make_study_splits(labels, seed=3), make_study_splits(labels, seed=3)
    c = make_study_splits(labels, seed=4)
    for n in SPLIT_NAMES:
        np.testing.assert_array_equal(getattr(a, n), getattr(b, n))
    assert not np.array_equal(a.diffusion_train, c.diffusion_train)


def test_full_data_scenario_overlaps_on_purpose() -> None:
    labels = labels_from_counts(MNIST_COUNTS)
    s = make_study_splits(labels, seed=0, diffusion_fraction=1.0)
    assert s.overlap
    assert (len(s.diffusion_train), len(s.diffusion_val)) == (54000, 6000)
    np.testing.assert_array_equal(s.classifier_train, s.diffusion_train)
    np.testing.assert_array_equal(s.classifier_val, s.diffusion_val)
    assert len(np.intersect1d(s.diffusion_train, s.diffusion_val)) == 0


def test_other_fractions() -> None:
    labels = labels_from_counts((5000,) * 10)
    s = make_study_splits(labels, diffusion_fraction=0.2, val_fraction=0.2)
    assert s.sizes() == {"diffusion_train": 8000, "diffusion_val": 2000,
                         "classifier_train": 32000, "classifier_val": 8000}


def test_stratified_take_exact_k_with_uneven_classes() -> None:
    labels = np.array([0] * 7 + [1] * 5 + [2] * 1, dtype=np.int64)
    rng = np.random.default_rng(0)
    for k in range(len(labels) + 1):
        taken, rest = stratified_take(np.arange(len(labels)), labels, k, rng)
        assert len(taken) == k and len(np.union1d(taken, rest)) == len(labels)
        counts = np.bincount(labels[taken], minlength=3)
        assert np.all(np.abs(counts - np.array([7, 5, 1]) * k / len(labels)) < 1)


@pytest.mark.parametrize("kwargs", [
    {"diffusion_fraction": 0.0}, {"diffusion_fraction": 1.5}, {"val_fraction": 1.0},
])
def test_bad_fractions(kwargs: dict[str, float]) -> None:
    with pytest.raises(ConfigError):
        make_study_splits(np.zeros(10, dtype=np.int64), **kwargs)


@pytest.mark.parametrize("suffix", [".npz", ".json"])
def test_save_load_roundtrip(tmp_path: Path, suffix: str) -> None:
    s = make_study_splits(labels_from_counts((40, 60)), seed=7, diffusion_fraction=0.5)
    path = tmp_path / f"splits{suffix}"
    s.save(path)
    t = StudySplits.load(path)
    for n in SPLIT_NAMES:
        np.testing.assert_array_equal(getattr(s, n), getattr(t, n))
        assert getattr(t, n).dtype == np.int64
    assert (t.seed, t.diffusion_fraction, t.val_fraction, t.overlap) == (7, 0.5, 0.1, False)
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # no temporary left


def test_load_errors_name_the_file(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="splits file not found"):
        StudySplits.load(tmp_path / "none.npz")
    (tmp_path / "bad.json").write_text('{"seed": 0}')
    with pytest.raises(DataError, match="bad.json: not a valid splits file"):
        StudySplits.load(tmp_path / "bad.json")
    s = make_study_splits(labels_from_counts((40, 60)))
    with pytest.raises(DataError, match="does not fit a train split of 50"):
        s.check_fits(50)

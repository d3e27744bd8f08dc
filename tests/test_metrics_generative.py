"""FID, KID, precision/recall and nearest neighbours on Gaussian features, against closed forms."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.linalg
import torch

from synthmix.metrics import generative
from synthmix.metrics.generative import (
    frechet_distance,
    kernel_distance,
    nearest_neighbours,
    per_class_metrics_from_features,
    precision_recall,
)


def _gaussian(n: int, dim: int, seed: int, mix: np.ndarray | None = None) -> np.ndarray:
    x = np.random.default_rng(seed).standard_normal((n, dim))
    return x @ mix if mix is not None else x


def _closed_form_fid(a: np.ndarray, b: np.ndarray) -> float:
    mu_a, mu_b = a.mean(0), b.mean(0)
    cov_a, cov_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    covmean = scipy.linalg.sqrtm(cov_a @ cov_b).real
    return float(((mu_a - mu_b) ** 2).sum() + np.trace(cov_a + cov_b - 2 * covmean))


def test_fid_of_a_set_with_itself_is_zero_and_noise_is_far() -> None:
    mix = np.random.default_rng(9).standard_normal((8, 8))
    a = _gaussian(400, 8, 0, mix)
    assert abs(frechet_distance(a, a)) < 1e-3 * np.trace(np.cov(a, rowvar=False))
    noise = 3.0 * _gaussian(400, 8, 1) + 2.0
    assert frechet_distance(a, noise) > 50.0


def test_fid_equals_closed_form_frechet_distance() -> None:
    rng = np.random.default_rng(3)
    a = _gaussian(300, 6, 0, rng.standard_normal((6, 6)))
    b = _gaussian(250, 6, 1, rng.standard_normal((6, 6))) + 0.5
    assert frechet_distance(a, b) == pytest.approx(_closed_form_fid(a, b), rel=1e-6)
    # A pure shift by delta leaves the covariances equal: FID = |delta|^2.
    delta = np.arange(6) * 0.1
    assert frechet_distance(a, a + delta) == pytest.approx(float((delta**2).sum()), rel=1e-6)


def _unbiased_poly_mmd(x: np.ndarray, y: np.ndarray) -> float:
    def k(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return (a @ b.T / a.shape[1] + 1.0) ** 3

    m = x.shape[0]
    kxx, kyy, kxy = k(x, x), k(y, y), k(x, y)
    off = (kxx.sum() - np.trace(kxx) + kyy.sum() - np.trace(kyy)) / (m * (m - 1))
    return float(off - 2 * kxy.sum() / m**2)


def test_kid_matches_unbiased_mmd_and_is_near_zero_for_same_distribution() -> None:
    a, b = _gaussian(200, 5, 0), _gaussian(200, 5, 1)
    # With subsets as large as the sets every subset is the whole set: KID is the exact MMD^2.
    mean, std = kernel_distance(a, b + 0.3, subset_size=200, subsets=3)
    assert mean == pytest.approx(_unbiased_poly_mmd(a, b + 0.3), rel=1e-9)
    assert std < 1e-9
    same, _ = kernel_distance(a, b, subset_size=100, subsets=50)
    shifted, _ = kernel_distance(a, b + 1.0, subset_size=100, subsets=50)
    itself, _ = kernel_distance(a, a, subset_size=100, subsets=50)
    assert shifted > 0.5
    assert abs(same) < 0.02 * shifted and abs(itself) < 0.02 * shifted


def test_kid_subsets_come_from_the_seed_not_the_global_generator() -> None:
    a, b = _gaussian(150, 4, 0), _gaussian(150, 4, 1) + 0.2
    state = torch.random.get_rng_state()
    first = kernel_distance(a, b, subset_size=50, subsets=10, seed=5)
    assert torch.equal(torch.random.get_rng_state(), state)
    torch.manual_seed(123)
    assert kernel_distance(a, b, subset_size=50, subsets=10, seed=5) == first
    assert kernel_distance(a, b, subset_size=50, subsets=10, seed=6) != first


def _brute_precision_recall(real: np.ndarray, fake: np.ndarray, k: int) -> tuple[float, float]:
    def radii(x: np.ndarray) -> np.ndarray:
        d = np.linalg.norm(x[:, None] - x[None], axis=-1)
        return np.sort(d, axis=1)[:, k]

    d = np.linalg.norm(fake[:, None] - real[None], axis=-1)  # (N_fake, N_real)
    precision = (d <= radii(real)[None]).any(1).mean()
    recall = (radii(fake)[None] >= d.T).any(1).mean()
    return float(precision), float(recall)


def test_precision_recall_against_brute_force_with_chunking(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(generative, "_CHUNK_ELEMENTS", 300)  # several rows per chunk, many chunks
    real, fake = _gaussian(120, 3, 0), 0.8 * _gaussian(90, 3, 1) + 0.4
    pr = precision_recall(real, fake, k=4)
    assert (pr["precision"], pr["recall"]) == pytest.approx(_brute_precision_recall(real, fake, 4))


def test_precision_recall_semantics_on_gaussians() -> None:
    real, other = _gaussian(1000, 8, 0), _gaussian(1000, 8, 1)
    same = precision_recall(real, other, k=3)
    assert same["precision"] > 0.8 and same["recall"] > 0.8
    shifted = precision_recall(real, other + 3.0, k=3)
    assert shifted["precision"] < 0.2 and shifted["recall"] < 0.2
    # Mode collapse: samples all look real (high precision) but cover little (low recall).
    collapsed = precision_recall(real, 0.3 * other, k=3)
    assert collapsed["precision"] > 0.95 and collapsed["recall"] < 0.3


def test_nearest_neighbours_against_brute_force(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(generative, "_CHUNK_ELEMENTS", 500)
    real, fake = _gaussian(140, 7, 0), _gaussian(60, 7, 1)
    dist, idx = nearest_neighbours(real, fake, k=3)
    d = np.linalg.norm(fake[:, None] - real[None], axis=-1)
    ref_idx = np.argsort(d, axis=1)[:, :3]
    assert idx.shape == (60, 3) and idx.dtype == torch.int64
    np.testing.assert_array_equal(idx.numpy(), ref_idx)
    np.testing.assert_allclose(dist.numpy(), np.take_along_axis(d, ref_idx, 1), rtol=1e-9)
    # A copy of a real sample is found at distance ~0: the memorisation check.
    dist, idx = nearest_neighbours(real, real[[17, 3]], k=1)
    assert idx[:, 0].tolist() == [17, 3] and float(dist.max()) < 1e-6


def test_per_class_metrics_from_features() -> None:
    real = np.concatenate([_gaussian(200, 4, 0), _gaussian(200, 4, 1) + 5.0])
    fake = np.concatenate([_gaussian(150, 4, 2), _gaussian(3, 4, 3) + 5.0])
    real_y = np.repeat([0, 1], 200)
    fake_y = np.repeat([0, 1], [150, 3])
    out = per_class_metrics_from_features(
        real, real_y, fake, fake_y, num_classes=3, k=3, class_names=["a", "b", "c"]
    )
    assert out["min_fid_samples"] == 8 and out["feature_dim"] == 4
    a, b, c = out["per_class"]
    assert a["name"] == "a" and (a["n_real"], a["n_fake"]) == (200, 150) and a["note"] is None
    assert a["fid"] == pytest.approx(frechet_distance(real[:200], fake[:150]))
    assert a["precision"] == precision_recall(real[:200], fake[:150])["precision"]
    assert b["fid"] is None and b["precision"] is None and "FID needs" in b["note"]
    assert (c["n_real"], c["n_fake"]) == (0, 0) and c["fid"] is None
    with pytest.raises(ValueError, match="labels"):
        per_class_metrics_from_features(real, real_y + 2, fake, fake_y, num_classes=3)

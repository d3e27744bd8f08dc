"""How close synthetic images are to real ones, measured in a feature space.

FID and KID are computed by torchmetrics on precomputed features (an identity `feature`
module), so images go through the feature network once for all metrics. Precision and
recall follow Kynkäänniemi et al. 2019 (k-NN manifolds); distances are computed in chunks so
30k x 30k comparisons fit in memory.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import nn
from torchmetrics.image.fid import FrechetInceptionDistance
from torchmetrics.image.kid import KernelInceptionDistance

from synthmix.metrics.features import extract_features

# Elements of one chunk of the distance matrix: 2**24 float64 = 128 MiB.
_CHUNK_ELEMENTS = 2**24


class _PrecomputedFeatures(nn.Module):
    """Identity `feature` module: lets torchmetrics' FID/KID consume features directly."""

    def __init__(self, num_features: int) -> None:
        super().__init__()
        self.num_features = num_features

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return features


def _as_features(features: torch.Tensor | np.ndarray, what: str, min_rows: int = 1) -> torch.Tensor:
    feats = torch.as_tensor(features).to(torch.float64)
    if feats.ndim != 2 or feats.shape[0] < min_rows:
        raise ValueError(
            f"{what}: expected (N >= {min_rows}, D) features, got {tuple(feats.shape)}"
        )
    return feats


def _pair(
    real_feats: torch.Tensor | np.ndarray, fake_feats: torch.Tensor | np.ndarray, min_rows: int
) -> tuple[torch.Tensor, torch.Tensor]:
    real = _as_features(real_feats, "real features", min_rows)
    fake = _as_features(fake_feats, "fake features", min_rows)
    if real.shape[1] != fake.shape[1]:
        raise ValueError(f"feature dims differ: real {real.shape[1]}, fake {fake.shape[1]}")
    return real, fake


def frechet_distance(
    real_feats: torch.Tensor | np.ndarray, fake_feats: torch.Tensor | np.ndarray
) -> float:
    """Fréchet distance between Gaussians fitted to two feature sets (FID in that space)."""
    real, fake = _pair(real_feats, fake_feats, min_rows=2)
    # sync_on_compute=False: the features are this process's; no rank gathers others' here.
    metric = FrechetInceptionDistance(
        feature=_PrecomputedFeatures(real.shape[1]), sync_on_compute=False
    )
    metric.update(real, real=True)
    metric.update(fake, real=False)
    return float(metric.compute())


def kernel_distance(
    real_feats: torch.Tensor | np.ndarray,
    fake_feats: torch.Tensor | np.ndarray,
    subset_size: int = 1000,
    subsets: int = 100,
    seed: int = 0,
) -> tuple[float, float]:
    """KID (unbiased polynomial-kernel MMD^2) mean and std over random subsets.

    `subset_size` is capped at the smaller set; the subsets are drawn from `seed`.
    """
    real, fake = _pair(real_feats, fake_feats, min_rows=2)
    size = min(subset_size, real.shape[0], fake.shape[0])
    with warnings.catch_warnings():
        # torchmetrics warns that it keeps all features in memory: we hand it features anyway.
        warnings.simplefilter("ignore", UserWarning)
        metric = KernelInceptionDistance(
            feature=_PrecomputedFeatures(real.shape[1]), subsets=subsets, subset_size=size,
            sync_on_compute=False,
        )
    metric.update(real, real=True)
    metric.update(fake, real=False)
    # torchmetrics draws subsets from the global generator: seed it locally, restore after.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        kid_mean, kid_std = metric.compute()
    return float(kid_mean), float(kid_std)


def fid_kid(
    feature_net: nn.Module,
    real_images: np.ndarray | torch.Tensor,
    fake_images: np.ndarray | torch.Tensor,
    kid_subset_size: int = 1000,
    kid_subsets: int = 100,
    seed: int = 0,
    batch_size: int = 256,
    progress: bool = False,
) -> dict[str, Any]:
    """FID and KID of fake vs real images (uint8 NHWC or float NCHW) in `feature_net`'s space."""
    real = extract_features(feature_net, real_images, batch_size, progress)
    fake = extract_features(feature_net, fake_images, batch_size, progress)
    kid_mean, kid_std = kernel_distance(real, fake, kid_subset_size, kid_subsets, seed)
    return {
        "fid": frechet_distance(real, fake),
        "kid_mean": kid_mean,
        "kid_std": kid_std,
        "kid_subset_size": min(kid_subset_size, real.shape[0], fake.shape[0]),
        "n_real": int(real.shape[0]),
        "n_fake": int(fake.shape[0]),
        "feature_space": getattr(feature_net, "name", type(feature_net).__name__),
        "feature_dim": int(real.shape[1]),
    }


def _chunk_rows(n_ref: int) -> int:
    return max(1, _CHUNK_ELEMENTS // max(1, n_ref))


def _knn_radii(feats: torch.Tensor, k: int) -> torch.Tensor:
    """Distance from each point to its k-th nearest neighbour in the same set (self excluded)."""
    radii = []
    step = _chunk_rows(feats.shape[0])
    for start in range(0, feats.shape[0], step):
        dist = torch.cdist(feats[start : start + step], feats)  # (chunk, N)
        # The smallest distance is the point to itself, so the k-th neighbour is at index k.
        radii.append(dist.topk(k + 1, dim=1, largest=False).values[:, k])
    return torch.cat(radii)  # (N,)


def _inside_manifold(queries: torch.Tensor, ref: torch.Tensor, radii: torch.Tensor) -> torch.Tensor:
    """Whether each query lies within the k-NN ball of at least one reference point."""
    inside = []
    step = _chunk_rows(ref.shape[0])
    for start in range(0, queries.shape[0], step):
        dist = torch.cdist(queries[start : start + step], ref)  # (chunk, N_ref)
        inside.append((dist <= radii[None, :]).any(dim=1))
    return torch.cat(inside)  # (N_queries,)


def precision_recall(
    real_feats: torch.Tensor | np.ndarray, fake_feats: torch.Tensor | np.ndarray, k: int = 3
) -> dict[str, float]:
    """Improved precision and recall (Kynkäänniemi et al. 2019) with k-NN radii manifolds.

    precision: fraction of fake samples inside the real manifold (quality);
    recall: fraction of real samples inside the fake manifold (coverage).
    """
    real, fake = _pair(real_feats, fake_feats, min_rows=k + 1)
    real_radii = _knn_radii(real, k)
    fake_radii = _knn_radii(fake, k)
    return {
        "precision": float(_inside_manifold(fake, real, real_radii).double().mean()),
        "recall": float(_inside_manifold(real, fake, fake_radii).double().mean()),
    }


def nearest_neighbours(
    real_feats: torch.Tensor | np.ndarray, fake_feats: torch.Tensor | np.ndarray, k: int = 1
) -> tuple[torch.Tensor, torch.Tensor]:
    """For each fake sample its k nearest real samples: Euclidean distances and indices (N_fake, k).

    Used for the memorisation check (is a synthetic image a copy of a training image?); works on
    any (N, D) vectors, e.g. flattened pixels as well as features.
    """
    real, fake = _pair(real_feats, fake_feats, min_rows=1)
    if not 1 <= k <= real.shape[0]:
        raise ValueError(f"k={k} must be in 1..{real.shape[0]} (the number of real samples)")
    dists, indices = [], []
    step = _chunk_rows(real.shape[0])
    for start in range(0, fake.shape[0], step):
        dist = torch.cdist(fake[start : start + step], real)  # (chunk, N_real)
        top = dist.topk(k, dim=1, largest=False)  # sorted, nearest first
        dists.append(top.values)
        indices.append(top.indices)
    return torch.cat(dists), torch.cat(indices)  # (N_fake, k) float64, (N_fake, k) int64


def _class_entry(
    real: torch.Tensor, fake: torch.Tensor, k: int, min_fid_samples: int
) -> dict[str, Any]:
    """Precision, recall and FID of one class, or None with the reason in `note`."""
    n_real, n_fake = int(real.shape[0]), int(fake.shape[0])
    entry: dict[str, Any] = {"n_real": n_real, "n_fake": n_fake}
    notes = []
    if min(n_real, n_fake) > k:
        entry.update(precision_recall(real, fake, k))
    else:
        entry.update(precision=None, recall=None)
        notes.append(f"precision/recall need more than k={k} images per set")
    if min(n_real, n_fake) >= min_fid_samples:
        entry["fid"] = frechet_distance(real, fake)
    else:
        entry["fid"] = None
        notes.append(f"FID needs >= {min_fid_samples} images per set")
    entry["note"] = "; ".join(notes) or None
    return entry


def per_class_metrics_from_features(
    real_feats: torch.Tensor | np.ndarray,
    real_labels: Sequence[int] | np.ndarray,
    fake_feats: torch.Tensor | np.ndarray,
    fake_labels: Sequence[int] | np.ndarray,
    num_classes: int,
    k: int = 3,
    min_fid_samples: int | None = None,
    class_names: Sequence[str] | None = None,
) -> dict[str, Any]:
    """Per-class precision/recall/FID of labelled features; see per_class_generative_metrics."""
    real = _as_features(real_feats, "real features")
    fake = _as_features(fake_feats, "fake features")
    real_y = np.asarray(real_labels).reshape(-1)
    fake_y = np.asarray(fake_labels).reshape(-1)
    for what, feats, y in (("real", real, real_y), ("fake", fake, fake_y)):
        if y.shape[0] != feats.shape[0]:
            raise ValueError(f"{what}: {feats.shape[0]} images but {y.shape[0]} labels")
        if y.size and (y.min() < 0 or y.max() >= num_classes):
            raise ValueError(f"{what}: labels must be in 0..{num_classes - 1}")
    dim = int(real.shape[1])
    # A covariance of D features needs many more than D samples to be estimated at all well.
    min_fid = min_fid_samples if min_fid_samples is not None else 2 * dim
    per_class = []
    for c in range(num_classes):
        entry = {"class": c, "name": class_names[c] if class_names else str(c)}
        real_c = real[torch.from_numpy(real_y == c)]
        fake_c = fake[torch.from_numpy(fake_y == c)]
        entry.update(_class_entry(real_c, fake_c, k, max(2, min_fid)))
        per_class.append(entry)
    return {"k": k, "feature_dim": dim, "min_fid_samples": max(2, min_fid), "per_class": per_class}


def per_class_generative_metrics(
    feature_net: nn.Module,
    real_images: np.ndarray | torch.Tensor,
    real_labels: Sequence[int] | np.ndarray,
    fake_images: np.ndarray | torch.Tensor,
    fake_labels: Sequence[int] | np.ndarray,
    num_classes: int,
    k: int = 3,
    min_fid_samples: int | None = None,
    class_names: Sequence[str] | None = None,
    batch_size: int = 256,
    progress: bool = False,
) -> dict[str, Any]:
    """Precision, recall and FID of each class's synthetic images against its real ones.

    FID of a class is computed only when both sets have at least `min_fid_samples` images
    (default 2 x feature dim); otherwise it is None and `note` says why. Returns
    {"k", "feature_dim", "min_fid_samples", "feature_space", "per_class": [{"class", "name",
    "n_real", "n_fake", "precision", "recall", "fid", "note"}, ...]}.
    """
    real = extract_features(feature_net, real_images, batch_size, progress)
    fake = extract_features(feature_net, fake_images, batch_size, progress)
    result = per_class_metrics_from_features(
        real, real_labels, fake, fake_labels, num_classes, k, min_fid_samples, class_names
    )
    result["feature_space"] = getattr(feature_net, "name", type(feature_net).__name__)
    return result

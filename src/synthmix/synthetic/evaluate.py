"""How good is a synthetic set? Distribution metrics and a memorisation check.

`evaluate_quality` compares synthetic with real images in a feature space (FID, KID,
precision/recall of Kynkäänniemi et al. 2019, per class) and looks for copies of real images
by nearest neighbours in pixel space, next to the same statistic for real images so the
distance means something. CAS (a classifier trained on the set) lives in `synthetic.cas`.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from synthmix.errors import ConfigError, DataError
from synthmix.metrics.speckle import speckle_summary

EXAMPLES_PER_CLASS = 2  # synthetic images per class shown next to their nearest real ones
MAX_EXAMPLE_ROWS = 40
NEIGHBOURS_SHOWN = 3
GRID_PER_CLASS = 10
SAMPLES_PNG = "samples_per_class.png"
NEIGHBOURS_PNG = "nearest_neighbours.png"
PIXEL_DISTANCE = "Euclidean distance over all H*W*C pixels scaled to [0, 1]"
# Two different uint8 images are >= 1/255 apart; cdist's matmul path leaves ~1e-8 on copies.
COPY_TOLERANCE = 0.5 / 255


@dataclass(frozen=True, eq=False)
class Reference:
    """Real images searched for near-copies: ideally the DDPM's own training images."""

    images: np.ndarray  # (N, H, W, C) uint8
    labels: np.ndarray  # (N,)
    description: str


@contextmanager
def _timed(timings: dict[str, float], part: str) -> Iterator[None]:
    start = time.perf_counter()
    try:
        yield
    finally:
        timings[part] = round(timings.get(part, 0.0) + time.perf_counter() - start, 3)


def stratified_subsample(labels: np.ndarray, max_images: int, seed: int) -> np.ndarray:
    """Sorted indices of at most `max_images` labels, class-stratified; all of them if fewer."""
    from synthmix.data.splits import stratified_prefix

    labels = np.asarray(labels)
    if len(labels) <= max_images:
        return np.arange(len(labels))
    return stratified_prefix(labels, None, seed, count=max_images)


def _check_side(what: str, images: np.ndarray, labels: Any, num_classes: int,
                min_images: int) -> tuple[np.ndarray, np.ndarray]:
    images = np.asarray(images)
    labels = np.asarray(labels).reshape(-1).astype(np.int64)
    if images.dtype != np.uint8 or images.ndim != 4:
        raise ValueError(f"{what} images must be uint8 (N, H, W, C), got {images.dtype} "
                         f"{images.shape}")
    if len(labels) != len(images):
        raise ValueError(f"{what}: {len(images)} images but {len(labels)} labels")
    if len(labels) and (labels.min() < 0 or labels.max() >= num_classes):
        raise ValueError(f"{what}: labels must be in 0..{num_classes - 1}")
    if len(images) < min_images:
        raise DataError(f"{what}: {len(images)} images; the metrics need at least {min_images}")
    return images, labels


def evaluate_quality(
    feature_classifier: nn.Module,
    real_images: np.ndarray,
    real_labels: np.ndarray,
    syn_images: np.ndarray,
    syn_labels: np.ndarray,
    class_names: Sequence[str],
    out_dir: Path,
    *,
    max_images: int = 5000,
    k: int = 3,
    seed: int = 0,
    inception: str | None = None,
    reference: Reference | None = None,
    progress: bool = False,
) -> dict[str, Any]:
    """FID/KID, precision/recall (overall and per class) and a memorisation check of uint8 NHWC
    synthetic vs real images; writes the two PNGs into `out_dir`, returns JSON-able numbers.

    `reference` is where copies are looked for (default: `real_images`, leave-one-out).
    """
    from synthmix.metrics.features import FeatureNet

    if max_images < k + 1:
        raise ConfigError(f"max_images={max_images} must exceed k={k}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    timings: dict[str, float] = {}
    start = time.perf_counter()
    real_images, real_labels, syn_images, syn_labels = _check_sides(
        real_images, real_labels, syn_images, syn_labels, len(class_names), k + 1)
    net = FeatureNet(feature_classifier)  # type: ignore[arg-type]
    real_idx, syn_idx, real_f, syn_f = _subsample_features(
        net, real_images, real_labels, syn_images, syn_labels, max_images, seed, timings, progress)
    result: dict[str, Any] = {
        "feature_space": net.name, "feature_dim": int(real_f.shape[1]),
        "n_real": len(real_idx), "n_synthetic": len(syn_idx),
        "n_real_available": len(real_images), "n_synthetic_available": len(syn_images),
        "max_images": max_images, "k": k, "seed": seed,
    }
    result.update(_distribution_metrics(real_f, real_labels[real_idx], syn_f, syn_labels[syn_idx],
                                        class_names, k, seed, timings))
    reference, examples = _memorisation(net, (real_images, real_labels, real_idx, real_f),
                                        (syn_images, syn_labels, syn_idx, syn_f), reference,
                                        seed, timings, result, progress)
    _pictures_and_speckle(real_images[real_idx], syn_images, syn_labels, syn_idx, examples,
                          reference, class_names, seed, out_dir, timings, result)
    if inception:
        with _timed(timings, "inception"):
            result["inception"] = _inception_metrics(
                inception, next(feature_classifier.parameters()).device, real_images[real_idx],
                syn_images[syn_idx], seed, progress)
    timings["total"] = round(time.perf_counter() - start, 3)
    result["timings_s"] = timings
    return result


def _check_sides(
    real_images: np.ndarray, real_labels: np.ndarray, syn_images: np.ndarray,
    syn_labels: np.ndarray, num_classes: int, min_images: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Both sides checked by `_check_side`, and their images of one (H, W, C)."""
    real_images, real_labels = _check_side("real", real_images, real_labels, num_classes,
                                           min_images)
    syn_images, syn_labels = _check_side("synthetic", syn_images, syn_labels, num_classes,
                                         min_images)
    if real_images.shape[1:] != syn_images.shape[1:]:
        raise DataError(f"real images are {real_images.shape[1:]} (H, W, C) but synthetic ones "
                        f"{syn_images.shape[1:]}")
    return real_images, real_labels, syn_images, syn_labels


def _subsample_features(
    net: nn.Module, real_images: np.ndarray, real_labels: np.ndarray, syn_images: np.ndarray,
    syn_labels: np.ndarray, max_images: int, seed: int, timings: dict[str, float],
    progress: bool,
) -> tuple[np.ndarray, np.ndarray, torch.Tensor, torch.Tensor]:
    """Class-stratified subsamples of at most `max_images` per side, and their features."""
    from synthmix.metrics.features import extract_features

    with _timed(timings, "subsample"):
        real_idx = stratified_subsample(real_labels, max_images, seed)
        syn_idx = stratified_subsample(syn_labels, max_images, seed + 1)
    with _timed(timings, "features"):
        real_f = extract_features(net, real_images[real_idx], progress=progress)  # (Nr, D)
        syn_f = extract_features(net, syn_images[syn_idx], progress=progress)  # (Ns, D)
    return real_idx, syn_idx, real_f, syn_f


def _distribution_metrics(
    real_f: torch.Tensor, real_y: np.ndarray, syn_f: torch.Tensor, syn_y: np.ndarray,
    class_names: Sequence[str], k: int, seed: int, timings: dict[str, float],
) -> dict[str, Any]:
    """FID/KID, precision/recall (k nearest neighbours) and the per-class table."""
    from synthmix.metrics.generative import precision_recall

    out: dict[str, Any] = {}
    with _timed(timings, "fid_kid"):
        out.update(_fid_kid(real_f, syn_f, seed))
    with _timed(timings, "precision_recall"):
        out.update(precision_recall(real_f, syn_f, k))
    with _timed(timings, "per_class"):
        out.update(_per_class(real_f, real_y, syn_f, syn_y, class_names, k))
    return out


def _pictures_and_speckle(
    real_subsample: np.ndarray, syn_images: np.ndarray, syn_labels: np.ndarray,
    syn_idx: np.ndarray, examples: list[dict[str, Any]], reference: Reference,
    class_names: Sequence[str], seed: int, out_dir: Path, timings: dict[str, float],
    result: dict[str, Any],
) -> None:
    """The two PNGs into `out_dir`, and isolated pixels (salt-and-pepper noise) of the
    synthetic subsample beside the real one's; stores result["files"] and ["isolated_pixels"]."""
    with _timed(timings, "figures"):
        _samples_grid(syn_images, syn_labels, class_names, seed, out_dir / SAMPLES_PNG)
        _neighbours_figure(syn_images, examples, reference, class_names, out_dir / NEIGHBOURS_PNG)
    result["files"] = {"samples_per_class": SAMPLES_PNG, "nearest_neighbours": NEIGHBOURS_PNG}
    with _timed(timings, "isolated_pixels"):
        result["isolated_pixels"] = {"synthetic": speckle_summary(syn_images[syn_idx]),
                                     "real": speckle_summary(real_subsample)}


def _memorisation(
    net: nn.Module, real_side: tuple[np.ndarray, np.ndarray, np.ndarray, torch.Tensor],
    syn_side: tuple[np.ndarray, np.ndarray, np.ndarray, torch.Tensor],
    reference: Reference | None, seed: int, timings: dict[str, float], result: dict[str, Any],
    progress: bool,
) -> tuple[Reference, list[dict[str, Any]]]:
    """Run memorisation_check of the synthetic subsample against `reference` (default: the real
    images, leave-one-out); each side is (images, labels, subsample indices, features). Stores
    result["memorisation"] and result["memorisation_examples"] (indices into all synthetic
    images)."""
    from synthmix.metrics.features import extract_features

    real_images, real_labels, real_idx, real_f = real_side
    syn_images, syn_labels, syn_idx, syn_f = syn_side
    own: np.ndarray | None = None
    with _timed(timings, "reference_features"):
        if reference is None:
            reference = Reference(real_images, real_labels,
                                  "the real images compared against (each one left out)")
            own = real_idx  # a real query's own index in the reference, excluded
        if own is not None and len(real_idx) == len(real_images):
            ref_f = real_f
        else:  # the whole reference, so no copy is missed
            ref_f = extract_features(net, reference.images, progress=progress)
    with _timed(timings, "memorisation"):
        memo, examples = memorisation_check(syn_images[syn_idx], syn_labels[syn_idx], syn_f,
                                            real_images[real_idx], own, reference, ref_f, seed)
    for e in examples:
        e["synthetic_index"] = int(syn_idx[e.pop("row")])
    result["memorisation"] = memo
    result["memorisation_examples"] = examples
    return reference, examples


def _fid_kid(real_f: torch.Tensor, syn_f: torch.Tensor, seed: int) -> dict[str, Any]:
    from synthmix.metrics.generative import frechet_distance, kernel_distance

    kid_mean, kid_std = kernel_distance(real_f, syn_f, seed=seed)
    out: dict[str, Any] = {
        "fid": frechet_distance(real_f, syn_f), "kid_mean": kid_mean, "kid_std": kid_std,
        "kid_subset_size": min(1000, real_f.shape[0], syn_f.shape[0]),
    }
    if min(real_f.shape[0], syn_f.shape[0]) < 2 * real_f.shape[1]:
        # Too few samples for a D x D covariance: FID is biased upwards; compare like with like.
        out["fid_note"] = f"fewer than 2 x {real_f.shape[1]} feature dims images per side"
    return out


def _per_class(real_f: torch.Tensor, real_y: np.ndarray, syn_f: torch.Tensor,
               syn_y: np.ndarray, class_names: Sequence[str], k: int) -> dict[str, Any]:
    """Per-class precision/recall/FID as {class name: {...}} (a table in reports)."""
    from synthmix.metrics.generative import per_class_metrics_from_features

    pc = per_class_metrics_from_features(real_f, real_y, syn_f, syn_y, len(class_names), k,
                                         class_names=class_names)
    table = {
        e["name"]: {"n_real": e["n_real"], "n_synthetic": e["n_fake"],
                    "precision": e["precision"], "recall": e["recall"], "fid": e["fid"]}
        for e in pc["per_class"]
    }
    return {"per_class": table, "per_class_min_fid_samples": pc["min_fid_samples"]}


def _pixels(images: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(images.reshape(len(images), -1)).to(torch.float64) / 255.0  # (N, P)


def _snap(d: torch.Tensor) -> torch.Tensor:
    """Distances below COPY_TOLERANCE are copies: exactly 0."""
    return torch.where(d < COPY_TOLERANCE, torch.zeros_like(d), d)


def _stats(d: torch.Tensor, prefix: str) -> dict[str, float]:
    """Flat keys, so reports show the memorisation numbers as one table."""
    return {f"{prefix}_mean": float(d.mean()), f"{prefix}_median": float(d.median()),
            f"{prefix}_min": float(d.min())}


def baseline_distances(queries: np.ndarray, own: np.ndarray | None,
                       ref_pixels: torch.Tensor) -> torch.Tensor:
    """Nearest-reference pixel distance of real query images; a query's own row (`own`) in
    the reference is skipped, so real images are compared with *other* real images."""
    from synthmix.metrics.generative import nearest_neighbours

    if own is None:
        return _snap(nearest_neighbours(ref_pixels, _pixels(queries), k=1)[0][:, 0])
    if ref_pixels.shape[0] < 2:
        raise DataError("the memorisation baseline needs at least 2 real images")
    dist, idx = nearest_neighbours(ref_pixels, _pixels(queries), k=2)  # (Nq, 2)
    is_self = idx[:, 0] == torch.as_tensor(own)
    return _snap(torch.where(is_self, dist[:, 1], dist[:, 0]))  # (Nq,)


def memorisation_check(
    syn_images: np.ndarray, syn_labels: np.ndarray, syn_f: torch.Tensor,
    real_queries: np.ndarray, own: np.ndarray | None, reference: Reference,
    ref_f: torch.Tensor, seed: int,
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Nearest reference image of every synthetic image in pixel space, next to the same
    distance for real images; plus examples (2 per class) with pixel and feature neighbours."""
    from synthmix.metrics.generative import nearest_neighbours

    ref_pixels = _pixels(reference.images)  # (Nref, P)
    k = min(NEIGHBOURS_SHOWN, len(reference.images))
    syn_d, syn_nn = nearest_neighbours(ref_pixels, _pixels(syn_images), k=k)  # (Ns, k)
    syn_d = _snap(syn_d)
    base_d = baseline_distances(real_queries, own, ref_pixels)
    feat_d, feat_nn = nearest_neighbours(ref_f, syn_f, k=1)  # (Ns, 1)
    ref_y = torch.as_tensor(np.asarray(reference.labels))
    syn_y = torch.as_tensor(syn_labels)
    d1 = syn_d[:, 0]
    memo = {
        "reference": reference.description,
        "n_reference": len(reference.images),
        "distance": PIXEL_DISTANCE,
        **_stats(d1, "synthetic_nn_distance"),
        **_stats(base_d, "real_nn_distance"),
        "n_real_queries": len(real_queries),
        # ~1 when synthetic images sit as far from the reference as fresh real ones do.
        "mean_ratio_synthetic_to_real": float(d1.mean() / base_d.mean().clamp_min(1e-12)),
        "exact_copies": int((d1 == 0).sum()),
        # Closer to a reference image than any real image is: the suspects worth looking at.
        "fraction_closer_than_any_real": float((d1 < base_d.min()).double().mean()),
        "pixel_nn_same_class": float((ref_y[syn_nn[:, 0]] == syn_y).double().mean()),
        "feature_nn_same_class": float((ref_y[feat_nn[:, 0]] == syn_y).double().mean()),
    }
    rows = _example_rows(syn_labels, seed)
    examples = [{
        "row": int(r), "class": int(syn_labels[r]),
        "pixel_nn": [int(i) for i in syn_nn[r]],
        "pixel_nn_distance": [round(float(d), 4) for d in syn_d[r]],
        "feature_nn": int(feat_nn[r, 0]),
        "feature_nn_pixel_distance": round(float(torch.dist(
            _pixels(syn_images[r : r + 1])[0], ref_pixels[feat_nn[r, 0]])), 4),
    } for r in rows]
    return memo, examples


def _example_rows(labels: np.ndarray, seed: int) -> list[int]:
    """EXAMPLES_PER_CLASS random rows of each class, class by class, at most MAX_EXAMPLE_ROWS."""
    rng = np.random.default_rng(seed)
    rows: list[int] = []
    for c in np.unique(labels):
        idx = np.flatnonzero(labels == c)
        rows += sorted(rng.choice(idx, min(EXAMPLES_PER_CLASS, len(idx)), replace=False).tolist())
    if len(rows) > MAX_EXAMPLE_ROWS:
        rows = sorted(rng.choice(rows, MAX_EXAMPLE_ROWS, replace=False).tolist(),
                      key=lambda r: (labels[r], r))
    return rows


def _samples_grid(images: np.ndarray, labels: np.ndarray, class_names: Sequence[str],
                  seed: int, path: Path) -> None:
    """GRID_PER_CLASS random synthetic images per class, one row per class (blank if fewer)."""
    from synthmix.plots import save_class_grid

    rng = np.random.default_rng(seed)
    per_class = min(GRID_PER_CLASS, max(int(np.bincount(labels).max()), 1))
    grid = np.zeros((len(class_names) * per_class, *images.shape[1:]), dtype=np.uint8)
    for c in range(len(class_names)):
        idx = np.flatnonzero(labels == c)
        pick = np.sort(rng.choice(idx, min(per_class, len(idx)), replace=False))
        grid[c * per_class : c * per_class + len(pick)] = images[pick]
    save_class_grid(grid, class_names, per_class, path,
                    title=f"{per_class} random synthetic images per class")


def _neighbours_figure(syn_images: np.ndarray, examples: list[dict[str, Any]],
                       reference: Reference, class_names: Sequence[str], path: Path) -> None:
    """Rows: a synthetic image, its nearest reference images in pixel space, its nearest in
    feature space; the row label gives the class and the pixel distance to neighbour 1."""
    import io

    from matplotlib.figure import Figure

    from synthmix.files import atomic_write_bytes
    from synthmix.plots import tile_images

    k = len(examples[0]["pixel_nn"]) if examples else 0
    columns = ["synthetic", *(f"pixel NN {i + 1}" for i in range(k)), "feature NN"]
    tiles = []
    for e in examples:
        tiles.append(syn_images[e["synthetic_index"]])
        tiles += [reference.images[i] for i in (*e["pixel_nn"], e["feature_nn"])]
    h, w = syn_images.shape[1:3]
    grid = tile_images(np.stack(tiles), nrow=len(columns))  # (rows*(h+1)+1, cols*(w+1)+1, C)
    cell = max(0.35, 0.6 * h / 16)
    fig = Figure(figsize=(1.6 + len(columns) * cell * 1.2, 0.8 + len(examples) * cell))
    ax = fig.add_subplot()
    ax.imshow(grid.squeeze(-1) if grid.shape[-1] == 1 else grid, cmap="gray", vmin=0, vmax=255,
              interpolation="nearest")
    ax.set_xticks([1 + (w + 1) * i + w / 2 - 0.5 for i in range(len(columns))])
    ax.set_xticklabels(columns, fontsize=6, rotation=30)
    ax.xaxis.tick_top()
    ax.set_yticks([1 + (h + 1) * i + h / 2 - 0.5 for i in range(len(examples))])
    ax.set_yticklabels([f"{class_names[e['class']]}  d={e['pixel_nn_distance'][0]:.2f}"
                        for e in examples], fontsize=6)
    ax.set_title(f"nearest images in: {reference.description}", fontsize=7)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=120, bbox_inches="tight")
    atomic_write_bytes(path, buf.getvalue())


def _inception_metrics(path: str, device: torch.device, real: np.ndarray, syn: np.ndarray,
                       seed: int, progress: bool) -> dict[str, Any]:
    """The classic FID/KID in Inception-V3 pool space (a user-provided TorchScript file)."""
    from synthmix.metrics.features import InceptionFeatureNet, extract_features

    net = InceptionFeatureNet(path, device)
    real_f = extract_features(net, real, batch_size=64, progress=progress)
    syn_f = extract_features(net, syn, batch_size=64, progress=progress)
    return {"feature_space": net.name, "model": str(path), "feature_dim": int(real_f.shape[1]),
            **_fid_kid(real_f, syn_f, seed)}

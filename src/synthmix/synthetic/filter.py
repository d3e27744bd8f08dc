"""Keep only synthetic images a classifier confidently assigns to their own label.

After Wang et al. 2023: samples whose probability for the label they were generated with is
below a threshold are dropped, which removes off-class and broken samples.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from synthmix.errors import ConfigError, DataError
from synthmix.files import sha256_file
from synthmix.synthetic.format import MANIFEST_NAME, read_synthetic_set, write_synthetic_set

logger = logging.getLogger(__name__)

PredictProba = Callable[[np.ndarray], np.ndarray]  # uint8 (N, H, W, C) -> (N, K) probabilities


def filter_by_confidence(
    set_path: str | Path,
    out_path: str | Path,
    predict_proba: PredictProba,
    threshold: float,
    batch_size: int = 1024,
) -> dict[str, Any]:
    """Write the samples with p(own label) >= threshold as a new set; return the counts."""
    if not 0.0 <= threshold <= 1.0:
        raise ConfigError(f"threshold must be in [0, 1], got {threshold}")
    source = read_synthetic_set(set_path)
    if Path(out_path).resolve() == source.path.resolve():
        raise ConfigError("the filtered set needs its own directory", hint=str(out_path))
    num_classes = len(source.class_names)
    own_proba = np.concatenate([
        _own_label_proba(predict_proba, source.images[lo:lo + batch_size],
                         source.labels[lo:lo + batch_size], num_classes)
        for lo in range(0, len(source), batch_size)
    ])  # (N,)
    keep = own_proba >= threshold
    kept = np.bincount(source.labels[keep], minlength=num_classes).tolist()
    dropped = np.bincount(source.labels[~keep], minlength=num_classes).tolist()
    counts: dict[str, Any] = {
        "threshold": float(threshold),
        "kept_per_class": kept,
        "dropped_per_class": dropped,
        "kept": int(keep.sum()),
        "dropped": int((~keep).sum()),
    }
    if not keep.any():
        raise DataError(f"no sample reaches threshold {threshold}", path=source.path)
    info = {
        **counts,
        "source_set": str(source.path.resolve()),
        "source_set_sha256": sha256_file(source.path / MANIFEST_NAME),
    }
    write_synthetic_set(
        out_path, source.images[keep], source.labels[keep], source.seeds[keep],
        source.class_names, source.manifest["provenance"], source.manifest["shard_size"],
        extra={"filter": info},
    )
    logger.info("%s: kept %d of %d samples with p(label) >= %g (per class kept %s)",
                out_path, counts["kept"], len(source), threshold, kept)
    return counts


def _own_label_proba(
    predict_proba: PredictProba, images: np.ndarray, labels: np.ndarray, num_classes: int
) -> np.ndarray:
    """Each image's predicted probability for its own label, checked for sanity."""
    proba = np.asarray(predict_proba(images), dtype=np.float64)
    if proba.shape != (len(images), num_classes):
        raise ConfigError(
            f"predict_proba returned shape {proba.shape}, expected ({len(images)}, {num_classes})"
        )
    if not np.isfinite(proba).all():
        raise ConfigError("predict_proba returned non-finite probabilities")
    return proba[np.arange(len(images)), labels]

"""Confidence filtering keeps exactly the samples whose own-label probability passes."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from synthmix.errors import ConfigError, DataError
from synthmix.files import sha256_file
from synthmix.synthetic.filter import filter_by_confidence
from synthmix.synthetic.format import read_synthetic_set, write_synthetic_set


def fake_predict_proba(images: np.ndarray) -> np.ndarray:
    """p(class 0) = mean pixel / 255, the rest shared equally by the other two classes."""
    p0 = images.reshape(len(images), -1).mean(axis=1) / 255.0
    return np.stack([p0, (1 - p0) / 2, (1 - p0) / 2], axis=1)  # (N, 3)


@pytest.fixture
def source(tmp_path: Path) -> Path:
    brightness = np.array([102, 255, 200, 100, 30, 250, 120, 10, 60], dtype=np.uint8)
    images = np.broadcast_to(brightness[:, None, None, None], (9, 4, 4, 1)).copy()
    labels = np.array([0, 0, 0, 1, 1, 1, 2, 2, 2], dtype=np.int64)
    seeds = np.arange(9, dtype=np.int64) * 3
    return write_synthetic_set(tmp_path / "src", images, labels, seeds, ["a", "b", "c"],
                               {"sampler": "ddim", "steps": 3}, shard_size=4)


def test_filter_keeps_own_label_probability_at_or_above_threshold(tmp_path: Path, source) -> None:
    # p(own label): class 0 -> b / 255 = 0.4 (kept: >=), 1.0, 0.78; class 1 -> (1 - b / 255) / 2
    # = 0.30, 0.44, 0.01; class 2 -> 0.26, 0.48, 0.38.
    counts = filter_by_confidence(source, tmp_path / "kept", fake_predict_proba, 0.4,
                                  batch_size=2)
    kept = read_synthetic_set(tmp_path / "kept")
    expected_seeds = [0, 3, 6, 12, 21]  # rows 0, 1, 2, 4, 7
    assert kept.seeds.tolist() == expected_seeds
    assert kept.labels.tolist() == [0, 0, 0, 1, 2]
    assert counts["kept_per_class"] == [3, 1, 1] and counts["dropped_per_class"] == [0, 2, 2]
    assert counts["kept"] == 5 and counts["dropped"] == 4
    info = kept.manifest["filter"]
    assert info["threshold"] == 0.4 and info["kept_per_class"] == [3, 1, 1]
    assert info["source_set_sha256"] == sha256_file(source / "manifest.json")
    assert kept.manifest["provenance"]["sampler"] == "ddim"
    assert kept.manifest["n_per_class"] == [3, 1, 1]
    src = read_synthetic_set(source)
    assert np.array_equal(kept.images, src.images[np.isin(src.seeds, expected_seeds)])


def test_filter_edge_thresholds_and_bad_predictions(tmp_path: Path, source) -> None:
    everything = filter_by_confidence(source, tmp_path / "all", fake_predict_proba, 0.0)
    assert everything["kept"] == 9
    with pytest.raises(DataError, match="no sample reaches"):
        filter_by_confidence(source, tmp_path / "none", lambda x: np.full((len(x), 3), 1 / 3),
                             0.5)
    with pytest.raises(ConfigError, match="threshold"):
        filter_by_confidence(source, tmp_path / "bad", fake_predict_proba, 1.5)
    with pytest.raises(ConfigError, match="shape"):
        filter_by_confidence(source, tmp_path / "bad", lambda x: np.ones((len(x), 2)), 0.5)
    assert not (tmp_path / "bad").exists() and not (tmp_path / "none").exists()
    assert json.loads((tmp_path / "all" / "manifest.json").read_text())["complete"] is True

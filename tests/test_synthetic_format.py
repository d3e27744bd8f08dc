"""The synthetic-set format: one writer, one reader that refuses anything incomplete or corrupt."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from synthmix.errors import DataError
from synthmix.synthetic.format import (
    REQUIRED_PROVENANCE,
    read_synthetic_set,
    write_synthetic_set,
)

CLASSES = ("cat", "dog", "fox")


def make_arrays(n: int = 10, shape: tuple[int, int, int] = (5, 4, 3), seed: int = 0):
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, size=(n, *shape), dtype=np.uint8)
    labels = (np.arange(n) % len(CLASSES)).astype(np.int64)
    seeds = rng.integers(0, 2**62, size=n, dtype=np.int64)
    return images, labels, seeds


@pytest.fixture
def written(tmp_path: Path) -> tuple[Path, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    arrays = make_arrays()
    path = write_synthetic_set(tmp_path / "set", *arrays, CLASSES, {"sampler": "ddim"},
                               shard_size=4)
    return path, arrays


def test_round_trip_is_exact_and_manifest_complete(written) -> None:
    path, (images, labels, seeds) = written
    s = read_synthetic_set(path)
    assert np.array_equal(s.images, images) and s.images.dtype == np.uint8
    assert np.array_equal(s.labels, labels) and s.labels.dtype == np.int64
    assert np.array_equal(s.seeds, seeds) and s.seeds.dtype == np.int64
    assert s.class_names == CLASSES and len(s) == 10
    m = json.loads((path / "manifest.json").read_text())
    assert m["format_version"] == 1 and m["complete"] is True
    assert m["image_shape"] == [5, 4, 3] and m["num_images"] == 10 and m["shard_size"] == 4
    assert m["n_per_class"] == [4, 3, 3]
    assert [e["num_images"] for e in m["shards"]] == [4, 4, 2]
    assert [e["file"] for e in m["shards"]] == [f"shard-0000{i}.npz" for i in range(3)]
    assert all(len(e["sha256"]) == 64 for e in m["shards"])
    assert m["provenance"]["sampler"] == "ddim"
    assert set(REQUIRED_PROVENANCE) <= set(m["provenance"])
    assert {"created", "code_version"} <= set(m)
    assert sorted(p.name for p in path.iterdir()) == [
        "manifest.json", "shard-00000.npz", "shard-00001.npz", "shard-00002.npz",
    ]
    with np.load(path / "shard-00002.npz", allow_pickle=False) as npz:
        assert sorted(npz.files) == ["images", "labels", "seeds"]


def test_incomplete_set_is_refused(written) -> None:
    path, _ = written
    m = json.loads((path / "manifest.json").read_text())
    m["complete"] = False
    (path / "manifest.json").write_text(json.dumps(m))
    (path / "shard-00002.npz").unlink()
    with pytest.raises(DataError, match=r"incomplete: 2 of 3 shards.*re-run the same"):
        read_synthetic_set(path)


def test_flipped_byte_is_refused_naming_the_shard(written) -> None:
    path, _ = written
    shard = path / "shard-00001.npz"
    data = bytearray(shard.read_bytes())
    data[len(data) // 2] ^= 0xFF
    shard.write_bytes(bytes(data))
    with pytest.raises(DataError, match=r"shard-00001\.npz.*sha256"):
        read_synthetic_set(path)
    # Without the checksum the zip's own CRC still catches the flipped image byte.
    with pytest.raises(DataError, match=r"shard-00001\.npz"):
        read_synthetic_set(path, verify=False)


def test_missing_shard_and_manifest_are_refused(written) -> None:
    path, _ = written
    (path / "shard-00000.npz").unlink()
    with pytest.raises(DataError, match=r"shard-00000\.npz: shard is missing"):
        read_synthetic_set(path)
    (path / "manifest.json").unlink()
    with pytest.raises(DataError, match="no manifest.json"):
        read_synthetic_set(path)


def test_labels_inconsistent_with_manifest_are_refused(tmp_path: Path, written) -> None:
    path, _ = written
    m = json.loads((path / "manifest.json").read_text())
    m["n_per_class"] = [3, 4, 3]
    (path / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(DataError, match=r"labels count \[4, 3, 3\]"):
        read_synthetic_set(path)
    m["image_shape"] = [4, 5, 3]
    (path / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(DataError, match=r"shard-00000\.npz.*images are uint8"):
        read_synthetic_set(path)


def test_writer_refuses_a_non_empty_directory(tmp_path: Path) -> None:
    (tmp_path / "set").mkdir()
    (tmp_path / "set" / "notes.txt").write_text("mine")
    with pytest.raises(DataError, match="not empty"):
        write_synthetic_set(tmp_path / "set", *make_arrays(), CLASSES, {})
    with pytest.raises(DataError, match="duplicates"):
        write_synthetic_set(tmp_path / "other", *make_arrays(), ("a", "a", "b"), {})

"""MNIST-style IDX loading on files written here in the official format, bad input, cache."""

from __future__ import annotations

import gzip
import os
import struct
import time
from pathlib import Path

import numpy as np
import pytest

from synthmix.data import checksums as checksums_module
from synthmix.data import load_dataset
from synthmix.data.checksums import OfficialFile, checksum_status, md5_bytes
from synthmix.data.idx import read_idx
from synthmix.errors import DataError

STEMS = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}


def idx_bytes(array: np.ndarray) -> bytes:
    """The IDX encoding of a uint8 array: magic 0x0000 08 ndim, big-endian dims, data."""
    header = struct.pack(">BBBB", 0, 0, 0x08, array.ndim)
    header += struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.astype(np.uint8).tobytes()


def write_mnist(folder: Path, n_train: int = 30, n_test: int = 10, gz: bool = True,
                seed: int = 0) -> dict[str, np.ndarray]:
    """Write the four MNIST files; returns the arrays written."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    arrays = {}
    for split, n in (("train", n_train), ("test", n_test)):
        images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
        labels = (np.arange(n) % 10).astype(np.uint8)
        for stem, a in zip(STEMS[split], (images, labels), strict=True):
            data = idx_bytes(a)
            if gz:
                (folder / f"{stem}.gz").write_bytes(gzip.compress(data))
            else:
                (folder / stem).write_bytes(data)
            arrays[stem] = a
    return arrays


@pytest.mark.parametrize("gz", [True, False])
def test_mnist_loads_arrays_exactly(tmp_path: Path, gz: bool) -> None:
    written = write_mnist(tmp_path, gz=gz)
    ds = load_dataset("mnist", tmp_path)
    assert ds.image_shape == (28, 28, 1) and ds.num_classes == 10
    assert len(ds.train) == 30 and len(ds.test) == 10
    np.testing.assert_array_equal(ds.train.images[..., 0], written["train-images-idx3-ubyte"])
    np.testing.assert_array_equal(ds.test.labels, written["t10k-labels-idx1-ubyte"])
    assert ds.train.labels.dtype == np.int64
    assert [s.checksum for s in ds.sources] == ["mismatch"] * 4  # not the official files


def test_subfolder_and_fashion_class_names(tmp_path: Path) -> None:
    write_mnist(tmp_path / "fashion-mnist")
    ds = load_dataset("fashion-mnist", tmp_path)
    assert ds.class_names[0] == "T-shirt/top" and ds.class_names[-1] == "Ankle boot"


def test_channels_option_repeats_grey(tmp_path: Path) -> None:
    write_mnist(tmp_path)
    ds = load_dataset("mnist", tmp_path, channels=3)
    assert ds.image_shape == (28, 28, 3)
    np.testing.assert_array_equal(ds.train.images[..., 0], ds.train.images[..., 2])


def test_missing_files_names_them_and_suggests_fetch(tmp_path: Path) -> None:
    with pytest.raises(DataError) as e:
        load_dataset("mnist", tmp_path)
    msg = str(e.value)
    assert "train-images-idx3-ubyte[.gz]" in msg and str(tmp_path / "mnist") in msg
    assert "synthmix data fetch mnist" in msg


def _corrupt(path: Path, data: bytes) -> None:
    path.write_bytes(data)


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        ("truncated_gzip", "corrupt or truncated gzip"),
        ("garbage_gzip", "corrupt or truncated gzip"),
        ("wrong_magic", "wrong IDX magic number 0x00000801"),
        ("short_data", "header says shape (30, 28, 28)"),
        ("not_gzip", "not a gzip file"),
    ],
)
def test_bad_image_file_is_named(tmp_path: Path, case: str, expected: str) -> None:
    write_mnist(tmp_path)
    target = tmp_path / "train-images-idx3-ubyte.gz"
    good = gzip.decompress(target.read_bytes())
    bad = {
        "truncated_gzip": target.read_bytes()[: len(target.read_bytes()) // 2],
        "garbage_gzip": b"\x1f\x8b" + b"\x00" * 40,
        "wrong_magic": gzip.compress(b"\x00\x00\x08\x01" + good[4:]),
        "short_data": gzip.compress(good[:-5]),
        "not_gzip": good,
    }[case]
    target.write_bytes(bad)
    with pytest.raises(DataError) as e:
        load_dataset("mnist", tmp_path)
    assert expected in str(e.value) and "train-images-idx3-ubyte.gz" in str(e.value)
    assert not list(Path(os.environ["SYNTHMIX_CACHE"]).glob("*"))  # nothing half-written


def test_image_and_label_counts_must_agree(tmp_path: Path) -> None:
    write_mnist(tmp_path)
    labels = np.zeros(29, dtype=np.uint8)
    (tmp_path / "train-labels-idx1-ubyte.gz").write_bytes(gzip.compress(idx_bytes(labels)))
    with pytest.raises(DataError, match="30 images in train-images-idx3-ubyte.gz but 29 labels"):
        load_dataset("mnist", tmp_path)


def test_label_out_of_range(tmp_path: Path) -> None:
    write_mnist(tmp_path)
    labels = np.full(10, 10, dtype=np.uint8)
    (tmp_path / "t10k-labels-idx1-ubyte.gz").write_bytes(gzip.compress(idx_bytes(labels)))
    with pytest.raises(DataError, match="t10k-labels-idx1-ubyte.gz: label 10 out of range"):
        load_dataset("mnist", tmp_path)


def test_read_idx_roundtrip_any_shape(tmp_path: Path) -> None:
    a = np.arange(2 * 3 * 5, dtype=np.uint8).reshape(2, 3, 5)
    (tmp_path / "x").write_bytes(idx_bytes(a))
    got, _, _ = read_idx(tmp_path / "x", ndim=3)
    np.testing.assert_array_equal(got, a)


def test_checksum_status_file_content_and_unknown(tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    content = idx_bytes(np.arange(10, dtype=np.uint8))
    gz = gzip.compress(content, mtime=0)
    regz = gzip.compress(content, mtime=12345)  # a mirror's re-gzipped copy
    entry = OfficialFile("train-labels-idx1-ubyte.gz", md5_bytes(gz), md5_bytes(content))
    monkeypatch.setitem(checksums_module.OFFICIAL_FILES, "mnist", (entry,))
    for name, data, status, of in [
        ("train-labels-idx1-ubyte.gz", gz, "ok", "file"),
        ("train-labels-idx1-ubyte.gz", regz, "ok", "content"),
        ("train-labels-idx1-ubyte.gz", gzip.compress(content + b"x"), "mismatch", "content"),
        ("train-labels-idx1-ubyte", content, "ok", "content"),
        ("t10k-labels-idx1-ubyte.gz", gz, "unknown", ""),
    ]:
        path = tmp_path / name
        path.write_bytes(data)
        info = checksum_status("mnist", path)
        assert (info.checksum, info.md5_of) == (status, of), name
        path.unlink()


def test_official_table_holds_spec_md5s() -> None:
    content = {e.name: e.content_md5 for e in checksums_module.OFFICIAL_FILES["mnist"]}
    assert content["train-images-idx3-ubyte.gz"] == "6bbc9ace898e44ae57da46a324031adb"
    assert content["t10k-labels-idx1-ubyte.gz"] == "27ae3e4e09519cfbb04c329615203637"
    cifar = checksums_module.OFFICIAL_FILES["cifar10"][0]
    assert (cifar.name, cifar.md5) == ("cifar-10-python.tar.gz", "c58f30108f718f92721af3b95e74349a")


def test_cache_hit_and_invalidation(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_mnist(tmp_path / "data", seed=1)
    first = load_dataset("mnist", tmp_path / "data")
    cache = Path(os.environ["SYNTHMIX_CACHE"])
    files = list(cache.glob("*.npz"))
    assert len(files) == 1

    import synthmix.data.registry as registry

    def no_decode(*args: object, **kwargs: object) -> None:
        raise AssertionError("decoded again although cached")

    with monkeypatch.context() as m:  # a second load must not touch the decoder
        m.setattr("synthmix.data.idx.load_idx_dataset", no_decode)
        second = registry.load_dataset("mnist", tmp_path / "data")
    np.testing.assert_array_equal(first.train.images, second.train.images)
    assert [s.checksum for s in second.sources] == [s.checksum for s in first.sources]

    # New content with a new mtime: the cache must not be used, and the old entry is replaced.
    written = write_mnist(tmp_path / "data", seed=2)
    later = time.time_ns() + 10**9
    for p in (tmp_path / "data").iterdir():
        os.utime(p, ns=(later, later))
    third = load_dataset("mnist", tmp_path / "data")
    np.testing.assert_array_equal(third.train.images[..., 0], written["train-images-idx3-ubyte"])
    assert len(list(cache.glob("*.npz"))) == 1 and files[0] not in list(cache.glob("*.npz"))


def test_corrupt_cache_file_is_rebuilt(tmp_path: Path) -> None:
    write_mnist(tmp_path)
    load_dataset("mnist", tmp_path)
    (cache_file,) = Path(os.environ["SYNTHMIX_CACHE"]).glob("*.npz")
    cache_file.write_bytes(b"not a zip")
    ds = load_dataset("mnist", tmp_path)
    assert len(ds.train) == 30

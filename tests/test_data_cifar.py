"""CIFAR-10 python batches: archives made here like the real one, and the pickle whitelist."""

from __future__ import annotations

import io
import os
import pickle
import tarfile
from pathlib import Path

import numpy as np
import pytest

from synthmix.data import load_dataset
from synthmix.data.cifar import CIFAR10_CLASSES, restricted_loads
from synthmix.errors import DataError

BATCHES = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]


def cifar_batches(n: int = 4, seed: int = 0) -> dict[str, dict[bytes, object]]:
    """Dicts shaped like the official batches: b'data' (n, 3072) uint8 channel-major."""
    rng = np.random.default_rng(seed)
    out: dict[str, dict[bytes, object]] = {}
    for name in BATCHES:
        out[name] = {
            b"batch_label": name.encode(),
            b"labels": [int(v) for v in rng.integers(0, 10, size=n)],
            b"data": rng.integers(0, 256, size=(n, 3072), dtype=np.uint8),
            b"filenames": [f"img_{i}.png".encode() for i in range(n)],
        }
    out["batches.meta"] = {
        b"label_names": [c.encode() for c in CIFAR10_CLASSES],
        b"num_cases_per_batch": n,
        b"num_vis": 3072,
    }
    return out


def write_cifar_tar(path: Path, blobs: dict[str, bytes]) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        for name, blob in blobs.items():
            info = tarfile.TarInfo(f"cifar-10-batches-py/{name}")
            info.size = len(blob)
            tar.addfile(info, io.BytesIO(blob))
    return path


def pickled(batches: dict[str, dict[bytes, object]], protocol: int = 4) -> dict[str, bytes]:
    return {name: pickle.dumps(d, protocol=protocol) for name, d in batches.items()}


@pytest.mark.parametrize("protocol", [2, 4, 5])
def test_cifar_tar_loads_channel_major_pixels(tmp_path: Path, protocol: int) -> None:
    batches = cifar_batches()
    write_cifar_tar(tmp_path / "cifar-10-python.tar.gz", pickled(batches, protocol))
    ds = load_dataset("cifar10", tmp_path)
    assert ds.image_shape == (32, 32, 3) and len(ds.train) == 20 and len(ds.test) == 4
    assert ds.class_names == CIFAR10_CLASSES
    raw = batches["data_batch_2"][b"data"]
    assert isinstance(raw, np.ndarray)
    # Row layout: 1024 red, then 1024 green, then 1024 blue values, each row-major.
    np.testing.assert_array_equal(ds.train.images[4, :, :, 1], raw[0, 1024:2048].reshape(32, 32))
    np.testing.assert_array_equal(ds.test.labels, batches["test_batch"][b"labels"])
    assert ds.sources[0].checksum == "mismatch"  # not the official archive


def test_extracted_batches_folder(tmp_path: Path) -> None:
    folder = tmp_path / "cifar10" / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    for name, blob in pickled(cifar_batches()).items():
        (folder / name).write_bytes(blob)
    ds = load_dataset("cifar10", tmp_path)
    assert len(ds.train) == 20
    assert {Path(s.path).name for s in ds.sources} == {*BATCHES, "batches.meta"}


class _Evil:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (os.system, (f"touch {self.marker}",))


def test_malicious_pickle_is_refused(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    blobs = pickled(cifar_batches())
    evil = cifar_batches()["data_batch_3"]
    evil[b"filenames"] = [_Evil(marker)]
    blobs["data_batch_3"] = pickle.dumps(evil)
    assert b"system" in blobs["data_batch_3"]
    write_cifar_tar(tmp_path / "cifar-10-python.tar.gz", blobs)
    with pytest.raises(DataError, match=r"data_batch_3.*refusing to load the global"):
        load_dataset("cifar10", tmp_path)
    assert not marker.exists()


@pytest.mark.parametrize("payload", [
    b"cos\nsystem\n(S'true'\ntR.",  # protocol 0 GLOBAL
    pickle.dumps(__import__("builtins").eval),
    pickle.dumps(np.load),  # numpy, but not one of the reconstruction globals
])
def test_restricted_unpickler_refuses_other_globals(payload: bytes) -> None:
    with pytest.raises(DataError, match="refusing"):
        restricted_loads(payload, "x")


def test_missing_batch_and_bad_batch(tmp_path: Path) -> None:
    blobs = pickled(cifar_batches())
    del blobs["data_batch_4"]
    write_cifar_tar(tmp_path / "cifar-10-python.tar.gz", blobs)
    with pytest.raises(DataError, match="missing CIFAR-10 batches: data_batch_4"):
        load_dataset("cifar10", tmp_path)

    batches = cifar_batches()
    batches["test_batch"][b"labels"] = [0, 1]  # 4 images
    write_cifar_tar(tmp_path / "cifar-10-python.tar.gz", pickled(batches))
    with pytest.raises(DataError, match="test_batch: 4 images but 2 labels"):
        load_dataset("cifar10", tmp_path)


def test_truncated_archive(tmp_path: Path) -> None:
    path = write_cifar_tar(tmp_path / "cifar-10-python.tar.gz", pickled(cifar_batches()))
    path.write_bytes(path.read_bytes()[:-200])
    with pytest.raises(DataError, match="cifar-10-python.tar.gz: cannot read archive"):
        load_dataset("cifar10", tmp_path)

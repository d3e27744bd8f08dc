"""`fetch_dataset` against a local HTTP server serving small files in the official formats."""

from __future__ import annotations

import functools
import gzip
import http.server
import io
import socket
import struct
import tarfile
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from synthmix.cli import main
from synthmix.data import checksums, load_dataset
from synthmix.data.checksums import OfficialFile, md5_bytes
from synthmix.data.fetch import fetch_dataset
from synthmix.errors import DataError

MNIST_NAMES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte",
               "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")


def idx_bytes(array: np.ndarray) -> bytes:
    header = struct.pack(">BBBB", 0, 0, 0x08, array.ndim)
    return header + struct.pack(f">{array.ndim}I", *array.shape) + array.tobytes()


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """An HTTP server on 127.0.0.1 serving tmp_path/www; yields (base URL, folder)."""
    www = tmp_path / "www"
    www.mkdir()
    handler = functools.partial(_QuietHandler, directory=str(www))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}/", www
    finally:
        httpd.shutdown()
        httpd.server_close()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


def serve_mnist(www: Path, monkeypatch: pytest.MonkeyPatch, regzip: bool = False) -> None:
    """Put small MNIST files on the server and make them the 'official' ones."""
    rng = np.random.default_rng(0)
    entries = []
    for name in MNIST_NAMES:
        n = 20 if name.startswith("train") else 10
        shape = (n, 28, 28) if "images" in name else (n,)
        array = rng.integers(0, 256 if "images" in name else 10, size=shape, dtype=np.uint8)
        content = idx_bytes(array)
        official_gz = gzip.compress(content, mtime=0)
        served = gzip.compress(content, mtime=99) if regzip else official_gz
        (www / f"{name}.gz").write_bytes(served)
        entries.append(OfficialFile(f"{name}.gz", md5_bytes(official_gz), md5_bytes(content)))
    monkeypatch.setitem(checksums.OFFICIAL_FILES, "mnist", tuple(entries))


@pytest.mark.parametrize("regzip", [False, True])
def test_fetch_mnist_then_load(tmp_path: Path, server: tuple[str, Path],
                               monkeypatch: pytest.MonkeyPatch, regzip: bool) -> None:
    url, www = server
    serve_mnist(www, monkeypatch, regzip=regzip)
    paths = fetch_dataset("mnist", tmp_path / "data", base_url=url, timeout=5)
    assert [p.name for p in paths] == [f"{n}.gz" for n in MNIST_NAMES]
    assert sorted(p.name for p in (tmp_path / "data/mnist").iterdir()) == sorted(
        f"{n}.gz" for n in MNIST_NAMES)  # no temporary files left
    ds = load_dataset("mnist", tmp_path / "data")
    assert len(ds.train) == 20 and {s.checksum for s in ds.sources} == {"ok"}
    # Verified files are not downloaded again (the server is gone after this).
    for f in www.iterdir():
        f.unlink()
    assert fetch_dataset("mnist", tmp_path / "data", base_url=url, timeout=5) == paths


def test_checksum_mismatch_leaves_nothing(tmp_path: Path, server: tuple[str, Path],
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    url, www = server
    serve_mnist(www, monkeypatch)
    target = www / "t10k-images-idx3-ubyte.gz"
    target.write_bytes(gzip.compress(idx_bytes(np.zeros((10, 28, 28), np.uint8))))
    with pytest.raises(DataError, match="t10k-images-idx3-ubyte.gz: checksum mismatch"):
        fetch_dataset("mnist", tmp_path / "data", base_url=url, timeout=5)
    left = sorted(p.name for p in (tmp_path / "data/mnist").iterdir())
    assert left == ["train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"]


def test_fetch_cifar10_archive(tmp_path: Path, server: tuple[str, Path],
                               monkeypatch: pytest.MonkeyPatch) -> None:
    import pickle

    url, www = server
    buf = io.BytesIO()
    rng = np.random.default_rng(0)
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
            blob = pickle.dumps({b"data": rng.integers(0, 256, (2, 3072), dtype=np.uint8),
                                 b"labels": [1, 2]})
            info = tarfile.TarInfo(f"cifar-10-batches-py/{name}")
            info.size = len(blob)
            tar.addfile(info, io.BytesIO(blob))
    (www / "cifar-10-python.tar.gz").write_bytes(buf.getvalue())
    monkeypatch.setitem(checksums.OFFICIAL_FILES, "cifar10",
                        (OfficialFile("cifar-10-python.tar.gz", md5_bytes(buf.getvalue())),))
    assert main(["data", "fetch", "cifar10", "--data-dir", str(tmp_path), "--base-url", url]) == 0
    ds = load_dataset("cifar10", tmp_path)
    assert len(ds.train) == 10 and ds.sources[0].checksum == "ok"


def test_unreachable_server_is_one_clear_error(tmp_path: Path) -> None:
    with socket.socket() as s:  # a port that was free a moment ago: connection refused
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(DataError) as e:
        fetch_dataset("fashion-mnist", tmp_path, base_url=f"http://127.0.0.1:{port}/", timeout=2)
    msg = str(e.value)
    assert msg.startswith(f"could not download http://127.0.0.1:{port}/train-images-idx3-ubyte.gz")
    assert f"put the files in {tmp_path / 'fashion-mnist'} yourself" in msg
    assert list((tmp_path / "fashion-mnist").iterdir()) == []


def test_http_404_is_reported(tmp_path: Path, server: tuple[str, Path]) -> None:
    url, _ = server
    with pytest.raises(DataError, match=r"download .*train-images-idx3-ubyte.gz: HTTP 404"):
        fetch_dataset("mnist", tmp_path, base_url=url, timeout=5)


def test_unknown_name_cannot_be_fetched(tmp_path: Path) -> None:
    from synthmix.errors import ConfigError

    with pytest.raises(ConfigError, match="cannot download 'digits'"):
        fetch_dataset("digits", tmp_path)

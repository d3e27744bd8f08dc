"""MNIST-style IDX files (gzipped or not): unsigned-byte images (N, H, W) and labels (N,)."""

from __future__ import annotations

import gzip
import logging
import struct
import zlib
from pathlib import Path

import numpy as np

from synthmix.data.checksums import checksum_status
from synthmix.data.raw import RawDataset, RawSplit, SourceInfo
from synthmix.errors import DataError

log = logging.getLogger(__name__)

MNIST_CLASSES = tuple(str(i) for i in range(10))
FASHION_MNIST_CLASSES = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)  # fmt: skip
# (split, images stem, labels stem) with the official file names, without ".gz".
IDX_FILES = (
    ("train", "train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    ("test", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
)
_UBYTE = 0x08


def read_idx(path: Path, ndim: int) -> tuple[np.ndarray, bytes, bytes]:
    """Parse an unsigned-byte IDX file; returns (array, file bytes, decompressed bytes)."""
    try:
        data = path.read_bytes()
    except OSError as e:
        raise DataError(f"cannot read: {e.strerror or e}", path=path) from e
    content = data
    if data[:2] == b"\x1f\x8b":
        try:
            content = gzip.decompress(data)
        except (OSError, EOFError, zlib.error) as e:
            raise DataError(f"corrupt or truncated gzip file ({e})", path=path) from e
    elif path.suffix == ".gz":
        raise DataError("not a gzip file although named .gz", path=path)
    header = 4 + 4 * ndim
    if len(content) < header:
        raise DataError(f"too short for an IDX header ({len(content)} bytes)", path=path)
    magic = struct.unpack(">I", content[:4])[0]
    if magic != (_UBYTE << 8 | ndim):
        raise DataError(
            f"wrong IDX magic number 0x{magic:08x} (expected 0x{_UBYTE << 8 | ndim:08x}: "
            f"unsigned bytes, {ndim} dimension(s))",
            path=path,
        )
    dims = struct.unpack(f">{ndim}I", content[4:header])
    expected = int(np.prod(dims, dtype=np.int64))
    if len(content) - header != expected:
        raise DataError(
            f"header says shape {tuple(dims)} ({expected} bytes) but the file holds "
            f"{len(content) - header} bytes of data",
            path=path,
        )
    array = np.frombuffer(content, dtype=np.uint8, offset=header).reshape(dims).copy()
    return array, data, content


def load_idx_dataset(name: str, class_names: tuple[str, ...], files: dict[str, Path]) -> RawDataset:
    """Build a data set from the four IDX files, keyed by their stems (see IDX_FILES)."""
    splits: dict[str, RawSplit] = {}
    sources: list[SourceInfo] = []
    for split, images_stem, labels_stem in IDX_FILES:
        images_path, labels_path = files[images_stem], files[labels_stem]
        images, data, content = read_idx(images_path, ndim=3)
        sources.append(checksum_status(name, images_path, data, content))
        labels, data, content = read_idx(labels_path, ndim=1)
        sources.append(checksum_status(name, labels_path, data, content))
        if len(images) != len(labels):
            raise DataError(
                f"{len(images)} images in {images_path.name} but {len(labels)} labels",
                path=labels_path,
            )
        if len(labels) and labels.max() >= len(class_names):
            raise DataError(
                f"label {int(labels.max())} out of range 0..{len(class_names) - 1}",
                path=labels_path,
            )
        splits[split] = RawSplit(images[..., None], labels.astype(np.int64))  # (N, H, W, 1)
    for s in sources:
        if s.checksum == "mismatch":
            log.warning("%s: md5 %s differs from the official %s", s.path, s.md5, s.expected_md5)
    return RawDataset(name, class_names, splits["train"], splits["test"], tuple(sources))

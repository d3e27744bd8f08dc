"""The official CIFAR-10 python batches, unpickled with a whitelist of numpy globals only."""

from __future__ import annotations

import functools
import io
import logging
import pickle
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from synthmix.data.archive import iter_tar_files
from synthmix.data.checksums import checksum_status
from synthmix.data.raw import RawDataset, RawSplit, SourceInfo
from synthmix.errors import DataError

log = logging.getLogger(__name__)

CIFAR10_CLASSES = (
    "airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck",
)  # fmt: skip
TRAIN_BATCHES = tuple(f"data_batch_{i}" for i in range(1, 6))
TEST_BATCH = "test_batch"
META = "batches.meta"
BATCHES_DIR = "cifar-10-batches-py"


def _latin1_encode(text: str, encoding: str = "latin1") -> bytes:
    # Python 3 pickles bytes at protocol 2 as _codecs.encode(str, "latin1"); nothing else.
    if encoding != "latin1":
        raise pickle.UnpicklingError(f"refusing _codecs.encode with encoding {encoding!r}")
    return text.encode("latin1")


@functools.lru_cache(maxsize=1)
def _allowed_globals() -> dict[tuple[str, str], Callable[..., Any] | type]:
    try:  # numpy >= 2 (numpy.core is a deprecated alias there)
        from numpy._core import multiarray, numeric
    except ImportError:  # numpy 1.x
        from numpy.core import multiarray, numeric  # type: ignore[no-redef]
    allowed: dict[tuple[str, str], Callable[..., Any] | type] = {
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): np.dtype,
        ("_codecs", "encode"): _latin1_encode,
    }
    # Pickles name these by the module that defined them when they were written.
    for core in ("numpy.core", "numpy._core"):
        allowed[(f"{core}.multiarray", "_reconstruct")] = multiarray._reconstruct
        allowed[(f"{core}.numeric", "_frombuffer")] = numeric._frombuffer  # type: ignore[attr-defined]
    return allowed


class RestrictedUnpickler(pickle.Unpickler):
    """Unpickles plain containers and numpy arrays; any other global is refused."""

    def find_class(self, module: str, name: str) -> Any:
        allowed = _allowed_globals()
        if (module, name) not in allowed:
            raise pickle.UnpicklingError(f"refusing to load the global {module}.{name}")
        return allowed[(module, name)]


def restricted_loads(blob: bytes, where: str) -> Any:
    """Unpickle `blob` (read from `where`) with RestrictedUnpickler; DataError on anything odd."""
    try:
        return RestrictedUnpickler(io.BytesIO(blob), encoding="bytes").load()
    except Exception as e:  # a corrupt pickle can raise nearly anything; report it as data
        raise DataError(f"not a CIFAR-10 python batch: {e}", path=where) from e


def _str_keys(obj: Any, where: str) -> dict[str, Any]:
    if not isinstance(obj, dict):
        raise DataError(f"expected a dict, found {type(obj).__name__}", path=where)
    return {k.decode("latin1") if isinstance(k, bytes) else str(k): v for k, v in obj.items()}


def parse_batch(blob: bytes, where: str) -> RawSplit:
    """One batch: b'data' (N, 3072) uint8 in channel-major order and b'labels' (N,)."""
    batch = _str_keys(restricted_loads(blob, where), where)
    data, labels = batch.get("data"), batch.get("labels")
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2:
        raise DataError("b'data' must be a 2-D uint8 array", path=where)
    if data.shape[1] != 3 * 32 * 32:
        raise DataError(f"b'data' rows hold {data.shape[1]} values, expected 3072", path=where)
    try:
        label_array = np.asarray(labels, dtype=np.int64)
    except (TypeError, ValueError) as e:
        raise DataError("b'labels' must be a list of integers", path=where) from e
    if label_array.shape != (len(data),):
        raise DataError(
            f"{len(data)} images but {label_array.size} labels", path=where
        )
    images = data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)  # (N, 32, 32, 3)
    return RawSplit(np.ascontiguousarray(images), label_array)


def _class_names(blob: bytes | None, where: str) -> tuple[str, ...]:
    if blob is None:
        return CIFAR10_CLASSES
    names = _str_keys(restricted_loads(blob, where), where).get("label_names")
    if not isinstance(names, list) or len(names) != 10:
        raise DataError("b'label_names' must list 10 class names", path=where)
    return tuple(n.decode() if isinstance(n, bytes) else str(n) for n in names)


def load_cifar10(source: Path) -> RawDataset:
    """Read the official `cifar-10-python.tar.gz` or its extracted `cifar-10-batches-py/`."""
    wanted = (*TRAIN_BATCHES, TEST_BATCH, META)
    blobs: dict[str, bytes] = {}
    sources: list[SourceInfo] = []
    if source.is_dir():
        for name in wanted:
            if (source / name).is_file():
                blobs[name] = (source / name).read_bytes()
                sources.append(checksum_status("cifar10", source / name, blobs[name]))
    else:
        for member, data in iter_tar_files(source):
            if len(member) >= 2 and member[-1] in wanted and member[-2] == BATCHES_DIR:
                blobs[member[-1]] = data
        sources.append(checksum_status("cifar10", source))
    missing = [n for n in (*TRAIN_BATCHES, TEST_BATCH) if n not in blobs]
    if missing:
        raise DataError(f"missing CIFAR-10 batches: {', '.join(missing)}", path=source)
    where = {n: f"{source}:{n}" if not source.is_dir() else str(source / n) for n in wanted}
    train_parts = [parse_batch(blobs[n], where[n]) for n in TRAIN_BATCHES]
    train = RawSplit(
        np.concatenate([p.images for p in train_parts]),
        np.concatenate([p.labels for p in train_parts]),
    )
    test = parse_batch(blobs[TEST_BATCH], where[TEST_BATCH])
    for s in sources:
        if s.checksum == "mismatch":
            log.warning("%s: md5 %s differs from the official %s", s.path, s.md5, s.expected_md5)
    return RawDataset("cifar10", _class_names(blobs.get(META), where[META]), train, test,
                      tuple(sources))

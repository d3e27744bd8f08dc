"""Decoded arrays cached as .npz, keyed by the source files' (path, size, mtime) and options."""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import re
import zipfile
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from synthmix.data.raw import RawDataset, RawSplit, SourceInfo
from synthmix.files import atomic_save_npz

log = logging.getLogger(__name__)

# Bump when a loader's output changes for the same files, so old caches are not reused.
LOADER_VERSION = 1


def cache_dir() -> Path:
    """Where decoded arrays go: $SYNTHMIX_CACHE, else ~/.cache/synthmix/decoded."""
    env = os.environ.get("SYNTHMIX_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "synthmix" / "decoded"


def _digest(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True).encode()).hexdigest()


def cache_path(name: str, options: dict[str, Any], files: Sequence[Path]) -> Path:
    """The cache file for `name` read with `options` from `files` in their present state."""
    stats = []
    for f in files:
        st = Path(f).stat()
        stats.append([str(Path(f).resolve()), st.st_size, st.st_mtime_ns])
    opts = _digest({"name": name, "options": options, "version": LOADER_VERSION})[:8]
    key = _digest(stats)[:16]
    return cache_dir() / f"{_readable(name)}-{opts}-{key}.npz"


def _readable(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("_")[-60:] or "data"


def load_cached(path: Path) -> RawDataset | None:
    """The data set stored at `path`, or None if absent or unreadable (then it is rebuilt)."""
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as z:
            meta = json.loads(str(z["meta"]))
            return RawDataset(
                name=meta["name"],
                class_names=tuple(str(c) for c in z["class_names"]),
                train=RawSplit(z["train_images"], z["train_labels"]),
                test=RawSplit(z["test_images"], z["test_labels"]),
                sources=tuple(SourceInfo(**s) for s in meta["sources"]),
            )
    except (OSError, ValueError, KeyError, TypeError, zipfile.BadZipFile) as e:
        log.warning("ignoring unreadable cache file %s (%s)", path, e)
        return None


def save_cached(path: Path, dataset: RawDataset) -> None:
    """Write `dataset` atomically and drop older caches of the same data set and options."""
    meta = {"name": dataset.name, "sources": [asdict(s) for s in dataset.sources]}
    try:
        atomic_save_npz(
            path,
            train_images=dataset.train.images,
            train_labels=dataset.train.labels,
            test_images=dataset.test.images,
            test_labels=dataset.test.labels,
            class_names=np.array(dataset.class_names, dtype=str),
            meta=np.array(json.dumps(meta)),
        )
    except OSError as e:  # a read-only or full cache disk must not stop the run
        log.warning("could not write the cache file %s (%s)", path, e)
        return
    stem_prefix = path.name.rsplit("-", 1)[0] + "-"
    for old in path.parent.glob(f"{stem_prefix}*.npz"):
        if old != path:
            with contextlib.suppress(OSError):
                old.unlink()

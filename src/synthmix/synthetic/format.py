"""The on-disk format of a synthetic data set: one writer, one reader.

A synthetic set is a directory::

    manifest.json
    shard-00000.npz
    shard-00001.npz
    ...

Each shard is an uncompressed ``.npz`` (written atomically by `synthmix.files.atomic_save_npz`,
read with ``np.load(allow_pickle=False)``) holding three arrays of equal length N:

    images  uint8  (N, H, W, C)  pixels, 0..255 (x0 in [-1, 1] mapped by round((x + 1) * 127.5))
    labels  int64  (N,)          class index into manifest["class_names"]
    seeds   int64  (N,)          the image's own seed: (label, seed) regenerate it alone

Image i of the set is row i - s * shard_size of shard s = i // shard_size; every shard but the
last holds exactly shard_size images.

``manifest.json`` records:

    format_version  1
    class_names     ["airplane", ...]          one unique name per class
    image_shape     [H, W, C]
    n_per_class     [n_0, n_1, ...]            images per class in the whole set
    num_images      sum(n_per_class)
    shard_size      images per shard
    shards          [{"file": "shard-00000.npz", "num_images": N, "sha256": hex or null}, ...]
    provenance      {checkpoint_sha256, run_dir, sampler, steps, guidance_scale, eta, base_seed,
                     ...anything else the caller passed}; required keys absent are stored as null
    created         ISO 8601 time the set was started
    code_version    `synthmix.runinfo.code_version()` of the writer
    complete        true only once every shard is written and its sha256 verified
    generation      (generated sets only) how labels and seeds were planned, see `generate.py`
    filter          (filtered sets only) threshold, kept/dropped per class, source set

A reader refuses anything short of that: no manifest, ``complete`` not true, a missing shard,
a sha256 mismatch, or arrays that disagree with the manifest.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from synthmix.errors import DataError
from synthmix.files import atomic_save_npz, atomic_write_json, sha256_file

FORMAT_VERSION = 1
MANIFEST_NAME = "manifest.json"
REQUIRED_PROVENANCE = (
    "checkpoint_sha256", "run_dir", "sampler", "steps", "guidance_scale", "eta", "base_seed",
)
SHARD_PATTERN = re.compile(r"shard-\d{5}\.npz")
RESUME_HINT = "re-run the same `synthmix sample` command to finish it"


@dataclass(frozen=True, eq=False)
class SyntheticSet:
    """A verified synthetic set held in memory."""

    path: Path
    manifest: dict[str, Any]
    class_names: tuple[str, ...]
    images: np.ndarray  # (N, H, W, C) uint8
    labels: np.ndarray  # (N,) int64
    seeds: np.ndarray  # (N,) int64

    def __len__(self) -> int:
        return int(self.labels.shape[0])


def shard_file_name(index: int) -> str:
    return f"shard-{index:05d}.npz"


def shard_sizes(num_images: int, shard_size: int) -> list[int]:
    """Images per shard: full shards of shard_size, then the remainder."""
    full, rest = divmod(num_images, shard_size)
    return [shard_size] * full + ([rest] if rest else [])


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def complete_provenance(provenance: dict[str, Any]) -> dict[str, Any]:
    """The caller's provenance as JSON would store it, with every required key present."""
    out = json.loads(json.dumps(provenance, default=_json_default))
    for key in REQUIRED_PROVENANCE:
        out.setdefault(key, None)
    return dict(out)


def check_class_names(class_names: Sequence[str]) -> tuple[str, ...]:
    """Class names are labels: unique, non-empty strings ("T-shirt/top" is fine; exporters
    make their own folder-safe names)."""
    names = tuple(str(c) for c in class_names)
    if not names:
        raise DataError("class_names is empty")
    if "" in names:
        raise DataError(f"class_names has an empty name: {list(names)}")
    if len(set(names)) != len(names):
        raise DataError(f"class_names has duplicates: {list(names)}")
    return names


def new_manifest(
    class_names: Sequence[str],
    image_shape: Sequence[int],
    n_per_class: Sequence[int],
    shard_size: int,
    provenance: dict[str, Any],
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """An incomplete manifest with one entry per planned shard and no checksums yet."""
    from synthmix.runinfo import code_version

    num_images = int(sum(n_per_class))
    manifest: dict[str, Any] = {
        "format_version": FORMAT_VERSION,
        "class_names": list(check_class_names(class_names)),
        "image_shape": [int(d) for d in image_shape],
        "n_per_class": [int(n) for n in n_per_class],
        "num_images": num_images,
        "shard_size": int(shard_size),
        "shards": [
            {"file": shard_file_name(s), "num_images": n, "sha256": None}
            for s, n in enumerate(shard_sizes(num_images, shard_size))
        ],
        "provenance": complete_provenance(provenance),
        "created": now_iso(),
        "code_version": code_version(),
        "complete": False,
    }
    manifest.update(extra or {})
    return manifest


def write_manifest(directory: str | Path, manifest: dict[str, Any]) -> None:
    atomic_write_json(Path(directory) / MANIFEST_NAME, manifest)


def write_shard(
    path: str | Path, images: np.ndarray, labels: np.ndarray, seeds: np.ndarray
) -> str:
    """Write one shard atomically and return its sha256."""
    images = np.ascontiguousarray(images)
    if images.dtype != np.uint8 or images.ndim != 4:
        raise ValueError(f"images must be uint8 (N, H, W, C), got {images.dtype} {images.shape}")
    n = images.shape[0]
    labels = np.asarray(labels, dtype=np.int64).reshape(-1)
    seeds = np.asarray(seeds, dtype=np.int64).reshape(-1)
    if labels.shape != (n,) or seeds.shape != (n,):
        raise ValueError(f"{n} images but {labels.shape[0]} labels and {seeds.shape[0]} seeds")
    atomic_save_npz(path, images=images, labels=labels, seeds=seeds)
    return sha256_file(path)


def load_shard(
    path: Path, num_images: int, image_shape: Sequence[int], num_classes: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Load one shard and check it against what the manifest says it holds."""
    if not path.is_file():
        raise DataError("shard is missing", path=path)
    try:
        with np.load(path, allow_pickle=False) as npz:
            missing = {"images", "labels", "seeds"} - set(npz.files)
            if missing:
                raise DataError(f"shard lacks arrays {sorted(missing)}", path=path)
            images, labels, seeds = npz["images"], npz["labels"], npz["seeds"]
    except DataError:
        raise
    except Exception as e:  # a torn or corrupt zip shows up as many exception types
        raise DataError(f"shard is unreadable ({type(e).__name__}: {e})", path=path) from e
    expected = (num_images, *(int(d) for d in image_shape))
    if images.dtype != np.uint8 or images.shape != expected:
        raise DataError(
            f"images are {images.dtype} {images.shape}, manifest says uint8 {expected}", path=path
        )
    for name, arr in (("labels", labels), ("seeds", seeds)):
        if arr.dtype != np.int64 or arr.shape != (num_images,):
            raise DataError(
                f"{name} are {arr.dtype} {arr.shape}, expected int64 ({num_images},)", path=path
            )
    if num_images and (labels.min() < 0 or labels.max() >= num_classes):
        raise DataError(f"labels outside 0..{num_classes - 1}", path=path)
    return images, labels, seeds


def read_manifest(path: str | Path) -> dict[str, Any]:
    """Parse `path`/manifest.json and check its fields' types (not yet `complete`)."""
    file = Path(path) / MANIFEST_NAME
    if not file.is_file():
        raise DataError("no manifest.json: not a synthetic set", path=path)
    try:
        manifest = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise DataError(f"unreadable manifest ({e})", path=file) from e
    if not isinstance(manifest, dict):
        raise DataError("manifest is not a JSON object", path=file)
    kinds = {
        "format_version": int, "class_names": list, "image_shape": list, "n_per_class": list,
        "num_images": int, "shard_size": int, "shards": list, "provenance": dict,
    }
    for key, kind in kinds.items():
        if not isinstance(manifest.get(key), kind):
            raise DataError(f"manifest field {key!r} missing or not a {kind.__name__}", path=file)
    if manifest["format_version"] != FORMAT_VERSION:
        raise DataError(
            f"format_version {manifest['format_version']}, this synthmix reads {FORMAT_VERSION}",
            path=file,
        )
    return manifest


def read_complete_manifest(path: str | Path) -> dict[str, Any]:
    """The manifest of a complete set whose shard list fits its sizes (no shard is read)."""
    path = Path(path)
    manifest = read_manifest(path)
    shards = manifest["shards"]
    if manifest.get("complete") is not True:
        done = sum(1 for s in range(len(shards)) if (path / shard_file_name(s)).is_file())
        raise DataError(f"incomplete: {done} of {len(shards)} shards", path=path, hint=RESUME_HINT)
    names = check_class_names(manifest["class_names"])
    if len(manifest["n_per_class"]) != len(names):
        raise DataError("n_per_class and class_names differ in length", path=path / MANIFEST_NAME)
    if manifest["shard_size"] < 1 or manifest["num_images"] != sum(manifest["n_per_class"]):
        raise DataError(
            f"num_images {manifest['num_images']} and shard_size {manifest['shard_size']} do not "
            f"fit n_per_class {manifest['n_per_class']}", path=path / MANIFEST_NAME,
        )
    sizes = shard_sizes(manifest["num_images"], manifest["shard_size"])
    listed = [(e.get("file"), e.get("num_images")) if isinstance(e, dict) else None
              for e in shards]
    if listed != [(shard_file_name(s), n) for s, n in enumerate(sizes)]:
        raise DataError(
            f"shard list is not {len(sizes)} shards shard-NNNNN.npz splitting "
            f"{manifest['num_images']} images into shards of {manifest['shard_size']}",
            path=path / MANIFEST_NAME,
        )
    return manifest


def read_synthetic_set(path: str | Path, verify: bool = True) -> SyntheticSet:
    """Load a complete set; with `verify`, check every shard's sha256 against the manifest."""
    path = Path(path)
    manifest = read_complete_manifest(path)
    shards = manifest["shards"]
    class_names = check_class_names(manifest["class_names"])
    parts = []
    for entry in shards:
        file = path / entry["file"]
        if not file.is_file():
            raise DataError("shard is missing", path=file)
        if verify and sha256_file(file) != entry.get("sha256"):
            raise DataError("sha256 does not match the manifest: the shard is corrupt", path=file)
        parts.append(load_shard(file, entry["num_images"], manifest["image_shape"],
                                len(class_names)))
    images, labels, seeds = (np.concatenate([p[k] for p in parts]) for k in range(3))
    counts = np.bincount(labels, minlength=len(class_names)).tolist()
    if counts != manifest["n_per_class"]:
        raise DataError(
            f"labels count {counts} per class, manifest says {manifest['n_per_class']}",
            path=path / MANIFEST_NAME,
        )
    return SyntheticSet(path, manifest, class_names, images, labels, seeds)


def write_synthetic_set(
    path: str | Path,
    images: np.ndarray,
    labels: np.ndarray,
    seeds: np.ndarray,
    class_names: Sequence[str],
    provenance: dict[str, Any],
    shard_size: int = 1024,
    *,
    extra: dict[str, Any] | None = None,
) -> Path:
    """Write a whole set at once (into `path`.partial, renamed when complete)."""
    path = Path(path)
    if path.exists() and (not path.is_dir() or any(path.iterdir())):
        raise DataError("already exists and is not empty; choose a new directory", path=path)
    labels = np.asarray(labels, dtype=np.int64).reshape(-1)
    seeds = np.asarray(seeds, dtype=np.int64).reshape(-1)
    names = check_class_names(class_names)
    if images.ndim != 4 or images.shape[0] == 0 or images.shape[0] != labels.shape[0]:
        raise ValueError(f"need N >= 1 images (N, H, W, C) and N labels, got {images.shape}")
    if labels.min() < 0 or labels.max() >= len(names):
        raise ValueError(f"labels outside 0..{len(names) - 1}")
    if shard_size < 1:
        raise ValueError(f"shard_size must be >= 1, got {shard_size}")
    n_per_class = np.bincount(labels, minlength=len(names)).tolist()
    manifest = new_manifest(names, images.shape[1:], n_per_class, shard_size, provenance, extra)
    partial = path.with_name(path.name + ".partial")
    if partial.exists():
        shutil.rmtree(partial)  # our own leftover from an interrupted write
    for s, entry in enumerate(manifest["shards"]):
        rows = slice(s * shard_size, s * shard_size + entry["num_images"])
        entry["sha256"] = write_shard(
            partial / entry["file"], images[rows], labels[rows], seeds[rows]
        )
    manifest["complete"] = True
    write_manifest(partial, manifest)
    if path.exists():
        path.rmdir()
    os.replace(partial, path)
    return path


def _json_default(obj: Any) -> Any:
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"provenance value is not JSON serialisable: {type(obj).__name__}")

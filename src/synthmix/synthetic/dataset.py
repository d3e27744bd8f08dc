"""Synthetic sets as tensors and as a `torch.utils.data.Dataset`."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from synthmix.data import to_model_tensor
from synthmix.errors import DataError
from synthmix.files import sha256_file
from synthmix.synthetic.format import (
    SyntheticSet,
    check_class_names,
    load_shard,
    read_complete_manifest,
    read_synthetic_set,
)

Tensors = tuple[torch.Tensor, torch.Tensor]
Shard = tuple[np.ndarray, np.ndarray, np.ndarray]  # images (n, H, W, C) uint8, labels, seeds


def set_tensors(source: str | Path | SyntheticSet) -> Tensors:
    """A whole (verified) synthetic set as (images (N, C, H, W) in [-1, 1], labels (N,))."""
    syn = source if isinstance(source, SyntheticSet) else read_synthetic_set(source)
    return to_model_tensor(syn.images, None), torch.as_tensor(syn.labels, dtype=torch.int64)


class SyntheticDataset(Dataset[tuple[Any, int]]):
    """A complete synthetic set read lazily, one shard at a time.

    Item i is (image, label): the image as a float tensor (C, H, W) in [-1, 1] (x / 127.5 - 1,
    as `synthmix.data.to_model_tensor`), or `transform(uint8 (H, W, C) array)` when a transform
    is given. At most `cached_shards` shards are held in memory (least recently used dropped);
    each shard's sha256 is checked against the manifest the first time it is opened.
    """

    def __init__(
        self,
        path: str | Path,
        transform: Callable[[np.ndarray], Any] | None = None,
        *,
        cached_shards: int = 1,
    ):
        self.path = Path(path)
        self.transform = transform
        if cached_shards < 1:
            raise ValueError(f"cached_shards must be >= 1, got {cached_shards}")
        self.cached_shards = cached_shards
        self._manifest = read_complete_manifest(self.path)
        self._class_names = check_class_names(self._manifest["class_names"])
        self._shard_size = int(self._manifest["shard_size"])
        self._cache: OrderedDict[int, Shard] = OrderedDict()
        self._verified: set[int] = set()
        self._labels: np.ndarray | None = None
        self._seeds: np.ndarray | None = None

    def __len__(self) -> int:
        return int(self._manifest["num_images"])

    def __getitem__(self, index: int) -> tuple[Any, int]:
        shard, row = self._locate(index)
        images, labels, _ = self._shard(shard)
        pixels = images[row]  # (H, W, C) uint8
        label = int(labels[row])
        if self.transform is not None:
            return self.transform(pixels), label
        return to_model_tensor(pixels[None], None)[0], label  # (C, H, W)

    @property
    def class_names(self) -> tuple[str, ...]:
        return self._class_names

    @property
    def manifest(self) -> dict[str, Any]:
        """The set's manifest.json (provenance, sampler settings, shards)."""
        return self._manifest

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """(H, W, C) of every image."""
        h, w, c = (int(d) for d in self._manifest["image_shape"])
        return h, w, c

    @property
    def labels(self) -> np.ndarray:
        """Every image's label (N,) int64, read from the shards without their images."""
        if self._labels is None:
            self._labels = self._column("labels")
        return self._labels

    @property
    def seeds(self) -> np.ndarray:
        """Every image's own seed (N,) int64: (label, seed) regenerate image i alone."""
        if self._seeds is None:
            self._seeds = self._column("seeds")
        return self._seeds

    def seed(self, index: int) -> int:
        """The seed of image `index`."""
        shard, row = self._locate(index)
        return int(self._shard(shard)[2][row])

    def __getstate__(self) -> dict[str, Any]:
        # DataLoader workers get a copy of the dataset: send them no loaded shard.
        state = dict(self.__dict__)
        state["_cache"] = OrderedDict()
        return state

    def _locate(self, index: int) -> tuple[int, int]:
        n = len(self)
        i = int(index)
        if i < 0:
            i += n
        if not 0 <= i < n:
            raise IndexError(f"index {index} out of range for a set of {n} images")
        return divmod(i, self._shard_size)

    def _shard(self, s: int) -> Shard:
        """Shard s, from the cache or from disk (verified on first open)."""
        if s in self._cache:
            self._cache.move_to_end(s)
            return self._cache[s]
        file, entry = self._verify(s)
        shard = load_shard(file, int(entry["num_images"]), self._manifest["image_shape"],
                           len(self._class_names))
        self._cache[s] = shard
        while len(self._cache) > self.cached_shards:
            self._cache.popitem(last=False)
        return shard

    def _verify(self, s: int) -> tuple[Path, dict[str, Any]]:
        entry = self._manifest["shards"][s]
        file = self.path / entry["file"]
        if s not in self._verified:
            if not file.is_file():
                raise DataError("shard is missing", path=file)
            if sha256_file(file) != entry.get("sha256"):
                raise DataError("sha256 does not match the manifest: the shard is corrupt",
                                path=file)
            self._verified.add(s)
        return file, entry

    def _column(self, name: str) -> np.ndarray:
        """One per-image array of the whole set (labels or seeds), shard by shard."""
        parts = []
        for s in range(len(self._manifest["shards"])):
            if s in self._cache:
                parts.append(self._cache[s][1 if name == "labels" else 2])
                continue
            file, entry = self._verify(s)
            try:
                with np.load(file, allow_pickle=False) as npz:
                    column = npz[name]
            except Exception as e:  # a torn zip shows up as many exception types
                raise DataError(f"shard is unreadable ({type(e).__name__}: {e})",
                                path=file) from e
            if column.dtype != np.int64 or column.shape != (int(entry["num_images"]),):
                raise DataError(f"{name} are {column.dtype} {column.shape}, expected int64 "
                                f"({entry['num_images']},)", path=file)
            parts.append(column)
        return np.concatenate(parts)

"""The decoded form of a data set: uint8 images (N, H, W, C) and int64 labels, per split."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from synthmix.errors import DataError

ChecksumStatus = Literal["ok", "mismatch", "unknown"]


@dataclass(frozen=True)
class SourceInfo:
    """One file a data set was read from, and whether it matches the official checksum."""

    path: str
    size: int
    checksum: ChecksumStatus
    md5: str | None = None  # the md5 that was compared (of the file or of its decompressed content)
    expected_md5: str | None = None
    md5_of: Literal["file", "content", ""] = ""


@dataclass(frozen=True, eq=False)
class RawSplit:
    """Images (N, H, W, C) uint8 and labels (N,) int64 of one official split."""

    images: np.ndarray  # (N, H, W, C) uint8
    labels: np.ndarray  # (N,) int64

    def __post_init__(self) -> None:
        if self.images.ndim != 4 or self.images.dtype != np.uint8:
            raise ValueError(
                f"images must be (N, H, W, C) uint8, got {self.images.shape} {self.images.dtype}"
            )
        if self.labels.shape != (len(self.images),) or self.labels.dtype != np.int64:
            raise ValueError(
                f"labels must be ({len(self.images)},) int64, "
                f"got {self.labels.shape} {self.labels.dtype}"
            )

    def __len__(self) -> int:
        return len(self.labels)

    def class_counts(self, num_classes: int) -> np.ndarray:
        """Number of images of each class, (num_classes,) int64."""
        return np.bincount(self.labels, minlength=num_classes).astype(np.int64)


@dataclass(frozen=True, eq=False)
class RawDataset:
    """A decoded data set: official train and test splits, class names and the files read."""

    name: str
    class_names: tuple[str, ...]
    train: RawSplit
    test: RawSplit
    sources: tuple[SourceInfo, ...] = ()

    def __post_init__(self) -> None:
        if self.train.images.shape[1:] != self.test.images.shape[1:]:
            raise DataError(
                f"train images are {self.train.images.shape[1:]} but test images are "
                f"{self.test.images.shape[1:]}",
                path=self.name,
            )
        for split_name, split in (("train", self.train), ("test", self.test)):
            if len(split) and (split.labels.min() < 0 or split.labels.max() >= self.num_classes):
                raise DataError(
                    f"{split_name} labels must lie in 0..{self.num_classes - 1}, found "
                    f"{int(split.labels.min())}..{int(split.labels.max())}",
                    path=self.name,
                )

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """(H, W, C) of every image."""
        h, w, c = self.train.images.shape[1:]
        return int(h), int(w), int(c)

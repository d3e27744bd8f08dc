"""The study's splits of a real data set as a `torch.utils.data.Dataset`."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch.utils.data import Dataset

from synthmix.data.prepared import DataConfig, prepare_data
from synthmix.data.preprocess import to_model_tensor, to_uint8_images
from synthmix.data.splits import SPLIT_NAMES
from synthmix.errors import ConfigError

SplitName = Literal[
    "diffusion_train", "diffusion_val", "classifier_train", "classifier_val", "test"
]
SPLITS: tuple[str, ...] = (*SPLIT_NAMES, "test")  # the study's four halves of train, then test
DEFAULT_DATA = DataConfig()


class RealDataset(Dataset[tuple[Any, int]]):
    """One split of a real data set, split and resized exactly as a study with the same data
    settings splits it (`synthmix.data.prepared.prepare_data`).

    Item i is (image, label): a float tensor (C, S, S) in [-1, 1], or `transform(uint8 (S, S, C)
    array)` when a transform is given. The split's pixels are held in memory as uint8.
    """

    def __init__(
        self,
        name: str,
        split: SplitName = "classifier_train",
        data_dir: str | Path | None = DEFAULT_DATA.data_dir,
        image_size: int | None = DEFAULT_DATA.image_size,
        resize: Literal["pad", "resize"] = DEFAULT_DATA.resize,
        channels: int | None = DEFAULT_DATA.channels,
        split_seed: int = DEFAULT_DATA.split_seed,
        diffusion_fraction: float = DEFAULT_DATA.diffusion_fraction,
        val_fraction: float = DEFAULT_DATA.val_fraction,
        transform: Callable[[np.ndarray], Any] | None = None,
    ):
        if split not in SPLITS:
            raise ConfigError(f"unknown split {split!r}", hint=f"choose one of {', '.join(SPLITS)}")
        self.config = DataConfig(
            dataset=name, data_dir=None if data_dir is None else str(data_dir),
            image_size=image_size, resize=resize, channels=channels, split_seed=split_seed,
            diffusion_fraction=diffusion_fraction, val_fraction=val_fraction,
        )  # fmt: skip
        self.split = split
        self.transform = transform
        data = prepare_data(self.config)
        x, y = getattr(data, split)  # (N, C, S, S) in [-1, 1], (N,)
        self._class_names = tuple(data.class_names)
        self._images = to_uint8_images(x)  # (N, S, S, C): a quarter of the float32 memory
        self._labels = y.to(torch.int64)

    def __len__(self) -> int:
        return int(self._labels.shape[0])

    def __getitem__(self, index: int) -> tuple[Any, int]:
        pixels = self._images[index]  # (S, S, C) uint8
        label = int(self._labels[index])
        if self.transform is not None:
            return self.transform(pixels), label
        return to_model_tensor(pixels[None], None)[0], label  # (C, S, S)

    @property
    def class_names(self) -> tuple[str, ...]:
        return self._class_names

    @property
    def labels(self) -> torch.Tensor:
        """Every image's label (N,) int64."""
        return self._labels

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """(H, W, C) of every image."""
        h, w, c = self._images.shape[1:]
        return int(h), int(w), int(c)

    def tensors(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The whole split as (images (N, C, S, S) in [-1, 1], labels (N,))."""
        return to_model_tensor(self._images, None), self._labels.clone()

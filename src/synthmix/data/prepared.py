"""A data set as a study uses it (SPEC section 1): loaded, split into the DDPM's half and the
classifier's half (each train/validation), brought to the study's size and scaled to [-1, 1]."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch


@dataclass(frozen=True)
class DataConfig:
    """Which data set, at which size, split how (SPEC §1)."""

    dataset: str = "digits"
    data_dir: str | None = None
    image_size: int | None = 32  # None: native size
    resize: Literal["pad", "resize"] = "pad"  # pad: MNIST 28 -> 32 with 2 black pixels a side
    channels: int | None = None  # None: the data set's own; 1 or 3 converts explicitly
    split_seed: int = 0
    diffusion_fraction: float = 0.5  # 1.0: the study's "full data" scenario
    val_fraction: float = 0.1


@dataclass
class PreparedData:
    class_names: tuple[str, ...]
    diffusion_train: tuple[torch.Tensor, torch.Tensor]  # (N, C, S, S) in [-1, 1], (N,)
    diffusion_val: tuple[torch.Tensor, torch.Tensor]
    classifier_train: tuple[torch.Tensor, torch.Tensor]
    classifier_val: tuple[torch.Tensor, torch.Tensor]
    test: tuple[torch.Tensor, torch.Tensor]
    splits: Any  # synthmix.data.StudySplits

    @property
    def image_shape(self) -> tuple[int, int, int]:
        c, h, w = self.diffusion_train[0].shape[1:]
        return int(h), int(w), int(c)


def prepare_data(cfg: DataConfig) -> PreparedData:
    """Load the data set, split it the study's way and scale it to [-1, 1]."""
    from synthmix.data import load_dataset, make_study_splits, to_model_tensor

    raw = load_dataset(cfg.dataset, cfg.data_dir, channels=cfg.channels, image_size=cfg.image_size)
    splits = make_study_splits(
        raw.train.labels,
        seed=cfg.split_seed,
        diffusion_fraction=cfg.diffusion_fraction,
        val_fraction=cfg.val_fraction,
    )

    def tensors(images: np.ndarray, labels: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        x = to_model_tensor(images, cfg.image_size, cfg.resize, cfg.channels)
        return x, torch.as_tensor(labels, dtype=torch.int64)

    train = raw.train
    return PreparedData(
        class_names=tuple(raw.class_names),
        diffusion_train=tensors(
            train.images[splits.diffusion_train], train.labels[splits.diffusion_train]
        ),
        diffusion_val=tensors(
            train.images[splits.diffusion_val], train.labels[splits.diffusion_val]
        ),
        classifier_train=tensors(
            train.images[splits.classifier_train], train.labels[splits.classifier_train]
        ),
        classifier_val=tensors(
            train.images[splits.classifier_val], train.labels[splits.classifier_val]
        ),
        test=tensors(raw.test.images, raw.test.labels),
        splits=splits,
    )

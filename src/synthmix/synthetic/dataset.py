"""Synthetic sets as tensors and as a `torch.utils.data.Dataset`."""

from __future__ import annotations

from pathlib import Path

import torch

from synthmix.data import to_model_tensor
from synthmix.synthetic.format import SyntheticSet, read_synthetic_set

Tensors = tuple[torch.Tensor, torch.Tensor]


def set_tensors(source: str | Path | SyntheticSet) -> Tensors:
    """A whole (verified) synthetic set as (images (N, C, H, W) in [-1, 1], labels (N,))."""
    syn = source if isinstance(source, SyntheticSet) else read_synthetic_set(source)
    return to_model_tensor(syn.images, None), torch.as_tensor(syn.labels, dtype=torch.int64)

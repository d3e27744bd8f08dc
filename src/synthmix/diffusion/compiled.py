"""torch.compile for sampling: one compiled graph for a fixed batch, whatever batch arrives.

A set is sampled in batches of `batch_size` plus one smaller last batch, and guidance doubles
each batch, so a plainly compiled network would compile once per shape (50-75 s each for the
`cpu` U-Net on a 2-core CPU). `FixedBatchEps` compiles once, for exactly `2 * batch_size` rows
(`dynamic=False`: the fastest kernels), and zero-pads a smaller input to it, dropping the
padded rows' output. Every image still has its own noise, so padding changes no real image
beyond float rounding.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn


class FixedBatchEps(nn.Module):
    """eps(x_t, t, y) through `torch.compile(model)` at a fixed number of rows (padding up)."""

    def __init__(self, model: nn.Module, rows: int) -> None:
        super().__init__()
        if rows < 1:
            raise ValueError(f"rows must be >= 1, got {rows}")
        self.model = model
        self.rows = rows
        self.compiled: Any = torch.compile(model, dynamic=False)

    @property
    def image_shape(self) -> Any:
        return getattr(self.model, "image_shape")  # noqa: B009 - the wrapped U-Net's

    @property
    def null_label(self) -> Any:
        return getattr(self.model, "null_label")  # noqa: B009

    def forward(self, x: torch.Tensor, t: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        n = len(x)
        if n > self.rows:  # never in generate_synthetic_set; correct but compiles a new shape
            return self.compiled(x, t, y)
        if n < self.rows:
            pad = self.rows - n
            x = torch.cat([x, x.new_zeros((pad, *x.shape[1:]))])  # (rows, C, H, W)
            t = torch.cat([t, t.new_zeros(pad)])
            y = torch.cat([y, y.new_zeros(pad)])
        return self.compiled(x, t, y)[:n]  # (n, C, H, W)


def compile_for_sampling(model: nn.Module, batch_size: int, guided: bool = True) -> FixedBatchEps:
    """The network compiled for sampling `batch_size` images (2x the rows under guidance)."""
    return FixedBatchEps(model, batch_size * (2 if guided else 1))

"""Exponential moving average of weights (used for sampling; the study had none)."""

from __future__ import annotations

import copy

import torch
from torch import nn


class EMA:
    """Keeps `shadow`, a frozen copy of the model whose weights follow an EMA of the model's."""

    def __init__(self, model: nn.Module, decay: float, warmup: bool = True):
        self.decay = decay
        self.warmup = warmup
        self.shadow = copy.deepcopy(model).eval().requires_grad_(False)

    def decay_at(self, step: int) -> float:
        # Warm-up (1 + n) / (10 + n) keeps early, random weights from dominating short runs.
        if not self.warmup:
            return self.decay
        return min(self.decay, (1 + step) / (10 + step))

    @torch.no_grad()
    def update(self, model: nn.Module, step: int) -> None:
        d = self.decay_at(step)
        ema_params: list[torch.Tensor] = list(self.shadow.parameters())
        params: list[torch.Tensor] = [p.detach() for p in model.parameters()]
        torch._foreach_lerp_(ema_params, params, 1.0 - d)
        for b_ema, b in zip(self.shadow.buffers(), model.buffers()):
            b_ema.copy_(b)

"""Every random number in synthmix has an owner: seeds derived from a run's base seed.

`derive_seed` turns (base seed, stream, step, ...) into a 63-bit seed; the stream ids keep two
uses of one base seed from sharing numbers. `StepRandom` draws a training step's numbers for the
global batch, so one process and N DDP ranks give the same numbers to the same images.
`StepDropout` takes its masks from the step's StepRandom in the same way, so dropout too is a
function of (step, global sample index). `seeded_init` builds a network's initial weights from a
recorded seed, not from torch's global generator.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

# Stream ids for derive_seed, so no two uses of a base seed ever share random numbers.
STREAM_ORDER, STREAM_STEP, STREAM_GLOBAL, STREAM_INIT, STREAM_MIX = 1, 2, 3, 4, 5
STREAM_DROPOUT = 6


def derive_seed(*parts: int) -> int:
    """A 63-bit seed derived from integers (base seed, stream, step, rank ...), stable over runs."""
    state = np.random.SeedSequence([int(p) & 0xFFFFFFFFFFFFFFFF for p in parts]).generate_state(
        2, dtype=np.uint32
    )
    return int((int(state[0]) << 31) ^ int(state[1])) & 0x7FFFFFFFFFFFFFFF


@contextlib.contextmanager
def seeded_init(seed: int) -> Iterator[None]:
    """Build a network inside this block: its initial weights come from `seed` alone, and torch's
    global CPU generator is left as it was."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(derive_seed(seed, STREAM_INIT))
        yield


class StepRandom:
    """The random numbers of one training step, drawn for the global batch from a generator
    seeded by (seed, step) and cut to this rank's rows (rank, rank + N, ... of the global
    batch), so that one process and N DDP ranks give the same numbers to the same images."""

    def __init__(self, generator: torch.Generator, rank: int = 0, world: int = 1) -> None:
        self.generator, self.rank, self.world = generator, rank, world

    def _rows(self, t: torch.Tensor) -> torch.Tensor:
        return t if self.world == 1 else t[self.rank :: self.world]

    def rand(self, n: int, *shape: int) -> torch.Tensor:
        """U[0, 1) of shape (n, *shape) for this rank's n images."""
        g = self.generator
        return self._rows(torch.rand(n * self.world, *shape, generator=g, device=g.device))

    def randn(self, n: int, *shape: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """N(0, 1) of shape (n, *shape) for this rank's n images."""
        g = self.generator
        t = torch.randn(n * self.world, *shape, generator=g, device=g.device, dtype=dtype)
        return self._rows(t)

    def randint(self, high: int, n: int, *shape: int) -> torch.Tensor:
        """Integers in [0, high) of shape (n, *shape) for this rank's n images."""
        g = self.generator
        size = (n * self.world, *shape)
        return self._rows(torch.randint(0, high, size, generator=g, device=g.device))


class StepDropout(nn.Module):
    """Dropout (Srivastava et al. 2014) whose masks, inside `step_dropout`, are drawn for the
    global batch from the step's StepRandom: image i of the global batch gets the same mask in one
    process and in N DDP ranks. Elsewhere (no step attached) it is plain `F.dropout`."""

    def __init__(self, p: float) -> None:
        super().__init__()
        self.p = p
        self.rng: StepRandom | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return x
        if self.rng is None:
            return F.dropout(x, self.p, training=True)
        keep = self.rng.rand(x.shape[0], *x.shape[1:]).to(x.device) >= self.p  # like x
        return x * keep.to(x.dtype) / (1.0 - self.p)

    def extra_repr(self) -> str:
        return f"p={self.p}"


@contextlib.contextmanager
def step_dropout(model: nn.Module, rng: StepRandom) -> Iterator[None]:
    """Inside this block every StepDropout of `model` draws its masks from `rng`, in the order
    the forward pass calls them (the same on every rank)."""
    layers = [m for m in model.modules() if isinstance(m, StepDropout)]
    for m in layers:
        m.rng = rng
    try:
        yield
    finally:
        for m in layers:
            m.rng = None

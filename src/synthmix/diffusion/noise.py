"""Per-image noise for samplers: every image owns a seed, and its noise depends on nothing else.

Two seed rules exist; the manifest of every synthetic set records which one made it.

- Rule 2 (`PhiloxNoise`, the default): counter-based. Image i's 64-bit seed is the key of a
  Philox4x32-10 bijection (Salmon et al. 2011, "Parallel random numbers: as easy as 1, 2, 3");
  the k-th draw of an image encrypts the counters (j, k, 0, 0), j = 0, 1, ... over its pixels,
  and Box-Muller turns each pair of 32-bit words into two standard normals. A batch's noise is
  a few dozen element-wise tensor operations whatever the batch size, the numbers do not depend
  on the batch, the sharding, or the device's random generator (CPU and CUDA compute the same
  integers), and every bit of the seed matters.
- Rule 1 (`PerImageNoise`, sets written before rule 2): one `torch.Generator` per image, one
  `torch.randn` call per image per draw. The CPU generator keeps only the low 32 bits of a seed.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Protocol

import torch

from synthmix.diffusion.settings import DEFAULT_SEED_RULE, SEED_RULES
from synthmix.errors import ConfigError

_MASK32 = 0xFFFFFFFF
# Philox4x32 constants (Salmon et al. 2011, Random123 philox.h).
_M0, _M1 = 0xD2511F53, 0xCD9E8D57  # round multipliers
_W0, _W1 = 0x9E3779B9, 0xBB67AE85  # key schedule: golden ratio, sqrt(3) - 1
PHILOX_ROUNDS = 10

class Noise(Protocol):
    """What a sampler asks of per-image noise: one standard-normal draw per image."""

    device: torch.device

    def __len__(self) -> int: ...

    def randn(self, shape_per_image: Sequence[int]) -> torch.Tensor: ...


def _mulhilo(a: torch.Tensor, m: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(high, low) 32-bit words of a * m for a in [0, 2^32) as int64, without int64 overflow:
    a is split into 16-bit halves so that every partial product stays below 2^49."""
    p_lo = (a & 0xFFFF) * m  # < 2^48
    p_hi = (a >> 16) * m  # < 2^48
    low = (p_lo + ((p_hi & 0xFFFF) << 16)) & _MASK32
    high = (p_hi + (p_lo >> 16)) >> 16
    return high, low


def philox4x32(
    counter: Sequence[torch.Tensor], key: Sequence[torch.Tensor], rounds: int = PHILOX_ROUNDS
) -> tuple[torch.Tensor, ...]:
    """Philox4x32-R on int64 tensors holding uint32 words (broadcast against each other)."""
    x0, x1, x2, x3 = counter
    k0, k1 = key
    for r in range(rounds):
        if r:  # the key is bumped before every round but the first (Random123)
            k0, k1 = (k0 + _W0) & _MASK32, (k1 + _W1) & _MASK32
        hi0, lo0 = _mulhilo(x0, _M0)
        hi1, lo1 = _mulhilo(x2, _M1)
        x0, x1, x2, x3 = hi1 ^ x1 ^ k0, lo1, hi0 ^ x3 ^ k1, lo0
    return x0, x1, x2, x3


def _uniform(words: torch.Tensor) -> torch.Tensor:
    """uint32 words -> float32 uniforms in (0, 1], from their top 24 bits."""
    return ((words >> 8).to(torch.float32) + 0.5) * 2.0**-24


class PhiloxNoise:
    """Seed rule 2: counter-based per-image Gaussian noise, a whole batch in one go.

    Draws are computed in blocks (1, 2, 4, ... up to MAX_BLOCK draws at once, within a memory
    cap), so a sampler that draws at every step (ancestral) costs a few dozen tensor operations
    per block rather than per step; the numbers do not depend on the blocking."""

    MAX_BLOCK = 64
    MAX_BLOCK_ELEMENTS = 2**24  # float32 normals held ahead: 64 MiB

    def __init__(self, seeds: Sequence[int] | torch.Tensor, device: torch.device | str) -> None:
        self.device = torch.device(device)
        seeds = torch.as_tensor(
            seeds.tolist() if isinstance(seeds, torch.Tensor) else list(seeds), dtype=torch.int64
        )
        if len(seeds) and int(seeds.min()) < 0:
            raise ConfigError("per-image seeds must be >= 0")
        self.seeds = seeds
        self.key = (
            (seeds & _MASK32).to(self.device)[:, None, None],  # (B, 1, 1)
            (seeds >> 32).to(self.device)[:, None, None],
        )
        self.draws = 0  # how many draws were handed out: draw 0 is x_T
        self._ahead: list[torch.Tensor] = []  # drawn, not yet handed out (this shape)
        self._shape: tuple[int, ...] = ()
        self._block = 1

    def __len__(self) -> int:
        return len(self.seeds)

    def randn(self, shape_per_image: Sequence[int]) -> torch.Tensor:
        """The next standard-normal draw of every image: (B, *shape_per_image), float32."""
        shape = tuple(int(d) for d in shape_per_image)
        if shape != self._shape:  # another shape: drop what was drawn ahead for the old one
            self._ahead, self._shape, self._block = [], shape, 1
        if not self._ahead:
            n = max(1, math.prod(shape))
            cap = max(1, self.MAX_BLOCK_ELEMENTS // max(1, len(self.seeds) * n))
            block = min(self._block, self.MAX_BLOCK, cap)
            self._ahead = list(self._draw_block(shape, self.draws, block).unbind(1))
            self._block = block * 2
        self.draws += 1
        return self._ahead.pop(0)

    def _draw_block(self, shape: tuple[int, ...], first: int, count: int) -> torch.Tensor:
        """Draws first .. first + count - 1 of every image: (B, count, *shape)."""
        n = math.prod(shape)
        words = -(-n // 4)  # Philox blocks of 4 words, each pair of words gives 2 normals
        j = torch.arange(words, device=self.device, dtype=torch.int64)[None, None, :]  # (1,1,W)
        draw = first + torch.arange(count, device=self.device, dtype=torch.int64)[None, :, None]
        j, draw = torch.broadcast_tensors(j, draw)  # (1, count, W)
        zero = torch.zeros_like(j)
        b0, b1, b2, b3 = philox4x32((j, draw, zero, zero), self.key)  # each (B, count, W)
        z = torch.stack([*_box_muller(b0, b1), *_box_muller(b2, b3)], dim=-1)  # (B, count, W, 4)
        b = len(self.seeds)
        return z.reshape(b, count, -1)[:, :, :n].reshape(b, count, *shape)


def _box_muller(a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Two independent N(0, 1) from two uniforms (Box & Muller 1958)."""
    radius = torch.sqrt(-2.0 * torch.log(_uniform(a)))
    angle = (2.0 * math.pi) * _uniform(b)
    return radius * torch.cos(angle), radius * torch.sin(angle)


class PerImageNoise:
    """Seed rule 1: x_T and each step's z come from the image's own torch.Generator, one
    `torch.randn` call per image per draw (like NVlabs/edm StackedRandomGenerator)."""

    def __init__(self, seeds: Sequence[int] | torch.Tensor, device: torch.device | str) -> None:
        self.seeds = [
            int(s) for s in (seeds.tolist() if isinstance(seeds, torch.Tensor) else seeds)
        ]
        self.device = torch.device(device)
        self.generators = [torch.Generator(self.device).manual_seed(s) for s in self.seeds]

    def __len__(self) -> int:
        return len(self.seeds)

    def randn(self, shape_per_image: Sequence[int]) -> torch.Tensor:
        """One standard-normal draw per image, stacked: (B, *shape_per_image)."""
        shape = tuple(shape_per_image)
        return torch.stack(
            [torch.randn(shape, generator=g, device=self.device) for g in self.generators]
        )


def make_noise(
    seeds: Sequence[int] | torch.Tensor, device: torch.device | str, rule: int = DEFAULT_SEED_RULE
) -> Noise:
    """The per-image noise of seed rule `rule` (1 or 2) for images with these seeds."""
    if rule == 2:
        return PhiloxNoise(seeds, device)
    if rule == 1:
        return PerImageNoise(seeds, device)
    raise ConfigError(f"seed rule {rule!r} is unknown", hint=f"known rules: {sorted(SEED_RULES)}")

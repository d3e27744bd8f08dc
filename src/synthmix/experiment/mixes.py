"""Training sets that mix real and synthetic images (SPEC §5), in two stated semantics.

- `fraction-of-pools` (the study's code): take `real` of the real pool and `synthetic` of the
  synthetic pool, so the training-set size changes between experiments.
- `fixed-total`: every experiment trains on `total` images (default: the real pool's size),
  `real / (real + synthetic)` of them real.

Subsets are nested and class-stratified: each class's pool is shuffled once with the mix
seed, and an experiment takes a prefix of every class, so 10% real is inside 50% real.
Validation is always 10% of the real data available to an experiment (the classifier half's
validation split, cut by the same fraction); an experiment without real data validates on a
held-out 10% of its synthetic images instead, and its report says so.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch

from synthmix.errors import ConfigError

MixSemantics = Literal["fraction-of-pools", "fixed-total"]


@dataclass(frozen=True)
class Mix:
    """One cell of the experiment table: fractions of the real and synthetic pools."""

    name: str
    real: float
    synthetic: float


STUDY_MIXES = (
    Mix("Exp 1", 1.0, 0.0),
    Mix("Exp 2", 0.0, 1.0),
    Mix("Exp 3", 0.5, 0.5),
    Mix("Exp 4", 0.1, 0.9),
    Mix("Exp 5", 0.9, 0.1),
)


@dataclass
class MixedSet:
    train_x: torch.Tensor  # (N, C, H, W) in [-1, 1]
    train_y: torch.Tensor  # (N,)
    val_x: torch.Tensor
    val_y: torch.Tensor
    n_real: int
    n_synthetic: int
    validation: str  # where validation images came from

    def sizes(self) -> dict[str, int | str]:
        return {
            "train_real": self.n_real,
            "train_synthetic": self.n_synthetic,
            "train_total": self.n_real + self.n_synthetic,
            "val": len(self.val_y),
            "validation": self.validation,
        }


def stratified_prefix(
    labels: np.ndarray, fraction: float | None, seed: int, count: int | None = None
) -> np.ndarray:
    """Indices of a class-stratified subset: `fraction` of each class (or `count` in total)."""
    labels = np.asarray(labels)
    classes = np.unique(labels)
    rng = np.random.default_rng(seed)
    n = len(labels)
    want = round(fraction * n) if count is None else count  # type: ignore[operator]
    if want > n:
        raise ConfigError(f"asked for {want} images from a pool of {n}")
    chosen = []
    # Largest-remainder rounding, so per-class counts sum to exactly `want`.
    shares = np.array([np.sum(labels == c) for c in classes]) * want / max(n, 1)
    per_class = np.floor(shares).astype(int)
    for i in np.argsort(-(shares - per_class), kind="stable")[: want - per_class.sum()]:
        per_class[i] += 1
    for c, k in zip(classes, per_class):
        idx = np.flatnonzero(labels == c)
        chosen.append(idx[rng.permutation(len(idx))][:k])
    return np.sort(np.concatenate(chosen)) if chosen else np.zeros(0, dtype=np.int64)


def mix_counts(
    mix: Mix, semantics: MixSemantics, n_real_pool: int, n_syn_pool: int, total: int | None
) -> tuple[int, int]:
    """(real, synthetic) training-image counts for `mix`."""
    for name, f in (("real", mix.real), ("synthetic", mix.synthetic)):
        if not 0.0 <= f <= 1.0:
            raise ConfigError(f"{mix.name}: {name} fraction {f} is outside [0, 1]")
    if semantics == "fraction-of-pools":
        return round(mix.real * n_real_pool), round(mix.synthetic * n_syn_pool)
    total = n_real_pool if total is None else total
    if mix.real + mix.synthetic == 0:
        raise ConfigError(f"{mix.name}: real and synthetic fractions are both 0")
    n_real = round(total * mix.real / (mix.real + mix.synthetic))
    n_syn = total - n_real
    if n_real > n_real_pool or n_syn > n_syn_pool:
        raise ConfigError(
            f"{mix.name}: fixed-total {total} needs {n_real} real and {n_syn} synthetic images "
            f"but the pools hold {n_real_pool} and {n_syn_pool}",
            hint="lower mixes.total or sample more synthetic images",
        )
    return n_real, n_syn


def build_mix(
    mix: Mix,
    semantics: MixSemantics,
    real_train: tuple[torch.Tensor, torch.Tensor],
    real_val: tuple[torch.Tensor, torch.Tensor],
    synthetic: tuple[torch.Tensor, torch.Tensor],
    seed: int,
    total: int | None = None,
    val_fraction: float = 0.1,
) -> MixedSet:
    """The training and validation sets of one experiment."""
    (rx, ry), (vx, vy), (sx, sy) = real_train, real_val, synthetic
    n_real, n_syn = mix_counts(mix, semantics, len(ry), len(sy), total)
    real_idx = torch.as_tensor(stratified_prefix(ry.numpy(), None, seed, count=n_real))
    syn_idx = torch.as_tensor(stratified_prefix(sy.numpy(), None, seed + 1, count=n_syn))
    if n_real > 0:
        # The same share of the real validation split as of the real training pool.
        share = n_real / len(ry)
        val_idx = torch.as_tensor(stratified_prefix(vy.numpy(), share, seed + 2))
        val = (vx[val_idx], vy[val_idx])
        where = f"{len(val_idx)} real images (10% of the real data available)"
        syn_train = syn_idx
    else:
        # No real data: hold out val_fraction of this experiment's synthetic images.
        pick = stratified_prefix(sy[syn_idx].numpy(), val_fraction, seed + 3)
        mask = np.zeros(len(syn_idx), dtype=bool)
        mask[pick] = True
        val = (sx[syn_idx[mask]], sy[syn_idx[mask]])
        syn_train = syn_idx[~mask]
        where = f"{int(mask.sum())} held-out synthetic images (no real data in this experiment)"
    train_x = torch.cat([rx[real_idx], sx[syn_train]])
    train_y = torch.cat([ry[real_idx], sy[syn_train]])
    return MixedSet(train_x, train_y, val[0], val[1], n_real, len(syn_train), where)

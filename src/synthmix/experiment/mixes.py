"""Training sets that mix real and synthetic images (SPEC §5), in two stated semantics.

- `fraction-of-pools` (the study's code): take `real` of the real pool and `synthetic` of the
  synthetic pool, so the training-set size changes between experiments.
- `fixed-total`: every experiment trains on `total` images (default: the largest total every
  mix of the study can afford from the two pools), `real / (real + synthetic)` of them real.

Subsets are nested and class-stratified: each class's pool is shuffled once with the mix
seed, and an experiment takes a prefix of every class, so 10% real is inside 50% real.
Validation is always the real data available to an experiment in the same share (the classifier
half's validation split, cut by the same fraction, with a floor per class); an experiment
without real data validates on a held-out 10% of its synthetic images instead, and its report
says so.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch

from synthmix.data.splits import stratified_holdout, stratified_prefix
from synthmix.errors import ConfigError

MixSemantics = Literal["fraction-of-pools", "fixed-total"]
SYN_VAL_FRACTION = 0.1  # of a synthetic-only cell's images, held out for early stopping


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


def mix_counts(
    mix: Mix, semantics: MixSemantics, n_real_pool: int, n_syn_pool: int, total: int | None
) -> tuple[int, int]:
    """(real, synthetic) training-image counts for `mix` (fixed-total: of `total` images,
    default the largest total every mix of the study can afford, see `affordable_total`)."""
    for name, f in (("real", mix.real), ("synthetic", mix.synthetic)):
        if not 0.0 <= f <= 1.0:
            raise ConfigError(f"{mix.name}: {name} fraction {f} is outside [0, 1]")
    if semantics == "fraction-of-pools":
        return round(mix.real * n_real_pool), round(mix.synthetic * n_syn_pool)
    if mix.real + mix.synthetic == 0:
        raise ConfigError(f"{mix.name}: real and synthetic fractions are both 0")
    total = affordable_total([mix], n_real_pool, n_syn_pool) if total is None else total
    n_real = round(total * mix.real / (mix.real + mix.synthetic))
    n_syn = total - n_real
    if n_real > n_real_pool or n_syn > n_syn_pool:
        raise ConfigError(
            f"{mix.name}: fixed-total {total} needs {n_real} real and {n_syn} synthetic images "
            f"but the pools hold {n_real_pool} and {n_syn_pool}",
            hint=f"set mixes.total to at most {affordable_total([mix], n_real_pool, n_syn_pool)}"
            " or sample more synthetic images",
        )
    return n_real, n_syn


def affordable_total(mixes: Sequence[Mix], n_real_pool: int, n_syn_pool: int) -> int:
    """The largest fixed total that every mix can draw from the two pools."""
    best = n_real_pool + n_syn_pool
    for mix in mixes:
        share = mix.real / (mix.real + mix.synthetic)
        total = min(n_real_pool / share if share else math.inf,
                    n_syn_pool / (1 - share) if share < 1 else math.inf)
        total = int(min(total, n_real_pool + n_syn_pool)) + 1
        while total > 0 and (round(total * share) > n_real_pool
                             or total - round(total * share) > n_syn_pool):
            total -= 1
        best = min(best, total)
    return best


def real_val_count(n_real: int, n_real_pool: int, n_real_val: int, num_classes: int,
                   min_val_per_class: int) -> int:
    """Real validation images of a cell with `n_real` real training images: the same share of
    the validation split as of the real pool, but at least min_val_per_class per class, so
    tiny real subsets still validate on something (0 without real images)."""
    if n_real <= 0:
        return 0
    return max(round(n_real / n_real_pool * n_real_val),
               min(min_val_per_class * num_classes, n_real_val))


def synthetic_trained(n_syn: int, val_fraction: float = SYN_VAL_FRACTION) -> int:
    """Synthetic images a cell without real data trains on (the rest validate it)."""
    return n_syn - round(val_fraction * n_syn)


def build_mix(
    n_real: int,
    n_syn: int,
    real_train: tuple[torch.Tensor, torch.Tensor],
    real_val: tuple[torch.Tensor, torch.Tensor],
    synthetic: tuple[torch.Tensor, torch.Tensor],
    seed: int,
    min_val_per_class: int = 0,
    val_fraction: float = SYN_VAL_FRACTION,
) -> MixedSet:
    """The training and validation sets of one cell: `n_real` real and `n_syn` synthetic images,
    class-stratified prefixes of the pools in the order `seed` shuffles them (so with one seed a
    smaller mix lies inside a larger one)."""
    (rx, ry), (vx, vy), (sx, sy) = real_train, real_val, synthetic
    real_idx = torch.as_tensor(stratified_prefix(ry.numpy(), None, seed, count=n_real))
    syn_idx = torch.as_tensor(stratified_prefix(sy.numpy(), None, seed + 1, count=n_syn))
    if n_real > 0:
        # The same share of the real validation split as of the real training pool, but at
        # least min_val_per_class per class, so tiny real subsets still validate on something.
        count = real_val_count(n_real, len(ry), len(vy), len(np.unique(vy.numpy())),
                               min_val_per_class)
        val_idx = torch.as_tensor(stratified_prefix(vy.numpy(), None, seed + 2, count=count))
        val = (vx[val_idx], vy[val_idx])
        where = f"{len(val_idx)} real images of the validation split"
        syn_train = syn_idx
    else:
        # No real data: hold out val_fraction of this experiment's synthetic images.
        keep, held = stratified_holdout(sy[syn_idx].numpy(), val_fraction, seed + 3)
        val = (sx[syn_idx[held]], sy[syn_idx[held]])
        syn_train = syn_idx[keep]
        where = f"{len(held)} held-out synthetic images (no real data in this experiment)"
    train_x = torch.cat([rx[real_idx], sx[syn_train]])
    train_y = torch.cat([ry[real_idx], sy[syn_train]])
    return MixedSet(train_x, train_y, val[0], val[1], n_real, len(syn_train), where)

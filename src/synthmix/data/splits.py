"""The study's split of the official train set (SPEC section 1): half A trains the DDPM,
half B the classifier, each 90/10 train/validation, class-stratified and seeded."""

from __future__ import annotations

import io
import json
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from synthmix.errors import ConfigError, DataError
from synthmix.files import atomic_save_npz, atomic_write_json

SPLIT_NAMES = ("diffusion_train", "diffusion_val", "classifier_train", "classifier_val")


@dataclass(frozen=True, eq=False)
class StudySplits:
    """Sorted int64 indices into the official train split for each of the four study sets.

    overlap=True only for diffusion_fraction == 1.0 (the "full data" scenario), where the
    classifier's sets are the DDPM's (all real train data); otherwise all four are disjoint.
    """

    diffusion_train: np.ndarray
    diffusion_val: np.ndarray
    classifier_train: np.ndarray
    classifier_val: np.ndarray
    seed: int
    diffusion_fraction: float
    val_fraction: float
    overlap: bool = False

    def sizes(self) -> dict[str, int]:
        return {name: len(getattr(self, name)) for name in SPLIT_NAMES}

    def check_fits(self, num_train: int, where: str = "splits") -> None:
        """DataError unless every index points into a train split of `num_train` images."""
        top = max((int(getattr(self, n).max()) for n in SPLIT_NAMES if len(getattr(self, n))),
                  default=-1)
        if top >= num_train:
            raise DataError(f"index {top} does not fit a train split of {num_train} images",
                            path=where)

    def save(self, path: str | Path) -> None:
        """Write atomically: JSON if the name ends in .json, else .npz."""
        meta = {"seed": self.seed, "diffusion_fraction": self.diffusion_fraction,
                "val_fraction": self.val_fraction, "overlap": self.overlap}
        if str(path).endswith(".json"):
            arrays = {n: getattr(self, n).tolist() for n in SPLIT_NAMES}
            atomic_write_json(path, {**meta, **arrays})
        else:
            atomic_save_npz(path, meta=np.array(json.dumps(meta)),
                            **{n: getattr(self, n) for n in SPLIT_NAMES})

    @classmethod
    def load(cls, path: str | Path) -> StudySplits:
        """Read what save() wrote; DataError naming the file if it is missing or malformed."""
        path = Path(path)
        try:
            if path.suffix == ".json":
                record = json.loads(path.read_text(encoding="utf-8"))
                arrays = {n: record[n] for n in SPLIT_NAMES}
                meta = record
            else:
                with np.load(io.BytesIO(path.read_bytes()), allow_pickle=False) as z:
                    arrays = {n: z[n] for n in SPLIT_NAMES}
                    meta = json.loads(str(z["meta"]))
            return cls(
                **{n: _index_array(arrays[n], path, n) for n in SPLIT_NAMES},
                seed=int(meta["seed"]),
                diffusion_fraction=float(meta["diffusion_fraction"]),
                val_fraction=float(meta["val_fraction"]),
                overlap=bool(meta["overlap"]),
            )
        except FileNotFoundError as e:
            raise DataError("splits file not found", path=path) from e
        except (OSError, ValueError, KeyError, TypeError, zipfile.BadZipFile) as e:
            raise DataError(f"not a valid splits file ({type(e).__name__}: {e})", path=path) from e


def _index_array(values: object, path: Path, name: str) -> np.ndarray:
    array = np.asarray(values)
    if array.ndim != 1 or (array.size and not np.issubdtype(array.dtype, np.integer)):
        raise DataError(f"{name} must be a list of integer indices", path=path)
    return array.astype(np.int64)


def class_quotas(counts: np.ndarray, k: int, tie_order: np.ndarray) -> np.ndarray:
    """Per-class counts summing to exactly k, each class in proportion to `counts`: exact integer
    quotas k * count / n, the leftover to the largest remainders, ties in `tie_order` (a key
    per class, lower first)."""
    n = int(counts.sum())
    base, remainder = np.divmod(k * counts.astype(np.int64), max(n, 1))
    leftover = k - int(base.sum())
    order = np.lexsort((tie_order, -remainder))  # largest remainder first
    base[order[:leftover]] += 1
    return base


def nested_quotas(counts: np.ndarray, k: int, tie_order: np.ndarray) -> np.ndarray:
    """Per-class counts summing to exactly k, each class in proportion to `counts`, that never
    shrink a class when k grows (Sainte-Lague seats: the j-th image of class c has priority
    count_c / (j + 1/2), the k best are taken, ties in `tie_order`). Largest remainder cannot
    promise this (the Alabama paradox), and nested subsets need it."""
    counts = np.asarray(counts, dtype=np.int64)
    if not 0 <= k <= int(counts.sum()):
        raise ValueError(f"cannot take {k} of {int(counts.sum())}")
    cls = np.repeat(np.arange(len(counts)), counts)
    j = np.arange(len(cls)) - np.repeat(np.cumsum(counts) - counts, counts)  # rank in class
    # Float priorities are exact enough: distinct ratios 2c/(2j+1) of counts below 10^7 never
    # round to the same double, equal ones always do.
    priority = 2.0 * counts[cls] / (2 * j + 1)
    order = np.lexsort((j, np.asarray(tie_order)[cls], -priority))
    return np.bincount(cls[order[:k]], minlength=len(counts)).astype(np.int64)


def stratified_take(
    indices: np.ndarray, labels: np.ndarray, k: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Pick exactly k of `indices`, each class in proportion (largest remainder, ties at
    random); returns (taken, rest), both sorted."""
    n = len(indices)
    if n == 0 or k == 0:
        return np.empty(0, dtype=np.int64), np.sort(indices).astype(np.int64)
    classes, inverse = np.unique(labels[indices], return_inverse=True)
    counts = np.bincount(inverse, minlength=len(classes)).astype(np.int64)
    quota = class_quotas(counts, k, rng.random(len(classes)))
    taken, rest = [], []
    for c in range(len(classes)):
        members = rng.permutation(indices[inverse == c])
        taken.append(members[: quota[c]])
        rest.append(members[quota[c]:])
    return np.sort(np.concatenate(taken)), np.sort(np.concatenate(rest))


def stratified_prefix(
    labels: np.ndarray, fraction: float | None, seed: int, count: int | None = None
) -> np.ndarray:
    """Indices of a class-stratified subset: `fraction` of each class (or `count` in total).

    Each class is shuffled once with `seed` and a prefix is taken, so with one seed a smaller
    subset lies inside a larger one (nested mixes and learning curves); per-class counts
    follow `nested_quotas` (ties to the lower class index), so no class shrinks as the
    subset grows.
    """
    labels = np.asarray(labels)
    n = len(labels)
    want = round(fraction * n) if count is None else count  # type: ignore[operator]
    if want > n or want < 0:
        raise ConfigError(f"asked for {want} images from a pool of {n}")
    classes = np.unique(labels)
    counts = np.array([np.sum(labels == c) for c in classes], dtype=np.int64)
    quota = nested_quotas(counts, want, np.arange(len(classes)))
    rng = np.random.default_rng(seed)
    chosen = []
    for c, k in zip(classes, quota):
        idx = np.flatnonzero(labels == c)
        chosen.append(idx[rng.permutation(len(idx))][:k])
    return np.sort(np.concatenate(chosen)) if chosen else np.zeros(0, dtype=np.int64)


def stratified_holdout(
    labels: np.ndarray, fraction: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """(train, held-out) indices: a class-stratified `fraction` held out (e.g. the synthetic
    validation images of a cell without real data), both sorted."""
    held = stratified_prefix(labels, fraction, seed)
    mask = np.zeros(len(labels), dtype=bool)
    mask[held] = True
    return np.flatnonzero(~mask), held


def make_study_splits(
    labels: np.ndarray, seed: int = 0, diffusion_fraction: float = 0.5, val_fraction: float = 0.1
) -> StudySplits:
    """Split the official train labels into the study's four index sets (SPEC section 1).

    MNIST (60,000) gives 27,000/3,000 + 27,000/3,000; CIFAR-10 (50,000) 22,500/2,500 twice.
    """
    labels = np.asarray(labels)
    if labels.ndim != 1 or not np.issubdtype(labels.dtype, np.integer) or len(labels) < 2:
        raise ValueError(f"labels must be a 1-D integer array, got {labels.shape} {labels.dtype}")
    if not 0.0 < diffusion_fraction <= 1.0:
        raise ConfigError(f"diffusion_fraction must be in (0, 1], got {diffusion_fraction}")
    if not 0.0 < val_fraction < 1.0:
        raise ConfigError(f"val_fraction must be in (0, 1), got {val_fraction}")
    rng = np.random.default_rng(seed)
    everything = np.arange(len(labels), dtype=np.int64)
    overlap = diffusion_fraction == 1.0
    if overlap:
        half_a = half_b = everything
    else:
        n_diffusion = round(diffusion_fraction * len(labels))
        half_a, half_b = stratified_take(everything, labels, n_diffusion, rng)
    a_val, a_train = stratified_take(half_a, labels, round(val_fraction * len(half_a)), rng)
    if overlap:  # the practical scenario: the classifier sees all real data, same validation
        b_train, b_val = a_train, a_val
    else:
        b_val, b_train = stratified_take(half_b, labels, round(val_fraction * len(half_b)), rng)
    return StudySplits(a_train, a_val, b_train, b_val, seed, float(diffusion_fraction),
                       float(val_fraction), overlap)

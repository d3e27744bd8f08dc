"""Pictures a person wants to look at: loss curves and sample grids (matplotlib, Agg backend)."""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from synthmix.files import atomic_write_bytes


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig: Any, path: Path) -> None:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=120, bbox_inches="tight")
    _pyplot().close(fig)
    atomic_write_bytes(path, buf.getvalue())


def plot_loss_curves(history: Sequence[dict[str, Any]], path: Path, title: str = "") -> None:
    """Train and validation loss per epoch (the study's Figure 4)."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5, 3.2))
    epochs = [r.get("epoch_progress", r["epoch"]) for r in history]  # partial last epochs too
    ax.plot(epochs, [r["train_loss"] for r in history], marker=".", label="train")
    ax.plot(epochs, [r["val_loss"] for r in history], marker=".", label="validation")
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss")
    if title:
        ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    _save(fig, Path(path))


def tile_images(images: np.ndarray, nrow: int, pad: int = 1) -> np.ndarray:
    """Tile (N, H, W, C) uint8 images into one (rows*H, nrow*W, C) image, row-major."""
    n, h, w, c = images.shape
    rows = (n + nrow - 1) // nrow
    grid = np.full((rows * (h + pad) + pad, nrow * (w + pad) + pad, c), 255, dtype=np.uint8)
    for i, img in enumerate(images):
        r, k = divmod(i, nrow)
        y, x = pad + r * (h + pad), pad + k * (w + pad)
        grid[y : y + h, x : x + w] = img
    return grid


def save_class_grid(
    images: np.ndarray, class_names: Sequence[str], per_class: int, path: Path, title: str = ""
) -> None:
    """Save a grid with one row per class (images ordered class by class, `per_class` each)."""
    plt = _pyplot()
    grid = tile_images(images, nrow=per_class)
    h = images.shape[1] + 1
    cell = max(0.25, 0.5 * images.shape[1] / 16)
    fig, ax = plt.subplots(
        figsize=(0.6 + per_class * cell * 1.05, 0.4 + len(class_names) * cell * 1.05)
    )
    ax.imshow(
        grid.squeeze(-1) if grid.shape[-1] == 1 else grid,
        cmap="gray",
        vmin=0,
        vmax=255,
        interpolation="nearest",
    )
    ax.set_yticks([1 + h * i + h / 2 - 1 for i in range(len(class_names))])
    ax.set_yticklabels(list(class_names), fontsize=7)
    ax.set_xticks([])
    if title:
        ax.set_title(title, fontsize=8)
    _save(fig, Path(path))


def plot_confusion_matrix(
    cm: np.ndarray, class_names: Sequence[str], path: Path, title: str = ""
) -> None:
    """Row-normalised confusion matrix (rows: true class, columns: predicted)."""
    plt = _pyplot()
    k = len(class_names)
    norm = cm / np.maximum(cm.sum(axis=1, keepdims=True), 1)
    fig, ax = plt.subplots(figsize=(1.2 + 0.42 * k, 1.0 + 0.42 * k))
    ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(k))
    ax.set_xticklabels(class_names, rotation=90, fontsize=7)
    ax.set_yticks(range(k))
    ax.set_yticklabels(class_names, fontsize=7)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    for i in range(k):
        for j in range(k):
            if cm[i, j]:
                ax.text(
                    j,
                    i,
                    str(int(cm[i, j])),
                    ha="center",
                    va="center",
                    fontsize=5,
                    color="white" if norm[i, j] > 0.5 else "black",
                )
    if title:
        ax.set_title(title, fontsize=8)
    _save(fig, Path(path))

"""Salt-and-pepper noise in images: pixels that stand out from all their neighbours.

A pixel is isolated-bright when it is brighter than every one of its 8 neighbours by more than
`threshold` (on the [0, 1] scale), isolated-dark when it is darker than every neighbour by more
than that. A one-pixel-wide stroke is not counted (its neighbours along the stroke are as
bright), so on real MNIST the count is near zero; speckled synthetic backgrounds score high.
Colour images count a pixel when any channel qualifies.
"""

from __future__ import annotations

from typing import Any

import numpy as np

DEFAULT_THRESHOLD = 0.25


def isolated_pixels(images: np.ndarray, threshold: float = DEFAULT_THRESHOLD) -> np.ndarray:
    """Isolated bright or dark pixels per image of uint8 images (N, H, W, C): (N,) int64."""
    if images.ndim != 4 or images.dtype != np.uint8:
        raise ValueError(f"expected (N, H, W, C) uint8 images, got {images.shape} {images.dtype}")
    x = images.astype(np.float32) / 255.0
    # Edge padding repeats border pixels, so a border pixel is compared with real neighbours
    # and its own copies (which never make it stand out).
    p = np.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)), mode="edge")
    h, w = x.shape[1:3]
    shifts = [p[:, 1 + dy : 1 + dy + h, 1 + dx : 1 + dx + w]
              for dy in (-1, 0, 1) for dx in (-1, 0, 1) if (dy, dx) != (0, 0)]
    neighbours = np.stack(shifts)  # (8, N, H, W, C)
    bright = x - neighbours.max(axis=0) > threshold
    dark = neighbours.min(axis=0) - x > threshold
    return (bright | dark).any(axis=-1).sum(axis=(1, 2)).astype(np.int64)


def speckle_summary(images: np.ndarray, threshold: float = DEFAULT_THRESHOLD) -> dict[str, Any]:
    """Mean isolated pixels per image and the share of images with at least one."""
    counts = isolated_pixels(images, threshold)
    return {"isolated_pixels_per_image": float(counts.mean()) if len(counts) else 0.0,
            "images_with_isolated_pixels": float((counts > 0).mean()) if len(counts) else 0.0,
            "threshold": threshold, "n": int(len(counts))}

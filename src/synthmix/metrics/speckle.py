"""Salt-and-pepper and noisy backgrounds in images: pixels that stand apart from the strokes.

On dark-background data (MNIST, Fashion-MNIST) a pixel is a stray bright pixel when it is not
black (> `bright` on the [0, 1] scale) although none of its 8 neighbours belongs to a stroke
(> `stroke`): salt on the background, or the grey speckle of a noisy background. A pixel is a
dark hole when it is dark (< `dark`) inside a stroke (all 8 neighbours > `stroke`). Pixels next
to a stroke (anti-aliased edges) never count, so real MNIST scores near zero; colour images are
measured on their luminance, where the count is only a loose guide (natural backgrounds are
not black).
"""

from __future__ import annotations

from typing import Any

import numpy as np

BRIGHT, STROKE, DARK = 0.1, 0.5, 0.25


def isolated_pixels(images: np.ndarray, bright: float = BRIGHT, stroke: float = STROKE,
                    dark: float = DARK) -> np.ndarray:
    """Stray bright plus dark-hole pixels per image of uint8 images (N, H, W, C): (N,) int64."""
    if images.ndim != 4 or images.dtype != np.uint8:
        raise ValueError(f"expected (N, H, W, C) uint8 images, got {images.shape} {images.dtype}")
    x = images.astype(np.float32).mean(axis=-1) / 255.0  # (N, H, W) luminance in [0, 1]
    h, w = x.shape[1:]
    # Neighbours beyond the border count as background for the maximum, as stroke for the
    # minimum, so border pixels are judged by their real neighbours only.
    lo = np.pad(x, ((0, 0), (1, 1), (1, 1)), constant_values=0.0)
    hi = np.pad(x, ((0, 0), (1, 1), (1, 1)), constant_values=1.0)

    def shifts(p: np.ndarray) -> np.ndarray:
        return np.stack([p[:, 1 + dy : 1 + dy + h, 1 + dx : 1 + dx + w]
                         for dy in (-1, 0, 1) for dx in (-1, 0, 1) if (dy, dx) != (0, 0)])

    stray = (x > bright) & (shifts(lo).max(axis=0) <= stroke)
    holes = (x < dark) & (shifts(hi).min(axis=0) > stroke)
    return (stray | holes).sum(axis=(1, 2)).astype(np.int64)


def speckle_summary(images: np.ndarray) -> dict[str, Any]:
    """Mean isolated pixels per image and the share of images with more than 5."""
    counts = isolated_pixels(images)
    n = len(counts)
    return {"isolated_pixels_per_image": float(counts.mean()) if n else 0.0,
            "images_with_over_5": float((counts > 5).mean()) if n else 0.0,
            "thresholds": {"bright": BRIGHT, "stroke": STROKE, "dark": DARK}, "n": int(n)}

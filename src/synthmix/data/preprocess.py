"""uint8 images <-> model tensors: (N, H, W, C) in 0..255 <-> (N, C, S, S) float32 in [-1, 1]."""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

import numpy as np

from synthmix.data.images import convert_channels, resize_images
from synthmix.errors import ConfigError

if TYPE_CHECKING:  # torch is imported on use, so `synthmix data info` starts fast
    import torch


def pad_or_crop(images: np.ndarray, size: int) -> np.ndarray:
    """Centre zero-pad (black) or centre-crop (N, H, W, C) to (N, size, size, C); pixels kept."""
    n, h, w, c = images.shape
    (sy, ty), (sx, tx) = _window(h, size), _window(w, size)
    out = np.zeros((n, size, size, c), dtype=images.dtype)
    out[:, ty, tx] = images[:, sy, sx]
    return out


def _window(length: int, size: int) -> tuple[slice, slice]:
    """(source, target) slices along one axis: pad when the image is smaller, crop when larger."""
    if length <= size:
        start = (size - length) // 2
        return slice(0, length), slice(start, start + length)
    start = (length - size) // 2
    return slice(start, start + size), slice(0, size)


def to_model_tensor(
    images: np.ndarray,
    image_size: int | None,
    resize: Literal["pad", "resize"] = "pad",
    channels: int | None = None,
) -> torch.Tensor:
    """(N, H, W, C) uint8 -> (N, C, S, S) float32 in [-1, 1], x / 127.5 - 1.

    `pad` centre-pads with black (MNIST 28 -> 32 adds 2 px a side) or centre-crops;
    `resize` resizes bicubically with PIL (digits 8 -> 16). image_size None keeps H x W.
    """
    if images.ndim != 4 or images.dtype != np.uint8:
        raise ValueError(f"expected (N, H, W, C) uint8 images, got {images.shape} {images.dtype}")
    if resize not in ("pad", "resize"):
        raise ConfigError(f"resize must be 'pad' or 'resize', got {resize!r}")
    if channels not in (None, 1, 3):
        raise ConfigError(f"channels must be 1 or 3, got {channels}")
    import torch

    images = convert_channels(images, channels)
    if image_size is not None:
        if image_size < 1:
            raise ConfigError(f"image_size must be a positive number of pixels, got {image_size}")
        if resize == "pad":
            images = pad_or_crop(images, image_size)
        else:
            images = resize_images(images, image_size)
    x = torch.from_numpy(np.ascontiguousarray(images.transpose(0, 3, 1, 2)))  # (N, C, S, S)
    return x.to(torch.float32) / 127.5 - 1.0


def to_uint8_images(x: torch.Tensor) -> np.ndarray:
    """(N, C, H, W) in [-1, 1] -> (N, H, W, C) uint8, clamped and rounded (inverse of the above)."""
    import torch

    if x.ndim != 4:
        raise ValueError(f"expected (N, C, H, W), got shape {tuple(x.shape)}")
    pixels = ((x.detach().to(torch.float32).cpu() + 1.0) * 127.5).clamp(0, 255).round()
    return pixels.to(torch.uint8).permute(0, 2, 3, 1).numpy().copy()  # (N, H, W, C)

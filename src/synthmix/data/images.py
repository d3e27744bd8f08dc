"""Pixel-level helpers shared by the loaders: decoding files, channel conversion, resizing."""

from __future__ import annotations

import io
import warnings

import numpy as np
from PIL import Image

from synthmix.errors import DataError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp")
_GREY_MODES = ("1", "L", "LA", "La")
_EIGHT_BIT_MODES = (*_GREY_MODES, "P", "PA", "RGB", "RGBA", "RGBa", "RGBX", "CMYK", "YCbCr")


def is_image_name(name: str) -> bool:
    return name.lower().endswith(IMAGE_SUFFIXES) and not name.startswith(".")


def decode_image(
    data: bytes, where: str, channels: int | None, image_size: int | None
) -> np.ndarray:
    """Decode one image file to (H, W, C) uint8; C is `channels`, else 1 for grey, 3 for colour.

    Alpha is dropped (not composited); palette images count as colour.
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as im:
                im.load()
                if im.mode not in _EIGHT_BIT_MODES:
                    raise DataError(
                        f"{im.mode} images (16-bit or float) are not supported; "
                        "convert them to 8-bit",
                        path=where,
                    )
                c = channels or (1 if im.mode in _GREY_MODES else 3)
                converted = im.convert("L" if c == 1 else "RGB")
                if image_size is not None and converted.size != (image_size, image_size):
                    converted = converted.resize(
                        (image_size, image_size), Image.Resampling.BICUBIC
                    )
                array = np.asarray(converted, dtype=np.uint8)
    except DataError:
        raise
    except Exception as e:  # PIL raises many types for broken files
        raise DataError(f"unreadable image ({e or type(e).__name__})", path=where) from e
    return array[..., None] if array.ndim == 2 else array  # (H, W, C)


def convert_channels(images: np.ndarray, channels: int | None) -> np.ndarray:
    """(N, H, W, C) uint8 to `channels` channels: grey is repeated, colour uses ITU-R 601 luma."""
    c = images.shape[-1]
    if channels is None or channels == c:
        return images
    if channels == 3 and c == 1:
        return np.repeat(images, 3, axis=-1)
    if channels == 1 and c == 3:
        # Same weights and rounding as PIL's convert("L"), so folders and arrays agree.
        luma = images.astype(np.uint32) @ np.array([19595, 38470, 7471], dtype=np.uint32)
        return ((luma + 0x8000) >> 16).astype(np.uint8)[..., None]
    raise ValueError(f"cannot convert {c}-channel images to {channels} channels")


def resize_images(images: np.ndarray, size: int) -> np.ndarray:
    """Bicubic resize of (N, H, W, C) uint8 to (N, size, size, C), image by image with PIL."""
    n, h, w, c = images.shape
    if (h, w) == (size, size):
        return images
    out = np.empty((n, size, size, c), dtype=np.uint8)
    for i in range(n):
        im = Image.fromarray(images[i, ..., 0] if c == 1 else images[i])
        resized = np.asarray(im.resize((size, size), Image.Resampling.BICUBIC))
        out[i] = resized[..., None] if c == 1 else resized
    return out

"""Pixel-level helpers shared by the loaders: decoding files, channel conversion, resizing."""

from __future__ import annotations

import contextlib
import io
from collections.abc import Iterator
from dataclasses import replace

import numpy as np
from PIL import Image

from synthmix.data.raw import RawDataset, RawSplit
from synthmix.errors import DataError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp")
MAX_PIXELS = 1 << 26  # refuse decompression bombs before decoding them
GREY_MODES = ("1", "L", "LA", "La")
EIGHT_BIT_MODES = (*GREY_MODES, "P", "PA", "RGB", "RGBA", "RGBa", "RGBX", "CMYK", "YCbCr")


def is_image_name(name: str) -> bool:
    return name.lower().endswith(IMAGE_SUFFIXES) and not name.startswith(".")


@contextlib.contextmanager
def open_image(data: bytes, where: str) -> Iterator[Image.Image]:
    """One image file, size-checked and fully decoded (so a broken file is found); any failure
    inside the block is one DataError naming `where`."""
    try:
        with Image.open(io.BytesIO(data)) as im:
            if im.width * im.height > MAX_PIXELS:
                raise DataError(f"image of {im.width}x{im.height} pixels is implausibly large",
                                path=where)
            im.load()
            yield im
    except DataError:
        raise
    except Exception as e:  # PIL raises many types for broken files
        raise DataError(f"unreadable image ({e or type(e).__name__})", path=where) from e


def decode_image(data: bytes, where: str) -> np.ndarray:
    """Decode one image file to (H, W, C) uint8, C = 1 for grey and 3 for colour.

    Alpha is dropped (not composited); palette images count as colour.
    """
    with open_image(data, where) as im:
        if im.mode not in EIGHT_BIT_MODES:
            raise DataError(
                f"{im.mode} images (16-bit or float) are not supported; convert them to 8-bit",
                path=where,
            )
        target = "L" if im.mode in GREY_MODES else "RGB"
        array = np.asarray(im if im.mode == target else im.convert(target), dtype=np.uint8)
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


def resize_image(image: np.ndarray, size: int) -> np.ndarray:
    """Bicubic resize of one (H, W, C) uint8 image to (size, size, C) with PIL."""
    if image.shape[:2] == (size, size):
        return image
    grey = image.shape[2] == 1
    im = Image.fromarray(image[..., 0] if grey else image)
    resized = np.asarray(im.resize((size, size), Image.Resampling.BICUBIC))
    return resized[..., None] if grey else resized


def resize_images(images: np.ndarray, size: int) -> np.ndarray:
    """Bicubic resize of (N, H, W, C) uint8 to (N, size, size, C), image by image."""
    if images.shape[1:3] == (size, size):
        return images
    if len(images) == 0:
        return np.empty((0, size, size, images.shape[3]), dtype=np.uint8)
    return np.stack([resize_image(image, size) for image in images])


def conform_images(images: np.ndarray, channels: int | None, image_size: int | None) -> np.ndarray:
    """Convert channels first, then resize to image_size x image_size (if given)."""
    images = convert_channels(images, channels)
    return images if image_size is None else resize_images(images, image_size)


def conform_dataset(dataset: RawDataset, channels: int | None,
                    image_size: int | None) -> RawDataset:
    """Both splits converted to `channels` and resized to image_size x image_size if given."""
    train = conform_images(dataset.train.images, channels, image_size)
    test = conform_images(dataset.test.images, channels, image_size)
    if train is dataset.train.images and test is dataset.test.images:
        return dataset
    return replace(dataset, train=RawSplit(train, dataset.train.labels),
                   test=RawSplit(test, dataset.test.labels))

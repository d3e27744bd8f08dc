"""uint8 images <-> model tensors in [-1, 1]: scaling, padding, cropping, resizing, channels."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from synthmix.data import to_model_tensor, to_uint8_images
from synthmix.data.images import convert_channels


def images(n: int, h: int, w: int, c: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=(n, h, w, c), dtype=np.uint8)


def test_scaling_endpoints_and_exact_roundtrip() -> None:
    a = images(3, 5, 5, 3)
    a[0, 0, 0] = (0, 127, 255)
    x = to_model_tensor(a, None)
    assert x.shape == (3, 3, 5, 5) and x.dtype == torch.float32
    assert x[0, :, 0, 0].tolist() == pytest.approx([-1.0, 127 / 127.5 - 1, 1.0])
    np.testing.assert_array_equal(to_uint8_images(x), a)


def test_to_uint8_clamps_and_rounds() -> None:
    x = torch.tensor([-3.0, -1.0, 0.0, 1.0, 7.0, 2 / 255 - 1 + 0.4 / 127.5]).view(1, 1, 1, 6)
    assert to_uint8_images(x)[0, 0, :, 0].tolist() == [0, 0, 128, 255, 255, 1]


def test_pad_28_to_32_keeps_pixels_and_adds_black_border() -> None:
    a = images(2, 28, 28, 1)
    x = to_model_tensor(a, 32, "pad")
    assert x.shape == (2, 1, 32, 32)
    back = to_uint8_images(x)
    np.testing.assert_array_equal(back[:, 2:30, 2:30], a)
    border = np.ones((32, 32), bool)
    border[2:30, 2:30] = False
    assert (x[:, 0][:, border] == -1.0).all()


def test_crop_when_larger_is_centred() -> None:
    a = images(1, 36, 34, 3)
    back = to_uint8_images(to_model_tensor(a, 32, "pad"))
    np.testing.assert_array_equal(back[0], a[0, 2:34, 1:33])


def test_resize_matches_pil_bicubic() -> None:
    a = images(2, 8, 8, 1)
    x = to_model_tensor(a, 16, "resize")
    assert x.shape == (2, 1, 16, 16)
    expected = np.asarray(Image.fromarray(a[1, ..., 0]).resize((16, 16), Image.Resampling.BICUBIC))
    np.testing.assert_array_equal(to_uint8_images(x)[1, ..., 0], expected)


def test_channel_conversion_matches_pil() -> None:
    a = images(4, 3, 3, 3)
    grey = convert_channels(a, 1)
    for i in range(4):
        pil_grey = np.asarray(Image.fromarray(a[i]).convert("L"))
        np.testing.assert_array_equal(grey[i, ..., 0], pil_grey)
    x = to_model_tensor(images(1, 4, 4, 1), None, channels=3)
    assert x.shape == (1, 3, 4, 4) and torch.equal(x[:, 0], x[:, 2])

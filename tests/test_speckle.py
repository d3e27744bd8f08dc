"""The isolated-pixel count: salt, grey speckle and holes count; strokes and their edges do not."""

import numpy as np

from synthmix.metrics.speckle import isolated_pixels, speckle_summary


def _canvas(n: int = 1) -> np.ndarray:
    img = np.zeros((n, 12, 12, 1), dtype=np.uint8)
    img[:, 2:10, 5:7] = 255  # a two-pixel-wide vertical stroke
    img[:, 2:10, 4] = 90  # its anti-aliased edge (next to the stroke: never counted)
    return img


def test_clean_strokes_count_nothing() -> None:
    assert isolated_pixels(_canvas()).tolist() == [0]


def test_salt_speckle_and_holes_count() -> None:
    img = _canvas(3)
    img[0, 0, 0] = 255  # salt in a corner, far from the stroke
    img[1, :, 10:] = 60  # a grey, noisy band of background: 24 pixels away from the stroke
    wide = np.zeros((1, 12, 12, 1), dtype=np.uint8)
    wide[0, 2:10, 2:10] = 255
    wide[0, 5, 5] = 0  # a dark hole inside a wide stroke
    counts = isolated_pixels(np.concatenate([img, wide]))
    assert counts.tolist() == [1, 24, 0, 1]
    summary = speckle_summary(img)
    assert summary["isolated_pixels_per_image"] == 25 / 3 and summary["images_with_over_5"] == 1 / 3


def test_colour_images_use_luminance() -> None:
    rgb = np.repeat(_canvas(), 3, axis=-1)
    rgb[0, 0, 0] = (255, 0, 0)  # luminance 85/255 > 0.1: a stray pixel
    assert isolated_pixels(rgb).tolist() == [1]

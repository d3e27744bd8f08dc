"""Export: PNG image-folder tree (pixels exact, L or RGB) and one .npz, also via the CLI."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from synthmix.cli import main
from synthmix.errors import DataError
from synthmix.synthetic.export import export_synthetic_set
from synthmix.synthetic.format import write_synthetic_set

CLASSES = ("zero", "one", "two")


def make_set(root: Path, channels: int, n: int = 7) -> tuple[Path, np.ndarray]:
    rng = np.random.default_rng(channels)
    images = rng.integers(0, 256, size=(n, 6, 5, channels), dtype=np.uint8)
    images[0] = 0  # the extremes survive the round trip too
    images[1] = 255
    labels = np.array([2, 0, 1, 1, 0, 2, 2], dtype=np.int64)[:n]
    seeds = np.arange(n, dtype=np.int64) + 10**12
    path = write_synthetic_set(root / f"set{channels}", images, labels, seeds, CLASSES, {},
                               shard_size=3)
    return path, images


@pytest.mark.parametrize(("channels", "mode"), [(1, "L"), (3, "RGB")])
def test_png_tree_reads_back_exactly(tmp_path: Path, channels: int, mode: str) -> None:
    path, images = make_set(tmp_path, channels)
    out = export_synthetic_set(path, tmp_path / "png", "png", progress=False)
    assert out == tmp_path / "png" and not (tmp_path / "png.partial").exists()
    files = sorted((out / "train").glob("*/*.png"))
    assert len(files) == 7
    assert sorted(p.name for p in (out / "train").iterdir()) == sorted(CLASSES)
    labels = [2, 0, 1, 1, 0, 2, 2]
    for i in range(7):
        file = out / "train" / CLASSES[labels[i]] / f"{i:06d}-seed{10**12 + i}.png"
        with Image.open(file) as im:
            assert im.mode == mode
            pixels = np.asarray(im)
        assert np.array_equal(pixels.reshape(images[i].shape), images[i])
    assert (out / "export.json").is_file()
    with pytest.raises(DataError, match="already exists"):
        export_synthetic_set(path, out, "png", progress=False)


def test_npz_export_and_cli(tmp_path: Path) -> None:
    path, images = make_set(tmp_path, 3)
    assert main(["export", str(path), "--format", "npz", "--out", str(tmp_path / "x")]) == 0
    with np.load(tmp_path / "x" / "set3.npz", allow_pickle=False) as npz:
        assert np.array_equal(npz["images"], images)
        assert npz["labels"].tolist() == [2, 0, 1, 1, 0, 2, 2]
        assert npz["seeds"].tolist() == [10**12 + i for i in range(7)]
        assert npz["class_names"].tolist() == list(CLASSES)
    assert main(["export", str(path), "--out", str(tmp_path / "tree"), "--no-progress"]) == 0
    assert len(list((tmp_path / "tree" / "train").glob("*/*.png"))) == 7
    # A broken set is a one-line error and exit code 2, not a traceback.
    (path / "shard-00001.npz").unlink()
    assert main(["export", str(path), "--format", "npz", "--out", str(tmp_path / "y")]) == 2
    assert not (tmp_path / "y").exists()

"""Export a synthetic set as an image-folder PNG tree or as one .npz file."""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path
from typing import Literal

import numpy as np

from synthmix.errors import ConfigError, DataError
from synthmix.files import atomic_save_npz, atomic_write_json
from synthmix.synthetic.format import SyntheticSet, now_iso, read_synthetic_set

logger = logging.getLogger(__name__)

PNG_MODES = {1: "L", 3: "RGB", 4: "RGBA"}  # channels -> PIL mode


def export_synthetic_set(
    set_path: str | Path, out: str | Path, fmt: Literal["png", "npz"], progress: bool = True
) -> Path:
    """Write the set as `out`/train/<class>/<index>-seed<seed>.png or `out`/<name>.npz."""
    if fmt not in ("png", "npz"):
        raise ConfigError(f"unknown export format {fmt!r}; use png or npz")
    synthetic = read_synthetic_set(set_path)
    out = Path(out)
    path = _export_png(synthetic, out, progress) if fmt == "png" else _export_npz(synthetic, out)
    logger.info("exported %d images from %s to %s", len(synthetic), synthetic.path, path)
    return path


def _export_png(synthetic: SyntheticSet, out: Path, progress: bool) -> Path:
    """A class-per-folder PNG tree, written into `out`.partial and renamed when done."""
    from PIL import Image
    from tqdm.auto import tqdm

    if out.exists():
        raise DataError("already exists; remove it or choose another --out", path=out)
    channels = synthetic.images.shape[-1]
    if channels not in PNG_MODES:
        raise DataError(f"{channels}-channel images cannot be PNG", path=synthetic.path)
    partial = out.with_name(out.name + ".partial")
    if partial.exists():
        logger.info("removing %s left by an interrupted export", partial)
        shutil.rmtree(partial)
    for name in synthetic.class_names:
        (partial / "train" / name).mkdir(parents=True)
    rows = tqdm(range(len(synthetic)), unit="img", desc="export png", disable=not progress,
                mininterval=1.0)
    for i in rows:
        label, seed = int(synthetic.labels[i]), int(synthetic.seeds[i])
        pixels = synthetic.images[i]  # (H, W, C)
        # PIL picks mode L for (H, W) and RGB/RGBA for (H, W, 3/4) uint8 arrays.
        image = Image.fromarray(pixels[:, :, 0] if channels == 1 else pixels)
        image.save(partial / "train" / synthetic.class_names[label] / f"{i:06d}-seed{seed}.png")
    atomic_write_json(partial / "export.json", _export_record(synthetic, "png"))
    os.replace(partial, out)
    return out


def _export_npz(synthetic: SyntheticSet, out: Path) -> Path:
    """One uncompressed `out`/<set name>.npz with images, labels, seeds and class_names."""
    path = out / f"{synthetic.path.resolve().name}.npz"
    if path.exists():
        raise DataError("already exists; remove it or choose another --out", path=path)
    atomic_save_npz(
        path,
        images=synthetic.images,
        labels=synthetic.labels,
        seeds=synthetic.seeds,
        class_names=np.array(synthetic.class_names, dtype=np.str_),  # unicode, no pickle
    )
    return path


def _export_record(synthetic: SyntheticSet, fmt: str) -> dict[str, object]:
    """Where and when the tree was exported from, with the source manifest, for provenance."""
    return {
        "format": fmt,
        "source": str(synthetic.path.resolve()),
        "created": now_iso(),
        "source_manifest": synthetic.manifest,
    }

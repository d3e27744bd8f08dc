"""Optional TensorBoard logging of a training run, beside the metrics.jsonl that is always written.

`train.log: tensorboard` mirrors every validation record (train and validation loss, learning
rate, images/s) as scalars and the sample grids a task saved as images, into RUN_DIR/tensorboard
(`tensorboard --logdir RUN_DIR`). It needs the optional `tensorboard` package
(`pip install 'synthmix[tensorboard]'`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from synthmix.errors import ConfigError

SCALARS = ("train_loss", "val_loss", "lr", "images_per_s")


class MetricsLog:
    """Writes validation records to TensorBoard, or nothing when `kind` is "none"."""

    def __init__(self, run_dir: Path, kind: str, first_step: int = 0) -> None:
        self.writer: Any = None
        if kind == "none":
            return
        if kind != "tensorboard":
            raise ConfigError(f"train.log: {kind!r} is not one of 'none', 'tensorboard'")
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            raise ConfigError(
                "train.log: tensorboard needs the tensorboard package, which is not installed",
                hint="pip install 'synthmix[tensorboard]', or set train.log: none",
            ) from None
        # purge_step drops events a killed run wrote after its last checkpoint.
        self.writer = SummaryWriter(log_dir=str(Path(run_dir) / "tensorboard"),
                                    purge_step=first_step or None)

    @classmethod
    def disabled(cls) -> MetricsLog:
        return cls(Path("."), "none")

    def epoch(self, record: dict[str, Any], run_dir: Path) -> None:
        """Log one validation record (and the sample grid it names, if any)."""
        if self.writer is None or not record:
            return
        step = int(record["step"])
        for key in SCALARS:
            if isinstance(record.get(key), int | float):
                self.writer.add_scalar(key, record[key], step)
        grid = record.get("sample_grid")
        if grid and (Path(run_dir) / grid).is_file():
            from PIL import Image

            with Image.open(Path(run_dir) / grid) as im:
                pixels = np.asarray(im.convert("RGB"))  # (H, W, 3) uint8
            self.writer.add_image("samples", pixels, step, dataformats="HWC")
        self.writer.flush()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None

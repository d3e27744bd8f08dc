"""`train.log: tensorboard` writes the validation records as TensorBoard scalars and the sample
grids as images, which TensorBoard's own reader gives back; without the package, a clear error."""

from __future__ import annotations

import io
import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from synthmix.errors import SynthmixError
from synthmix.training import TrainConfig, fit
from synthmix.training.metrics_log import SCALARS, MetricsLog


class _Task:
    def train_loss(self, model, x, y, rng):
        return F.cross_entropy(model(x), y)

    def val_loss(self, model):
        return float(model.weight.detach().abs().sum())  # changes every epoch, unlike a constant

    def on_epoch_end(self, model, epoch, run_dir):
        return {}


def _fit(run_dir: Path, log: str) -> None:
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(64, 5, generator=g), torch.randint(0, 3, (64,), generator=g)
    cfg = TrainConfig(max_epochs=3, batch_size=16, ema_decay=None, channels_last=False, log=log)
    torch.manual_seed(0)
    fit(nn.Linear(5, 3), _Task(), x, y, cfg, run_dir, torch.device("cpu"), progress=False)


def _events(log_dir: Path, optional_extra):
    accumulator = optional_extra("tensorboard.backend.event_processing.event_accumulator",
                                 "tensorboard")
    events = accumulator.EventAccumulator(str(log_dir), size_guidance={"images": 0})
    events.Reload()
    return events


def test_tensorboard_scalars_read_back_equal_metrics_jsonl(tmp_path: Path, optional_extra) -> None:
    optional_extra("tensorboard", "tensorboard")
    _fit(tmp_path, "tensorboard")
    records = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    events = _events(tmp_path / "tensorboard", optional_extra)
    logged = [k for k in SCALARS if any(isinstance(r.get(k), int | float) for r in records)]
    assert {"train_loss", "val_loss", "lr"} <= set(logged)
    assert sorted(events.Tags()["scalars"]) == sorted(logged)
    for key in logged:
        want = [(r["step"], r[key]) for r in records if isinstance(r.get(key), int | float)]
        got = [(e.step, e.value) for e in events.Scalars(key)]
        assert [s for s, _ in got] == [s for s, _ in want] and len(want) == 3, key
        assert [v for _, v in got] == pytest.approx([v for _, v in want], rel=1e-6), key


def test_tensorboard_sample_grid_reads_back(tmp_path: Path, optional_extra) -> None:
    optional_extra("tensorboard", "tensorboard")
    pixels = np.random.default_rng(0).integers(0, 256, size=(6, 10, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(tmp_path / "grid.png")
    log = MetricsLog(tmp_path, "tensorboard")
    log.epoch({"step": 7, "train_loss": 0.5, "sample_grid": "grid.png"}, tmp_path)
    log.close()
    events = _events(tmp_path / "tensorboard", optional_extra)
    (image,) = events.Images("samples")
    assert (image.step, image.width, image.height) == (7, 10, 6)
    with Image.open(io.BytesIO(image.encoded_image_string)) as im:
        assert np.array_equal(np.asarray(im.convert("RGB")), pixels)
    assert [(e.step, e.value) for e in events.Scalars("train_loss")] == [(7, 0.5)]


def test_tensorboard_missing_is_one_clear_error(tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)  # import raises
    with pytest.raises(SynthmixError, match="pip install 'synthmix\\[tensorboard\\]'"):
        _fit(tmp_path, "tensorboard")
    _fit(tmp_path / "none", "none")
    assert not (tmp_path / "none" / "tensorboard").exists()

"""`amp: auto` on the CPU: bf16 only where the CPU has native bf16 and a measurement of the
network shows it faster (cached per host and network); the hardware record names the CPU."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from synthmix import device as device_mod
from synthmix.runinfo import hardware
from synthmix.runs.classifier import build_classifier
from synthmix.training import TrainConfig, fit, precision

CPU = torch.device("cpu")


class _Task:
    def train_loss(self, model, x, y, rng):  # type: ignore[no-untyped-def]
        return F.cross_entropy(model(x), y)

    def val_loss(self, model):  # type: ignore[no-untyped-def]
        return 0.0

    def on_epoch_end(self, model, epoch, run_dir):  # type: ignore[no-untyped-def]
        return {}


@pytest.fixture
def timings(monkeypatch: pytest.MonkeyPatch) -> dict[str, object]:
    """A host with or without native bf16, and step times the test sets (no real timing)."""
    box: dict[str, object] = {"native": True, "fp32": 1.0, "bf16": 0.5, "calls": 0}

    def fake_seconds(model, task, x, y, dtype):  # type: ignore[no-untyped-def]
        box["calls"] = int(box["calls"]) + 1  # type: ignore[call-overload]
        return box["bf16"] if dtype == torch.bfloat16 else box["fp32"]

    monkeypatch.setattr(precision, "cpu_native_bf16", lambda: box["native"])
    monkeypatch.setattr(device_mod, "cpu_native_bf16", lambda: box["native"])
    monkeypatch.setattr(precision, "_step_seconds", fake_seconds)
    return box


def _choose(model: torch.nn.Module, batch: int = 8) -> torch.dtype | None:
    x, y = torch.randn(batch, 1, 16, 16), torch.randint(0, 10, (batch,))
    return precision.choose_amp("auto", CPU, model, _Task(), x, y)


def test_auto_stays_fp32_without_native_bf16_and_never_measures(timings: dict) -> None:
    timings["native"] = False
    assert _choose(build_classifier({"preset": "tiny"}, 1, 10)) is None
    assert timings["calls"] == 0
    assert not precision.cache_file().exists()


def test_auto_takes_bf16_only_where_measured_faster_and_caches_it(timings: dict) -> None:
    tiny = build_classifier({"preset": "tiny"}, 1, 10)
    assert _choose(tiny) == torch.bfloat16  # 0.5 s against 1.0 s
    assert timings["calls"] == 2
    timings["bf16"] = 5.0  # a later measurement would say otherwise: the cache answers
    assert _choose(tiny) == torch.bfloat16 and timings["calls"] == 2
    # Another network (or batch) is measured on its own; within the margin fp32 stays.
    timings["bf16"] = 0.95
    assert _choose(tiny, batch=16) is None and timings["calls"] == 4
    cached = json.loads(precision.cache_file().read_text())
    assert sorted(v["choice"] for v in cached.values()) == ["bf16", "fp32"]


def test_explicit_settings_are_not_measured(timings: dict) -> None:
    model = build_classifier({"preset": "tiny"}, 1, 10)
    x, y = torch.randn(4, 1, 16, 16), torch.randint(0, 10, (4,))
    assert precision.choose_amp("off", CPU, model, _Task(), x, y) is None
    assert precision.choose_amp("bf16", CPU, model, _Task(), x, y) == torch.bfloat16
    assert timings["calls"] == 0


def test_a_run_records_the_precision_it_used(timings: dict, tmp_path: Path) -> None:
    model = build_classifier({"preset": "tiny"}, 1, 10)
    x, y = torch.randn(32, 1, 16, 16), torch.randint(0, 10, (32,))
    cfg = TrainConfig(max_epochs=1, batch_size=16, ema_decay=None, amp="auto")
    fit(model, _Task(), x, y, cfg, tmp_path / "run", CPU, progress=False)
    summary = json.loads((tmp_path / "run" / "train_summary.json").read_text())
    assert summary["precision"] == "bf16" and timings["calls"] == 2


def test_the_hardware_record_names_the_cpu_and_its_instruction_level(
        monkeypatch: pytest.MonkeyPatch) -> None:
    info = hardware()
    assert info["cpu_capability"] == torch.backends.cpu.get_cpu_capability()
    assert info["cpu_model"] and isinstance(info["cpu_native_bf16"], bool)
    monkeypatch.setattr(device_mod, "cpu_flags", lambda: {"avx2", "amx_bf16"})
    assert device_mod.cpu_native_bf16()
    monkeypatch.setattr(device_mod, "cpu_flags", lambda: {"avx2", "fma"})
    assert not device_mod.cpu_native_bf16()

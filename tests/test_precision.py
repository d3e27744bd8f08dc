"""`amp: auto` on the CPU: bf16 only where the CPU has native bf16 and the network costs at
least BF16_MIN_GFLOP per training image (a flop count, never a timing); the hardware record
names the CPU."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from synthmix import device as device_mod
from synthmix.diffusion.loss import ddpm_loss
from synthmix.diffusion.schedule import NoiseSchedule
from synthmix.diffusion.unet import UNet, unet_config
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


class _EpsTask(_Task):
    """The DDPM's training loss (eps-MSE, label dropout) on the linear T=400 schedule."""

    schedule = NoiseSchedule.linear(400)

    def train_loss(self, model, x, y, rng):  # type: ignore[no-untyped-def]
        return ddpm_loss(model, self.schedule, x, y, p_uncond=0.1, rng=rng, null_label=10)


@pytest.fixture
def host(monkeypatch: pytest.MonkeyPatch) -> dict[str, object]:
    """A host with or without native bf16; counts how often a network's FLOPs are counted."""
    box: dict[str, object] = {"native": True, "counts": 0}
    count = precision.train_gflop_per_image

    def counted(*args):  # type: ignore[no-untyped-def]
        box["counts"] = int(box["counts"]) + 1  # type: ignore[call-overload]
        return count(*args)

    monkeypatch.setattr(precision, "cpu_native_bf16", lambda: box["native"])
    monkeypatch.setattr(device_mod, "cpu_native_bf16", lambda: box["native"])
    monkeypatch.setattr(precision, "train_gflop_per_image", counted)
    return box


def _choose(model: torch.nn.Module, batch: int = 8) -> torch.dtype | None:
    x, y = torch.randn(batch, 1, 16, 16), torch.randint(0, 10, (batch,))
    return precision.choose_amp("auto", CPU, model, _Task(), x, y)


def test_auto_stays_fp32_without_native_bf16_and_counts_nothing(host: dict) -> None:
    host["native"] = False
    assert _choose(build_classifier({"preset": "tiny"}, 1, 10)) is None
    assert host["counts"] == 0


def test_auto_takes_bf16_by_the_networks_flops_not_by_a_stopwatch(
        host: dict, monkeypatch: pytest.MonkeyPatch) -> None:
    tiny = build_classifier({"preset": "tiny"}, 1, 10)
    before = {k: v.clone() for k, v in tiny.state_dict().items()}
    gflop = precision.train_gflop_per_image(tiny, _Task(), torch.randn(2, 1, 16, 16),
                                            torch.zeros(2, dtype=torch.long))
    assert 0.02 < gflop < 0.035  # the README's 0.027 GFLOP per training image at 16x16
    host["counts"] = 0
    assert _choose(tiny) is None and _choose(tiny, batch=16) is None  # same answer, any batch
    assert host["counts"] == 2
    assert all(torch.equal(before[k], v) for k, v in tiny.state_dict().items())  # untouched
    monkeypatch.setattr(precision, "BF16_MIN_GFLOP", 0.01)
    assert _choose(tiny) == torch.bfloat16


@pytest.mark.parametrize(("preset", "channels", "bf16"), [("cpu", 1, False), ("cpu-wide", 3, True)])
def test_the_rule_splits_the_u_nets_where_bf16_was_measured_faster(
        host: dict, preset: str, channels: int, bf16: bool) -> None:
    """On the AMX host bf16 trained `cpu-wide` 1.38x faster and the `cpu` U-Net no faster."""
    net = UNet(unet_config(preset, in_channels=channels, num_classes=10, image_size=16))
    x, y = torch.randn(2, channels, 16, 16), torch.zeros(2, dtype=torch.long)
    choice = precision.choose_amp("auto", CPU, net, _EpsTask(), x, y)
    assert (choice == torch.bfloat16) is bf16


def test_explicit_settings_are_not_counted(host: dict) -> None:
    model = build_classifier({"preset": "tiny"}, 1, 10)
    x, y = torch.randn(4, 1, 16, 16), torch.randint(0, 10, (4,))
    assert precision.choose_amp("off", CPU, model, _Task(), x, y) is None
    assert precision.choose_amp("bf16", CPU, model, _Task(), x, y) == torch.bfloat16
    assert host["counts"] == 0


def test_a_run_records_the_precision_it_used(
        host: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(precision, "BF16_MIN_GFLOP", 0.0)
    model = build_classifier({"preset": "tiny"}, 1, 10)
    x, y = torch.randn(32, 1, 16, 16), torch.randint(0, 10, (32,))
    cfg = TrainConfig(max_epochs=1, batch_size=16, ema_decay=None, amp="auto")
    fit(model, _Task(), x, y, cfg, tmp_path / "run", CPU, progress=False)
    summary = json.loads((tmp_path / "run" / "train_summary.json").read_text())
    assert summary["precision"] == "bf16" and host["counts"] == 1


def test_the_hardware_record_names_the_cpu_and_its_instruction_level(
        monkeypatch: pytest.MonkeyPatch) -> None:
    info = hardware()
    assert info["cpu_capability"] == torch.backends.cpu.get_cpu_capability()
    assert info["cpu_model"] and isinstance(info["cpu_native_bf16"], bool)
    monkeypatch.setattr(device_mod, "cpu_flags", lambda: {"avx2", "amx_bf16"})
    assert device_mod.cpu_native_bf16()
    monkeypatch.setattr(device_mod, "cpu_flags", lambda: {"avx2", "fma"})
    assert not device_mod.cpu_native_bf16()


def test_ddp_ranks_keep_the_static_choice(host: dict, monkeypatch: pytest.MonkeyPatch) -> None:
    """Under torchrun every rank must train in one precision, so the FLOP rule is one process's
    (the loop and `--estimate` both pass their world size)."""
    monkeypatch.setattr(precision, "BF16_MIN_GFLOP", 0.0)
    model = build_classifier({"preset": "tiny"}, 1, 10)
    x, y = torch.randn(4, 1, 16, 16), torch.randint(0, 10, (4,))
    assert precision.choose_amp("auto", CPU, model, _Task(), x, y, world=1) == torch.bfloat16
    assert precision.choose_amp("auto", CPU, model, _Task(), x, y, world=2) is None
    assert host["counts"] == 1

"""The GPU tier's paths that can be checked on a CPU: the warm-up cap, checkpoint and plot
cadence (and that resume stays exact with it), and sampling precision (autocast engaged only
where asked, recorded in the manifest, the CPU path unchanged)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from synthmix.config import load_config
from synthmix.errors import ConfigError
from synthmix.training import TrainConfig, fit
from synthmix.training import loop as loop_module
from synthmix.training.loop import lr_at, planned_steps, warmup_steps

ROOT = Path(__file__).resolve().parents[1]


def test_warm_up_is_capped_so_a_short_run_reaches_its_learning_rate() -> None:
    cfg = TrainConfig(lr=1.0, warmup_steps=100, lr_schedule="cosine", min_lr_ratio=0.05)
    assert warmup_steps(cfg, 48) == 10  # a tuning classifier of the GPU tier: 4 steps x 12
    assert lr_at(cfg, 0, 48) == pytest.approx(0.1) and lr_at(cfg, 9, 48) == 1.0
    assert lr_at(cfg, 47, 48) < 0.1  # then the cosine decay to the floor, within the run
    assert warmup_steps(cfg, 4000) == 100 and lr_at(cfg, 49, 4000) == pytest.approx(0.5)
    assert warmup_steps(TrainConfig(warmup_steps=0), 10) == 0


def test_the_warm_up_cap_binds_for_no_cpu_preset() -> None:
    """Published CPU results stay reproducible: every CPU DDPM and classifier keeps its
    configured warm-up."""
    from synthmix.experiment.config import StudyConfig
    from synthmix.runs.ddpm import DDPMConfig

    ddpm_presets = (ROOT / "configs" / "ddpm").glob("*-cpu.yaml")
    trains = [load_config(DDPMConfig, p).train for p in ddpm_presets]
    trains += [load_config(StudyConfig, p).classifier.train
               for p in (ROOT / "configs" / "cpu").glob("*.yaml")]
    assert len(trains) >= 8 and any(t.warmup_steps for t in trains)
    for t in trains:
        assert warmup_steps(t, planned_steps(t, 27_000)) == t.warmup_steps


def _data(n: int = 96) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    y = torch.arange(n) % 3
    return torch.randn(n, 1, 4, 4, generator=g) * 0.5 + y[:, None, None, None].float(), y


def _model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
                         nn.Flatten(), nn.Linear(4, 3))


class _Task:
    def __init__(self) -> None:
        self.val = _data(30)

    def train_loss(self, model, x, y, rng):  # type: ignore[no-untyped-def]
        return F.cross_entropy(model(x + rng.randn(len(x), *x.shape[1:]) * 0.1), y)

    @torch.no_grad()
    def val_loss(self, model):  # type: ignore[no-untyped-def]
        return F.cross_entropy(model(self.val[0]), self.val[1]).item()

    def on_epoch_end(self, model, epoch, run_dir):  # type: ignore[no-untyped-def]
        return {}


def _fit(run_dir: Path, epochs: int, every: int, resume: bool = False) -> nn.Module:
    cfg = TrainConfig(max_epochs=epochs, patience=None, batch_size=16, ema_decay=None,
                      checkpoint_every_epochs=every, channels_last=False, amp="off")
    model = _model()
    fit(model, _Task(), *_data(), cfg, run_dir, torch.device("cpu"), resume=resume,
        progress=False)
    return model


def _count(monkeypatch: pytest.MonkeyPatch) -> dict[str, int]:
    import synthmix.plots

    calls = {"save_last": 0, "plot": 0}
    save_last, plot = loop_module._Run.save_last, synthmix.plots.plot_loss_curves

    def counted_save(self):  # type: ignore[no-untyped-def]
        calls["save_last"] += 1
        save_last(self)

    def counted_plot(*args, **kwargs):  # type: ignore[no-untyped-def]
        calls["plot"] += 1
        plot(*args, **kwargs)

    monkeypatch.setattr(loop_module._Run, "save_last", counted_save)
    monkeypatch.setattr(synthmix.plots, "plot_loss_curves", counted_plot)
    return calls


@pytest.mark.parametrize(("every", "saves"), [(1, 4), (3, 2), (0, 1)])
def test_resume_checkpoint_and_plot_follow_checkpoint_every_epochs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, every: int, saves: int
) -> None:
    calls = _count(monkeypatch)
    _fit(tmp_path / "run", 4, every)
    # checkpoints at epochs 1-4 / 3 and 4 / 4; the loss plot once, at the end
    assert calls == {"save_last": saves, "plot": 1}
    history = (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()
    assert len(history) == 4  # the metrics themselves are written every epoch
    assert (tmp_path / "run" / "checkpoints" / "last").is_dir()
    assert (tmp_path / "run" / "loss_curve.png").is_file()


def test_resume_is_exact_with_checkpoints_only_at_the_end(tmp_path: Path) -> None:
    whole = _fit(tmp_path / "whole", 4, 0)
    _fit(tmp_path / "parts", 2, 0)
    resumed = _fit(tmp_path / "parts", 4, 0, resume=True)
    for a, b in zip(whole.state_dict().values(), resumed.state_dict().values()):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_a_run_killed_before_its_only_checkpoint_starts_again(tmp_path: Path) -> None:
    """With no `last` checkpoint (killed before the end), resume trains from the start."""
    import shutil

    whole = _fit(tmp_path / "whole", 3, 0)
    _fit(tmp_path / "killed", 3, 0)
    shutil.rmtree(tmp_path / "killed" / "checkpoints" / "last")  # `best` is still there
    again = _fit(tmp_path / "killed", 3, 0, resume=True)
    for a, b in zip(whole.state_dict().values(), again.state_dict().values()):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_sampling_precision_is_recorded_and_the_cpu_samples_in_bf16_only_where_native(
    tiny_ddpm: Path, tmp_path: Path
) -> None:
    from synthmix.device import cpu_native_bf16
    from synthmix.diffusion.settings import SamplerSettings
    from synthmix.runs.ddpm import load_ddpm
    from synthmix.synthetic.generate import (
        make_diffusion_sample_fn,
        precision_label,
        sample_from_ddpm,
        sampling_dtype,
    )

    native = torch.bfloat16 if cpu_native_bf16() else None  # auto on the CPU: bf16 where native
    assert sampling_dtype("cpu") is native and precision_label(None) == "fp32"
    assert precision_label(torch.bfloat16) == "bf16"
    assert sampling_dtype("cpu", "bf16") is torch.bfloat16 and sampling_dtype("cpu", "fp32") is None
    with pytest.raises(ConfigError, match="sampling precision 'fp16' is unknown"):
        sampling_dtype("cpu", "fp16")
    ddpm = load_ddpm(tiny_ddpm)
    settings = SamplerSettings(sampler="ddim", steps=2, guidance_scale=2.0)
    out = sample_from_ddpm(ddpm, tmp_path / "set", n_per_class=1, settings=settings,
                           progress=False)
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["environment"]["precision"] == precision_label(native)
    labels, seeds = torch.arange(4), [0, 1, 2, 3]
    fp32 = make_diffusion_sample_fn(ddpm.model, ddpm.schedule, settings, "cpu")(labels, seeds)
    again = make_diffusion_sample_fn(ddpm.model, ddpm.schedule, settings, "cpu",
                                     amp_dtype=None)(labels, seeds)
    bf16 = make_diffusion_sample_fn(ddpm.model, ddpm.schedule, settings, "cpu",
                                    amp_dtype=torch.bfloat16)(labels, seeds)
    torch.testing.assert_close(fp32, again, rtol=0, atol=0)
    assert bf16.dtype == torch.float32 and not torch.equal(bf16, fp32)  # autocast engaged
    assert (bf16 - fp32).abs().max() < 0.1  # ... and the update stayed in fp32
    # Asked for, bf16 runs on the CPU too, and the manifest says so.
    out = sample_from_ddpm(ddpm, tmp_path / "bf16", n_per_class=1, settings=settings,
                           progress=False, precision="bf16")
    assert json.loads((out / "manifest.json").read_text())["environment"]["precision"] == "bf16"

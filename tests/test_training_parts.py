"""The training loop's parts against their formulas: EMA, warm-up and cosine learning rates,
gradient clipping, the loss-scaling path, seeded initial weights, fixed steps per epoch, the
wall-clock cap, TensorBoard, and DDP over 2 gloo processes against one process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_file
from torch import nn

from synthmix.errors import SynthmixError
from synthmix.runs.classifier import build_classifier
from synthmix.runs.ddpm import build_unet
from synthmix.seeding import StepRandom
from synthmix.training import TrainConfig, fit
from synthmix.training.checkpoint import load_state
from synthmix.training.ema import EMA
from synthmix.training.loop import epoch_order, lr_at, planned_steps, train_step

HERE = Path(__file__).resolve().parent
SRC = HERE.parent / "src"


def test_ema_follows_its_formula_with_warm_up() -> None:
    model = nn.Linear(3, 2)
    ema = EMA(model, decay=0.9)
    expected = {k: v.clone() for k, v in model.state_dict().items()}
    for step in range(6):
        with torch.no_grad():
            for p in model.parameters():
                p.add_(torch.full_like(p, 0.5 * (step + 1)))
        ema.update(model, step)
        d = min(0.9, (1 + step) / (10 + step))  # warm-up (1 + n) / (10 + n), capped at decay
        for k, v in model.state_dict().items():
            expected[k] = d * expected[k] + (1 - d) * v
        for k, v in ema.shadow.state_dict().items():
            torch.testing.assert_close(v, expected[k], rtol=1e-6, atol=1e-6)
    assert EMA(model, 0.999, warmup=False).decay_at(0) == 0.999


def test_warm_up_and_cosine_learning_rates() -> None:
    cfg = TrainConfig(lr=1.0, warmup_steps=4)
    assert [lr_at(cfg, s, 100) for s in range(6)] == [0.25, 0.5, 0.75, 1.0, 1.0, 1.0]
    cos = replace(cfg, lr_schedule="cosine", min_lr_ratio=0.1)
    assert lr_at(cos, 3, 104) == 1.0  # last warm-up step
    assert lr_at(cos, 4, 104) == pytest.approx(1.0)  # cosine starts at the peak
    assert lr_at(cos, 54, 104) == pytest.approx(0.1 + 0.9 * 0.5)  # half way
    assert lr_at(cos, 104, 104) == pytest.approx(0.1) and lr_at(cos, 500, 104) == pytest.approx(0.1)
    assert planned_steps(TrainConfig(max_epochs=3, batch_size=10), 95) == 30
    assert planned_steps(TrainConfig(max_epochs=3, batch_size=10, max_steps=7), 95) == 7
    assert planned_steps(TrainConfig(max_epochs=3, steps_per_epoch=50), 95) == 150


class _Task:
    def __init__(self, scale: float = 1.0) -> None:
        self.scale = scale

    def train_loss(self, model, x, y, rng):
        return self.scale * F.cross_entropy(model(x), y)

    def val_loss(self, model):
        return 1.0

    def on_epoch_end(self, model, epoch, run_dir):
        return {}


def _grad_norm(model: nn.Module) -> float:
    return float(torch.linalg.vector_norm(torch.stack([p.grad.norm() for p in model.parameters()])))


def test_gradient_clipping_caps_the_norm_and_lr_is_set_per_step() -> None:
    torch.manual_seed(0)
    x, y = torch.randn(16, 5), torch.randint(0, 3, (16,))
    for clip in (None, 0.01):
        model = nn.Linear(5, 3)
        opt = torch.optim.SGD(model.parameters(), lr=0.0)
        scaler = torch.amp.GradScaler("cpu", enabled=False)
        cfg = TrainConfig(grad_clip=clip)
        train_step(model, _Task(100.0), x, y, opt, scaler, cfg, 0, 0.123, None)
        assert opt.param_groups[0]["lr"] == 0.123
        if clip is None:
            assert _grad_norm(model) > 0.01
        else:
            assert _grad_norm(model) == pytest.approx(0.01, rel=1e-4)


def test_loss_scaling_gives_the_unscaled_step_and_skips_overflow() -> None:
    torch.manual_seed(0)
    x, y = torch.randn(16, 5), torch.randint(0, 3, (16,))
    base = nn.Linear(5, 3)
    plain, scaled = nn.Linear(5, 3), nn.Linear(5, 3)
    plain.load_state_dict(base.state_dict())
    scaled.load_state_dict(base.state_dict())
    cfg = TrainConfig(grad_clip=1.0)
    for model, enabled in ((plain, False), (scaled, True)):
        opt = torch.optim.Adam(model.parameters(), lr=0.1)
        scaler = torch.amp.GradScaler("cpu", init_scale=2.0**10, enabled=enabled)
        train_step(model, _Task(), x, y, opt, scaler, cfg, 0, 0.1, None)
        if enabled:
            assert scaler.get_scale() == 2.0**10  # finite gradients: the scale stays
            inf = torch.full_like(x, float("inf"))
            before = {k: v.clone() for k, v in model.state_dict().items()}
            train_step(model, _Task(), inf, y, opt, scaler, cfg, 1, 0.1, None)
            assert scaler.get_scale() == 2.0**9  # overflow: step skipped, scale halved
            for k, v in model.state_dict().items():
                assert torch.equal(v, before[k]), k
    for a, b in zip(plain.parameters(), scaled.parameters()):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


def test_initial_weights_come_from_the_seed_alone() -> None:
    torch.manual_seed(123)
    a = build_unet({"preset": "tiny"}, 1, 8, 10, seed=5)
    torch.manual_seed(456)  # the global generator does not matter
    b = build_unet({"preset": "tiny"}, 1, 8, 10, seed=5)
    c = build_unet({"preset": "tiny"}, 1, 8, 10, seed=6)
    for (k, v), w in zip(a.state_dict().items(), b.state_dict().values()):
        assert torch.equal(v, w), k
    assert not torch.equal(a.label_embed.weight, c.label_embed.weight)
    state = torch.get_rng_state()
    build_classifier({"preset": "tiny"}, 1, 10, seed=1)
    assert torch.equal(torch.get_rng_state(), state)  # and it is left untouched
    d, e = (build_classifier({"preset": "tiny"}, 1, 10, seed=1) for _ in range(2))
    assert all(torch.equal(v, w) for v, w in zip(d.state_dict().values(),
                                                 e.state_dict().values()))


def test_fixed_steps_per_epoch_cycle_through_small_data() -> None:
    order = epoch_order(10, seed=1, epoch=0, rank=0, world=1, length=25)
    assert len(order) == 25
    assert sorted(order[:10].tolist()) == list(range(10))  # whole permutations back to back
    assert sorted(order[10:20].tolist()) == list(range(10))
    assert torch.equal(order, epoch_order(10, 1, 0, 0, 1, length=25))
    assert not torch.equal(order, epoch_order(10, 1, 1, 0, 1, length=25))
    # Two ranks hold alternate positions of the same global order.
    r0, r1 = (epoch_order(10, 1, 0, r, 2, length=24) for r in (0, 1))
    assert torch.equal(torch.stack([r0, r1], 1).flatten(), order[:24])


def _toy(n: int = 64) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return torch.randn(n, 5, generator=g), torch.randint(0, 3, (n,), generator=g)


def test_wall_clock_cap_is_recorded_as_not_the_budget(tmp_path: Path) -> None:
    cfg = TrainConfig(max_epochs=1000, patience=None, batch_size=8, max_steps=10**6,
                      max_minutes=1e-9, ema_decay=None, channels_last=False)
    result = fit(nn.Linear(5, 3), _Task(), *_toy(), cfg, tmp_path, torch.device("cpu"),
                 progress=False)
    assert result.stop_reason == "max_minutes" and result.steps >= 1
    summary = json.loads((tmp_path / "train_summary.json").read_text())
    assert summary["time_capped"] is True and summary["budget"]["max_steps"] == 10**6
    cfg = replace(cfg, max_minutes=None, max_steps=3)
    fit(nn.Linear(5, 3), _Task(), *_toy(), cfg, tmp_path / "b", torch.device("cpu"),
        progress=False)
    assert json.loads((tmp_path / "b" / "train_summary.json").read_text())["time_capped"] is False


def test_a_foreign_state_file_is_refused_without_unpickling_advice(tmp_path: Path,
                                                                    recwarn) -> None:
    folder = tmp_path / "last"
    folder.mkdir()

    class Evil:
        def __reduce__(self):
            return (os.system, ("echo should-never-run",))

    torch.save({"loop": Evil()}, folder / "state.pt")
    with pytest.raises(SynthmixError) as err:
        load_state(folder)
    text = str(err.value)
    assert "not a synthmix training state" in text and "weights_only" not in text
    assert not [w for w in recwarn.list if "weights_only" in str(w.message)]
    torch.save({"something": torch.zeros(2)}, folder / "state.pt")
    with pytest.raises(SynthmixError, match="no loop counters"):
        load_state(folder)


DDP_SCRIPT = """
import sys, torch
sys.path[:0] = [{src!r}]
torch.set_num_threads(1)
from synthmix.diffusion.loss import ddpm_loss
from synthmix.diffusion.schedule import NoiseSchedule
from synthmix.runs.ddpm import build_unet
from synthmix.training import TrainConfig, fit
from synthmix.training import distributed as dist

dist.init_from_env(torch.device("cpu"))
schedule = NoiseSchedule.linear(50)

class Task:
    def train_loss(self, model, x, y, rng):
        return ddpm_loss(model, schedule, x, y, p_uncond=0.3, rng=rng, null_label=10)
    def val_loss(self, model):
        return 1.0
    def on_epoch_end(self, model, epoch, run_dir):
        return {{}}

g = torch.Generator().manual_seed(0)
x, y = torch.rand(48, 1, 8, 8, generator=g) * 2 - 1, torch.arange(48) % 10
model = build_unet({{"preset": "tiny", "dropout": 0.1}}, 1, 8, 10, seed=3)  # the presets' dropout
cfg = TrainConfig(max_epochs=1, batch_size=8, max_steps=4, lr=1e-2, ema_decay=0.9,
                  channels_last=False, seed=11)
fit(model, Task(), x, y, cfg, {out!r}, torch.device("cpu"), progress=False)
"""


@pytest.mark.slow
def test_ddp_on_two_gloo_processes_equals_one_process(tmp_path: Path) -> None:
    import runpy

    outs = {}
    for n in (1, 2):
        out = tmp_path / f"world-{n}"
        script = tmp_path / f"ddp{n}.py"
        script.write_text(DDP_SCRIPT.format(src=str(SRC), out=str(out)))
        outs[n] = out
        if n == 1:  # one process: the script run here, as a torchrun of 1 would (WORLD_SIZE=1
            # joins no process group), without starting two Pythons
            runpy.run_path(str(script), run_name="__main__")
            continue
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone",
               f"--nproc_per_node={n}", str(script)]
        env = {**os.environ, "OMP_NUM_THREADS": "1"}
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=180, env=env)
        assert proc.returncode == 0, proc.stderr[-2000:]
    summaries = [json.loads((outs[n] / "train_summary.json").read_text()) for n in (1, 2)]
    assert [s["world_size"] for s in summaries] == [1, 2] and summaries[1]["steps"] == 4
    losses = [json.loads((outs[n] / "metrics.jsonl").read_text().splitlines()[-1])["train_loss"]
              for n in (1, 2)]
    assert losses[0] == pytest.approx(losses[1], rel=1e-5)  # the same images and noise
    g = torch.Generator().manual_seed(1)
    x, t, y = torch.randn(6, 1, 8, 8, generator=g), torch.tensor([0, 5, 10, 20, 40, 49]), \
        torch.tensor([0, 1, 2, 3, 10, 9])
    for name in ("model.safetensors", "ema.safetensors"):
        nets = []
        for n in (1, 2):
            net = build_unet({"preset": "tiny", "dropout": 0.1}, 1, 8, 10)
            net.load_state_dict(load_file(str(outs[n] / "checkpoints" / "last" / name)))
            nets.append(net.eval())
        with torch.no_grad():
            a, b = (net(x, t, y) for net in nets)
        assert a.abs().max() > 1e-3  # the networks have moved away from their zero output
        # The same function; parameters whose gradient is only rounding noise (a conv bias
        # right before a per-channel GroupNorm) may drift under Adam without changing it.
        torch.testing.assert_close(b, a, rtol=1e-3, atol=1e-4)


def test_step_random_gives_each_rank_its_rows_of_the_global_batch() -> None:
    full = StepRandom(torch.Generator().manual_seed(4)).randn(6, 2)
    parts = [StepRandom(torch.Generator().manual_seed(4), r, 2).randn(3, 2) for r in (0, 1)]
    torch.testing.assert_close(torch.stack(parts, 1).reshape(6, 2), full, rtol=0, atol=0)

"""The shared training loop: learning, early stopping, checkpoints, exact resume after SIGKILL."""

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_file
from torch import nn

from synthmix.errors import SynthmixError
from synthmix.training import TrainConfig, fit

HERE = Path(__file__).resolve().parent
SRC = HERE.parent / "src"


def toy_data(n=96, seed=0):
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % 3
    x = torch.randn(n, 1, 4, 4, generator=g) * 0.5 + y[:, None, None, None].float()
    return x, y


def toy_model():
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1),
        nn.ReLU(),
        nn.Dropout(0.1),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(4, 3),
    )


class ToyTask:
    """Cross-entropy plus label noise from the step generator (to exercise seeded randomness)."""

    def __init__(self, val, kill_at_step=None, constant_val=False):
        self.val = val
        self.kill_at_step = kill_at_step
        self.constant_val = constant_val
        self.calls = 0

    def train_loss(self, model, x, y, rng):
        self.calls += 1
        if self.kill_at_step is not None and self.calls > self.kill_at_step:
            os.kill(os.getpid(), signal.SIGKILL)
        jitter = rng.randn(len(x), *x.shape[1:]) * 0.1
        return F.cross_entropy(model(x + jitter), y)

    @torch.no_grad()
    def val_loss(self, model):
        if self.constant_val:
            return 1.0
        return F.cross_entropy(model(self.val[0]), self.val[1]).item()

    def on_epoch_end(self, model, epoch, run_dir):
        return {}


CFG = TrainConfig(
    max_epochs=4,
    patience=None,
    batch_size=16,
    lr=1e-2,
    ema_decay=0.9,
    checkpoint_every_steps=2,
    seed=7,
)


def train(run_dir, cfg=CFG, resume=False, kill_at_step=None):
    model = toy_model()
    task = ToyTask(toy_data(30, seed=1), kill_at_step=kill_at_step)
    x, y = toy_data()
    return fit(
        model, task, x, y, cfg, run_dir, torch.device("cpu"), resume=resume, progress=False
    ), model


def test_fit_learns_and_writes_its_outputs(tmp_path):
    result, model = train(tmp_path / "run")
    history = result.history
    assert result.steps == 4 * 6 and result.epochs == 4 and result.stop_reason == "max_epochs"
    assert history[-1]["val_loss"] < history[0]["val_loss"]
    lines = (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(ln)["epoch"] for ln in lines] == [1, 2, 3, 4]
    assert (tmp_path / "run" / "loss_curve.png").read_bytes()[:4] == b"\x89PNG"
    summary = json.loads((tmp_path / "run" / "train_summary.json").read_text())
    assert summary["done"] and summary["steps"] == 24
    last = tmp_path / "run" / "checkpoints" / "last"
    state = torch.load(last / "state.pt", weights_only=True)
    assert state["loop"]["step"] == 24
    saved = load_file(str(last / "model.safetensors"))
    for k, v in model.state_dict().items():
        assert torch.equal(saved[k], v)
    assert (tmp_path / "run" / "checkpoints" / "best" / "ema.safetensors").is_file()


def test_early_stopping_counts_epochs_without_improvement(tmp_path):
    cfg = TrainConfig(max_epochs=50, patience=2, batch_size=32, ema_decay=None)
    x, y = toy_data()
    result = fit(
        toy_model(),
        ToyTask(None, constant_val=True),
        x,
        y,
        cfg,
        tmp_path,
        torch.device("cpu"),
        progress=False,
    )
    # epoch 1 sets the best; epochs 2 and 3 do not improve -> stop after 3
    assert result.stop_reason == "early_stopping" and result.epochs == 3
    assert result.best_epoch == 0


def test_existing_run_needs_resume(tmp_path):
    train(tmp_path / "run", TrainConfig(max_epochs=1, batch_size=32))
    with pytest.raises(SynthmixError, match="--resume"):
        train(tmp_path / "run", TrainConfig(max_epochs=1, batch_size=32))


@pytest.mark.slow
def test_max_steps_then_resume_with_more_steps_continues_mid_epoch(tmp_path):
    cfg = TrainConfig(max_epochs=3, patience=None, batch_size=16, seed=3, max_steps=4)
    r1, _ = train(tmp_path / "a", cfg)
    assert r1.steps == 4 and r1.stop_reason == "max_steps"
    assert r1.history[-1]["partial_epoch"] and r1.history[-1]["epoch_progress"] == 0.667  # 4/6
    from dataclasses import replace

    r2, m2 = train(tmp_path / "a", replace(cfg, max_steps=None), resume=True)
    r3, m3 = train(tmp_path / "b", replace(cfg, max_steps=None))
    assert r2.steps == r3.steps == 18
    for (k, a), b in zip(m2.state_dict().items(), m3.state_dict().values()):
        assert torch.equal(a, b), k


@pytest.mark.slow
def test_sigkill_and_resume_gives_the_same_weights(tmp_path):
    """A run killed with SIGKILL mid-epoch, resumed, ends bit-identical to an uninterrupted one."""
    code = (
        f"import sys; sys.path[:0] = [{str(SRC)!r}, {str(HERE)!r}]\n"
        "import torch; torch.set_num_threads(1)  # as in this process: same reductions\n"
        "import test_training_loop as t\n"
        f"t.train({str(tmp_path / 'killed')!r}, kill_at_step=9)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    state = torch.load(tmp_path / "killed" / "checkpoints" / "last" / "state.pt", weights_only=True)
    assert 0 < state["loop"]["step"] < 24  # killed part-way, after some checkpoints
    resumed, m_resumed = train(tmp_path / "killed", resume=True)
    straight, m_straight = train(tmp_path / "straight")
    assert resumed.steps == straight.steps == 24
    for (k, a), b in zip(m_resumed.state_dict().items(), m_straight.state_dict().values()):
        assert torch.equal(a, b), k
    ema_a = load_file(str(tmp_path / "killed" / "checkpoints" / "last" / "ema.safetensors"))
    ema_b = load_file(str(tmp_path / "straight" / "checkpoints" / "last" / "ema.safetensors"))
    assert all(torch.equal(ema_a[k], ema_b[k]) for k in ema_a)
    lines = (tmp_path / "killed" / "metrics.jsonl").read_text().splitlines()
    hist_a = [json.loads(x) for x in lines]
    assert [r["epoch"] for r in hist_a] == [1, 2, 3, 4]

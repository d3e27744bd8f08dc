"""The DDPM run end to end through the CLI: train, resume, sample; DDP with 2 processes."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from synthmix.cli import main
from synthmix.diffusion.loss import ddpm_loss
from synthmix.diffusion.schedule import NoiseSchedule
from synthmix.runs.ddpm import build_unet, load_ddpm
from synthmix.synthetic.format import read_synthetic_set

ROOT = Path(__file__).resolve().parents[1]
TINY = [
    "--set", "data.dataset=digits", "--set", "data.image_size=8", "--set", "unet.preset=tiny",
    "--set", "schedule.T=50", "--set", "train.max_steps=4", "--set", "train.steps_per_epoch=2",
    "--set", "train.batch_size=32", "--set", "sample.steps=2", "--set", "sample.grid_per_class=2",
    "--set", "sample.grid_every_epochs=1", "--set", "num_threads=1",
]


@pytest.mark.slow
def test_train_resume_and_sample_through_the_cli(tmp_path, monkeypatch):
    run = tmp_path / "run"
    cfg = str(ROOT / "configs" / "ddpm" / "mnist-cpu.yaml")
    assert main(["train-ddpm", cfg, *TINY, "--run-dir", str(run), "--no-progress"]) == 0
    summary = json.loads((run / "train_summary.json").read_text())
    assert summary["steps"] == 4 and summary["stop_reason"] == "max_steps"
    for name in ("config.yaml", "run.json", "splits.json", "metrics.jsonl", "loss_curve.png",
                 "samples/epoch-0001.png", "samples/final.png"):
        assert (run / name).is_file(), name
    info = json.loads((run / "run.json").read_text())
    assert info["class_names"] == [str(i) for i in range(10)] and info["image_shape"] == [8, 8, 1]
    assert "synthmix" in info["code_version"]
    # The same run again without --resume is refused; with --resume and a higher limit it goes on.
    assert main(["train-ddpm", cfg, *TINY, "--run-dir", str(run), "--no-progress"]) == 2
    assert main(["train-ddpm", "--resume", str(run), "--set", "train.max_steps=6",
                 "--no-progress"]) == 0
    assert json.loads((run / "train_summary.json").read_text())["steps"] == 6
    out = tmp_path / "set"
    assert main(["sample", str(run), "--n-per-class", "3", "--out", str(out), "--sampler", "ddim",
                 "--steps", "2", "--guidance", "1.5", "--no-progress"]) == 0
    syn = read_synthetic_set(out)
    assert syn.images.shape == (30, 8, 8, 1) and syn.images.dtype == np.uint8
    assert np.bincount(syn.labels).tolist() == [3] * 10
    prov = syn.manifest["provenance"]
    assert prov["sampler"] == "ddim" and prov["guidance_scale"] == 1.5 and prov["steps"] == 2
    ddpm = load_ddpm(run)
    assert ddpm.weights_file.name == "ema.safetensors"
    # --compile samples through the fixed-batch network (torch.compile itself stubbed out here;
    # tests/test_fast_path.py runs the real one): 30 images in batches of 8, the last padded.
    from synthmix.diffusion import compiled

    calls = []
    monkeypatch.setattr(compiled.torch, "compile", lambda m, **kw: calls.append(kw) or m)
    out2 = tmp_path / "set-compiled"
    assert main(["sample", str(run), "--n-per-class", "3", "--out", str(out2), "--sampler", "ddim",
                 "--steps", "2", "--guidance", "1.5", "--batch-size", "8", "--compile",
                 "--no-progress"]) == 0
    assert calls == [{"dynamic": False}]
    diff = np.abs(read_synthetic_set(out2).images.astype(int) - syn.images.astype(int))
    assert diff.max() <= 1  # the same images, up to uint8 rounding of float noise


def test_bad_config_is_one_clear_line(tmp_path, capsys):
    cfg = str(ROOT / "configs" / "ddpm" / "mnist-cpu.yaml")
    assert main(["train-ddpm", cfg, "--set", "train.lrr=1", "--run-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "lrr" in err and "Traceback" not in err and err.count("\n") == 1
    assert main(["sample", str(tmp_path / "nope"), "--n-per-class", "1", "--out", "x"]) == 2
    assert "not a DDPM run directory" in capsys.readouterr().err


@pytest.mark.slow
def test_paper_preset_builds_the_study_model_and_takes_a_step():
    model = build_unet({"preset": "paper"}, in_channels=1, image_size=32, num_classes=10)
    n_params = sum(p.numel() for p in model.parameters())
    assert 20e6 < n_params < 80e6  # four levels 64/128/256/512
    schedule = NoiseSchedule.linear(400, 1e-4, 0.02)
    opt = torch.optim.Adam(model.parameters(), lr=5e-4)
    g = torch.Generator().manual_seed(0)
    x0 = torch.rand(2, 1, 32, 32, generator=g) * 2 - 1
    loss = ddpm_loss(model, schedule, x0, torch.tensor([3, 7]), p_uncond=0.1, rng=g)
    loss.backward()
    opt.step()
    assert torch.isfinite(loss)


@pytest.mark.slow
def test_ddp_two_processes_with_torchrun(tmp_path):
    """`torchrun --nproc_per_node 2 -m synthmix train-ddpm ...` trains with DDP on gloo."""
    run = tmp_path / "ddp"
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
           "-m", "synthmix", "train-ddpm", str(ROOT / "configs" / "ddpm" / "mnist-cpu.yaml"),
           *TINY, "--run-dir", str(run), "--no-progress"]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads((run / "train_summary.json").read_text())
    assert summary["world_size"] == 2 and summary["steps"] == 4
    assert (run / "checkpoints" / "last" / "model.safetensors").is_file()

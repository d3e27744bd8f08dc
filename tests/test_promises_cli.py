"""The README's promises as a user meets them, through `python -m synthmix experiment` processes:
the same command gives the same numbers and the same synthetic bytes in a second process (with
the shipped DDPM dropout and the default thread count), and a study killed (SIGKILL) during the
DDPM, the tuning, the sampling or the worth cells resumes with the same command to the same
results."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]

# Tiny, but every stage a kill may land in: a DDPM of 2 epochs (shipped dropout 0.1), guidance
# tuned on validation images, a synthetic set of 2 shards, two Table 6 cells and worth cells.
STUDY = """
name: promises
data: {dataset: digits, image_size: 8, resize: resize}
ddpm:
  overrides:
    schedule: {T: 30}
    unet: {preset: tiny}
    train: {max_steps: 6, steps_per_epoch: 3, batch_size: 32, ema_decay: 0.9}
    sample: {sampler: ddim, steps: 2, grid_per_class: 1, grid_every_epochs: 0}
synthetic: {n_per_class: 8, sampler: dpmpp, steps: 2, guidance_scale: auto, sets: 1,
            batch_size: 40, shard_size: 40}
tune: {guidance_scales: [0.5, 2.0], n_per_class: 4}
classifier:
  model: {preset: tiny}
  train: {max_epochs: 1, batch_size: 32, steps_per_epoch: 3, ema_decay: null, grad_clip: null}
mixes:
  semantics: fraction-of-pools
  experiments: [{name: Exp 1, real: 1.0, synthetic: 0.0}, {name: Exp 3, real: 0.5, synthetic: 0.5}]
  controls: false
  real_pool_size: 300
worth: {enabled: true, real_fractions: [0.1, 1.0], synthetic_fractions: [1.0],
        with_synthetic: false}
seeds: 1
quality: {enabled: false}
"""

# Wall times, throughputs, dates, this machine's paths and how many cells the last process
# trained differ between runs by design; nothing else may.
VOLATILE = {"seconds", "finished", "skipped_at", "images_per_second", "train_seconds",
            "train_seconds_by_group", "wall_seconds", "trained_now", "achieved_gflops",
            "share_of_peak"}

# A child that runs the CLI like `python -m synthmix` but SIGKILLs itself the moment the n-th
# file or folder matching a pattern appears (atomic writes end in os.replace, checkpoint folders
# in a rename): a kill at a known point of a stage, with no chance for Python to clean up.
KILLER = """
import fnmatch, os, signal, sys
pattern, nth, args = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
seen = [0]
def killing(real):
    def move(src, dst, *a, **k):
        real(src, dst, *a, **k)
        if fnmatch.fnmatch(os.fspath(dst), pattern):
            seen[0] += 1
            if seen[0] == nth:
                os.kill(os.getpid(), signal.SIGKILL)
    return move
os.replace, os.rename = killing(os.replace), killing(os.rename)
from synthmix.cli import main
sys.exit(main(args))
"""


def _env() -> dict[str, str]:
    """The default thread count, as users run. Idle OpenMP threads sleep rather than spin: on a
    loaded 2-core machine spinning made a step 5-20x slower; how threads wait changes no number."""
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")}
    return {**env, "PYTHONPATH": str(ROOT / "src"), "OMP_WAIT_POLICY": "PASSIVE"}


def _command(config: Path, out: Path) -> list[str]:
    return ["experiment", str(config), "--study-dir", str(out), "--no-progress"]


def _normalise(obj: Any, study: Path) -> Any:
    """results.json without wall times and with the study folder's path as <study>."""
    if isinstance(obj, dict):
        return {k: _normalise(v, study) for k, v in obj.items() if k not in VOLATILE}
    if isinstance(obj, list):
        return [_normalise(v, study) for v in obj]
    if isinstance(obj, str):
        return obj.replace(str(study.resolve()), "<study>").replace(str(study), "<study>")
    return obj


def _results(study: Path) -> Any:
    return _normalise(json.loads((study / "results.json").read_text()), study)


def _set_bytes(study: Path) -> dict[str, bytes]:
    """Every shard of every synthetic set (the study's and the tuning candidates'), by name."""
    return {str(p.relative_to(study)): p.read_bytes() for p in sorted(study.rglob("*.npz"))}


@pytest.fixture(scope="module")
def config(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("promises") / "promises.yaml"
    path.write_text(STUDY)
    return path


@pytest.fixture(scope="module")
def reference(config: Path) -> tuple[Path, Path]:
    """The same command twice, as two processes side by side."""
    outs = (config.parent / "a", config.parent / "b")
    procs = [subprocess.Popen([sys.executable, "-m", "synthmix", *_command(config, out)],
                              env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True) for out in outs]
    for proc in procs:
        _, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err[-3000:]
    return outs


def test_the_same_command_in_two_processes_gives_the_same_numbers_and_bytes(reference) -> None:
    a, b = reference
    results = _results(a)
    assert results == _results(b)
    assert len(results["table"]) == 2 and results["worth"]["answer"]
    assert len(results["tuning"]["candidates"]) == 2 and results["stages"]["ddpm"]["steps"] == 6
    assert results["config"]["num_threads"] is None  # torch's default thread count
    assert json.loads((a / "tuning" / "tuning.json").read_text())["chosen"] == \
        json.loads((b / "tuning" / "tuning.json").read_text())["chosen"]
    shards = _set_bytes(a)
    assert len(shards) == 2 + 2 and shards == _set_bytes(b)  # the set's and tuning's
    for name in ("model.safetensors", "ema.safetensors"):
        assert ((a / "ddpm/checkpoints/last" / name).read_bytes()
                == (b / "ddpm/checkpoints/last" / name).read_bytes())


# (the stage a kill lands in, the file whose n-th appearance triggers it, n)
KILLS = [
    ("ddpm", "*/ddpm/checkpoints/last", 1),  # after the first of 2 epochs
    ("tune", "*/tuning/*/set/manifest.json", 1),  # the first candidate's set sampled
    ("synthetic-set0", "*/synthetic/set-0/shard-*.npz", 1),  # 1 of 2 shards written
    ("classifiers", "*/worth/*/test_metrics.json", 1),  # 1 of 2 worth classifiers trained
]


@pytest.mark.slow
def test_a_study_killed_anywhere_resumes_to_the_same_results(reference, config: Path,
                                                             tmp_path: Path) -> None:
    out = tmp_path / "killed"
    killer = tmp_path / "killer.py"
    killer.write_text(KILLER)
    for stage, pattern, nth in KILLS:
        proc = subprocess.run([sys.executable, str(killer), pattern, str(nth),
                               *_command(config, out)], env=_env(), capture_output=True,
                              text=True, timeout=300)
        assert proc.returncode == -signal.SIGKILL, (stage, proc.stderr[-3000:])
        log = out / "stages.json"  # a stage is recorded there when it has finished
        done = json.loads(log.read_text()) if log.is_file() else {}
        assert stage not in done, f"the kill during {stage} came after it had finished"
    proc = subprocess.run([sys.executable, "-m", "synthmix", *_command(config, out)],
                          env=_env(), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert _results(out) == _results(reference[0])
    assert _set_bytes(out) == _set_bytes(reference[0])


def test_the_estimate_counts_what_the_study_did(reference, config: Path, monkeypatch,
                                                capsys) -> None:
    """`--estimate` with a stubbed clock (every timed call takes 1 s) gives the plan's work
    exactly: the steps, images and classifier runs the study then really did."""
    import synthmix.experiment.estimate as estimate
    from synthmix.cli import main

    monkeypatch.setattr(estimate, "_seconds_per_call", lambda fn, device: 1.0)
    assert main(["experiment", str(config), "--estimate"]) == 0
    rows = {line.split()[0]: line.split() for line in capsys.readouterr().out.splitlines()[1:]}
    # DDPM: 6 steps. Sampling: the set's 80 images and 2 tuning candidates of 40, 4 network
    # evaluations each (DPM-Solver++ 2 steps, guided), 2 x 40 per timed call: 160 * 4 / 80 s.
    # Classifiers: 4 runs and 2 tuning candidates x 2 classifier seeds of 3 steps, plus 4
    # test-set passes: 24 + 4 s.
    assert rows["DDPM"][2] == "0:00:06" and "6 steps of 32" in " ".join(rows["DDPM"])
    assert rows["sampling"][1] == "0:00:08" and rows["sampling"][2:6] == ["160", "images", "x",
                                                                        "4"]
    assert rows["classifiers"][1] == "0:00:28" and "8 runs, at most 24 steps" in \
        " ".join(rows["classifiers"])
    assert rows["total"][1] == "0:00:42"
    study = reference[0]  # what the study did
    assert json.loads((study / "ddpm" / "train_summary.json").read_text())["steps"] == 6
    images = [json.loads(p.read_text())["num_images"] for p in study.rglob("manifest.json")]
    assert sum(images) == 160
    runs = [p.parent for p in study.rglob("*_metrics.json") if p.name != "quality.json"]
    assert len(runs) == 8 and sum(json.loads((r / "train_summary.json").read_text())["steps"]
                                  for r in runs) == 24

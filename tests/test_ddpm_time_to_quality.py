"""benchmarks/ddpm_time_to_quality.py and the DDPM snapshots it reads: the "reaches" rule,
snapshot weights equal to the sampling weights of that epoch, and a tiny end-to-end run (two
DDPM recipes of a few steps on the 8x8 digits) judged on validation images only."""

import json
from pathlib import Path

import pytest
import torch
from benchmark_module import benchmark_module
from safetensors.torch import load_file
from test_sampler_quality import TINY_DDPM

from synthmix.cli import main as synthmix_main
from synthmix.errors import ConfigError
from synthmix.runs.ddpm import load_ddpm, snapshot_name

ROOT = Path(__file__).resolve().parents[1]
CFG = str(ROOT / "configs" / "ddpm" / "mnist-cpu.yaml")


@pytest.fixture(scope="module")
def ttq():
    """The benchmark script as a module."""
    yield from benchmark_module("ddpm_time_to_quality")


def _point(mean, std, n=3):
    return {"val_macro_f1": {"mean": mean, "std": std, "n": n}}


def test_reaches_is_two_standard_errors_of_the_difference(ttq):
    ref = _point(0.90, 0.03)
    se = (0.03**2 / 3 + 0.03**2 / 3) ** 0.5  # 0.0245
    assert ttq.reaches(_point(0.90 - 2 * se + 1e-6, 0.03), ref)
    assert not ttq.reaches(_point(0.90 - 2 * se - 1e-4, 0.03), ref)
    assert ttq.reaches(_point(0.95, 0.0), ref)
    assert not ttq.reaches(_point(0.899, 0.0), _point(0.90, 0.0))  # no noise: no slack


def test_parse_candidate(ttq):
    c = ttq.parse_candidate("short:train.max_steps=1800, loss_weighting=min_snr")
    assert c.name == "short" and c.overrides == ("train.max_steps=1800", "loss_weighting=min_snr")
    assert ttq.parse_candidate("today").overrides == ()
    for bad in ("", ":a=1", "x:max_steps", "../x:a=1"):
        with pytest.raises(ConfigError):
            ttq.parse_candidate(bad)


def test_snapshot_is_the_sampling_weights_of_its_epoch(tmp_path):
    run = tmp_path / "ddpm"
    assert synthmix_main(["train-ddpm", CFG, *TINY_DDPM, "--set", "train.max_steps=4",
                          "--set", "snapshot_epochs=[1, 2]", "--run-dir", str(run),
                          "--no-progress"]) == 0
    history = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert [h.get("snapshot") for h in history] == [
        f"checkpoints/{snapshot_name(1)}", f"checkpoints/{snapshot_name(2)}"]
    first = load_file(run / "checkpoints" / snapshot_name(1) / "model.safetensors")
    last = load_file(run / "checkpoints" / snapshot_name(2) / "model.safetensors")
    ema = load_file(run / "checkpoints" / "last" / "ema.safetensors")
    assert all(torch.equal(last[k], ema[k]) for k in ema)  # the EMA weights at the end
    assert not all(torch.equal(first[k], ema[k]) for k in ema)  # ...and after epoch 1 others
    loaded = load_ddpm(run, which=snapshot_name(1), device=torch.device("cpu"))
    assert loaded.weights_file == run / "checkpoints" / snapshot_name(1) / "model.safetensors"


@pytest.mark.slow
def test_tiny_end_to_end_judges_each_point_on_validation(ttq, tmp_path, forbid_rework):
    out = tmp_path / "ttq"
    sets = [s for s in TINY_DDPM if s != "--set"]
    base = ",".join(s for s in sets if not s.startswith("train.max_steps"))
    argv = [CFG, "--candidate", f"ref:{base},train.max_steps=4",
            "--candidate", f"short:{base},train.max_steps=2", "--snapshot-epochs", "1",
            "--real", "digits", "--n-per-class", "5", "--seeds", "2", "--max-epochs", "1",
            "--patience", "1", "--out", str(out), "--no-progress"]
    assert ttq.main(argv) == 0
    result = json.loads((out / ttq.RESULT_JSON).read_text())
    points = [(p["candidate"], p["checkpoint"], p["step"]) for p in result["points"]]
    # the reference at its snapshot and its end; the short run ends at epoch 1: no snapshot
    assert [p[:2] for p in points] == [("ref", snapshot_name(1)), ("ref", "best"),
                                       ("short", "best")]
    ref_final = result["points"][1]
    history = [json.loads(x) for x in (out / "ref" / "ddpm" / "metrics.jsonl").read_text()
               .splitlines()]
    best = min(history, key=lambda r: r["val_loss"])  # where the "best" checkpoint was written
    assert points[0][2] == 2 and ref_final["step"] == best["step"]
    assert ref_final["train_minutes"] == round(best["elapsed_s"] / 60, 2)
    assert ref_final["delta_vs_reference"] == 0 and ref_final["reaches_reference"]
    minutes = [p["train_minutes"] for p in result["points"][:2]]
    assert minutes[0] <= minutes[1]
    for p in result["points"]:
        assert p["val_macro_f1"]["n"] == 2 and p["fid_vs_validation"] > 0
    # The rule on the recorded points: of the final checkpoints that reach the reference (the
    # reference always reaches itself), the one with the fewest training minutes.
    reaching = [p for p in result["points"] if p["final"] and p["reaches_reference"]]
    assert "ref" in {p["candidate"] for p in reaching}
    first = min(reaching, key=lambda p: p["train_minutes"])
    assert result["fastest_reaching"] == {"candidate": first["candidate"],
                                          "train_minutes": first["train_minutes"],
                                          "steps": first["step"]}
    # Judged on validation images only, and the real baseline was trained once, then reused.
    assert not list(out.rglob("test_metrics.json"))
    weights = [b / "seed-0" / "checkpoints" / "best" / "model.safetensors"
               for b in sorted(out.rglob("real-baseline"))]
    assert len(weights) == 3 and len({w.stat().st_mtime_ns for w in weights}) == 1
    assert (out / ttq.RESULT_PNG).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # A second run reuses every trained DDPM and judged point.
    before = (out / "ref" / "best" / "sampler_quality.json").stat().st_mtime_ns
    assert ttq.main(argv) == 0
    assert (out / "ref" / "best" / "sampler_quality.json").stat().st_mtime_ns == before

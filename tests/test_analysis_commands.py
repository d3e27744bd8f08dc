"""`synthmix tune`, `synthmix worth` and `synthmix experiment --estimate` on tiny inputs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

import synthmix.runs.classifier
import synthmix.runs.ddpm
from synthmix.cli import main
from synthmix.experiment.worth import reanalyse
from synthmix.runs.common import DataConfig, prepare_data

ROOT = Path(__file__).resolve().parents[1]
FAST = ["--max-epochs", "1", "--patience", "1"]


@pytest.mark.slow
def test_tune_scores_candidates_on_validation(tiny_ddpm: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "tune"
    assert main(["tune", str(tiny_ddpm), "--real", "digits", "--guidance", "0.5", "2",
                 "--thresholding", "none", "clip", "--n-per-class", "3", "--out", str(out),
                 *FAST, "--no-progress"]) == 0
    result = json.loads((out / "tuning.json").read_text())
    labels = [c["label"] for c in result["candidates"]]
    assert labels == ["dpmpp-2 w=0.5", "dpmpp-2 w=0.5 clip", "dpmpp-2 w=2", "dpmpp-2 w=2 clip"]
    # Scored on the whole validation split of the classifier half of digits.
    validation = prepare_data(DataConfig(dataset="digits", image_size=8)).classifier_val
    assert result["chosen"] in labels and result["n_validation"] == len(validation[1])
    best = max(c["val_macro_f1"]["mean"] for c in result["candidates"])
    chosen = next(c for c in result["candidates"] if c["label"] == result["chosen"])
    noise = result["noise"]  # 2 seeds by default: the best, or one within its standard error
    assert chosen["val_macro_f1"]["n"] == 2 and noise["best_mean"] == best
    assert chosen["val_macro_f1"]["mean"] >= best - noise["standard_error"] - 1e-12
    assert result["chosen"] in noise["within_noise"]
    assert not list(out.rglob("test_metrics.json"))  # scored on validation only
    assert "<- chosen" in capsys.readouterr().out


@pytest.mark.slow
def test_worth_for_a_ddpm_and_a_set(tiny_ddpm: Path, tmp_path: Path, capsys) -> None:
    set_dir = tmp_path / "set"
    assert main(["sample", str(tiny_ddpm), "--n-per-class", "6", "--out", str(set_dir),
                 "--no-progress"]) == 0
    out = tmp_path / "worth"
    assert main(["worth", "--ddpm", str(tiny_ddpm), "--synthetic", str(set_dir), "--real",
                 "digits", "--out", str(out), "--set", "worth.real_fractions=[0.2,1.0]",
                 "--set", "worth.synthetic_fractions=[1.0]", "--set", "seeds=2", *FAST,
                 "--no-progress"]) == 0
    results = json.loads((out / "results.json").read_text())
    worth = results["worth"]
    assert [p["size"] for p in worth["real_only"]] == sorted(p["size"] for p in worth["real_only"])
    assert len(worth["real_only"]) == 2 and len(worth["real_plus_synthetic"]) == 2
    assert worth["synthetic_only"][0]["size"] == 60
    # The sentence's form depends on the scores (resolved or not), whose last digits differ
    # between CPU types: check the counted sizes, and that the answer is the recorded curves'.
    assert worth["answer"].startswith("60 synthetic images (54 trained on, 6 held out)")
    assert worth["answer"] == reanalyse(worth)["answer"]
    assert results["table"] == [] and results["sampling"]["settings"]["sampler"] == "dpmpp"
    report = (out / "report.md").read_text()
    assert "What the synthetic data is worth" in report and "worth.png" in report
    assert worth["answer"] in capsys.readouterr().out


def test_estimate_times_every_stage_without_writing(tmp_path: Path, capsys) -> None:
    from test_study_trust import STUDY  # the tiny study config

    cfg = tmp_path / "s.yaml"
    cfg.write_text(STUDY)
    assert main(["experiment", str(cfg), "--estimate", "--study-dir", str(tmp_path / "out")]) == 0
    text = capsys.readouterr().out
    for stage in ("DDPM training", "sampling", "classifiers", "total"):
        assert stage in text, stage
    assert not (tmp_path / "out").exists()


def test_estimate_times_training_in_the_precision_the_run_takes(tmp_path: Path, monkeypatch,
                                                                 capsys) -> None:
    """`amp: auto` on a CPU with native bf16 trains wide networks in bf16 (the FLOP rule of
    training/precision.py); the estimate times the same precision and says which, so an AMX
    host is not quoted fp32 minutes for a bf16 DDPM."""
    from test_study_trust import STUDY

    import synthmix.training.precision as precision

    cfg = tmp_path / "s.yaml"
    cfg.write_text(STUDY)
    chosen: list[object] = []
    real_choose = precision.choose_amp

    def choose(*args, **kwargs):
        chosen.append(real_choose(*args, **kwargs))
        return chosen[-1]

    monkeypatch.setattr(precision, "cpu_native_bf16", lambda: True)
    monkeypatch.setattr(precision, "BF16_MIN_GFLOP", 0.0)  # every network counts as wide
    monkeypatch.setattr("synthmix.experiment.estimate.choose_amp", choose)
    set_auto = ["--set", "ddpm.overrides.train.amp=auto", "--set", "classifier.train.amp=off"]
    assert main(["experiment", str(cfg), "--estimate", *set_auto]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert chosen == [torch.bfloat16, None]  # the DDPM by the rule; the classifier as set
    assert "images/s, bf16]" in next(line for line in lines if "DDPM training" in line)
    assert "images/s, fp32]" in next(line for line in lines if "classifiers" in line)


@pytest.mark.slow
def test_worth_adds_learning_curves_to_a_finished_study(tmp_path: Path, monkeypatch) -> None:
    from test_study_trust import STUDY

    cfg = tmp_path / "s.yaml"
    cfg.write_text(STUDY)
    study = tmp_path / "study"
    fast = ["--set", "worth.enabled=false", "--set", "mixes.controls=false", "--set",
            "synthetic.guidance_scale=1.0", "--set", "synthetic.sets=1", "--set", "seeds=1"]
    assert main(["experiment", str(cfg), "--study-dir", str(study), *fast,
                 "--no-progress"]) == 0
    before = json.loads((study / "results.json").read_text())
    assert before["worth"] is None
    table_runs = {p.parent for p in (study / "classifiers").rglob("test_metrics.json")}
    real_fit, fitted = synthmix.runs.classifier.fit, []

    def fit_recorded(model, task, x, y, cfg, run_dir, *args, **kwargs):
        fitted.append(Path(run_dir))
        return real_fit(model, task, x, y, cfg, run_dir, *args, **kwargs)

    monkeypatch.setattr(synthmix.runs.classifier, "fit", fit_recorded)
    monkeypatch.setattr(synthmix.runs.ddpm, "fit", lambda *a, **k: pytest.fail("DDPM retrained"))
    assert main(["worth", str(study), "--set", "worth.real_fractions=[0.25,1.0]", "--set",
                 "worth.synthetic_fractions=[1.0]", "--no-progress"]) == 0
    after = json.loads((study / "results.json").read_text())
    assert [p["train"] for p in after["worth"]["real_only"]] == [100, 400]
    # Sizes count the real validation images seen too: all 45 of the pool for both (the floor
    # of 5 per class asks for 50).
    assert [p["size"] for p in after["worth"]["real_only"]] == [145, 445]
    assert after["config"]["worth"]["enabled"] is True
    # The table's classifiers were reused, not retrained; the full-real worth point is Exp 1's.
    assert table_runs and fitted and not table_runs & set(fitted)
    assert "The answer" in (study / "report.md").read_text()
    # Any other change to the study is still refused.
    assert main(["worth", str(study), "--set", "seeds=2", "--no-progress"]) == 2


def test_guidance_at_the_grids_edge_is_flagged() -> None:
    from synthmix.synthetic.tune import guidance_at_edge

    rows = [{"settings": {"guidance_scale": w}} for w in (0.0, 1.0, 2.0)]
    assert "largest" in (guidance_at_edge(rows, rows[2]) or "")
    assert guidance_at_edge(rows, rows[1]) is None
    assert guidance_at_edge(rows, rows[0]) is None  # w = 0 is no guidance: nothing below it
    inner = [{"settings": {"guidance_scale": w}} for w in (0.5, 1.0, 2.0)]
    assert "smallest" in (guidance_at_edge(inner, inner[0]) or "")
    assert guidance_at_edge(rows[:2], rows[1]) is None  # two values are no curve to judge

"""A tiny study end to end (seconds): every stage, the report, no leakage, resume after a crash."""

import json
from pathlib import Path

import numpy as np
import pytest

from synthmix.cli import main
from synthmix.config import load_config
from synthmix.data import StudySplits
from synthmix.experiment.config import StudyConfig
from synthmix.experiment.study import run_study
from synthmix.synthetic.format import read_synthetic_set

pytestmark = pytest.mark.slow  # each test runs or shares a whole tiny study

TINY_STUDY = """
name: tiny
data: {dataset: digits, image_size: 8, resize: resize}
ddpm:
  overrides:
    schedule: {T: 50}
    unet: {preset: tiny}
    train: {max_steps: 4, steps_per_epoch: 2, batch_size: 32, ema_decay: 0.9}
    sample: {sampler: ddim, steps: 2, grid_per_class: 2, grid_every_epochs: 1}
synthetic: {n_per_class: 6, sampler: dpmpp, steps: 2, guidance_scale: 2.0, batch_size: 30,
            shard_size: 20}
classifier:
  model: {preset: tiny}
  train: {max_epochs: 2, patience: 1, batch_size: 32, ema_decay: null, grad_clip: null}
mixes: {semantics: fraction-of-pools}
seeds: 2
guidance_sweep: {scales: [0.0, 1.0], n_per_class: 4, seeds: 1}
quality: {enabled: true, max_images: 100, k: 2}
num_threads: 1
"""


def macro_f1_of(confusion) -> float:
    """Macro-F1 from a confusion matrix (rows true, columns predicted): per class
    2TP / (2TP + FP + FN), 0 for a class never true nor predicted, averaged over classes."""
    cm = np.asarray(confusion, dtype=float)
    tp = np.diag(cm)
    denominator = cm.sum(0) + cm.sum(1)  # (2TP + FP + FN) per class
    return float(np.mean(np.divide(2 * tp, denominator, out=np.zeros_like(tp),
                                   where=denominator > 0)))


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    root = tmp_path_factory.mktemp("study")
    (root / "tiny.yaml").write_text(TINY_STUDY)
    out = root / "out"
    assert main(["experiment", str(root / "tiny.yaml"), "--study-dir", str(out),
                 "--no-progress"]) == 0
    return root, out


def test_every_stage_and_section_is_there(study):
    _, out = study
    results = json.loads((out / "results.json").read_text())
    names = [c["name"] for c in results["table"]]
    assert names == ["Exp 1", "Exp 2", "Exp 3", "Exp 4", "Exp 5"]
    for cell in results["table"]:
        assert cell["macro_f1"]["n"] == 2 and len(cell["runs"]) == 2
        # Each repeat's macro-F1 is its own confusion matrix's, over the 360 test images of
        # digits, and the table's mean is theirs.
        f1 = []
        for run in cell["runs"]:
            saved = json.loads((out / run["run_dir"] / "test_metrics.json").read_text())
            assert np.asarray(saved["confusion_matrix"]).sum() == 360
            f1.append(macro_f1_of(saved["confusion_matrix"]))
            assert run["macro_f1"] == pytest.approx(f1[-1], abs=1e-12)
        assert cell["macro_f1"]["mean"] == pytest.approx(np.mean(f1), abs=1e-12)
        assert cell["paper_f1"] is None  # no study numbers for digits
    assert [s["guidance_scale"] for s in results["guidance_sweep"]] == [0.0, 1.0]
    assert results["quality"] is not None
    started = json.loads((out / "run.json").read_text())["code_version"]
    assert results["code_version"] == started and "synthmix" in started
    stages = json.loads((out / "stages.json").read_text())
    assert {"ddpm", "synthetic-set0", "classifiers", "quality"} <= set(stages)
    report = (out / "report.md").read_text()
    for heading in ("Exp 1", "Exp 5", "guidance", "loss", "onfusion"):
        assert heading.lower() in report.lower(), heading
    assert "data:image/png;base64," in (out / "report.html").read_text()
    # mix sizes are recorded per run, in the study's semantics
    mix = json.loads((out / "classifiers" / "exp-3" / "seed-0" / "mix.json").read_text())
    # Exp 3 trains on half of each pool: 30 of the 60 synthetic images (6 per class).
    assert mix["semantics"] == "fraction-of-pools" and mix["train_synthetic"] == 30
    # ...and half of the real pool (Exp 1's 647 images, all of it), rounded.
    assert results["table"][0]["n_real"] == 647
    assert mix["train_real"] == results["table"][2]["n_real"] == 324


def test_pictures_are_drawn_for_the_runs_the_report_shows(study):
    _, out = study
    results = json.loads((out / "results.json").read_text())
    shown = {c["runs"][0]["run_dir"] for c in results["table"]}
    runs = {p.parent.relative_to(out).as_posix() for p in out.glob("classifiers/**/mix.json")}
    assert shown < runs  # the other repeats, controls and learning-curve runs draw nothing
    for run in runs:
        drawn = [(out / run / f).is_file() for f in ("loss_curve.png", "confusion_matrix.png")]
        assert drawn == [run in shown] * 2, run
        assert (out / run / "metrics.jsonl").is_file()  # the numbers are always written
    report = (out / "report.md").read_text()
    assert report.count("confusion matrix") >= len(shown)


def test_no_leakage_between_diffusion_half_classifier_half_and_test(study):
    _, out = study
    splits = StudySplits.load(out / "splits.json")
    a = np.concatenate([splits.diffusion_train, splits.diffusion_val])
    b = np.concatenate([splits.classifier_train, splits.classifier_val])
    assert len(np.intersect1d(a, b)) == 0 and not splits.overlap
    ddpm_splits = StudySplits.load(out / "ddpm" / "splits.json")
    assert np.array_equal(ddpm_splits.diffusion_train, splits.diffusion_train)
    assert json.loads((out / "ddpm" / "run.json").read_text())["sizes"]["train"] == len(
        splits.diffusion_train)


def test_rerun_skips_finished_stages_and_report_regenerates(study, forbid_rework):
    root, out = study
    before = json.loads((out / "results.json").read_text())
    forbid_rework()  # a DDPM or classifier trained, or a set sampled, again raises
    assert main(["experiment", str(root / "tiny.yaml"), "--study-dir", str(out),
                 "--no-progress"]) == 0
    assert json.loads((out / "results.json").read_text())["table"] == before["table"]
    (out / "report.md").unlink()
    assert main(["report", str(out)]) == 0 and (out / "report.md").is_file()


def test_a_different_config_in_the_same_dir_is_refused(study):
    root, out = study
    assert main(["experiment", str(root / "tiny.yaml"), "--study-dir", str(out),
                 "--set", "seeds=3"]) == 2


def test_crashed_study_resumes_where_it_stopped(tmp_path, monkeypatch):
    (tmp_path / "tiny.yaml").write_text(TINY_STUDY)
    cfg = load_config(StudyConfig, tmp_path / "tiny.yaml",
                      ["guidance_sweep.scales=[]", "quality.enabled=false", "seeds=1"])
    import synthmix.experiment.cells as rc

    real_train = rc.train_classifier
    calls = []

    def crash_on_third(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt  # a kill in the middle of the classifier stage
        return real_train(*args, **kwargs)

    monkeypatch.setattr(rc, "train_classifier", crash_on_third)
    with pytest.raises(KeyboardInterrupt):
        run_study(cfg, tmp_path / "s", progress=False)
    finished = sorted(p.parent for p in (tmp_path / "s").rglob("test_metrics.json"))
    assert [p.parent.name for p in finished] == ["exp-1", "exp-2"]
    monkeypatch.setattr(rc, "train_classifier", real_train)
    import synthmix.runs.classifier
    import synthmix.runs.ddpm

    real_fit = synthmix.runs.classifier.fit
    fitted: list[Path] = []

    def fit_recorded(model, task, x, y, cfg, run_dir, *args, **kwargs):
        fitted.append(Path(run_dir))
        return real_fit(model, task, x, y, cfg, run_dir, *args, **kwargs)

    monkeypatch.setattr(synthmix.runs.classifier, "fit", fit_recorded)
    monkeypatch.setattr(synthmix.runs.ddpm, "fit", lambda *a, **k: pytest.fail("DDPM retrained"))
    results = run_study(cfg, tmp_path / "s", progress=False)
    assert len(results["table"]) == 5
    # The two finished cells were not retrained; the other three were trained, once each.
    assert len(fitted) == len(set(fitted)) == 3 and not set(fitted) & set(finished)
    assert Path(tmp_path / "s" / "report.md").is_file()


def test_filter_keeps_what_the_real_trained_classifier_believes(study, tmp_path):
    import torch

    from synthmix.config import load_config
    from synthmix.data import to_model_tensor
    from synthmix.runs.classifier import ClassifierRunConfig, predict_logits
    from synthmix.synthetic.cas import load_feature_classifier

    _, out = study
    syn_dir = out / "synthetic" / "set-0"
    clf = out / "classifiers" / "exp-1" / "seed-0"
    syn = read_synthetic_set(syn_dir)
    ccfg = load_config(ClassifierRunConfig, clf / "config.yaml")
    net = load_feature_classifier(clf, ccfg, 1, 10)
    proba = torch.softmax(predict_logits(net, to_model_tensor(syn.images, None)), 1)
    own = proba[torch.arange(len(syn)), torch.as_tensor(syn.labels)].numpy()
    threshold = float(np.median(own))
    assert main(["filter", str(syn_dir), "--classifier", str(clf), "--threshold",
                 repr(threshold), "--out", str(tmp_path / "kept"), "--device", "cpu"]) == 0
    kept = read_synthetic_set(tmp_path / "kept")
    assert np.array_equal(kept.seeds, syn.seeds[own >= threshold])
    assert kept.manifest["filter"]["dropped"] == int((own < threshold).sum()) > 0

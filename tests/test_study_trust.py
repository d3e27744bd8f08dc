"""What a sceptical reviewer checks in a study: the same command gives the same numbers, the
test set steers nothing, the ± covers the synthetic sets, the plan is checked before any work,
memorisation is measured against the DDPM's own training images, and torchrun shares the cells
between ranks."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from synthmix.config import load_config
from synthmix.errors import ConfigError
from synthmix.experiment.config import StudyConfig
from synthmix.experiment.study import run_study
from synthmix.synthetic.format import read_synthetic_set

SRC = Path(__file__).resolve().parents[1] / "src"

STUDY = """
name: trust
data: {dataset: digits, image_size: 8, resize: resize}
ddpm:
  overrides:
    schedule: {T: 30}
    unet: {preset: tiny}  # the presets' dropout, 0.1
    train: {max_steps: 6, steps_per_epoch: 3, batch_size: 32, ema_decay: 0.9}
    sample: {sampler: ddim, steps: 2, grid_per_class: 1, grid_every_epochs: 0}
# fp32 sampling: the DDP DDPM differs from the one-process one by float rounding, which
# bf16 sampling (auto on CPUs with native bf16) would carry into the pixels.
synthetic: {n_per_class: 8, sampler: dpmpp, steps: 2, guidance_scale: auto, sets: 2,
            batch_size: 40, shard_size: 40, precision: fp32}
tune: {guidance_scales: [0.5, 2.0], n_per_class: 4}
classifier:
  model: {preset: tiny}
  train: {max_epochs: 2, patience: 2, batch_size: 32, steps_per_epoch: 3, ema_decay: null,
          grad_clip: null}
  augment: {random_crop_padding: 1}
  label_smoothing: 0.1
mixes: {semantics: fraction-of-pools, controls: true, real_pool_size: 400}
worth: {enabled: true, real_fractions: [0.1, 1.0], synthetic_fractions: [0.5, 1.0]}
seeds: 2
quality: {enabled: true, max_images: 100, k: 2}
num_threads: 1
"""


def _cfg(tmp_path: Path, extra: list[str] | None = None) -> StudyConfig:
    (tmp_path / "trust.yaml").write_text(STUDY)
    return load_config(StudyConfig, tmp_path / "trust.yaml", extra)


@pytest.fixture(scope="module")
def twice(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The same study twice: as written, and with the test set poisoned. Everything but the
    test scores must agree; two CLI processes are compared in test_promises_cli.py."""
    import synthmix.experiment.study as study_mod

    root = tmp_path_factory.mktemp("trust")
    cfg = _cfg(root)
    a, poisoned = root / "a", root / "poisoned"
    run_study(cfg, a, progress=False)
    real_prepare = study_mod.prepare_data

    def poison(data_cfg):  # random labels and noise images: any use of them shows
        data = real_prepare(data_cfg)
        x, y = data.test
        g = torch.Generator().manual_seed(99)
        data.test = (torch.rand(x.shape, generator=g) * 2 - 1, torch.randint(0, 10, y.shape,
                                                                             generator=g))
        return data

    mp = pytest.MonkeyPatch()
    mp.setattr(study_mod, "prepare_data", poison)
    try:
        run_study(cfg, poisoned, progress=False)
    finally:
        mp.undo()
    return a, poisoned


def _cells(study: Path) -> dict[str, dict]:
    return {str(p.parent.relative_to(study)): json.loads(p.read_text())
            for p in sorted(study.rglob("test_metrics.json"))}


@pytest.mark.slow
def test_the_same_study_twice_gives_the_same_numbers(twice) -> None:
    a, b = twice  # the second run's test set is poisoned: only its test scores may differ
    cells_a, cells_b = _cells(a), _cells(b)
    assert len(cells_a) >= 20 and cells_a.keys() == cells_b.keys()
    for k in cells_a:
        assert cells_a[k]["best_val_loss"] == cells_b[k]["best_val_loss"], k
        assert cells_a[k]["steps"] == cells_b[k]["steps"], k
    for name in ("model.safetensors", "ema.safetensors"):
        assert ((a / "ddpm/checkpoints/last" / name).read_bytes()
                == (b / "ddpm/checkpoints/last" / name).read_bytes())


@pytest.mark.slow
def test_the_test_set_steers_nothing(twice) -> None:
    a, poisoned = twice
    tuning = [json.loads((s / "tuning" / "tuning.json").read_text()) for s in (a, poisoned)]
    assert tuning[0]["chosen"] == tuning[1]["chosen"]
    assert [c["val_macro_f1"] for c in tuning[0]["candidates"]] == [
        c["val_macro_f1"] for c in tuning[1]["candidates"]]
    cells_a, cells_p = _cells(a), _cells(poisoned)
    # Every choice made during training (early stopping, best epoch) is the same ...
    for k in cells_a:
        assert cells_a[k]["best_epoch"] == cells_p[k]["best_epoch"], k
        assert cells_a[k]["best_val_loss"] == cells_p[k]["best_val_loss"], k
    # ... while the poisoned test set, scored once at the end, gives other (chance) scores.
    assert any(cells_a[k]["macro_f1"] != cells_p[k]["macro_f1"] for k in cells_a)
    assert not list((a / "tuning").rglob("test_metrics.json"))


@pytest.mark.slow
def test_error_bars_cover_different_synthetic_sets_and_real_subsets(twice) -> None:
    a, _ = twice
    shas = []
    for j in (0, 1):
        manifest = json.loads((a / "synthetic" / f"set-{j}" / "manifest.json").read_text())
        shas.append([s["sha256"] for s in manifest["shards"]])
        assert manifest["provenance"]["base_seed"] == j
    assert shas[0] != shas[1]
    mixes = [json.loads((a / "classifiers" / "exp-3" / f"seed-{k}" / "mix.json").read_text())
             for k in (0, 1)]
    assert mixes[0]["mix_seed"] != mixes[1]["mix_seed"]
    assert mixes[0]["synthetic_set"] != mixes[1]["synthetic_set"]
    assert mixes[0]["classifier_seed"] != mixes[1]["classifier_seed"]
    results = json.loads((a / "results.json").read_text())
    text = results["variance"]["text"]
    assert "n=2 repeats" in text and "the synthetic set (2 sets" in text
    assert "the DDPM (one trained DDPM)" in text  # what the ± does not cover, said too
    exp3 = next(r for r in results["table"] if r["name"] == "Exp 3")
    assert exp3["vs_reference"]["reference"] == "Exp 1" and exp3["vs_reference"]["n"] == 2
    assert exp3["vs_reference"]["ci_low"] <= exp3["vs_reference"]["mean"]
    assert exp3["vs_control"]["control"] == "real 50% only"
    report = (a / "report.md").read_text()
    for words in ("The answer", "Paired differences", "real 50% only", "worth",
                  "Chosen on validation images"):
        assert words in report, words


@pytest.mark.slow
def test_memorisation_is_measured_against_the_ddpm_training_images(twice) -> None:
    a, _ = twice
    memo = json.loads((a / "quality" / "quality.json").read_text())["memorisation"]
    splits = json.loads((a / "splits.json").read_text())
    assert memo["reference"] == "the DDPM's training images"
    assert memo["n_reference"] == len(splits["diffusion_train"])


@pytest.mark.slow
def test_worth_cells_reuse_table_cells_of_equal_content(twice) -> None:
    a, _ = twice
    plan = json.loads((a / "plan.json").read_text())
    worth_full = [c for c in plan["cells"] if c["group"] == "worth" and c["n_synthetic"] == 0
                  and c["n_real"] == plan["n_real_pool"]]
    assert worth_full and all(c["run_dir"].startswith("classifiers/exp-1/") for c in worth_full)
    results = json.loads((a / "results.json").read_text())
    assert results["worth"]["answer"] and results["worth"]["synthetic_equivalents"]


def test_an_impossible_plan_is_refused_before_any_training(tmp_path: Path) -> None:
    cfg = _cfg(tmp_path, ["mixes.semantics=fixed-total", "mixes.total=900",
                          "worth.real_fractions=[0.0001, 0.01, 1.0]"])
    with pytest.raises(ConfigError) as err:
        run_study(cfg, tmp_path / "s", progress=False)
    text = str(err.value)
    assert "fixed-total 900 needs" in text and "mixes.total to at most" in text
    assert "4 real images are fewer than one per class" in text
    assert "real fraction 0.0001 of a pool of 400 gives no image" in text
    assert not (tmp_path / "s" / "ddpm").exists()


def test_fixed_total_defaults_to_what_every_mix_can_afford(tmp_path: Path) -> None:
    from synthmix.experiment.plan import plan_study

    cfg = _cfg(tmp_path, ["mixes.semantics=fixed-total", "worth.enabled=false"])
    # The study's own MNIST sizes: 27,000 real, 26,880 synthetic.
    plan = plan_study(cfg, 27000, 3000, 26880, 10)
    assert plan.total == 26880
    assert {c.n_real + c.n_synthetic for c in plan.group("table")} == {26880}


@pytest.mark.slow
def test_torchrun_shares_the_cells_between_two_ranks(twice, tmp_path: Path) -> None:
    """The same study as `twice` on 2 gloo ranks: every cell equals the one-process study's."""
    (tmp_path / "trust.yaml").write_text(STUDY)
    script = tmp_path / "run.py"
    script.write_text(
        f"import sys; sys.path[:0] = [{str(SRC)!r}]\n"
        "import torch; torch.set_num_threads(1)\n"
        "from synthmix.cli import main\n"
        f"sys.exit(main(['experiment', {str(tmp_path / 'trust.yaml')!r}, '--study-dir', "
        f"{str(tmp_path / 'out')!r}, '--no-progress']))\n")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone",
                           "--nproc_per_node=2", str(script)], capture_output=True, text=True,
                          timeout=300, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = tmp_path / "out"
    ranks = {json.loads(p.read_text()).get("rank")
             for p in (out / "classifiers").rglob("run.json")}
    assert ranks == {0, 1}
    results = json.loads((out / "results.json").read_text())
    assert len(results["table"]) == 5 and all(r["macro_f1"]["n"] == 2 for r in results["table"])
    assert json.loads((out / "ddpm" / "train_summary.json").read_text())["world_size"] == 2
    assert json.loads((out / "run.json").read_text())["world_size"] == 2
    # DDP sums the gradients in another order than one process: the DDPM equals the
    # one-process DDPM up to float rounding, which changes no pixel of the tiny study's sets,
    # so tuning, sets and every cell are the one-process study's.
    one = twice[0]
    for j in (0, 1):
        sets = [read_synthetic_set(s / "synthetic" / f"set-{j}") for s in (one, out)]
        assert np.array_equal(sets[0].images, sets[1].images)
        assert {s.manifest["environment"]["precision"] for s in sets} == {"fp32"}  # as asked
    tunings = [json.loads((s / "tuning" / "tuning.json").read_text()) for s in (one, out)]
    assert [c["val_macro_f1"] for c in tunings[0]["candidates"]] == [
        c["val_macro_f1"] for c in tunings[1]["candidates"]]
    cells_one, cells_two = _cells(one), _cells(out)
    assert len(cells_one) >= 20 and cells_one.keys() == cells_two.keys()
    for k in cells_one:
        for key in ("macro_f1", "best_val_loss", "best_epoch", "steps"):
            assert cells_one[k][key] == cells_two[k][key], (k, key)

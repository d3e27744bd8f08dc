"""benchmarks/sampler_quality.py: config parsing, the cheapest-config rule, and a tiny end-to-end
run (a DDPM trained for 2 steps on the 8x8 digits) that must share x_T and resume for free."""

import json
from pathlib import Path

import numpy as np
import pytest
from benchmark_module import benchmark_module
from test_study import macro_f1_of

from synthmix.cli import main as synthmix_main
from synthmix.device import cpu_native_bf16
from synthmix.errors import ConfigError
from synthmix.metrics.speckle import speckle_summary
from synthmix.synthetic.format import read_synthetic_set

ROOT = Path(__file__).resolve().parents[1]
T = 20
TINY_DDPM = [
    "--set", "data.dataset=digits", "--set", "data.image_size=8", "--set", "unet.preset=tiny",
    "--set", f"schedule.T={T}", "--set", "train.max_steps=2", "--set", "train.steps_per_epoch=2",
    "--set", "train.batch_size=32", "--set", "sample.steps=2", "--set", "sample.grid_per_class=1",
    "--set", "num_threads=1",
]


@pytest.fixture(scope="module")
def sq():
    """The benchmark script as a module."""
    yield from benchmark_module("sampler_quality")


def test_parse_configs(sq):
    specs = sq.parse_configs(["ancestral", "ddim:3", "dpmpp:7"], T)
    assert [(s.sampler, s.steps, s.label) for s in specs] == [
        ("ancestral", T, f"ancestral-{T}"), ("ddim", 3, "ddim-3"), ("dpmpp", 7, "dpmpp-7")]
    assert sq.parse_configs([f"ancestral:{T}"], T)[0].steps == T
    for bad in (["ancestral:400"], ["euler:10"], ["ddim"], ["ddim:x"], ["ddim:0"],
                [f"ddim:{T + 1}"], ["ddim:5", "ddim:5"], []):
        with pytest.raises(ConfigError):
            sq.parse_configs(bad, T)


def _row(label, nfe, f1):
    return {"label": label, "nfe_per_image": nfe, "val_macro_f1": {"mean": f1, "std": 0.0, "n": 1}}


def test_cheapest_within_one_point(sq):
    ref = _row("ancestral-400", 800, 0.900)
    rows = [ref, _row("ddim-10", 20, 0.8899), _row("dpmpp-10", 20, 0.8901),
            _row("ddim-25", 50, 0.95), _row("dpmpp-5", 10, 0.70)]
    assert sq.cheapest_within(rows, ref)["label"] == "dpmpp-10"  # 0.8899 misses by 1e-4
    rows.append(_row("ddim-10b", 20, 0.93))  # same cost, higher score wins the tie
    assert sq.cheapest_within(rows, ref)["label"] == "ddim-10b"
    assert sq.cheapest_within([ref, _row("ddim-10", 20, 0.5)], ref) is ref
    assert sq.cheapest_within([_row("ddim-10", 20, 0.5)], ref) is None


@pytest.mark.slow
def test_tiny_end_to_end_shares_noise_scores_on_validation_and_resumes(sq, tmp_path,
                                                                     forbid_rework):
    run = tmp_path / "ddpm"
    cfg = str(ROOT / "configs" / "ddpm" / "mnist-cpu.yaml")
    assert synthmix_main(["train-ddpm", cfg, *TINY_DDPM, "--run-dir", str(run),
                          "--no-progress"]) == 0
    out = tmp_path / "sq"
    kwargs = dict(real="digits", configs=["ancestral", "ddim:3"], thresholding=["none", "clip"],
                  n_per_class=5, seeds=1, max_epochs=1, patience=1, batch_size=50,
                  progress=False)
    result = sq.run_sampler_quality(run, out, **kwargs)

    labels = [r["label"] for r in result["configs"]]
    assert labels == ["ancestral-T w=3", "ancestral-T w=3 clip", "ddim-3 w=3", "ddim-3 w=3 clip"]
    # Guided steps cost two network evaluations each.
    assert [r["nfe_per_image"] for r in result["configs"]] == [2 * T, 2 * T, 6, 6]
    assert result["reference"] == "ancestral-T w=3"
    assert result["precision"] == ("bf16" if cpu_native_bf16() else "fp32")  # auto on the CPU
    best = result["cheapest_within_tolerance"]
    assert best is not None and best["nfe_ratio"] == pytest.approx(2 * T / best["nfe_per_image"])
    sets = [read_synthetic_set(r["set_dir"]) for r in result["configs"]]
    for s in sets[1:]:  # one x_T per image across samplers: same labels and seeds
        assert np.array_equal(s.labels, sets[0].labels) and np.array_equal(s.seeds, sets[0].seeds)
    # ...but the samplers differ (ancestral adds fresh noise z every step; DDIM does not).
    assert not np.array_equal(sets[0].images, sets[2].images)
    for r, s in zip(result["configs"], sets):
        assert r["sampling"]["images"] == 50 and r["sampling"]["seconds"] > 0
        # The score is its classifier's, on the validation confusion matrix it saved.
        saved = json.loads((Path(r["set_dir"]).parent / "seed-0" / "validation_metrics.json")
                           .read_text())
        assert saved["split"] == "validation" and r["val_macro_f1"]["n"] == 1
        assert r["val_macro_f1"]["mean"] == pytest.approx(
            macro_f1_of(saved["confusion_matrix"]), abs=1e-12)
        assert r["isolated_pixels_per_image"] == speckle_summary(s.images)[
            "isolated_pixels_per_image"]
        assert r["fid_vs_validation"] > 0  # 50 samples of a 2-step DDPM are not the data
    # Scored on validation: no classifier run wrote test metrics.
    assert not list(out.rglob("test_metrics.json"))
    assert len(list(out.rglob("validation_metrics.json"))) == 5  # 4 sets + the real baseline
    assert (out / "sampler_quality.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    on_disk = json.loads((out / "sampler_quality.json").read_text())
    assert on_disk["configs"][0]["val_macro_f1"] == result["configs"][0]["val_macro_f1"]
    table = sq.markdown_table(result)
    assert table.count("\n| ") == 6  # header, 4 sets, the real baseline
    assert "cheapest within 1 macro-F1 point of ancestral-T w=3" in table

    # A re-run samples nothing and trains nothing (either would raise) and says the same.
    forbid_rework()
    again = sq.run_sampler_quality(run, out, **kwargs)
    assert [r["val_macro_f1"] for r in again["configs"]] == [
        r["val_macro_f1"] for r in result["configs"]]


def test_cas_judge_recipe_can_fix_its_epoch_length():
    from synthmix.errors import ConfigError
    from synthmix.synthetic.cas import cas_classifier_config

    assert cas_classifier_config("tiny", 15, 3).train.steps_per_epoch is None  # one pass
    assert cas_classifier_config("tiny", 15, 3, steps_per_epoch=30).train.steps_per_epoch == 30
    for bad in ({"max_epochs": 0}, {"steps_per_epoch": 0}):
        kwargs = {"preset": "tiny", "max_epochs": 15, "patience": 3, **bad}
        with pytest.raises(ConfigError, match="must be >= 1"):
            cas_classifier_config(**kwargs)

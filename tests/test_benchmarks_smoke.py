"""The benchmark scripts cannot rot unseen: report.py reprints stored results exactly as they were
published, and noise_speed.py and classifier_recipe.py run end to end at tiny size."""

from __future__ import annotations

import contextlib
import importlib.util
import io
import json
import statistics
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

from synthmix.synthetic.format import write_synthetic_set

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
LOAD_LIMIT = 1.5  # bench.py's, which printed the stored tables (bench.py imports diffusers)
# Results whose .md is report.py's output for the .json beside it (bench.py's own last line,
# where it wrote the JSON, aside). h200-bench-paper-train.md predates today's headline table.
GOLDEN = ("cpu-2core-eager", "cpu-2core-eager-2026-12-01", "cpu-2core-compiled-sampling")


def _script(name: str) -> ModuleType:
    """A benchmark script as a module (benchmarks/ is not a package)."""
    path = ROOT / "benchmarks" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"bench_{name}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("name", GOLDEN)
def test_report_reprints_a_stored_result_exactly(name: str) -> None:
    report = _script("report")
    result = json.loads((RESULTS / f"{name}.json").read_text(encoding="utf-8"))
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        report.print_report(result, LOAD_LIMIT)
    published = (RESULTS / f"{name}.md").read_text(encoding="utf-8")
    published = published.split("\n\nwrote ")[0].rstrip("\n") + "\n"
    assert out.getvalue() == published


def test_noise_speed_runs_tiny(tmp_path: Path) -> None:
    noise_speed = _script("noise_speed")
    out = tmp_path / "noise.json"
    assert noise_speed.main(["--preset", "tiny", "--shape", "1", "8", "8", "--batch", "4",
                             "--steps", "2", "--T", "20", "--repeats", "1", "--threads", "1",
                             "--out", str(out)]) == 0
    result = json.loads(out.read_text())
    assert (result["preset"], result["shape"], result["batch"]) == ("tiny", [1, 8, 8], 4)
    assert (result["timed_steps"], result["T"], result["threads"]) == (2, 20, 1)
    rules = result["rules"]
    assert sorted(rules) == ["1", "2"]
    for r in rules.values():
        # images/s and the share of noise follow from the seconds (rounded to 3 decimals).
        assert r["images_per_second"] == pytest.approx(4 / r["seconds_per_batch_at_T"], rel=0.05)
        assert r["noise_share"] == pytest.approx(
            r["noise_seconds_per_batch_at_T"] / r["seconds_per_batch_at_T"], abs=0.01)
    assert result["speedup_rule2_over_rule1"] == pytest.approx(
        rules["2"]["images_per_second"] / rules["1"]["images_per_second"], abs=0.006)


@pytest.mark.slow
def test_classifier_recipe_runs_tiny(tmp_path: Path) -> None:
    recipe = tmp_path / "tiny.yaml"
    recipe.write_text("model: {preset: tiny}\n"
                      "train: {max_epochs: 1, steps_per_epoch: 2, batch_size: 16, ema_decay: null,"
                      " amp: 'off'}\nnum_threads: 1\n")
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(50, 8, 8, 1), dtype=np.uint8)  # 5 per digit
    labels = np.repeat(np.arange(10), 5)
    synthetic = write_synthetic_set(tmp_path / "set", images, labels, np.arange(50) + 7,
                                    [str(c) for c in range(10)], {}, shard_size=50)
    out = tmp_path / "out"
    script = _script("classifier_recipe")
    assert script.main(["--real", "digits", "--image-size", "8", "--real-pool", "60",
                        "--synthetic", str(synthetic), "--synthetic-per-class", "2", "4",
                        "--recipe", f"tiny={recipe}", "--seeds", "2", "--out", str(out)]) == 0
    record = json.loads((out / "classifier_recipe.json").read_text())
    rows = record["rows"]
    # 60 real images; n per class of the set, less the 10% held out for early stopping.
    assert [(r["trained_on"], r["n_train"]) for r in rows] == [
        ("real", 60), ("synthetic-2", 18), ("synthetic-4", 36)]
    assert record["scored_on"] == "the classifier half's validation split"
    for row in rows:
        runs = [json.loads((out / "tiny" / row["trained_on"] / f"seed-{k}" /
                            "validation_metrics.json").read_text()) for k in range(2)]
        f1 = [run["macro_f1"] for run in runs]
        assert row["val_macro_f1"]["n"] == 2
        assert row["val_macro_f1"]["mean"] == pytest.approx(statistics.mean(f1), abs=1e-9)
        assert row["epochs"] == [1, 1]
    assert not list(out.rglob("test_metrics.json"))  # the test split is never scored

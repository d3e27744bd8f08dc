"""benchmarks/scenario_compare.py on a published study and a shifted copy of it: which cells
match, Welch's interval per row, the side-by-side answers, the figure and clear errors."""

import copy
import json
from pathlib import Path

import pytest
from benchmark_module import benchmark_module
from scipy import stats as scipy_stats

PUBLISHED = Path(__file__).resolve().parents[1] / "benchmarks" / "results"
MNIST = PUBLISHED / "cpu-2core-study-mnist.json"
FASHION = PUBLISHED / "cpu-2core-study-fashion-mnist.json"


@pytest.fixture(scope="module")
def compare():
    yield from benchmark_module("scenario_compare")


def _shifted(results, by):
    """A copy whose every macro-F1 is `by` higher, one table cell and one curve point fewer."""
    out = copy.deepcopy(results)
    for cell in out["table"]:
        for run in cell["runs"]:
            run["macro_f1"] += by
    out["table"] = out["table"][:-1]
    out["worth"]["synthetic_only"] = out["worth"]["synthetic_only"][1:]
    for point in out["worth"]["synthetic_only"]:
        point["runs"] = {k: v + by for k, v in point["runs"].items()}
    out["worth"]["answer"] = "shifted"
    return out


def test_compares_matched_cells_with_welch_intervals(compare, tmp_path):
    study = json.loads(MNIST.read_text())
    (tmp_path / "shifted").mkdir()
    (tmp_path / "shifted" / "results.json").write_text(json.dumps(_shifted(study, 0.01)))
    out = tmp_path / "out"
    assert compare.main(["--a", f"shifted={tmp_path / 'shifted'}", "--b", f"split={MNIST}",
                         "--out", str(out)]) == 0
    result = json.loads((out / compare.RESULT_JSON).read_text())
    kinds = [r["kind"] for r in result["rows"]]
    n_cells = len(study["table"]) - 1
    n_points = len(study["worth"]["synthetic_only"]) - 1
    assert kinds == ["table"] * n_cells + ["synthetic-only curve"] * n_points
    for row, cell in zip(result["rows"][:n_cells], study["table"], strict=False):
        b = [r["macro_f1"] for r in cell["runs"]]
        a = [v + 0.01 for v in b]
        want = scipy_stats.ttest_ind(a, b, equal_var=False).confidence_interval(0.95)
        d = row["a_minus_b"]
        assert d["mean"] == pytest.approx(0.01)
        assert (d["ci_low"], d["ci_high"]) == pytest.approx((want.low, want.high))
    assert result["a"]["answer"] == "shifted" and result["b"]["answer"] == study["worth"]["answer"]
    md = (out / compare.RESULT_MD).read_text()
    assert "| Exp 1 / Exp 1 (real 100%, synthetic 0%) | 0.997 ± 0.001 (n=3) |" in md
    assert "shifted − split, 95% Welch interval" in md
    assert (out / compare.RESULT_PNG).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_clear_errors(compare, tmp_path, capsys):
    out = str(tmp_path / "out")
    assert compare.main(["--a", f"m={MNIST}", "--b", f"f={FASHION}", "--out", out]) == 2
    assert "compare studies of one data set" in capsys.readouterr().err
    assert compare.main(["--a", str(MNIST), "--b", f"f={FASHION}", "--out", out]) == 2
    assert "give LABEL=PATH" in capsys.readouterr().err
    assert compare.main(["--a", f"m={tmp_path / 'nope.json'}", "--b", f"f={MNIST}",
                         "--out", out]) == 2
    assert "nope.json" in capsys.readouterr().err

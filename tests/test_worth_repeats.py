"""benchmarks/worth_repeats.py --measured: headline interval widths from a study's own repeats,
on curves whose per-repeat inversions are known."""

import math
from collections.abc import Iterator
from types import ModuleType

import pytest
from benchmark_module import benchmark_module

from synthmix.experiment.worth import reanalyse

SIZES = (100, 400, 1600, 6400)


def f1(n: float) -> float:
    """A real-only learning curve linear in log size (the same for every repeat)."""
    return 0.6 + 0.05 * math.log(n)


def point(size: int, scores: list[float], key: str = "train") -> dict:
    return {"size": size, key: size, "runs": {str(k): s for k, s in enumerate(scores)}}


@pytest.fixture(scope="module")
def wr() -> Iterator[ModuleType]:
    yield from benchmark_module("worth_repeats")


@pytest.fixture
def results() -> dict:
    # Repeats 0 and 1 invert to 400 real images, repeat 2 to 1,600, for both headlines.
    scores = [f1(400), f1(400), f1(1600)]
    return {"config": {"name": "known"}, "worth": {
        "real_only": [point(n, [f1(n)] * 3) for n in SIZES],
        "real_plus_synthetic": [point(100, scores)],
        "synthetic_only": [point(7000, scores, "trained")],
        "n_synthetic_pool": 7000}}


def test_every_subset_of_k_repeats_is_reanalysed_by_the_studys_estimator(wr, results):
    m = wr.measured(results)
    assert m["repeats"] == [0, 1, 2] and sorted(m["by_k"]) == [2, 3]
    # k = n: the study's own interval. mean of log(400, 400, 1600) = log(635), t(2) = 4.30:
    # the lower end 87 lies below the smallest size tried, so it is a bound.
    (whole,) = m["by_k"][3]["subsets"]
    assert whole == {"repeats": [0, 1, 2], **wr.measured_headlines(reanalyse(results["worth"]))}
    for h in wr.HEADLINES:
        assert whole[h]["low_bound"] and whole[h]["ratio"] is None
        assert whole[h]["text"].startswith("fewer than 100 to ")
    # k = 2: {0, 1} agree exactly (ratio 1, resolved); {0, 2} and {1, 2} differ 4x with t(1) =
    # 12.7: both ends fall outside 100-6,400.
    by_subset = {tuple(s["repeats"]): s for s in m["by_k"][2]["subsets"]}
    assert sorted(by_subset) == [(0, 1), (0, 2), (1, 2)]
    full = by_subset[(0, 1)]["real_equivalent_of_full_set"]
    assert full["ratio"] == pytest.approx(1.0) and full["resolved"]
    assert full["point"] == "400"
    for h in wr.HEADLINES:
        s = m["by_k"][2]["summary"][h]
        assert (s["subsets"], s["resolved"], s["bounded"]) == (3, 1, 2)
        assert s["median_ratio"] is None and s["largest_ratio"] is None
        assert s["smallest_ratio"] == pytest.approx(1.0)
        assert m["by_k"][3]["summary"][h]["resolved"] == 0


def test_the_measured_record_is_written_with_its_source(wr, results, tmp_path):
    import json

    src = tmp_path / "results.json"
    src.write_text(json.dumps(results))
    out = tmp_path / "measured.json"
    wr.main_measured(src, out)
    record = json.loads(out.read_text())
    assert record["what"].startswith("MEASURED") and record["study"] == "known"
    assert record["source"] == str(src) and sorted(record["by_k"]) == ["2", "3"]

"""Classification metrics against sklearn and hand-computed values; mean +- std over seeds."""

from __future__ import annotations

import math

import numpy as np
import pytest
from sklearn.metrics import f1_score

from synthmix.metrics import classification_metrics, format_mean_std, mean_std


def test_hand_computed_three_class_example() -> None:
    # class 0: TP 1, FP 1, FN 1 -> F1 1/2; class 1: TP 2, FP 1, FN 0 -> F1 4/5;
    # class 2: TP 1, FP 0, FN 1 -> F1 2/3.
    m = classification_metrics([0, 0, 1, 1, 2, 2], [0, 1, 1, 1, 2, 0], ["a", "b", "c"])
    assert m["per_class_f1"] == pytest.approx({"a": 0.5, "b": 0.8, "c": 2 / 3})
    assert m["macro_f1"] == pytest.approx((0.5 + 0.8 + 2 / 3) / 3)
    assert m["accuracy"] == pytest.approx(4 / 6)
    assert m["micro_f1"] == pytest.approx(4 / 6)
    assert m["confusion_matrix"] == [[1, 1, 0], [0, 2, 0], [1, 0, 1]]
    assert m["n"] == 6


def test_matches_sklearn_on_random_predictions() -> None:
    rng = np.random.default_rng(0)
    y_true = rng.integers(0, 5, 400)
    y_pred = np.where(rng.random(400) < 0.6, y_true, rng.integers(0, 5, 400))
    m = classification_metrics(y_true, y_pred, [str(i) for i in range(5)])
    assert m["macro_f1"] == pytest.approx(f1_score(y_true, y_pred, average="macro"))
    assert m["accuracy"] == pytest.approx(float(np.mean(y_true == y_pred)))
    assert list(m["per_class_f1"].values()) == pytest.approx(
        list(f1_score(y_true, y_pred, average=None))
    )
    assert np.array(m["confusion_matrix"]).sum() == 400
    # Macro-F1 differs from the accuracy-like micro-F1 the study reported.
    assert m["micro_f1"] == pytest.approx(m["accuracy"])


def test_absent_class_appears_with_f1_zero() -> None:
    m = classification_metrics([0, 1, 2, 0], [0, 1, 2, 1], ["a", "b", "c", "d"])
    assert m["per_class_f1"]["d"] == 0.0
    assert len(m["confusion_matrix"]) == 4 and all(len(r) == 4 for r in m["confusion_matrix"])
    assert m["macro_f1"] == pytest.approx((2 / 3 + 2 / 3 + 1.0 + 0.0) / 4)


def test_rejects_bad_labels() -> None:
    with pytest.raises(ValueError, match="outside"):
        classification_metrics([0, 5], [0, 1], ["a", "b"])
    with pytest.raises(ValueError, match="labels"):
        classification_metrics([0, 1, 1], [0, 1], ["a", "b"])


def test_mean_std_uses_sample_std() -> None:
    assert mean_std([0.5]) == {"mean": 0.5, "std": 0.0, "n": 1}
    s = mean_std([1.0, 2.0, 3.0, 4.0])
    assert s["mean"] == pytest.approx(2.5) and s["n"] == 4
    assert s["std"] == pytest.approx(math.sqrt(5 / 3))
    assert s["std"] == pytest.approx(float(np.std([1, 2, 3, 4], ddof=1)))
    with pytest.raises(ValueError):
        mean_std([])


def test_format_mean_std() -> None:
    assert format_mean_std({"mean": 0.9123, "std": 0.0041, "n": 3}) == "0.912 ± 0.004 (n=3)"
    assert format_mean_std(mean_std([0.5]), digits=2) == "0.50 ± 0.00 (n=1)"

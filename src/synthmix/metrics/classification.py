"""Test-set metrics of a classifier, and mean +- std over seeds.

Macro-F1 (the unweighted mean of per-class F1) is the headline number. The study's code
computed micro-F1 averaged over batches, which for single-label classification is about the
accuracy; both micro-F1 and accuracy are reported here too, computed over the whole set.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from sklearn.metrics import accuracy_score, confusion_matrix, f1_score


def classification_metrics(
    y_true: Sequence[int] | np.ndarray,
    y_pred: Sequence[int] | np.ndarray,
    class_names: Sequence[str],
) -> dict[str, Any]:
    """Macro-/micro-F1, accuracy, per-class F1 and the confusion matrix over all classes.

    Every class in `class_names` appears (labels 0..K-1), even if absent from both arrays;
    F1 of a class with no true and no predicted samples is 0 (zero_division=0). Note that
    sklearn then still averages it into macro-F1, so a class missing from a test set lowers it.
    Confusion matrix rows are true classes, columns predicted classes.
    """
    y_true = np.asarray(y_true).reshape(-1)
    y_pred = np.asarray(y_pred).reshape(-1)
    if y_true.shape != y_pred.shape:
        raise ValueError(f"y_true has {y_true.size} labels but y_pred has {y_pred.size}")
    labels = list(range(len(class_names)))
    outside = np.setdiff1d(np.union1d(y_true, y_pred), labels)
    if outside.size:
        raise ValueError(f"labels {outside.tolist()} outside 0..{len(class_names) - 1}")
    per_class = f1_score(y_true, y_pred, labels=labels, average=None, zero_division=0)
    n = int(y_true.size)
    return {
        "macro_f1": float(
            f1_score(y_true, y_pred, labels=labels, average="macro", zero_division=0)
        ),
        "micro_f1": float(
            f1_score(y_true, y_pred, labels=labels, average="micro", zero_division=0)
        ),
        "accuracy": float(accuracy_score(y_true, y_pred)) if n else 0.0,
        "per_class_f1": {name: float(f) for name, f in zip(class_names, per_class, strict=True)},
        "confusion_matrix": confusion_matrix(y_true, y_pred, labels=labels).astype(int).tolist(),
        "n": n,
    }


def mean_std(values: Sequence[float]) -> dict[str, float | int]:
    """Mean and sample standard deviation (ddof=1; 0.0 for one value) of per-seed results."""
    data = [float(v) for v in values]
    if not data:
        raise ValueError("mean_std needs at least one value")
    n = len(data)
    mean = math.fsum(data) / n
    std = math.sqrt(math.fsum((v - mean) ** 2 for v in data) / (n - 1)) if n > 1 else 0.0
    return {"mean": mean, "std": std, "n": n}


def format_mean_std(stats: dict[str, Any], digits: int = 3) -> str:
    """'0.912 ± 0.004 (n=3)' from the output of `mean_std`."""
    return f"{stats['mean']:.{digits}f} ± {stats['std']:.{digits}f} (n={stats['n']})"

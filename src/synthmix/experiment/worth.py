"""How many real images is the synthetic data worth? Learning curves and what they say.

From the worth cells of a study (the classifier recipe trained on nested real subsets of
growing size, each with and without the synthetic set, and on synthetic subsets alone; every
point repeated), this module computes:

- the real-equivalent size of a synthetic set: the number of real images whose real-only
  score equals the synthetic-only score, read off the real-only curve in log-size after an
  isotonic (non-decreasing) fit; a score above the whole curve or below it is reported as a
  bound ("more than all N real images tried", "less than the smallest subset tried"), never
  extrapolated;
- the augmentation gain at each real size n: the real-only size that matches "n real +
  synthetic", divided by n ("like having 3.2x more real data");
- the paired difference (real + synthetic) - (real only) at each n, with a 95% t interval over
  repeats, which says where adding synthetic data helps, makes no clear difference, or hurts.

Intervals come from the repeats: each repeat has its own classifier seed, real subsets and
synthetic set (see the report's variance sources), and the interval of a real-equivalent size
is the t interval of the per-repeat log sizes.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from sklearn.isotonic import IsotonicRegression

from synthmix.experiment.plan import Cell
from synthmix.experiment.stats import paired_difference, t_interval
from synthmix.metrics.classification import mean_std

Curve = dict[int, dict[int, float]]  # size -> {repeat: macro-F1}


def real_equivalent(sizes: Sequence[int], scores: Sequence[float], target: float
                    ) -> dict[str, Any]:
    """The real-only size whose (isotonic, log-size interpolated) score equals `target`.

    Returns {"value": size or None, "bound": None | "above" | "below", "text": ...}: "above"
    when `target` exceeds the whole curve (worth more than the largest size), "below" when it
    is under the smallest size's score (worth less than the smallest size)."""
    order = np.argsort(sizes)
    n = np.asarray(sizes, dtype=float)[order]
    if len(n) == 0 or n[0] <= 0:
        raise ValueError("real_equivalent needs positive real sizes")
    fit = IsotonicRegression(increasing=True).fit_transform(np.log(n),
                                                           np.asarray(scores, float)[order])
    if target > fit[-1] + 1e-12:
        return {"value": None, "bound": "above", "limit": int(n[-1]),
                "text": f"more than {int(n[-1]):,} (all real images tried)"}
    if target < fit[0] - 1e-12:
        return {"value": None, "bound": "below", "limit": int(n[0]),
                "text": f"fewer than {int(n[0]):,} (the smallest real subset tried)"}
    i = int(np.argmax(fit >= target - 1e-12))  # the first size that reaches the target
    if i == 0 or fit[i] == fit[i - 1]:
        value = float(n[i])
    else:  # linear in log n between the two sizes around the target
        frac = (target - fit[i - 1]) / (fit[i] - fit[i - 1])
        value = float(math.exp(math.log(n[i - 1]) + frac * (math.log(n[i]) - math.log(n[i - 1]))))
    return {"value": value, "bound": None, "limit": None, "text": f"{value:,.0f}"}


def equivalent_over_repeats(real_curve: Curve, target: dict[int, float]) -> dict[str, Any]:
    """The real-equivalent size of `target` scores ({repeat: F1}): the estimate from the mean
    curve and mean score, and the 95% interval of the per-repeat values (in log size)."""
    sizes = sorted(real_curve)
    means = [float(np.mean(list(real_curve[s].values()))) for s in sizes]
    estimate = real_equivalent(sizes, means, float(np.mean(list(target.values()))))
    per_repeat = {}
    for k, score in sorted(target.items()):
        pts = [(s, real_curve[s][k]) for s in sizes if k in real_curve[s]]
        per_repeat[k] = real_equivalent([p[0] for p in pts], [p[1] for p in pts], score)
    values = [r["value"] for r in per_repeat.values()]
    out: dict[str, Any] = {"estimate": estimate, "per_repeat": per_repeat,
                           "n": len(per_repeat), "interval": None}
    if len(values) >= 2 and all(v is not None for v in values):
        logs = t_interval([math.log(v) for v in values])
        out["interval"] = [math.exp(logs["ci_low"]), math.exp(logs["ci_high"])]
    elif any(r["bound"] for r in per_repeat.values()):
        out["note"] = "some repeats lie outside the real-only curve: no interval"
    return out


def _curve(cells: Sequence[Cell], metrics: dict[str, dict[str, Any]], run_dir_of: Any,
           key: str) -> Curve:
    curve: Curve = {}
    for c in cells:
        size = c.n_real if key == "real" else c.n_synthetic
        curve.setdefault(size, {})[c.repeat] = float(metrics[run_dir_of(c)]["macro_f1"])
    return dict(sorted(curve.items()))


def _points(curve: Curve) -> list[dict[str, Any]]:
    return [{"size": s, "macro_f1": mean_std(list(v.values())), "runs": v}
            for s, v in curve.items()]


def worth_analysis(cells: Sequence[Cell], metrics: dict[str, dict[str, Any]], run_dir_of: Any,
                   n_synthetic_pool: int) -> dict[str, Any]:
    """Learning curves, real-equivalent sizes, augmentation gains and paired differences."""
    real_only = [c for c in cells if c.n_synthetic == 0]
    with_syn = [c for c in cells if c.n_real > 0 and c.n_synthetic > 0]
    syn_only = [c for c in cells if c.n_real == 0]
    real = _curve(real_only, metrics, run_dir_of, "real")
    plus = _curve(with_syn, metrics, run_dir_of, "real")
    syn = _curve(syn_only, metrics, run_dir_of, "synthetic")
    out: dict[str, Any] = {
        "real_only": _points(real), "real_plus_synthetic": _points(plus),
        "synthetic_only": _points(syn), "n_synthetic_pool": n_synthetic_pool,
    }  # fmt: skip
    if not real:
        return out
    out["synthetic_equivalents"] = [
        {"synthetic": m, **equivalent_over_repeats(real, scores)} for m, scores in syn.items()
    ]
    out["augmentation"] = []
    for n, scores in plus.items():
        eq = equivalent_over_repeats(real, scores)
        value = eq["estimate"]["value"]
        out["augmentation"].append({
            "real": n, "equivalent": eq, "gain": None if value is None else value / n,
            "difference": paired_difference(scores, real.get(n, {})),
        })  # fmt: skip
    out["answer"] = answer(out)
    return out


def _interval_text(eq: dict[str, Any]) -> str:
    if eq.get("interval"):
        lo, hi = eq["interval"]
        return f" (95% CI {lo:,.0f}-{hi:,.0f} real images, n={eq['n']} repeats)"
    if eq.get("note"):
        return f" ({eq['note']})"
    return ""


def _worth_sentence(n_syn: int, eq: dict[str, Any]) -> str:
    est = eq["estimate"]
    if est["bound"] == "above":
        return (f"{n_syn:,} synthetic images are worth more than all {est['limit']:,} real images "
                "tried: a classifier trained on them alone beats one trained on all the real data.")
    if est["bound"] == "below":
        return (f"{n_syn:,} synthetic images are worth less than the smallest real subset tried "
                f"({est['limit']:,} real images).")
    return (f"{n_syn:,} synthetic images are worth about {est['value']:,.0f} real ones"
            f"{_interval_text(eq)}.")


def _added_sentence(a: dict[str, Any]) -> str:
    n, est = a["real"], a["equivalent"]["estimate"]
    if est["bound"] == "above":
        return f"Added to {n:,} real images, they score above all {est['limit']:,} real images."
    if est["bound"] == "below":
        return (f"Added to {n:,} real images, they score below the smallest real subset tried "
                f"({est['limit']:,} images) alone.")
    if a["gain"] >= 1:
        return (f"Added to {n:,} real images, they are like having {a['gain']:.1f}x as much "
                "real data.")
    return (f"Added to {n:,} real images, they lower the score to that of about "
            f"{est['value']:,.0f} real images alone.")


def answer(w: dict[str, Any]) -> str:
    """The plain-language paragraph at the top of the report."""
    parts = []
    full = next((e for e in reversed(w.get("synthetic_equivalents") or [])), None)
    if full is not None:
        parts.append(_worth_sentence(full["synthetic"], full))
    aug = w.get("augmentation") or []
    if aug:
        parts.append(_added_sentence(aug[0]))
        helps = [a["real"] for a in aug if (a["difference"] or {}).get("verdict") == "higher"]
        hurts = [a["real"] for a in aug if (a["difference"] or {}).get("verdict") == "lower"]
        if helps:
            parts.append(f"Adding them helps (95% CI above 0) at {_sizes(helps)} real images.")
        if hurts:
            parts.append(f"They hurt (95% CI below 0) at {_sizes(hurts)} real images.")
        last, d = aug[-1], aug[-1]["difference"]
        if d is not None:
            ci = ("" if d.get("ci_low") is None
                  else f", 95% CI {d['ci_low']:+.3f} to {d['ci_high']:+.3f}")
            parts.append(f"With all {last['real']:,} real images the change is "
                         f"{d['mean']:+.3f} macro-F1 ({d['verdict']}{ci}).")
    return " ".join(parts) or "Not enough worth cells to say."


def _sizes(sizes: Sequence[int]) -> str:
    return ", ".join(f"{s:,}" for s in sizes)

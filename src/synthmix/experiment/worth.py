"""How many real images is the synthetic data worth? Learning curves and what they say.

From the worth cells of a study (the classifier recipe trained on nested real subsets of
growing size, each with and without the synthetic set, and on synthetic subsets alone; every
point repeated), this module computes:

- the real-equivalent size of a synthetic set: the number of real images whose real-only
  score equals the synthetic-only score, read off the real-only curve in log-size after an
  isotonic (non-decreasing) fit;
- the augmentation gain at each real size n: the real-only size that matches "n real +
  synthetic", divided by n ("like having 3.2x as much real data");
- the paired difference (real + synthetic) - (real only) at each n, with a 95% t interval over
  repeats, which says where adding synthetic data helps, makes no clear difference, or hurts.

One estimator gives a number and its interval: each repeat is inverted on its own real-only
curve (repeat k's classifiers share its seed, subsets and synthetic set), and the point is the
mean of the per-repeat log sizes, the interval its 95% t interval. So the point always lies
inside its interval (the mean-curve inversion used before could fall outside it), and the
interval covers exactly the variation between repeats that the variance paragraph names. Log
size, because a learning curve is roughly linear in log n and sizes multiply.

Nothing is extrapolated: a repeat whose score lies above (below) its whole real-only curve
counts at the largest (smallest) real size tried, and an interval end beyond the sizes tried
is stated as a bound ("more than 5,000", "fewer than 100"). An interval that is a bound at
both ends, or wider than a factor of RESOLVED_RATIO, is reported as "the data cannot tell".

A claim follows its verdict: a gain is claimed as "Nx as much real data" only when its
interval excludes 1x and the paired difference at that size agrees; otherwise it is "no clear
effect (95% CI ...)", so a multiplier never stands beside "no clear difference".

Sizes count what a classifier saw: a real size counts its training images plus the real
validation images it early-stopped on (`seen`), and a synthetic-only size the synthetic images
it trained on (`trained`, 10% being held out for early stopping).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from sklearn.isotonic import IsotonicRegression

from synthmix.experiment.plan import Cell
from synthmix.experiment.stats import paired_difference, t_interval
from synthmix.experiment.worth_text import answer, gain_cell, worth_sentence
from synthmix.metrics.classification import mean_std

Curve = dict[int, dict[int, float]]  # size -> {repeat: macro-F1}
RESOLVED_RATIO = 2.0  # an interval wider than this factor (upper / lower) cannot tell


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


def bounded_interval(low: float | None, high: float | None, smallest: int, largest: int,
                     low_bound: bool = False, high_bound: bool = False) -> dict[str, Any]:
    """An interval of sizes kept inside [smallest, largest]: an end beyond them (or one a
    censored repeat reaches) becomes a bound, and the text says so."""
    if low is None or high is None:
        return {"low": None, "high": None, "low_bound": False, "high_bound": False,
                "ratio": None, "resolved": False, "text": "no interval (one repeat)"}
    low_bound = low_bound or low < smallest * (1 - 1e-9)
    high_bound = high_bound or high > largest * (1 + 1e-9)
    low, high = max(low, smallest), min(high, largest)
    lo_text = f"fewer than {smallest:,}" if low_bound else f"{low:,.0f}"
    hi_text = f"more than {largest:,}" if high_bound else f"{high:,.0f}"
    ratio = None if low_bound or high_bound else high / low
    return {"low": low, "high": high, "low_bound": low_bound, "high_bound": high_bound,
            "ratio": ratio, "resolved": ratio is not None and ratio <= RESOLVED_RATIO,
            "text": f"{lo_text} to {hi_text}"}


def equivalent_over_repeats(real_curve: Curve, target: dict[int, float]) -> dict[str, Any]:
    """The real-equivalent size of `target` scores ({repeat: F1}): each repeat inverted on its
    own real-only curve; the point is their mean in log size, the interval its 95% t interval,
    both kept inside the sizes tried (see the module docstring)."""
    sizes = sorted(real_curve)
    smallest, largest = sizes[0], sizes[-1]
    per_repeat = {}
    for k, score in sorted(target.items()):
        pts = [(s, real_curve[s][k]) for s in sizes if k in real_curve[s]]
        if pts:
            per_repeat[k] = real_equivalent([p[0] for p in pts], [p[1] for p in pts], score)
    bounds = [r["bound"] for r in per_repeat.values()]
    logs = [math.log(r["value"] if r["bound"] is None else
                     (largest if r["bound"] == "above" else smallest))
            for r in per_repeat.values()]
    out: dict[str, Any] = {"per_repeat": per_repeat, "n": len(per_repeat),
                           "censored": sum(b is not None for b in bounds)}
    if not logs:
        out.update(estimate={"value": None, "bound": None, "limit": None, "text": "—"},
                   interval=None, ci=bounded_interval(None, None, smallest, largest))
        return out
    ci = t_interval(logs)
    low = None if ci["ci_low"] is None else math.exp(ci["ci_low"])
    high = None if ci["ci_high"] is None else math.exp(ci["ci_high"])
    out["ci"] = bounded_interval(low, high, smallest, largest, "below" in bounds,
                                 "above" in bounds)
    out["interval"] = None if low is None else [out["ci"]["low"], out["ci"]["high"]]
    out["estimate"] = _point(math.exp(ci["mean"]), bounds, smallest, largest)
    return out


def _point(value: float, bounds: list[str | None], smallest: int, largest: int
           ) -> dict[str, Any]:
    if bounds and all(b == "above" for b in bounds):
        return {"value": None, "bound": "above", "limit": largest,
                "text": f"more than {largest:,} (all real images tried)"}
    if bounds and all(b == "below" for b in bounds):
        return {"value": None, "bound": "below", "limit": smallest,
                "text": f"fewer than {smallest:,} (the smallest real subset tried)"}
    return {"value": value, "bound": None, "limit": None, "text": f"{value:,.0f}"}


def gain_over_repeats(eq: dict[str, Any], size: int, difference: dict[str, Any] | None
                      ) -> dict[str, Any]:
    """The gain (real-equivalent / size) with its interval, and its verdict: 'higher' or
    'lower' only when the gain's interval excludes 1x and the paired difference agrees."""
    est, ci = eq["estimate"], eq["ci"]
    gain = None if est["value"] is None else est["value"] / size
    low = None if ci["low"] is None else ci["low"] / size
    high = None if ci["high"] is None else ci["high"] / size
    paired = (difference or {}).get("verdict")
    if low is not None and low > 1 and not ci["low_bound"] and paired in ("higher", None):
        verdict = "higher"
    elif high is not None and high < 1 and not ci["high_bound"] and paired in ("lower", None):
        verdict = "lower"
    else:
        verdict = "no clear effect"
    lo_text = f"below {low:.2g}x" if ci["low_bound"] else f"{low:.2f}x" if low else "?"
    hi_text = f"above {high:.3g}x" if ci["high_bound"] else f"{high:.2f}x" if high else "?"
    text = (f"{lo_text} to {hi_text}" if low is not None else "no interval (one repeat)")
    return {"value": gain, "low": low, "high": high, "verdict": verdict, "ci_text": text}


def _curve(cells: Sequence[Cell], metrics: dict[str, dict[str, Any]], run_dir_of: Any,
           size_of: Callable[[Cell], int]) -> Curve:
    curve: Curve = {}
    for c in cells:
        curve.setdefault(size_of(c), {})[c.repeat] = float(metrics[run_dir_of(c)]["macro_f1"])
    return dict(sorted(curve.items()))


def _points(curve: Curve, key: str, sizes: dict[int, int]) -> list[dict[str, Any]]:
    return [{"size": s, key: sizes.get(s, s), "macro_f1": mean_std(list(v.values())),
             "runs": v} for s, v in curve.items()]


def worth_analysis(cells: Sequence[Cell], metrics: dict[str, dict[str, Any]], run_dir_of: Any,
                   n_synthetic_pool: int, seen: Callable[[int], int] | None = None,
                   trained: Callable[[int], int] | None = None) -> dict[str, Any]:
    """Learning curves, real-equivalent sizes, augmentation gains and paired differences.

    `seen(n_real)`: the real images a cell of n_real training images saw, validation included
    (default n_real); `trained(n_synthetic)`: the synthetic images a synthetic-only cell
    trained on (default n_synthetic)."""
    see = seen or (lambda n: n)
    real_only = [c for c in cells if c.n_synthetic == 0]
    with_syn = [c for c in cells if c.n_real > 0 and c.n_synthetic > 0]
    syn_only = [c for c in cells if c.n_real == 0]
    real = _curve(real_only, metrics, run_dir_of, lambda c: see(c.n_real))
    plus = _curve(with_syn, metrics, run_dir_of, lambda c: see(c.n_real))
    syn = _curve(syn_only, metrics, run_dir_of, lambda c: c.n_synthetic)
    train_of = {see(c.n_real): c.n_real for c in real_only + with_syn}
    return analyse_curves(real, plus, syn, n_synthetic_pool, train_of,
                          {m: (trained or (lambda x: x))(m) for m in syn})


def analyse_curves(real: Curve, plus: Curve, syn: Curve, n_synthetic_pool: int,
                   train_of: dict[int, int], trained: dict[int, int]) -> dict[str, Any]:
    """The worth analysis of three curves keyed by size seen ({size: {repeat: F1}});
    `train_of`: real training images per size seen, `trained`: per synthetic size."""
    out: dict[str, Any] = {
        "axis": "real images seen: training images + the real validation images used for "
                "early stopping; synthetic-only sizes: images sampled (trained on = 90%)",
        "real_only": _points(real, "train", train_of),
        "real_plus_synthetic": _points(plus, "train", train_of),
        "synthetic_only": _points(syn, "trained", trained),
        "n_synthetic_pool": n_synthetic_pool, "resolved_ratio": RESOLVED_RATIO,
    }  # fmt: skip
    if not real:
        return out
    out["synthetic_equivalents"] = [
        {"synthetic": m, "trained": trained.get(m, m), **equivalent_over_repeats(real, scores)}
        for m, scores in syn.items()
    ]
    out["augmentation"] = []
    for n, scores in plus.items():
        eq = equivalent_over_repeats(real, scores)
        diff = paired_difference(scores, real.get(n, {}))
        g = gain_over_repeats(eq, n, diff)
        a = {"real": train_of.get(n, n), "seen": n, "equivalent": eq, "gain_ci": g,
             "verdict": g["verdict"], "difference": diff,
             # A bare multiple only with a clear verdict; the text always has its interval.
             "gain": None if g["verdict"] == "no clear effect" else g["value"]}
        out["augmentation"].append({**a, "gain_text": gain_cell(a)})
    for e in out["synthetic_equivalents"]:
        e["text"] = worth_sentence(e)
    out["answer"] = answer(out)
    return out


def reanalyse(worth: dict[str, Any]) -> dict[str, Any]:
    """The analysis again from the per-repeat scores a results.json holds (also one written
    before sizes counted validation images: its sizes are then the training sizes)."""
    def curve(key: str) -> Curve:
        return {int(p["size"]): {int(k): float(v) for k, v in p["runs"].items()}
                for p in worth.get(key) or []}

    train_of = {int(p["size"]): int(p.get("train", p["size"]))
                for key in ("real_only", "real_plus_synthetic") for p in worth.get(key) or []}
    trained = {int(p["size"]): int(p.get("trained", p["size"]))
               for p in worth.get("synthetic_only") or []}
    return analyse_curves(curve("real_only"), curve("real_plus_synthetic"),
                          curve("synthetic_only"), int(worth.get("n_synthetic_pool") or 0),
                          train_of, trained)

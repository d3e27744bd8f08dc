"""Mean ± std over repeats and paired differences with a 95% confidence interval.

A paired difference compares two cells repeat by repeat (same repeat index: same classifier
seed, same real subset, same synthetic set), so what the two share cancels; its interval is
the t interval of the mean difference, mean ± t(0.975, n-1) · sd / sqrt(n).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from scipy import stats as scipy_stats

from synthmix.metrics.classification import mean_std

CONFIDENCE = 0.95


def t_interval(values: Sequence[float], confidence: float = CONFIDENCE) -> dict[str, Any]:
    """Mean, sample std, n and the two-sided t interval of the mean (None bounds for n < 2)."""
    out: dict[str, Any] = dict(mean_std(values))
    n = out["n"]
    if n < 2:
        out.update(ci_low=None, ci_high=None, confidence=confidence)
        return out
    half = float(scipy_stats.t.ppf(0.5 + confidence / 2, n - 1)) * out["std"] / math.sqrt(n)
    out.update(ci_low=out["mean"] - half, ci_high=out["mean"] + half, confidence=confidence)
    return out


def paired_difference(
    a: dict[int, float], b: dict[int, float], confidence: float = CONFIDENCE
) -> dict[str, Any] | None:
    """a - b over the repeats both have ({repeat: value}), with its t interval and a verdict:
    'higher' / 'lower' when the interval excludes 0, else 'no clear difference'."""
    common = sorted(set(a) & set(b))
    if not common:
        return None
    out = t_interval([a[k] - b[k] for k in common], confidence)
    out["repeats"] = common
    out["verdict"] = (verdict(out["ci_low"], out["ci_high"]) if n_ok(out)
                      else "one repeat: no interval")
    return out


def verdict(ci_low: float, ci_high: float) -> str:
    """'higher' / 'lower' when the interval excludes 0, else 'no clear difference'."""
    return "higher" if ci_low > 0 else "lower" if ci_high < 0 else "no clear difference"


def welch_difference(
    a: Sequence[float], b: Sequence[float], confidence: float = CONFIDENCE
) -> dict[str, Any] | None:
    """mean(a) - mean(b) for two independent groups (nothing shared repeat by repeat, e.g.
    two studies), with Welch's t interval (Welch-Satterthwaite degrees of freedom) and the
    verdict of `paired_difference`; None unless both groups have two or more values."""
    if len(a) < 2 or len(b) < 2:
        return None
    sa, sb = mean_std(a), mean_std(b)
    va, vb = sa["std"] ** 2 / sa["n"], sb["std"] ** 2 / sb["n"]
    diff = sa["mean"] - sb["mean"]
    se = math.sqrt(va + vb)
    if se == 0:
        low = high = diff
        df = float(sa["n"] + sb["n"] - 2)
    else:
        df = (va + vb) ** 2 / (va**2 / (sa["n"] - 1) + vb**2 / (sb["n"] - 1))
        half = float(scipy_stats.t.ppf(0.5 + confidence / 2, df)) * se
        low, high = diff - half, diff + half
    return {"mean": diff, "ci_low": low, "ci_high": high, "df": df, "n": min(sa["n"], sb["n"]),
            "n_a": sa["n"], "n_b": sb["n"], "confidence": confidence,
            "verdict": verdict(low, high)}


def n_ok(stats: dict[str, Any]) -> bool:
    return int(stats.get("n") or 0) >= 2


def format_interval(stats: dict[str, Any] | None, digits: int = 3, signed: bool = True) -> str:
    """'+0.012 [+0.004, +0.020] (n=3)', or the mean alone when there is no interval."""
    if not stats:
        return "—"
    f = f"{{:{'+' if signed else ''}.{digits}f}}"
    if stats.get("ci_low") is None:
        return f"{f.format(stats['mean'])} (n={stats['n']})"
    return (f"{f.format(stats['mean'])} [{f.format(stats['ci_low'])}, "
            f"{f.format(stats['ci_high'])}] (n={stats['n']})")

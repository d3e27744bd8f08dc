"""The worth analysis in words: the answer paragraph and the worth tables' cells.

Every number carries its 95% interval and n, and a sentence claims only what its verdict
carries (see worth.py): "no clear effect (95% CI ...)" instead of a bare multiplier, bounds
instead of sizes that were never tried, "the data cannot tell" where the interval is wide.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def _reps(n: int) -> str:
    return f"n={n} repeat{'' if n == 1 else 's'}"


def _synthetic_words(e: dict[str, Any]) -> str:
    m, trained = e["synthetic"], e.get("trained", e["synthetic"])
    if trained == m:
        return f"{m:,} synthetic images"
    return f"{m:,} synthetic images ({trained:,} trained on, {m - trained:,} held out)"


def worth_sentence(e: dict[str, Any]) -> str:
    """What a synthetic set alone is worth in real images, as far as its interval says."""
    what, est, ci, reps = _synthetic_words(e), e["estimate"], e["ci"], _reps(e["n"])
    if est["bound"] == "above":
        return (f"{what} are worth more than all {est['limit']:,} real images tried ({reps}): "
                "in every repeat the classifier trained on them alone scored above the whole "
                "real-only curve (whether clearly, the paired difference to all real data says).")
    if est["bound"] == "below":
        return (f"{what} are worth fewer real images than the smallest real subset tried "
                f"({est['limit']:,} real images; {reps}).")
    if est["value"] is None:
        return f"{what}: no repeat to say what they are worth."
    x = f"{est['value']:,.0f}"
    if ci["low"] is None:
        return f"{what} are worth about {x} real ones (one repeat: no interval, so no claim)."
    if ci["low_bound"] and ci["high_bound"]:
        return (f"{what}: the data cannot tell how many real images they are worth (95% CI "
                f"{ci['text']} real images, {reps}).")
    if not ci["resolved"]:
        width = "" if ci["ratio"] is None else f", a factor of {ci['ratio']:.1f}"
        return (f"{what} are worth about {x} real ones, but the data cannot tell it to within "
                f"a factor of 2 (95% CI {ci['text']} real images{width}; {reps}).")
    return f"{what} are worth about {x} real ones (95% CI {ci['text']} real images, {reps})."


def difference_text(d: dict[str, Any] | None) -> str:
    """'+0.067 macro-F1, 95% CI -0.089 to +0.224'."""
    if not d:
        return "no paired real-only run"
    if d.get("ci_low") is None:
        return f"{d['mean']:+.3f} macro-F1 (one repeat: no interval)"
    return f"{d['mean']:+.3f} macro-F1, 95% CI {d['ci_low']:+.3f} to {d['ci_high']:+.3f}"


def _base(a: dict[str, Any]) -> str:
    n, seen = a["real"], a.get("seen", a["real"])
    if seen == n:
        return f"Added to {n:,} real images"
    return (f"Added to {n:,} real training images ({seen:,} real images seen, counting the "
            f"{seen - n:,} it early-stopped on)")


def added_sentence(a: dict[str, Any]) -> str:
    """What adding the synthetic set to a real subset did, claimed as far as its verdict."""
    g, eq = a["gain_ci"], a["equivalent"]
    tail = f"paired difference {difference_text(a['difference'])}; {_reps(eq['n'])}"
    if g["verdict"] == "higher":
        if g["value"] is None:  # every repeat above the whole real-only curve
            return (f"{_base(a)}, they score above all {eq['estimate']['limit']:,} real images "
                    f"tried, like having {g['ci_text']} as much real data ({tail}).")
        return (f"{_base(a)}, they are like having {g['value']:.1f}x as much real data (95% CI "
                f"{g['ci_text']}; {tail}).")
    if g["verdict"] == "lower":
        return (f"{_base(a)}, they lower the score to that of about "
                f"{eq['estimate']['text']} real images alone ({gain_cell(a)}; {tail}).")
    if g["low"] is None:
        return f"{_base(a)}, one repeat cannot tell their effect ({tail})."
    return f"{_base(a)}, they have no clear effect (95% CI {g['ci_text']}; {tail})."


def gain_cell(a: dict[str, Any]) -> str:
    """The gain as a table cell: a multiple only with a verdict, else 'no clear effect'."""
    g = a["gain_ci"]
    if g["verdict"] == "no clear effect":
        return f"no clear effect (95% CI {g['ci_text']})"
    value = (f"{g['value']:.2f}x" if g["value"] is not None
             else f"more than {g['low']:.3g}x")
    return f"{value} (95% CI {g['ci_text']})"


def tells_cell(ci: dict[str, Any]) -> str:
    """Whether an interval pins the size down to within a factor of 2."""
    if ci["low"] is None:
        return "no interval"
    if ci["resolved"]:
        return f"yes (a factor of {ci['ratio']:.2f})"
    if ci["ratio"] is None:
        return "cannot tell (beyond the sizes tried)"
    return f"cannot tell (a factor of {ci['ratio']:.1f})"


def answer(w: dict[str, Any]) -> str:
    """The plain-language paragraph at the top of the report."""
    parts = []
    full = next((e for e in reversed(w.get("synthetic_equivalents") or [])), None)
    if full is not None:
        parts.append(worth_sentence(full))
    aug = w.get("augmentation") or []
    if aug:
        parts.append(added_sentence(aug[0]))
        helps = [a["real"] for a in aug if a["verdict"] == "higher"]
        hurts = [a["real"] for a in aug if a["verdict"] == "lower"]
        if helps:
            parts.append(f"Adding them helps (gain and paired difference above no effect, 95% "
                         f"CI) at {_sizes(helps)} real images.")
        if hurts:
            parts.append(f"They hurt (95% CI below no effect) at {_sizes(hurts)} real images.")
        if not helps and not hurts:
            parts.append("At no real size tried is the effect clear.")
        last, d = aug[-1], aug[-1]["difference"]
        if d is not None and len(aug) > 1:
            verdict = {"higher": "higher", "lower": "lower"}.get(d["verdict"], "no clear effect")
            parts.append(f"With all {last['real']:,} real images the change is "
                         f"{difference_text(d)}: {verdict} ({_reps(int(d['n']))}).")
    return " ".join(parts) or "Not enough worth cells to say."


def _sizes(sizes: Sequence[int]) -> str:
    return ", ".join(f"{s:,}" for s in sizes)

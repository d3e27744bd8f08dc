"""The study report's figures: Table 6 bars, the guidance sweep and the worth curves."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any


def _fmt_pct(fraction: Any) -> str:
    return f"{100 * float(fraction):g}%" if isinstance(fraction, int | float) else "—"


def plot_table6_bar(table: Sequence[dict[str, Any]], path: Path, dataset: str) -> None:
    """Grouped bars: macro-F1 mean ± std per experiment next to the study's F1."""
    from synthmix.plots import _pyplot, _save

    plt = _pyplot()
    names = [str(c.get("name", "?")) for c in table]
    x = list(range(len(table)))
    stats = [c.get("macro_f1") or {} for c in table]
    means = [float(s.get("mean") or 0.0) for s in stats]
    stds = [float(s.get("std") or 0.0) for s in stats]
    n = max((int(s.get("n") or 0) for s in stats), default=0)
    paper = [(i, c["paper_f1"]) for i, c in enumerate(table) if c.get("paper_f1") is not None]
    width = 0.38 if paper else 0.6
    fig, ax = plt.subplots(figsize=(1.2 + 1.1 * len(table), 3.4))
    shift = -width / 2 if paper else 0.0
    bars = ax.bar([i + shift for i in x], means, width, yerr=stds, capsize=3,
                  label=f"synthmix macro-F1 (mean ± std, n={n} seeds)", color="#3b75af")
    for bar, m, sd in zip(bars, means, stds, strict=True):  # above the error bar, not on it
        ax.text(bar.get_x() + bar.get_width() / 2, m + sd + 0.01, f"{m:.3f}", ha="center",
                va="bottom", fontsize=7)
    if paper:
        pbars = ax.bar([i + width / 2 for i, _ in paper], [float(v) for _, v in paper], width,
                       label="the study's F1 (its code: micro-F1 averaged over batches)",
                       color="#c9c9c9", hatch="//", edgecolor="#777777")
        ax.bar_label(pbars, fmt="%.2f", fontsize=7, padding=2)
    labels = [f"{nm}\n{_fmt_pct(c.get('real'))} / {_fmt_pct(c.get('synthetic'))}"
              for nm, c in zip(names, table, strict=True)]
    ax.set_xticks(x)
    ax.set_xticklabels(labels, fontsize=8)
    ax.set_ylim(0, 1.12)
    ax.set_ylabel("F1 on the real test set")
    ax.set_title(f"{dataset}: real % / synthetic % per experiment", fontsize=9)
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.22), ncol=1)
    _save(fig, path)


def plot_guidance_sweep(sweep: Sequence[dict[str, Any]], path: Path) -> None:
    """Macro-F1 (mean ± std over seeds) of synthetic-only classifiers against guidance w."""
    from synthmix.plots import _pyplot, _save

    plt = _pyplot()
    points = sorted(sweep, key=lambda s: float(s.get("guidance_scale", 0.0)))
    w = [float(s.get("guidance_scale", 0.0)) for s in points]
    mean = [float((s.get("macro_f1") or {}).get("mean") or 0.0) for s in points]
    std = [float((s.get("macro_f1") or {}).get("std") or 0.0) for s in points]
    fig, ax = plt.subplots(figsize=(4.5, 3.0))
    ax.errorbar(w, mean, yerr=std, marker="o", capsize=3)
    ax.set_xlabel("guidance scale w")
    ax.set_ylabel("macro-F1 (synthetic data only)")
    ax.grid(alpha=0.3)
    _save(fig, path)


def plot_worth(worth: dict[str, Any], path: Path, dataset: str) -> None:
    """Macro-F1 against the number of real images seen (log x): real only and real + synthetic,
    and the synthetic-only points at their real-equivalent sizes with 95% intervals kept inside
    the sizes tried (an arrow where an end is a bound)."""
    from synthmix.plots import _pyplot, _save

    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.2, 4.0))
    for key, label, style in (("real_only", "real only", "o-"),
                              ("real_plus_synthetic", f"real + {worth['n_synthetic_pool']:,} "
                               "synthetic", "s-")):
        pts = worth.get(key) or []
        if pts:
            ax.errorbar([p["size"] for p in pts], [p["macro_f1"]["mean"] for p in pts],
                        yerr=[p["macro_f1"]["std"] for p in pts], fmt=style, capsize=3,
                        label=label)
    syn = {p["size"]: p for p in worth.get("synthetic_only") or []}
    for eq in worth.get("synthetic_equivalents") or []:
        _plot_equivalent(ax, eq, syn[eq["synthetic"]]["macro_f1"]["mean"])
    ax.plot([], [], "D", color="tab:red", label="synthetic only, at its real-equivalent size "
            "(95% CI; open: wider than 2x)")
    ax.set_xscale("log")
    ax.set_xlabel("real images seen: training + early-stopping validation (log scale)")
    ax.set_ylabel("macro-F1 on the real test set")
    ax.set_title(f"{dataset}: what the synthetic data is worth", fontsize=9)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7)
    _save(fig, path)




def _plot_equivalent(ax: Any, eq: dict[str, Any], y: float) -> None:
    """One synthetic-only point at its real-equivalent size: a bound is an arrow, an interval
    a bar that stops at the sizes tried (with an arrow beyond), a wide one an open marker."""
    est, ci = eq["estimate"], eq.get("ci") or {}
    x = est["value"] if est["value"] is not None else est["limit"]
    lo = ci.get("low") if ci.get("low") is not None else x
    hi = ci.get("high") if ci.get("high") is not None else x
    marker = "D" if est["bound"] is None else (">" if est["bound"] == "above" else "<")
    face = "tab:red" if ci.get("resolved") else "white"
    ax.errorbar([x], [y], xerr=[[max(x - lo, 0)], [max(hi - x, 0)]], fmt=marker,
                color="tab:red", markerfacecolor=face, capsize=3)
    for end, bound, arrow in ((lo, ci.get("low_bound"), "<"), (hi, ci.get("high_bound"), ">")):
        if bound:
            ax.plot([end], [y], arrow, color="tab:red", markersize=5)
    trained = eq.get("trained", eq["synthetic"])
    label = f"{eq['synthetic']:,} syn." + (f" ({trained:,} trained on)"
                                             if trained != eq["synthetic"] else "")
    ax.annotate(label, (x, y),
                textcoords="offset points", xytext=(4, -10), fontsize=7, color="tab:red")

"""Two studies side by side: the full-data scenario against the split one (or any two
studies of one data set), on what both measured.

    PYTHONPATH=src python benchmarks/scenario_compare.py \\
        --a "full data=studies/cpu-mnist-full-data/results.json" \\
        --b "split=benchmarks/results/cpu-2core-study-mnist.json" --out runs/scenarios

Compared, A minus B, with Welch's 95% t interval (the two studies share no repeat: other
DDPM, other real pool, other synthetic sets, so nothing pairs): every Table 6 cell both have
at the same real and synthetic fractions, and every synthetic-only learning-curve point both
have at the same number of synthetic images (the usefulness of the DDPM's data alone). Side
by side, not differenced: each study's answer (what the synthetic set is worth in real
images, its interval and n) and its learning curves (the figure), since the real sizes of the
two curves need not match. Each study's own paired intervals are in its report.

Writes OUT/scenarios.json, OUT/scenarios.md and OUT/scenarios.png.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

RESULT_JSON = "scenarios.json"
RESULT_MD = "scenarios.md"
RESULT_PNG = "scenarios.png"


def load(spec: str) -> tuple[str, dict[str, Any], Path]:
    """'LABEL=PATH' (a study directory or its results.json, or a published copy) ->
    (label, results, path), with a clear error."""
    from synthmix.errors import ConfigError
    from synthmix.experiment.report import read_results_json

    label, sep, path = spec.partition("=")
    if not sep or not label or not path:
        raise ConfigError(f"{spec!r}: give LABEL=PATH to a study's results.json")
    p = Path(path) / "results.json" if Path(path).is_dir() else Path(path)
    return label, read_results_json(p), p


def _values(runs: Any) -> list[float]:
    """macro-F1 per repeat from a table cell's run list or a curve point's {repeat: F1}."""
    if isinstance(runs, dict):
        return [float(v) for _, v in sorted(runs.items(), key=lambda kv: int(kv[0]))]
    return [float(r["macro_f1"]) for r in runs]


def _summary(values: list[float]) -> dict[str, Any]:
    from synthmix.metrics.classification import mean_std

    return dict(mean_std(values))


def matched_rows(a: dict[str, Any], b: dict[str, Any]) -> list[dict[str, Any]]:
    """Table cells at the same (real, synthetic) fractions, then synthetic-only curve points
    at the same synthetic size, each with A - B and Welch's interval."""
    from synthmix.experiment.stats import welch_difference

    rows: list[dict[str, Any]] = []
    cells_b = {(t["real"], t["synthetic"]): t for t in b.get("table") or []}
    for t in a.get("table") or []:
        other = cells_b.get((t["real"], t["synthetic"]))
        if other is None:
            continue
        va, vb = _values(t["runs"]), _values(other["runs"])
        rows.append({"what": f"{t['name']} / {other['name']} (real {t['real']:.0%}, "
                             f"synthetic {t['synthetic']:.0%})", "kind": "table",
                     "a": _summary(va), "b": _summary(vb), "a_minus_b": welch_difference(va, vb)})
    points_b = {p["size"]: p for p in (b.get("worth") or {}).get("synthetic_only") or []}
    for p in (a.get("worth") or {}).get("synthetic_only") or []:
        other = points_b.get(p["size"])
        if other is None:
            continue
        va, vb = _values(p["runs"]), _values(other["runs"])
        rows.append({"what": f"synthetic only, {p['size']:,} sampled ({p['trained']:,} trained "
                             "on)", "kind": "synthetic-only curve",
                     "a": _summary(va), "b": _summary(vb), "a_minus_b": welch_difference(va, vb)})
    return rows


def _fmt(s: dict[str, Any]) -> str:
    return f"{s['mean']:.3f} ± {s['std']:.3f} (n={s['n']})"


def _fmt_diff(d: dict[str, Any] | None) -> str:
    if d is None:
        return "— (fewer than 2 repeats)"
    return (f"{d['mean']:+.3f} [{d['ci_low']:+.3f}, {d['ci_high']:+.3f}] (n={d['n_a']} vs "
            f"{d['n_b']}) {d['verdict']}")


def markdown(result: dict[str, Any]) -> str:
    la, lb = result["a"]["label"], result["b"]["label"]
    lines = [f"| compared | {la} | {lb} | {la} − {lb}, 95% Welch interval |",
             "|---|---|---|---|"]
    for r in result["rows"]:
        lines.append(f"| {r['what']} | {_fmt(r['a'])} | {_fmt(r['b'])} | "
                     f"{_fmt_diff(r['a_minus_b'])} |")
    lines += ["", "± is the sample standard deviation over each study's repeats; the studies "
              "share no repeat, so differences are unpaired.", ""]
    for side in ("a", "b"):
        s = result[side]
        lines.append(f"- **{s['label']}** ({s['name']}, commit {s['commit']}): {s['answer']}")
    return "\n".join(lines) + "\n"


def figure(sides: list[tuple[str, dict[str, Any]]], path: Path) -> None:
    """Learning curves of both studies (real only, real + synthetic) and their
    synthetic-only curves."""
    from synthmix.plots import _pyplot, _save

    plt = _pyplot()
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    for (label, res), colour in zip(sides, ("tab:blue", "tab:orange"), strict=False):
        worth = res.get("worth") or {}
        for key, style, what in (("real_only", "-", "real only"),
                                 ("real_plus_synthetic", "--", "real + synthetic")):
            pts = worth.get(key) or []
            if pts:
                left.errorbar([p["size"] for p in pts], [p["macro_f1"]["mean"] for p in pts],
                              yerr=[p["macro_f1"]["std"] for p in pts], ls=style, marker="o",
                              ms=3, capsize=2, color=colour, label=f"{label}: {what}")
        syn = worth.get("synthetic_only") or []
        if syn:
            right.errorbar([p["size"] for p in syn], [p["macro_f1"]["mean"] for p in syn],
                           yerr=[p["macro_f1"]["std"] for p in syn], marker="o", ms=3,
                           capsize=2, color=colour, label=label)
    sizes = sorted({p["size"] for _, res in sides
                    for p in (res.get("worth") or {}).get("synthetic_only") or []})
    left.set_xlabel("real images seen (log)")
    right.set_xlabel("synthetic images sampled (log)")
    for ax in (left, right):
        ax.set_xscale("log")
        ax.set_ylabel("test macro-F1 (± std over repeats)")
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=7)
    if sizes:  # the sizes tried, not log-scale tick labels that collide
        right.set_xticks(sizes, [f"{x:,}" for x in sizes], fontsize=7)
        right.minorticks_off()
    right.set_title("synthetic only", fontsize=9)
    left.set_title("learning curves", fontsize=9)
    _save(fig, path)


def run(args: argparse.Namespace) -> dict[str, Any]:
    from synthmix.files import atomic_write_json, atomic_write_text
    from synthmix.runinfo import code_version

    (la, a, pa), (lb, b, pb) = load(args.a), load(args.b)

    def side(label: str, res: dict[str, Any], path: Path) -> dict[str, Any]:
        return {"label": label, "path": str(path), "name": res.get("name"),
                "dataset": res.get("dataset"),
                "commit": (res.get("code_version") or {}).get("git_commit", "?")[:7],
                "answer": (res.get("worth") or {}).get("answer", "no worth section"),
                "synthetic_equivalents": (res.get("worth") or {}).get("synthetic_equivalents")}

    if a.get("dataset") != b.get("dataset"):
        from synthmix.errors import ConfigError

        raise ConfigError(f"{pa} is on {a.get('dataset')!r}, {pb} on {b.get('dataset')!r}: "
                          "compare studies of one data set")
    result = {"a": side(la, a, pa), "b": side(lb, b, pb), "rows": matched_rows(a, b),
              "interval": "Welch's 95% t interval of A - B (unpaired: the studies share no "
                          "repeat)", "code_version": code_version(),
              "command": " ".join(sys.argv)}
    args.out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(args.out / RESULT_JSON, result)
    atomic_write_text(args.out / RESULT_MD, markdown(result))
    figure([(la, a), (lb, b)], args.out / RESULT_PNG)
    return result


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--a", required=True, metavar="LABEL=PATH", help="study A's results.json")
    p.add_argument("--b", required=True, metavar="LABEL=PATH", help="study B's results.json")
    p.add_argument("--out", type=Path, required=True)
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    from synthmix.errors import SynthmixError

    args = parse_args(argv)
    try:
        run(args)
    except SynthmixError as e:
        print(f"scenario_compare: error: {e}", file=sys.stderr)
        return 2
    print((args.out / RESULT_MD).read_text())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

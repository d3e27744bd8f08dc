"""How many worth repeats does a reader need? A projection from the published cpu studies.

No study is run: this reads the per-repeat macro-F1 of the worth cells in the published
results (benchmarks/results/cpu-2core-study-*.json; n=2 repeats per worth cell when
cpu-2core-worth-repeats.json was written, 5 since the December 2 reruns) and projects
the width (upper / lower) of the two headline 95% intervals of synthmix.experiment.worth for
n = 2, 3, 5, 8, 12 repeats, under the spread those n=2 runs showed. It is a PROJECTION from n=2
data, not a measurement at n repeats.

The headline numbers: the real-equivalent size of the whole synthetic set (synthetic only) and
the gain at the smallest real size (real + synthetic). Each is the mean of per-repeat log
inversions (worth.py), so its interval is exp(+-t(0.975, n-1) * sd / sqrt(n)) around the point:
upper / lower = exp(2 t sd / sqrt(n)). Two estimates of sd, in log size:

- direct: the sample sd of the two per-repeat log inversions (1 degree of freedom: its own 95%
  upper bound is 32x larger; reported too);
- delta method: one inversion's sd is sqrt(2) * sigma / slope, with sigma the within-cell sd of
  macro-F1 pooled over the cells the inversion uses (the headline's own cell and the two
  real-only cells around where it lands: 3 degrees of freedom; the sd pooled over all 16 worth
  cells is recorded too) and slope the mean real-only curve's dF1 / dlog(n) there (the score of
  a repeat and the curve it is read on each carry noise sigma).

A cheaper estimator, also projected: read every repeat's score on one learning curve fitted to
all repeats at once (e.g. isotonic on the pooled points or a power law a - b n^-c), so the
curve's own noise averages out over the repeats and only the score's noise stays: sd = sigma /
slope instead of sqrt(2) sigma / slope, worth about twice as many repeats.

    python benchmarks/worth_repeats.py  # writes benchmarks/results/cpu-2core-worth-repeats.json

Once a study has run with n > 2 worth repeats, the widths are MEASURED instead: `--measured
RESULTS.json` recomputes both headline intervals with the study's own estimator
(`worth.reanalyse`) on every subset of k of its repeats, k = 2 .. n, and reports for each k the
median and the largest upper / lower over the subsets and how many subsets resolve (ratio <=
2, no bound). The subsets share repeats, so they are not independent draws; the row k = n is
the study's own interval.

    python benchmarks/worth_repeats.py --measured studies/cpu-mnist/results.json \
        --out benchmarks/results/cpu-2core-worth-repeats-measured.json
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import statistics
from pathlib import Path
from typing import Any

from scipy import stats

from synthmix.experiment.worth import RESOLVED_RATIO, reanalyse
from synthmix.files import atomic_write_json

RESULTS = Path(__file__).resolve().parent / "results"
STUDIES = ("mnist", "fashion-mnist")
REPEATS = (2, 3, 5, 8, 12)


def pooled_sigma(worth: dict[str, Any]) -> tuple[float, int]:
    """The within-cell sd of macro-F1 pooled over every worth cell, and its degrees of freedom."""
    ss, df = 0.0, 0
    for key in ("real_only", "real_plus_synthetic", "synthetic_only"):
        for p in worth[key]:
            v = [float(x) for x in p["runs"].values()]
            if len(v) > 1:
                ss += statistics.variance(v) * (len(v) - 1)
                df += len(v) - 1
    return math.sqrt(ss / df), df


def local_sigma(worth: dict[str, Any], target: dict[str, Any], size: float) -> tuple[float, int]:
    """The within-cell sd pooled over the target's cell and the two real-only cells around
    `size` (where the inversion reads the curve): noise is larger at small sizes."""
    pts = sorted(worth["real_only"], key=lambda p: p["size"])
    near = [p for p, q in zip(pts, pts[1:], strict=False) if p["size"] <= size <= q["size"]]
    cells = [target]
    if near:
        i = pts.index(near[0])
        cells += pts[i:i + 2]
    else:
        cells += pts[:2] if size < pts[0]["size"] else pts[-2:]
    return pooled_sigma({"real_only": cells, "real_plus_synthetic": [], "synthetic_only": []})


def slope_at(worth: dict[str, Any], size: float) -> float:
    """dF1 / dlog(n) of the mean real-only curve between the two sizes tried around `size`."""
    pts = sorted((p["size"], p["macro_f1"]["mean"]) for p in worth["real_only"])
    for (n0, f0), (n1, f1) in zip(pts, pts[1:], strict=False):
        if n0 <= size <= n1:
            return max((f1 - f0) / math.log(n1 / n0), 1e-6)
    (n0, f0), (n1, f1) = (pts[0], pts[1]) if size < pts[0][0] else (pts[-2], pts[-1])
    return max((f1 - f0) / math.log(n1 / n0), 1e-6)


def ratio(sd: float, n: int) -> float:
    """upper / lower of the 95% t interval of a mean of n log sizes with spread sd."""
    return math.exp(2 * float(stats.t.ppf(0.975, n - 1)) * sd / math.sqrt(n))


def headline(eq: dict[str, Any], worth: dict[str, Any], target: dict[str, Any]
             ) -> dict[str, Any]:
    """The projection for one headline number (an `equivalent_over_repeats` result) whose
    scores are the worth point `target`."""
    logs = [math.log(r["value"]) for r in eq["per_repeat"].values() if r["value"] is not None]
    point = eq["estimate"]["value"] or eq["estimate"]["limit"]
    slope = slope_at(worth, point)
    sigma, df = local_sigma(worth, target, point)
    sd_direct = statistics.stdev(logs) if len(logs) > 1 else None
    sd_delta = math.sqrt(2) * sigma / slope
    sd_pooled_curve = sigma / slope
    chi_lo = float(stats.chi2.ppf(0.025, len(logs) - 1)) if len(logs) > 1 else None
    return {
        "point": point, "per_repeat": [math.exp(x) for x in logs], "censored": eq["censored"],
        "interval_now": eq["ci"]["text"], "slope_per_log_size": slope,
        "sigma_macro_f1_local": sigma, "sigma_local_df": df,
        "sd_log_direct": sd_direct,
        "sd_log_direct_95_upper": (None if sd_direct is None or not chi_lo
                                   else sd_direct * math.sqrt((len(logs) - 1) / chi_lo)),
        "sd_log_delta": sd_delta, "sd_log_one_fitted_curve": sd_pooled_curve,
        "projected_ratio": {
            "direct": {n: None if sd_direct is None else ratio(sd_direct, n) for n in REPEATS},
            "delta": {n: ratio(sd_delta, n) for n in REPEATS},
            "one_fitted_curve": {n: ratio(sd_pooled_curve, n) for n in REPEATS},
        },
    }  # fmt: skip


def study(name: str) -> dict[str, Any]:
    path = RESULTS / f"cpu-2core-study-{name}.json"
    results = json.loads(path.read_text())
    worth = reanalyse(results["worth"])  # today's estimator on the published per-repeat scores
    sigma, df = pooled_sigma(worth)
    full = worth["synthetic_equivalents"][-1]
    smallest = worth["augmentation"][0]
    gain = headline(smallest["equivalent"], worth, worth["real_plus_synthetic"][0])
    return {
        "source": str(path.relative_to(RESULTS.parent.parent)),
        "commit": results["code_version"].get("git_commit"),
        "worth_repeats": results["config"]["worth"]["repeats"],
        "sigma_macro_f1_pooled": sigma, "sigma_df": df,
        "real_equivalent_of_full_set": {"synthetic": full["synthetic"],
                                        **headline(full, worth,
                                                   worth["synthetic_only"][-1])},
        "gain_at_smallest_real_size": {"real": smallest["real"], **gain},
        "answer_today": worth["answer"],
    }  # fmt: skip


HEADLINES = ("real_equivalent_of_full_set", "gain_at_smallest_real_size")


def smallest_n(ratios: dict[int, float | None]) -> int | None:
    """The fewest repeats tried whose projected ratio meets the target (None: not even 12)."""
    return next((n for n in REPEATS if (ratios[n] or math.inf) <= RESOLVED_RATIO), None)


def keep_repeats(worth: dict[str, Any], keep: set[int]) -> dict[str, Any]:
    """The worth section of a results.json with only the repeats in `keep`."""
    return {**worth, **{key: [{**p, "runs": {k: v for k, v in p["runs"].items() if int(k) in keep}}
                              for p in worth.get(key) or []]
                        for key in ("real_only", "real_plus_synthetic", "synthetic_only")}}


def interval_row(ci: dict[str, Any]) -> dict[str, Any]:
    return {"text": ci["text"], "ratio": ci["ratio"], "resolved": ci["resolved"],
            "low_bound": ci["low_bound"], "high_bound": ci["high_bound"]}


def measured_headlines(worth: dict[str, Any]) -> dict[str, Any]:
    """The two headline numbers of one analysis (`reanalyse`'s output) with their intervals."""
    full, small = worth["synthetic_equivalents"][-1], worth["augmentation"][0]
    return {
        "real_equivalent_of_full_set": {"synthetic": full["synthetic"],
                                        "point": full["estimate"]["text"],
                                        **interval_row(full["ci"])},
        "gain_at_smallest_real_size": {"real": small["real"], "verdict": small["verdict"],
                                       "gain_ci": small["gain_ci"]["ci_text"],
                                       **interval_row(small["equivalent"]["ci"])},
    }  # fmt: skip


def measured(results: dict[str, Any]) -> dict[str, Any]:
    """Headline interval widths for every subset of k of a study's worth repeats (k >= 2)."""
    worth = results["worth"]
    repeats = sorted({int(k) for p in worth["real_only"] for k in p["runs"]})
    by_k: dict[int, Any] = {}
    for k in range(2, len(repeats) + 1):
        subsets = [{"repeats": list(sub),
                    **measured_headlines(reanalyse(keep_repeats(worth, set(sub))))}
                   for sub in itertools.combinations(repeats, k)]
        summary = {}
        for h in HEADLINES:
            ratios = [s[h]["ratio"] for s in subsets]
            finite = sorted(r for r in ratios if r is not None)
            summary[h] = {
                "subsets": len(subsets), "resolved": sum(s[h]["resolved"] for s in subsets),
                "bounded": sum(r is None for r in ratios),
                "median_ratio": (statistics.median(ratios) if None not in ratios
                                 else None),  # a bound counts as wider than any ratio
                "largest_ratio": None if None in ratios else finite[-1],
                "smallest_ratio": finite[0] if finite else None,
            }  # fmt: skip
        by_k[k] = {"summary": summary, "subsets": subsets}
    return {"repeats": repeats, "by_k": by_k}


def main_measured(path: Path, out_path: Path) -> None:
    results = json.loads(path.read_text())
    record = {
        "what": "MEASURED upper/lower of the headline 95% intervals with k of a study's worth "
                "repeats (every subset of k), by the study's own estimator (worth.reanalyse)",
        "target_ratio": RESOLVED_RATIO, "source": str(path),
        "study": results.get("config", {}).get("name"),
        "code_version": results.get("code_version"), "hardware": results.get("hardware"),
        **measured(results),
    }  # fmt: skip
    atomic_write_json(out_path, record)
    for k, row in record["by_k"].items():
        print(f"k={k}: " + "   ".join(
            f"{h}: median {fmt(s['median_ratio'])}, largest {fmt(s['largest_ratio'])}, "
            f"resolved {s['resolved']}/{s['subsets']}" for h, s in row["summary"].items()))


def fmt(r: float | None) -> str:
    return "bound" if r is None else f"{r:.2f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--measured", type=Path, help="a study's results.json (n > 2 repeats)")
    parser.add_argument("--out", type=Path, help="with --measured: the JSON to write")
    args = parser.parse_args()
    if args.measured:
        main_measured(args.measured, args.out or RESULTS / "cpu-2core-worth-repeats-measured.json")
        return
    out = {name: study(name) for name in STUDIES}
    summary = {f"{name}: {h}": {k: smallest_n(s[h]["projected_ratio"][k])
                                for k in ("delta", "one_fitted_curve")}
               for name, s in out.items() for h in HEADLINES}
    record = {
        "what": "PROJECTED upper/lower of the headline 95% intervals for n worth repeats, from "
                "the spread of the published n=2 cpu studies (no study was run)",
        "target_ratio": RESOLVED_RATIO, "repeats": list(REPEATS), "studies": out,
        "fewest_repeats_meeting_target": summary,
    }  # fmt: skip
    atomic_write_json(RESULTS / "cpu-2core-worth-repeats.json", record)
    for name, s in out.items():
        for h in HEADLINES:
            r = s[h]["projected_ratio"]
            print(f"{name:14} {h:30} " + "  ".join(
                f"n={n}: {r['delta'][n]:.2f} ({r['one_fitted_curve'][n]:.2f})" for n in REPEATS))
    print(f"fewest repeats with ratio <= {RESOLVED_RATIO:g} (delta, one fitted curve):")
    for what, n in summary.items():
        print(f"  {what}: {n['delta']}, {n['one_fitted_curve']}")


if __name__ == "__main__":
    main()

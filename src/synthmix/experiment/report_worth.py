"""Report sections that answer the user's question: the answer paragraph, the worth curves, the
paired comparisons and the sampling settings chosen on validation images."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from synthmix.experiment.report_plots import plot_worth
from synthmix.experiment.report_render import Block, Heading, Image, Para, Table
from synthmix.experiment.stats import format_interval
from synthmix.experiment.worth import reanalyse
from synthmix.experiment.worth_text import gain_cell, tells_cell


def _f1(stats: dict[str, Any] | None) -> str:
    if not stats or stats.get("mean") is None:
        return "—"
    return f"{stats['mean']:.3f} ± {stats.get('std', 0.0):.3f} (n={stats.get('n', '?')})"


def answer_section(results: dict[str, Any]) -> list[Block]:
    """The plain-language answer, first thing in the report."""
    worth = results.get("worth") or {}
    if worth and "resolved_ratio" not in worth:  # written before intervals kept to the sizes
        worth = reanalyse(worth)
    out: list[Block] = [Heading("The answer")]
    if worth.get("answer"):
        out.append(Para(str(worth["answer"])))
    table = results.get("table") or []
    syn_only = next((r for r in table if r.get("real") == 0 and r.get("synthetic")), None)
    ref = next((r for r in table if r.get("synthetic") == 0 and r.get("real") == 1.0), None)
    if syn_only and ref:
        out.append(Para(
            f"Trained on synthetic images alone ({syn_only['name']}), the classifier scores "
            f"macro-F1 {_f1(syn_only.get('macro_f1'))}; on all real images ({ref['name']}) "
            f"{_f1(ref.get('macro_f1'))}; paired difference "
            f"{format_interval(syn_only.get('vs_reference'))}."))
    if len(out) == 1:
        out.append(Para("This study has no worth section and no real/synthetic-only pair.",
                        note=True))
    variance = results.get("variance") or {}
    if variance.get("text"):
        out.append(Para(str(variance["text"])))
    for warning in variance.get("warnings") or []:
        out.append(Para(f"Warning: {warning}."))
    return out


def paired_section(results: dict[str, Any]) -> list[Block]:
    """Each mix against all-real data and against the same real data without synthetic."""
    rows = []
    for r in results.get("table") or []:
        ref, ctrl = r.get("vs_reference"), r.get("vs_control")
        if not ref and not ctrl:
            continue
        rows.append([str(r.get("name")), _f1(r.get("macro_f1")),
                     f"{format_interval(ref)} {ref.get('verdict', '')}" if ref else "—",
                     f"{ctrl['control']}: {_f1(ctrl.get('control_macro_f1'))}" if ctrl else "—",
                     f"{format_interval(ctrl)} {ctrl.get('verdict', '')}" if ctrl else "—"])
    out: list[Block] = [Heading("Paired differences (95% confidence intervals)")]
    if not rows:
        return out + [Para("No paired comparisons (no all-real experiment).", note=True)]
    ref_name = next((r["vs_reference"]["reference"] for r in results["table"]
                     if r.get("vs_reference")), "the all-real experiment")
    return out + [
        Para(f"Differences in macro-F1, repeat by repeat (the same classifier seed, real subset "
             f"and synthetic set), with the 95% t interval of their mean. 'vs {ref_name}' "
             "compares with all real data; 'vs real only' with the same real images and no "
             "synthetic ones (mixes.controls), which says whether adding synthetic data helped."),
        Table(["Experiment", "macro-F1", f"vs {ref_name}", "real-only control",
               "vs real only"], rows),
    ]


def worth_section(study_dir: Path, results: dict[str, Any]) -> list[Block]:
    worth = results.get("worth")
    out: list[Block] = [Heading("What the synthetic data is worth")]
    if not worth:
        return out + [Para("No worth section in this study (worth.enabled is false).",
                           note=True)]
    if "resolved_ratio" not in worth:  # written before intervals kept to the sizes tried
        worth = reanalyse(worth)
    path = study_dir / "figures" / "worth.png"
    plot_worth(worth, path, str(results.get("dataset", "?")))
    out.append(Image(path, "macro-F1 against real images seen", "Mean ± std over repeats; "
                     "red points: synthetic-only classifiers at their real-equivalent size "
                     "(error bars: 95% interval over repeats, kept inside the sizes tried; "
                     "arrows: a bound)."))
    out.append(Para("Real sizes count the images each classifier saw: its real training "
                    "images plus the real validation images it early-stopped on (the same "
                    "share of the validation split, at least mixes.min_val_per_class per "
                    "class). Synthetic-only classifiers train on 90% of their synthetic "
                    "images and early-stop on the rest; real + synthetic ones train on all "
                    "of them. Real-equivalent sizes and gains: each repeat read off its own "
                    "real-only curve, the mean in log size with its 95% t interval; an "
                    "interval end beyond the sizes tried is a bound, and a gain is a multiple "
                    "only where its interval excludes 1x and the paired difference agrees."))
    plus = {p["size"]: p for p in worth.get("real_plus_synthetic") or []}
    aug = {a.get("seen", a["real"]): a for a in worth.get("augmentation") or []}
    rows = []
    for p in worth.get("real_only") or []:
        n, a = p["size"], aug.get(p["size"])
        d = a["difference"] if a else None
        rows.append([f"{p.get('train', n):,}", f"{n:,}", _f1(p["macro_f1"]),
                     _f1((plus.get(n) or {}).get("macro_f1")),
                     format_interval(d) if d else "—", str(d["verdict"]) if d else "—",
                     gain_cell(a) if a else "—"])
    out.append(Table(["real training images", "real images seen", "real only",
                      "real + synthetic", "difference [95% CI]", "verdict",
                      "worth (x real seen)"], rows))
    eq_rows = [[f"{e['synthetic']:,} ({e.get('trained', e['synthetic']):,})",
                e["estimate"]["text"], e["ci"]["text"], tells_cell(e["ci"]), str(e["n"])]
               for e in worth.get("synthetic_equivalents") or []]
    out.append(Table(["synthetic images alone (trained on)", "real-equivalent images seen",
                      "95% CI", "within a factor of 2?", "repeats"], eq_rows))
    return out


def tuning_section(results: dict[str, Any]) -> list[Block]:
    sampling = results.get("sampling") or {}
    tuning = results.get("tuning")
    out: list[Block] = [Heading("Sampling settings")]
    label = sampling.get("label", "?")
    if not tuning:
        return out + [Para(f"Sampled with {label}, as configured (not tuned).")]
    rows = [[str(c["label"]), str(c["nfe_per_image"]), _f1(c["val_macro_f1"]),
             "chosen" if c["label"] == tuning["chosen"] else ""]
            for c in tuning.get("candidates") or []]
    noise = tuning.get("noise") or {}
    if noise.get("standard_error") is not None:
        spread = (f" Best mean {noise['best_mean']:.3f} ({noise['best']}), one standard error "
                  f"{noise['standard_error']:.3f} over {tuning.get('seeds')} seeds; within it: "
                  f"{', '.join(noise['within_noise'])}.")
    else:
        spread = (f" One classifier seed per candidate ({tuning.get('seeds', 1)}): the "
                  "seed-to-seed noise is unknown, so this choice may not survive a rerun.")
    return out + [
        Para(f"Chosen on validation images: {label}. Criterion: {tuning['criterion']}. "
             f"{tuning['n_per_class']} images per class per candidate, "
             f"{tuning['n_validation']} validation images; the test set was not read." + spread),
        Table(["candidate", "network evaluations / image", "validation macro-F1", ""], rows),
    ] + ([Para(f"Warning: {tuning['guidance_at_edge']}.")] if tuning.get("guidance_at_edge")
         else [])


def capped_note(summaries: Sequence[dict[str, Any]]) -> list[Block]:
    """A warning when a wall-clock cap, not the configured budget, ended a DDPM's training."""
    capped = [s for s in summaries if s.get("time_capped")]
    if not capped:
        return []
    s = capped[0]
    budget = s.get("budget") or {}
    return [Para(f"Warning: the wall-clock cap (train.max_minutes = {budget.get('max_minutes')}) "
                 f"stopped DDPM training after {s.get('steps')} steps, before its budget "
                 f"(max_steps = {budget.get('max_steps')}, max_epochs = "
                 f"{budget.get('max_epochs')}). These results are not the config's result and "
                 "will differ on a faster or less loaded machine.")]

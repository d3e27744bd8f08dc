"""The study report: report.md and a standalone report.html, regenerated from results.json.

Sections are built once as small blocks (headings, paragraphs, tables, images, code) and
rendered twice, so the Markdown and the HTML always say the same thing. Every file the report
shows may be missing (DDPM reused from elsewhere, quality disabled, no sweep): its section
then says so in one line.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from synthmix.data.splits import SPLIT_NAMES
from synthmix.errors import DataError
from synthmix.experiment.report_folder import guard_section, sizing_section
from synthmix.experiment.report_plots import _fmt_pct, plot_guidance_sweep, plot_table6_bar
from synthmix.experiment.report_render import (
    Block,
    Code,
    Heading,
    Image,
    Para,
    Table,
    render_html,
    render_markdown,
)
from synthmix.experiment.report_worth import (
    answer_section,
    capped_note,
    paired_section,
    tuning_section,
    worth_section,
)
from synthmix.files import atomic_write_text

MAX_EPOCH_GRIDS = 4
THUMB_PX = 260  # width of loss-curve / confusion-matrix thumbnails in the HTML


@dataclass(frozen=True)
class Report:
    study_dir: Path
    results: dict[str, Any]


def _fmt_stats(stats: dict[str, Any] | None, with_n: bool = True, digits: int = 3) -> str:
    """'0.912 ± 0.004 (n=3)'; the same text as metrics.classification.format_mean_std."""
    if not stats or stats.get("mean") is None:
        return "—"
    if with_n:
        from synthmix.metrics.classification import format_mean_std

        return format_mean_std(stats, digits=digits)
    return f"{stats['mean']:.{digits}f} ± {stats.get('std', 0.0):.{digits}f}"


def _fmt_num(value: Any, digits: int = 3) -> str:
    if isinstance(value, bool) or value is None:
        return "—" if value is None else str(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if abs(value) >= 1000:
            return f"{value:.1f}"
        # Tiny values (KID) keep their significant digits instead of rounding to 0.000.
        return f"{value:.{digits}g}" if 0 < abs(value) < 0.1 ** (digits - 1) else (
            f"{value:.{digits}f}")
    return str(value)


def _fmt_seconds(seconds: Any) -> str:
    if not isinstance(seconds, int | float):
        return "—"
    m, s = divmod(int(round(seconds)), 60)
    h, m = divmod(m, 60)
    return f"{seconds:.1f} s ({h}:{m:02d}:{s:02d})"


def _read_json(path: Path) -> dict[str, Any] | None:
    """A JSON object from `path`, or None when it is missing or unreadable."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _seed0(runs: Sequence[dict[str, Any]]) -> dict[str, Any] | None:
    return next((r for r in runs if r.get("seed") == 0), runs[0] if runs else None)


def _run_dir(study_dir: Path, run: dict[str, Any] | None) -> Path | None:
    if not run or not run.get("run_dir"):
        return None
    return study_dir / str(run["run_dir"])


def _image(path: Path | None, alt: str, width: int | None = None) -> Image | None:
    return Image(path, alt, width=width) if path is not None and path.is_file() else None


def _is_scalar(value: Any) -> bool:
    """A value for a table cell; PNG file names are left out (the images are shown instead)."""
    if isinstance(value, str):
        return not value.lower().endswith(".png")
    return isinstance(value, int | float | bool) or value is None


def _what_was_run(rep: Report) -> list[Block]:
    r = rep.results
    cfg = r.get("config") or {}
    syn, mixes = cfg.get("synthetic") or {}, cfg.get("mixes") or {}
    model = (cfg.get("classifier") or {}).get("model") or {}
    semantics = r.get("semantics") or mixes.get("semantics") or "?"
    if semantics == "fixed-total":
        total = mixes.get("total")
        how = ("fixed-total: every experiment trains on the same number of images ("
               + (f"{total}" if total else "the size of the real pool")
               + "), of which real / (real + synthetic) are real")
    elif semantics == "fraction-of-pools":
        how = ("fraction-of-pools (as in the study's code): each experiment takes the stated "
               "fraction of the real pool and of the synthetic pool, so the training-set size "
               "changes between experiments")
    else:
        how = str(semantics)
    cap = mixes.get("real_pool_size")
    sampling = r.get("sampling") or {}
    steps = "T" if syn.get("sampler") == "ancestral" else syn.get("steps", "?")
    label = sampling.get("label") or (
        f"{syn.get('sampler', '?')}-{steps} w={syn.get('guidance_scale', '?'):g}"
        if isinstance(syn.get("guidance_scale"), int | float) else
        f"{syn.get('sampler', '?')}-{steps} w={syn.get('guidance_scale', '?')}")
    how_chosen = ("chosen on validation images (see Sampling settings)"
                  if sampling.get("chosen_on_validation") else "as configured")
    plan = r.get("plan") or {}
    sets = syn.get("sets", 1)
    clf = cfg.get("classifier") or {}
    recipe = clf.get("train") or {}
    aug = clf.get("augment") or {}
    cut = aug.get("cutout", 0)
    text = (
        f"A class-conditional DDPM on {r.get('dataset', '?')} sampled {sets} class-balanced "
        f"synthetic set(s) of {syn.get('n_per_class', '?')} images per class with {label} "
        f"({how_chosen}). {len(r.get('table') or [])} experiments each trained a classifier "
        f"(preset {model.get('preset', 'custom')}) in {r.get('seeds', '?')} repeats and scored "
        f"it once on the real test set ({plan.get('classifier_runs', '?')} classifier runs in "
        f"all). Mix semantics: {how}."
        + (f" The real training pool was capped at {cap} images." if cap else "")
        + f" Classifier recipe, the same for every cell: batch {recipe.get('batch_size')}, "
        f"lr {recipe.get('lr')} ({recipe.get('lr_schedule', 'constant')}), at most "
        f"{recipe.get('max_epochs')} epochs"
        + (f" of {recipe['steps_per_epoch']} steps" if recipe.get("steps_per_epoch") else "")
        + f", early stopping with patience {recipe.get('patience')}, label smoothing "
        f"{clf.get('label_smoothing', 0)}, random translation up to "
        f"{aug.get('random_crop_padding', 0)} px, horizontal flips "
        f"{'on' if aug.get('horizontal_flip') else 'off'}, cutout "
        f"{f'{cut} px squares' if cut else 'off'}, test-time flip "
        f"{'on' if clf.get('test_time_flip') else 'off'}."
    )
    out: list[Block] = [Heading("What was run"), Para(text)]
    who = _who_saw_what(rep)
    return out + [Para(who)] if who else out


def _who_saw_what(rep: Report) -> str | None:
    """Which images the DDPM, the tuning and the classifiers saw (splits.json), or None when
    the study has no split record (a DDPM reused from elsewhere on a user folder, say)."""
    splits = _read_json(rep.study_dir / "splits.json")
    if not splits or not all(isinstance(splits.get(k), list) for k in SPLIT_NAMES):
        return None
    n = {k: len(splits[k]) for k in SPLIT_NAMES}
    cap = ((rep.results.get("config") or {}).get("mixes") or {}).get("real_pool_size")
    pool = (f" (the pool capped at {cap:,})" if cap and cap < n["classifier_train"] else
            " (no cap)")
    if splits.get("overlap"):
        return (
            f"Which images each part saw (the full-data scenario, diffusion_fraction 1): the "
            f"DDPM trained on {n['diffusion_train']:,} images of the train set and validated "
            f"on {n['diffusion_val']:,}; the classifiers drew their real images from the same "
            f"{n['classifier_train']:,}{pool}, so the synthetic data comes from a model that "
            f"saw the classifiers' real images; guidance tuning and every classifier's early "
            f"stopping read the same {n['classifier_val']:,} validation images the DDPM "
            f"validated on (it never trained on them). The test set was read once per "
            f"classifier, at the end, and steered nothing.")
    share = float(splits.get("diffusion_fraction", 0.5))
    return (
        f"Which images each part saw (split scenario, seed {splits.get('seed', '?')}): the "
        f"train set was split class-stratified into a DDPM part ({share:.0%}) and a "
        f"classifier part; the DDPM trained on {n['diffusion_train']:,} images and validated "
        f"on {n['diffusion_val']:,}; the classifiers drew their real images from the other "
        f"part's {n['classifier_train']:,}{pool}; guidance tuning and every classifier's early "
        f"stopping read that part's {n['classifier_val']:,} validation images. No image is in "
        f"two of these sets. The test set was read once per classifier, at the end, and "
        f"steered nothing.")


def _table6(rep: Report) -> list[Block]:
    table = rep.results.get("table") or []
    out: list[Block] = [Heading("Results (Table 6 layout)")]
    if not table:
        return out + [Para("No experiment results in results.json.", note=True)]
    header = ["Experiment", "real %", "synthetic %", "train real", "train synthetic",
              "macro-F1 mean ± std (n)", "accuracy mean ± std", "micro-F1 mean", "study's F1"]
    rows = []
    no_real: list[str] = []
    for cell in table:
        run_dir = _run_dir(rep.study_dir, _seed0(cell.get("runs") or []))
        mix = (_read_json(run_dir / "mix.json") if run_dir else None) or {}
        paper = cell.get("paper_f1")
        rows.append([str(cell.get("name", "?")), _fmt_pct(cell.get("real")),
                     _fmt_pct(cell.get("synthetic")), _fmt_num(mix.get("train_real")),
                     _fmt_num(mix.get("train_synthetic")), _fmt_stats(cell.get("macro_f1")),
                     _fmt_stats(cell.get("accuracy"), with_n=False),
                     _fmt_num((cell.get("micro_f1") or {}).get("mean")),
                     "—" if paper is None else f"{float(paper):.2f}"])
        if cell.get("real") == 0 or mix.get("train_real") == 0:
            where = mix.get("validation") or "validation details not recorded (no mix.json)"
            no_real.append(f"{cell.get('name', '?')}: {where}")
    out.append(Table(header, rows))
    out.append(Para(
        "Train sizes are repeat 0's (mix.json; an experiment without real data trains on 90% of "
        "its synthetic share). The study's F1 is what its code computed (micro-F1 averaged "
        "over batches, close to accuracy), not macro-F1."))
    val = ("Validation (early stopping): experiments with real data validate on the same share "
           "of the real validation split as of the real pool (at least mixes.min_val_per_class "
           "images per class).")
    if no_real:
        val += (" Experiments without real data validate on held-out synthetic images: "
                + "; ".join(no_real) + ".")
    return out + [Para(val)]


def _per_class(rep: Report) -> list[Block]:
    table = rep.results.get("table") or []
    classes: list[str] = []
    for cell in table:
        classes += [c for c in cell.get("per_class_f1") or {} if c not in classes]
    out: list[Block] = [Heading("Per-class F1 (mean over seeds)")]
    if not classes:
        return out + [Para("No per-class F1 in results.json.", note=True)]
    rows = [
        [str(cell.get("name", "?"))]
        + [_fmt_num((cell.get("per_class_f1") or {}).get(c)) for c in classes]
        for cell in table
    ]
    return out + [Table(["Experiment", *classes], rows)]


def _bar_chart(rep: Report) -> list[Block]:
    table = rep.results.get("table") or []
    out: list[Block] = [Heading("Macro-F1 next to the study")]
    if not table:
        return out + [Para("No experiments to plot.", note=True)]
    path = rep.study_dir / "figures" / "table6_bar.png"
    plot_table6_bar(table, path, str(rep.results.get("dataset", "?")))
    return out + [Image(path, "macro-F1 per experiment next to the study's F1",
                        "Bars: mean over seeds; error bars: sample std.")]


def _sweep(rep: Report) -> list[Block]:
    sweep = rep.results.get("guidance_sweep") or []
    out: list[Block] = [Heading("Guidance sweep")]
    if not sweep:
        return out + [Para("No guidance sweep in this study (guidance_sweep.scales is empty).",
                           note=True)]
    points = sorted(sweep, key=lambda s: float(s.get("guidance_scale", 0.0)))
    rows = [
        [f"{float(s.get('guidance_scale', 0.0)):g}", _fmt_stats(s.get("macro_f1")),
         _fmt_stats(s.get("accuracy"), with_n=False)] for s in points
    ]
    path = rep.study_dir / "figures" / "guidance_sweep.png"
    plot_guidance_sweep(points, path)
    return out + [
        Para("Classifiers trained on synthetic data only, sampled with each guidance scale w."),
        Table(["guidance scale w", "macro-F1 mean ± std (n)", "accuracy mean ± std"], rows),
        Image(path, "macro-F1 against guidance scale", "Macro-F1 (mean ± std) vs w."),
    ]


def _ddpm_dir(rep: Report) -> tuple[Path | None, str]:
    """The DDPM run directory: the study's own, else the reused one named in results.json."""
    own = rep.study_dir / "ddpm"
    if own.is_dir():
        return own, "trained in this study (ddpm/)"
    other = rep.results.get("ddpm_run")
    if other and Path(other).is_dir():
        return Path(other), f"reused from {other}"
    return None, f"run directory not found ({other or 'ddpm/'})"


def _epoch_number(path: Path) -> int:
    m = re.search(r"(\d+)", path.stem)
    return int(m.group(1)) if m else -1


def _samples(rep: Report) -> list[Block]:
    out: list[Block] = [Heading("DDPM samples")]
    ddpm, where = _ddpm_dir(rep)
    if ddpm is None:
        return out + [Para(f"No DDPM sample grids: {where}.", note=True)]
    epochs = sorted((ddpm / "samples").glob("epoch-*.png"), key=_epoch_number)
    if len(epochs) > MAX_EPOCH_GRIDS:  # evenly spaced, always the first and the last
        k = len(epochs) - 1
        picks = sorted({round(i * k / (MAX_EPOCH_GRIDS - 1)) for i in range(MAX_EPOCH_GRIDS)})
        epochs = [epochs[i] for i in picks]
    final = ddpm / "samples" / "final.png"
    figs: list[Block] = [Image(final, "final sample grid", "After training (final weights).")]
    figs = figs if final.is_file() else []
    figs += [Image(p, f"samples at epoch {_epoch_number(p)}", f"Epoch {_epoch_number(p)}.")
             for p in epochs]
    if not figs:
        return out + [Para(f"No sample grids in {ddpm / 'samples'}.", note=True)]
    return out + [Para(f"One row per class. DDPM {where}.")] + figs


def _ddpm_training(rep: Report) -> list[Block]:
    out: list[Block] = [Heading("DDPM training")]
    ddpm, where = _ddpm_dir(rep)
    if ddpm is None:
        return out + [Para(f"No DDPM training record: {where}.", note=True)]
    summary = _read_json(ddpm / "train_summary.json")
    out += capped_note([summary] if summary else [])
    if summary:
        keys = [k for k in ("epochs", "best_epoch", "best_val_loss", "stop_reason",
                            "train_seconds", "images_per_second", "steps") if k in summary]
        values = [_fmt_seconds(summary[k]) if k.endswith("seconds") else _fmt_num(summary[k], 4)
                  for k in keys]
        out.append(Table(["", *keys], [["DDPM", *values]]))
    else:
        out.append(Para("No train_summary.json (training unfinished or not recorded).",
                        note=True))
    info = _read_json(ddpm / "run.json") or {}
    if info.get("command"):
        out.append(Para(f"Trained with: {info['command']}"))
    curve = ddpm / "loss_curve.png"
    if not curve.is_file():
        return out + [Para("No DDPM loss curve (loss_curve.png missing).", note=True)]
    return out + [Image(curve, "DDPM loss curve", "Train and validation loss per epoch.")]


def _classifiers(rep: Report) -> list[Block]:
    out: list[Block] = [Heading("Classifier training (seed 0)")]
    rows = []
    for cell in rep.results.get("table") or []:
        run = _seed0(cell.get("runs") or []) or {}
        run_dir = _run_dir(rep.study_dir, run)
        name = str(cell.get("name", "?"))
        images = [
            _image(run_dir / f if run_dir else None, f"{name} {alt}", THUMB_PX) or "—"
            for f, alt in (("loss_curve.png", "loss curve"),
                           ("confusion_matrix.png", "confusion matrix"))
        ]
        rows.append([name, f"{_fmt_num(run.get('epochs'))} ({_fmt_num(run.get('best_epoch'))})",
                     str(run.get("stop_reason") or "—"), _fmt_num(run.get("train_seconds"), 1),
                     *images])
    if not rows:
        return out + [Para("No classifier runs.", note=True)]
    header = ["Experiment", "epochs (best)", "stop reason", "train s", "loss curve",
              "confusion matrix"]
    return out + [Table(header, rows)]


def _quality(rep: Report) -> list[Block]:
    out: list[Block] = [Heading("Synthetic data quality")]
    quality = rep.results.get("quality")
    qdir = rep.study_dir / "quality"
    pngs = sorted(qdir.glob("*.png")) if qdir.is_dir() else []
    if not isinstance(quality, dict) and not pngs:
        return out + [Para("No synthetic-quality results (quality disabled or not run).",
                           note=True)]
    quality = quality if isinstance(quality, dict) else {}
    scalars = [[str(k), _fmt_num(v, 4)] for k, v in quality.items() if _is_scalar(v)]
    if scalars:
        out.append(Table(["measure", "value"], scalars))
    for key, value in quality.items():
        out += _nested_table(str(key), value)
    out += [Image(p, p.stem, p.name) for p in pngs]
    return out


def _nested_table(key: str, value: Any) -> list[Block]:
    """A dict of scalars as two columns, a dict of dicts (per class) as a grid."""
    if not isinstance(value, dict) or not value:
        return []
    if all(_is_scalar(v) or isinstance(v, str) for v in value.values()):
        rows = [[str(k), _fmt_num(v, 4)] for k, v in value.items()
                                  if _is_scalar(v)]
        return [Para(key), Table([key, "value"], rows)] if rows else []
    if all(isinstance(v, dict) for v in value.values()):
        cols: list[str] = []
        for v in value.values():
            cols += [str(c) for c, x in v.items() if _is_scalar(x) and str(c) not in cols]
        grid = [[str(k), *(_fmt_num(v.get(c), 4) for c in cols)]
                                  for k, v in value.items()]
        return [Para(key), Table([key, *cols], grid)] if cols else []
    return []


def _provenance(rep: Report) -> list[Block]:
    import yaml

    r = rep.results
    out: list[Block] = [Heading("Provenance"), Heading("Config", 3)]
    out.append(Code(yaml.safe_dump(r.get("config") or {}, sort_keys=False), "yaml"))
    for title, key in (("Code version", "code_version"), ("Hardware", "hardware")):
        info = r.get(key)
        out.append(Heading(title, 3))
        if isinstance(info, dict) and info:
            out.append(Table(["", "value"], [[str(k), str(v)] for k, v in info.items()]))
        else:
            out.append(Para(f"Not recorded ({key}).", note=True))
    sets = r.get("synthetic_sets") or []
    if isinstance(sets, dict):  # results.json of synthmix before 0.2
        sets = list(sets.values())
    runs = r.get("ddpm_runs") or [r.get("ddpm_run", "—")]
    out.append(Para(f"DDPM run(s): {', '.join(map(str, runs))}. Synthetic sets: "
                    + (", ".join(f"{i}: {v}" for i, v in enumerate(sets)) or "—") + "."))
    out.append(Heading("Wall time per stage", 3))
    stages = r.get("stages") or {}
    if stages:
        out.append(Table(["stage", "status", "wall time", "finished"], [
            [str(name), str(s.get("status", "—")), _fmt_seconds(s.get("seconds")),
             str(s.get("finished", "—"))]
            for name, s in stages.items() if isinstance(s, dict)]))
    else:
        out.append(Para("No stage timings recorded.", note=True))
    out.append(Para(f"Total wall time of the last run: {_fmt_seconds(r.get('wall_seconds'))}."))
    return out


def _answer(rep: Report) -> list[Block]:
    return answer_section(rep.results)


def _paired(rep: Report) -> list[Block]:
    return paired_section(rep.results)


def _worth(rep: Report) -> list[Block]:
    return worth_section(rep.study_dir, rep.results)


def _tuning(rep: Report) -> list[Block]:
    return tuning_section(rep.results)


def _guard(rep: Report) -> list[Block]:
    return guard_section(rep.study_dir, rep.results)


def _sizing(rep: Report) -> list[Block]:
    return sizing_section(rep.study_dir)


SECTIONS = (_answer, _guard, _what_was_run, _sizing, _table6, _paired, _worth, _tuning,
            _per_class, _bar_chart, _sweep, _samples, _ddpm_training, _classifiers, _quality,
            _provenance)


def load_results(study_dir: Path) -> dict[str, Any]:
    """results.json of a study directory, with a clear error when missing or broken."""
    path = Path(study_dir) / "results.json"
    if not path.is_file():
        raise DataError("no results.json in the study directory", path=path,
                        hint="run `synthmix experiment` on it first")
    return read_results_json(path)


def read_results_json(path: Path) -> dict[str, Any]:
    """A study's results (results.json, or a published copy under another name)."""
    if not path.is_file():
        raise DataError("no such results file", path=path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise DataError(f"the results file is not readable JSON ({err})", path=path) from None
    if not isinstance(data, dict):
        raise DataError("the results file must hold a JSON object", path=path)
    return data


def write_report(study_dir: Path) -> Path:
    """Write figures/, report.md and report.html into `study_dir`; returns report.md's path."""
    study_dir = Path(study_dir)
    rep = Report(study_dir, load_results(study_dir))
    title = f"synthmix study: {rep.results.get('name', '?')} ({rep.results.get('dataset', '?')})"
    blocks: list[Block] = [Heading(title, 1)]
    for section in SECTIONS:  # each may write the figure it shows into figures/
        blocks += section(rep)
    md_path = study_dir / "report.md"
    atomic_write_text(md_path, render_markdown(blocks, study_dir))
    atomic_write_text(study_dir / "report.html", render_html(blocks, title))
    return md_path

"""DDPM time-to-quality: validation quality of the samples against DDPM training minutes.

Each candidate recipe (a DDPM config plus overrides, e.g. fewer steps with the cosine decay
over them, min-SNR loss weighting) is trained once; its sampling weights are also kept at a
few earlier epochs (`snapshot_epochs`), so one run gives several points of its curve. Every
point is judged the same way, on VALIDATION images only (`sampler_quality.py`, which scores
with `synthmix.synthetic.tune`): a class-balanced set sampled with the same per-image seeds,
a fixed classifier recipe trained on it alone (several seeds) and scored on the classifier
half's validation split (CAS macro-F1), and the set's FID against those validation images in
the feature space of a real-trained classifier of the same recipe. The test set is never read.

The minutes of a point are the training seconds the loop recorded up to that epoch
(`metrics.jsonl`): its training steps only; validation, sample grids and checkpoints, the same
for every candidate, are not counted (a study's DDPM stage adds them).

Rule (`reaches`): a point reaches the reference (the first candidate's final checkpoint) when
its mean CAS is at least the reference's minus two standard errors of the difference (seed
to seed, `SE_FACTOR`); the fastest point that reaches it, and whose candidate reaches it at
its own end, is named. With 3 classifier seeds per point, a difference smaller than that
noise is not a finding.

    PYTHONPATH=src python benchmarks/ddpm_time_to_quality.py configs/ddpm/mnist-cpu.yaml \\
        --data-dir ../shared/datasets --out runs/ddpm-ttq \\
        --candidate today --candidate "cosine-1800:train.max_steps=1800" \\
        --candidate "min-snr-1800:train.max_steps=1800,loss_weighting=min_snr" \\
        --snapshot-epochs 12 18 24

Writes OUT/<candidate>/ (the DDPM run and its judged points), OUT/time_to_quality.json and
.png, and prints a markdown table. A re-run resumes unfinished runs and reuses judged points.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import shutil
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

log = logging.getLogger("synthmix.ddpm_time_to_quality")

RESULT_JSON = "time_to_quality.json"
RESULT_PNG = "time_to_quality.png"
SE_FACTOR = 2.0  # "reaches": mean >= reference mean - SE_FACTOR x SE of the difference


@dataclass(frozen=True)
class Candidate:
    """A DDPM recipe: a name and `--set`-style overrides of the base config."""

    name: str
    overrides: tuple[str, ...]


def parse_candidate(text: str) -> Candidate:
    """'NAME' or 'NAME:key=value,key=value' -> Candidate."""
    from synthmix.errors import ConfigError

    name, _, rest = text.partition(":")
    if not name or "/" in name or name.startswith("."):
        raise ConfigError(f"--candidate {text!r}: give a plain NAME first (NAME:key=value,...)")
    overrides = tuple(p.strip() for p in rest.split(",") if p.strip())
    for o in overrides:
        if "=" not in o:
            raise ConfigError(f"--candidate {text!r}: {o!r} is not key=value")
    return Candidate(name, overrides)


def se_of_difference(a: dict[str, Any], b: dict[str, Any]) -> float:
    """Standard error of mean(a) - mean(b) from two mean_std summaries (independent seeds)."""
    return math.sqrt(a["std"] ** 2 / max(a["n"], 1) + b["std"] ** 2 / max(b["n"], 1))


def reaches(point: dict[str, Any], reference: dict[str, Any]) -> bool:
    """The rule of the module docstring."""
    p, r = point["val_macro_f1"], reference["val_macro_f1"]
    return bool(p["mean"] >= r["mean"] - SE_FACTOR * se_of_difference(p, r) - 1e-12)


def training_seconds_at(run_dir: Path, which: str, epoch: int) -> tuple[float, int]:
    """(training seconds, step) the loop recorded when checkpoint `which` was written: the
    end of `epoch` for a snapshot, the lowest validation loss for "best" (which may be a
    partial last epoch)."""
    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    if which == "best":
        rec = min(records, key=lambda r: (r["val_loss"], r["step"]))
        return float(rec["elapsed_s"]), int(rec["step"])
    for rec in records:
        if rec["epoch"] == epoch and not rec.get("partial_epoch"):
            return float(rec["elapsed_s"]), int(rec["step"])
    raise ValueError(f"{run_dir}: no record of epoch {epoch}")


def train_candidate(base: Path, cand: Candidate, snapshots: Sequence[int], data_dir: str | None,
                    run_dir: Path, progress: bool) -> dict[str, Any]:
    """Train (or resume, or reuse) one candidate's DDPM; returns its train summary."""
    from synthmix.config import load_config
    from synthmix.runs.ddpm import DDPMConfig, train_ddpm

    sets = list(cand.overrides) + [f"snapshot_epochs={json.dumps(list(snapshots))}"]
    if data_dir:
        sets.append(f"data.data_dir={data_dir}")
    cfg = load_config(DDPMConfig, base, sets)
    summary = run_dir / "train_summary.json"
    if summary.is_file():
        return dict(json.loads(summary.read_text()))
    log.info("training %s (%s)", cand.name, ", ".join(cand.overrides) or "the base config")
    return train_ddpm(cfg, run_dir, resume=(run_dir / "checkpoints").is_dir(), progress=progress)


def judge_key(run_dir: Path) -> str:
    """What a point is judged on: the image shape and the split of the DDPM's data. Candidates
    with the same key share one real-trained baseline (and FID feature network); a candidate
    at another image size or DDPM share of the data gets its own, on its own validation split."""
    from synthmix.commands.quality import ddpm_data_section

    shape = json.loads((run_dir / "run.json").read_text())["image_shape"]
    data = ddpm_data_section({"provenance": {"run_dir": str(run_dir)}})
    share = float(data.get("diffusion_fraction", 0.5))
    return (f"{'x'.join(map(str, shape))} diffusion_fraction {share:g} "
            f"split_seed {data.get('split_seed', 0)}")


def judge_point(run_dir: Path, which: str, out: Path, args: argparse.Namespace,
                baseline: Path | None) -> dict[str, Any]:
    """One checkpoint judged by sampler_quality (validation CAS and FID), reused if done."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from sampler_quality import RESULT_JSON as SQ_JSON
    from sampler_quality import run_sampler_quality

    done = out / SQ_JSON
    if done.is_file():
        return dict(json.loads(done.read_text()))
    if baseline is not None and not (out / "real-baseline").exists():
        # The real-trained baseline (and FID feature network) is the same for every point:
        # same data, recipe and seeds. Its finished runs are reused, not retrained.
        shutil.copytree(baseline, out / "real-baseline")
    return run_sampler_quality(
        run_dir, out, real=args.real, data_dir=args.data_dir, configs=[args.sampler],
        guidance=args.guidance, n_per_class=args.n_per_class, seeds=args.seeds,
        base_seed=0, classifier_preset="tiny", max_epochs=args.max_epochs,
        patience=args.patience, steps_per_epoch=args.steps_per_epoch,
        device=args.device, progress=not args.no_progress, which=which)


def run(args: argparse.Namespace) -> dict[str, Any]:
    from synthmix.files import atomic_write_json
    from synthmix.runinfo import code_version, hardware
    from synthmix.runs.ddpm import snapshot_name

    start = time.perf_counter()
    out: Path = args.out
    rows: list[dict[str, Any]] = []
    baselines: dict[str, Path] = {}  # one real-trained baseline per judge data (judge_key)
    candidates = [parse_candidate(c) for c in args.candidate]
    for cand in candidates:
        run_dir = out / cand.name / "ddpm"
        summary = train_candidate(args.config, cand, args.snapshot_epochs, args.data_dir,
                                  run_dir, not args.no_progress)
        last_epoch = int(summary["epochs"])
        points = [(snapshot_name(e), e) for e in args.snapshot_epochs if e < last_epoch]
        points.append(("best", last_epoch))
        key = judge_key(run_dir)
        for which, epoch in points:
            judged = judge_point(run_dir, which, out / cand.name / which, args,
                                 baselines.get(key))
            baselines.setdefault(key, out / cand.name / which / "real-baseline")
            seconds, step = training_seconds_at(run_dir, which, epoch)
            for cfg_row in judged["configs"]:
                rows.append({
                    "candidate": cand.name, "overrides": list(cand.overrides),
                    "checkpoint": which, "epoch": epoch, "step": step,
                    "final": which == "best", "train_minutes": round(seconds / 60, 2),
                    "steps_trained": int(summary["steps"]),
                    "stop_reason": summary["stop_reason"],
                    "images_per_second": summary["images_per_second"],
                    "guidance_scale": cfg_row["settings"]["guidance_scale"],
                    "val_macro_f1": cfg_row["val_macro_f1"],
                    "fid_vs_validation": cfg_row["fid_vs_validation"],
                    "precision_vs_validation": cfg_row.get("precision_vs_validation"),
                    "recall_vs_validation": cfg_row.get("recall_vs_validation"),
                    "judge_data": key, "n_validation": judged.get("n_validation"),
                    "real_baseline_val_macro_f1": judged["real_baseline"]["val_macro_f1"],
                    "isolated_pixels_per_image": cfg_row["isolated_pixels_per_image"],
                })  # fmt: skip
    reference = rows_of(rows, candidates[0].name, final=True)
    for r in rows:
        ref = next(x for x in reference if x["guidance_scale"] == r["guidance_scale"])
        r["delta_vs_reference"] = r["val_macro_f1"]["mean"] - ref["val_macro_f1"]["mean"]
        r["reaches_reference"] = reaches(r, ref)
    result = {
        "scored_on": "the classifier half's validation split (never the test set)",
        "base_config": str(args.config), "reference": candidates[0].name,
        "rule": f"mean CAS >= reference final mean - {SE_FACTOR} x SE of the difference "
                f"({args.seeds} classifier seeds per point)",
        "candidates": [{"name": c.name, "overrides": list(c.overrides)} for c in candidates],
        "snapshot_epochs": list(args.snapshot_epochs), "sampler": args.sampler,
        "n_per_class": args.n_per_class, "seeds": args.seeds, "points": rows,
        "fastest_reaching": fastest_reaching(rows),
        "hardware": hardware(), "code_version": code_version(), "command": " ".join(sys.argv),
        "wall_seconds": round(time.perf_counter() - start, 2),
    }  # fmt: skip
    atomic_write_json(out / RESULT_JSON, result)
    plot(result, out / RESULT_PNG)
    return result


def rows_of(rows: list[dict[str, Any]], name: str, final: bool) -> list[dict[str, Any]]:
    return [r for r in rows if r["candidate"] == name and r["final"] == final]


def fastest_reaching(rows: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The final checkpoint with the fewest training minutes that reaches the reference at
    every guidance scale judged (a recipe, not a cut-off run), or None."""
    finals: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        if r["final"]:
            finals.setdefault(r["candidate"], []).append(r)
    ok = [v for v in finals.values() if all(r["reaches_reference"] for r in v)]
    if not ok:
        return None
    best = min(ok, key=lambda v: v[0]["train_minutes"])
    return {"candidate": best[0]["candidate"], "train_minutes": best[0]["train_minutes"],
            "steps": best[0]["step"]}


def markdown_table(result: dict[str, Any]) -> str:
    lines = ["| candidate | checkpoint | step | train min | w | val CAS macro-F1 (mean ± std, "
             f"n={result['seeds']}) | vs reference | reaches | FID vs val |",
             "|---|---|---:|---:|---:|---|---:|---|---:|"]
    for r in result["points"]:
        s = r["val_macro_f1"]
        lines.append(f"| {r['candidate']} | {r['checkpoint']} | {r['step']} | "
                     f"{r['train_minutes']:.1f} | {r['guidance_scale']:g} | "
                     f"{s['mean']:.3f} ± {s['std']:.3f} | {r['delta_vs_reference']:+.3f} | "
                     f"{'yes' if r['reaches_reference'] else 'no'} | "
                     f"{r['fid_vs_validation']:.2f} |")
    return "\n".join(lines)


def plot(result: dict[str, Any], path: Path) -> None:
    from synthmix.plots import _pyplot, _save

    fig, axes = _pyplot().subplots(1, 2, figsize=(10, 4))
    for cand in result["candidates"]:
        for w in sorted({r["guidance_scale"] for r in result["points"]}):
            pts = sorted((r for r in result["points"]
                          if r["candidate"] == cand["name"] and r["guidance_scale"] == w),
                         key=lambda r: r["train_minutes"])
            label = f"{cand['name']} w={w:g}"
            x = [r["train_minutes"] for r in pts]
            axes[0].errorbar(x, [r["val_macro_f1"]["mean"] for r in pts],
                             yerr=[r["val_macro_f1"]["std"] for r in pts], marker="o",
                             capsize=3, label=label)
            axes[1].plot(x, [r["fid_vs_validation"] for r in pts], marker="o", label=label)
    axes[0].set_ylabel(f"validation CAS macro-F1 (± std, n={result['seeds']} seeds)")
    axes[1].set_ylabel("FID vs validation (classifier features)")
    for ax in axes:
        ax.set_xlabel("DDPM training minutes")
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=7)
    hw = result["hardware"]
    fig.suptitle(f"DDPM time to quality ({hw.get('cpu_model', hw.get('device', ''))})",
                 fontsize=10)
    _save(fig, path)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("config", type=Path,
                   help="the base DDPM config, e.g. configs/ddpm/mnist-cpu.yaml")
    p.add_argument("--candidate", action="append", required=True,
                   help="NAME or NAME:key=value,... (repeat; the first is the reference)")
    p.add_argument("--snapshot-epochs", nargs="*", type=int, default=[],
                   help="also judge each candidate's weights at the end of these epochs")
    add_judge_arguments(p)
    return p.parse_args(argv)


def add_judge_arguments(p: argparse.ArgumentParser, sampler: str = "dpmpp:10",
                        guidance: float = 1.0, n_per_class: int = 100) -> None:
    """The data, judge and machine options this script shares with preliminary.py."""
    p.add_argument("--real", help="the real data set (default: the config's)")
    p.add_argument("--data-dir", help="where the data set's files are")
    p.add_argument("--sampler", default=sampler, help="SAMPLER:STEPS (default %(default)s)")
    p.add_argument("--guidance", nargs="+", type=float, default=[guidance])
    p.add_argument("--n-per-class", type=int, default=n_per_class)
    p.add_argument("--seeds", type=int, default=3, help="judge classifiers per point")
    p.add_argument("--max-epochs", type=int, default=15, help="judge classifier epochs")
    p.add_argument("--patience", type=int, default=3, help="judge early-stopping patience")
    p.add_argument("--steps-per-epoch", type=int,
                   help="judge classifier steps per epoch (default: one pass over its images)")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--num-threads", type=int)
    p.add_argument("--device", default="auto")
    p.add_argument("--no-progress", action="store_true")


def main(argv: Sequence[str] | None = None) -> int:
    from synthmix.config import read_yaml
    from synthmix.device import set_threads
    from synthmix.errors import SynthmixError

    logging.basicConfig(level=logging.INFO, format="%(message)s")
    args = parse_args(argv)
    set_threads(args.num_threads)
    try:
        args.real = args.real or read_yaml(args.config)["data"]["dataset"]
        result = run(args)
    except SynthmixError as e:
        print(f"ddpm_time_to_quality: error: {e}", file=sys.stderr)
        return 2
    print(markdown_table(result))
    print(f"\nfastest reaching the reference: {result['fastest_reaching']}")
    print(f"written: {args.out / RESULT_JSON}, {args.out / RESULT_PNG} "
          f"({result['wall_seconds']:.1f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

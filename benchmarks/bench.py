"""synthmix vs Hugging Face diffusers, side by side on one machine, in one command.

    PYTHONPATH=src python benchmarks/bench.py [--quick] [--out results.json]
        [--presets cpu paper] [--parts train sample classifier e2e] [--threads N] [--compile]
        [--study CONFIG [--set KEY=VALUE ...]]   # the classifier part: a study's classifier

Prints markdown tables and writes JSON (with the machine it ran on). See benchmarks/README.md
for what each number means and how the diffusers model is matched. Needs `pip install .[bench]`.
"""

from __future__ import annotations

import argparse
import glob
import json
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
try:
    import synthmix  # noqa: F401
except ImportError:  # run from a checkout without `pip install -e .`
    sys.path.insert(0, str(ROOT / "src"))

import torch  # noqa: E402
from measure import load_average, machine  # noqa: E402
from report import print_report  # noqa: E402
from sampling import SamplePlan, check_agreement, eval_rows, overhead_rows, sampler_rows  # noqa: E402
from training import (  # noqa: E402
    DDPM_VARIANTS,
    Plan,
    classifier_case,
    ddpm_case,
    match_check,
    measure_group,
    study_classifier_case,
)

from synthmix.files import atomic_write_json  # noqa: E402
from synthmix.runinfo import code_version  # noqa: E402

# Data shapes per U-Net preset (C, H, W) and the training batch synthmix uses for it.
DDPM_SHAPES = {"cpu": [(1, 16, 16)], "paper": [(1, 32, 32), (3, 32, 32)]}
DDPM_SHAPES_QUICK = {"cpu": [(1, 16, 16)], "paper": [(3, 32, 32)]}  # ~3 s per paper step
CLASSIFIER_PRESETS = ("tiny", "small")
CLASSIFIER_SHAPES = [(1, 16, 16), (3, 32, 32)]
LOAD_LIMIT = 1.5


def plans(quick: bool, device: torch.device) -> dict[str, Any]:
    """Batches and window counts; --quick shrinks everything to finish in ~2 minutes."""
    gpu = device.type == "cuda"
    if quick:
        return {
            "cpu": Plan(batch=32, warmup=1, windows=2, calls=1),
            "paper": Plan(batch=4, warmup=1, windows=1, calls=1),
            "classifier": Plan(batch=32, warmup=1, windows=2, calls=1),
            "sample": SamplePlan(
                batch=8,
                steps=(10, 25),
                ancestral_steps=2,
                repeats=1,
                repeats_short=1,
                eval_windows=2,
            ),
        }
    return {
        "cpu": Plan(batch=128, warmup=3, windows=7, calls=3 if not gpu else 20),
        # ~12 s per step on a 2-core CPU: 5 single-step windows is the minimum for a median
        "paper": Plan(batch=64, warmup=2, windows=5, calls=1 if not gpu else 20),
        "classifier": Plan(batch=128, warmup=3, windows=5, calls=3 if not gpu else 20),
        "sample": SamplePlan(
            batch=256,
            steps=(10, 25, 50),
            ancestral_steps=10,
            repeats=1,
            repeats_short=3,
            eval_windows=5,
        ),
    }


def end_to_end(patterns: list[str]) -> dict[str, Any]:
    """Per-stage wall times from studies' stages.json (written by `synthmix study`)."""
    found: dict[str, Any] = {}
    for pattern in patterns:
        for path in sorted(str(Path(p).resolve()) for p in glob.glob(pattern)):
            if path in found:
                continue
            try:
                found[path] = json.loads(Path(path).read_text())
            except (OSError, json.JSONDecodeError) as e:
                found[path] = {"error": str(e)}
    return {"patterns": patterns, "studies": found}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--quick", action="store_true", help="tiny sizes: a smoke run, not numbers")
    p.add_argument("--out", default="bench-results.json", help="JSON file to write")
    p.add_argument("--presets", nargs="+", default=["cpu", "paper"], choices=sorted(DDPM_SHAPES))
    p.add_argument(
        "--parts",
        nargs="+",
        default=["train", "sample", "classifier", "e2e"],
        choices=["train", "sample", "classifier", "e2e"],
    )
    p.add_argument(
        "--threads",
        type=int,
        default=None,
        help="torch.set_num_threads (default: torch's choice, one per core)",
    )
    p.add_argument(
        "--compile",
        action="store_true",
        help="torch.compile every network (compile time is reported separately as first_call_s)",
    )
    p.add_argument("--device", default="auto", help="auto | cpu | cuda[:i]")
    p.add_argument(
        "--amp",
        default="auto",
        choices=["auto", "off", "bf16", "fp16"],
        help="training precision as synthmix picks it (auto: fp32 on CPU, bf16 CUDA)",
    )
    p.add_argument(
        "--study",
        default=None,
        help="classifier part: time this study config's classifier (its network, recipe and "
        "batch, on its training images) instead of the tiny/small presets at batch 128",
    )
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a key of --study's config (repeatable), as `synthmix experiment` does",
    )
    p.add_argument(
        "--studies",
        nargs="+",
        default=[str(ROOT / "studies" / "*" / "stages.json"), "studies/*/stages.json"],
        help="globs of stages.json for the end-to-end part",
    )
    return p.parse_args(argv)


def run(args: argparse.Namespace) -> dict[str, Any]:
    from synthmix.device import select_device

    if args.threads:
        torch.set_num_threads(args.threads)
    device = select_device(args.device)
    plan = plans(args.quick, device)
    result: dict[str, Any] = {
        "machine": {**machine(device), **code_version()},
        "settings": {
            "quick": args.quick,
            "compile": args.compile,
            "amp": args.amp,
            "presets": args.presets,
            "plans": {k: v.__dict__ for k, v in plan.items()},
        },
    }
    _warn_load("start")
    t_start = time.perf_counter()
    t_part = [t_start]

    def part_done(part: str) -> None:
        """Record the part's seconds and write what is measured so far (a killed run keeps it)."""
        now = time.perf_counter()
        result.setdefault("part_seconds", {})[part] = round(now - t_part[0], 1)
        t_part[0] = now
        atomic_write_json(args.out, {**result, "complete": False})
        print(f"[bench] {part} done in {result['part_seconds'][part]:.0f} s", file=sys.stderr)

    if "train" in args.parts:
        shapes = DDPM_SHAPES_QUICK if args.quick else DDPM_SHAPES
        result["match_check"] = [
            match_check(preset, shape) for preset in args.presets for shape in shapes[preset]
        ]
        result["training"] = [
            row
            for preset in args.presets
            for shape in shapes[preset]
            for row in measure_group(
                [
                    ddpm_case(preset, shape, v, plan[preset], device, args.amp, args.compile)
                    for v in DDPM_VARIANTS
                ],
                plan[preset],
                device,
            )
        ]
        part_done("train")
    if "sample" in args.parts:
        result["sampling_check"] = check_agreement(device)
        result["unet_eval"] = evals = eval_rows(plan["sample"], device)
        faster_cl = {
            net: max(
                (r for r in evals if r["network"] == net),
                key=lambda r: r["images_per_s"]["median"],
            )["channels_last"]
            for net in ("synthmix matched", "diffusers matched")
        }
        result["sampling"] = sampler_rows(
            plan["sample"],
            device,
            args.compile,
            faster_cl["synthmix matched"],
            faster_cl["diffusers matched"],
        )
        result["sampling_overhead"] = overhead_rows(plan["sample"].batch, device)
        part_done("sample")
    if "classifier" in args.parts:
        if args.study:
            case, cplan = study_classifier_case(
                args.study, args.overrides, plan["classifier"], device, args.compile
            )
            result["settings"]["plans"]["classifier"] = cplan.__dict__
            result["classifier"] = measure_group([case], cplan, device)
        else:
            cases = [
                classifier_case(p, s, plan["classifier"], device, args.amp, args.compile)
                for p in CLASSIFIER_PRESETS
                for s in CLASSIFIER_SHAPES
            ]
            result["classifier"] = measure_group(cases, plan["classifier"], device)
        part_done("classifier")
    if "e2e" in args.parts:
        result["end_to_end"] = end_to_end(args.studies)
    result["machine"]["load_average_1min_end"] = round(load_average(), 2)
    result["machine"]["bench_seconds"] = round(time.perf_counter() - t_start, 1)
    return result


def _warn_load(when: str, own_threads: int = 0) -> None:
    """Warn when other work loads the machine; `own_threads`: the benchmark's own busy threads,
    which the 1-minute load average still counts at the end of a run."""
    other = load_average() - own_threads
    if other > LOAD_LIMIT:
        print(
            f"WARNING: load from other work {other:.2f} > {LOAD_LIMIT} at {when}: "
            "the numbers are unreliable.",
            file=sys.stderr,
        )


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    result = run(args)
    _warn_load("end", torch.get_num_threads())
    print_report(result, LOAD_LIMIT)
    atomic_write_json(args.out, {**result, "complete": True})
    print(f"\nwrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

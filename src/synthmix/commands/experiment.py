"""`synthmix experiment`, `synthmix report` and `synthmix demo`."""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path

log = logging.getLogger("synthmix")

DEMO_CONFIG = Path(__file__).resolve().parents[1] / "experiment" / "demo.yaml"


def register(sub: argparse._SubParsersAction) -> None:
    e = sub.add_parser(
        "experiment",
        help="run a whole study from one YAML file (DDPM, synthetic set, mixes, report)",
        description=(
            "Run every missing stage of a study described by one YAML file (see configs/): "
            "train or reuse the DDPM, sample or reuse the synthetic set, train one classifier "
            "per (experiment, seed), the guidance sweep and synthetic-quality metrics if "
            "configured, then write results.json and report.md/report.html. Re-running the "
            "same command resumes a killed study and skips finished stages."
        ),
    )
    e.add_argument("config", nargs="?",
                   help="study YAML, e.g. configs/cpu/mnist.yaml (with --data: optional, "
                        "its values win over the sized ones)")
    e.add_argument(
        "--data", metavar="DATASET",
        help="size the whole study from this data set, e.g. imagefolder:PATH (a folder of "
        "train/<class>/* and test/<class>/*): image size, DDPM network and steps, synthetic "
        "images per class, epochs, learning-curve points and repeats follow written rules "
        "(and, with --budget-minutes, this machine's speed); the plan, its sizes with their "
        "rules, and the estimate are printed before training and stated in plan.json and "
        "the report",
    )
    e.add_argument("--budget-minutes", type=float, default=None,
                   help="with --data: lower the sizes until this machine's measured "
                        "estimate fits this many minutes (default: the data's rules alone, "
                        "the same sizes on any machine)")
    e.add_argument("--study-dir", help="output directory (default studies/<name>)")
    e.add_argument(
        "--set",
        dest="overrides",
        action="append",
        metavar="KEY=VALUE",
        help="override a config value, e.g. --set seeds=1 (repeatable)",
    )
    e.add_argument(
        "--estimate",
        action="store_true",
        help="do not run: time a few steps of each stage here and print the expected wall "
        "time of the whole study (upper bounds), then stop",
    )
    e.add_argument("--no-progress", action="store_true", help="no progress bars")
    e.set_defaults(func=_experiment)

    r = sub.add_parser(
        "report",
        help="regenerate report.md/report.html from a study's results",
        description="Rebuild the report of a finished study from results.json.",
    )
    r.add_argument("study_dir")
    r.set_defaults(func=_report)

    d = sub.add_parser(
        "demo",
        help="the whole pipeline on the bundled 8x8 digits, offline, in minutes on a CPU",
        description=(
            "Run the full study (DDPM, synthetic set, the five experiments of the study with "
            "error bars, report) on scikit-learn's bundled digits, upscaled to 16x16. Needs no "
            "download and finishes in about ten minutes on a 2-core laptop CPU."
        ),
    )
    d.add_argument("--study-dir", default="studies/demo", help="output directory")
    d.add_argument(
        "--set",
        dest="overrides",
        action="append",
        metavar="KEY=VALUE",
        help="override a value of the demo config (repeatable)",
    )
    d.add_argument("--no-progress", action="store_true", help="no progress bars")
    d.set_defaults(func=_demo)


def _run(config: Path, study_dir: str | None, overrides: list[str] | None, progress: bool,
         estimate: bool = False) -> int:
    from synthmix.config import load_config
    from synthmix.experiment.config import StudyConfig
    from synthmix.experiment.study import run_study

    cfg = load_config(StudyConfig, config, overrides)
    if estimate:
        from synthmix.experiment.estimate import estimate_study, format_estimate

        print(format_estimate(estimate_study(cfg, config.parent)))
        return 0
    out = Path(study_dir or f"studies/{cfg.name}")
    t0 = time.perf_counter()
    results = run_study(cfg, out, base_dir=config.parent, progress=progress)
    log.info("")
    log.info("%-8s %-22s %s", "", "macro-F1 (mean ± std)", "study's F1")
    from synthmix.metrics.classification import format_mean_std

    for cell in results["table"]:
        paper = "" if cell["paper_f1"] is None else f"{cell['paper_f1']:.2f}"
        log.info("%-8s %-22s %s", cell["name"], format_mean_std(cell["macro_f1"]), paper)
    if results.get("worth"):
        log.info("\n%s", results["worth"]["answer"])
    log.info(
        "study finished in %.1f min; report: %s", (time.perf_counter() - t0) / 60, out / "report.md"
    )
    return 0


def _experiment(args: argparse.Namespace) -> int:
    from synthmix.errors import ConfigError

    if args.data:
        from synthmix.commands.sized import run_sized

        return run_sized(args)
    if not args.config:
        raise ConfigError("give a study YAML, or --data imagefolder:PATH to size one from "
                          "your images")
    if args.budget_minutes is not None:
        raise ConfigError("--budget-minutes sizes a study from its data: use it with --data")
    return _run(Path(args.config), args.study_dir, args.overrides, not args.no_progress,
                args.estimate)


def _demo(args: argparse.Namespace) -> int:
    return _run(DEMO_CONFIG, args.study_dir, args.overrides, not args.no_progress)


def _report(args: argparse.Namespace) -> int:
    from synthmix.errors import SynthmixError
    from synthmix.experiment.report import write_report

    study = Path(args.study_dir)
    if not (study / "results.json").is_file():
        raise SynthmixError("no results.json: run the study first", path=study)
    path = write_report(study)
    log.info("report written: %s", path)
    return 0

"""`synthmix experiment --data DATASET`: a study sized from its data (experiment/sizing.py)."""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path
from typing import Any

log = logging.getLogger("synthmix")


def _facts(dataset: str, data_dir: str | None) -> Any:
    from synthmix.data import load_dataset
    from synthmix.data.registry import IMAGEFOLDER_PREFIX, check_dataset_name
    from synthmix.experiment.sizing import facts_from_arrays, facts_from_folder

    check_dataset_name(dataset)
    if dataset.startswith(IMAGEFOLDER_PREFIX):
        from synthmix.data.describe import describe_folder

        summary = describe_folder(Path(dataset[len(IMAGEFOLDER_PREFIX):]).expanduser())
        return facts_from_folder(dataset, summary)
    return facts_from_arrays(dataset, load_dataset(dataset, data_dir))


def _user_values(args: argparse.Namespace) -> dict[str, Any]:
    """The explicit values: the YAML given (if any), then --set; --data names the data."""
    from synthmix.config import deep_merge, parse_overrides, read_yaml

    user = deep_merge(read_yaml(args.config) if args.config else {},
                      parse_overrides(args.overrides))
    if isinstance(user.get("data"), dict):
        user["data"] = {k: v for k, v in user["data"].items() if k != "dataset"}
    return user


def _saved_sizing(study_dir: Path) -> dict[str, Any] | None:
    plan = study_dir / "plan.json"
    if not (study_dir / "study.yaml").is_file() or not plan.is_file():
        return None
    return json.loads(plan.read_text()).get("sizing")


def run_sized(args: argparse.Namespace) -> int:
    """Size (or, in a started study directory, reuse the sizes), print the plan and the
    estimate, then run the study unless --estimate."""
    from synthmix.experiment.estimate import estimate_study, format_estimate
    from synthmix.experiment.sizing import (
        DEFAULT_BUDGET_MINUTES,
        folder_study_name,
        format_sizing,
        resume_sizing,
        size_study,
    )
    from synthmix.experiment.study import run_study

    user = _user_values(args)
    base_dir = Path(args.config).parent if args.config else Path(".")
    facts = _facts(args.data, (user.get("data") or {}).get("data_dir"))
    out = Path(args.study_dir or f"studies/{user.get('name') or folder_study_name(args.data)}")
    saved = None if args.estimate else _saved_sizing(out)
    # The data alone sizes the study, so the same command gives the same study on any machine;
    # fitting the sizes to this machine's measured speed is asked for with --budget-minutes.
    budget = args.budget_minutes or 0.0
    if saved:
        log.info("sizes: reused from %s (a re-run resumes the same study)", out / "plan.json")
        sizing = resume_sizing(saved, facts, user)
    else:
        if budget > 0:
            log.info("sizing the study: timing a few steps of each stage here ...")
        sizing = size_study(facts, user, budget,
                            measure=lambda cfg: estimate_study(cfg, base_dir))
    est = estimate_study(sizing.config, base_dir)
    over = est["total_seconds"] / 60
    if not saved and budget > 0 and over > 1.2 * budget:
        sizing.warnings.append(
            f"the estimate ({over:.0f} min) is over the {budget:g}-minute budget: sizes at "
            "their floors, or values you set, do not fit it on this machine (busy or slow?)")
    elif not saved and budget == 0 and over > 1.2 * DEFAULT_BUDGET_MINUTES:
        sizing.warnings.append(
            f"the estimate here is {over:.0f} min (the rules aim at about "
            f"{DEFAULT_BUDGET_MINUTES:g} for a few hundred images per class): "
            f"--budget-minutes {DEFAULT_BUDGET_MINUTES:g} lowers the sizes to fit this machine")
    plan = est["plan"]
    print("\n".join(format_sizing(sizing)))
    print(f"plan: {plan['n_real_pool']} real training images in the classifier half "
          f"({plan['n_real_val']} validation), {plan['n_synthetic_pool']} images per synthetic "
          f"set, {plan['classifier_runs']} classifier runs "
          f"({', '.join(f'{k} {v}' for k, v in plan['cells'].items())} cells)")
    print(format_estimate(est))
    if args.estimate:
        return 0
    t0 = time.perf_counter()
    results = run_study(sizing.config, out, base_dir=base_dir, progress=not args.no_progress,
                        plan_extra={"sizing": sizing.record(), "estimate": est})
    if results.get("worth"):
        log.info("\n%s", results["worth"]["answer"])
    log.info("study finished in %.1f min; report: %s", (time.perf_counter() - t0) / 60,
             out / "report.md")
    return 0

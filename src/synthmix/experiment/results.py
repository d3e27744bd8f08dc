"""results.json: every cell's runs with mean ± std over repeats, paired differences with 95%
confidence intervals, the worth analysis, and what each ± covers, next to the study's numbers."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

from synthmix.config import to_dict
from synthmix.experiment.config import StudyConfig
from synthmix.experiment.mixes import real_val_count, synthetic_trained
from synthmix.experiment.plan import Cell, StudyPlan
from synthmix.experiment.stats import paired_difference
from synthmix.experiment.variance import variance_by_group
from synthmix.experiment.worth import worth_analysis
from synthmix.metrics.classification import mean_std
from synthmix.runinfo import code_version, hardware

# The study's Table 6 (F1 on the test set; its code computed micro-F1 averaged over batches).
PAPER_F1: dict[str, dict[str, float]] = {
    "mnist": {"Exp 1": 0.97, "Exp 2": 0.71, "Exp 3": 0.98, "Exp 4": 0.95, "Exp 5": 0.99},
    "cifar10": {"Exp 1": 0.69, "Exp 2": 0.36, "Exp 3": 0.50, "Exp 4": 0.44, "Exp 5": 0.36},
}
PAPER_F1["cifar10-jpeg"] = PAPER_F1["cifar10"]

METRICS = ("macro_f1", "accuracy", "micro_f1")


def summarise_runs(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """mean/std/n of each headline metric over a cell's repeats, plus per-class F1 means."""
    out: dict[str, Any] = {m: mean_std([r[m] for r in runs]) for m in METRICS}
    names = list(runs[0]["per_class_f1"]) if runs else []
    out["per_class_f1"] = {c: mean_std([r["per_class_f1"][c] for r in runs])["mean"] for c in names}
    return out


def _runs(cells: list[Cell], plan: StudyPlan, metrics: dict[str, Any]) -> list[dict[str, Any]]:
    return [{"seed": c.repeat, "repeat": c.repeat, "run_dir": plan.run_dir_of(c),
             **metrics[plan.run_dir_of(c)]} for c in sorted(cells, key=lambda c: c.repeat)]


def _by_repeat(runs: list[dict[str, Any]]) -> dict[int, float]:
    return {int(r["repeat"]): float(r["macro_f1"]) for r in runs}


def table_rows(cfg: StudyConfig, plan: StudyPlan, metrics: dict[str, Any]) -> list[dict[str, Any]]:
    """Table 6: per mix its runs, summary, the study's number and paired differences with
    Exp 1 (all real) and with the real-only control of the same real size."""
    paper = PAPER_F1.get(cfg.data.dataset, {})
    controls = {c.n_real: c for c in plan.group("control")}
    control_runs = {n: _runs([c for c in plan.group("control") if c.n_real == n], plan, metrics)
                    for n in controls}
    rows = []
    for spec in cfg.mixes.experiments:
        cells = [c for c in plan.group("table") if c.name == spec.name]
        runs = _runs(cells, plan, metrics)
        rows.append({"name": spec.name, "real": spec.real, "synthetic": spec.synthetic,
                     "n_real": cells[0].n_real, "n_synthetic": cells[0].n_synthetic,
                     "runs": runs, **summarise_runs(runs), "paper_f1": paper.get(spec.name)})
    reference = next((r for r in rows if r["synthetic"] == 0 and r["real"] == 1.0), None)
    for r in rows:
        if reference is not None and r is not reference:
            r["vs_reference"] = {"reference": reference["name"], **(paired_difference(
                _by_repeat(r["runs"]), _by_repeat(reference["runs"])) or {})}
        if r["n_real"] in control_runs and r["n_synthetic"] > 0:
            ctrl = control_runs[r["n_real"]]
            r["vs_control"] = {"control": controls[r["n_real"]].name,
                               "control_macro_f1": mean_std([x["macro_f1"] for x in ctrl]),
                               **(paired_difference(_by_repeat(r["runs"]), _by_repeat(ctrl))
                                  or {})}
    return rows


def aggregate(cfg: StudyConfig, study_dir: Path, plan: StudyPlan, metrics: dict[str, Any], *,
              sweep: list[dict[str, Any]], quality: dict[str, Any] | None,
              stages: dict[str, Any], tuning: dict[str, Any] | None, settings: Any,
              wall_seconds: float, ddpm_dirs: list[str], synthetic_sets: list[str]
              ) -> dict[str, Any]:
    controls = []
    for n in sorted({c.n_real for c in plan.group("control")}):
        cells = [c for c in plan.group("control") if c.n_real == n]
        runs = _runs(cells, plan, metrics)
        controls.append({"name": cells[0].name, "n_real": n, "runs": runs,
                         **summarise_runs(runs)})
    worth = None
    if plan.group("worth"):
        worth = worth_analysis(
            plan.group("worth"), metrics, plan.run_dir_of, plan.n_synthetic_pool,
            seen=lambda n: n + real_val_count(n, plan.n_real_pool, plan.n_real_val,
                                              plan.num_classes, cfg.mixes.min_val_per_class),
            trained=synthetic_trained)
    return {
        "name": cfg.name, "dataset": cfg.data.dataset, "semantics": cfg.mixes.semantics,
        "seeds": cfg.seeds, "config": to_dict(cfg),
        # The code this invocation started with (run.json), not whatever is checked out by now.
        "code_version": _started_with(study_dir), "hardware": hardware(),
        "plan": plan.summary(), "variance": variance_by_group(cfg, plan),
        "sampling": {"settings": asdict(settings), "label": settings.label,
                     "chosen_on_validation": tuning is not None},
        "tuning": tuning, "ddpm_runs": ddpm_dirs, "ddpm_run": ddpm_dirs[0],
        "synthetic_sets": synthetic_sets, "table": table_rows(cfg, plan, metrics),
        "controls": controls, "worth": worth,
        "guidance_sweep": [{**s, **summarise_runs(s["runs"])} for s in sweep],
        "quality": quality, "stages": stages, "wall_seconds": round(wall_seconds, 1),
    }  # fmt: skip


def _started_with(study_dir: Path) -> dict[str, Any]:
    info = Path(study_dir) / "run.json"
    if info.is_file():
        return dict(json.loads(info.read_text()).get("code_version") or code_version())
    return code_version()

"""results.json: every cell's runs with mean ± std over seeds, next to the study's numbers."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from synthmix.config import to_dict
from synthmix.runinfo import code_version, hardware

# The study's Table 6 (F1 on the test set; its code computed micro-F1 averaged over batches).
PAPER_F1: dict[str, dict[str, float]] = {
    "mnist": {"Exp 1": 0.97, "Exp 2": 0.71, "Exp 3": 0.98, "Exp 4": 0.95, "Exp 5": 0.99},
    "cifar10": {"Exp 1": 0.69, "Exp 2": 0.36, "Exp 3": 0.50, "Exp 4": 0.44, "Exp 5": 0.36},
}
PAPER_F1["cifar10-jpeg"] = PAPER_F1["cifar10"]

METRICS = ("macro_f1", "accuracy", "micro_f1")


def summarise_runs(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """mean/std/n of each headline metric over a cell's seeds, plus per-class F1 means."""
    from synthmix.metrics.classification import mean_std

    out: dict[str, Any] = {m: mean_std([r[m] for r in runs]) for m in METRICS}
    names = list(runs[0]["per_class_f1"]) if runs else []
    out["per_class_f1"] = {c: mean_std([r["per_class_f1"][c] for r in runs])["mean"] for c in names}
    return out


def _started_with(study_dir: Path) -> dict[str, Any]:
    import json

    info = Path(study_dir) / "run.json"
    if info.is_file():
        return dict(json.loads(info.read_text()).get("code_version") or code_version())
    return code_version()


def aggregate(
    cfg: Any,
    study_dir: Path,
    cells: list[dict[str, Any]],
    sweep: list[dict[str, Any]],
    quality: dict[str, Any] | None,
    stages: dict[str, Any],
    wall_seconds: float,
    ddpm_dir: Path,
    synthetic_sets: dict[str, str],
) -> dict[str, Any]:
    paper = PAPER_F1.get(cfg.data.dataset, {})
    table = []
    for cell in cells:
        summary = summarise_runs(cell["runs"])
        table.append({**cell, **summary, "paper_f1": paper.get(cell["name"])})
    return {
        "name": cfg.name,
        "dataset": cfg.data.dataset,
        "semantics": cfg.mixes.semantics,
        "seeds": cfg.seeds,
        "config": to_dict(cfg),
        # The code this invocation started with (run.json), not whatever is checked out by now.
        "code_version": _started_with(study_dir),
        "hardware": hardware(),
        "ddpm_run": str(Path(ddpm_dir).resolve()),
        "synthetic_sets": synthetic_sets,
        "table": table,
        "guidance_sweep": [{**s, **summarise_runs(s["runs"])} for s in sweep],
        "quality": quality,
        "stages": stages,
        "wall_seconds": round(wall_seconds, 1),
    }

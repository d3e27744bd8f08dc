"""The plan of a study: every classifier cell with its sizes, checked before any training.

A cell is one classifier: `n_real` real images from the classifier half's pool plus
`n_synthetic` images of synthetic set `synthetic_set`, in repeat `repeat`. The Table 6 cells
come from the mixes, the control cells (real only, at each real fraction of a mix) from
`mixes.controls`, the worth cells (learning curves) from `worth`. Cells of equal content (same
sizes, repeat and set) share one run. Every size is checked against the pools at once, and all
problems are reported together, so a config that cannot run is refused before the DDPM trains.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from synthmix.errors import ConfigError
from synthmix.experiment.config import StudyConfig
from synthmix.experiment.mixes import Mix, affordable_total, mix_counts
from synthmix.experiment.variance import check_variance_config, variance_problems
from synthmix.files import slug

log = logging.getLogger(__name__)
GROUPS = ("table", "control", "worth")


@dataclass(frozen=True)
class Cell:
    group: str  # one of GROUPS
    name: str  # "Exp 3", "real 50% only", "worth: 250 real + synthetic"
    real_fraction: float  # of the real pool
    n_real: int
    n_synthetic: int
    repeat: int
    synthetic_set: int | None  # which synthetic set (None without synthetic images)
    run_dir: str  # relative to the study directory

    @property
    def content(self) -> tuple[int, int, int, int | None]:
        """What the classifier trains on; cells with equal content are the same run."""
        return (self.n_real, self.n_synthetic, self.repeat, self.synthetic_set)


@dataclass
class StudyPlan:
    n_real_pool: int
    n_real_val: int
    n_synthetic_pool: int  # images in each synthetic set
    num_classes: int
    total: int | None  # the resolved fixed total (fixed-total semantics)
    cells: list[Cell] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)  # repeats that share a source of variance

    def group(self, name: str) -> list[Cell]:
        return [c for c in self.cells if c.group == name]

    def runs(self) -> list[Cell]:
        """One cell per distinct run (the first cell of each content), in plan order."""
        seen: dict[tuple[Any, ...], Cell] = {}
        for c in self.cells:
            seen.setdefault(c.content, c)
        return list(seen.values())

    def run_dir_of(self, cell: Cell) -> str:
        """Where the cell's classifier is (the first cell with the same content)."""
        return next(c.run_dir for c in self.cells if c.content == cell.content)

    def summary(self) -> dict[str, Any]:
        return {
            "n_real_pool": self.n_real_pool, "n_real_val": self.n_real_val,
            "n_synthetic_pool": self.n_synthetic_pool, "fixed_total": self.total,
            "cells": {g: len(self.group(g)) for g in GROUPS}, "classifier_runs": len(self.runs()),
            "warnings": self.warnings,
        }  # fmt: skip


def _pct(fraction: float) -> str:
    return f"{100 * fraction:g}%"


def plan_study(
    cfg: StudyConfig, n_real_pool: int, n_real_val: int, n_synthetic_pool: int, num_classes: int
) -> StudyPlan:
    """Every cell of the study with its sizes; ConfigError naming every size that cannot be."""
    problems: list[str] = []
    mixes = [Mix(m.name, m.real, m.synthetic) for m in cfg.mixes.experiments]
    total = None
    if cfg.mixes.semantics == "fixed-total":
        total = cfg.mixes.total or affordable_total(mixes, n_real_pool, n_synthetic_pool)
    plan = StudyPlan(n_real_pool, n_real_val, n_synthetic_pool, num_classes, total)
    sets = max(1, cfg.synthetic.sets)
    if cfg.seeds < 1 or cfg.synthetic.sets < 1 or cfg.ddpm.runs < 1:
        problems.append("seeds, synthetic.sets and ddpm.runs must be >= 1")
    problems += variance_problems(cfg)
    for k in range(max(cfg.seeds, 1)):
        for mix in mixes:
            try:
                n_real, n_syn = mix_counts(mix, cfg.mixes.semantics, n_real_pool,
                                           n_synthetic_pool, total)
            except ConfigError as e:
                problems.append(str(e))
                continue
            plan.cells.append(_cell("table", mix.name, n_real / max(n_real_pool, 1), n_real,
                                    n_syn, k, sets, f"classifiers/{slug(mix.name)}/seed-{k}"))
        if cfg.mixes.controls:
            for f in sorted({m.real for m in mixes if 0 < m.real < 1 and m.synthetic > 0}):
                n = round(f * n_real_pool)
                plan.cells.append(_cell("control", f"real {_pct(f)} only", f, n, 0, k, sets,
                                        f"classifiers/real-{slug(_pct(f))}-only/seed-{k}"))
    if cfg.worth.enabled:
        _plan_worth(cfg, plan, sets)
    for c in plan.cells:
        problems += _check_cell(c, plan)
    if problems:
        unique = list(dict.fromkeys(problems))
        raise ConfigError("the study cannot run as configured: " + "; ".join(unique[:8])
                          + (f"; and {len(unique) - 8} more" if len(unique) > 8 else ""))
    plan.warnings = check_variance_config(cfg)
    if plan.warnings:  # one line, before any work
        log.warning("study plan: %s", "; ".join(plan.warnings))
    return plan


def _cell(group: str, name: str, real_fraction: float, n_real: int, n_syn: int, repeat: int,
          sets: int, run_dir: str) -> Cell:
    return Cell(group, name, real_fraction, n_real, n_syn, repeat,
                repeat % sets if n_syn > 0 else None, run_dir)


def _plan_worth(cfg: StudyConfig, plan: StudyPlan, sets: int) -> None:
    w = cfg.worth
    for k in range(w.repeats or cfg.seeds):
        for f in w.real_fractions:
            n = round(f * plan.n_real_pool)
            plan.cells.append(_cell("worth", f"{n} real", f, n, 0, k, sets,
                                    f"worth/real-{n}/seed-{k}"))
            if w.with_synthetic:
                plan.cells.append(_cell("worth", f"{n} real + synthetic", f, n,
                                        plan.n_synthetic_pool, k, sets,
                                        f"worth/real-{n}-synthetic/seed-{k}"))
        for f in w.synthetic_fractions:
            m = round(f * plan.n_synthetic_pool)
            plan.cells.append(_cell("worth", f"{m} synthetic", 0.0, 0, m, k, sets,
                                    f"worth/synthetic-{m}/seed-{k}"))


def _check_cell(c: Cell, plan: StudyPlan) -> list[str]:
    out = []
    k = plan.num_classes
    if c.n_real > plan.n_real_pool or c.n_synthetic > plan.n_synthetic_pool:
        out.append(f"{c.name}: needs {c.n_real} real and {c.n_synthetic} synthetic images, the "
                   f"pools hold {plan.n_real_pool} and {plan.n_synthetic_pool}")
    if 0 < c.n_real < k:
        out.append(f"{c.name}: {c.n_real} real images are fewer than one per class ({k} classes)"
                   "; raise the real fraction or the real pool")
    if c.n_real == 0 and 0 < c.n_synthetic < 2 * k:
        out.append(f"{c.name}: {c.n_synthetic} synthetic images cannot hold out one validation "
                   f"image per class and still train on every class ({k} classes)")
    if c.real_fraction > 0 and c.n_real == 0:
        out.append(f"{c.name}: real fraction {c.real_fraction:g} of a pool of "
                   f"{plan.n_real_pool} gives no image")
    elif c.n_real == 0 and c.n_synthetic == 0:
        out.append(f"{c.name}: a cell without real and without synthetic images")
    return out

"""What differs between the repeats behind each ±, said cell group by cell group, and the
configs whose repeats would not differ in the way their settings suggest.

Read off the plan, not the settings alone: a cell on the whole real pool draws no real subset
(only its classifier seed changes), repeats that share a synthetic set do not vary it, and a
DDPM varies only where the repeats' sets come from different DDPMs (set j from DDPM j mod
ddpm.runs).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from synthmix.experiment.config import StudyConfig

if TYPE_CHECKING:  # plan.py imports this module for its checks
    from synthmix.experiment.plan import Cell, StudyPlan


def variance_problems(cfg: StudyConfig) -> list[str]:
    """Configs refused: seed rule 1 with several sets (its sets are the same images on the
    CPU, so 'the synthetic set differs' would be false)."""
    s = cfg.synthetic
    if s.seed_rule == 1 and s.sets > 1 and not s.path:
        return [f"synthetic.seed_rule 1 with synthetic.sets = {s.sets} makes identical sets on "
                "the CPU (the old rule keeps 32 bits of each seed); use seed_rule 2 or sets 1"]
    return []


def check_variance_config(cfg: StudyConfig) -> list[str]:
    """Warnings for repeats that would share what the config seems to vary."""
    s, runs = cfg.synthetic, cfg.ddpm.runs
    out = []
    repeats = {"seeds": cfg.seeds}
    if cfg.worth.enabled:
        repeats["worth.repeats"] = cfg.worth.repeats or cfg.seeds
    short = [f"{k} = {v}" for k, v in repeats.items() if s.sets < v]
    if short and not s.path:
        out.append(f"synthetic.sets = {s.sets} < {' and '.join(short)}: repeats share a "
                   "synthetic set, so the ± does not cover a new set for each repeat (raise "
                   f"synthetic.sets to {max(repeats.values())} for that)")
    if runs > 1 and s.sets == 1:
        out.append(f"ddpm.runs = {runs} with synthetic.sets = 1: every repeat uses DDPM 0, the "
                   "other DDPMs train for nothing")
    elif runs > s.sets:
        out.append(f"ddpm.runs = {runs} > synthetic.sets = {s.sets}: DDPMs {s.sets}.."
                   f"{runs - 1} make no set and train for nothing")
    return out


def _varied(cfg: StudyConfig, plan: StudyPlan, cells: Sequence[Cell]) -> list[str]:
    """What differs between the repeats of cells of one kind."""
    c0 = cells[0]
    out = ["the classifier seed (initial weights and data order)"]
    if cfg.mixes.resample and 0 < c0.n_real < plan.n_real_pool:
        out.append("the real subset drawn from the pool")
    if cfg.mixes.resample and c0.n_synthetic and (c0.n_synthetic < plan.n_synthetic_pool
                                                  or c0.n_real == 0):
        out.append("the synthetic images drawn from the set")
    sets = {c.synthetic_set for c in cells if c.synthetic_set is not None}
    if len(sets) > 1 and not cfg.synthetic.path:
        out.append(f"the synthetic set ({len(sets)} sets)")
    ddpms = {j % max(cfg.ddpm.runs, 1) for j in sets}
    if len(ddpms) > 1 and not cfg.ddpm.run_dir:
        out.append(f"the DDPM ({len(ddpms)} DDPMs)")
    return out


def variance_by_group(cfg: StudyConfig, plan: StudyPlan) -> dict[str, Any]:
    """Cells grouped by what differs between their repeats: per group the cell names, the
    number of repeats and the sources of variance, in words."""
    by_name: dict[str, list[Cell]] = {}
    for c in plan.cells:
        by_name.setdefault(c.name, []).append(c)
    by_sources: dict[tuple[str, ...], list[str]] = {}
    repeats: dict[tuple[str, ...], set[int]] = {}
    for name, cells in by_name.items():
        key = tuple(_varied(cfg, plan, cells))
        by_sources.setdefault(key, []).append(name)
        repeats.setdefault(key, set()).add(len({c.repeat for c in cells}))
    groups: list[dict[str, Any]] = []
    parts: list[str] = []
    for varied, names in by_sources.items():
        n = sorted(repeats[varied])
        groups.append({"cells": names, "repeats": n[-1], "varied": list(varied)})
        shown = ", ".join(names[:4]) + (f" and {len(names) - 4} more" if len(names) > 4 else "")
        only = " only" if len(varied) == 1 else ""
        count = f"{n[0]}" if len(n) == 1 else f"{n[0]}-{n[-1]}"
        parts.append(f"{shown} ({count} repeats): " + "; ".join(varied) + only)
    all_varied = [v for key in by_sources for v in key]
    fixed = []
    if not any(v.startswith("the DDPM") for v in all_varied):
        fixed.append("the DDPM (one trained DDPM)" if cfg.ddpm.runs == 1 or cfg.ddpm.run_dir
                     else f"the DDPM (DDPM 0 of {cfg.ddpm.runs} for every repeat)")
    if not any(v.startswith("the synthetic set (") for v in all_varied):
        fixed.append("the synthetic set (one set for every repeat)")
    worth_n = cfg.worth.repeats or cfg.seeds
    text = (f"± is the sample standard deviation over n={cfg.seeds} repeats"
            + (f" (worth curves: n={worth_n})" if cfg.worth.enabled and worth_n != cfg.seeds
               else "") + ". Between repeats differ, for " + ". For ".join(parts) + "."
            + (" The same in every repeat: " + "; ".join(fixed) + "." if fixed else "")
            + " Intervals are 95% t intervals over the same repeats (paired differences by "
            "repeat index).")
    return {"n": cfg.seeds, "groups": groups, "fixed": fixed,
            "warnings": check_variance_config(cfg), "text": text}

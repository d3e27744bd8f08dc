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


def _kind(c: Cell, plan: StudyPlan) -> str:
    if c.n_synthetic == 0:
        return "all-real" if c.n_real >= plan.n_real_pool else "real-subset"
    return "synthetic-only" if c.n_real == 0 else "real+synthetic"


KIND_WORDS = {
    "all-real": "cells on the whole real pool",
    "real-subset": "cells on a real subset",
    "real+synthetic": "cells with real and synthetic images",
    "synthetic-only": "cells with synthetic images only",
}


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
    """Per kind of cell, the names, the number of repeats and what differs between them."""
    kinds: dict[str, list[Cell]] = {}
    for c in plan.cells:
        kinds.setdefault(_kind(c, plan), []).append(c)
    groups: list[dict[str, Any]] = []
    parts: list[str] = []
    all_varied: list[str] = []
    for kind in KIND_WORDS:
        cells = kinds.get(kind)
        if not cells:
            continue
        names = list(dict.fromkeys(c.name for c in cells))
        repeats = sorted({c.repeat for c in cells})
        varied = _varied(cfg, plan, cells)
        all_varied += varied
        groups.append({"kind": kind, "cells": names, "repeats": len(repeats), "varied": varied})
        shown = ", ".join(names[:4]) + (f" and {len(names) - 4} more" if len(names) > 4 else "")
        only = " only" if len(varied) == 1 else ""
        parts.append(f"{KIND_WORDS[kind]} ({shown}; up to {len(repeats)} repeats): "
                     + "; ".join(varied) + only)
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

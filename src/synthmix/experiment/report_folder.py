"""Report sections for small data: warnings and copy flags beside the answer, and the sizes a
study sized from its data chose (plan.json's `sizing`, written by `experiment --data`)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from synthmix.experiment.report_render import Block, Heading, Para, Table

# A synthetic image closer to a DDPM training image than any real image is to another one is a
# suspect; a few are chance, more than this share is a flag.
CLOSER_THAN_REAL_FLAG = 0.01
# Synthetic images sitting much nearer their nearest training image than real images sit to
# theirs (mean distance ratio below this) have been pulled towards the training set.
DISTANCE_RATIO_FLAG = 0.8


def read_sizing(study_dir: Path) -> dict[str, Any]:
    """plan.json's `sizing` entry ({} for a study sized by hand)."""
    path = Path(study_dir) / "plan.json"
    try:
        plan = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
    except (OSError, ValueError):
        return {}
    sizing = plan.get("sizing") if isinstance(plan, dict) else None
    return sizing if isinstance(sizing, dict) else {}


def memorisation_flags(quality: Any) -> list[str]:
    """What in the memorisation check points at copying (empty: nothing does)."""
    memo = quality.get("memorisation") if isinstance(quality, dict) else None
    if not isinstance(memo, dict):
        return []
    flags = []
    if (memo.get("exact_copies") or 0) > 0:
        flags.append(f"{memo['exact_copies']} synthetic images are exact copies of "
                     f"{memo.get('reference', 'training images')}")
    closer = memo.get("fraction_closer_than_any_real") or 0.0
    if closer > CLOSER_THAN_REAL_FLAG:
        flags.append(f"{100 * closer:.1f}% of synthetic images are closer to a DDPM training "
                     "image than any real image is to another (a few would be chance)")
    ratio = memo.get("mean_ratio_synthetic_to_real")
    if ratio is not None and ratio < DISTANCE_RATIO_FLAG:
        flags.append(f"synthetic images sit {ratio:.2f}x as far from their nearest training "
                     "image as real images do (about 1 when they are new images)")
    return flags


def guard_section(study_dir: Path, results: dict[str, Any]) -> list[Block]:
    """Right after the answer: the plan's small-data warnings, and the memorisation measures
    whenever they flag anything; nothing when all is well."""
    warnings = read_sizing(study_dir).get("warnings") or []
    quality = results.get("quality")
    flags = memorisation_flags(quality)
    if not warnings and not flags:
        return []
    out: list[Block] = [Heading("Read the answer with these")]
    out += [Para(f"Warning: {w}.") for w in warnings]
    if flags:
        memo = quality["memorisation"]  # type: ignore[index]
        out.append(Para("The DDPM may be copying its training images, so part of what the "
                        "synthetic data is worth may be the real images it copies: "
                        + "; ".join(flags) + ". Look at quality/nearest_neighbours.png."))
        keys = ("exact_copies", "fraction_closer_than_any_real", "mean_ratio_synthetic_to_real",
                "synthetic_nn_distance_mean", "real_nn_distance_mean", "n_reference")
        out.append(Table(["memorisation measure", "value"],
                         [[k, str(round(memo[k], 4) if isinstance(memo.get(k), float)
                                  else memo.get(k, "—"))] for k in keys]))
    return out


def sizing_section(study_dir: Path) -> list[Block]:
    """Every size a study sized from its data chose, with its rule (nothing otherwise)."""
    sizing = read_sizing(study_dir)
    choices = sizing.get("choices") or []
    if not choices:
        return []
    lowered = any(c.get("source") == "time budget" for c in choices)
    how = ("then lowered those marked 'time budget' to fit --budget-minutes at the rates it "
           "measured on this machine" if lowered else
           "by written rules alone (no time budget was asked for, so the same command sizes "
           "the same study on any machine)")
    out: list[Block] = [Heading("Sizes chosen from the data"), Para(
        f"synthmix experiment --data chose these from the data's counts and image sizes, {how}; "
        "'you' marks a value you set, which always wins. The study's config (Provenance) "
        "records steps, images and epochs, never minutes, so it trains the same models on "
        "any machine.")]
    out.append(Table(["config key", "value", "rule", "from"], [
        [str(c.get("key")), json.dumps(c.get("value"), ensure_ascii=False),
         str(c.get("rule")), str(c.get("source"))] for c in choices]))
    out += [Para(f"Note: {n}.") for n in sizing.get("notes") or []]
    return out

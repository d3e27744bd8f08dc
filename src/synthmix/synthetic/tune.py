"""Choose sampling settings by the worth of the data they make, measured on validation images.

For each candidate (guidance scale w, sampler and steps, x_0 thresholding) a small class-balanced
set is sampled from the DDPM, a classifier of a fixed recipe is trained on it alone (early
stopping on 10% held-out synthetic images) and scored once on real validation images (the
classifier half's validation split, which neither the DDPM nor any classifier trained on).
Each candidate is scored by `seeds` classifiers (2 by default) so its spread is known; the
best mean wins unless other candidates lie within one standard error of it, and then the
cheapest, then the weakest guidance of those wins (`RULE`): a choice inside the seed-to-seed
noise would flip with the machine (the same MNIST command chose w=0.5 on one host and w=1 on
another). The test set is never read.

Under torchrun the candidates are shared out between ranks (each rank samples and scores its
own candidates alone), and every rank returns the same result.
"""

from __future__ import annotations

import itertools
import json
import logging
import math
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any

import torch

from synthmix.data.splits import stratified_holdout
from synthmix.diffusion.samplers import network_evaluations
from synthmix.diffusion.settings import (
    SAMPLER_NAMES,
    SamplerName,
    SamplerSettings,
    Thresholding,
)
from synthmix.errors import ConfigError
from synthmix.files import atomic_write_json, slug
from synthmix.metrics.classification import mean_std
from synthmix.runs.classifier import ClassifierRunConfig, train_classifier
from synthmix.synthetic.dataset import set_tensors
from synthmix.synthetic.generate import SamplingPrecision, sample_from_ddpm
from synthmix.training import distributed as dist

log = logging.getLogger(__name__)

Tensors = tuple[torch.Tensor, torch.Tensor]
SYN_VAL_FRACTION = 0.1  # held-out synthetic images for early stopping


def parse_sampler(text: str, T: int) -> tuple[SamplerName, int]:
    """'dpmpp:20', 'ddim:50', 'ancestral' (all T steps) -> (name, steps)."""
    head, _, steps_text = text.partition(":")
    name = next((n for n in SAMPLER_NAMES if n == head), None)
    if name is None:
        raise ConfigError(f"sampler {text!r}: unknown sampler {head!r}",
                          hint=f"choose from {', '.join(SAMPLER_NAMES)}")
    if name == "ancestral":
        if steps_text and int(steps_text) != T:
            raise ConfigError(f"sampler {text!r}: ancestral sampling runs all T={T} steps")
        return name, T
    try:
        steps = int(steps_text)
    except ValueError:
        raise ConfigError(f"sampler {text!r}: write SAMPLER:STEPS, e.g. dpmpp:20") from None
    if not 1 <= steps <= T:
        raise ConfigError(f"sampler {text!r}: steps must be in 1..{T}")
    return name, steps


def candidate_grid(
    base: SamplerSettings,
    T: int,
    guidance_scales: Sequence[float] = (),
    samplers: Sequence[str] = (),
    thresholding: Sequence[Thresholding] = (),
) -> list[SamplerSettings]:
    """Every combination of the given values; an empty list keeps `base`'s value."""
    base = SamplerSettings(**{f.name: getattr(base, f.name) for f in fields(SamplerSettings)})
    ws = list(guidance_scales) or [base.guidance_scale]
    ss = [parse_sampler(s, T) for s in samplers] or [(base.sampler, base.steps)]
    xs = list(thresholding) or [base.thresholding]
    out = [replace(base, guidance_scale=float(w), sampler=name, steps=steps, thresholding=x)
           for (name, steps), w, x in itertools.product(ss, ws, xs)]
    labels = [c.label for c in out]
    if len(set(labels)) != len(labels):
        raise ConfigError(f"tuning candidates repeat: {labels}")
    return out


@dataclass(frozen=True)
class TuneData:
    """What the scores need: class names, the real validation images, the classifier recipe."""

    class_names: tuple[str, ...]
    real_val: Tensors
    classifier: ClassifierRunConfig


def tune_sampling(
    ddpm: Any,
    candidates: Sequence[SamplerSettings],
    data: TuneData,
    out_dir: Path,
    *,
    n_per_class: int,
    seeds: int = 1,
    base_seed: int = 1_000,
    seed_rule: int = 2,
    batch_size: int = 256,
    progress: bool = False,
    comm: dist.Comm | None = None,
    precision: SamplingPrecision = "auto",
) -> dict[str, Any]:
    """Score every candidate on validation images and choose one; writes OUT/tuning.json.
    `precision`: the network's autocast when sampling (`generate.sampling_dtype`)."""

    comm = comm or dist.group()
    if not candidates or seeds < 1 or n_per_class < 2:
        raise ConfigError("tuning needs candidates, seeds >= 1 and n_per_class >= 2")
    T = ddpm.schedule.T
    for i, settings in enumerate(candidates):
        if i % comm.world != comm.rank:
            continue
        where = out_dir / slug(settings.label)
        started = time.perf_counter()
        fresh = not (where / "set" / "manifest.json").is_file()
        sample_from_ddpm(ddpm, where / "set", n_per_class=n_per_class, settings=settings,
                         base_seed=base_seed, seed_rule=seed_rule, batch_size=batch_size,
                         shard_size=max(batch_size, n_per_class), progress=progress,
                         rank=0, world_size=1, precision=precision)
        if fresh or not (where / "sampling.json").is_file():
            # Sampled whole in this call, its time is the set's sampling time; a set finished
            # after a kill has no one time (null), but the record is there as in a plain run.
            atomic_write_json(where / "sampling.json", {
                "seconds": round(time.perf_counter() - started, 3) if fresh else None,
                "images": n_per_class * len(data.class_names), "device": str(ddpm_device(ddpm)),
            })  # fmt: skip
        for k in range(seeds):
            score_set(where / "set", data, where / f"seed-{k}", k, progress)
    comm.barrier()
    rows = [_row(s, out_dir / slug(s.label), seeds, T) for s in candidates]
    chosen, noise = choose_within_noise(rows)
    result = {
        "criterion": "macro-F1 on the classifier half's validation split of a classifier "
                     "trained on the candidate's set alone (mean over seeds); " + RULE,
        "n_per_class": n_per_class, "seeds": seeds, "base_seed": base_seed,
        "n_validation": len(data.real_val[1]), "candidates": rows, "chosen": chosen["label"],
        "chosen_settings": chosen["settings"], "noise": noise,
    }  # fmt: skip
    edge = guidance_at_edge(rows, chosen)
    if edge:
        result["guidance_at_edge"] = edge
    if comm.is_main:
        if edge:
            log.warning("tuning: %s", edge)
        atomic_write_json(out_dir / "tuning.json", result)
    return result


RULE = ("the best mean wins unless others lie within one standard error of it (the best "
        "candidate's std over seeds / sqrt(seeds)); then the cheapest of those, then the "
        "weakest guidance, since a difference inside the seed-to-seed noise is no finding")


def choose_within_noise(rows: Sequence[dict[str, Any]]) -> tuple[dict[str, Any], dict[str, Any]]:
    """The chosen candidate by RULE, and what the noise was: the best mean, its standard error
    (None with one seed: the noise is unknown, and the best mean wins alone) and the
    candidates within it."""
    best = max(rows, key=lambda r: (r["val_macro_f1"]["mean"], -r["nfe_per_image"],
                                    -r["settings"]["guidance_scale"]))
    f1 = best["val_macro_f1"]
    se = f1["std"] / math.sqrt(f1["n"]) if f1["n"] >= 2 else None
    near = [r for r in rows if r["val_macro_f1"]["mean"] >= f1["mean"] - (se or 0.0) - 1e-12]
    chosen = min(near, key=lambda r: (r["nfe_per_image"], r["settings"]["guidance_scale"],
                                      -r["val_macro_f1"]["mean"]))
    return chosen, {"best": best["label"], "best_mean": f1["mean"], "standard_error": se,
                    "within_noise": [r["label"] for r in near], "rule": RULE}


def guidance_at_edge(rows: Sequence[dict[str, Any]], chosen: dict[str, Any]) -> str | None:
    """A warning when the chosen guidance is the grid's largest (or its smallest, above 0):
    the best value may lie beyond the grid, so the grid should be widened."""
    ws = sorted({float(r["settings"]["guidance_scale"]) for r in rows})
    w = float(chosen["settings"]["guidance_scale"])
    if len(ws) < 3:
        return None
    if w == ws[-1]:
        return (f"the chosen guidance w={w:g} is the largest in the grid {ws}: a larger one may "
                "score better; widen tune.guidance_scales")
    if w == ws[0] and w > 0:
        return (f"the chosen guidance w={w:g} is the smallest in the grid {ws}: a smaller one "
                "may score better; widen tune.guidance_scales")
    return None


def score_set(set_dir: Path, data: TuneData, run_dir: Path, seed: int,
              progress: bool) -> dict[str, Any]:
    """Train the recipe on the set (10% held out for early stopping), score on validation."""
    done = run_dir / "validation_metrics.json"
    if done.is_file():
        return dict(json.loads(done.read_text()))
    x, y = set_tensors(set_dir)
    keep, held = (torch.as_tensor(i) for i in stratified_holdout(y.numpy(), SYN_VAL_FRACTION,
                                                                 seed))
    cfg = replace(data.classifier, train=replace(data.classifier.train, seed=seed))
    return train_classifier(cfg, (x[keep], y[keep]), (x[held], y[held]), data.real_val,
                            data.class_names, run_dir, resume=(run_dir / "checkpoints").is_dir(),
                            progress=progress, split="validation")


def _row(settings: SamplerSettings, where: Path, seeds: int, T: int) -> dict[str, Any]:

    runs = [json.loads((where / f"seed-{k}" / "validation_metrics.json").read_text())
            for k in range(seeds)]
    timing = where / "sampling.json"
    return {
        "label": settings.label, "settings": asdict(settings),
        "nfe_per_image": network_evaluations(settings.sampler, settings.steps, T,
                                             settings.guidance_scale),
        "val_macro_f1": mean_std([r["macro_f1"] for r in runs]),
        "val_accuracy": mean_std([r["accuracy"] for r in runs]),
        "set_dir": str(where / "set"),
        "sampling": json.loads(timing.read_text()) if timing.is_file() else None,
    }  # fmt: skip


def ddpm_device(ddpm: Any) -> torch.device:
    return next(ddpm.model.parameters()).device

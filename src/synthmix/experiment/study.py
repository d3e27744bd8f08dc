"""`synthmix experiment`: run every missing stage of a study and skip finished ones.

Stages, in the order data flows: plan (every cell's sizes checked against the pools before any
work) -> DDPM(s) -> sampling settings (given, or tuned on validation images) -> synthetic
set(s) -> one classifier per cell (Table 6 mixes, real-only controls, worth curves) ->
guidance sweep -> synthetic quality -> results.json -> report. Each stage writes its outputs
atomically and is recorded in stages.json with its wall time, so a killed study re-run with
the same command resumes where it stopped. Under torchrun the ranks share the DDPM training
(DDP), the sampling (shards), the tuning candidates and the classifier cells (one cell per
rank at a time); rank 0 writes the results and the report.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch

from synthmix.config import dump_yaml, read_yaml, to_dict
from synthmix.data import to_uint8_images
from synthmix.device import select_device, set_threads
from synthmix.errors import ConfigError
from synthmix.experiment.cells import CellInputs, real_pools, run_cells, train_cell
from synthmix.experiment.config import StudyConfig
from synthmix.experiment.flops import add_compute
from synthmix.experiment.plan import Cell, StudyPlan, plan_study
from synthmix.experiment.report import write_report
from synthmix.experiment.results import aggregate
from synthmix.experiment.stages import (
    StageLog,
    sample_set,
    stage_ddpm,
    stage_synthetic,
    stage_tune,
)
from synthmix.files import atomic_write_json, atomic_write_text
from synthmix.runs.common import PreparedData, prepare_data, write_run_info
from synthmix.synthetic.cas import load_feature_classifier
from synthmix.synthetic.dataset import set_tensors
from synthmix.synthetic.evaluate import Reference, evaluate_quality
from synthmix.synthetic.format import read_manifest, read_synthetic_set
from synthmix.synthetic.generate import settings_of
from synthmix.synthetic.tune import TuneData
from synthmix.training import distributed as dist

log = logging.getLogger(__name__)

Tensors = tuple[torch.Tensor, torch.Tensor]


def check_study_dir(cfg: StudyConfig, study_dir: Path, may_change: tuple[str, ...] = ()) -> None:
    """Refuse to mix two different studies in one directory (sections in `may_change`, which
    only add cells, such as `worth`, may differ)."""
    saved = study_dir / "study.yaml"
    if not saved.is_file():
        return
    old, new = read_yaml(saved), to_dict(cfg)
    for key in may_change:
        old.pop(key, None)
        new.pop(key, None)
    if old != new:
        raise ConfigError(
            "this study directory was made with a different config",
            path=saved,
            hint="use another --study-dir, or delete the directory to start over",
        )


def synthetic_pool_size(cfg: StudyConfig, num_classes: int) -> int:
    """Images in each synthetic set: the configured sampling, or the given set's manifest."""
    if cfg.synthetic.path:

        return int(read_manifest(cfg.synthetic.path)["num_images"])
    return cfg.synthetic.n_per_class * num_classes


def make_plan(cfg: StudyConfig, data: PreparedData) -> tuple[StudyPlan, Tensors, Tensors]:
    """The study's plan (every cell checked against the pools) and the real pools."""
    real, real_val = real_pools(cfg, data)
    k = len(data.class_names)
    plan = plan_study(cfg, len(real[1]), len(real_val[1]), synthetic_pool_size(cfg, k), k)
    return plan, real, real_val


def start(cfg: StudyConfig, study_dir: Path, comm: dist.Comm,
          may_change: tuple[str, ...] = ()) -> StageLog:
    """Create or check the study directory; rank 0 writes the config and run.json."""
    study_dir.mkdir(parents=True, exist_ok=True)
    if comm.is_main:
        check_study_dir(cfg, study_dir, may_change)
        atomic_write_text(study_dir / "study.yaml", dump_yaml(cfg))
        write_run_info(study_dir, cfg, {"kind": "study", "world_size": comm.world})
    comm.barrier()
    return StageLog(study_dir / "stages.json", comm)


def run_study(
    cfg: StudyConfig, study_dir: Path, base_dir: Path = Path("."), progress: bool = True,
    allow_new_worth: bool = False, plan_extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Run (or resume) the whole study in `study_dir`; returns results.json's content.

    `allow_new_worth`: the config may differ from the study directory's in its worth section
    (`synthmix worth STUDY_DIR` adds the learning curves to a finished study). `plan_extra`
    goes into plan.json (a sized study's sizes and warnings)."""

    set_threads(cfg.num_threads)
    dist.init_from_env(select_device(cfg.device))
    comm = dist.group()
    study_dir = Path(study_dir)
    t0 = time.perf_counter()
    data = prepare_data(cfg.data)
    plan, real, real_val = make_plan(cfg, data)  # refuses an impossible study before any work
    stages = start(cfg, study_dir, comm, ("worth",) if allow_new_worth else ())
    if comm.is_main:
        data.splits.save(study_dir / "splits.json")  # which real images each half may use
        atomic_write_json(study_dir / "plan.json", {**plan.summary(), **(plan_extra or {}),
                                                    "cells": [
            {"group": c.group, "name": c.name, "repeat": c.repeat, "n_real": c.n_real,
             "n_synthetic": c.n_synthetic, "synthetic_set": c.synthetic_set,
             "run_dir": plan.run_dir_of(c)} for c in plan.cells]})
    ddpm_dirs = stage_ddpm(cfg, study_dir, base_dir, stages, progress)
    tune_data = TuneData(tuple(data.class_names), real_val, cfg.classifier)
    settings, tuning = stage_tune(cfg, ddpm_dirs[0], study_dir, stages, tune_data, progress, comm)
    if cfg.synthetic.path:  # a given set: its own settings, from its manifest

        settings = settings_of(read_manifest(cfg.synthetic.path))[0]
    set_paths = stage_synthetic(cfg, ddpm_dirs, settings, study_dir, stages, progress)
    inputs = CellInputs(real, real_val, _set_loader(set_paths), set_paths, data)
    runs = plan.runs()
    todo = [c for c in runs if not (study_dir / c.run_dir / "test_metrics.json").is_file()]
    started = time.perf_counter()
    metrics = run_cells(cfg, runs, inputs, study_dir, progress, comm)
    if todo or "classifiers" not in stages.stages:  # a re-run that trained nothing keeps the time
        stages.record("classifiers", time.perf_counter() - started, runs=len(runs),
                      trained_now=len(todo), world_size=comm.world,
                      **_classifier_throughput(plan, metrics))
    sweep = guidance_sweep(cfg, study_dir, ddpm_dirs[0], settings, stages, inputs, progress, comm)
    results: dict[str, Any] = {}
    if comm.is_main:
        quality = synthetic_quality(cfg, study_dir, set_paths[0], data, plan, stages)
        stages.replace_all(add_compute(stages.stages, cfg.classifier.model, ddpm_dirs[0],
                                       settings))
        results = finish(cfg, study_dir, plan, metrics, sweep, quality, stages, tuning,
                         settings, ddpm_dirs, set_paths, time.perf_counter() - t0)
    comm.barrier()
    return results or json.loads((study_dir / "results.json").read_text())


def _set_loader(paths: list[Path]) -> Any:
    """set index -> (images, labels) tensors, each set read from disk once."""

    cache: dict[int, Tensors] = {}

    def load(j: int) -> Tensors:
        if j not in cache:
            cache[j] = set_tensors(paths[j])
        return cache[j]

    return load


def _classifier_throughput(plan: StudyPlan, metrics: dict[str, Any]) -> dict[str, Any]:
    """Training seconds and images/s of the classifier runs, also per group of cells (a run
    counts in the group of the first cell that needs it)."""
    by_group: dict[str, float] = {}
    seconds = images = 0.0
    for cell in plan.runs():
        m = metrics[cell.run_dir]
        t = float(m.get("train_seconds") or 0)
        by_group[cell.group] = round(by_group.get(cell.group, 0.0) + t, 1)
        seconds += t
        images += t * float(m.get("images_per_second") or 0)
    return {"train_seconds": round(seconds, 1), "train_seconds_by_group": by_group,
            "images_per_second": round(images / seconds, 1) if seconds else None}


def finish(cfg: StudyConfig, study_dir: Path, plan: StudyPlan, metrics: dict[str, Any],
           sweep: list[dict[str, Any]], quality: dict[str, Any] | None, stages: StageLog,
           tuning: dict[str, Any] | None, settings: Any, ddpm_dirs: list[Path],
           set_paths: list[Path], wall_seconds: float) -> dict[str, Any]:
    """results.json and the report (rank 0)."""

    results = aggregate(
        cfg, study_dir, plan, metrics, sweep=sweep, quality=quality, stages=stages.stages,
        tuning=tuning, settings=settings, wall_seconds=wall_seconds,
        ddpm_dirs=[str(Path(d).resolve()) for d in ddpm_dirs],
        synthetic_sets=[str(p) for p in set_paths],
    )  # fmt: skip
    atomic_write_json(study_dir / "results.json", results)
    write_report(study_dir)
    return results


def guidance_sweep(cfg: StudyConfig, study_dir: Path, ddpm_run: Path, settings: Any,
                   stages: StageLog, inputs: CellInputs, progress: bool,
                   comm: dist.Comm) -> list[dict[str, Any]]:
    """The study's future work, measured: synthetic-only classifiers per guidance w, scored on
    the test set once each (a measurement reported as such; it chooses nothing)."""
    sw = cfg.guidance_sweep
    n = sw.n_per_class or cfg.synthetic.n_per_class
    out = []
    for w in sw.scales:
        path = study_dir / "synthetic" / f"sweep-w{w:g}"
        sample_set(cfg, ddpm_run, path, stages, f"synthetic-sweep-w{w:g}",
                   replace(settings, guidance_scale=w), n, cfg.synthetic.seed, progress)
        sweep_inputs = replace(inputs, synthetic=_set_loader([path]), synthetic_paths=[path])
        cells = [Cell("sweep", f"w={w:g}", 0.0, 0, n * len(inputs.data.class_names), k, 0,
                      f"guidance_sweep/w{w:g}/seed-{k}") for k in range(sw.seeds)]
        for i, cell in enumerate(cells):
            if i % comm.world == comm.rank:
                train_cell(cfg, cell, sweep_inputs, study_dir / cell.run_dir, progress)
        comm.barrier()
        runs = [{"seed": c.repeat, **json.loads((study_dir / c.run_dir / "test_metrics.json")
                                                .read_text())} for c in cells]
        out.append({"guidance_scale": w, "runs": runs})
    return out


def synthetic_quality(cfg: StudyConfig, study_dir: Path, set_path: Path, data: PreparedData,
                      plan: StudyPlan, stages: StageLog) -> dict[str, Any] | None:
    """FID/KID/precision-recall in the feature space of the all-real classifier (Exp 1), and
    memorisation measured against the DDPM's own training images."""
    if not cfg.quality.enabled:
        return None
    out_dir = study_dir / "quality"
    result = out_dir / "quality.json"
    ref = next((c for c in plan.group("table") if c.n_synthetic == 0
                and c.n_real == plan.n_real_pool), None)
    if ref is None:
        log.info("quality: no all-real experiment to take features from; skipped")
        return None

    def run() -> None:

        run_dir = study_dir / plan.run_dir_of(ref)
        net = load_feature_classifier(run_dir, cfg.classifier, data.test[0].shape[1],
                                      len(data.class_names)).to(select_device(cfg.device))
        syn = read_synthetic_set(set_path)
        half_a = Reference(to_uint8_images(data.diffusion_train[0]),
                           data.diffusion_train[1].numpy(), "the DDPM's training images")
        metrics = evaluate_quality(
            net, to_uint8_images(data.test[0]), data.test[1].numpy(), syn.images, syn.labels,
            data.class_names, out_dir, max_images=cfg.quality.max_images, k=cfg.quality.k,
            seed=cfg.data.split_seed, reference=half_a,
        )  # fmt: skip
        metrics["feature_network"] = f"classifier {ref.name} repeat 0 ({plan.run_dir_of(ref)})"
        atomic_write_json(result, metrics)

    stages.run("quality", result.is_file(), run, collective=False)
    return dict(json.loads(result.read_text())) if result.is_file() else None

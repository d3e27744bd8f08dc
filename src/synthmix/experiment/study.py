"""`synthmix experiment`: run every missing stage of a study and skip finished ones.

Stages, in the order data flows: DDPM (train or reuse) -> synthetic set(s) -> one classifier
per (experiment, seed) -> guidance sweep -> synthetic quality -> results.json -> report.
Each stage writes its outputs atomically and is recorded in stages.json with its wall time,
so a killed study re-run with the same command resumes where it stopped.
"""

from __future__ import annotations

import logging
import re
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch

from synthmix.config import deep_merge, dump_yaml, from_dict, read_yaml, to_dict
from synthmix.errors import ConfigError
from synthmix.experiment.config import StudyConfig
from synthmix.experiment.mixes import Mix, build_mix, stratified_prefix
from synthmix.files import atomic_write_json, atomic_write_text
from synthmix.runs.common import PreparedData, prepare_data, write_run_info

log = logging.getLogger(__name__)

Tensors = tuple[torch.Tensor, torch.Tensor]


class StageLog:
    """stages.json: per stage its status, wall time and outputs, rewritten atomically."""

    def __init__(self, path: Path):
        import json

        self.path = path
        self.stages: dict[str, Any] = json.loads(path.read_text()) if path.is_file() else {}

    def run(self, name: str, done: bool, fn: Any) -> Any:
        if done:
            log.info("stage %s: finished earlier, skipped", name)
            self.stages.setdefault(name, {})["skipped_at"] = time.strftime("%Y-%m-%dT%H:%M:%S")
            atomic_write_json(self.path, self.stages)
            return None
        log.info("stage %s: running", name)
        t0 = time.perf_counter()
        out = fn()
        self.stages[name] = {
            "status": "done",
            "seconds": round(time.perf_counter() - t0, 2),
            "finished": time.strftime("%Y-%m-%dT%H:%M:%S"),
        }
        atomic_write_json(self.path, self.stages)
        return out


def slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def check_study_dir(cfg: StudyConfig, study_dir: Path) -> None:
    """Refuse to mix two different studies in one directory."""
    saved = study_dir / "study.yaml"
    if saved.is_file() and read_yaml(saved) != to_dict(cfg):
        raise ConfigError(
            "this study directory was made with a different config",
            path=saved,
            hint="use another --study-dir, or delete the directory to start over",
        )


def ddpm_config_for(cfg: StudyConfig, base_dir: Path) -> Any:
    """The DDPM config of the study: its YAML and overrides, with the study's data section."""
    from synthmix.runs.ddpm import DDPMConfig

    data: dict[str, Any] = {}
    if cfg.ddpm.config:
        path = Path(cfg.ddpm.config)
        path = path if path.is_file() else base_dir / path
        data = read_yaml(path)
    data = deep_merge(data, cfg.ddpm.overrides)
    data["data"] = to_dict(cfg.data)
    data.setdefault("device", cfg.device)
    data.setdefault("num_threads", cfg.num_threads)
    return from_dict(DDPMConfig, data, "ddpm")


def stage_ddpm(
    cfg: StudyConfig, study_dir: Path, base_dir: Path, stages: StageLog, progress: bool
) -> Path:
    from synthmix.runs.ddpm import train_ddpm

    if cfg.ddpm.run_dir:
        return Path(cfg.ddpm.run_dir)
    run_dir = study_dir / "ddpm"
    done = (run_dir / "train_summary.json").is_file()
    resume = (run_dir / "checkpoints").is_dir()
    ddpm_cfg = ddpm_config_for(cfg, base_dir)
    stages.run(
        "ddpm", done, lambda: train_ddpm(ddpm_cfg, run_dir, resume=resume, progress=progress)
    )
    return run_dir


def synthetic_set(
    cfg: StudyConfig,
    ddpm_dir: Path,
    out: Path,
    stages: StageLog,
    name: str,
    guidance_scale: float,
    n_per_class: int,
    seed: int,
    progress: bool,
) -> Path:
    """Sample (or finish sampling) one synthetic set; skipped when already complete."""
    from synthmix.device import select_device
    from synthmix.runs.ddpm import load_ddpm
    from synthmix.synthetic.generate import sample_from_ddpm

    s = cfg.synthetic
    manifest = out / "manifest.json"
    done = manifest.is_file() and '"complete": true' in manifest.read_text()

    def run() -> None:
        ddpm = load_ddpm(ddpm_dir, device=select_device(cfg.device))
        sample_from_ddpm(
            ddpm, out, n_per_class=n_per_class, sampler=s.sampler, steps=s.steps,
            guidance_scale=guidance_scale, eta=s.eta, base_seed=seed,
            shard_size=s.shard_size, batch_size=s.batch_size, progress=progress,
            compile_model=s.compile,
        )  # fmt: skip

    stages.run(name, done, run)
    return out


def load_synthetic_tensors(path: Path) -> Tensors:
    from synthmix.data import to_model_tensor
    from synthmix.synthetic.format import read_synthetic_set

    syn = read_synthetic_set(path)
    return to_model_tensor(syn.images, None), torch.as_tensor(syn.labels, dtype=torch.int64)


def real_pools(cfg: StudyConfig, data: PreparedData) -> tuple[Tensors, Tensors]:
    """The classifier half's train/val split, capped at `real_pool_size` (CPU presets)."""
    train, val = data.classifier_train, data.classifier_val
    cap = cfg.mixes.real_pool_size
    if cap is None or cap >= len(train[1]):
        return train, val
    seed = cfg.data.split_seed
    ti = torch.as_tensor(stratified_prefix(train[1].numpy(), None, seed, count=cap))
    vi = torch.as_tensor(stratified_prefix(val[1].numpy(), cap / len(train[1]), seed))
    return (train[0][ti], train[1][ti]), (val[0][vi], val[1][vi])


def classifier_cell(
    cfg: StudyConfig,
    mix: Mix,
    seed: int,
    run_dir: Path,
    real: Tensors,
    real_val: Tensors,
    syn: Tensors,
    data: PreparedData,
    progress: bool,
) -> dict[str, Any]:
    """Train and test one classifier for one (experiment, seed); skipped when finished."""
    from synthmix.runs.classifier import train_classifier

    result_path = run_dir / "test_metrics.json"
    if result_path.is_file():
        import json

        return dict(json.loads(result_path.read_text()))
    mixed = build_mix(
        mix,
        cfg.mixes.semantics,
        real,
        real_val,
        syn,
        seed=cfg.data.split_seed,
        total=cfg.mixes.total,
    )
    ccfg = replace(
        cfg.classifier,
        train=replace(cfg.classifier.train, seed=seed),
        device=cfg.device,
        num_threads=cfg.num_threads,
    )
    run_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_json(
        run_dir / "mix.json",
        {
            "name": mix.name,
            "real": mix.real,
            "synthetic": mix.synthetic,
            "semantics": cfg.mixes.semantics,
            "seed": seed,
            **mixed.sizes(),
        },
    )
    write_run_info(run_dir, ccfg, {"kind": "classifier", "mix": mix.name})
    metrics = train_classifier(
        ccfg,
        (mixed.train_x, mixed.train_y),
        (mixed.val_x, mixed.val_y),
        data.test,
        data.class_names,
        run_dir,
        resume=(run_dir / "checkpoints").is_dir(),
        progress=progress,
    )
    log.info(
        "%s seed %d: macro-F1 %.4f, accuracy %.4f",
        mix.name,
        seed,
        metrics["macro_f1"],
        metrics["accuracy"],
    )
    return metrics


def run_study(
    cfg: StudyConfig, study_dir: Path, base_dir: Path = Path("."), progress: bool = True
) -> dict[str, Any]:
    """Run (or resume) the whole study in `study_dir`; returns results.json's content."""
    from synthmix.device import set_threads
    from synthmix.experiment.results import aggregate

    set_threads(cfg.num_threads)
    study_dir = Path(study_dir)
    study_dir.mkdir(parents=True, exist_ok=True)
    check_study_dir(cfg, study_dir)
    atomic_write_text(study_dir / "study.yaml", dump_yaml(cfg))
    write_run_info(study_dir, cfg, {"kind": "study"})
    stages = StageLog(study_dir / "stages.json")
    t0 = time.perf_counter()
    data = prepare_data(cfg.data)
    data.splits.save(study_dir / "splits.json")  # which real images each half may use
    ddpm_dir = stage_ddpm(cfg, study_dir, base_dir, stages, progress)
    s = cfg.synthetic
    seeds = list(range(cfg.seeds))
    set_for_seed: dict[int, Path] = {}
    for k in seeds if s.per_seed else [0]:
        path = (
            Path(s.path)
            if s.path
            else study_dir / "synthetic" / (f"w{s.guidance_scale:g}-seed{s.seed + k}")
        )
        if not s.path:
            synthetic_set(
                cfg,
                ddpm_dir,
                path,
                stages,
                f"synthetic-seed{s.seed + k}",
                s.guidance_scale,
                s.n_per_class,
                s.seed + k,
                progress,
            )
        set_for_seed[k] = path
    real, real_val = real_pools(cfg, data)
    cells: list[dict[str, Any]] = []
    syn_cache: dict[Path, Tensors] = {}
    for spec in cfg.mixes.experiments:
        mix = Mix(spec.name, spec.real, spec.synthetic)
        runs = []
        for k in seeds:
            path = set_for_seed[k if s.per_seed else 0]
            syn = syn_cache.setdefault(path, load_synthetic_tensors(path))
            run_dir = study_dir / "classifiers" / slug(mix.name) / f"seed-{k}"
            name = f"classifier-{slug(mix.name)}-seed{k}"
            t = time.perf_counter()
            metrics = classifier_cell(cfg, mix, k, run_dir, real, real_val, syn, data, progress)
            if name not in stages.stages:
                stages.stages[name] = {
                    "status": "done",
                    "seconds": round(time.perf_counter() - t, 2),
                }
                atomic_write_json(stages.path, stages.stages)
            runs.append({"seed": k, "run_dir": str(run_dir.relative_to(study_dir)), **metrics})
        cells.append({"name": mix.name, "real": mix.real, "synthetic": mix.synthetic, "runs": runs})
    sweep = guidance_sweep(cfg, study_dir, ddpm_dir, stages, real, real_val, data, progress)
    quality = synthetic_quality(cfg, study_dir, set_for_seed[0], data, cells, stages)
    results = aggregate(
        cfg,
        study_dir,
        cells,
        sweep,
        quality,
        stages.stages,
        wall_seconds=time.perf_counter() - t0,
        ddpm_dir=ddpm_dir,
        synthetic_sets={str(k): str(p) for k, p in set_for_seed.items()},
    )
    atomic_write_json(study_dir / "results.json", results)
    from synthmix.experiment.report import write_report

    write_report(study_dir)
    return results


def guidance_sweep(
    cfg: StudyConfig,
    study_dir: Path,
    ddpm_dir: Path,
    stages: StageLog,
    real: Tensors,
    real_val: Tensors,
    data: PreparedData,
    progress: bool,
) -> list[dict[str, Any]]:
    """Macro-F1 of classifiers trained on synthetic data only, for each guidance scale w."""
    sw = cfg.guidance_sweep
    out = []
    n = sw.n_per_class or cfg.synthetic.n_per_class
    for w in sw.scales:
        path = study_dir / "synthetic" / f"sweep-w{w:g}"
        synthetic_set(
            cfg,
            ddpm_dir,
            path,
            stages,
            f"synthetic-sweep-w{w:g}",
            w,
            n,
            cfg.synthetic.seed,
            progress,
        )
        syn = load_synthetic_tensors(path)
        runs = []
        for k in range(sw.seeds):
            run_dir = study_dir / "guidance_sweep" / f"w{w:g}" / f"seed-{k}"
            m = classifier_cell(
                cfg, Mix(f"w={w:g}", 0.0, 1.0), k, run_dir, real, real_val, syn, data, progress
            )
            runs.append({"seed": k, **m})
        out.append({"guidance_scale": w, "runs": runs})
    return out


def synthetic_quality(
    cfg: StudyConfig,
    study_dir: Path,
    set_path: Path,
    data: PreparedData,
    cells: list[dict[str, Any]],
    stages: StageLog,
) -> dict[str, Any] | None:
    """FID/KID/precision-recall in the feature space of the all-real classifier (Exp 1)."""
    import json

    if not cfg.quality.enabled:
        return None
    out_dir = study_dir / "quality"
    result = out_dir / "quality.json"
    ref = next((c for c in cells if c["real"] == 1.0 and c["synthetic"] == 0.0), None)
    if ref is None:
        log.info("quality: no all-real experiment to take features from; skipped")
        return None

    def run() -> None:
        from synthmix.data import to_uint8_images
        from synthmix.runs.classifier import build_classifier
        from synthmix.synthetic.evaluate import evaluate_quality
        from synthmix.synthetic.format import read_synthetic_set
        from synthmix.training.checkpoint import find_checkpoint, load_weights

        run_dir = study_dir / ref["runs"][0]["run_dir"]
        net = build_classifier(cfg.classifier.model, data.test[0].shape[1], len(data.class_names))
        best = find_checkpoint(run_dir / "checkpoints" / "best")
        if best is None:
            raise ConfigError("reference classifier has no best checkpoint", path=run_dir)
        load_weights(best / "model.safetensors", net)
        syn = read_synthetic_set(set_path)
        metrics = evaluate_quality(
            net,
            to_uint8_images(data.test[0]),
            data.test[1].numpy(),
            syn.images,
            syn.labels,
            data.class_names,
            out_dir,
            max_images=cfg.quality.max_images,
            k=cfg.quality.k,
            seed=cfg.data.split_seed,
        )
        metrics["feature_network"] = f"classifier {ref['name']} seed 0 ({run_dir.name})"
        atomic_write_json(result, metrics)

    stages.run("quality", result.is_file(), run)
    return dict(json.loads(result.read_text())) if result.is_file() else None

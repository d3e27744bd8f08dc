"""The generative stages of a study: DDPM(s), sampling settings (tuned or given), synthetic sets.

Each stage is recorded in stages.json with its wall time and throughput, skipped when its
output is complete, and run by every rank where the work is shared (DDP training, sharded
sampling, tuning candidates); only rank 0 writes the record.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import fields, replace
from functools import partial
from pathlib import Path
from typing import Any

from synthmix.config import deep_merge, from_dict, read_yaml, to_dict
from synthmix.device import select_device
from synthmix.diffusion.settings import SamplerSettings
from synthmix.errors import ConfigError
from synthmix.experiment.config import StudyConfig
from synthmix.files import atomic_write_json
from synthmix.runs.ddpm import DDPMConfig, load_ddpm, train_ddpm
from synthmix.synthetic.generate import sample_from_ddpm
from synthmix.synthetic.tune import candidate_grid, tune_sampling
from synthmix.training import distributed as dist

log = logging.getLogger(__name__)


class StageLog:
    """stages.json: per stage its status, wall time, throughput and outputs (rank 0 writes)."""

    def __init__(self, path: Path, comm: dist.Comm):
        self.path, self.comm = path, comm
        self.stages: dict[str, Any] = json.loads(path.read_text()) if path.is_file() else {}

    def run(self, name: str, done: bool, fn: Callable[[], Any],
            info: Callable[[], dict[str, Any]] | None = None, collective: bool = True) -> Any:
        """Run `fn` unless `done`; record its wall time and `info()` (e.g. images/s).

        A collective stage runs on every rank and ends when all have finished; otherwise only
        this process runs it (rank 0's report stages)."""
        if done:
            log.info("stage %s: finished earlier, skipped", name)
            self.stages.setdefault(name, {})["skipped_at"] = time.strftime("%Y-%m-%dT%H:%M:%S")
            self._write()
            return None
        log.info("stage %s: running", name)
        t0 = time.perf_counter()
        out = fn()
        if collective:
            self.comm.barrier()
        self.record(name, time.perf_counter() - t0, **(info() if info else {}))
        return out

    def record(self, name: str, seconds: float, **extra: Any) -> None:
        self.stages[name] = {"status": "done", "seconds": round(seconds, 2),
                             "finished": time.strftime("%Y-%m-%dT%H:%M:%S"), **extra}
        self._write()

    def replace_all(self, stages: dict[str, Any]) -> None:
        """Write `stages` as the record (e.g. with compute figures added)."""
        self.stages = stages
        self._write()

    def _write(self) -> None:
        if self.comm.is_main:
            atomic_write_json(self.path, self.stages)


def ddpm_config_for(cfg: StudyConfig, base_dir: Path, run: int = 0) -> Any:
    """The DDPM config of the study's DDPM `run`: its YAML and overrides, with the study's data
    section, and train.seed shifted by `run` (independent DDPMs)."""

    data: dict[str, Any] = {}
    if cfg.ddpm.config:
        path = Path(cfg.ddpm.config)
        path = path if path.is_file() else base_dir / path
        data = read_yaml(path)
    data = deep_merge(data, cfg.ddpm.overrides)
    data["data"] = to_dict(cfg.data)
    data.setdefault("device", cfg.device)
    data.setdefault("num_threads", cfg.num_threads)
    ddpm = from_dict(DDPMConfig, data, "ddpm")
    return replace(ddpm, train=replace(ddpm.train, seed=ddpm.train.seed + run))


def ddpm_dir(study_dir: Path, run: int) -> Path:
    return study_dir / ("ddpm" if run == 0 else f"ddpm-{run}")


def stage_ddpm(cfg: StudyConfig, study_dir: Path, base_dir: Path, stages: StageLog,
               progress: bool) -> list[Path]:
    """Train (or reuse) the study's DDPMs; returns their run directories."""

    if cfg.ddpm.run_dir:
        return [Path(cfg.ddpm.run_dir)]
    dirs = []
    for j in range(cfg.ddpm.runs):
        run_dir = ddpm_dir(study_dir, j)
        done = (run_dir / "train_summary.json").is_file()
        resume = (run_dir / "checkpoints").is_dir()
        ddpm_cfg = ddpm_config_for(cfg, base_dir, j)
        stages.run("ddpm" if j == 0 else f"ddpm-{j}", done,
                   partial(train_ddpm, ddpm_cfg, run_dir, resume=resume, progress=progress),
                   info=partial(_ddpm_info, run_dir))
        dirs.append(run_dir)
    return dirs


def _ddpm_info(run_dir: Path) -> dict[str, Any]:
    summary = json.loads((run_dir / "train_summary.json").read_text())
    keys = ("steps", "images_seen", "images_per_second", "stop_reason", "time_capped",
            "precision")
    return {k: summary.get(k) for k in keys}


def base_settings(cfg: StudyConfig) -> SamplerSettings:
    """The synthetic stage's sampler settings (a guidance of "auto" left at the default)."""
    values = {f.name: getattr(cfg.synthetic, f.name) for f in fields(SamplerSettings)}
    if values["guidance_scale"] == "auto":
        values["guidance_scale"] = SamplerSettings.guidance_scale
    return SamplerSettings(**values)


def stage_tune(cfg: StudyConfig, ddpm_run: Path, study_dir: Path, stages: StageLog,
               tune_data: Any, progress: bool, comm: dist.Comm
               ) -> tuple[SamplerSettings, dict[str, Any] | None]:
    """The sampling settings of the study's sets: as configured, or (guidance_scale: auto)
    the best candidate on validation images (`synthmix.synthetic.tune`)."""
    settings = base_settings(cfg)
    if cfg.synthetic.guidance_scale != "auto":
        return settings, None

    out = study_dir / "tuning"
    result_file = out / "tuning.json"

    def run() -> None:
        ddpm = load_ddpm(ddpm_run, device=select_device(cfg.device))
        t = cfg.tune
        grid = candidate_grid(settings, ddpm.schedule.T, t.guidance_scales, t.samplers,
                              t.thresholding)
        tune_sampling(ddpm, grid, tune_data, out, n_per_class=t.n_per_class, seeds=t.seeds,
                      base_seed=t.seed, seed_rule=cfg.synthetic.seed_rule,
                      batch_size=cfg.synthetic.batch_size, progress=progress, comm=comm,
                      precision=cfg.synthetic.precision)

    stages.run("tune", result_file.is_file(), run)
    result = json.loads(result_file.read_text())
    return SamplerSettings(**result["chosen_settings"]), result


def stage_synthetic(cfg: StudyConfig, ddpm_dirs: list[Path], settings: SamplerSettings,
                    study_dir: Path, stages: StageLog, progress: bool) -> list[Path]:
    """Sample (or reuse) the study's synthetic sets; set j from DDPM j mod ddpm.runs."""
    s = cfg.synthetic
    if s.path:
        if s.sets != 1:
            raise ConfigError("synthetic.path gives one set; set synthetic.sets to 1")
        return [Path(s.path)]
    paths = []
    for j in range(s.sets):
        path = study_dir / "synthetic" / f"set-{j}"
        sample_set(cfg, ddpm_dirs[j % len(ddpm_dirs)], path, stages, f"synthetic-set{j}",
                   settings, s.n_per_class, s.seed + j, progress)
        paths.append(path)
    return paths


def sample_set(cfg: StudyConfig, ddpm_run: Path, out: Path, stages: StageLog, name: str,
               settings: SamplerSettings, n_per_class: int, seed: int, progress: bool) -> Path:
    """Sample (or finish sampling) one set, shared between ranks; skipped when complete."""

    s = cfg.synthetic
    manifest = out / "manifest.json"
    done = manifest.is_file() and '"complete": true' in manifest.read_text()
    started = time.perf_counter()

    def run() -> None:
        ddpm = load_ddpm(ddpm_run, device=select_device(cfg.device))
        sample_from_ddpm(ddpm, out, n_per_class=n_per_class, settings=settings, base_seed=seed,
                         seed_rule=s.seed_rule, shard_size=s.shard_size,
                         batch_size=s.batch_size, progress=progress, compile_model=s.compile,
                         precision=s.precision)

    def info() -> dict[str, Any]:
        images = json.loads(manifest.read_text())["num_images"]
        seconds = time.perf_counter() - started
        return {"images": images, "images_per_second": round(images / max(seconds, 1e-9), 2),
                "settings": settings.label}

    stages.run(name, done, run, info)
    return out

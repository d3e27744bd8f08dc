"""synthmix as a library: sample from a trained DDPM, run a study, read its results.

    run = synthmix.load_run("runs/ddpm-mnist-cpu-...")
    images, labels = run.sample(n_per_class=10)  # (N, C, H, W) in [-1, 1], (N,)

Everything here wraps the functions the command line uses, so a library call and the matching
command make the same images and numbers.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import asdict, fields
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from tqdm.auto import tqdm

from synthmix import config as _config
from synthmix.device import select_device
from synthmix.diffusion.settings import SamplerSettings
from synthmix.errors import ConfigError
from synthmix.experiment import study as _study
from synthmix.experiment.config import StudyConfig
from synthmix.runs.ddpm import TrainedDDPM, load_ddpm
from synthmix.synthetic.generate import (
    make_diffusion_sample_fn,
    plan_generation,
    sample_from_ddpm,
    sampling_dtype,
)

SETTING_NAMES = tuple(f.name for f in fields(SamplerSettings))


class Run:
    """A trained DDPM run, ready to sample (use `load_run`); `ddpm` holds its network, noise
    schedule and config (`synthmix.runs.ddpm.TrainedDDPM`)."""

    def __init__(self, ddpm: TrainedDDPM):
        self.ddpm = ddpm

    def __repr__(self) -> str:
        return f"Run({str(self.path)!r}, classes={len(self.class_names)}, {self.settings.label})"

    @property
    def path(self) -> Path:
        """The run directory."""
        return Path(self.ddpm.run_dir)

    @property
    def class_names(self) -> tuple[str, ...]:
        return self.ddpm.class_names

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """(H, W, C) of the images the network makes."""
        return self.ddpm.image_shape

    @property
    def device(self) -> torch.device:
        return next(self.ddpm.model.parameters()).device

    @property
    def settings(self) -> SamplerSettings:
        """The run's own sampler settings (its config's `sample:` section)."""
        return SamplerSettings(**{n: getattr(self.ddpm.cfg.sample, n) for n in SETTING_NAMES})

    def sampler_settings(self, **overrides: Any) -> SamplerSettings:
        """The run's settings with any SamplerSettings field replaced (None keeps the run's)."""
        given = {k: v for k, v in overrides.items() if v is not None}
        return _config.from_dict(SamplerSettings, {**asdict(self.settings), **given}, "sampling")

    def sample(
        self,
        n_per_class: int = 10,
        *,
        labels: Sequence[int | str] | None = None,
        seed: int = 0,
        batch_size: int | None = None,
        progress: bool = False,
        **overrides: Any,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Images (N, C, H, W) float in [-1, 1] on the CPU and their labels (N,) int64.

        The images are those a synthetic set of `n_per_class` per class and base seed `seed`
        holds, in its order and with its per-image seeds; `labels` (class indices or names)
        keeps only those classes. Keywords such as `sampler=`, `steps=`, `guidance_scale=`
        override the run's sampler settings.
        """
        settings = self.sampler_settings(**overrides)
        k = len(self.class_names)
        if n_per_class < 1:
            raise ConfigError(f"n_per_class must be >= 1, got {n_per_class}")
        plan = plan_generation([n_per_class] * k, seed, shard_size=n_per_class * k)
        rows = np.arange(plan.num_images)
        if labels is not None:
            rows = rows[np.isin(plan.labels, self._class_indices(labels))]
            if not len(rows):
                raise ConfigError("labels names no class to sample")
        batch = batch_size or self.ddpm.cfg.sample.batch_size
        if batch < 1:
            raise ConfigError(f"batch_size must be >= 1, got {batch}")
        sample_fn = make_diffusion_sample_fn(self.ddpm.model, self.ddpm.schedule, settings,
                                             self.device, amp_dtype=sampling_dtype(self.device))
        parts = [rows[lo : lo + batch] for lo in range(0, len(rows), batch)]
        images = []
        for part in tqdm(parts, unit="batch", desc="sampling", disable=not progress):
            seeds = [int(s) for s in plan.seeds[part]]
            images.append(sample_fn(torch.from_numpy(plan.labels[part].copy()), seeds))
        return torch.cat(images), torch.from_numpy(plan.labels[rows].copy())  # (N, C, H, W), (N,)

    def sample_set(
        self,
        out_dir: str | Path,
        n_per_class: int,
        *,
        seed: int = 0,
        batch_size: int | None = None,
        shard_size: int | None = None,
        progress: bool = False,
        **overrides: Any,
    ) -> Path:
        """Sample a synthetic set into `out_dir` (as `synthmix sample` does; resumable) and
        return its path; read it back with `synthmix.SyntheticDataset`."""
        extra: dict[str, Any] = {} if shard_size is None else {"shard_size": shard_size}
        return sample_from_ddpm(
            self.ddpm, out_dir, n_per_class=n_per_class,
            settings=self.sampler_settings(**overrides), base_seed=seed,
            batch_size=batch_size or self.ddpm.cfg.sample.batch_size, progress=progress, **extra,
        )  # fmt: skip

    def _class_indices(self, labels: Sequence[int | str]) -> list[int]:
        if isinstance(labels, str | int):
            labels = [labels]
        out = []
        for label in labels:
            if isinstance(label, str):
                if label not in self.class_names:
                    raise ConfigError(f"no class named {label!r}",
                                      hint=f"classes: {', '.join(self.class_names)}")
                out.append(self.class_names.index(label))
            elif 0 <= int(label) < len(self.class_names):
                out.append(int(label))
            else:
                raise ConfigError(f"class index {label} outside 0..{len(self.class_names) - 1}")
        return out


def load_run(
    path: str | Path,
    which: Literal["best", "last"] = "best",
    use_ema: bool = True,
    device: str | torch.device | None = None,
) -> Run:
    """Load a trained DDPM run directory (checkpoint `which`, EMA weights unless told not to)
    onto `device` (default: the run's `device` setting)."""
    if which not in ("best", "last"):
        raise ConfigError(f"which must be 'best' or 'last', got {which!r}")
    if isinstance(device, str):
        device = select_device(device)
    return Run(load_ddpm(Path(path), which=which, use_ema=use_ema, device=device))


def load_config(
    path: str | os.PathLike[str], overrides: Sequence[str] | Mapping[str, Any] | None = None
) -> StudyConfig:
    """A study's YAML file as a `StudyConfig`, with overrides as `--set` takes them
    (["seeds=2", "data.dataset=digits"]) or as a mapping ({"seeds": 2, "data.dataset": ...})."""
    if isinstance(overrides, Mapping):
        # JSON is YAML, so every value reaches the config exactly as a `--set` value would.
        overrides = [f"{key}={json.dumps(value)}" for key, value in overrides.items()]
    elif isinstance(overrides, str):
        overrides = [overrides]
    return _config.load_config(StudyConfig, Path(path), list(overrides or []))


def run_study(
    config: StudyConfig | str | os.PathLike[str], study_dir: str | Path, progress: bool = True
) -> dict[str, Any]:
    """Run (or resume) a study from a `StudyConfig` or its YAML file into `study_dir`; returns
    results.json's content. Relative paths in a YAML file are read from its folder."""
    if isinstance(config, StudyConfig):
        cfg, base_dir = config, Path(".")
    elif isinstance(config, str | os.PathLike):
        cfg, base_dir = load_config(config), Path(config).parent
    else:
        kind = type(config).__name__
        raise ConfigError(f"config must be a StudyConfig or a YAML path, not a {kind}")
    return _study.run_study(cfg, Path(study_dir), base_dir=base_dir, progress=progress)


def read_results(study_dir: str | Path) -> dict[str, Any]:
    """A finished study's results.json as plain data (DataError when it is missing)."""
    # The report module pulls in scipy (about a second): only when results are read.
    from synthmix.experiment.report import load_results

    return load_results(Path(study_dir))


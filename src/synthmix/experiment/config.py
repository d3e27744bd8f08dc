"""A study, described by one YAML file: data, DDPM, synthetic set, mixes, classifier, seeds."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from synthmix.experiment.mixes import STUDY_MIXES, MixSemantics
from synthmix.runs.classifier import ClassifierRunConfig
from synthmix.runs.common import DataConfig


@dataclass(frozen=True)
class DDPMStage:
    """Train a DDPM from `config` (a configs/ddpm/*.yaml, its `data:` replaced by the study's)
    with `overrides`, or reuse the finished run in `run_dir`."""

    config: str | None = None
    overrides: dict[str, Any] = field(default_factory=dict)
    run_dir: str | None = None


@dataclass(frozen=True)
class SyntheticStage:
    """Sample the synthetic pool (SPEC §3), or reuse the set at `path`."""

    path: str | None = None
    n_per_class: int = 2688  # MNIST in the study; CIFAR-10 used 2,240
    sampler: Literal["ancestral", "ddim", "dpmpp"] = "ddim"
    steps: int = 50
    guidance_scale: float = 3.0
    eta: float = 0.0
    seed: int = 0
    batch_size: int = 256
    shard_size: int = 1024
    per_seed: bool = False  # a fresh synthetic set (new base seed) for every classifier seed
    compile: bool = False  # torch.compile the U-Net for sampling (pays off for long sampling)


@dataclass(frozen=True)
class MixSpec:
    name: str
    real: float
    synthetic: float


@dataclass(frozen=True)
class MixesConfig:
    semantics: MixSemantics = "fraction-of-pools"
    total: int | None = None  # fixed-total size (default: the real pool's size)
    real_pool_size: int | None = None  # cap the classifier half's training pool (CPU presets)
    experiments: tuple[MixSpec, ...] = tuple(
        MixSpec(m.name, m.real, m.synthetic) for m in STUDY_MIXES
    )


@dataclass(frozen=True)
class GuidanceSweep:
    """Future work in the study: classifier trained on synthetic data only, per guidance w."""

    scales: tuple[float, ...] = ()
    n_per_class: int | None = None  # default: synthetic.n_per_class
    seeds: int = 1


@dataclass(frozen=True)
class QualityConfig:
    """Synthetic-set quality in the domain feature space of the Exp 1 classifier."""

    enabled: bool = True
    max_images: int = 5000  # per side, for FID/KID/precision-recall
    k: int = 3  # k-NN for precision/recall


@dataclass(frozen=True)
class StudyConfig:
    name: str = "study"
    data: DataConfig = field(default_factory=DataConfig)
    ddpm: DDPMStage = field(default_factory=DDPMStage)
    synthetic: SyntheticStage = field(default_factory=SyntheticStage)
    classifier: ClassifierRunConfig = field(default_factory=ClassifierRunConfig)
    mixes: MixesConfig = field(default_factory=MixesConfig)
    seeds: int = 3
    guidance_sweep: GuidanceSweep = field(default_factory=GuidanceSweep)
    quality: QualityConfig = field(default_factory=QualityConfig)
    device: str = "auto"
    num_threads: int | None = None

"""A study, described by one YAML file: data, DDPM, synthetic sets, mixes, classifier, repeats.

Sources of variance are settings: `seeds` repeats every cell, each repeat k with its own
classifier initialisation and data order; `synthetic.sets` independent synthetic sets (repeat k
trains on set k mod sets); `ddpm.runs` independently trained DDPMs (set j comes from DDPM
j mod runs); `mixes.resample` a fresh class-stratified real subset (and synthetic subset) per
repeat. The report says which of them each ± covers.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from synthmix.diffusion.settings import (
    DEFAULT_SAMPLING,
    DEFAULT_SEED_RULE,
    GUIDANCE_CANDIDATES,
    SamplerSettings,
    Thresholding,
)
from synthmix.experiment.mixes import STUDY_MIXES, MixSemantics
from synthmix.runs.classifier import ClassifierRunConfig
from synthmix.runs.common import DataConfig
from synthmix.synthetic.generate import SamplingPrecision


@dataclass(frozen=True)
class DDPMStage:
    """Train `runs` DDPMs from `config` (a configs/ddpm/*.yaml, its `data:` replaced by the
    study's) with `overrides` (run j with train.seed + j), or reuse the finished run in
    `run_dir`."""

    config: str | None = None
    overrides: dict[str, Any] = field(default_factory=dict)
    run_dir: str | None = None
    runs: int = 1  # independently trained DDPMs, a source of variance (GPU tier)


@dataclass(frozen=True)
class SyntheticStage(SamplerSettings):
    """Sample the synthetic pool (SPEC §3), or reuse the set at `path`.

    `guidance_scale: auto` picks w (and, with several candidates listed in `tune`, the sampler
    and thresholding) by the validation score of classifiers trained on small sets (`tune`).
    """

    guidance_scale: float | Literal["auto"] = DEFAULT_SAMPLING.guidance_scale  # type: ignore[assignment]
    path: str | None = None
    n_per_class: int = 2688  # MNIST in the study; CIFAR-10 used 2,240
    sets: int = 1  # independent synthetic sets (base seeds seed, seed + 1, ...)
    seed: int = 0
    seed_rule: int = DEFAULT_SEED_RULE
    batch_size: int = 256
    shard_size: int = 1024
    compile: bool = False  # torch.compile the U-Net for sampling (pays off for long sampling)
    # The U-Net's autocast when sampling (synthetic.generate.sampling_dtype): auto is bf16 on
    # CUDA and on CPUs with native bf16, fp32 elsewhere; fp32 for sets equal to the pixel
    # across runs whose networks differ only by float rounding (DDP against one process).
    precision: SamplingPrecision = "auto"


@dataclass(frozen=True)
class TuneConfig:
    """Candidates for `synthetic.guidance_scale: auto`: every combination is sampled
    (`n_per_class` per class), a classifier of the study's recipe is trained on each set and
    scored on the classifier half's validation split by `seeds` classifiers; the best mean
    wins unless others lie within one standard error of it, then the cheaper, then the weaker
    guidance of those (tune.RULE). Empty `samplers`/`thresholding`: the synthetic stage's."""

    guidance_scales: tuple[float, ...] = GUIDANCE_CANDIDATES
    samplers: tuple[str, ...] = ()  # "dpmpp:20", "ddim:50", "ancestral"
    thresholding: tuple[Thresholding, ...] = ()
    n_per_class: int = 100
    seeds: int = 2  # classifiers per candidate: at least 2, so the spread is known
    seed: int = 1_000  # base seed of the tuning sets (never a study set's)


@dataclass(frozen=True)
class MixSpec:
    name: str
    real: float
    synthetic: float


@dataclass(frozen=True)
class MixesConfig:
    semantics: MixSemantics = "fraction-of-pools"
    total: int | None = None  # fixed-total size (default: the largest every mix can afford)
    real_pool_size: int | None = None  # cap the classifier half's training pool (CPU presets)
    experiments: tuple[MixSpec, ...] = tuple(
        MixSpec(m.name, m.real, m.synthetic) for m in STUDY_MIXES
    )
    resample: bool = True  # a fresh real (and synthetic) subset for every repeat
    # Also train real-only classifiers at every real fraction below 1 that a mix uses, so each
    # mix is compared with "the same real data, no synthetic" (paired, with a 95% CI).
    controls: bool = False
    min_val_per_class: int = 5  # floor of a mix's real validation images per class


@dataclass(frozen=True)
class WorthConfig:
    """How many real images the synthetic data is worth (learning curves; see worth.py)."""

    enabled: bool = False
    real_fractions: tuple[float, ...] = (0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0)
    with_synthetic: bool = True  # each real size also with the synthetic set added
    synthetic_fractions: tuple[float, ...] = (0.1, 0.25, 0.5, 1.0)  # synthetic-only points
    # Default: the study's seeds. Two give intervals no one can use (t(0.975, 1) = 12.7); the
    # cpu studies take 8 (benchmarks/worth_repeats.py projects what n buys).
    repeats: int | None = None


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
    tune: TuneConfig = field(default_factory=TuneConfig)
    classifier: ClassifierRunConfig = field(default_factory=ClassifierRunConfig)
    mixes: MixesConfig = field(default_factory=MixesConfig)
    seeds: int = 3  # repeats of every cell
    worth: WorthConfig = field(default_factory=WorthConfig)
    guidance_sweep: GuidanceSweep = field(default_factory=GuidanceSweep)
    quality: QualityConfig = field(default_factory=QualityConfig)
    device: str = "auto"
    num_threads: int | None = None

"""Training throughput cases: the DDPM U-Nets (synthmix and diffusers) and the classifiers.

Every case runs the same optimisation step synthmix's training loop runs
(`synthmix.training.loop.train_step`: seeded generator, Adam, loss, backward, gradient
clipping, optimizer step) plus the EMA update `fit` does, on batches indexed from one in-memory
tensor as `fit` does; only the network differs between synthmix and diffusers.
"""

from __future__ import annotations

import gc
import statistics
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from matched import (
    MATCHED_OVERRIDES,
    check_same_function,
    count_params,
    diffusers_eps,
    diffusers_unet,
)
from measure import PeakMemory, interleaved_windows, warm_up
from torch import nn

from synthmix.classifier.resnet import ResNetClassifier, classifier_config
from synthmix.device import resolve_amp
from synthmix.diffusion.loss import ddpm_loss
from synthmix.diffusion.schedule import NoiseSchedule
from synthmix.diffusion.unet import UNet, UNetConfig, unet_config
from synthmix.seeding import StepRandom
from synthmix.training.ema import EMA
from synthmix.training.loop import TrainConfig, make_optimizer, train_step

NUM_CLASSES = 10


@dataclass(frozen=True)
class Plan:
    """How long to measure: warm-up calls, then `windows` windows of `calls` steps."""

    batch: int
    warmup: int
    windows: int
    calls: int


@dataclass(frozen=True)
class Variant:
    """One row: which implementation, which architecture, which memory format."""

    impl: str  # "synthmix" | "diffusers"
    arch: str  # "preset" (as synthmix ships it) | "matched" (what UNet2DModel can express)
    channels_last: bool

    @property
    def label(self) -> str:
        fmt = "channels_last" if self.channels_last else "NCHW"
        return f"{self.impl} {self.arch} {fmt}"


DDPM_VARIANTS = (
    Variant("synthmix", "preset", True),  # how synthmix trains
    Variant("synthmix", "preset", False),  # before channels_last
    Variant("synthmix", "matched", True),  # identical architecture to the diffusers model
    Variant("synthmix", "matched", False),
    Variant("diffusers", "matched", True),
    Variant("diffusers", "matched", False),  # how diffusers' training examples run
)


class _DDPMTask:
    """The DDPM loss of synthmix (eps-MSE, t uniform, 10% label dropout) for any eps-network."""

    def __init__(self, schedule: NoiseSchedule, wrap: Callable[[nn.Module], Any]) -> None:
        self.schedule, self.wrap = schedule, wrap

    def train_loss(
        self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, rng: StepRandom
    ) -> torch.Tensor:
        return ddpm_loss(
            self.wrap(model),
            self.schedule,
            x,
            y,
            p_uncond=0.1,
            rng=rng,
            null_label=NUM_CLASSES,
        )


class _ClassifierTask:
    def train_loss(
        self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, rng: StepRandom
    ) -> torch.Tensor:
        return F.cross_entropy(model(x), y)


def _data(shape: tuple[int, int, int], batch: int, device: torch.device) -> tuple[Any, Any]:
    g = torch.Generator().manual_seed(0)
    n = 4 * batch  # a small in-memory "data set", indexed per step like fit() does
    x = torch.rand(n, *shape, generator=g).mul_(2).sub_(1).to(device)  # (N, C, H, W) in [-1, 1]
    y = torch.randint(0, NUM_CLASSES, (n,), generator=g).to(device)
    return x, y


def step_fn(
    model: nn.Module,
    task: Any,
    cfg: TrainConfig,
    shape: tuple[int, int, int],
    batch: int,
    device: torch.device,
    compile_model: bool,
    ema_decay: float | None,
    pool: tuple[torch.Tensor, torch.Tensor] | None = None,
) -> Callable[[], None]:
    """A closure running one full training step of `model` as synthmix's loop does, on batches
    of `pool` (default: random images of `shape`)."""
    model.to(device).train()
    if cfg.channels_last:
        model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
    optimizer = make_optimizer(model, cfg)
    amp_dtype = resolve_amp(cfg.amp, device)
    scaler = torch.amp.GradScaler(device.type, enabled=amp_dtype == torch.float16)
    ema = EMA(model, ema_decay) if ema_decay is not None else None
    train_model: Any = torch.compile(model) if compile_model else model
    pool_x, pool_y = pool if pool is not None else _data(shape, batch, device)
    order = torch.randperm(len(pool_x), generator=torch.Generator().manual_seed(1)).to(device)
    state = {"step": 0}

    def run() -> None:
        i = state["step"] % (len(pool_x) // batch)
        idx = order[i * batch : (i + 1) * batch]
        x, y = pool_x[idx], pool_y[idx]
        if cfg.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        train_step(
            train_model, task, x, y, optimizer, scaler, cfg, state["step"], cfg.lr, amp_dtype
        )
        if ema is not None:
            ema.update(model, state["step"])
        state["step"] += 1

    return run


def unet_cfg(preset: str, shape: tuple[int, int, int], arch: str) -> UNetConfig:
    extra = MATCHED_OVERRIDES if arch == "matched" else {}
    c, h, _ = shape
    return unet_config(preset, in_channels=c, image_size=h, num_classes=NUM_CLASSES, **extra)


@dataclass
class Case:
    """One row: what it is (`meta`) and how to build its step closure (returns fn, params)."""

    meta: dict[str, Any]
    build: Callable[[], tuple[Callable[[], None], int]]


def measure_group(cases: list[Case], plan: Plan, device: torch.device) -> list[dict[str, Any]]:
    """Build and warm up every case (peak memory per case), then time their windows
    round-robin so that drifting background load hits every row of the group alike."""
    fns, rows = [], []
    for case in cases:
        with PeakMemory(device) as mem:
            fn, params = case.build()
            first = warm_up(fn, plan.warmup, device)
            peak = mem.peak_mib()
        fns.append(fn)
        rows.append(
            {
                **case.meta,
                "batch": plan.batch,
                "params": params,
                "peak_mem_mib": round(peak, 1),
                "memory_method": mem.method,
                "first_call_s": round(first, 3),
            }
        )
    rates = interleaved_windows(
        fns,
        [plan.batch] * len(fns),
        windows=plan.windows,
        calls_per_window=plan.calls,
        device=device,
    )
    for row, r in zip(rows, rates):
        row["images_per_s"] = {
            "median": round(statistics.median(r), 3),
            "min": round(min(r), 3),
            "max": round(max(r), 3),
            "windows": len(r),
            "first_call_s": row.pop("first_call_s"),
        }
    del fns
    gc.collect()
    return rows


def ddpm_case(
    preset: str,
    shape: tuple[int, int, int],
    variant: Variant,
    plan: Plan,
    device: torch.device,
    amp: str,
    compile_model: bool,
) -> Case:
    """Training images/s and peak memory of one U-Net variant."""
    ucfg = unet_cfg(preset, shape, variant.arch)
    cfg = TrainConfig(
        lr=5e-4,
        optimizer="adam",
        grad_clip=1.0,
        amp=amp,  # type: ignore[arg-type]
        channels_last=variant.channels_last,
    )
    schedule = NoiseSchedule.linear(400).to(device)

    def build() -> tuple[Callable[[], None], int]:
        torch.manual_seed(0)
        if variant.impl == "synthmix":
            model: nn.Module = UNet(ucfg)
            task = _DDPMTask(schedule, lambda m: m)
        else:
            model = diffusers_unet(ucfg)
            task = _DDPMTask(schedule, diffusers_eps)
        fn = step_fn(model, task, cfg, shape, plan.batch, device, compile_model, 0.9999)
        return fn, count_params(model)

    meta = {"preset": preset, "shape": list(shape), "variant": variant.label, **variant.__dict__}
    return Case(meta, build)


def classifier_case(
    preset: str,
    shape: tuple[int, int, int],
    plan: Plan,
    device: torch.device,
    amp: str,
    compile_model: bool,
) -> Case:
    """Training images/s of the ResNet classifier, as the classifier runs train it."""
    cfg = TrainConfig(
        lr=5e-4,
        optimizer="adam",
        grad_clip=None,
        amp=amp,  # type: ignore[arg-type]
        ema_decay=None,
        channels_last=True,
    )

    def build() -> tuple[Callable[[], None], int]:
        torch.manual_seed(0)
        model = ResNetClassifier(
            classifier_config(preset, in_channels=shape[0], num_classes=NUM_CLASSES)
        )
        fn = step_fn(model, _ClassifierTask(), cfg, shape, plan.batch, device, compile_model, None)
        return fn, count_params(model)

    return Case({"preset": preset, "shape": list(shape)}, build)


def study_classifier_case(
    config: str, overrides: list[str], plan: Plan, device: torch.device, compile_model: bool
) -> tuple[Case, Plan]:
    """The classifier of a study config as its cells train it: its network, its whole recipe
    (optimiser, precision, memory format, augmentation, label smoothing) and its batch, on the
    study's real training images."""
    from synthmix.config import load_config
    from synthmix.experiment.config import StudyConfig
    from synthmix.runs.classifier import ClassifierTask, build_classifier
    from synthmix.runs.common import prepare_data

    cfg = load_config(StudyConfig, config, overrides)
    ccfg, batch = cfg.classifier, cfg.classifier.train.batch_size
    data = prepare_data(cfg.data)
    x, y = (t[: 4 * batch].to(device) for t in data.classifier_train)  # (N, C, H, W), (N,)
    c, h, w = x.shape[1:]
    shape = (int(c), int(h), int(w))
    task = ClassifierTask(ccfg, (x[:0], y[:0]), device)

    def build() -> tuple[Callable[[], None], int]:
        model = build_classifier(ccfg.model, shape[0], len(data.class_names), ccfg.train.seed)
        fn = step_fn(model, task, ccfg.train, shape, batch, device, compile_model, None, (x, y))
        return fn, count_params(model)

    meta = {"preset": ccfg.model.get("preset", "custom"), "shape": list(shape),
            "study": cfg.name, "amp": ccfg.train.amp, "optimizer": ccfg.train.optimizer}
    return Case(meta, build), Plan(batch, plan.warmup, plan.windows, plan.calls)


def match_check(preset: str, shape: tuple[int, int, int]) -> dict[str, Any]:
    """The matched synthmix U-Net and UNet2DModel compute the same function (weights copied)."""
    return {
        "preset": preset,
        "shape": list(shape),
        **check_same_function(unet_cfg(preset, shape, "matched")),
    }

"""Sampling cases: synthmix's samplers against the equivalent diffusers scheduler loops.

Both sides use the same network function: the synthmix U-Net in the architecture UNet2DModel can
express (MATCHED_OVERRIDES) and a UNet2DModel holding a copy of its weights, so the difference
is the network implementation plus the sampling loop. Guidance w = 3 everywhere, i.e. two
network evaluations (NFE) per image and step, done as one batched forward on both sides.
"""

from __future__ import annotations

import copy
import gc
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from matched import (
    copy_synthmix_weights,
    diffusers_eps,
    diffusers_sample,
    diffusers_scheduler,
    diffusers_unet,
)
from measure import interleaved_windows, sync, warm_up
from torch import nn
from training import NUM_CLASSES, unet_cfg

from synthmix.diffusion.noise import make_noise
from synthmix.diffusion.samplers import SAMPLERS, sample
from synthmix.diffusion.schedule import NoiseSchedule
from synthmix.diffusion.unet import UNet

GUIDANCE = 3.0  # w; diffusers' guidance_scale is 1 + w
T = 400
SHAPE = (1, 16, 16)


@dataclass(frozen=True)
class SamplePlan:
    batch: int
    steps: tuple[int, ...]  # for DDIM and DPM-Solver++(2M)
    ancestral_steps: int  # steps of the T-step ancestral loop actually timed, then x T/k
    repeats: int  # timed runs per row (median)
    repeats_short: int  # timed runs of rows with <= 10 steps (a short run is a noisy window)
    eval_windows: int


def _perturbed_unet(preset: str, arch: str) -> UNet:
    torch.manual_seed(0)
    model = UNet(unet_cfg(preset, SHAPE, arch))
    with torch.no_grad():  # away from the zero-initialised output conv: real, non-zero eps
        for p in model.parameters():
            p.add_(0.02 * torch.randn_like(p))
    return model.eval()


def networks(device: torch.device) -> tuple[UNet, nn.Module]:
    """The matched synthmix U-Net and a diffusers UNet2DModel computing the same function."""
    ours = _perturbed_unet("cpu", "matched")
    theirs = diffusers_unet(ours.cfg).eval()
    copy_synthmix_weights(theirs, ours)
    return ours.to(device), theirs.to(device)


def _median_wall(fn: Callable[[], Any], repeats: int, device: torch.device) -> float:
    walls = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        sync(device)
        walls.append(time.perf_counter() - t0)
    return statistics.median(walls)


def _synthmix_run(model: Any, name: str, steps: int, plan: SamplePlan, device: torch.device):
    schedule = NoiseSchedule.linear(T)
    if name == "ancestral":  # the same per-step work on a k-step schedule, extrapolated to T
        schedule = NoiseSchedule(schedule.betas[:steps])
    labels = torch.arange(plan.batch, device=device) % NUM_CLASSES
    seeds = list(range(plan.batch))

    def run() -> torch.Tensor:
        return sample(
            name,
            model,
            schedule,
            labels,
            make_noise(seeds, device),
            steps=None if name == "ancestral" else steps,
            guidance_scale=GUIDANCE,
            image_shape=SHAPE,
            null_label=NUM_CLASSES,
        )

    return run


def _diffusers_run(model: nn.Module, name: str, steps: int, plan: SamplePlan, device: torch.device):
    scheduler = diffusers_scheduler(name, NoiseSchedule.linear(T))
    labels = torch.arange(plan.batch, device=device) % NUM_CLASSES
    eps = diffusers_eps(model)

    def run() -> torch.Tensor:
        g = torch.Generator(device).manual_seed(0)
        x_T = torch.randn(plan.batch, *SHAPE, generator=g, device=device)  # as users draw it
        if name == "ancestral":
            return diffusers_sample(
                eps, scheduler, x_T, labels, NUM_CLASSES, GUIDANCE, T, max_steps=steps, generator=g
            )
        return diffusers_sample(
            eps, scheduler, x_T, labels, NUM_CLASSES, GUIDANCE, steps, generator=g
        )

    return run


def _warm(model: Any, impl: str, plan: SamplePlan, device: torch.device) -> float:
    """One forward at the guided batch shape (compilation included); returns its seconds."""
    t0 = time.perf_counter()
    with torch.inference_mode():
        x = torch.randn(2 * plan.batch, *SHAPE, device=device)
        t = torch.zeros(2 * plan.batch, dtype=torch.int64, device=device)
        diffusers_eps(model)(x, t, t) if impl == "diffusers" else model(x, t, t)
    sync(device)
    return time.perf_counter() - t0


def sampler_rows(
    plan: SamplePlan,
    device: torch.device,
    compile_model: bool,
    ours_cl: bool,
    diffusers_cl: bool,
) -> list[dict]:
    """NFE/s and images/s of every (implementation, sampler, steps); the two implementations'
    runs alternate, so drifting background load hits both alike.

    Each side runs its network in the memory format given (its faster one, from `eval_rows`;
    a synthmix config picks it with train.channels_last). `compile_model`: synthmix compiles
    as `synthmix sample --compile` does (one graph at the guided batch), diffusers with
    `torch.compile(dynamic=False)`; the first call's seconds include compiling.
    """
    from synthmix.diffusion.compiled import compile_for_sampling

    ours, theirs = networks(device)
    impls: dict[str, tuple[Any, Callable[..., Any], bool, float]] = {}
    for impl, net, make, cl in [
        ("synthmix", ours, _synthmix_run, ours_cl),
        ("diffusers", theirs, _diffusers_run, diffusers_cl),
    ]:
        fmt = torch.channels_last if cl else torch.contiguous_format
        net.to(memory_format=fmt)  # type: ignore[call-overload]
        model: Any = net
        if compile_model:
            model = (
                compile_for_sampling(net, plan.batch)
                if impl == "synthmix"
                else torch.compile(net, dynamic=False)
            )
        impls[impl] = (model, make, cl, _warm(model, impl, plan, device))
    grid = [("ancestral", plan.ancestral_steps)]
    grid += [(name, s) for name in ("ddim", "dpmpp") for s in plan.steps]
    rows = []
    for name, steps in grid:
        repeats = plan.repeats_short if steps <= 10 else plan.repeats
        runs = {
            impl: make(model, name, steps, plan, device)
            for impl, (model, make, _, _) in impls.items()
        }
        walls: dict[str, list[float]] = {impl: [] for impl in impls}
        for _ in range(repeats):
            for impl, run in runs.items():
                t0 = time.perf_counter()
                run()
                sync(device)
                walls[impl].append(time.perf_counter() - t0)
        full_steps = T if name == "ancestral" else steps
        for impl, (_, _, cl, warm) in impls.items():
            wall = statistics.median(walls[impl]) * full_steps / steps
            rows.append(
                {
                    "impl": impl,
                    "channels_last": cl,
                    "compiled": compile_model,
                    "sampler": name,
                    "steps": full_steps,
                    "steps_timed": steps,
                    "extrapolated": name == "ancestral",
                    "batch": plan.batch,
                    "guidance_scale": GUIDANCE,
                    "nfe_per_image": 2 * full_steps,
                    "wall_s": round(wall, 3),
                    "nfe_per_s": round(2 * full_steps * plan.batch / wall, 2),
                    "images_per_s": round(plan.batch / wall, 3),
                    "first_call_s": round(warm, 2),
                    "repeats": repeats,
                }
            )
    del impls
    gc.collect()
    return rows


def eval_rows(plan: SamplePlan, device: torch.device) -> list[dict]:
    """U-Net forward images/s (inference mode) at the guided batch: memory format and
    architecture before/after, without any sampler around it (windows taken round-robin)."""
    ours_matched, theirs = networks(device)
    nets: dict[str, nn.Module] = {
        "synthmix preset": _perturbed_unet("cpu", "preset").to(device),
        "synthmix matched": ours_matched,
        "diffusers matched": theirs,
    }
    b = 2 * plan.batch
    g = torch.Generator().manual_seed(0)
    x = torch.randn(b, *SHAPE, generator=g).to(device)
    t = torch.randint(0, T, (b,), generator=g).to(device)
    y = torch.randint(0, NUM_CLASSES + 1, (b,), generator=g).to(device)
    meta, calls = [], []
    for name, net in nets.items():
        for cl in (False, True):
            fmt = torch.channels_last if cl else torch.contiguous_format
            copy_ = copy.deepcopy(net).to(memory_format=fmt)  # type: ignore[call-overload]
            fwd = diffusers_eps(copy_) if name.startswith("diffusers") else copy_

            x_fmt = x.contiguous(memory_format=fmt)

            def call(fwd: Any = fwd, xx: torch.Tensor = x_fmt) -> None:
                with torch.inference_mode():
                    fwd(xx, t, y)

            warm_up(call, 1, device)
            meta.append({"network": name, "channels_last": cl, "batch": b})
            calls.append(call)
    rates = interleaved_windows(
        calls, [b] * len(calls), windows=plan.eval_windows, calls_per_window=1, device=device
    )
    return [
        {
            **m,
            "images_per_s": {
                "median": round(statistics.median(r), 3),
                "min": round(min(r), 3),
                "max": round(max(r), 3),
            },
        }
        for m, r in zip(meta, rates)
    ]


def check_agreement(device: torch.device, batch: int = 4, steps: int = 10) -> dict[str, Any]:
    """synthmix's DDIM / DPM-Solver++(2M) vs diffusers' schedulers on the same network and x_T:
    the loops being timed against each other compute the same samples (max |difference|)."""
    ours, _ = networks(device)
    schedule = NoiseSchedule.linear(T)
    labels = torch.arange(batch, device=device) % NUM_CLASSES
    seeds = list(range(batch))
    out: dict[str, Any] = {"batch": batch, "steps": steps, "guidance_scale": GUIDANCE}
    for name in ("ddim", "dpmpp"):
        ref = SAMPLERS[name](
            ours,
            schedule,
            labels,
            make_noise(seeds, device),
            steps=steps,
            guidance_scale=GUIDANCE,
        )
        x_T = make_noise(seeds, device).randn(SHAPE)
        got = diffusers_sample(
            ours, diffusers_scheduler(name, schedule), x_T, labels, NUM_CLASSES, GUIDANCE, steps
        )
        out[name] = {
            "max_abs_diff": float((ref - got).abs().max()),
            "sample_abs_mean": float(ref.abs().mean()),
        }
    out["ancestral"] = "not compared (stochastic: the two draw different z)"
    return out


class _TrivialEps:
    """A network that costs nothing, so a sampler's time is its own loop: schedule maths,
    guidance, per-image noise, Python."""

    null_label = NUM_CLASSES
    image_shape = SHAPE

    def __call__(self, x: torch.Tensor, t: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return x * 0.1


def overhead_rows(batch: int, device: torch.device, steps: int = 50) -> list[dict[str, Any]]:
    """Milliseconds per step that each sampling loop adds on top of the network."""
    eps = _TrivialEps()
    labels = torch.arange(batch, device=device) % NUM_CLASSES
    rows = []
    for name in ("ancestral", "ddim", "dpmpp"):
        schedule = NoiseSchedule.linear(T)
        ours = NoiseSchedule(schedule.betas[:steps]) if name == "ancestral" else schedule
        scheduler = diffusers_scheduler(name, schedule)

        def run_ours(ours: NoiseSchedule = ours, name: str = name) -> torch.Tensor:
            return sample(
                name,
                eps,
                ours,
                labels,
                make_noise(list(range(batch)), device),
                steps=None if name == "ancestral" else steps,
                guidance_scale=GUIDANCE,
            )

        def run_theirs(scheduler: Any = scheduler, name: str = name) -> torch.Tensor:
            x_T = torch.randn(batch, *SHAPE, device=device)
            n = T if name == "ancestral" else steps
            return diffusers_sample(
                eps, scheduler, x_T, labels, NUM_CLASSES, GUIDANCE, n, max_steps=steps
            )

        row: dict[str, Any] = {"sampler": name, "batch": batch, "steps_timed": steps}
        for impl, fn in (("synthmix", run_ours), ("diffusers", run_theirs)):
            fn()  # warm-up
            row[f"{impl}_ms_per_step"] = round(_median_wall(fn, 3, device) / steps * 1e3, 3)
        rows.append(row)
    return rows

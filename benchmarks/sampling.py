"""Sampling cases: synthmix's samplers against the equivalent diffusers scheduler loops.

Both sides use the same network function: the synthmix U-Net in the architecture UNet2DModel can
express (MATCHED_OVERRIDES) and a UNet2DModel holding a copy of its weights, so the difference
is the network implementation plus the sampling loop. Guidance w = 3 everywhere, i.e. two
network evaluations (NFE) per image and step, done as one batched forward on both sides.
"""

from __future__ import annotations

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
from measure import sync, timed_windows
from torch import nn
from training import NUM_CLASSES, unet_cfg

from synthmix.diffusion.samplers import SAMPLERS, PerImageNoise, sample
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
    repeats: int  # timed runs per row (median); runs of <= 10 steps get 3x as many
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
        return sample(name, model, schedule, labels, PerImageNoise(seeds, device),
                      steps=None if name == "ancestral" else steps, guidance_scale=GUIDANCE,
                      image_shape=SHAPE, null_label=NUM_CLASSES)  # fmt: skip

    return run


def _diffusers_run(model: nn.Module, name: str, steps: int, plan: SamplePlan,
                   device: torch.device):  # fmt: skip
    scheduler = diffusers_scheduler(name, NoiseSchedule.linear(T))
    labels = torch.arange(plan.batch, device=device) % NUM_CLASSES
    eps = diffusers_eps(model)

    def run() -> torch.Tensor:
        g = torch.Generator(device).manual_seed(0)
        x_T = torch.randn(plan.batch, *SHAPE, generator=g, device=device)  # as users draw it
        if name == "ancestral":
            return diffusers_sample(eps, scheduler, x_T, labels, NUM_CLASSES, GUIDANCE, T,
                                    max_steps=steps, generator=g)  # fmt: skip
        return diffusers_sample(eps, scheduler, x_T, labels, NUM_CLASSES, GUIDANCE, steps,
                                generator=g)  # fmt: skip

    return run


def sampler_rows(plan: SamplePlan, device: torch.device, compile_model: bool) -> list[dict]:
    """NFE/s and images/s of every (implementation, sampler, steps)."""
    ours, theirs = networks(device)
    impls: dict[str, tuple[nn.Module, Callable[..., Any]]] = {
        "synthmix": (ours, _synthmix_run),
        "diffusers": (theirs, _diffusers_run),
    }
    grid = [("ancestral", plan.ancestral_steps)]
    grid += [(name, s) for name in ("ddim", "dpmpp") for s in plan.steps]
    rows = []
    for impl, (net, make) in impls.items():
        model = torch.compile(net) if compile_model else net
        t0 = time.perf_counter()
        with torch.inference_mode():  # warm-up (and compilation) at the guided batch shape
            x = torch.randn(2 * plan.batch, *SHAPE, device=device)
            t = torch.zeros(2 * plan.batch, dtype=torch.int64, device=device)
            diffusers_eps(model)(x, t, t) if impl == "diffusers" else model(x, t, t)
        sync(device)
        warm = time.perf_counter() - t0
        for name, steps in grid:
            repeats = plan.repeats * (3 if steps <= 10 else 1)
            wall = _median_wall(make(model, name, steps, plan, device), repeats, device)
            full_steps = T if name == "ancestral" else steps
            wall_full = wall * full_steps / steps
            rows.append({
                "impl": impl, "sampler": name, "steps": full_steps, "steps_timed": steps,
                "extrapolated": name == "ancestral", "batch": plan.batch,
                "guidance_scale": GUIDANCE, "nfe_per_image": 2 * full_steps,
                "wall_s": round(wall_full, 3),
                "nfe_per_s": round(2 * full_steps * plan.batch / wall_full, 2),
                "images_per_s": round(plan.batch / wall_full, 3),
                "first_call_s": round(warm, 2), "repeats": repeats,
            })  # fmt: skip
        del model
        gc.collect()
    return rows


def eval_rows(plan: SamplePlan, device: torch.device) -> list[dict]:
    """U-Net forward images/s (inference mode) at the guided batch: memory format and
    architecture before/after, without any sampler around it."""
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
    rows = []
    for name, net in nets.items():
        fwd = diffusers_eps(net) if name.startswith("diffusers") else net
        for cl in (False, True):
            fmt = torch.channels_last if cl else torch.contiguous_format
            net.to(memory_format=fmt)  # type: ignore[call-overload]
            xx = x.contiguous(memory_format=fmt)

            def call(fwd: Any = fwd, xx: torch.Tensor = xx) -> None:
                with torch.inference_mode():
                    fwd(xx, t, y)

            w = timed_windows(call, b, warmup=1, windows=plan.eval_windows, calls_per_window=1,
                              device=device)  # fmt: skip
            rows.append({"network": name, "channels_last": cl, "batch": b,
                         "images_per_s": w.summary()})  # fmt: skip
    return rows


def check_agreement(device: torch.device, batch: int = 4, steps: int = 10) -> dict[str, Any]:
    """synthmix's DDIM / DPM-Solver++(2M) vs diffusers' schedulers on the same network and x_T:
    the loops being timed against each other compute the same samples (max |difference|)."""
    ours, _ = networks(device)
    schedule = NoiseSchedule.linear(T)
    labels = torch.arange(batch, device=device) % NUM_CLASSES
    seeds = list(range(batch))
    out: dict[str, Any] = {"batch": batch, "steps": steps, "guidance_scale": GUIDANCE}
    for name in ("ddim", "dpmpp"):
        ref = SAMPLERS[name](ours, schedule, labels, PerImageNoise(seeds, device), steps=steps,
                             guidance_scale=GUIDANCE)  # fmt: skip
        x_T = PerImageNoise(seeds, device).randn(SHAPE)
        got = diffusers_sample(ours, diffusers_scheduler(name, schedule), x_T, labels,
                               NUM_CLASSES, GUIDANCE, steps)  # fmt: skip
        out[name] = {"max_abs_diff": float((ref - got).abs().max()),
                     "sample_abs_mean": float(ref.abs().mean())}  # fmt: skip
    out["ancestral"] = "not compared (stochastic: the two draw different z)"
    return out

"""Every stage against the machine's limit (issue 19): achieved GFLOP/s next to the host's peak.

FLOPs per image are counted once per network with `torch.utils.flop_counter.FlopCounterMode`
(matrix products, convolutions and attention; elementwise work is not counted, so achieved
figures are lower bounds): a training step is the forward and backward pass, a sampled image
is the forward pass times its network evaluations (guidance doubles them). The peak is an
estimate, cores x clock x fp32 FLOPs per cycle of the instruction level, its assumption
written beside it.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from synthmix.device import cpu_capability, cpu_flags

LANES = {"AVX512": 16, "AVX2": 8}  # fp32 lanes per vector register; anything else: 4 (SSE)


def gflop_per_image(model: nn.Module, inputs: tuple[torch.Tensor, ...], train: bool) -> float:
    """GFLOP per image of one forward (and, with `train`, backward) pass on `inputs`."""
    model = model.train(train)
    with FlopCounterMode(display=False) as counter:
        if train:
            model(*inputs).float().pow(2).mean().backward()
        else:
            with torch.no_grad():
                model(*inputs)
    return counter.get_total_flops() / len(inputs[0]) / 1e9


def host_peak() -> dict[str, Any]:
    """Estimated fp32 peak GFLOP/s of the CPUs this process may use, and how it was estimated."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    ghz = _clock_ghz()
    level = cpu_capability()
    lanes = LANES.get(level, 4)
    fma = 2 if "fma" in cpu_flags() or level == "AVX512" else 1
    per_cycle = lanes * fma * 2  # two vector FMA units per core (Zen 2-4, Skylake-SP and later)
    cores = cores or 1
    return {
        "peak_gflops": round(cores * ghz * per_cycle, 1) if ghz else None,
        "peak_assumption": f"{cores} CPUs x {ghz:.2f} GHz x {per_cycle} fp32 FLOP/cycle "
                           f"({level}: {lanes} lanes x {'FMA' if fma == 2 else 'no FMA'} x 2 "
                           "units); SMT siblings would share units, turbo clocks differ",
    }


def _clock_ghz() -> float:
    """The highest clock the OS reports (cpufreq's maximum, else /proc/cpuinfo's MHz)."""
    try:
        khz = Path("/sys/devices/system/cpu/cpu0/cpufreq/cpuinfo_max_freq").read_text()
        return int(khz) / 1e6
    except (OSError, ValueError):
        pass
    try:
        with open("/proc/cpuinfo") as f:
            mhz = [float(ln.split(":")[1]) for ln in f if ln.startswith("cpu MHz")]
        return max(mhz) / 1e3 if mhz else 0.0
    except (OSError, ValueError):
        return 0.0


def with_compute(record: dict[str, Any], gflop: float | None, images_per_second: Any,
                 peak: float | None) -> dict[str, Any]:
    """A stage record with its GFLOP per image, achieved GFLOP/s and share of the peak."""
    if gflop is None or not isinstance(images_per_second, int | float):
        return record
    achieved = gflop * images_per_second
    out = {**record, "gflop_per_image": round(gflop, 4), "achieved_gflops": round(achieved, 1)}
    if peak:
        out["share_of_peak"] = round(achieved / peak, 3)
    return out


def add_compute(stages: dict[str, Any], classifier_model: dict[str, Any], ddpm_run: Path,
                settings: Any) -> dict[str, Any]:
    """The study's stage records with compute added where the work per image is one network's:
    DDPM training, sampling the synthetic sets and training the classifiers (their validation
    passes not counted). Tuning and quality mix several networks and are left as they are."""
    from synthmix.diffusion.samplers import network_evaluations
    from synthmix.runs.classifier import build_classifier
    from synthmix.runs.ddpm import load_ddpm

    ddpm = load_ddpm(ddpm_run, device=torch.device("cpu"))
    h, w, c = ddpm.image_shape
    x, y = torch.randn(2, c, h, w), torch.zeros(2, dtype=torch.long)
    t = torch.full((2,), ddpm.schedule.T // 2, dtype=torch.long)
    unet_train = gflop_per_image(ddpm.model, (x, t, y), train=True)
    nfe = network_evaluations(settings.sampler, settings.steps, ddpm.schedule.T,
                              settings.guidance_scale)
    unet_sample = gflop_per_image(ddpm.model, (x, t, y), train=False) * nfe
    net = build_classifier(classifier_model, c, len(ddpm.class_names))
    classifier_train = gflop_per_image(net, (x,), train=True)
    peak = host_peak()
    out: dict[str, Any] = {}
    for name, record in stages.items():
        gflop = (unet_train if name.startswith("ddpm") else
                 unet_sample if name.startswith("synthetic-set") else
                 classifier_train if name == "classifiers" else None)
        extra = {**peak} if gflop is not None else {}
        out[name] = with_compute({**record, **extra}, gflop, record.get("images_per_second"),
                                 peak["peak_gflops"])
    return out

"""`amp: auto` on the CPU, chosen by measurement (issue 19).

bf16 autocast is 10-15x slower than fp32 on a CPU without native bf16 (AVX2), and on one with
it (AVX512_BF16/AMX) faster for some networks only (the `gpu` U-Net 2.0x, `cpu-wide` 1.38x,
the 32-channel `cpu` U-Net not at all). So auto picks bf16 only where the CPU has native bf16
and a few timed training steps of this network at this batch show it faster by a margin; the
answer is cached per host, torch version, threads and network, so a study measures once.
"""

from __future__ import annotations

import copy
import json
import logging
import time
from pathlib import Path
from typing import Any

import torch
from torch import nn

from synthmix.device import AmpMode, autocast, cpu_capability, cpu_model, cpu_native_bf16
from synthmix.device import resolve_amp as resolve_static
from synthmix.files import atomic_write_json
from synthmix.seeding import StepRandom

log = logging.getLogger(__name__)

BF16_MARGIN = 0.9  # bf16 must take at most 90% of fp32's step time (timing noise is ~10%)
TIMED_STEPS = 3


def precision_name(dtype: torch.dtype | None) -> str:
    return {None: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}[dtype]


def cache_file() -> Path:
    """Beside the decoded data ($SYNTHMIX_CACHE): a host's measurements outlive its runs."""
    from synthmix.data.cache import cache_dir

    return cache_dir() / "amp-choices.json"


def choose_amp(amp: AmpMode, device: torch.device, model: nn.Module, task: Any,
               x: torch.Tensor, y: torch.Tensor) -> torch.dtype | None:
    """The autocast dtype of a run: as `resolve_amp`, except `auto` on a CPU with native bf16,
    where a timed comparison on (x, y) (cached) decides between bf16 and fp32."""
    if amp != "auto" or device.type != "cpu" or not cpu_native_bf16():
        return resolve_static(amp, device)
    key = "|".join([cpu_model(), cpu_capability(), torch.__version__,
                    str(torch.get_num_threads()), type(model).__name__,
                    str(sum(p.numel() for p in model.parameters())), str(tuple(x.shape))])
    path = cache_file()
    cached = _read(path)
    if key not in cached:
        fp32, bf16 = (_step_seconds(model, task, x, y, d) for d in (None, torch.bfloat16))
        cached[key] = {"fp32_s": round(fp32, 5), "bf16_s": round(bf16, 5),
                       "choice": "bf16" if bf16 < BF16_MARGIN * fp32 else "fp32"}
        atomic_write_json(path, cached)
        log.info("amp auto: fp32 %.3f s, bf16 %.3f s per step -> %s", fp32, bf16,
                 cached[key]["choice"])
    return torch.bfloat16 if cached[key]["choice"] == "bf16" else None


def _read(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}  # none yet, or unreadable: measure again and rewrite it
    return data if isinstance(data, dict) else {}


def _step_seconds(model: nn.Module, task: Any, x: torch.Tensor, y: torch.Tensor,
                  dtype: torch.dtype | None) -> float:
    """Median seconds of a forward and backward pass of a copy of `model` (the run's own
    weights, statistics and random numbers stay untouched)."""
    probe = copy.deepcopy(model).train()
    times = []
    for i in range(TIMED_STEPS + 1):  # the first call warms up
        t0 = time.perf_counter()
        with autocast(x.device, dtype):
            loss = task.train_loss(probe, x, y, StepRandom(torch.Generator().manual_seed(i)))
        loss.backward()
        times.append(time.perf_counter() - t0)
    return sorted(times[1:])[len(times[1:]) // 2]

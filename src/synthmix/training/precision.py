"""`amp: auto` on the CPU, chosen by a rule on the network, not by a stopwatch (issue 19).

bf16 autocast is 10-15x slower than fp32 on a CPU without native bf16 (AVX2), and on one with
it (AVX512_BF16/AMX) faster for wide networks only. Measured on a 2-core Intel Xeon with AMX
(training step, 2 threads): the `gpu` U-Net (18.6 GFLOP per training image) 2.0x, `cpu-wide`
(1.36) 1.38x, the `cpu` U-Net (0.34) no faster, the `tiny` classifier (0.027) 1.04x. So auto
picks bf16 where the CPU has native bf16 and one training image of this network costs at least
BF16_MIN_GFLOP (torch's flop counter, on two images of the run's own data).

A rule, not a timing: an earlier version timed a few steps of each precision, and on a busy
machine the same command chose differently from one process to the next (a resumed study then
continued in the other precision). A FLOP count is the same on every run of a host type, so the
same command gives the same numbers; across CPU types (with and without native bf16) the choice
differs, as their last digits do anyway.
"""

from __future__ import annotations

import copy
import logging
from typing import Any

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from synthmix.device import AmpMode, cpu_native_bf16
from synthmix.device import resolve_amp as resolve_static
from synthmix.seeding import StepRandom

log = logging.getLogger(__name__)

BF16_MIN_GFLOP = 1.0  # per training image: between the `cpu` U-Net (0.34) and `cpu-wide` (1.36)


def precision_name(dtype: torch.dtype | None) -> str:
    return {None: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}[dtype]


def choose_amp(amp: AmpMode, device: torch.device, model: nn.Module, task: Any,
               x: torch.Tensor, y: torch.Tensor, world: int = 1) -> torch.dtype | None:
    """The autocast dtype of a run: as `resolve_amp`, except `auto` on a CPU with native bf16
    in one process (`world` 1), where bf16 is taken for networks of at least BF16_MIN_GFLOP
    per training image."""
    if amp != "auto" or device.type != "cpu" or world != 1 or not cpu_native_bf16():
        return resolve_static(amp, device)
    gflop = train_gflop_per_image(model, task, x[:2], y[:2])
    choice = torch.bfloat16 if gflop >= BF16_MIN_GFLOP else None
    log.info("amp auto: %.3f GFLOP per training image -> %s", gflop, precision_name(choice))
    return choice


def train_gflop_per_image(model: nn.Module, task: Any, x: torch.Tensor, y: torch.Tensor
                          ) -> float:
    """GFLOP of one training step's forward and backward pass per image, counted on a copy of
    `model` (the run's own weights, statistics and random numbers stay untouched)."""
    probe = copy.deepcopy(model).train()
    with FlopCounterMode(display=False) as counter:
        loss = task.train_loss(probe, x, y, StepRandom(torch.Generator().manual_seed(0)))
        loss.backward()
    return counter.get_total_flops() / len(x) / 1e9

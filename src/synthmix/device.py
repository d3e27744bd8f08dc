"""Device, precision and thread choices, made once per run.

CPU default is fp32 + channels_last: on the AVX2 machines synthmix is developed on, bf16
autocast is 10-15x slower (see ../shared/CPU-NOTES.md). CUDA default is bf16 autocast where
the GPU supports it, else fp16 with a gradient scaler.
"""

from __future__ import annotations

import contextlib
import logging
import os
from typing import Literal

import torch

from synthmix.errors import ConfigError

log = logging.getLogger(__name__)

AmpMode = Literal["auto", "off", "fp16", "bf16"]


def select_device(name: str = "auto") -> torch.device:
    """`auto` picks this process's CUDA device (LOCAL_RANK under torchrun) or the CPU."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
        return torch.device("cpu")
    try:
        device = torch.device(name)
    except RuntimeError as e:
        raise ConfigError(f"device {name!r} is not a valid torch device ({e})") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device {name!r} asked for, but CUDA is not available here")
    return device


def resolve_amp(amp: AmpMode, device: torch.device) -> torch.dtype | None:
    """The autocast dtype for `amp` on `device`, or None for plain fp32."""
    if amp == "off":
        return None
    if device.type == "cuda":
        if amp == "fp16":
            return torch.float16
        if amp == "bf16" or torch.cuda.is_bf16_supported():
            return torch.bfloat16
        return torch.float16
    if amp == "auto":
        return None
    if amp == "fp16":
        raise ConfigError("amp: fp16 is only supported on CUDA; use amp: off on the CPU")
    log.warning("bf16 autocast on a CPU without native bf16 is often 10x slower than fp32")
    return torch.bfloat16


def autocast(device: torch.device, dtype: torch.dtype | None) -> contextlib.AbstractContextManager:
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


def set_threads(num_threads: int | None) -> None:
    """Use `num_threads` intra-op threads (None: leave torch's default, one per core)."""
    if num_threads:
        torch.set_num_threads(num_threads)

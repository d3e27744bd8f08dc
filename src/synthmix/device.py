"""Device, precision and thread choices, made once per run.

CPU default is fp32 + channels_last. bf16 autocast is 10-15x slower than fp32 on CPUs without
native bf16 (AVX2 hosts), and faster only for some networks on CPUs with it (AVX512_BF16/AMX:
1.4-2x for the wider U-Nets, no gain for the 32-channel one; ../shared/CPU-NOTES.md), so
`amp: auto` on the CPU takes bf16 only where the CPU has it and the network costs at least
1 GFLOP per training image (`synthmix.training.precision`). CUDA default is bf16 autocast where
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
    if not cpu_native_bf16():
        log.warning("bf16 autocast on a CPU without native bf16 (AVX512_BF16/AMX) is often "
                    "10x slower than fp32")
    return torch.bfloat16


def cpu_flags() -> set[str]:
    """The CPU's feature flags from /proc/cpuinfo (empty where there is none)."""
    try:
        with open("/proc/cpuinfo") as f:
            line = next((ln for ln in f if ln.startswith(("flags", "Features"))), "")
    except OSError:
        return set()
    return set(line.split(":", 1)[1].split()) if ":" in line else set()


def cpu_native_bf16() -> bool:
    """Whether the CPU computes in bf16 natively (AVX512_BF16 or AMX), where bf16 can pay."""
    return bool(cpu_flags() & {"avx512_bf16", "amx_bf16"})


def cpu_model() -> str:
    """The CPU's model name (/proc/cpuinfo), else what `platform` knows."""
    import platform

    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def cpu_capability() -> str:
    """torch's vector instruction level on this CPU (DEFAULT, AVX2, AVX512, ...)."""
    try:
        return str(torch.backends.cpu.get_cpu_capability())
    except (AttributeError, RuntimeError):
        return "unknown"


def autocast(device: torch.device, dtype: torch.dtype | None) -> contextlib.AbstractContextManager:
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


def set_threads(num_threads: int | None) -> None:
    """Use `num_threads` intra-op threads (None: leave torch's default, one per core)."""
    if num_threads:
        torch.set_num_threads(num_threads)

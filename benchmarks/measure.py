"""Timing and memory for the benchmark: median of timed windows, peak memory, the machine."""

from __future__ import annotations

import contextlib
import ctypes
import gc
import os
import platform
import re
import resource
import time
from collections.abc import Callable, Sequence
from typing import Any

import torch

from synthmix.device import cpu_model


def sync(device: torch.device) -> None:
    """Wait for queued device work, so a timer measures it (no-op on the CPU)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class PeakMemory:
    """Peak memory of one measurement.

    CUDA: torch.cuda.max_memory_allocated after a reset. CPU: the process's resident set. Its
    high-water mark (VmHWM, what getrusage's ru_maxrss reports) only ever grows, so it is reset
    through /proc/self/clear_refs (Linux >= 4.0) after freeing and trimming the heap; the result
    is the peak RSS during the measurement minus the RSS before it. Where the reset is not
    possible the delta of resource.getrusage's ru_maxrss is used (0 unless a new peak is hit).
    """

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.method = "cuda.max_memory_allocated" if device.type == "cuda" else "rss"
        self.base_mib = 0.0
        self._reset_ok = False

    def __enter__(self) -> PeakMemory:
        gc.collect()
        if self.device.type == "cuda":
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats(self.device)
            self.base_mib = torch.cuda.memory_allocated(self.device) / 2**20
            return self
        _malloc_trim()
        try:
            with open("/proc/self/clear_refs", "w") as f:
                f.write("5")  # resets VmHWM to the current RSS
            self._reset_ok = True
            self.method = "rss (VmHWM reset via /proc/self/clear_refs)"
        except OSError:
            self.method = "rss (getrusage ru_maxrss delta; 0 if no new peak)"
        self.base_mib = _rss_mib("VmRSS") if self._reset_ok else _maxrss_mib()
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def peak_mib(self) -> float:
        """Peak minus the baseline taken on entry, in MiB."""
        if self.device.type == "cuda":
            return torch.cuda.max_memory_allocated(self.device) / 2**20 - self.base_mib
        peak = _rss_mib("VmHWM") if self._reset_ok else _maxrss_mib()
        return max(0.0, peak - self.base_mib)


def _maxrss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def _rss_mib(field_name: str) -> float:
    with open("/proc/self/status") as f:
        m = re.search(rf"{field_name}:\s+(\d+) kB", f.read())
    return int(m.group(1)) / 1024 if m else _maxrss_mib()


def _malloc_trim() -> None:
    # Return freed heap to the OS so the next baseline RSS is not inflated by the last case.
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)


def warm_up(fn: Callable[[], Any], calls: int, device: torch.device) -> float:
    """Call `fn` `calls` (>= 1) times; returns the first call's seconds (compile included)."""
    first = 0.0
    for i in range(max(1, calls)):
        t0 = time.perf_counter()
        fn()
        sync(device)
        if i == 0:
            first = time.perf_counter() - t0
    return first


def interleaved_windows(
    fns: Sequence[Callable[[], Any]],
    items_per_call: Sequence[int],
    *,
    windows: int,
    calls_per_window: int,
    device: torch.device,
) -> list[list[float]]:
    """Rates (items/s) of `windows` timed windows per function, taken round-robin (window k of
    every function before window k + 1 of any), so drifting background load hits all alike."""
    rates: list[list[float]] = [[] for _ in fns]
    for _ in range(windows):
        for fn, items, out in zip(fns, items_per_call, rates):
            t0 = time.perf_counter()
            for _ in range(calls_per_window):
                fn()
            sync(device)
            out.append(items * calls_per_window / (time.perf_counter() - t0))
    return rates


def cpu_flags() -> list[str]:
    """The SIMD extensions that decide CPU speed (AVX2/AVX-512/AMX/bf16)."""
    try:
        with open("/proc/cpuinfo") as f:
            flags = next((ln.split(":", 1)[1].split() for ln in f if ln.startswith("flags")), [])
    except OSError:
        return []
    keep = ("avx2", "fma", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile")
    return [k for k in keep if k in flags]


def load_average() -> float:
    try:
        return os.getloadavg()[0]
    except OSError:
        return float("nan")


def machine(device: torch.device) -> dict[str, Any]:
    """What the numbers were measured on."""
    info: dict[str, Any] = {
        "cpu": cpu_model(),
        "cpu_flags": cpu_flags(),
        "cores": os.cpu_count(),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "mkldnn": torch.backends.mkldnn.is_available(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "device": str(device),
        "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "load_average_1min_start": round(load_average(), 2),
    }
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
        info["cuda"] = torch.version.cuda
    try:
        import diffusers

        info["diffusers"] = diffusers.__version__
    except ImportError:
        info["diffusers"] = None
    return info

"""Where a result came from: code version, hardware, library versions."""

from __future__ import annotations

import os
import platform
import subprocess
from pathlib import Path
from typing import Any

from synthmix import __version__


def code_version() -> dict[str, Any]:
    """Package version plus git commit and dirty flag when run from a checkout."""
    info: dict[str, Any] = {"synthmix": __version__}
    root = Path(__file__).resolve().parents[2]
    if (root / ".git").exists():
        try:
            commit = subprocess.run(
                ["git", "-C", str(root), "rev-parse", "HEAD"],
                capture_output=True,
                text=True,
                timeout=5,
                check=True,
            ).stdout.strip()
            dirty = subprocess.run(
                ["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
                capture_output=True,
                text=True,
                timeout=5,
                check=True,
            ).stdout.strip()
            info["git_commit"] = commit
            info["git_dirty"] = bool(dirty)
        except (OSError, subprocess.SubprocessError):
            pass
    return info


def hardware() -> dict[str, Any]:
    """The machine: CPU model and instruction level (a bare `x86_64` cannot explain why one
    command ran 54 or 68 minutes), whether it has native bf16, threads, GPU."""
    import torch

    from synthmix.device import cpu_capability, cpu_model, cpu_native_bf16

    info: dict[str, Any] = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "platform": platform.platform(),
        "cpu": platform.processor() or platform.machine(),
        "cpu_model": cpu_model(),
        "cpu_capability": cpu_capability(),
        "cpu_native_bf16": cpu_native_bf16(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "cuda": torch.cuda.is_available(),
    }
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
        info["gpu_count"] = torch.cuda.device_count()
    return info

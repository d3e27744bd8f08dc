"""Helpers of benchmarks/gpu_check.sh: the machine record, and check.json from the stage table.

    python benchmarks/gpu_check_record.py env DEVICE OUT_JSON   # exit 1 if DEVICE cannot be used
    python benchmarks/gpu_check_record.py record WORK OUT_JSON  # stages.tsv + env.json -> JSON

Standard library and torch only, so it runs wherever the check runs.
"""

from __future__ import annotations

import json
import os
import platform
import sys
from pathlib import Path
from typing import Any


def _write(path: Path, data: dict[str, Any]) -> None:
    """Atomic: the file under $OUT is whole whenever the device tool copies it back."""
    tmp = path.with_name(path.name + ".part")
    tmp.write_text(json.dumps(data, indent=2) + "\n")
    os.replace(tmp, path)


def env(device: str, out: Path) -> int:
    """Python, torch and the accelerator; non-zero when `device` is cuda and CUDA is absent."""
    import torch

    record: dict[str, Any] = {
        "python": platform.python_version(), "torch": torch.__version__,
        "torch_cuda": torch.version.cuda, "cuda_available": torch.cuda.is_available(),
        "cpu_count": os.cpu_count(), "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "machine": platform.machine(), "device_asked": device,
    }  # fmt: skip
    if torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        record.update({"gpu": props.name, "gpu_memory_mib": props.total_memory // 2**20,
                       "gpu_capability": f"{props.major}.{props.minor}",
                       "bf16_supported": torch.cuda.is_bf16_supported()})
    _write(out, record)
    print(json.dumps(record))
    if device.startswith("cuda") and not torch.cuda.is_available():
        print(f"gpu_check: DEV={device} but torch {torch.__version__} sees no CUDA device")
        return 1
    return 0


def record(work: Path, out: Path) -> int:
    """check.json: the plan, the machine and every stage's status, seconds and limit."""
    stages = []
    tsv = work / "stages.tsv"
    for line in tsv.read_text().splitlines() if tsv.is_file() else []:
        name, rc, seconds, limit = line.split("\t")
        code = int(rc)
        status = "ok" if code == 0 else "timed out" if code in (124, 137) else "failed"
        stages.append({"stage": name, "status": status, "rc": code, "seconds": int(seconds),
                       "limit_s": int(limit)})
    env_file = work / "env.json"
    data = {
        "call": os.environ.get("GPU_CHECK_CALL", ""),
        "quick": os.environ.get("QUICK", "0") == "1",
        "overrides": os.environ.get("GPU_CHECK_OVERRIDES", "").split(),
        "env": json.loads(env_file.read_text()) if env_file.is_file() else None,
        "stages": stages,
        "failed": [s["stage"] for s in stages if s["status"] != "ok"],
    }
    _write(out, data)
    return 0


def main(argv: list[str]) -> int:
    if len(argv) == 3 and argv[0] == "env":
        return env(argv[1], Path(argv[2]))
    if len(argv) == 3 and argv[0] == "record":
        return record(Path(argv[1]), Path(argv[2]))
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))

"""What every run directory holds: the resolved config, code version, hardware, command.

The data a run trains on (`DataConfig`, `prepare_data`) lives in `synthmix.data.prepared`; it is
imported here too, where the runs have always found it."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

from synthmix.config import dump_yaml
from synthmix.data.prepared import DataConfig, PreparedData, prepare_data
from synthmix.files import atomic_write_json, atomic_write_text
from synthmix.runinfo import code_version, hardware


def write_run_info(run_dir: Path, cfg: Any, extra: dict[str, Any] | None = None) -> None:
    """config.yaml (resolved) and run.json (code version, hardware, command, start time)."""
    run_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(run_dir / "config.yaml", dump_yaml(cfg))
    info = {
        "command": " ".join(sys.argv),
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "code_version": code_version(),
        "hardware": hardware(),
    }
    info.update(extra or {})
    atomic_write_json(run_dir / "run.json", info)


__all__ = ["DataConfig", "PreparedData", "prepare_data", "write_run_info"]

"""synthmix: class-conditional DDPM synthetic data and how much it is worth to a classifier.

As a library::

    import synthmix

    run = synthmix.load_run("runs/ddpm-mnist-cpu-20250101-120000")
    images, labels = run.sample(n_per_class=10)  # (N, C, H, W) in [-1, 1], (N,) int64

The names below are loaded on first use, so `import synthmix` (and the command line, which reads
`__version__`) does not import torch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_HOMES = {
    "Run": "api", "load_config": "api", "load_run": "api", "read_results": "api",
    "run_study": "api",
    "RealDataset": "data.dataset",
    "SamplerSettings": "diffusion.settings",
    "ConfigError": "errors", "DataError": "errors", "SynthmixError": "errors",
    "StudyConfig": "experiment.config",
    "SyntheticDataset": "synthetic.dataset",
}  # fmt: skip
__all__ = [
    "ConfigError",
    "DataError",
    "RealDataset",
    "Run",
    "SamplerSettings",
    "StudyConfig",
    "SynthmixError",
    "SyntheticDataset",
    "__version__",
    "load_config",
    "load_run",
    "read_results",
    "run_study",
]

if TYPE_CHECKING:
    from synthmix.api import Run, load_config, load_run, read_results, run_study
    from synthmix.data.dataset import RealDataset
    from synthmix.diffusion.settings import SamplerSettings
    from synthmix.errors import ConfigError, DataError, SynthmixError
    from synthmix.experiment.config import StudyConfig
    from synthmix.synthetic.dataset import SyntheticDataset


def __getattr__(name: str) -> Any:
    if name not in _HOMES:
        raise AttributeError(f"module 'synthmix' has no attribute {name!r}")
    return getattr(importlib.import_module(f"synthmix.{_HOMES[name]}"), name)


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})

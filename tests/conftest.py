"""Shared fixtures: an isolated decode cache for every test, the real data sets and the optional
extras."""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import pytest


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory: pytest.TempPathFactory,
                    monkeypatch: pytest.MonkeyPatch) -> None:
    """Decoded-data caches go to a fresh temporary folder, never to the home cache."""
    monkeypatch.setenv("SYNTHMIX_CACHE", str(tmp_path_factory.mktemp("synthmix-cache")))


@pytest.fixture(scope="session")
def shared_datasets() -> Path:
    """The real data sets: $SYNTHMIX_SHARED_DATASETS, else <repo>/../shared/datasets.

    Missing: skip, unless SYNTHMIX_REQUIRE_DATASETS=1, then fail.
    """
    env = os.environ.get("SYNTHMIX_SHARED_DATASETS")
    path = Path(env) if env else Path(__file__).resolve().parents[2] / "shared" / "datasets"
    if not path.is_dir():
        reason = f"real data sets not found at {path} (set SYNTHMIX_SHARED_DATASETS)"
        if os.environ.get("SYNTHMIX_REQUIRE_DATASETS") == "1":
            pytest.fail(reason)
        pytest.skip(reason)
    return path


@pytest.fixture(scope="session")
def optional_extra() -> Callable[[str, str], ModuleType]:
    """`optional_extra(module, extra)` imports a module of an extra the README offers.

    Missing: skip, unless SYNTHMIX_REQUIRE_EXTRAS=1 (CI), then fail: an offered feature is tested.
    """

    def load(module: str, extra: str) -> ModuleType:
        try:
            return importlib.import_module(module)
        except ImportError:
            reason = f"{module} is not installed (pip install -e '.[{extra}]')"
            if os.environ.get("SYNTHMIX_REQUIRE_EXTRAS") == "1":
                pytest.fail(reason)
            pytest.skip(reason)

    return load


def _refuse(what: str) -> Callable[..., None]:
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError(f"{what} ran again where finished work should be reused")

    return refuse


@pytest.fixture
def forbid_rework(monkeypatch: pytest.MonkeyPatch) -> Callable[[], None]:
    """Call it before a rerun: from then on training a DDPM or a classifier, or drawing samples
    from a diffusion model, raises (a proof of reuse that file times on a coarse clock are not)."""
    import synthmix.diffusion.samplers
    import synthmix.runs.classifier
    import synthmix.runs.ddpm

    def forbid() -> None:
        monkeypatch.setattr(synthmix.runs.classifier, "fit", _refuse("classifier training"))
        monkeypatch.setattr(synthmix.runs.ddpm, "fit", _refuse("DDPM training"))
        monkeypatch.setattr(synthmix.diffusion.samplers, "sample", _refuse("diffusion sampling"))

    return forbid


@pytest.fixture(autouse=True, scope="session")
def _one_torch_thread() -> None:
    """Tests use tiny networks, where a second thread costs more than it gives (and oversubscribes
    the machine when subprocess tests run beside the main process)."""
    import torch

    torch.set_num_threads(1)


TINY_DDPM_ARGS = [
    "--set", "data.dataset=digits", "--set", "data.image_size=8", "--set", "unet.preset=tiny",
    "--set", "schedule.T=20", "--set", "train.max_steps=2", "--set", "train.steps_per_epoch=2",
    "--set", "train.batch_size=32", "--set", "sample.steps=2", "--set", "sample.grid_per_class=1",
    "--set", "num_threads=1",
]


@pytest.fixture(scope="session")
def tiny_ddpm(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A DDPM run trained for 2 steps on the 8x8 digits (seconds), shared by the session."""
    from synthmix.cli import main

    run = tmp_path_factory.mktemp("tiny-ddpm") / "run"
    cfg = str(Path(__file__).resolve().parents[1] / "configs" / "ddpm" / "mnist-cpu.yaml")
    assert main(["train-ddpm", cfg, *TINY_DDPM_ARGS, "--run-dir", str(run), "--no-progress"]) == 0
    return run

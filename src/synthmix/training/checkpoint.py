"""Checkpoints: weights as safetensors, training state as a weights-only torch file.

A checkpoint is a folder (`last/` or `best/`) holding `model.safetensors`, `ema.safetensors`
(when EMA is on) and `state.pt` (optimizer, scaler, counters, RNG states; loaded with
`weights_only=True`). It is written beside its final name and swapped in by renames, so a
kill at any moment leaves either the old or the new checkpoint, never a mix.
"""

from __future__ import annotations

import json
import pickle
import shutil
import warnings
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from synthmix.errors import SynthmixError
from synthmix.files import atomic_write_json, fsync_path

MODEL_FILE = "model.safetensors"
EMA_FILE = "ema.safetensors"
STATE_FILE = "state.pt"


def state_dict_cpu(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()}


def save_checkpoint(
    folder: Path,
    model: nn.Module,
    ema: nn.Module | None = None,
    state: dict[str, Any] | None = None,
    meta: dict[str, Any] | None = None,
) -> None:
    """Write a checkpoint folder atomically (build `folder.tmp`, then swap it in)."""
    folder = Path(folder)
    tmp = folder.with_name(folder.name + ".tmp")
    old = folder.with_name(folder.name + ".old")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    save_file(state_dict_cpu(model), str(tmp / MODEL_FILE))
    if ema is not None:
        save_file(state_dict_cpu(ema), str(tmp / EMA_FILE))
    if state is not None:
        torch.save(state, tmp / STATE_FILE)
    if meta is not None:
        atomic_write_json(tmp / "meta.json", meta)
    for f in tmp.iterdir():
        fsync_path(f)
    fsync_path(tmp)
    shutil.rmtree(old, ignore_errors=True)
    if folder.exists():
        folder.rename(old)
    tmp.rename(folder)
    fsync_path(folder.parent)
    shutil.rmtree(old, ignore_errors=True)


def find_checkpoint(folder: Path) -> Path | None:
    """The checkpoint at `folder`, or the previous one if a kill hit between the two renames."""
    folder = Path(folder)
    for candidate in (folder, folder.with_name(folder.name + ".old")):
        if (candidate / MODEL_FILE).is_file():
            return candidate
    return None


def load_weights(path: Path, model: nn.Module) -> None:
    """Load a safetensors file into `model`, with a clear error on a missing or bad file."""
    path = Path(path)
    if not path.is_file():
        raise SynthmixError("checkpoint weights not found", path=path)
    try:
        tensors = load_file(str(path))
    except (SafetensorError, OSError, ValueError) as e:
        raise SynthmixError(f"not a readable safetensors file ({e})", path=path) from None
    missing, unexpected = model.load_state_dict(tensors, strict=False)
    if missing or unexpected:
        raise SynthmixError(
            f"weights do not fit this model: {len(missing)} missing, {len(unexpected)} unexpected "
            f"keys (e.g. {(missing or unexpected)[0]})",
            path=path,
            hint="was the run's config changed after training?",
        )


def load_state(folder: Path) -> dict[str, Any]:
    """The training state of a checkpoint, read without unpickling anything but tensors and
    plain values; anything else is refused as not a synthmix training state."""
    path = Path(folder) / STATE_FILE
    if not path.is_file():
        raise SynthmixError("training state not found", path=path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        # torch's message here suggests weights_only=False: never do that with such a file.
        raise SynthmixError(
            "not a synthmix training state: it holds objects other than tensors and plain "
            "values, which synthmix refuses to load",
            path=path, hint="delete the checkpoint folder, or resume from a trusted copy",
        ) from None
    except Exception as e:  # torch raises several types for a torn or foreign file
        raise SynthmixError(
            f"not a readable synthmix training state ({type(e).__name__})", path=path,
            hint="delete the checkpoint folder, or resume from a trusted copy",
        ) from None
    if not isinstance(state, dict) or "loop" not in state:
        raise SynthmixError("not a synthmix training state (no loop counters)", path=path)
    return state


def read_meta(folder: Path) -> dict[str, Any]:
    path = Path(folder) / "meta.json"
    return json.loads(path.read_text()) if path.is_file() else {}

"""torch.distributed helpers: one code path for 1 process, torchrun on several GPUs or nodes.

`Comm` is the view a piece of work has of the other processes: `group()` is every rank of the
torchrun job (DDP training, sharded sampling), `LOCAL` is this process alone (a classifier cell
that one rank trains by itself while the other ranks train other cells).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import timedelta

import torch
import torch.distributed as dist

# Ranks of a study wait for each other at stage ends (one rank may still train a long cell).
TIMEOUT_MINUTES_ENV = "SYNTHMIX_DIST_TIMEOUT_MIN"
DEFAULT_TIMEOUT_MINUTES = 360


def init_from_env(device: torch.device) -> bool:
    """Join the process group torchrun describes in the environment; False when not launched so."""
    if dist.is_available() and dist.is_initialized():
        return True
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return False
    backend = "nccl" if device.type == "cuda" else "gloo"
    if device.type == "cuda":
        torch.cuda.set_device(device)
    minutes = float(os.environ.get(TIMEOUT_MINUTES_ENV, DEFAULT_TIMEOUT_MINUTES))
    dist.init_process_group(backend=backend, timeout=timedelta(minutes=minutes))
    return True


def _initialised() -> bool:
    return dist.is_available() and dist.is_initialized()


@dataclass(frozen=True)
class Comm:
    """Rank, world size and the collectives of a group of processes (a no-op group of one)."""

    collective: bool

    @property
    def rank(self) -> int:
        return dist.get_rank() if self.collective else 0

    @property
    def world(self) -> int:
        return dist.get_world_size() if self.collective else 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def barrier(self) -> None:
        if self.world > 1:
            dist.barrier()

    def all_reduce_sum(self, values: torch.Tensor) -> torch.Tensor:
        """Sum a tensor over ranks (a no-op in a group of one)."""
        if self.world > 1:
            values = values.clone()
            dist.all_reduce(values, op=dist.ReduceOp.SUM)
        return values

    def broadcast_object(self, obj: object) -> object:
        """Rank 0's `obj` on every rank."""
        if self.world == 1:
            return obj
        box = [obj]
        dist.broadcast_object_list(box, src=0)
        return box[0]


LOCAL = Comm(collective=False)


def group() -> Comm:
    """Every rank of the job (this process alone when not launched by torchrun)."""
    return Comm(collective=_initialised())


def rank() -> int:
    return group().rank


def world_size() -> int:
    return group().world


def is_main() -> bool:
    return group().is_main


def barrier() -> None:
    group().barrier()

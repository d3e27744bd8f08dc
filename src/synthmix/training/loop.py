"""One training loop for every network in synthmix (the DDPM's eps-network and the classifier).

What is trained, and how its loss and validation loss are computed, is a `Task`; the loop owns
the rest: seeded batches, mixed precision, gradient clipping, EMA, early stopping on the
validation loss, checkpoints that resume exactly, DDP under torchrun, metrics and progress.

Every random number in a step is drawn from seeds derived from (seed, step, rank), and each
epoch's data order from (seed, epoch), so a resumed run replays exactly what an uninterrupted
run would have done: on the CPU the final weights are bit-identical.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

import torch
from torch import nn
from tqdm import tqdm

from synthmix.config import to_dict
from synthmix.device import AmpMode, autocast, derive_seed, resolve_amp
from synthmix.files import atomic_write_json, atomic_write_text
from synthmix.training import distributed as dist
from synthmix.training.checkpoint import (
    find_checkpoint,
    load_state,
    load_weights,
    save_checkpoint,
)
from synthmix.training.ema import EMA

log = logging.getLogger(__name__)

# Stream ids for derive_seed, so no two uses of the base seed ever share random numbers.
_STREAM_ORDER, _STREAM_STEP, _STREAM_GLOBAL = 1, 2, 3


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation and stopping. Defaults are the study's (SPEC §2/§4) except EMA and clipping."""

    max_epochs: int = 100
    patience: int | None = 10  # epochs without a better validation loss before stopping
    batch_size: int = 64  # global batch; each of N ranks takes batch_size / N
    lr: float = 5e-4
    optimizer: Literal["adam", "adamw"] = "adam"
    weight_decay: float = 0.0
    warmup_steps: int = 0
    grad_clip: float | None = 1.0
    ema_decay: float | None = 0.9999  # None reproduces the study (no EMA)
    amp: AmpMode = "auto"
    channels_last: bool = True
    compile: bool = False
    seed: int = 0
    max_steps: int | None = None
    max_minutes: float | None = None  # a training-time budget (CPU presets), summed over resumes
    steps_per_epoch: int | None = None  # None: one pass over the training data
    checkpoint_every_steps: int | None = None  # also checkpoint inside long epochs


@dataclass
class TrainResult:
    run_dir: Path
    epochs: int
    steps: int
    best_val_loss: float
    best_epoch: int
    stop_reason: str
    train_seconds: float
    images_per_second: float
    history: list[dict[str, Any]] = field(default_factory=list)


class Task(Protocol):
    """What the loop trains: a loss on a batch and a deterministic validation loss."""

    def train_loss(
        self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, generator: torch.Generator
    ) -> torch.Tensor: ...

    def val_loss(self, model: nn.Module) -> float: ...

    def on_epoch_end(self, model: nn.Module, epoch: int, run_dir: Path) -> dict[str, Any]: ...


@dataclass
class _State:
    epoch: int = 0  # epochs completed
    batch: int = 0  # batches done in the current epoch
    step: int = 0
    elapsed: float = 0.0  # training seconds so far, over all resumes
    images: int = 0
    best_val_loss: float = math.inf
    best_epoch: int = -1
    bad_epochs: int = 0
    stop_reason: str = ""
    history: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def epoch_order(n: int, seed: int, epoch: int, rank: int, world: int) -> torch.Tensor:
    """This rank's sample order for `epoch`: a seeded permutation, cut to equal shards."""
    g = torch.Generator().manual_seed(derive_seed(seed, _STREAM_ORDER, epoch))
    perm = torch.randperm(n, generator=g)
    per_rank = n // world
    return perm[: per_rank * world][rank::world]


def make_optimizer(model: nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    opt_cls = torch.optim.AdamW if cfg.optimizer == "adamw" else torch.optim.Adam
    return opt_cls(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)


def fit(
    model: nn.Module,
    task: Task,
    train_x: torch.Tensor,
    train_y: torch.Tensor,
    cfg: TrainConfig,
    run_dir: Path,
    device: torch.device,
    resume: bool = False,
    progress: bool = True,
) -> TrainResult:
    """Train `model` on (train_x, train_y) until max epochs/steps/minutes or early stopping."""
    run_dir = Path(run_dir)
    ckpt_dir = run_dir / "checkpoints"
    rank, world = dist.rank(), dist.world_size()
    model.to(device)
    if cfg.channels_last:
        model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
    optimizer = make_optimizer(model, cfg)
    amp_dtype = resolve_amp(cfg.amp, device)
    scaler = torch.amp.GradScaler(device.type, enabled=amp_dtype == torch.float16)
    ema = EMA(model, cfg.ema_decay) if cfg.ema_decay is not None else None
    state = _State()
    last = find_checkpoint(ckpt_dir / "last")
    if resume and last is not None:
        state = _restore(last, model, ema, optimizer, scaler)
        log.info("resuming %s at epoch %d, step %d", run_dir, state.epoch, state.step)
    elif not resume and last is not None:
        raise_exists(run_dir)
    train_model: nn.Module = model
    if world > 1:
        ddp_ids = [device.index] if device.type == "cuda" else None
        train_model = nn.parallel.DistributedDataParallel(model, device_ids=ddp_ids)
    if cfg.compile:
        train_model = torch.compile(train_model)  # type: ignore[assignment]
    train_x, train_y = train_x.to(device), train_y.to(device)
    if len(train_x) < world:
        from synthmix.errors import SynthmixError

        raise SynthmixError(f"{len(train_x)} training images cannot be shared by {world} ranks")
    per_rank_batch = max(1, cfg.batch_size // world)
    eval_model = ema.shadow if ema is not None else model

    while not _should_stop(state, cfg):
        order = epoch_order(len(train_x), cfg.seed, state.epoch, rank, world).to(device)
        n_batches = math.ceil(len(order) / per_rank_batch)
        if cfg.steps_per_epoch:
            n_batches = min(n_batches, cfg.steps_per_epoch)
        bar = tqdm(
            total=n_batches,
            initial=state.batch,
            desc=f"epoch {state.epoch + 1}",
            disable=not (progress and rank == 0),
            leave=False,
            dynamic_ncols=True,
        )
        model.train()
        loss_sum = torch.zeros((), device=device)
        n_steps, t0 = 0, time.perf_counter()
        while state.batch < n_batches and not _should_stop(state, cfg, in_epoch=True):
            idx = order[state.batch * per_rank_batch : (state.batch + 1) * per_rank_batch]
            x, y = train_x[idx], train_y[idx]
            if cfg.channels_last and x.dim() == 4:
                x = x.contiguous(memory_format=torch.channels_last)
            loss = _train_step(
                train_model, task, x, y, optimizer, scaler, cfg, state.step, rank, device, amp_dtype
            )
            if ema is not None:
                ema.update(model, state.step)
            loss_sum += loss.detach()
            n_steps += 1
            state.step += 1
            state.batch += 1
            state.images += len(idx) * world
            now = time.perf_counter()
            state.elapsed += now - t0
            t0 = now
            bar.update(1)
            if progress and rank == 0 and (n_steps % 10 == 0 or state.batch == n_batches):
                bar.set_postfix(
                    loss=f"{loss_sum.item() / n_steps:.4f}",
                    img_s=f"{state.images / max(state.elapsed, 1e-9):.0f}",
                )
            if cfg.checkpoint_every_steps and state.step % cfg.checkpoint_every_steps == 0:
                _save_last(ckpt_dir, model, ema, optimizer, scaler, state, cfg)
        bar.close()
        _end_epoch(
            state,
            task,
            eval_model,
            model,
            ema,
            optimizer,
            scaler,
            cfg,
            run_dir,
            loss_sum,
            n_steps,
            n_batches,
        )
    if rank == 0:
        _write_summary(run_dir, state, cfg)
    dist.barrier()
    return _result(run_dir, state)


def raise_exists(run_dir: Path) -> None:
    from synthmix.errors import SynthmixError

    raise SynthmixError(
        "run directory already holds a checkpoint",
        path=run_dir,
        hint="pass --resume to continue it, or choose another run directory",
    )


def _should_stop(state: _State, cfg: TrainConfig, in_epoch: bool = False) -> bool:
    if state.stop_reason:
        return True
    reason = ""
    if cfg.max_steps is not None and state.step >= cfg.max_steps:
        reason = "max_steps"
    elif cfg.max_minutes is not None and state.elapsed >= cfg.max_minutes * 60:
        reason = "max_minutes"
    elif not in_epoch and state.epoch >= cfg.max_epochs:
        reason = "max_epochs"
    elif not in_epoch and cfg.patience is not None and state.bad_epochs >= cfg.patience:
        reason = "early_stopping"
    # A time budget is read on rank 0's clock so every rank stops at the same step.
    if in_epoch and cfg.max_minutes is not None and dist.world_size() > 1:
        reason = str(dist.broadcast_object(reason))
    if reason and not in_epoch:
        state.stop_reason = reason
    return bool(reason)


def _train_step(
    model: nn.Module,
    task: Task,
    x: torch.Tensor,
    y: torch.Tensor,
    optimizer: torch.optim.Optimizer,
    scaler: torch.amp.GradScaler,
    cfg: TrainConfig,
    step: int,
    rank: int,
    device: torch.device,
    amp_dtype: torch.dtype | None,
) -> torch.Tensor:
    """One optimisation step; its random numbers come only from (seed, step, rank)."""
    torch.manual_seed(derive_seed(cfg.seed, _STREAM_GLOBAL, step, rank))  # dropout
    generator = torch.Generator(device).manual_seed(derive_seed(cfg.seed, _STREAM_STEP, step, rank))
    lr = cfg.lr * min(1.0, (step + 1) / cfg.warmup_steps) if cfg.warmup_steps else cfg.lr
    for group in optimizer.param_groups:
        group["lr"] = lr
    with autocast(device, amp_dtype):
        loss = task.train_loss(model, x, y, generator)
    optimizer.zero_grad(set_to_none=True)
    scaler.scale(loss).backward()
    if cfg.grad_clip is not None:
        scaler.unscale_(optimizer)
        nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
    scaler.step(optimizer)
    scaler.update()
    return loss.float()


def _end_epoch(
    state: _State,
    task: Task,
    eval_model: nn.Module,
    model: nn.Module,
    ema: EMA | None,
    optimizer: torch.optim.Optimizer,
    scaler: torch.amp.GradScaler,
    cfg: TrainConfig,
    run_dir: Path,
    loss_sum: torch.Tensor,
    n_steps: int,
    n_batches: int,
) -> None:
    """Validate, update early stopping, checkpoint and log; on rank 0, then shared."""
    epoch_done = state.batch >= n_batches
    stopping = _should_stop(state, cfg, in_epoch=True)
    if not epoch_done and not stopping:
        return
    train_loss = dist.all_reduce_sum(loss_sum.detach().float().reshape(1)).item()
    train_loss /= max(1, n_steps * dist.world_size())
    record: dict[str, Any] = {}
    if dist.is_main():
        record = _validate(
            state, task, eval_model, model, ema, cfg, run_dir, train_loss, n_batches
        )
    record = dict(dist.broadcast_object(record))  # type: ignore[call-overload]
    if record:
        state.history.append(record)
        state.best_val_loss, state.best_epoch = record["best_val_loss"], record["best_epoch"]
        state.bad_epochs = record["bad_epochs"]
    if epoch_done:
        state.epoch += 1
        state.batch = 0
    _should_stop(state, cfg)
    if dist.is_main():
        _save_last(run_dir / "checkpoints", model, ema, optimizer, scaler, state, cfg)
        _write_history(run_dir, state.history)
    dist.barrier()


def _validate(
    state: _State,
    task: Task,
    eval_model: nn.Module,
    model: nn.Module,
    ema: EMA | None,
    cfg: TrainConfig,
    run_dir: Path,
    train_loss: float,
    n_batches: int,
) -> dict[str, Any]:
    epoch_done = state.batch >= n_batches
    model.eval()
    val_loss = task.val_loss(eval_model)
    improved = val_loss < state.best_val_loss
    best_val, best_epoch = state.best_val_loss, state.best_epoch
    bad = state.bad_epochs
    if improved:
        best_val, best_epoch, bad = val_loss, state.epoch, 0
        save_checkpoint(
            run_dir / "checkpoints" / "best",
            model,
            ema.shadow if ema else None,
            meta={"epoch": state.epoch, "step": state.step, "val_loss": val_loss},
        )
    elif epoch_done:
        bad += 1
    record: dict[str, Any] = {
        "epoch": state.epoch + (1 if epoch_done else 0),
        "partial_epoch": not epoch_done,
        "epoch_progress": round(state.epoch + min(1.0, state.batch / max(n_batches, 1)), 3),
        "step": state.step,
        "train_loss": train_loss,
        "val_loss": val_loss,
        "best_val_loss": best_val,
        "best_epoch": best_epoch,
        "bad_epochs": bad,
        "lr": cfg.lr,
        "elapsed_s": round(state.elapsed, 2),
        "images_per_s": round(state.images / max(state.elapsed, 1e-9), 2),
    }
    record.update(task.on_epoch_end(eval_model, record["epoch"], run_dir))
    log.info(
        "epoch %d  step %d  train %.4f  val %.4f%s  (%.0f img/s)",
        record["epoch"],
        state.step,
        train_loss,
        val_loss,
        " *" if improved else "",
        record["images_per_s"],
    )
    return record


def _save_last(
    ckpt_dir: Path,
    model: nn.Module,
    ema: EMA | None,
    optimizer: torch.optim.Optimizer,
    scaler: torch.amp.GradScaler,
    state: _State,
    cfg: TrainConfig,
) -> None:
    if not dist.is_main():
        return
    payload = {
        "loop": state.to_dict(),
        "optimizer": optimizer.state_dict(),
        "scaler": scaler.state_dict(),
        "train_config": to_dict(cfg),
        "rng_cpu": torch.get_rng_state(),
    }
    save_checkpoint(ckpt_dir / "last", model, ema.shadow if ema else None, payload)


def _restore(
    folder: Path,
    model: nn.Module,
    ema: EMA | None,
    optimizer: torch.optim.Optimizer,
    scaler: torch.amp.GradScaler,
) -> _State:
    load_weights(folder / "model.safetensors", model)
    if ema is not None:
        ema_file = folder / "ema.safetensors"
        load_weights(ema_file if ema_file.is_file() else folder / "model.safetensors", ema.shadow)
    payload = load_state(folder)
    optimizer.load_state_dict(payload["optimizer"])
    scaler.load_state_dict(payload["scaler"])
    state = _State(**payload["loop"])
    state.stop_reason = ""  # limits may have been raised for this resume; re-check them
    return state


def _write_history(run_dir: Path, history: list[dict[str, Any]]) -> None:
    import json

    atomic_write_text(run_dir / "metrics.jsonl", "".join(json.dumps(r) + "\n" for r in history))
    from synthmix.plots import plot_loss_curves

    plot_loss_curves(history, run_dir / "loss_curve.png")


def _write_summary(run_dir: Path, state: _State, cfg: TrainConfig) -> None:
    atomic_write_json(
        run_dir / "train_summary.json",
        {
            "done": True,
            "stop_reason": state.stop_reason,
            "epochs": state.epoch,
            "steps": state.step,
            "best_val_loss": state.best_val_loss,
            "best_epoch": state.best_epoch,
            "train_seconds": round(state.elapsed, 2),
            "images_seen": state.images,
            "images_per_second": round(state.images / max(state.elapsed, 1e-9), 2),
            "world_size": dist.world_size(),
        },
    )


def _result(run_dir: Path, state: _State) -> TrainResult:
    return TrainResult(
        run_dir=run_dir,
        epochs=state.epoch,
        steps=state.step,
        best_val_loss=state.best_val_loss,
        best_epoch=state.best_epoch,
        stop_reason=state.stop_reason,
        train_seconds=state.elapsed,
        images_per_second=state.images / max(state.elapsed, 1e-9),
        history=state.history,
    )

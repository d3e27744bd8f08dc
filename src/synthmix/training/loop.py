"""One training loop for every network in synthmix (the DDPM's eps-network and the classifier).

What is trained, and how its loss and validation loss are computed, is a `Task`; the loop owns
the rest: seeded batches, the learning-rate schedule, mixed precision, gradient clipping, EMA,
early stopping on the validation loss, checkpoints that resume exactly, DDP under torchrun,
metrics (metrics.jsonl, loss_curve.png, optionally TensorBoard) and progress.

Every random number in a step is drawn from seeds derived from (seed, step), for the global
batch (`StepRandom`), and each epoch's data order from (seed, epoch), so a resumed run replays
exactly what an uninterrupted run would have done (on the CPU the final weights are
bit-identical), and N DDP processes draw what one process with the same global batch draws.
Budgets are steps and epochs; `max_minutes` is only a safety cap, and a run it stops says so.
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
from synthmix.device import AmpMode, autocast, resolve_amp
from synthmix.errors import SynthmixError
from synthmix.files import atomic_write_json, atomic_write_text
from synthmix.seeding import (
    STREAM_DROPOUT,
    STREAM_GLOBAL,
    STREAM_ORDER,
    STREAM_STEP,
    StepRandom,
    derive_seed,
    step_dropout,
)
from synthmix.training import distributed as dist
from synthmix.training.checkpoint import find_checkpoint, load_state, load_weights, save_checkpoint
from synthmix.training.ema import EMA
from synthmix.training.metrics_log import MetricsLog
from synthmix.training.precision import choose_amp, precision_name

log = logging.getLogger(__name__)

# Warm-up never takes more than this share of a run's planned steps, so a short run (a tuning
# classifier of 48 steps under `warmup_steps: 100`) still reaches its learning rate. 0.2 binds
# for no CPU preset (their longest warm-up is 200 of 1,600 steps).
WARMUP_MAX_FRACTION = 0.2
PLOT_EVERY_EPOCHS = 10  # loss_curve.png of a long run; metrics.jsonl is written every epoch

@dataclass(frozen=True)
class TrainConfig:
    """Optimisation and stopping. Defaults are the study's (SPEC §2/§4) except EMA and clipping."""

    max_epochs: int = 100
    patience: int | None = 10  # epochs without a better validation loss before stopping
    batch_size: int = 64  # global batch; each of N ranks takes batch_size / N
    lr: float = 5e-4
    lr_schedule: Literal["constant", "cosine"] = "constant"  # after warm-up
    min_lr_ratio: float = 0.0  # cosine decays to lr * min_lr_ratio at the last planned step
    optimizer: Literal["adam", "adamw"] = "adam"
    weight_decay: float = 0.0
    warmup_steps: int = 0
    grad_clip: float | None = 1.0
    ema_decay: float | None = 0.9999  # None reproduces the study (no EMA)
    amp: AmpMode = "auto"
    channels_last: bool = True
    compile: bool = False
    seed: int = 0  # initial weights, data order and every random number of the run
    max_steps: int | None = None  # the training budget of the CPU presets
    # A wall-clock safety cap, summed over resumes. A run it stops is not the config's result:
    # its summary records stop_reason "max_minutes" and reports say so.
    max_minutes: float | None = None
    steps_per_epoch: int | None = None  # None: one pass; else exactly this many steps
    checkpoint_every_steps: int | None = None  # also checkpoint inside long epochs
    # The resume checkpoint and loss plot every this many epochs, and always at the end; 0:
    # only at the end (short GPU runs, where they cost more than a restart; `best` is still
    # written whenever validation improves).
    checkpoint_every_epochs: int = 1
    log: Literal["none", "tensorboard"] = "none"  # metrics.jsonl is always written
    # loss_curve.png (and a classifier's confusion_matrix.png). A study draws them only for
    # the runs its report shows: a picture costs ~0.4 s, as much as a tiny classifier's epoch.
    pictures: bool = True


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
        self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, rng: StepRandom
    ) -> torch.Tensor: ...

    def val_loss(self, model: nn.Module) -> float: ...

    def on_epoch_end(self, model: nn.Module, epoch: int, run_dir: Path) -> dict[str, Any]: ...


@dataclass
class State:
    """Where a training run stands: counters, early-stopping record and per-epoch history."""

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


def epoch_order(
    n: int, seed: int, epoch: int, rank: int, world: int, length: int | None = None
) -> torch.Tensor:
    """This rank's sample order for `epoch`: seeded permutations, cut to equal shards.

    `length` (global positions, default one pass over the n images) longer than n chains
    further seeded permutations, so a fixed number of steps per epoch works on any data size.
    """
    length = n if length is None else length
    perms: list[torch.Tensor] = []
    k = 0
    while n * len(perms) < length:
        g = torch.Generator().manual_seed(derive_seed(seed, STREAM_ORDER, epoch, k))
        perms.append(torch.randperm(n, generator=g))
        k += 1
    order = torch.cat(perms)[:length]
    per_rank = len(order) // world
    return order[: per_rank * world][rank::world]


def make_optimizer(model: nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    opt_cls = torch.optim.AdamW if cfg.optimizer == "adamw" else torch.optim.Adam
    return opt_cls(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)


def warmup_steps(cfg: TrainConfig, total_steps: int) -> int:
    """`warmup_steps`, capped at WARMUP_MAX_FRACTION of the run's planned steps (if known)."""
    if not cfg.warmup_steps or total_steps <= 0:
        return cfg.warmup_steps
    return min(cfg.warmup_steps, max(1, math.ceil(WARMUP_MAX_FRACTION * total_steps)))


def lr_at(cfg: TrainConfig, step: int, total_steps: int) -> float:
    """Linear warm-up (`warmup_steps`, capped), then constant or cosine decay to
    lr * min_lr_ratio at `total_steps` (Loshchilov & Hutter 2017, without restarts)."""
    warmup = warmup_steps(cfg, total_steps)
    if warmup and step < warmup:
        return cfg.lr * (step + 1) / warmup
    if cfg.lr_schedule == "constant":
        return cfg.lr
    span = max(1, total_steps - warmup)
    progress = min(1.0, (step - warmup) / span)
    floor = cfg.lr * cfg.min_lr_ratio
    return floor + (cfg.lr - floor) * 0.5 * (1.0 + math.cos(math.pi * progress))


def planned_steps(cfg: TrainConfig, n_images: int, world: int = 1) -> int:
    """The most steps a run can take: max_steps, else max_epochs times the steps of an epoch."""
    per_rank_batch = max(1, cfg.batch_size // world)
    per_epoch = cfg.steps_per_epoch or math.ceil((n_images // world) / per_rank_batch)
    by_epochs = cfg.max_epochs * per_epoch
    return min(by_epochs, cfg.max_steps) if cfg.max_steps is not None else by_epochs


def train_step(
    model: nn.Module,
    task: Task,
    x: torch.Tensor,
    y: torch.Tensor,
    optimizer: torch.optim.Optimizer,
    scaler: torch.amp.GradScaler,
    cfg: TrainConfig,
    step: int,
    lr: float,
    amp_dtype: torch.dtype | None,
    comm: dist.Comm = dist.LOCAL,
) -> torch.Tensor:
    """One optimisation step; its random numbers come only from (seed, step), drawn for the
    global batch (StepRandom; StepDropout masks too), and the rank only for layers that draw
    from torch's global generator (plain nn.Dropout, e.g. the classifier's; one rank each)."""
    device = x.device
    torch.manual_seed(derive_seed(cfg.seed, STREAM_GLOBAL, step, comm.rank))
    generator = torch.Generator(device).manual_seed(derive_seed(cfg.seed, STREAM_STEP, step))
    masks = torch.Generator(device).manual_seed(derive_seed(cfg.seed, STREAM_DROPOUT, step))
    for group in optimizer.param_groups:
        group["lr"] = lr
    with autocast(device, amp_dtype), step_dropout(model, StepRandom(masks, comm.rank, comm.world)):
        loss = task.train_loss(model, x, y, StepRandom(generator, comm.rank, comm.world))
    optimizer.zero_grad(set_to_none=True)
    scaler.scale(loss).backward()
    if cfg.grad_clip is not None:
        scaler.unscale_(optimizer)
        nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
    scaler.step(optimizer)
    scaler.update()
    return loss.float()


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
    comm: dist.Comm | None = None,
) -> TrainResult:
    """Train `model` on (train_x, train_y) until max epochs/steps or early stopping (or the
    max_minutes cap). `comm`: the processes training this model together (default: every rank
    of the job, with DDP); `dist.LOCAL` trains in this process alone."""
    run = _Run(model, task, cfg, Path(run_dir), device, comm or dist.group(), progress)
    run.start(resume)
    train_x, train_y = train_x.to(device), train_y.to(device)
    if len(train_x) < run.comm.world:
        raise SynthmixError(f"{len(train_x)} training images cannot be shared by "
                            f"{run.comm.world} ranks")
    run.total_steps = planned_steps(cfg, len(train_x), run.comm.world)
    # amp auto on a bf16 CPU: by the network's FLOPs (one process)
    run.amp_dtype = choose_amp(cfg.amp, device, model, task, train_x[:2], train_y[:2],
                               run.comm.world)
    while not run.should_stop():
        run.epoch(train_x, train_y)
    run.finish()
    return run.result()


class _Run:
    """The state of one fit(): model, optimiser, EMA, counters and where they are written."""

    def __init__(self, model: nn.Module, task: Task, cfg: TrainConfig, run_dir: Path,
                 device: torch.device, comm: dist.Comm, progress: bool) -> None:
        self.model, self.task, self.cfg, self.run_dir = model, task, cfg, run_dir
        self.device, self.comm, self.progress = device, comm, progress
        model.to(device)
        if cfg.channels_last:
            model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
        self.optimizer = make_optimizer(model, cfg)
        self.amp_dtype = resolve_amp(cfg.amp, device)
        self.scaler = torch.amp.GradScaler(device.type, enabled=self.amp_dtype == torch.float16)
        self.ema = EMA(model, cfg.ema_decay) if cfg.ema_decay is not None else None
        self.eval_model = self.ema.shadow if self.ema is not None else model
        self.state = State()
        self.total_steps = cfg.max_steps or 0
        self.train_model: nn.Module = model
        self.metrics = MetricsLog.disabled()

    def start(self, resume: bool) -> None:
        last = find_checkpoint(self.run_dir / "checkpoints" / "last")
        if resume and last is not None:
            self.state = _restore(last, self.model, self.ema, self.optimizer, self.scaler)
            log.info("resuming %s at epoch %d, step %d", self.run_dir, self.state.epoch,
                     self.state.step)
        elif not resume and last is not None:
            raise_exists(self.run_dir)
        if self.comm.is_main:
            self.metrics = MetricsLog(self.run_dir, self.cfg.log, first_step=self.state.step)
        if self.comm.world > 1:
            ids = [self.device.index] if self.device.type == "cuda" else None
            self.train_model = nn.parallel.DistributedDataParallel(self.model, device_ids=ids)
        if self.cfg.compile:
            self.train_model = torch.compile(self.train_model)  # type: ignore[assignment]

    def should_stop(self, in_epoch: bool = False) -> bool:
        state, cfg = self.state, self.cfg
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
        # A time cap is read on rank 0's clock so every rank stops at the same step.
        if in_epoch and cfg.max_minutes is not None and self.comm.world > 1:
            reason = str(self.comm.broadcast_object(reason))
        if reason and not in_epoch:
            state.stop_reason = reason
        return bool(reason)

    def epoch(self, train_x: torch.Tensor, train_y: torch.Tensor) -> None:
        """Train the rest of the current epoch (all of it unless resumed mid-epoch), then
        validate, checkpoint and log."""
        state, cfg, comm = self.state, self.cfg, self.comm
        per_rank_batch = max(1, cfg.batch_size // comm.world)
        length = cfg.steps_per_epoch * per_rank_batch * comm.world if cfg.steps_per_epoch else None
        order = epoch_order(len(train_x), cfg.seed, state.epoch, comm.rank, comm.world, length)
        order = order.to(self.device)
        n_batches = math.ceil(len(order) / per_rank_batch)
        if n_batches > 1 and len(order) % per_rank_batch == 1:
            n_batches -= 1  # a last batch of one image: BatchNorm cannot train on it; dropped
        bar = tqdm(total=n_batches, initial=state.batch, desc=f"epoch {state.epoch + 1}",
                   disable=not (self.progress and comm.is_main), leave=False, dynamic_ncols=True)
        self.model.train()
        loss_sum = torch.zeros((), device=self.device)
        n_steps, t0 = 0, time.perf_counter()
        while state.batch < n_batches and not self.should_stop(in_epoch=True):
            idx = order[state.batch * per_rank_batch : (state.batch + 1) * per_rank_batch]
            x, y = train_x[idx], train_y[idx]
            if cfg.channels_last and x.dim() == 4:
                x = x.contiguous(memory_format=torch.channels_last)
            lr = lr_at(cfg, state.step, self.total_steps)
            loss = train_step(self.train_model, self.task, x, y, self.optimizer, self.scaler,
                              cfg, state.step, lr, self.amp_dtype, comm)
            if self.ema is not None:
                self.ema.update(self.model, state.step)
            loss_sum += loss.detach()
            n_steps += 1
            state.step, state.batch = state.step + 1, state.batch + 1
            state.images += len(idx) * comm.world
            now = time.perf_counter()
            state.elapsed, t0 = state.elapsed + now - t0, now
            bar.update(1)
            if not bar.disable and (n_steps % 10 == 0 or state.batch == n_batches):
                bar.set_postfix(loss=f"{loss_sum.item() / n_steps:.4f}",
                                img_s=f"{state.images / max(state.elapsed, 1e-9):.0f}")
            if cfg.checkpoint_every_steps and state.step % cfg.checkpoint_every_steps == 0:
                self.save_last()
        bar.close()
        self.end_epoch(loss_sum, n_steps, n_batches)

    def end_epoch(self, loss_sum: torch.Tensor, n_steps: int, n_batches: int) -> None:
        """Validate, update early stopping, checkpoint and log; on rank 0, then shared."""
        state, comm = self.state, self.comm
        epoch_done = state.batch >= n_batches
        if not epoch_done and not self.should_stop(in_epoch=True):
            return
        train_loss = comm.all_reduce_sum(loss_sum.detach().float().reshape(1)).item()
        train_loss /= max(1, n_steps * comm.world)
        record: dict[str, Any] = {}
        if comm.is_main:
            record = self.validate(train_loss, epoch_done, n_batches)
        record = dict(comm.broadcast_object(record))  # type: ignore[call-overload]
        if record:
            state.history.append(record)
            state.best_val_loss, state.best_epoch = record["best_val_loss"], record["best_epoch"]
            state.bad_epochs = record["bad_epochs"]
        if epoch_done:
            state.epoch, state.batch = state.epoch + 1, 0
        self.should_stop()
        if comm.is_main:
            every = self.cfg.checkpoint_every_epochs
            due = bool(state.stop_reason) or (every > 0 and state.epoch % every == 0)
            if due:
                self.save_last()
            write_history(self.run_dir, state.history, plot=loss_plot_due(self.cfg, state, due))
            self.metrics.epoch(record, self.run_dir)
        comm.barrier()

    def validate(self, train_loss: float, epoch_done: bool, n_batches: int) -> dict[str, Any]:
        state = self.state
        self.model.eval()
        val_loss = self.task.val_loss(self.eval_model)
        improved = val_loss < state.best_val_loss
        best_val, best_epoch, bad = state.best_val_loss, state.best_epoch, state.bad_epochs
        if improved:
            best_val, best_epoch, bad = val_loss, state.epoch, 0
            save_checkpoint(self.run_dir / "checkpoints" / "best", self.model,
                            self.ema.shadow if self.ema else None,
                            meta={"epoch": state.epoch, "step": state.step, "val_loss": val_loss})
        elif epoch_done:
            bad += 1
        record: dict[str, Any] = {
            "epoch": state.epoch + (1 if epoch_done else 0),
            "partial_epoch": not epoch_done,
            "epoch_progress": round(state.epoch + min(1.0, state.batch / max(n_batches, 1)), 3),
            "step": state.step, "train_loss": train_loss, "val_loss": val_loss,
            "best_val_loss": best_val, "best_epoch": best_epoch, "bad_epochs": bad,
            "lr": lr_at(self.cfg, max(state.step - 1, 0), self.total_steps),
            "elapsed_s": round(state.elapsed, 2),
            "images_per_s": round(state.images / max(state.elapsed, 1e-9), 2),
        }  # fmt: skip
        record.update(self.task.on_epoch_end(self.eval_model, record["epoch"], self.run_dir))
        log.info("epoch %d  step %d  loss: train %.4f  val %.4f%s  (%.0f img/s)", record["epoch"],
                 state.step, train_loss, val_loss, " *" if improved else "",
                 record["images_per_s"])
        return record

    def save_last(self) -> None:
        if not self.comm.is_main:
            return
        payload = {
            "loop": self.state.to_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scaler": self.scaler.state_dict(),
            "train_config": to_dict(self.cfg),
            "rng_cpu": torch.get_rng_state(),
        }
        save_checkpoint(self.run_dir / "checkpoints" / "last", self.model,
                        self.ema.shadow if self.ema else None, payload)

    def finish(self) -> None:
        if self.comm.is_main:
            write_summary(self.run_dir, self.state, self.cfg, self.comm.world,
                           precision_name(self.amp_dtype))
        self.metrics.close()
        self.comm.barrier()

    def result(self) -> TrainResult:
        s = self.state
        return TrainResult(self.run_dir, s.epoch, s.step, s.best_val_loss, s.best_epoch,
                           s.stop_reason, s.elapsed, s.images / max(s.elapsed, 1e-9), s.history)


def raise_exists(run_dir: Path) -> None:
    raise SynthmixError(
        "run directory already holds a checkpoint",
        path=run_dir,
        hint="pass --resume to continue it, or choose another run directory",
    )


def _restore(
    folder: Path,
    model: nn.Module,
    ema: EMA | None,
    optimizer: torch.optim.Optimizer,
    scaler: torch.amp.GradScaler,
) -> State:
    load_weights(folder / "model.safetensors", model)
    if ema is not None:
        ema_file = folder / "ema.safetensors"
        load_weights(ema_file if ema_file.is_file() else folder / "model.safetensors", ema.shadow)
    payload = load_state(folder)
    optimizer.load_state_dict(payload["optimizer"])
    scaler.load_state_dict(payload["scaler"])
    state = State(**payload["loop"])
    state.stop_reason = ""  # limits may have been raised for this resume; re-check them
    return state


def loss_plot_due(cfg: TrainConfig, state: State, checkpointed: bool) -> bool:
    """A loss plot costs ~0.3 s, a tenth of a small classifier's epoch: with `pictures` on,
    draw it at the end and every PLOT_EVERY_EPOCHS checkpointed epochs of a long run."""
    if not cfg.pictures:
        return False
    return bool(state.stop_reason) or (checkpointed and state.epoch % PLOT_EVERY_EPOCHS == 0)


def write_history(run_dir: Path, history: list[dict[str, Any]], plot: bool = True) -> None:
    """metrics.jsonl (one line per epoch) and, with `plot`, loss_curve.png."""
    import json

    from synthmix.plots import plot_loss_curves

    atomic_write_text(run_dir / "metrics.jsonl", "".join(json.dumps(r) + "\n" for r in history))
    if plot:
        plot_loss_curves(history, run_dir / "loss_curve.png")


def write_summary(run_dir: Path, state: State, cfg: TrainConfig, world: int,
                  precision: str = "fp32") -> None:
    """train_summary.json: why and when training stopped, its budget, best epoch and speed."""
    capped = state.stop_reason == "max_minutes"
    atomic_write_json(
        run_dir / "train_summary.json",
        {
            "done": True,
            "stop_reason": state.stop_reason,
            # True when the wall-clock cap, not the config's step/epoch budget, ended training.
            "time_capped": capped,
            "budget": {"max_steps": cfg.max_steps, "max_epochs": cfg.max_epochs,
                       "max_minutes": cfg.max_minutes},
            "epochs": state.epoch,
            "steps": state.step,
            "best_val_loss": state.best_val_loss,
            "best_epoch": state.best_epoch,
            "train_seconds": round(state.elapsed, 2),
            "images_seen": state.images,
            "images_per_second": round(state.images / max(state.elapsed, 1e-9), 2),
            "world_size": world,
            "precision": precision,
        },
    )

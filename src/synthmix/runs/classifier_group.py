"""Several classifiers of one recipe trained at once (issue 19): the members' parameters are
stacked (`torch.func.stack_module_state`) and one vmapped step trains them all.

Each member keeps what it would have alone: initial weights from its own seed, its own data
order and augmentation draws from (its seed, step), its validation set, early stopping, `best`
checkpoint and result, equal to `fit` alone within float tolerance (tests/test_classifier_group).
Members step in lockstep, so the recipe must fix `steps_per_epoch` (every batch full, every
epoch the same length); a member that stops leaves the stack at once and is scored and
written then. Every epoch end writes each member's `last` checkpoint in the loop's own format,
so a killed group resumes its unfinished members (together where they stopped at the same
step, else in smaller stacks), and `fit(resume=True)` could continue any of them alone.
A member's `train_seconds` is its share of the group's time (each step's time split between
the members it trained), so the stage's sums and images/s stay comparable with one at a time.
"""

from __future__ import annotations

import copy
import logging
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, stack_module_state, vmap

from synthmix.config import to_dict
from synthmix.device import resolve_amp, select_device, set_threads
from synthmix.runs.classifier import ClassifierRunConfig, ClassifierTask, augment
from synthmix.seeding import STREAM_STEP, StepRandom, derive_seed
from synthmix.training import TrainConfig, TrainResult
from synthmix.training.checkpoint import find_checkpoint, load_state, load_weights, save_checkpoint
from synthmix.training.loop import (
    State,
    epoch_order,
    loss_plot_due,
    lr_at,
    make_optimizer,
    planned_steps,
    write_history,
    write_summary,
)

log = logging.getLogger(__name__)

Tensors = tuple[torch.Tensor, torch.Tensor]


def why_not_stacked(cfg: ClassifierRunConfig, model: nn.Module) -> str | None:
    """Why the recipe cannot be trained stacked (None: it can)."""
    t = cfg.train
    reasons = {
        "train.steps_per_epoch is not set": t.steps_per_epoch is None,
        "EMA is on": t.ema_decay is not None,
        "gradient clipping is on": t.grad_clip is not None,
        "train.compile is on": t.compile,
        "TensorBoard logging is on": t.log != "none",
        "a step or time cap can stop a member mid-epoch": t.max_steps is not None
        or t.max_minutes is not None,
        "autocast is on": resolve_amp(t.amp, select_device(cfg.device)) is not None,
        "dropout draws differ from a member alone": any(
            isinstance(m, nn.Dropout) and m.p > 0 for m in model.modules()),
    }  # fmt: skip
    return next((why for why, yes in reasons.items() if yes), None)


@dataclass
class Member:
    """One classifier of a group: its model, task, data, config (its own seed) and run dir."""

    model: nn.Module
    task: ClassifierTask
    train: Tensors
    cfg: TrainConfig
    run_dir: Path
    state: State

    @property
    def active(self) -> bool:
        return not self.state.stop_reason


def start_member(model: nn.Module, task: ClassifierTask, train: Tensors, cfg: TrainConfig,
                 run_dir: Path) -> Member:
    """A member, resumed from its `last` checkpoint where one exists."""
    state, last = State(), find_checkpoint(run_dir / "checkpoints" / "last")
    if last is not None:
        load_weights(last / "model.safetensors", model)
        state = State(**load_state(last)["loop"])
        state.stop_reason = ""
    return Member(model, task, train, cfg, run_dir, state)


class _Stack:
    """The stacked parameters, buffers and optimiser of the active members."""

    def __init__(self, members: list[Member], opt_states: list[dict[str, Any]] | None) -> None:
        self.members = members
        self.cfg = members[0].cfg
        params, self.buffers = stack_module_state([m.model for m in members])
        self.holder = nn.Module()  # make_optimizer takes a module
        self.names = list(params)
        for i, name in enumerate(self.names):
            self.holder.register_parameter(f"p{i}", nn.Parameter(params[name].detach()))
        self.optimizer = make_optimizer(self.holder, self.cfg)
        if opt_states:
            self._load_optimizer(opt_states)
        self.base = copy.deepcopy(members[0].model).to("meta")
        self.base.train()
        smoothing = members[0].task.cfg.label_smoothing

        def member_loss(p: dict[str, torch.Tensor], b: dict[str, torch.Tensor],
                        x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
            logits = functional_call(self.base, (p, b), (x,))
            return F.cross_entropy(logits, y, label_smoothing=smoothing)

        self.losses = vmap(member_loss, randomness="same")

    @property
    def params(self) -> dict[str, torch.Tensor]:
        return dict(zip(self.names, self.holder.parameters(), strict=True))

    def step(self, x: torch.Tensor, y: torch.Tensor, lr: float) -> torch.Tensor:
        """One optimisation step of every member: x (K, B, C, H, W), y (K, B); returns (K,)."""
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        with warnings.catch_warnings():  # CPU flash attention: vmap loops over members
            warnings.filterwarnings("ignore", message=".*batching rule.*")
            losses = self.losses(self.params, self.buffers, x, y)  # (K,)
        self.optimizer.zero_grad(set_to_none=True)
        losses.sum().backward()  # member k's loss reaches member k's slice alone
        self.optimizer.step()
        return losses.detach()

    @torch.no_grad()
    def sync(self, k: int) -> None:
        """Copy member k's slice into its own module (for validation and checkpoints)."""
        model = self.members[k].model
        tensors = {**self.params, **self.buffers}
        for name, t in (*model.named_parameters(), *model.named_buffers()):
            t.copy_(tensors[name][k])

    def optimizer_state(self, k: int) -> dict[str, Any]:
        """Member k's optimiser state as a lone member's optimiser would save it."""
        sd = self.optimizer.state_dict()
        state = {i: {key: v[k].clone() if v.dim() else v.clone() for key, v in s.items()}
                 for i, s in sd["state"].items()}
        return {"state": state, "param_groups": sd["param_groups"]}

    def _load_optimizer(self, opt_states: list[dict[str, Any]]) -> None:
        first = opt_states[0]
        state = {i: {key: torch.stack([o["state"][i][key] for o in opt_states]) if v.dim()
                     else v.clone() for key, v in s.items()}
                 for i, s in first["state"].items()}
        self.optimizer.load_state_dict({"state": state, "param_groups": first["param_groups"]})

    def without_stopped(self) -> _Stack | None:
        """The stack of the members still training (None when none is)."""
        keep = [k for k, m in enumerate(self.members) if m.active]
        if len(keep) == len(self.members):
            return self
        if not keep:
            return None
        for k in keep:
            self.sync(k)
        return _Stack([self.members[k] for k in keep], [self.optimizer_state(k) for k in keep])


def fit_group(members: list[Member], device: torch.device, progress: bool,
              on_done: Callable[[Member, TrainResult], None]) -> None:
    """Train the members (all at the same step) until each stops; `on_done` gets each member
    as soon as it has stopped, its summary written."""
    total_steps = planned_steps(members[0].cfg, 0)
    for m in members:
        m.model.to(device)
        m.train = (m.train[0].to(device), m.train[1].to(device))
        m.state.stop_reason = _stop_reason(m.state, m.cfg)  # killed after its last epoch
    _finish(members, on_done)
    members = [m for m in members if m.active]
    saved = [_saved_optimizer(m) for m in members]
    opt_states = [o for o in saved if o is not None]
    stack = _Stack(members, opt_states if len(opt_states) == len(members) else None) \
        if members else None
    while stack is not None:
        _epoch(stack, device, total_steps, progress)
        _finish(stack.members, on_done)
        stack = stack.without_stopped()


def _finish(members: list[Member], on_done: Callable[[Member, TrainResult], None]) -> None:
    for m in members:
        if not m.active:
            write_summary(m.run_dir, m.state, m.cfg, 1)
            on_done(m, _result(m))


def _stop_reason(state: State, cfg: TrainConfig) -> str:
    """The loop's epoch-end stopping rules (a stacked recipe has no step or time cap)."""
    if state.epoch >= cfg.max_epochs:
        return "max_epochs"
    if cfg.patience is not None and state.bad_epochs >= cfg.patience:
        return "early_stopping"
    return ""


def _saved_optimizer(m: Member) -> dict[str, Any] | None:
    last = find_checkpoint(m.run_dir / "checkpoints" / "last")
    return None if last is None or m.state.step == 0 else load_state(last)["optimizer"]


def _epoch(stack: _Stack, device: torch.device, total_steps: int, progress: bool) -> None:
    """Every member's next epoch (the rest of it where resumed mid-epoch), then its end."""
    members, cfg = stack.members, stack.cfg
    first = members[0].state
    bs, n_batches = cfg.batch_size, cfg.steps_per_epoch or 0
    orders = [epoch_order(len(m.train[1]), m.cfg.seed, m.state.epoch, 0, 1, n_batches * bs)
              .to(device) for m in members]
    loss_sum = torch.zeros(len(members), device=device)
    t0, n_steps = time.perf_counter(), 0
    for m in members:
        m.model.train()
    for batch in range(first.batch, n_batches):
        step = first.step
        xs, ys = [], []
        for m, order in zip(members, orders, strict=True):
            idx = order[batch * bs : (batch + 1) * bs]
            g = torch.Generator(device).manual_seed(derive_seed(m.cfg.seed, STREAM_STEP, step))
            xs.append(augment(m.train[0][idx], m.task.cfg.augment, StepRandom(g)))
            ys.append(m.train[1][idx])
        loss_sum += stack.step(torch.stack(xs), torch.stack(ys), lr_at(cfg, step, total_steps))
        n_steps += 1
        now = time.perf_counter()
        for m in members:  # each member is charged its share of the group's time
            m.state.step, m.state.batch = step + 1, batch + 1
            m.state.images += bs
            m.state.elapsed += (now - t0) / len(members)
        t0 = now
    for k, m in enumerate(members):
        stack.sync(k)
        _end_epoch(m, float(loss_sum[k]) / max(1, n_steps), stack.optimizer_state(k),
                   total_steps)
    if progress:
        log.info("group of %d: epoch %d done, %d still training", len(members),
                 first.epoch, sum(m.active for m in members))


def _end_epoch(m: Member, train_loss: float, optimizer_state: dict[str, Any],
               total_steps: int) -> None:
    """What the loop does at an epoch end: validate, best checkpoint, early stopping, `last`."""
    state, cfg = m.state, m.cfg
    m.model.eval()
    val_loss = m.task.val_loss(m.model)
    improved = val_loss < state.best_val_loss
    if improved:
        state.best_val_loss, state.best_epoch, state.bad_epochs = val_loss, state.epoch, 0
        save_checkpoint(m.run_dir / "checkpoints" / "best", m.model, None,
                        meta={"epoch": state.epoch, "step": state.step, "val_loss": val_loss})
    else:
        state.bad_epochs += 1
    state.epoch, state.batch = state.epoch + 1, 0
    state.history.append({
        "epoch": state.epoch, "partial_epoch": False, "epoch_progress": float(state.epoch),
        "step": state.step, "train_loss": train_loss, "val_loss": val_loss,
        "best_val_loss": state.best_val_loss, "best_epoch": state.best_epoch,
        "bad_epochs": state.bad_epochs, "lr": lr_at(cfg, max(state.step - 1, 0), total_steps),
        "elapsed_s": round(state.elapsed, 2),
        "images_per_s": round(state.images / max(state.elapsed, 1e-9), 2),
    })  # fmt: skip
    state.stop_reason = _stop_reason(state, cfg)
    payload = {"loop": state.to_dict(), "optimizer": optimizer_state,
               "scaler": torch.amp.GradScaler("cpu", enabled=False).state_dict(),
               "train_config": to_dict(cfg), "rng_cpu": torch.get_rng_state()}
    save_checkpoint(m.run_dir / "checkpoints" / "last", m.model, None, payload)
    write_history(m.run_dir, state.history, plot=loss_plot_due(cfg, state, checkpointed=True))


def _result(m: Member) -> TrainResult:
    s = m.state
    return TrainResult(m.run_dir, s.epoch, s.step, s.best_val_loss, s.best_epoch, s.stop_reason,
                       s.elapsed, s.images / max(s.elapsed, 1e-9), s.history)


def train_classifier_group(cfgs: list[ClassifierRunConfig], data: list[tuple[Tensors, Tensors]],
                           test: Tensors, class_names: tuple[str, ...], run_dirs: list[Path],
                           progress: bool = True) -> list[dict[str, Any]]:
    """`train_classifier` for several runs of one recipe (configs that differ only in
    train.seed; `data`: each run's train and validation sets), trained stacked where the recipe
    allows, else one after another; each run's test metrics are written when it stops."""
    from synthmix.runs.classifier import build_classifier, score_run, train_classifier

    set_threads(cfgs[0].num_threads)
    device = select_device(cfgs[0].device)
    results: dict[Path, dict[str, Any]] = {}
    channels = data[0][0][0].shape[1]
    probe = build_classifier(cfgs[0].model, channels, len(class_names), 0)
    same = all(replace(c, train=replace(c.train, seed=0))
               == replace(cfgs[0], train=replace(cfgs[0].train, seed=0)) for c in cfgs)
    reason = why_not_stacked(cfgs[0], probe) if same else "the runs' recipes differ"
    if reason is not None or len(cfgs) == 1:
        if len(cfgs) > 1:
            log.info("training %d classifiers one at a time: %s", len(cfgs), reason)
        return [train_classifier(c, train, val, test, class_names, d,
                                 resume=(d / "checkpoints").is_dir(), progress=progress)
                for c, (train, val), d in zip(cfgs, data, run_dirs, strict=True)]
    members = []
    for c, (train, val), d in zip(cfgs, data, run_dirs, strict=True):
        model = build_classifier(c.model, channels, len(class_names), c.train.seed)
        members.append(start_member(model, ClassifierTask(c, val, device), train, c.train, d))

    def done(m: Member, result: TrainResult) -> None:
        sizes = (len(m.train[1]), len(m.task.val_y))
        results[m.run_dir] = score_run(m.task.cfg, m.model, result, sizes, test, class_names,
                                       m.run_dir)

    steps = sorted({m.state.step for m in members})  # resumed members stack by their step
    for part in [[m for m in members if m.state.step == s] for s in steps]:
        fit_group(part, device, progress, done)
    return [results[d] for d in run_dirs]

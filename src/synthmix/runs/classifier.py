"""A classifier training run (SPEC §4): ResNet with attention, cross-entropy on logits,
early stopping on validation loss, best weights restored, metrics on the real test set."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from synthmix.classifier.resnet import ClassifierConfig, ResNetClassifier, classifier_config
from synthmix.config import ConfigError, from_dict, to_dict
from synthmix.device import select_device, set_threads
from synthmix.files import atomic_write_json
from synthmix.seeding import StepRandom, seeded_init
from synthmix.training import TrainConfig, TrainResult, fit
from synthmix.training import distributed as dist
from synthmix.training.checkpoint import find_checkpoint, load_weights

Tensors = tuple[torch.Tensor, torch.Tensor]


@dataclass(frozen=True)
class AugmentConfig:
    """Standard augmentation; off by default to match the study."""

    # Random translation by up to this many pixels: pad with black, crop back at random.
    random_crop_padding: int = 0
    horizontal_flip: bool = False  # only where flips keep the label (CIFAR-10, not digits)
    # Cutout (DeVries & Taylor 2017): a square of this side set to black (-1) at a random
    # centre in each image, clipped where it crosses the border (as in the paper); 0: off.
    cutout: int = 0

    def __post_init__(self) -> None:
        if self.random_crop_padding < 0 or self.cutout < 0:
            raise ConfigError(
                f"augment: random_crop_padding and cutout must be >= 0, got "
                f"{self.random_crop_padding} and {self.cutout}"
            )


@dataclass(frozen=True)
class ClassifierRunConfig:
    model: dict[str, Any] = field(default_factory=lambda: {"preset": "small"})
    # The study: Adam 5e-4, batch 64, <= 100 epochs, patience 10, no EMA, no clipping.
    train: TrainConfig = field(default_factory=lambda: TrainConfig(ema_decay=None, grad_clip=None))
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    label_smoothing: float = 0.0  # cross-entropy against (1 - e) one-hot + e uniform
    # Test-time flip: every prediction of the trained classifier (the test or validation
    # metrics the run writes, `synthetic filter`) is from the mean of the logits of each image
    # and of its mirror image. The validation loss that early stopping and the best checkpoint
    # follow stays on the plain logits. Only where flips keep the label (CIFAR-10, not
    # digits); nothing checks that for you.
    test_time_flip: bool = False
    eval_batch_size: int = 512
    # Cells of this recipe trained at once, stacked (runs/classifier_group.py); 1: one at a
    # time. 1 by measurement: on a 2-core AVX2 host at 1 thread, K = 1..8 stacked trained at
    # 0.59-0.68x the images/s of one alone (benchmarks/stacked_classifiers.py, README).
    group_size: int = 1
    device: str = "auto"
    num_threads: int | None = None


def build_classifier(
    spec: dict[str, Any], in_channels: int, num_classes: int, seed: int = 0
) -> ResNetClassifier:
    """The classifier of a `model:` config section, its initial weights drawn from `seed`."""
    spec = dict(spec)
    preset = spec.pop("preset", None)
    fixed = {"in_channels": in_channels, "num_classes": num_classes}
    try:
        base = classifier_config(preset or None, **fixed)
    except (KeyError, ValueError) as e:
        raise ConfigError(f"classifier model preset: {e}") from None
    with seeded_init(seed):
        return ResNetClassifier(from_dict(ClassifierConfig, {**to_dict(base), **spec}, "model"))


def augment(x: torch.Tensor, cfg: AugmentConfig, rng: StepRandom) -> torch.Tensor:
    """Horizontal flips, random crop after padding with black (-1), then cutout, from `rng`
    (each draws only when on, so turning one on leaves the others' draws as they were)."""
    b, _, h, w = x.shape
    if cfg.horizontal_flip:
        flip = rng.rand(b).to(x.device) < 0.5
        x = torch.where(flip[:, None, None, None], x.flip(-1), x)
    p = cfg.random_crop_padding
    if p:
        padded = F.pad(x, (p, p, p, p), value=-1.0)
        dy = rng.randint(2 * p + 1, b).to(x.device)
        dx = rng.randint(2 * p + 1, b).to(x.device)
        rows = (dy[:, None] + torch.arange(h, device=x.device))[:, None, :, None]  # (B,1,H,1)
        cols = (dx[:, None] + torch.arange(w, device=x.device))[:, None, None, :]  # (B,1,1,W)
        bidx = torch.arange(b, device=x.device)[:, None, None, None]
        x = padded.permute(0, 2, 3, 1)[bidx, rows, cols].squeeze(1).permute(0, 3, 1, 2)
    if cfg.cutout:
        x = x.masked_fill(cutout_mask(cfg.cutout, h, w, rng.randint(h, b), rng.randint(w, b))
                          .to(x.device), -1.0)
    return x


def cutout_mask(side: int, h: int, w: int, cy: torch.Tensor, cx: torch.Tensor) -> torch.Tensor:
    """(B, 1, H, W) True inside each image's square of `side` centred at (cy, cx): rows
    cy - side // 2 .. cy - side // 2 + side - 1, clipped to the image (likewise columns)."""
    y0, x0 = (cy - side // 2)[:, None], (cx - side // 2)[:, None]  # (B, 1)
    rows, cols = torch.arange(h, device=cy.device), torch.arange(w, device=cx.device)
    in_rows = (rows >= y0) & (rows < y0 + side)  # (B, H)
    in_cols = (cols >= x0) & (cols < x0 + side)  # (B, W)
    return (in_rows[:, :, None] & in_cols[:, None, :])[:, None]


class ClassifierTask:
    """Cross-entropy on logits; validation loss on the held-out real images."""

    def __init__(self, cfg: ClassifierRunConfig, val: Tensors, device: torch.device):
        self.cfg = cfg
        self.val_x, self.val_y = (v.to(device) for v in val)

    def train_loss(
        self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, rng: StepRandom
    ) -> torch.Tensor:
        x = augment(x, self.cfg.augment, rng)
        return F.cross_entropy(model(x), y, label_smoothing=self.cfg.label_smoothing)

    @torch.no_grad()
    def val_loss(self, model: nn.Module) -> float:
        logits = predict_logits(model, self.val_x, self.cfg.eval_batch_size)
        return F.cross_entropy(logits, self.val_y.to(logits.device)).item()

    def on_epoch_end(self, model: nn.Module, epoch: int, run_dir: Path) -> dict[str, Any]:
        return {}


@torch.no_grad()
def predict_logits(model: nn.Module, x: torch.Tensor, batch_size: int = 512,
                   test_time_flip: bool = False) -> torch.Tensor:
    """(N, K) logits of x in eval mode; with `test_time_flip`, the mean of the logits of x
    and of x mirrored left-right."""
    model.eval()
    out = []
    for i in range(0, len(x), batch_size):
        xb = x[i : i + batch_size]
        logits = model(xb.contiguous(memory_format=torch.channels_last)).float()
        if test_time_flip:
            flipped = model(xb.flip(-1).contiguous(memory_format=torch.channels_last)).float()
            logits = (logits + flipped) / 2
        out.append(logits)
    return torch.cat(out)  # (N, K)


def train_classifier(
    cfg: ClassifierRunConfig,
    train: Tensors,
    val: Tensors,
    test: Tensors,
    class_names: tuple[str, ...],
    run_dir: Path,
    resume: bool = False,
    progress: bool = True,
    split: str = "test",
) -> dict[str, Any]:
    """Train on `train`, early-stop on `val`, restore the best weights, score once on `test`.

    Written as RUN_DIR/<split>_metrics.json: `split` names what `test` is ("test" for the real
    test set; "validation" where a choice is made from the score, which the test set never
    steers). The run trains in this process alone, also under torchrun."""
    set_threads(cfg.num_threads)
    device = select_device(cfg.device)
    run_dir = Path(run_dir)
    result_path = run_dir / f"{split}_metrics.json"
    if resume and result_path.is_file():
        return dict(json.loads(result_path.read_text()))
    model = build_classifier(cfg.model, train[0].shape[1], len(class_names), cfg.train.seed)
    task = ClassifierTask(cfg, val, device)
    result = fit(model, task, *train, cfg.train, run_dir, device, resume=resume, progress=progress,
                 comm=dist.LOCAL)
    return score_run(cfg, model, result, (len(train[1]), len(val[1])), test, class_names,
                     run_dir, split)


def _summary(run_dir: Path) -> dict[str, Any]:
    path = run_dir / "train_summary.json"
    return dict(json.loads(path.read_text())) if path.is_file() else {}


def score_run(cfg: ClassifierRunConfig, model: nn.Module, result: TrainResult,
              sizes: tuple[int, int], test: Tensors, class_names: tuple[str, ...],
              run_dir: Path, split: str = "test") -> dict[str, Any]:
    """Restore a finished run's best weights, score them once on `test` and write
    RUN_DIR/<split>_metrics.json with the training record (`sizes`: n_train, n_val)."""
    from synthmix.metrics.classification import classification_metrics
    from synthmix.plots import plot_confusion_matrix

    device = select_device(cfg.device)
    best = find_checkpoint(run_dir / "checkpoints" / "best")
    if best is not None:  # the study restores the best weights for testing
        load_weights(best / "model.safetensors", model)
    model.to(device)
    logits = predict_logits(model, test[0].to(device), cfg.eval_batch_size, cfg.test_time_flip)
    y_pred = logits.argmax(1).cpu().numpy()
    metrics = classification_metrics(test[1].numpy(), y_pred, class_names)
    metrics.update(
        {
            "epochs": result.epochs,
            "steps": result.steps,
            "best_epoch": result.best_epoch,
            "best_val_loss": result.best_val_loss,
            "stop_reason": result.stop_reason,
            "train_seconds": round(result.train_seconds, 2),
            "images_per_second": round(result.images_per_second, 1),
            "parameters": sum(p.numel() for p in model.parameters()),
            "split": split,
            "test_time_flip": cfg.test_time_flip,
            "n_train": sizes[0],
            "n_val": sizes[1],
            "precision": _summary(run_dir).get("precision", "fp32"),
        }
    )
    if cfg.train.pictures:
        plot_confusion_matrix(np.asarray(metrics["confusion_matrix"]), class_names,
                              run_dir / "confusion_matrix.png")
    atomic_write_json(run_dir / f"{split}_metrics.json", metrics)
    return metrics

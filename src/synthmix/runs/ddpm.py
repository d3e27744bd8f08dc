"""A DDPM training run (SPEC §2): config, data, the eps-network's task, and loading it back."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from synthmix.config import ConfigError, from_dict, to_dict
from synthmix.device import select_device, set_threads
from synthmix.diffusion.loss import LossWeighting, ddpm_loss
from synthmix.diffusion.noise import make_noise
from synthmix.diffusion.samplers import sample
from synthmix.diffusion.schedule import NoiseSchedule, ScheduleConfig
from synthmix.diffusion.settings import SamplerSettings
from synthmix.diffusion.unet import UNet, UNetConfig, unet_config
from synthmix.errors import SynthmixError
from synthmix.runs.common import DataConfig, prepare_data, write_run_info
from synthmix.seeding import StepRandom, derive_seed, seeded_init
from synthmix.training import TrainConfig, fit
from synthmix.training import distributed as dist
from synthmix.training.checkpoint import find_checkpoint, load_weights, save_checkpoint

log = logging.getLogger(__name__)

STREAM_VAL = 101  # derive_seed stream of the DDPM's fixed validation noise


@dataclass(frozen=True)
class SampleConfig(SamplerSettings):
    """How samples are drawn: for the grids during training and as `synthmix sample` defaults
    (sampler settings as in `SamplerSettings`, plus batch and grid sizes)."""

    batch_size: int = 256
    grid_every_epochs: int = 10  # 0: only after training
    grid_per_class: int = 8
    seed: int = 0


@dataclass(frozen=True)
class DDPMConfig:
    """Everything a DDPM run needs; YAML files in configs/ddpm/ fill it in."""

    data: DataConfig = field(default_factory=DataConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    # `preset` plus any UNetConfig field; channels, size and classes come from the data.
    unet: dict[str, Any] = field(default_factory=lambda: {"preset": "cpu"})
    p_uncond: float = 0.1  # label dropped per sample for classifier-free guidance
    loss_weighting: LossWeighting = "uniform"  # or "min_snr" (Hang et al. 2023)
    min_snr_gamma: float = 5.0
    train: TrainConfig = field(default_factory=TrainConfig)
    sample: SampleConfig = field(default_factory=SampleConfig)
    # The weights sampled from (EMA when on) also kept at the end of these epochs, as
    # checkpoints/epoch-NNNN/: quality against training time from one run
    # (benchmarks/ddpm_time_to_quality.py; `load_ddpm(run, which="epoch-0012")`).
    snapshot_epochs: list[int] = field(default_factory=list)
    device: str = "auto"
    num_threads: int | None = None


def build_unet(
    spec: dict[str, Any], in_channels: int, image_size: int, num_classes: int, seed: int = 0
) -> UNet:
    """The U-Net for a `unet:` config section and the data's shape, its initial weights drawn
    from `seed` (the run's train.seed)."""
    spec = dict(spec)
    preset = spec.pop("preset", None)
    fixed = {"in_channels": in_channels, "image_size": image_size, "num_classes": num_classes}
    try:
        base = unet_config(preset or None, **fixed)
    except (KeyError, ValueError) as e:
        raise ConfigError(f"unet.preset: {e}") from None
    merged = {**to_dict(base), **spec}
    with seeded_init(seed):
        return UNet(from_dict(UNetConfig, merged, "unet"))


class DDPMTask:
    """eps-MSE with per-sample label dropout; validation is the plain conditional eps-MSE on
    the held-out split with a fixed seed, so it is comparable across epochs."""

    def __init__(
        self,
        cfg: DDPMConfig,
        schedule: NoiseSchedule,
        val: tuple[torch.Tensor, ...],
        class_names: tuple[str, ...],
        device: torch.device,
    ):
        self.cfg, self.schedule, self.device = cfg, schedule, device
        self.val_x, self.val_y = (v.to(device) for v in val)
        self.class_names = class_names
        self.null_label = len(class_names)  # the U-Net's extra "no label" index

    def train_loss(
        self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, rng: StepRandom
    ) -> torch.Tensor:
        return ddpm_loss(
            model, self.schedule, x, y, p_uncond=self.cfg.p_uncond, rng=rng,
            null_label=self.null_label, weighting=self.cfg.loss_weighting,
            min_snr_gamma=self.cfg.min_snr_gamma,
        )

    @torch.no_grad()
    def val_loss(self, model: nn.Module) -> float:
        # The same t and noise for every validation, so epochs compare (uniform weighting: the
        # plain eps-MSE, whatever the training loss weights).
        g = torch.Generator(self.device).manual_seed(derive_seed(self.cfg.train.seed, STREAM_VAL))
        total, n = 0.0, 0
        bs = self.cfg.sample.batch_size
        for i in range(0, len(self.val_x), bs):
            x, y = self.val_x[i : i + bs], self.val_y[i : i + bs]
            if self.cfg.train.channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            loss = ddpm_loss(model, self.schedule, x, y, p_uncond=0.0, rng=g)
            total += loss.item() * len(x)
            n += len(x)
        return total / max(n, 1)

    def on_epoch_end(self, model: nn.Module, epoch: int, run_dir: Path) -> dict[str, Any]:
        record: dict[str, Any] = {}
        if epoch in self.cfg.snapshot_epochs:
            name = snapshot_name(epoch)
            save_checkpoint(run_dir / "checkpoints" / name, model, meta={"epoch": epoch})
            record["snapshot"] = f"checkpoints/{name}"
        every = self.cfg.sample.grid_every_epochs
        if epoch != 1 and not (every and epoch % every == 0):
            return record
        save_sample_grid(
            model,
            self.schedule,
            self.cfg.sample,
            self.class_names,
            run_dir / "samples" / f"epoch-{epoch:04d}.png",
            f"epoch {epoch}",
            self.device,
        )
        return {**record, "sample_grid": f"samples/epoch-{epoch:04d}.png"}


def snapshot_name(epoch: int) -> str:
    """The checkpoint folder of the weights kept at the end of `epoch` (`snapshot_epochs`)."""
    return f"epoch-{epoch:04d}"


def save_sample_grid(
    model: nn.Module,
    schedule: NoiseSchedule,
    scfg: SampleConfig,
    class_names: tuple[str, ...],
    path: Path,
    title: str,
    device: torch.device,
) -> None:
    """One row per class, `grid_per_class` samples each, with fixed seeds across epochs."""
    from synthmix.data import to_uint8_images
    from synthmix.plots import save_class_grid

    k, per = len(class_names), scfg.grid_per_class
    labels = torch.arange(k, device=device).repeat_interleave(per)
    seeds = [scfg.seed * 1_000_000 + i for i in range(k * per)]
    model.eval()
    x0 = sample(scfg.sampler, model, schedule, labels, make_noise(seeds, device),
                **scfg.sampler_kwargs())
    title = f"{title} ({scfg.sampler}-{scfg.steps}, w={scfg.guidance_scale:g})"
    save_class_grid(to_uint8_images(x0.float().cpu()), class_names, per, path, title)


def train_ddpm(
    cfg: DDPMConfig, run_dir: Path, resume: bool = False, progress: bool = True
) -> dict[str, Any]:
    """Train (or resume) a DDPM run in `run_dir`; returns its train_summary."""
    set_threads(cfg.num_threads)
    device = select_device(cfg.device)
    dist.init_from_env(device)
    comm = dist.group()
    run_dir = Path(run_dir)
    data = prepare_data(cfg.data)
    h, w, c = data.image_shape
    model = build_unet(cfg.unet, c, h, len(data.class_names), cfg.train.seed)
    if comm.is_main:
        write_run_info(
            run_dir,
            cfg,
            {
                "kind": "ddpm",
                "class_names": list(data.class_names),
                "image_shape": [h, w, c],
                "parameters": sum(p.numel() for p in model.parameters()),
                "unet": to_dict(model.cfg),
                "sizes": {"train": len(data.diffusion_train[0]), "val": len(data.diffusion_val[0])},
            },
        )
        data.splits.save(run_dir / "splits.json")
    schedule = NoiseSchedule.from_config(cfg.schedule).to(device)
    task = DDPMTask(cfg, schedule, data.diffusion_val, data.class_names, device)
    result = fit(
        model,
        task,
        *data.diffusion_train,
        cfg.train,
        run_dir,
        device,
        resume=resume,
        progress=progress,
        comm=comm,
    )
    if comm.is_main:
        final = load_ddpm(run_dir, device=device)
        save_sample_grid(
            final.model,
            final.schedule,
            cfg.sample,
            data.class_names,
            run_dir / "samples" / "final.png",
            f"final ({result.stop_reason})",
            device,
        )
    comm.barrier()
    return json.loads((run_dir / "train_summary.json").read_text())


@dataclass
class TrainedDDPM:
    model: UNet
    schedule: NoiseSchedule
    cfg: DDPMConfig
    class_names: tuple[str, ...]
    image_shape: tuple[int, int, int]
    weights_file: Path
    run_dir: Path


def load_ddpm(
    run_dir: Path,
    which: str = "best",
    use_ema: bool = True,
    device: torch.device | None = None,
) -> TrainedDDPM:
    """Rebuild a trained DDPM from its run directory (config + safetensors weights).

    `which`: the "best" (lowest validation loss) or "last" checkpoint, or a snapshot kept by
    `snapshot_epochs` ("epoch-0012", see `snapshot_name`)."""
    run_dir = Path(run_dir)
    info_path = run_dir / "run.json"
    if not info_path.is_file():
        raise SynthmixError("not a DDPM run directory (no run.json)", path=run_dir)
    from synthmix.config import load_config

    cfg = load_config(DDPMConfig, run_dir / "config.yaml")
    info = json.loads(info_path.read_text())
    h, w, c = info["image_shape"]
    class_names = tuple(info["class_names"])
    model = build_unet(cfg.unet, c, h, len(class_names), cfg.train.seed)
    folder = find_checkpoint(run_dir / "checkpoints" / which)
    if folder is None:
        raise SynthmixError(
            f"no {which!r} checkpoint yet",
            path=run_dir / "checkpoints",
            hint="train it first with `synthmix train-ddpm`",
        )
    ema_file = folder / "ema.safetensors"
    weights = ema_file if use_ema and ema_file.is_file() else folder / "model.safetensors"
    load_weights(weights, model)
    device = device or select_device(cfg.device)
    model.to(device).eval()
    if cfg.train.channels_last:  # 1.4-1.5x faster sampling on CPUs (see CPU-NOTES.md)
        model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
    schedule = NoiseSchedule.from_config(cfg.schedule).to(device)
    return TrainedDDPM(model, schedule, cfg, class_names, (h, w, c), weights, run_dir)

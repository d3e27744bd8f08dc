"""The diffusion model: noise schedule, eps-network (U-Net), training loss and samplers."""

from synthmix.diffusion.loss import ddpm_loss, drop_labels
from synthmix.diffusion.samplers import (
    SAMPLERS,
    PerImageNoise,
    guided_eps,
    network_evaluations,
    sample,
    sample_ancestral,
    sample_ddim,
    sample_dpmpp_2m,
)
from synthmix.diffusion.schedule import NoiseSchedule, ScheduleConfig
from synthmix.diffusion.unet import UNET_PRESETS, UNet, UNetConfig, unet_config

__all__ = [
    "SAMPLERS",
    "UNET_PRESETS",
    "NoiseSchedule",
    "PerImageNoise",
    "ScheduleConfig",
    "UNet",
    "UNetConfig",
    "ddpm_loss",
    "drop_labels",
    "guided_eps",
    "network_evaluations",
    "sample",
    "sample_ancestral",
    "sample_ddim",
    "sample_dpmpp_2m",
    "unet_config",
]

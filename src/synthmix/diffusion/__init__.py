"""The diffusion model: noise schedule, eps-network (U-Net), training loss and samplers.

Names are loaded on first use, so `synthmix.diffusion.settings` (the sampling defaults) can be
read without importing torch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_HOMES = {
    "ddpm_loss": "loss", "drop_labels": "loss",
    "PerImageNoise": "noise", "PhiloxNoise": "noise", "make_noise": "noise",
    "SAMPLERS": "samplers", "guided_eps": "samplers", "network_evaluations": "samplers",
    "sample": "samplers", "sample_ancestral": "samplers", "sample_ddim": "samplers",
    "sample_dpmpp_2m": "samplers", "threshold_x0": "samplers",
    "NoiseSchedule": "schedule", "ScheduleConfig": "schedule",
    "DEFAULT_SAMPLING": "settings", "SamplerSettings": "settings",
    "UNET_PRESETS": "unet", "UNet": "unet", "UNetConfig": "unet", "unet_config": "unet",
}  # fmt: skip
__all__ = [
    "DEFAULT_SAMPLING",
    "NoiseSchedule",
    "PerImageNoise",
    "PhiloxNoise",
    "SAMPLERS",
    "SamplerSettings",
    "ScheduleConfig",
    "UNET_PRESETS",
    "UNet",
    "UNetConfig",
    "ddpm_loss",
    "drop_labels",
    "guided_eps",
    "make_noise",
    "network_evaluations",
    "sample",
    "sample_ancestral",
    "sample_ddim",
    "sample_dpmpp_2m",
    "threshold_x0",
    "unet_config",
]

if TYPE_CHECKING:
    from synthmix.diffusion.loss import ddpm_loss, drop_labels
    from synthmix.diffusion.noise import PerImageNoise, PhiloxNoise, make_noise
    from synthmix.diffusion.samplers import (
        SAMPLERS,
        guided_eps,
        network_evaluations,
        sample,
        sample_ancestral,
        sample_ddim,
        sample_dpmpp_2m,
        threshold_x0,
    )
    from synthmix.diffusion.schedule import NoiseSchedule, ScheduleConfig
    from synthmix.diffusion.settings import DEFAULT_SAMPLING, SamplerSettings
    from synthmix.diffusion.unet import UNET_PRESETS, UNet, UNetConfig, unet_config


def __getattr__(name: str) -> Any:
    if name not in _HOMES:
        raise AttributeError(f"module 'synthmix.diffusion' has no attribute {name!r}")
    return getattr(importlib.import_module(f"synthmix.diffusion.{_HOMES[name]}"), name)

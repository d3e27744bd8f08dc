"""The DDPM training loss (Ho et al. 2020 Algorithm 1) with per-sample label dropout (CFG) and an
optional min-SNR-gamma weighting of the timesteps (Hang et al. 2023)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

import torch

from synthmix.diffusion.schedule import NoiseSchedule
from synthmix.errors import ConfigError
from synthmix.seeding import StepRandom

EpsModel = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]
LossWeighting = Literal["uniform", "min_snr"]


def as_step_random(rng: StepRandom | torch.Generator | None, device: torch.device) -> StepRandom:
    """A StepRandom from a generator (or, for None, a generator seeded from torch's global one)."""
    if isinstance(rng, StepRandom):
        return rng
    if rng is None:
        seed = int(torch.randint(0, 2**62, (1,)))
        rng = torch.Generator(device).manual_seed(seed)
    return StepRandom(rng)


def drop_labels(
    y: torch.Tensor,
    p_uncond: float,
    null_label: int,
    rng: StepRandom | torch.Generator | None = None,
) -> torch.Tensor:
    """Replace each label by `null_label` independently with probability `p_uncond`."""
    if not 0.0 <= p_uncond <= 1.0:
        raise ConfigError(f"p_uncond: must lie in [0, 1], got {p_uncond}")
    # One coin per sample (Ho & Salimans 2022 Algorithm 1); the study's code dropped whole batches.
    drop = as_step_random(rng, y.device).rand(len(y)).to(y.device) < p_uncond  # (B,)
    return torch.where(drop, torch.full_like(y, null_label), y)


def timestep_weights(
    schedule: NoiseSchedule, t: torch.Tensor, weighting: LossWeighting, gamma: float
) -> torch.Tensor:
    """Per-sample loss weights (B,): 1, or min(SNR_t, gamma) / SNR_t, the min-SNR-gamma weight
    of an eps-prediction loss (Hang et al. 2023 eq. 9 with SNR_t = alpha_bar / (1 - alpha_bar))."""
    if weighting == "uniform":
        return torch.ones(len(t), device=t.device)
    if weighting != "min_snr":
        raise ConfigError(f"loss_weighting: {weighting!r} is not one of 'uniform', 'min_snr'")
    if not gamma > 0:
        raise ConfigError(f"min_snr_gamma: must be > 0, got {gamma}")
    ab = schedule.to(t.device).alpha_bar[t]  # (B,)
    snr = ab / (1.0 - ab)
    return torch.clamp(snr, max=gamma) / snr


def ddpm_loss(
    model: EpsModel,
    schedule: NoiseSchedule,
    x0: torch.Tensor,
    y: torch.Tensor,
    *,
    p_uncond: float = 0.1,
    rng: StepRandom | torch.Generator | None = None,
    null_label: int | None = None,
    weighting: LossWeighting = "uniform",
    min_snr_gamma: float = 5.0,
) -> torch.Tensor:
    """Scalar eps-MSE at t uniform over all T steps; all randomness drawn from `rng`.

    `null_label` defaults to `model.null_label` (pass it when the model is wrapped, e.g. DDP).
    """
    if null_label is None:
        null_label = int(getattr(model, "null_label"))  # noqa: B009 - any eps-callable may carry it
    rng = as_step_random(rng, x0.device)
    B = x0.shape[0]
    t = rng.randint(schedule.T, B).to(x0.device)  # Alg. 1 line 3
    eps = rng.randn(B, *x0.shape[1:], dtype=x0.dtype).to(x0.device)  # line 4
    y = drop_labels(y, p_uncond, null_label, rng)  # Ho & Salimans 2022 Alg. 1 line 3
    x_t = schedule.q_sample(x0, t, eps)  # Ho eq. 4
    err = (model(x_t, t, y).float() - eps.float()).pow(2).flatten(1).mean(1)  # (B,) Alg. 1 line 5
    return (timestep_weights(schedule, t, weighting, min_snr_gamma) * err).mean()

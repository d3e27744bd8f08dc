"""The DDPM training loss (Ho et al. 2020 Algorithm 1) with per-sample label dropout (CFG)."""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from synthmix.diffusion.schedule import NoiseSchedule
from synthmix.errors import ConfigError

EpsModel = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


def drop_labels(
    y: torch.Tensor, p_uncond: float, null_label: int, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Replace each label by `null_label` independently with probability `p_uncond`."""
    if not 0.0 <= p_uncond <= 1.0:
        raise ConfigError(f"p_uncond: must lie in [0, 1], got {p_uncond}")
    # One coin per sample (Ho & Salimans 2022 Algorithm 1); the study's code dropped whole batches.
    drop = torch.rand(y.shape, generator=generator, device=y.device) < p_uncond  # (B,)
    return torch.where(drop, torch.full_like(y, null_label), y)


def ddpm_loss(
    model: EpsModel,
    schedule: NoiseSchedule,
    x0: torch.Tensor,
    y: torch.Tensor,
    *,
    p_uncond: float = 0.1,
    generator: torch.Generator | None = None,
    null_label: int | None = None,
) -> torch.Tensor:
    """Scalar eps-MSE at t uniform over all T steps; all randomness drawn from `generator`.

    `null_label` defaults to `model.null_label` (pass it when the model is wrapped, e.g. DDP).
    """
    if null_label is None:
        null_label = int(getattr(model, "null_label"))  # noqa: B009 - any eps-callable may carry it
    B, device = x0.shape[0], x0.device
    t = torch.randint(0, schedule.T, (B,), generator=generator, device=device)  # Alg. 1 line 3
    eps = torch.randn(x0.shape, generator=generator, device=device, dtype=x0.dtype)  # line 4
    y = drop_labels(y, p_uncond, null_label, generator)  # Ho & Salimans 2022 Alg. 1 line 3
    x_t = schedule.q_sample(x0, t, eps)  # Ho eq. 4
    return F.mse_loss(model(x_t, t, y).float(), eps.float())  # Alg. 1 line 5

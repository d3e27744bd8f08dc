"""The DDPM noise schedule: a plain object that owns the forward process and its posterior.

Timestep convention (used everywhere in synthmix): `t` is a 0-based int64 index tensor in
[0, T-1]. Index i is the paper's t = i + 1, so `betas[i]` is beta_{i+1} and
`alpha_bar[i] = prod_{s <= i} alpha_s`; `alpha_bar_prev[0] = 1` stands for the clean x_0.

Master tensors are float64 on the CPU; `to(device)` returns a view of the same schedule with
float32 copies, made once per (device, dtype) and cached, so samplers and the loss never
recompute or re-transfer the schedule per step.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from typing import Literal

import torch

from synthmix.errors import ConfigError

# Derived per-timestep tensors, all shape (T,); `to()` copies exactly these.
_FIELDS = (
    "betas",
    "alphas",
    "alpha_bar",
    "alpha_bar_prev",
    "posterior_variance",
    "sqrt_alpha_bar",
    "sqrt_one_minus_alpha_bar",
    "sqrt_recip_alphas",
    "eps_coef",
    "posterior_mean_coef_x0",
    "posterior_mean_coef_xt",
)


@dataclass(frozen=True)
class ScheduleConfig:
    """The forward process: the study uses linear betas 1e-4..0.02 with T = 400 (and 1000)."""

    kind: Literal["linear", "cosine"] = "linear"
    T: int = 400
    beta_start: float = 1e-4
    beta_end: float = 0.02
    cosine_s: float = 0.008


class NoiseSchedule:
    """beta_t and everything derived from it; q_sample, x0 prediction and the posterior."""

    T: int
    betas: torch.Tensor  # (T,) beta_t
    alphas: torch.Tensor  # (T,) 1 - beta_t
    alpha_bar: torch.Tensor  # (T,) prod_{s<=t} alpha_s
    alpha_bar_prev: torch.Tensor  # (T,) alpha_bar_{t-1}, 1 at the first step
    posterior_variance: torch.Tensor  # (T,) beta_tilde_t (Ho eq. 7)
    sqrt_alpha_bar: torch.Tensor
    sqrt_one_minus_alpha_bar: torch.Tensor
    sqrt_recip_alphas: torch.Tensor  # 1 / sqrt(alpha_t), Ho Algorithm 2
    eps_coef: torch.Tensor  # beta_t / sqrt(1 - alpha_bar_t), Ho Algorithm 2
    posterior_mean_coef_x0: torch.Tensor  # Ho eq. 7, coefficient of x_0
    posterior_mean_coef_xt: torch.Tensor  # Ho eq. 7, coefficient of x_t

    def __init__(self, betas: torch.Tensor) -> None:
        betas = torch.as_tensor(betas, dtype=torch.float64).detach().cpu().reshape(-1)
        if betas.numel() < 1 or not bool(((betas > 0) & (betas < 1)).all()):
            raise ConfigError("schedule: every beta must lie in the open interval (0, 1)")
        self.T = int(betas.numel())
        self.betas = betas
        self.alphas = 1.0 - betas
        self.alpha_bar = torch.cumprod(self.alphas, dim=0)
        self.alpha_bar_prev = torch.cat([betas.new_ones(1), self.alpha_bar[:-1]])
        one_minus_ab = 1.0 - self.alpha_bar
        self.posterior_variance = betas * (1.0 - self.alpha_bar_prev) / one_minus_ab
        self.sqrt_alpha_bar = self.alpha_bar.sqrt()
        self.sqrt_one_minus_alpha_bar = one_minus_ab.sqrt()
        self.sqrt_recip_alphas = self.alphas.rsqrt()
        self.eps_coef = betas / self.sqrt_one_minus_alpha_bar
        self.posterior_mean_coef_x0 = self.alpha_bar_prev.sqrt() * betas / one_minus_ab
        self.posterior_mean_coef_xt = (
            self.alphas.sqrt() * (1.0 - self.alpha_bar_prev) / one_minus_ab
        )
        self._root = self
        self._views: dict[tuple[str, torch.dtype], NoiseSchedule] = {}

    @classmethod
    def from_config(cls, cfg: ScheduleConfig) -> NoiseSchedule:
        """The schedule a `ScheduleConfig` describes."""
        if cfg.kind == "linear":
            return cls.linear(cfg.T, cfg.beta_start, cfg.beta_end)
        if cfg.kind == "cosine":
            return cls.cosine(cfg.T, cfg.cosine_s)
        raise ConfigError(f"schedule.kind: {cfg.kind!r} is not one of 'linear', 'cosine'")

    @classmethod
    def linear(
        cls, T: int = 400, beta_start: float = 1e-4, beta_end: float = 0.02
    ) -> NoiseSchedule:
        """Ho et al. 2020 section 4: betas evenly spaced from beta_start to beta_end."""
        _check_T(T)
        if not 0.0 < beta_start <= beta_end < 1.0:
            raise ConfigError(
                f"schedule: need 0 < beta_start <= beta_end < 1, got {beta_start}, {beta_end}"
            )
        return cls(torch.linspace(beta_start, beta_end, T, dtype=torch.float64))

    @classmethod
    def cosine(cls, T: int = 400, s: float = 0.008) -> NoiseSchedule:
        """Nichol & Dhariwal 2021 eq. 17: alpha_bar = f(t)/f(0), betas clipped at 0.999."""
        _check_T(T)
        if not s > 0.0:
            raise ConfigError(f"schedule.cosine_s: must be > 0, got {s}")
        steps = torch.arange(T + 1, dtype=torch.float64) / T
        f = torch.cos((steps + s) / (1 + s) * math.pi / 2) ** 2
        alpha_bar = f / f[0]
        betas = (1.0 - alpha_bar[1:] / alpha_bar[:-1]).clamp(min=1e-12, max=0.999)
        return cls(betas)

    def to(self, device: torch.device | str, dtype: torch.dtype = torch.float32) -> NoiseSchedule:
        """The same schedule with its tensors on `device` as `dtype`, cached per (device, dtype)."""
        root = self._root
        device = torch.device(device)
        if device.type == "cpu" and dtype == torch.float64:
            return root
        key = (str(device), dtype)
        view = root._views.get(key)
        if view is None:
            view = copy.copy(root)  # shares _root and the _views cache
            for name in _FIELDS:
                setattr(view, name, getattr(root, name).to(device=device, dtype=dtype))
            root._views[key] = view
        return view

    def _gather(self, name: str, t: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        """Per-sample coefficient `name`[t], shaped (B, 1, 1, 1) to broadcast against `like`."""
        dtype = torch.float64 if like.dtype == torch.float64 else torch.float32
        coef = getattr(self.to(like.device, dtype), name)[t]  # (B,)
        return coef.reshape(-1, *([1] * (like.ndim - 1)))

    def q_sample(self, x0: torch.Tensor, t: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
        """x_t ~ q(x_t | x_0) from the noise `eps` (Ho et al. 2020 eq. 4)."""
        # x_t = sqrt(alpha_bar_t) x_0 + sqrt(1 - alpha_bar_t) eps  (Ho eq. 4)
        return (
            self._gather("sqrt_alpha_bar", t, x0) * x0
            + self._gather("sqrt_one_minus_alpha_bar", t, x0) * eps
        )

    def predict_x0(self, x_t: torch.Tensor, t: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
        """The x_0 for which q_sample(x_0, t, eps) == x_t (Ho eq. 4 solved for x_0)."""
        return (x_t - self._gather("sqrt_one_minus_alpha_bar", t, x_t) * eps) / self._gather(
            "sqrt_alpha_bar", t, x_t
        )

    def posterior_mean(self, x0: torch.Tensor, x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """Mean of q(x_{t-1} | x_t, x_0) in closed form (Ho et al. 2020 eq. 7)."""
        # mu_tilde = sqrt(ab_{t-1}) beta_t/(1-ab_t) x_0 + sqrt(alpha_t)(1-ab_{t-1})/(1-ab_t) x_t
        return (
            self._gather("posterior_mean_coef_x0", t, x0) * x0
            + self._gather("posterior_mean_coef_xt", t, x_t) * x_t
        )

    def posterior_variance_at(
        self,
        t: torch.Tensor,
        kind: Literal["beta", "beta_tilde"] = "beta",
        dtype: torch.dtype = torch.float32,
    ) -> torch.Tensor:
        """sigma_t^2 of the reverse step, shaped (B, 1, 1, 1): beta_t or beta_tilde_t (Ho 3.2)."""
        name = {"beta": "betas", "beta_tilde": "posterior_variance"}.get(kind)
        if name is None:
            raise ConfigError(f"variance: {kind!r} is not one of 'beta', 'beta_tilde'")
        return getattr(self.to(t.device, dtype), name)[t].reshape(-1, 1, 1, 1)

    def __repr__(self) -> str:
        dev = self.betas.device
        return f"NoiseSchedule(T={self.T}, device={dev}, dtype={self.betas.dtype})"


def _check_T(T: int) -> None:
    if isinstance(T, bool) or not isinstance(T, int) or T < 1:
        raise ConfigError(f"schedule.T: must be a positive integer, got {T!r}")

"""Samplers: short loops over a `NoiseSchedule` calling any eps-network (x_t, t, y) -> eps.

Every image owns a seed (`synthmix.diffusion.noise`), so an image depends only on its (seed,
label) and the sampler settings, never on the batch it was drawn in. Per-step coefficients are
computed once per call in float64, moved to the device once, and indexed with Python ints in
the loop (no host syncs). Every sampler can threshold its x_0 prediction (`thresholding`): the
processed prediction then replaces the raw one in the update. Samplers return the raw x_0;
`sample()` clamps it to [-1, 1].
"""

from __future__ import annotations

import functools
import logging
import math
from collections.abc import Callable, Sequence
from typing import Any, Literal

import torch
from tqdm.auto import tqdm

from synthmix.diffusion.noise import Noise
from synthmix.diffusion.schedule import NoiseSchedule
from synthmix.diffusion.settings import DEFAULT_SAMPLING, SamplerSettings, Thresholding
from synthmix.errors import ConfigError

EpsModel = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]
log = logging.getLogger(__name__)
__all__ = ["DEFAULT_SAMPLING", "SAMPLERS", "SamplerSettings", "sample", "threshold_x0"]


def threshold_x0(x0: torch.Tensor, mode: Thresholding, percentile: float) -> torch.Tensor:
    """Bring an x_0 prediction (B, C, H, W) back towards [-1, 1].

    clip: clamp to [-1, 1] (Ho et al. 2020's clipped sampling). dynamic: Saharia et al. 2022
    section 3.3: s = max(1, the p-th percentile of |x_0| per image), x_0 <- clip(x_0, -s, s) / s,
    which pulls saturated pixels inwards instead of flattening them.
    """
    if mode == "none":
        return x0
    if mode == "clip":
        return x0.clamp(-1.0, 1.0)
    if mode == "dynamic":
        flat = x0.abs().reshape(len(x0), -1).float()  # (B, C*H*W)
        s = torch.quantile(flat, percentile, dim=1).clamp(min=1.0).to(x0.dtype)  # (B,)
        s = s.reshape(-1, *([1] * (x0.ndim - 1)))
        return torch.maximum(torch.minimum(x0, s), -s) / s
    raise ConfigError(f"thresholding: {mode!r} is not one of 'none', 'clip', 'dynamic'")


def guided_eps(
    model: EpsModel,
    x_t: torch.Tensor,
    t: torch.Tensor,
    y: torch.Tensor,
    guidance_scale: float,
    null_label: int,
) -> torch.Tensor:
    """Classifier-free guided noise prediction; both passes share one batched forward."""
    # .float(): under autocast the network answers in bf16; guidance and the update stay fp32.
    if guidance_scale == 0:
        return model(x_t, t, y).float()
    null = torch.full_like(y, null_label)
    eps = model(torch.cat([x_t, x_t]), torch.cat([t, t]), torch.cat([y, null]))  # (2B, C, H, W)
    eps = eps.float()
    eps_cond, eps_uncond = eps.chunk(2)
    # eps_hat = (1 + w) eps(x_t, y) - w eps(x_t, null)  (SPEC section 2; Ho & Salimans 2022 eq. 6)
    return (1 + guidance_scale) * eps_cond - guidance_scale * eps_uncond


def _setup(
    model: EpsModel,
    labels: torch.Tensor,
    noise: Noise,
    image_shape: Sequence[int] | None,
    null_label: int | None,
) -> tuple[torch.Tensor, torch.Tensor, int]:
    """x_T ~ N(0, I) from the per-image noise, labels on its device, and the null label."""
    if len(labels) != len(noise):
        raise ConfigError(f"sampling: {len(labels)} labels but {len(noise)} seeds")
    shape = image_shape if image_shape is not None else getattr(model, "image_shape")  # noqa: B009
    null = null_label if null_label is not None else int(getattr(model, "null_label"))  # noqa: B009
    return noise.randn(shape), labels.to(noise.device, torch.int64), null


def _start_on_subsequence(
    model: EpsModel,
    schedule: NoiseSchedule,
    labels: torch.Tensor,
    noise: Noise,
    steps: int,
    image_shape: Sequence[int] | None,
    null_label: int | None,
) -> tuple[torch.Tensor, torch.Tensor, int, list[int], list[float]]:
    """x_T ~ N(0, I), labels, null label, the sub-sequence tau of `steps` timesteps (Song et al.
    2021 section 4.2) and alpha_bar as a float64 list (the master copy, even from a view)."""
    x, y, null = _setup(model, labels, noise, image_shape, null_label)
    taus = _timesteps(schedule.T, steps)
    return x, y, null, taus, schedule.to("cpu", torch.float64).alpha_bar.tolist()


def _table(rows: list[list[float]], device: torch.device) -> torch.Tensor:
    """Per-step coefficients (steps, k), float64 maths moved to the device once as float32."""
    return torch.tensor(rows, dtype=torch.float64).to(device=device, dtype=torch.float32)


def _timesteps(T: int, steps: int) -> list[int]:
    """`steps` evenly spaced 0-based indices from T-1 down, "trailing" (Lin et al. 2024 table 2).

    The last index is about T/steps - 1 and the final update jumps from there to x_0; steps = T
    gives every index. Ending at index 0 instead would leave DPM-Solver++ one huge log-SNR step
    into x_0 preceded by a wild second-order extrapolation.
    """
    if not 1 <= steps <= T:
        raise ConfigError(f"sampling: steps must lie in [1, T={T}], got {steps}")
    return [round(T - i * T / steps) - 1 for i in range(steps)]


@torch.inference_mode()
def sample_ancestral(
    model: EpsModel,
    schedule: NoiseSchedule,
    labels: torch.Tensor,
    noise: Noise,
    *,
    guidance_scale: float = DEFAULT_SAMPLING.guidance_scale,
    variance: Literal["beta", "beta_tilde"] = "beta",
    thresholding: Thresholding = DEFAULT_SAMPLING.thresholding,
    thresholding_percentile: float = DEFAULT_SAMPLING.thresholding_percentile,
    progress: bool = False,
    image_shape: Sequence[int] | None = None,
    null_label: int | None = None,
) -> torch.Tensor:
    """The study's Algorithm 2 (Ho et al. 2020 Algorithm 2) over all T steps, with guidance."""
    x, y, null = _setup(model, labels, noise, image_shape, null_label)  # x_T ~ N(0, I)
    sched = schedule.to(x.device)
    sigma = sched.posterior_variance_at(torch.arange(schedule.T, device=x.device), variance).sqrt()
    t_all = torch.arange(schedule.T, device=x.device)
    for i in tqdm(range(schedule.T - 1, -1, -1), disable=not progress, desc="ancestral"):
        t = t_all[i].expand(len(y))  # (B,)
        eps = guided_eps(model, x, t, y, guidance_scale, null)
        if thresholding != "none":  # the posterior mean (Ho eq. 7) of a thresholded x_0
            x0 = threshold_x0(sched.predict_x0(x, t, eps), thresholding, thresholding_percentile)
            mean = sched.posterior_mean(x0, x, t)
        else:  # x_{t-1} = 1/sqrt(alpha_t) (x_t - beta_t / sqrt(1 - alpha_bar_t) eps_hat)  (Alg. 2)
            mean = sched.sqrt_recip_alphas[i] * (x - sched.eps_coef[i] * eps)
        # ... + sigma_t z with z ~ N(0, I), and z = 0 at the last step (Alg. 2 lines 3-4)
        x = (mean + sigma[i] * noise.randn(x.shape[1:])) if i > 0 else mean
    return x


@torch.inference_mode()
def sample_ddim(
    model: EpsModel,
    schedule: NoiseSchedule,
    labels: torch.Tensor,
    noise: Noise,
    *,
    steps: int = DEFAULT_SAMPLING.steps,
    eta: float = 0.0,
    guidance_scale: float = DEFAULT_SAMPLING.guidance_scale,
    thresholding: Thresholding = DEFAULT_SAMPLING.thresholding,
    thresholding_percentile: float = DEFAULT_SAMPLING.thresholding_percentile,
    progress: bool = False,
    image_shape: Sequence[int] | None = None,
    null_label: int | None = None,
) -> torch.Tensor:
    """DDIM (Song et al. 2021) on `steps` evenly spaced timesteps; eta=1 is ancestral-like."""
    x, y, null, taus, ab = _start_on_subsequence(
        model, schedule, labels, noise, steps, image_shape, null_label)  # fmt: skip
    rows = []
    for i, tau in enumerate(taus):
        a, a_next = ab[tau], (ab[taus[i + 1]] if i + 1 < len(taus) else 1.0)
        # sigma_tau(eta) = eta sqrt((1 - a_prev)/(1 - a)) sqrt(1 - a/a_prev)  (Song eq. 16)
        sigma = eta * math.sqrt((1 - a_next) / (1 - a) * (1 - a / a_next))
        rows.append([math.sqrt(a), math.sqrt(1 - a), math.sqrt(a_next),
                     math.sqrt(max(1 - a_next - sigma**2, 0.0)), sigma])  # fmt: skip
    coef = _table(rows, x.device)  # (steps, 5)
    t_all = torch.tensor(taus, device=x.device)
    for i in tqdm(range(len(taus)), disable=not progress, desc="ddim"):
        sqrt_a, sqrt_1ma, sqrt_a_next, dir_coef, sigma_i = coef[i]
        eps = guided_eps(model, x, t_all[i].expand(len(y)), y, guidance_scale, null)
        x0 = (x - sqrt_1ma * eps) / sqrt_a  # "predicted x_0" of Song eq. 12
        if thresholding != "none":  # the eps that is consistent with x_t and the new x_0
            x0 = threshold_x0(x0, thresholding, thresholding_percentile)
            eps = (x - sqrt_a * x0) / sqrt_1ma
        # x_prev = sqrt(a_prev) x0 + sqrt(1 - a_prev - sigma^2) eps + sigma z  (Song eq. 12)
        x = sqrt_a_next * x0 + dir_coef * eps
        if eta > 0 and i + 1 < len(taus):
            x = x + sigma_i * noise.randn(x.shape[1:])
    return x


@torch.inference_mode()
def sample_dpmpp_2m(
    model: EpsModel,
    schedule: NoiseSchedule,
    labels: torch.Tensor,
    noise: Noise,
    *,
    steps: int = DEFAULT_SAMPLING.steps,
    guidance_scale: float = DEFAULT_SAMPLING.guidance_scale,
    thresholding: Thresholding = DEFAULT_SAMPLING.thresholding,
    thresholding_percentile: float = DEFAULT_SAMPLING.thresholding_percentile,
    progress: bool = False,
    image_shape: Sequence[int] | None = None,
    null_label: int | None = None,
) -> torch.Tensor:
    """DPM-Solver++(2M) (Lu et al. 2022, Algorithm 2) in lambda = log(alpha/sigma)."""
    x, y, null, taus, ab = _start_on_subsequence(
        model, schedule, labels, noise, steps, image_shape, null_label)  # fmt: skip
    lam = [0.5 * (math.log(ab[t]) - math.log1p(-ab[t])) for t in taus]  # log-SNR / 2
    rows, h_prev = [], 0.0
    for i, tau in enumerate(taus):
        if i + 1 == len(taus):  # first-order final step onto sigma = 0: x_0 = D (lambda = inf)
            rows.append([math.sqrt(ab[tau]), math.sqrt(1 - ab[tau]), 0.0, 1.0, 1.0, 0.0])
            break
        a_next = ab[taus[i + 1]]
        h = lam[i + 1] - lam[i]
        # x_next = sigma_next/sigma_cur x - alpha_next (e^{-h} - 1) D  (Lu et al. Alg. 2)
        cx = math.sqrt((1 - a_next) / (1 - ab[tau]))
        cd = -math.sqrt(a_next) * math.expm1(-h)
        # D = (1 + 1/(2r)) x0_i - 1/(2r) x0_{i-1}, r = h_{i-1}/h_i; first step D = x0_0
        w = 0.0 if i == 0 else 1.0 / (2.0 * h_prev / h)
        rows.append([math.sqrt(ab[tau]), math.sqrt(1 - ab[tau]), cx, cd, 1.0 + w, -w])
        h_prev = h
    coef = _table(rows, x.device)  # (steps, 6)
    t_all = torch.tensor(taus, device=x.device)
    x0_prev = x
    for i in tqdm(range(len(taus)), disable=not progress, desc="dpm++2m"):
        sqrt_a, sqrt_1ma, cx, cd, w_cur, w_prev = coef[i]
        eps = guided_eps(model, x, t_all[i].expand(len(y)), y, guidance_scale, null)
        x0 = (x - sqrt_1ma * eps) / sqrt_a  # data prediction x_theta (Lu et al. eq. 8)
        # The thresholded data prediction enters the multistep update (Lu et al. 2022 sec. 5).
        x0 = threshold_x0(x0, thresholding, thresholding_percentile)
        x = cx * x + cd * (w_cur * x0 + w_prev * x0_prev)
        x0_prev = x0
    return x


SAMPLERS: dict[str, Callable[..., torch.Tensor]] = {
    "ancestral": sample_ancestral,
    "ddim": sample_ddim,
    "dpmpp": sample_dpmpp_2m,
}


def sample(
    name: str,
    model: EpsModel,
    schedule: NoiseSchedule,
    labels: torch.Tensor,
    noise: Noise,
    *,
    steps: int | None = None,
    guidance_scale: float = DEFAULT_SAMPLING.guidance_scale,
    eta: float = 0.0,
    thresholding: Thresholding = DEFAULT_SAMPLING.thresholding,
    thresholding_percentile: float = DEFAULT_SAMPLING.thresholding_percentile,
    progress: bool = False,
    **kwargs: Any,
) -> torch.Tensor:
    """Run sampler `name` and clamp the result to [-1, 1]: (B, C, H, W).

    `steps=None` takes the sampler's default; "ancestral" always runs all T steps and ignores it.
    The result is an ordinary tensor (the clamp runs outside inference mode), safe to edit in place.
    """
    _check_name(name)
    if eta != 0 and name != "ddim":
        raise ConfigError(f"sampling: eta applies to 'ddim' only, not {name!r}")
    if not math.isfinite(guidance_scale) or guidance_scale < 0:
        raise ConfigError(f"sampling: guidance_scale must be >= 0, got {guidance_scale}")
    if not 0.5 <= thresholding_percentile < 1.0:
        raise ConfigError(
            f"sampling: thresholding_percentile must lie in [0.5, 1), got {thresholding_percentile}"
        )
    if thresholding == "none":
        _warn_if_terminal_signal_vanishes(schedule.T, float(schedule.to("cpu", torch.float64)
                                                            .alpha_bar[-1]))
    if name == "ddim":
        kwargs["eta"] = eta
    if steps is not None and name != "ancestral":
        kwargs["steps"] = steps
    fn = SAMPLERS[name]
    x0 = fn(
        model, schedule, labels, noise, guidance_scale=guidance_scale, thresholding=thresholding,
        thresholding_percentile=thresholding_percentile, progress=progress, **kwargs,
    )  # fmt: skip
    return x0.clamp(-1.0, 1.0)


@functools.cache
def _warn_if_terminal_signal_vanishes(T: int, alpha_bar_T: float) -> None:
    """Once per schedule: x_0 = (x_T - sqrt(1 - ab) eps) / sqrt(ab) explodes when ab ~ 0."""
    if alpha_bar_T < 1e-3:
        log.warning(
            "the noise schedule leaves almost no signal at its last step (alpha_bar_T = %.2g): "
            "x_0 predictions there blow up; sample with thresholding 'clip' (the cosine "
            "schedule's screen DDPM scored 0.655 without, 0.892 with it)", alpha_bar_T)


def network_evaluations(name: str, steps: int | None, T: int, guidance_scale: float) -> int:
    """Forward passes per image: steps (T for ancestral), doubled when guidance is on."""
    _check_name(name)
    n = T if name == "ancestral" else (steps if steps is not None else DEFAULT_SAMPLING.steps)
    return n * (2 if guidance_scale != 0 else 1)


def _check_name(name: str) -> None:
    if name not in SAMPLERS:
        raise ConfigError(f"sampler {name!r} is unknown", hint=f"choose from {', '.join(SAMPLERS)}")

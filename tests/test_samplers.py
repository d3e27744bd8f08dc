"""Samplers against oracle eps-networks for Gaussian data, guidance, and per-image seeding."""

from __future__ import annotations

import math
from collections.abc import Callable

import pytest
import torch

from synthmix.diffusion.noise import PerImageNoise
from synthmix.diffusion.samplers import (
    SAMPLERS,
    guided_eps,
    network_evaluations,
    sample,
    sample_ancestral,
    sample_ddim,
    sample_dpmpp_2m,
)
from synthmix.diffusion.schedule import NoiseSchedule
from synthmix.diffusion.settings import DEFAULT_SAMPLING
from synthmix.diffusion.unet import UNet, unet_config
from synthmix.errors import ConfigError

SHAPE = (1, 8, 8)


class GaussianOracle:
    """The exact eps-network E[eps | x_t] for data x_0 ~ N(mu_y, s^2 I).

    x_t = a x_0 + b eps with a^2 = alpha_bar, b^2 = 1 - alpha_bar, so x_t ~ N(a mu, a^2 s^2 + b^2)
    and E[eps | x_t] = Cov(eps, x_t) / Var(x_t) (x_t - a mu) = b (x_t - a mu) / (a^2 s^2 + b^2).
    The null label gets `null_mu` (NaN by default, so any unwanted unconditional pass shows).
    """

    image_shape = SHAPE

    def __init__(
        self, schedule: NoiseSchedule, mus: list[float], s: float, null_mu: float = math.nan
    ):
        self.alpha_bar = schedule.alpha_bar
        self.mus = torch.tensor([*mus, null_mu], dtype=torch.float64)
        self.null_label = len(mus)
        self.s = s
        self.calls: list[int] = []

    def __call__(self, x: torch.Tensor, t: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        self.calls.append(len(x))
        ab = self.alpha_bar[t].reshape(-1, 1, 1, 1)
        mu = self.mus[y].reshape(-1, 1, 1, 1)
        eps = (1 - ab).sqrt() * (x.double() - ab.sqrt() * mu) / (ab * self.s**2 + 1 - ab)
        return eps.to(x.dtype)


def _noise(n: int, offset: int = 0) -> PerImageNoise:
    return PerImageNoise(list(range(offset, offset + n)), "cpu")


MU, S = 0.5, 0.5


@pytest.mark.parametrize(
    "name, kwargs, tol_mean, tol_std",
    [
        ("ancestral", {}, 0.03, 0.03),
        ("ddim", {"steps": 50}, 0.03, 0.03),
        ("dpmpp", {"steps": 25}, 0.03, 0.03),
    ],
)
def test_samplers_recover_gaussian_data(name: str, kwargs: dict, tol_mean: float, tol_std: float):
    # cosine: alpha_bar_T ~ 0, so x_T ~ N(0, I) is the true marginal and only the solver errs
    schedule = NoiseSchedule.cosine(400)
    oracle = GaussianOracle(schedule, [MU], S)
    labels = torch.zeros(160, dtype=torch.int64)
    x0 = SAMPLERS[name](oracle, schedule, labels, _noise(160), guidance_scale=0.0, **kwargs)
    assert x0.shape == (160, *SHAPE) and torch.isfinite(x0).all()
    # 10k values: standard errors ~0.005 (mean) and ~0.0035 (std)
    assert abs(x0.mean().item() - MU) < tol_mean
    assert abs(x0.std().item() - S) < tol_std


def test_ancestral_moments_match_algorithm_2_on_linear_schedule() -> None:
    """With T=400 linear betas alpha_bar_T = 0.018, so x_T ~ N(0, I) is slightly off; the
    output moments must equal Algorithm 2 pushed through the Gaussian exactly (scalar maths)."""
    schedule = NoiseSchedule.linear(400)
    oracle = GaussianOracle(schedule, [MU], S)
    m, v = 0.0, 1.0  # x_T ~ N(0, 1)
    for i in range(399, -1, -1):
        beta = schedule.betas[i].item()
        ab = schedule.alpha_bar[i].item()
        c = math.sqrt(1 - ab) / (ab * S**2 + 1 - ab)  # eps = c (x - sqrt(ab) mu)
        k = beta / math.sqrt(1 - ab)
        gain = (1 - k * c) / math.sqrt(1 - beta)
        m = gain * m + k * c * math.sqrt(ab) * MU / math.sqrt(1 - beta)
        v = gain**2 * v + (beta if i > 0 else 0.0)
    assert abs(m - MU) < 0.05 and abs(math.sqrt(v) - S) < 0.05  # close to the data anyway
    x0 = sample_ancestral(
        oracle, schedule, torch.zeros(160, dtype=torch.int64), _noise(160), guidance_scale=0.0
    )
    assert abs(x0.mean().item() - m) < 0.015
    assert abs(x0.std().item() - math.sqrt(v)) < 0.015


def _exact_flow(schedule: NoiseSchedule, x_T: torch.Tensor) -> torch.Tensor:
    """The probability-flow ODE solution for Gaussian data from t = T: x_0 = mu + s z_T."""
    ab = schedule.alpha_bar[-1].item()
    return MU + S * (x_T.double() - math.sqrt(ab) * MU) / math.sqrt(ab * S**2 + 1 - ab)


def test_ode_samplers_follow_the_exact_flow_and_dpmpp_is_higher_order() -> None:
    schedule = NoiseSchedule.linear(400)
    oracle = GaussianOracle(schedule, [MU], S)
    labels = torch.zeros(32, dtype=torch.int64)
    exact = _exact_flow(schedule, _noise(32).randn(SHAPE))

    def err(fn: Callable[..., torch.Tensor], steps: int) -> float:
        x0 = fn(oracle, schedule, labels, _noise(32), steps=steps, guidance_scale=0.0)
        return (x0.double() - exact).abs().max().item()

    # measured max errors over 2048 values: DDIM 0.29/0.12/0.061, DPM++ 0.13/0.0022 (10/25/50)
    ddim_10, ddim_50 = err(sample_ddim, 10), err(sample_ddim, 50)
    assert ddim_50 < 0.1 and ddim_50 < 0.6 * ddim_10  # first order: error ~ 1/steps
    assert err(sample_dpmpp_2m, 25) < 0.01
    assert err(sample_dpmpp_2m, 10) < ddim_10 / 2
    assert err(sample_dpmpp_2m, 400) < 1e-3
    from_view = sample_dpmpp_2m(
        oracle, schedule.to("cpu"), labels, _noise(32), steps=25, guidance_scale=0.0
    )  # a float32 view of the schedule samples exactly like the float64 master
    master = sample_dpmpp_2m(oracle, schedule, labels, _noise(32), steps=25, guidance_scale=0.0)
    torch.testing.assert_close(from_view, master, atol=0, rtol=0)


def test_ddim_with_eta_1_and_all_steps_is_ancestral_with_beta_tilde() -> None:
    schedule = NoiseSchedule.linear(50)
    oracle = GaussianOracle(schedule, [MU], S)
    labels = torch.zeros(8, dtype=torch.int64)
    ddim = sample_ddim(oracle, schedule, labels, _noise(8), steps=50, eta=1.0, guidance_scale=0)
    anc = sample_ancestral(
        oracle, schedule, labels, _noise(8), variance="beta_tilde", guidance_scale=0.0
    )
    torch.testing.assert_close(ddim, anc, atol=1e-4, rtol=1e-4)
    beta = sample_ancestral(oracle, schedule, labels, _noise(8), guidance_scale=0.0)
    assert not torch.allclose(anc, beta)


def test_ancestral_clip_x0_is_the_posterior_mean_of_the_clipped_prediction() -> None:
    schedule = NoiseSchedule.linear(50)
    labels = torch.zeros(8, dtype=torch.int64)
    narrow = GaussianOracle(schedule, [0.0], 0.1)  # x_0 predictions stay far inside [-1, 1]
    plain = sample_ancestral(narrow, schedule, labels, _noise(8), guidance_scale=0.0)
    clipped = sample_ancestral(
        narrow, schedule, labels, _noise(8), guidance_scale=0.0, thresholding="clip"
    )
    torch.testing.assert_close(clipped, plain, atol=1e-4, rtol=1e-4)
    wide = GaussianOracle(schedule, [0.0], 3.0)  # here clipping must bite
    wide_plain = sample_ancestral(wide, schedule, labels, _noise(8), guidance_scale=0.0)
    wide_clip = sample_ancestral(
        wide, schedule, labels, _noise(8), guidance_scale=0.0, thresholding="clip"
    )
    assert wide_plain.abs().max() > 1.5
    assert wide_clip.abs().max() <= 1.0 + 1e-6  # the last step returns the clipped x_0 itself


def test_guidance_scale_zero_is_the_conditional_oracle() -> None:
    schedule = NoiseSchedule.cosine(100)
    mus = [-0.6, 0.0, 0.6]
    cond = GaussianOracle(schedule, mus, 0.2)  # null label -> NaN: must never be evaluated
    labels = torch.tensor([0, 1, 2] * 20)
    x0 = sample("ddim", cond, schedule, labels, _noise(60), steps=20, guidance_scale=0.0)
    assert torch.isfinite(x0).all() and set(cond.calls) == {60}  # one unbatched pass per step
    for k, mu in enumerate(mus):
        alone = GaussianOracle(schedule, [mu], 0.2)
        seeds = list(range(k, 60, 3))
        ref = sample(
            "ddim", alone, schedule, torch.zeros(20, dtype=torch.int64),
            PerImageNoise(seeds, "cpu"), steps=20, guidance_scale=0.0,
        )  # fmt: skip
        torch.testing.assert_close(x0[k::3], ref)
        assert abs(x0[k::3].mean().item() - mu) < 0.03
    guided = sample("ddim", cond, schedule, labels, _noise(60), steps=5, guidance_scale=1.0)
    assert torch.isnan(guided).all()  # w > 0 does use the null label


def test_guided_eps_formula_with_oracle() -> None:
    schedule = NoiseSchedule.linear(100)
    oracle = GaussianOracle(schedule, [0.8, -0.8], 0.3, null_mu=0.0)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(6, *SHAPE, generator=g)
    t = torch.randint(0, 100, (6,), generator=g)
    y = torch.tensor([0, 1, 0, 1, 1, 0])
    got = guided_eps(oracle, x, t, y, 3.0, oracle.null_label)
    assert oracle.calls == [12]  # one batched forward for both passes
    e_c, e_u = oracle(x, t, y), oracle(x, t, torch.full_like(y, 2))
    torch.testing.assert_close(got, 4.0 * e_c - 3.0 * e_u)


def _tiny_unet(seed: int = 0) -> UNet:
    model = UNet(unet_config("tiny", image_size=16, num_classes=4))
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=g))
    return model.eval()


def test_batched_guidance_equals_two_separate_passes() -> None:
    model = _tiny_unet()
    g = torch.Generator().manual_seed(1)
    x = torch.randn(5, 1, 16, 16, generator=g)
    t = torch.randint(0, 400, (5,), generator=g)
    y = torch.tensor([0, 1, 2, 3, 0])
    null = torch.full_like(y, model.null_label)
    with torch.no_grad():
        e_c, e_u = model(x, t, y), model(x, t, null)
        got = guided_eps(model, x, t, y, 3.0, model.null_label)
        assert not torch.allclose(e_c, e_u, atol=1e-3)  # the label matters, so the test can fail
        torch.testing.assert_close(got, 4.0 * e_c - 3.0 * e_u, atol=1e-5, rtol=1e-4)
        torch.testing.assert_close(guided_eps(model, x, t, y, 0.0, model.null_label), e_c)


@pytest.mark.parametrize(
    "name, kwargs",
    [("ancestral", {}), ("ddim", {"steps": 4, "eta": 0.5}), ("dpmpp", {"steps": 4})],
)
def test_same_seed_same_image_whatever_the_batch(name: str, kwargs: dict) -> None:
    model, schedule = _tiny_unet(), NoiseSchedule.linear(5)
    seeds = [11, 22, 33, 44, 55, 66, 77, 88]
    labels = torch.tensor([0, 1, 2, 3, 0, 1, 2, 3])

    def run(idx: list[int]) -> torch.Tensor:
        noise = PerImageNoise([seeds[i] for i in idx], "cpu")
        return sample(name, model, schedule, labels[idx], noise, guidance_scale=2.0, **kwargs)

    full = run(list(range(8)))
    by3 = torch.cat([run([0, 1, 2]), run([3, 4, 5]), run([6, 7])])
    by1 = torch.cat([run([i]) for i in range(8)])
    torch.testing.assert_close(by3, full, atol=1e-5, rtol=0)
    torch.testing.assert_close(by1, full, atol=1e-5, rtol=0)
    assert full.shape == (8, 1, 16, 16) and full.abs().max() <= 1.0
    other = sample(name, model, schedule, labels, PerImageNoise([s + 1 for s in seeds], "cpu"),
                   guidance_scale=2.0, **kwargs)  # fmt: skip
    assert (other - full).abs().amax(dim=(1, 2, 3)).min() > 1e-3  # every image changed


def test_per_image_noise() -> None:
    a = PerImageNoise(torch.tensor([3, 4]), "cpu")
    b = PerImageNoise([4], "cpu")
    first = a.randn((2, 3))
    assert first.shape == (2, 2, 3) and len(a) == 2
    torch.testing.assert_close(first[1], b.randn([2, 3])[0])
    assert not torch.equal(first, a.randn((2, 3)))  # the stream advances


def test_network_evaluations() -> None:
    assert network_evaluations("ancestral", None, 400, 3.0) == 800
    assert network_evaluations("ancestral", 50, 1000, 0.0) == 1000
    assert network_evaluations("ddim", 50, 400, 3.0) == 100
    assert network_evaluations("ddim", None, 400, 0.0) == DEFAULT_SAMPLING.steps
    assert network_evaluations("dpmpp", None, 400, 1.0) == 2 * DEFAULT_SAMPLING.steps
    with pytest.raises(ConfigError):
        network_evaluations("euler", 10, 400, 0.0)


def test_network_evaluations_counts_real_calls() -> None:
    schedule = NoiseSchedule.linear(30)
    oracle = GaussianOracle(schedule, [0.0, 0.5], 0.5, null_mu=0.0)
    labels = torch.tensor([0, 1, 1])
    for name, steps in [("ancestral", None), ("ddim", 7), ("dpmpp", 5)]:
        for w in (0.0, 2.0):
            oracle.calls.clear()
            sample(name, oracle, schedule, labels, _noise(3), steps=steps, guidance_scale=w)
            assert sum(oracle.calls) / 3 == network_evaluations(name, steps, 30, w)


def test_sample_validates_and_runs_in_inference_mode() -> None:
    schedule = NoiseSchedule.linear(20)
    oracle = GaussianOracle(schedule, [0.0], 0.5)
    labels = torch.zeros(2, dtype=torch.int64)
    out = sample("dpmpp", oracle, schedule, labels, _noise(2), steps=4, guidance_scale=0.0,
                 progress=True)  # fmt: skip
    assert not out.is_inference()  # callers may modify it in place
    out.mul_(0.5)
    raw = sample_dpmpp_2m(oracle, schedule, labels, _noise(2), steps=4, guidance_scale=0.0)
    assert raw.is_inference()
    with pytest.raises(ConfigError):
        sample("euler", oracle, schedule, labels, _noise(2), guidance_scale=0.0)
    with pytest.raises(ConfigError):
        sample("dpmpp", oracle, schedule, labels, _noise(2), guidance_scale=0.0, eta=1.0)
    with pytest.raises(ConfigError):
        sample("ddim", oracle, schedule, labels, _noise(2), steps=21, guidance_scale=0.0)
    with pytest.raises(ConfigError):
        sample("ddim", oracle, schedule, labels, _noise(3), steps=5, guidance_scale=0.0)


def test_threshold_x0_clip_and_dynamic_values() -> None:
    from synthmix.diffusion.samplers import threshold_x0

    x = torch.tensor([[[[0.5, -3.0, 2.0, 0.0]]], [[[0.1, -0.2, 0.3, 0.9]]]])  # (2, 1, 1, 4)
    assert torch.equal(threshold_x0(x, "none", 0.995), x)
    assert torch.equal(threshold_x0(x, "clip", 0.995), x.clamp(-1, 1))
    dyn = threshold_x0(x, "dynamic", 0.5)
    # Image 0: s = the median of |x| = (0.5 + 2) / 2 = 1.25 -> clip to [-1.25, 1.25], / 1.25.
    torch.testing.assert_close(dyn[0], torch.tensor([[[0.4, -1.0, 1.0, 0.0]]]))
    assert torch.equal(dyn[1], x[1])  # already inside [-1, 1]: s = 1, unchanged
    with pytest.raises(ConfigError):
        threshold_x0(x, "soft", 0.9)  # type: ignore[arg-type]


@pytest.mark.parametrize("name", ["ancestral", "ddim", "dpmpp"])
@pytest.mark.parametrize("mode", ["clip", "dynamic"])
def test_thresholding_keeps_every_sampler_in_range(name: str, mode: str) -> None:
    schedule = NoiseSchedule.linear(20)
    wild = GaussianOracle(schedule, [0.0], 4.0)  # data far outside [-1, 1]
    labels = torch.zeros(6, dtype=torch.int64)
    kwargs = {} if name == "ancestral" else {"steps": 5}
    raw = SAMPLERS[name](wild, schedule, labels, _noise(6), guidance_scale=0.0, **kwargs)
    assert raw.abs().max() > 1.5  # without thresholding the samples leave the range
    kept = SAMPLERS[name](wild, schedule, labels, _noise(6), guidance_scale=0.0,
                          thresholding=mode, thresholding_percentile=0.9, **kwargs)
    assert kept.abs().max() <= 1.0 + 1e-5  # the last step returns the thresholded x_0


def test_a_schedule_without_terminal_signal_warns_once_without_thresholding(caplog) -> None:
    from synthmix.diffusion import samplers

    samplers._warn_if_terminal_signal_vanishes.cache_clear()
    schedule = NoiseSchedule.cosine(30)  # alpha_bar_T ~ 1e-6: x_0 predictions blow up there
    oracle = GaussianOracle(schedule, [0.0], 0.5)
    labels = torch.zeros(2, dtype=torch.int64)
    for mode in ("none", "none", "clip"):
        sample("ddim", oracle, schedule, labels, _noise(2), steps=3, guidance_scale=0.0,
               thresholding=mode)
    assert sum("almost no signal" in r.message for r in caplog.records) == 1
    samplers._warn_if_terminal_signal_vanishes.cache_clear()
    sample("ddim", oracle, NoiseSchedule.linear(30), labels, _noise(2), steps=3,
           guidance_scale=0.0)
    assert sum("almost no signal" in r.message for r in caplog.records) == 1

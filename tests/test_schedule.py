"""NoiseSchedule: invariants, closed forms, and the forward/posterior maths in float64."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from synthmix.diffusion.schedule import NoiseSchedule, ScheduleConfig
from synthmix.errors import ConfigError


@settings(max_examples=30, deadline=None)
@given(
    T=st.integers(min_value=2, max_value=2000),
    beta_start=st.floats(min_value=1e-6, max_value=1e-2),
    span=st.floats(min_value=0.0, max_value=0.5),
)
def test_linear_schedule_invariants(T: int, beta_start: float, span: float) -> None:
    beta_end = beta_start + span
    s = NoiseSchedule.linear(T, beta_start, beta_end)
    assert s.T == T and s.betas.dtype == torch.float64 and s.betas.shape == (T,)
    assert math.isclose(s.betas[0].item(), beta_start, rel_tol=1e-12)
    assert math.isclose(s.betas[-1].item(), beta_end, rel_tol=1e-12)
    assert bool((s.betas[1:] >= s.betas[:-1]).all())
    _check_common_invariants(s)


@settings(max_examples=25, deadline=None)
@given(T=st.integers(min_value=2, max_value=2000), cos_s=st.floats(min_value=1e-4, max_value=0.1))
def test_cosine_schedule_matches_closed_form(T: int, cos_s: float) -> None:
    s = NoiseSchedule.cosine(T, cos_s)
    _check_common_invariants(s)
    assert float(s.betas.max()) <= 0.999 + 1e-15

    def f(t: float) -> float:
        return math.cos((t / T + cos_s) / (1 + cos_s) * math.pi / 2) ** 2

    unclipped = int((s.betas < 0.999).sum())  # clipping only touches the last steps
    for i in {0, T // 2, unclipped - 1} & set(range(unclipped)):  # index i is paper's t = i+1
        assert math.isclose(s.alpha_bar[i].item(), f(i + 1) / f(0), rel_tol=1e-9)


def _check_common_invariants(s: NoiseSchedule) -> None:
    assert bool(((s.betas > 0) & (s.betas < 1)).all())
    assert bool(((s.alpha_bar > 0) & (s.alpha_bar < 1)).all())
    assert bool((s.alpha_bar[1:] < s.alpha_bar[:-1]).all())  # strictly decreasing
    torch.testing.assert_close(s.alpha_bar, torch.cumprod(1 - s.betas, 0), rtol=1e-12, atol=0)
    assert s.alpha_bar_prev[0].item() == 1.0
    torch.testing.assert_close(s.alpha_bar_prev[1:], s.alpha_bar[:-1])
    # beta_tilde <= beta, and beta_tilde = 0 at the first step (x_0 is known there)
    assert s.posterior_variance[0].item() == 0.0
    assert bool((s.posterior_variance <= s.betas * (1 + 1e-12)).all())


def test_study_default_config() -> None:
    s = NoiseSchedule.from_config(ScheduleConfig())
    assert s.T == 400
    assert math.isclose(s.betas[0].item(), 1e-4) and math.isclose(s.betas[-1].item(), 0.02)
    assert NoiseSchedule.from_config(ScheduleConfig(kind="cosine", T=1000)).T == 1000


@pytest.mark.parametrize(
    "kwargs",
    [{"T": 0}, {"beta_start": 0.0}, {"beta_start": 0.03, "beta_end": 0.02}, {"beta_end": 1.0}],
)
def test_invalid_config_raises(kwargs: dict[str, float]) -> None:
    with pytest.raises(ConfigError):
        NoiseSchedule.from_config(ScheduleConfig(**kwargs))


def test_to_device_is_cached_float32_view() -> None:
    s = NoiseSchedule.linear(50)
    v = s.to("cpu")
    assert v is s.to("cpu") and v is s.to(torch.device("cpu")).to("cpu")
    assert v.alpha_bar.dtype == torch.float32 and s.alpha_bar.dtype == torch.float64
    torch.testing.assert_close(v.alpha_bar, s.alpha_bar.float())
    assert s.to("cpu", torch.float64) is s


def test_q_sample_moments() -> None:
    s = NoiseSchedule.linear(400)
    g = torch.Generator().manual_seed(0)
    n = 200_000
    x0 = torch.full((n, 1, 1, 1), 0.7, dtype=torch.float64)
    for i in (0, 99, 399):
        t = torch.full((n,), i, dtype=torch.int64)
        x_t = s.q_sample(x0, t, torch.randn(x0.shape, generator=g, dtype=torch.float64))
        ab = s.alpha_bar[i].item()
        se = math.sqrt((1 - ab) / n)
        assert abs(x_t.mean().item() - math.sqrt(ab) * 0.7) < 5 * se
        assert abs(x_t.var().item() - (1 - ab)) < 5 * (1 - ab) * math.sqrt(2 / n)


def test_q_sample_broadcasts_per_sample_and_keeps_float32() -> None:
    s = NoiseSchedule.linear(10)
    x0 = torch.ones(3, 2, 4, 4)
    eps = torch.zeros_like(x0)
    t = torch.tensor([0, 5, 9])
    x_t = s.q_sample(x0, t, eps)
    assert x_t.dtype == torch.float32
    for b in range(3):
        expect = math.sqrt(s.alpha_bar[t[b]].item())
        torch.testing.assert_close(x_t[b], torch.full((2, 4, 4), expect))


def test_predict_x0_inverts_q_sample() -> None:
    s = NoiseSchedule.cosine(100)
    g = torch.Generator().manual_seed(1)
    x0 = torch.randn(16, 3, 8, 8, generator=g, dtype=torch.float64)
    eps = torch.randn(x0.shape, generator=g, dtype=torch.float64)
    t = torch.randint(0, 90, (16,), generator=g)  # the last cosine steps have alpha_bar ~ 0
    torch.testing.assert_close(s.predict_x0(s.q_sample(x0, t, eps), t, eps), x0)


def test_posterior_matches_gaussian_conditioning() -> None:
    """q(x_{t-1} | x_t, x_0) from the joint Gaussian of (x_{t-1}, x_t) given x_0, in float64."""
    s = NoiseSchedule.linear(400)
    g = torch.Generator().manual_seed(2)
    t = torch.tensor([0, 1, 57, 200, 399])
    x0 = torch.randn(5, 1, 2, 2, generator=g, dtype=torch.float64)
    x_t = torch.randn(5, 1, 2, 2, generator=g, dtype=torch.float64)
    for b, i in enumerate(t.tolist()):
        beta = s.betas[i].item()
        ab_prev = math.prod(1 - s.betas[j].item() for j in range(i))
        ab = ab_prev * (1 - beta)
        # x_{t-1}|x0 ~ N(sqrt(ab_prev) x0, 1-ab_prev); x_t|x_{t-1} ~ N(sqrt(1-beta) x_{t-1}, beta)
        cov = math.sqrt(1 - beta) * (1 - ab_prev)
        var_t = 1 - ab
        mean = math.sqrt(ab_prev) * x0[b] + cov / var_t * (x_t[b] - math.sqrt(ab) * x0[b])
        var = (1 - ab_prev) - cov**2 / var_t
        got = s.posterior_mean(x0, x_t, t)[b]
        torch.testing.assert_close(got, mean, rtol=1e-10, atol=1e-12)
        tilde = s.posterior_variance_at(t, "beta_tilde", dtype=torch.float64)[b].item()
        assert math.isclose(tilde, var, rel_tol=1e-9, abs_tol=1e-15)
    beta_var = s.posterior_variance_at(t, "beta")
    assert beta_var.shape == (5, 1, 1, 1) and beta_var.dtype == torch.float32
    torch.testing.assert_close(beta_var.flatten(), s.betas[t].float())
    with pytest.raises(ConfigError):
        s.posterior_variance_at(t, "sigma")

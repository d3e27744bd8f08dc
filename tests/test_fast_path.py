"""The fast path computes what the plain path computes.

channels_last vs contiguous U-Net (forward, and one training step's loss and gradients), and the
inference-mode samplers (batched guidance, precomputed float32 coefficient tables) vs plain
loops written here straight from the papers: float64 scalar maths, separate conditional and
unconditional passes. torch.compile is exercised once, on the tiny U-Net's sampling (compiling
the training step takes minutes and gained nothing on the CPU: README.md, Performance).
"""

from __future__ import annotations

import copy
import math

import pytest
import torch

from synthmix.diffusion.loss import ddpm_loss
from synthmix.diffusion.noise import PerImageNoise
from synthmix.diffusion.samplers import sample
from synthmix.diffusion.schedule import NoiseSchedule
from synthmix.diffusion.unet import UNet, unet_config

CL = torch.channels_last
W = 3.0  # guidance scale of the study
SEEDS = [5, 6, 7, 8]
LABELS = torch.tensor([0, 1, 2, 3])


def _unet(in_channels: int = 1, dropout: float = 0.1, seed: int = 0) -> UNet:
    model = UNet(
        unet_config("tiny", in_channels=in_channels, image_size=16, num_classes=4, dropout=dropout)
    )
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():  # away from the zero-initialised output conv, so eps is not 0
        for p in model.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=g))
    return model.eval()


def _close(got: torch.Tensor, want: torch.Tensor, rtol: float = 1e-4) -> None:
    torch.testing.assert_close(got, want, rtol=rtol, atol=rtol * float(want.abs().max()))


def test_channels_last_forward_equals_contiguous() -> None:
    plain = _unet(in_channels=3)
    fast = copy.deepcopy(plain).to(memory_format=CL)  # type: ignore[call-overload]
    g = torch.Generator().manual_seed(1)
    x = torch.randn(4, 3, 16, 16, generator=g)  # (B, C, H, W)
    t = torch.randint(0, 400, (4,), generator=g)
    with torch.no_grad():
        want = plain(x, t, LABELS)
        got = fast(x.contiguous(memory_format=CL), t, LABELS)
    assert got.is_contiguous(memory_format=CL) and not want.is_contiguous(memory_format=CL)
    assert want.abs().mean() > 1e-2  # a real output, not the zero-initialised network
    _close(got, want)


def test_channels_last_training_step_equals_contiguous() -> None:
    plain = _unet(in_channels=3, dropout=0.0).train()  # dropout masks follow memory layout
    fast = copy.deepcopy(plain).to(memory_format=CL)  # type: ignore[call-overload]
    schedule = NoiseSchedule.linear(400)
    x0 = torch.rand(4, 3, 16, 16, generator=torch.Generator().manual_seed(2)) * 2 - 1
    losses = []
    for model, x in [(plain, x0), (fast, x0.contiguous(memory_format=CL))]:
        g = torch.Generator().manual_seed(3)  # same t, eps and label dropout for both
        loss = ddpm_loss(model, schedule, x, LABELS, p_uncond=0.5, rng=g)
        loss.backward()
        losses.append(loss.detach())
    _close(losses[1], losses[0])
    grads = [(n, p.grad, q.grad) for (n, p), q in zip(plain.named_parameters(), fast.parameters())]
    # Biases right before a one-channel-per-group GroupNorm have a true gradient of 0, so their
    # computed ~1e-9 is rounding noise: the absolute tolerance is relative to the largest grad.
    atol = 1e-5 * max(float(g.abs().max()) for _, g, _ in grads if g is not None)
    for name, g_plain, g_fast in grads:
        assert g_plain is not None and g_fast is not None, name
        torch.testing.assert_close(g_fast, g_plain, rtol=1e-4, atol=atol, msg=name)
    assert plain.in_conv.weight.grad is not None and plain.in_conv.weight.grad.abs().sum() > 0


def _guided(model: UNet, x: torch.Tensor, t_index: int, w: float) -> torch.Tensor:
    """eps_hat = (1 + w) eps(x, y) - w eps(x, null), as two separate passes (float64)."""
    t = torch.full((len(x),), t_index, dtype=torch.int64)
    null = torch.full_like(LABELS, model.null_label)
    with torch.no_grad():
        e_c = model(x.float(), t, LABELS).double()
        e_u = model(x.float(), t, null).double()
    return (1 + w) * e_c - w * e_u


def _reference_ddim(
    model: UNet, ab: list[float], taus: list[int], eta: float, w: float
) -> torch.Tensor:
    noise = PerImageNoise(SEEDS, "cpu")
    x = noise.randn((1, 16, 16)).double()  # x_T
    for i, tau in enumerate(taus):
        a = ab[tau]
        a_prev = ab[taus[i + 1]] if i + 1 < len(taus) else 1.0
        eps = _guided(model, x, tau, w)
        x0 = (x - math.sqrt(1 - a) * eps) / math.sqrt(a)
        sigma = eta * math.sqrt((1 - a_prev) / (1 - a)) * math.sqrt(1 - a / a_prev)  # eq. 16
        # Song et al. 2021 eq. 12
        x = math.sqrt(a_prev) * x0 + math.sqrt(1 - a_prev - sigma**2) * eps
        if sigma > 0:
            x = x + sigma * noise.randn((1, 16, 16)).double()
    return x


# T = 12, 3 steps, "trailing" spacing: 0-based indices 12 - 4k - 1.
T, STEPS, TAUS = 12, 3, [11, 7, 3]


@pytest.mark.parametrize("eta", [0.0, 0.5])
def test_ddim_equals_plain_song_eq_12_loop(eta: float) -> None:
    model, schedule = _unet(), NoiseSchedule.linear(T, 1e-3, 0.2)
    ab = schedule.alpha_bar.tolist()
    want = _reference_ddim(model, ab, TAUS, eta, W)
    got = sample(
        "ddim",
        model,
        schedule,
        LABELS,
        PerImageNoise(SEEDS, "cpu"),
        steps=STEPS,
        eta=eta,
        guidance_scale=W,
    )
    _close(got.double(), want.clamp(-1, 1))
    assert (got.double() - want.clamp(-1, 1)).abs().max() < 1e-4
    other = _reference_ddim(model, ab, TAUS, eta, W - 1.0).clamp(-1, 1)
    assert (other - want.clamp(-1, 1)).abs().max() > 1e-2  # the comparison can tell w apart


def _reference_dpmpp_2m(model: UNet, ab: list[float], taus: list[int], w: float) -> torch.Tensor:
    """Lu et al. 2022 (DPM-Solver++) Algorithm 2, multistep second order, in lambda."""
    x = PerImageNoise(SEEDS, "cpu").randn((1, 16, 16)).double()
    alpha = [math.sqrt(ab[t]) for t in taus]
    sigma = [math.sqrt(1 - ab[t]) for t in taus]
    lam = [math.log(a / s) for a, s in zip(alpha, sigma)]
    x0_prev, h_prev = None, None
    for i, tau in enumerate(taus):
        x0 = (x - sigma[i] * _guided(model, x, tau, w)) / alpha[i]  # data prediction
        if i + 1 == len(taus):
            return x0  # the last step lands on sigma = 0, where x equals the prediction
        h = lam[i + 1] - lam[i]
        if x0_prev is None or h_prev is None:
            d = x0
        else:
            r = h_prev / h
            d = (1 + 1 / (2 * r)) * x0 - 1 / (2 * r) * x0_prev
        x = sigma[i + 1] / sigma[i] * x - alpha[i + 1] * (math.exp(-h) - 1) * d
        x0_prev, h_prev = x0, h
    raise AssertionError("unreachable")


def test_dpmpp_equals_plain_algorithm_2_loop() -> None:
    model, schedule = _unet(seed=1), NoiseSchedule.linear(T, 1e-3, 0.2)
    taus = [11, 8, 5, 2]  # 4 trailing steps of 12: 12 - 3k - 1
    want = _reference_dpmpp_2m(model, schedule.alpha_bar.tolist(), taus, W).clamp(-1, 1)
    got = sample(
        "dpmpp", model, schedule, LABELS, PerImageNoise(SEEDS, "cpu"), steps=4, guidance_scale=W
    )
    assert (got.double() - want).abs().max() < 1e-4
    assert want.abs().mean() > 0.05 and (want.abs() < 1).any()  # not all clamped


def test_ancestral_equals_plain_algorithm_2_loop() -> None:
    model, schedule = _unet(seed=2), NoiseSchedule.linear(6, 1e-3, 0.2)
    noise = PerImageNoise(SEEDS, "cpu")
    x = noise.randn((1, 16, 16)).double()
    for i in range(5, -1, -1):  # Ho et al. 2020 Algorithm 2, sigma_t^2 = beta_t
        beta, ab = schedule.betas[i].item(), schedule.alpha_bar[i].item()
        eps = _guided(model, x, i, W)
        x = (x - beta / math.sqrt(1 - ab) * eps) / math.sqrt(1 - beta)
        if i > 0:
            x = x + math.sqrt(beta) * noise.randn((1, 16, 16)).double()
    got = sample(
        "ancestral", model, schedule, LABELS, PerImageNoise(SEEDS, "cpu"), guidance_scale=W
    )
    assert (got.double() - x.clamp(-1, 1)).abs().max() < 1e-4


@pytest.mark.parametrize("name", ["ancestral", "ddim", "dpmpp"])
def test_sampling_with_channels_last_model_equals_plain(name: str) -> None:
    plain = _unet(in_channels=3, seed=3)
    fast = copy.deepcopy(plain).to(memory_format=CL)  # type: ignore[call-overload]
    schedule = NoiseSchedule.linear(T, 1e-3, 0.2)
    out = [
        sample(
            name,
            m,
            schedule,
            LABELS,
            PerImageNoise(SEEDS, "cpu"),
            steps=None if name == "ancestral" else 4,
            guidance_scale=W,
        )
        for m in (plain, fast)
    ]
    assert (out[0] - out[1]).abs().max() < 1e-4
    assert out[0].std() > 0.05


def test_fixed_batch_padding_changes_no_image(monkeypatch: pytest.MonkeyPatch) -> None:
    # The padding of FixedBatchEps, with torch.compile replaced by the identity (the real one
    # is the next test): a short last batch padded to the compiled rows gives the same images.
    from synthmix.diffusion import compiled

    monkeypatch.setattr(compiled.torch, "compile", lambda model, **kw: model)
    model, schedule = _unet(), NoiseSchedule.linear(T, 1e-3, 0.2)
    padded = compiled.compile_for_sampling(model, batch_size=7)
    assert padded.rows == 14 and padded.image_shape == model.image_shape
    for name in ("ddim", "ancestral"):
        kw = {"steps": 5} if name == "ddim" else {}
        want = sample(name, model, schedule, LABELS, PerImageNoise(SEEDS, "cpu"), **kw)
        got = sample(name, padded, schedule, LABELS, PerImageNoise(SEEDS, "cpu"), **kw)
        _close(got, want, rtol=1e-5)


@pytest.mark.slow
def test_compiled_sampling_equals_eager() -> None:
    # The real torch.compile (inductor, generating C++ on the CPU), on the tiny U-Net.
    from synthmix.diffusion.compiled import compile_for_sampling

    # One level at 8x8 with its attention: the same kinds of layers as the tiny preset in a
    # smaller graph, which inductor compiles in 2/3 of the time (53 s against 79 s cold, 2 cores).
    model = UNet(unet_config("tiny", in_channels=1, image_size=8, num_classes=4, dropout=0.1,
                             channel_mults=(1,), attention_resolutions=(8,))).eval()
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():  # away from the zero-initialised output conv, so eps is not 0
        for p in model.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=g))
    schedule = NoiseSchedule.linear(T, 1e-3, 0.2)
    fast = compile_for_sampling(model, batch_size=len(SEEDS))
    want = sample("ddim", model, schedule, LABELS, PerImageNoise(SEEDS, "cpu"), steps=5)
    got = sample("ddim", fast, schedule, LABELS, PerImageNoise(SEEDS, "cpu"), steps=5)
    _close(got, want, rtol=1e-4)

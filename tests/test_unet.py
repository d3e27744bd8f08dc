"""UNet: shapes, presets, conditioning inputs, channels_last, zero-initialised output."""

from __future__ import annotations

import pytest
import torch

from synthmix.diffusion.unet import UNET_PRESETS, UNet, UNetConfig, unet_config
from synthmix.errors import ConfigError


def randomize(model: UNet, seed: int = 0) -> UNet:
    """Give every parameter small random values so the output depends on all inputs."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=g))
    return model


def _inputs(cfg: UNetConfig, batch: int, seed: int = 0) -> tuple[torch.Tensor, ...]:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, cfg.in_channels, cfg.image_size, cfg.image_size, generator=g)
    t = torch.randint(0, 400, (batch,), generator=g)
    y = torch.randint(0, cfg.num_classes + 1, (batch,), generator=g)  # includes the null label
    return x, t, y


@pytest.mark.parametrize(
    "preset, overrides",
    [
        ("tiny", {"image_size": 16}),
        ("tiny", {"image_size": 32, "in_channels": 3, "downsample": "conv"}),
        ("tiny", {"image_size": 16, "upsample": "nearest", "num_classes": 3}),
        ("cpu", {"image_size": 16, "base_channels": 16}),
        ("cpu", {"image_size": 28, "base_channels": 16}),
    ],
)
def test_output_shape_and_channels_last(preset: str, overrides: dict) -> None:
    cfg = unet_config(preset, **overrides)
    model = randomize(UNet(cfg)).eval()
    x, t, y = _inputs(cfg, 3)
    assert model.null_label == cfg.num_classes and int(y.max()) <= model.null_label
    with torch.no_grad():
        out = model(x, t, y)
        out_cl = model.to(memory_format=torch.channels_last)(
            x.to(memory_format=torch.channels_last), t, y
        )
    assert out.shape == x.shape and torch.isfinite(out).all()
    assert out.abs().mean() > 1e-3  # randomized: not the zero-init output
    torch.testing.assert_close(out_cl, out, atol=1e-4, rtol=1e-4)
    assert model.image_shape == (cfg.in_channels, cfg.image_size, cfg.image_size)


def test_untrained_output_is_zero_and_conditioning_matters() -> None:
    cfg = unet_config("tiny", image_size=16)
    x, t, y = _inputs(cfg, 2)
    with torch.no_grad():
        assert UNet(cfg)(x, t, y).abs().max() == 0  # zero-initialised last conv
        model = randomize(UNet(cfg)).eval()
        base = model(x, t, y)
        assert not torch.allclose(model(x, t + 7, y), base, atol=1e-5)
        assert not torch.allclose(model(x, t, torch.full_like(y, model.null_label)), base)


def test_gradients_reach_every_parameter() -> None:
    cfg = unet_config("tiny", image_size=16, dropout=0.0)
    model = randomize(UNet(cfg))
    x, t, y = _inputs(cfg, 2)
    model(x, t, y).square().mean().backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or p.grad.abs().sum() == 0]
    assert missing == []


def test_presets() -> None:
    assert set(UNET_PRESETS) >= {"paper", "cpu", "cpu-wide", "tiny"}
    paper = unet_config("paper")
    assert paper == UNetConfig()
    assert paper.channel_mults == (1, 2, 4, 8) and paper.base_channels == 64
    assert paper.downsample == "pool" and paper.upsample == "transpose"
    assert unet_config("cpu", image_size=16).attention_resolutions == (8,)
    assert unet_config("cpu").attention_resolutions == (16,)
    assert unet_config("cpu", attention_resolutions=[8]).attention_resolutions == (8,)
    n_cpu = sum(p.numel() for p in UNet(unet_config("cpu")).parameters())
    assert 0.9e6 < n_cpu < 1.5e6


def test_paper_preset_builds_and_runs() -> None:
    model = UNet(unet_config("paper")).eval()
    n = sum(p.numel() for p in model.parameters())
    assert 20e6 < n < 100e6
    x, t, y = _inputs(model.cfg, 1)
    with torch.no_grad():
        assert model(x, t, y).shape == (1, 1, 32, 32)


@pytest.mark.parametrize(
    "overrides",
    [
        {"image_size": 28},  # 4 levels need a multiple of 8
        {"attention_resolutions": (12,)},
        {"num_heads": 3},
        {"bogus": 1},
        {"downsample": "max"},
    ],
)
def test_invalid_configs_raise(overrides: dict) -> None:
    with pytest.raises(ConfigError):
        UNet(unet_config(None, **overrides))


def test_unknown_preset_raises() -> None:
    with pytest.raises(ConfigError, match="tiny"):
        unet_config("huge")

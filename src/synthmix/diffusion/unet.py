"""The eps-network: a class-conditional U-Net mapping (x_t, t, y) to the predicted noise.

Layout (Ho et al. 2020, as the study describes it): an input conv; per level `num_res_blocks`
ResNet blocks (self-attention after each block at `attention_resolutions`) then a 2x
down-sampling; a middle block (ResBlock, attention, ResBlock); the mirror image going up, where
each block takes the matching skip activation concatenated along channels; GroupNorm, SiLU and a
zero-initialised output conv, so the untrained network predicts eps = 0.

Conditioning: sinusoidal embedding of the 0-based timestep index -> MLP, plus a learned label
embedding with `num_classes + 1` rows (the last row is `null_label`, the "no label" input of
classifier-free guidance). ResNet blocks take the sum through a scale-shift (FiLM) of their
second GroupNorm: h = GN(h) * (1 + scale) + shift (improved-diffusion's use_scale_shift_norm).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import nn

from synthmix.config import from_dict
from synthmix.errors import ConfigError
from synthmix.seeding import StepDropout


@dataclass(frozen=True)
class UNetConfig:
    """The eps-network; the defaults are the study's (the "paper" preset)."""

    in_channels: int = 1
    image_size: int = 32
    num_classes: int = 10
    base_channels: int = 64
    channel_mults: tuple[int, ...] = (1, 2, 4, 8)  # 64, 128, 256, 512 channels
    num_res_blocks: int = 2
    # Resolutions in pixels that get self-attention. The study says only "self-attention";
    # 16 and 8 at 32x32 (the two middle levels, plus the 4x4 middle block) follow DDPM's
    # attention at 16x16 and add the next level, where attention over 64 tokens is cheap.
    attention_resolutions: tuple[int, ...] = (16, 8)
    dropout: float = 0.1
    num_heads: int = 4
    time_embed_mult: int = 4
    downsample: Literal["pool", "conv"] = "pool"
    upsample: Literal["transpose", "nearest"] = "transpose"
    num_groups: int = 32


# Presets state attention resolutions for a 32x32 input; `unet_config` scales them with the
# image size so that a preset keeps attention on the same levels (16 -> 8 at 16x16, 14 at 28x28).
UNET_PRESETS: dict[str, dict[str, Any]] = {
    "paper": {},  # the UNetConfig defaults: 64/128/256/512, 2 blocks, attention at 16 and 8
    "cpu": {
        "base_channels": 32,
        "channel_mults": (1, 2, 2),
        "num_res_blocks": 1,
        "attention_resolutions": (16,),
    },
    "cpu-wide": {
        "base_channels": 64,
        "channel_mults": (1, 2, 2),
        "num_res_blocks": 1,
        "attention_resolutions": (16,),
    },
    # One GPU, the study's data sizes in minutes: 15.7M parameters at 32x32 (three levels).
    "gpu": {
        "base_channels": 96,
        "channel_mults": (1, 2, 2),
        "num_res_blocks": 2,
        "attention_resolutions": (16,),
    },
    "tiny": {
        "base_channels": 16,
        "channel_mults": (1, 2),
        "num_res_blocks": 1,
        "attention_resolutions": (16,),
    },
}
_PRESET_IMAGE_SIZE = 32


def unet_config(preset: str | None = None, **overrides: Any) -> UNetConfig:
    """A `UNetConfig` from a named preset (or the defaults) with field overrides (strict)."""
    if preset is None:
        base: dict[str, Any] = {}
    elif preset in UNET_PRESETS:
        base = dict(UNET_PRESETS[preset])
    else:
        raise ConfigError(
            f"unet preset {preset!r} is unknown", hint=f"choose from {', '.join(UNET_PRESETS)}"
        )
    image_size = overrides.get("image_size", _PRESET_IMAGE_SIZE)
    if "attention_resolutions" not in overrides and isinstance(image_size, int):
        ref = base.get("attention_resolutions", UNetConfig.attention_resolutions)
        base["attention_resolutions"] = tuple(
            image_size >> round(math.log2(_PRESET_IMAGE_SIZE / r)) for r in ref
        )
    return from_dict(UNetConfig, {**base, **overrides}, where="unet")


def _groups(channels: int, num_groups: int) -> int:
    # Narrow layers cannot have 32 groups; the largest common divisor keeps groups equal-sized.
    return math.gcd(channels, num_groups)


class TimestepEmbedding(nn.Module):
    """Sinusoidal embedding of the timestep index (Vaswani et al. 2017) followed by an MLP."""

    freqs: torch.Tensor

    def __init__(self, dim: int, out_dim: int) -> None:
        super().__init__()
        half = dim // 2
        freqs = torch.exp(-math.log(10_000.0) * torch.arange(half, dtype=torch.float32) / half)
        self.register_buffer("freqs", freqs, persistent=False)
        self.mlp = nn.Sequential(
            nn.Linear(2 * half, out_dim), nn.SiLU(), nn.Linear(out_dim, out_dim)
        )

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        args = t.float()[:, None] * self.freqs[None]  # (B, dim/2)
        return self.mlp(torch.cat([torch.cos(args), torch.sin(args)], dim=1))  # (B, out_dim)


class ResBlock(nn.Module):
    """GN-SiLU-conv, scale-shift by the embedding, GN-SiLU-dropout-conv, plus a (1x1) skip."""

    def __init__(self, cin: int, cout: int, emb_dim: int, dropout: float, groups: int) -> None:
        super().__init__()
        self.norm1 = nn.GroupNorm(_groups(cin, groups), cin)
        self.conv1 = nn.Conv2d(cin, cout, 3, padding=1)
        self.emb = nn.Linear(emb_dim, 2 * cout)
        self.norm2 = nn.GroupNorm(_groups(cout, groups), cout)
        self.dropout = StepDropout(dropout)  # masks per (step, global image) in training
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1)
        self.skip = nn.Conv2d(cin, cout, 1) if cin != cout else nn.Identity()

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        scale, shift = self.emb(F.silu(emb))[:, :, None, None].chunk(2, dim=1)  # (B, cout, 1, 1)
        h = self.norm2(h) * (1 + scale) + shift
        h = self.conv2(self.dropout(F.silu(h)))
        return self.skip(x) + h


class AttentionBlock(nn.Module):
    """Multi-head self-attention over the H*W positions, with a residual connection."""

    def __init__(self, channels: int, num_heads: int, groups: int) -> None:
        super().__init__()
        if channels % num_heads:
            raise ConfigError(f"unet.num_heads: {num_heads} does not divide {channels} channels")
        self.num_heads = num_heads
        self.norm = nn.GroupNorm(_groups(channels, groups), channels)
        self.qkv = nn.Linear(channels, 3 * channels)
        self.proj = nn.Linear(channels, channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, C, H, W = x.shape
        # permute+reshape is free for channels_last input and a copy otherwise (never .view).
        tokens = self.norm(x).permute(0, 2, 3, 1).reshape(B, H * W, C)  # (B, L, C)
        qkv = self.qkv(tokens).reshape(B, H * W, 3, self.num_heads, C // self.num_heads)
        q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)  # each (B, heads, L, C/heads)
        h = F.scaled_dot_product_attention(q, k, v)  # (B, heads, L, C/heads)
        h = self.proj(h.transpose(1, 2).reshape(B, H * W, C))  # (B, L, C)
        return x + h.reshape(B, H, W, C).permute(0, 3, 1, 2)  # (B, C, H, W)


class Level(nn.Module):
    """ResBlocks, each followed by attention or identity; pushes or pops skip activations."""

    def __init__(self, blocks: list[ResBlock], attns: list[nn.Module]) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(blocks)
        self.attns = nn.ModuleList(attns)

    def forward(
        self,
        h: torch.Tensor,
        emb: torch.Tensor,
        push: list[torch.Tensor] | None = None,
        pop: list[torch.Tensor] | None = None,
    ) -> torch.Tensor:
        for blk, att in zip(self.blocks, self.attns, strict=True):
            if pop is not None:  # up path: the skip from the mirrored down block
                h = torch.cat([h, pop.pop()], dim=1)  # (B, ch + skip_ch, H, W)
            h = att(blk(h, emb))
            if push is not None:
                push.append(h)
        return h


def _downsample(kind: str, ch: int) -> nn.Module:
    if kind == "pool":
        return nn.AvgPool2d(2)
    return nn.Conv2d(ch, ch, 3, stride=2, padding=1)


def _upsample(kind: str, ch: int) -> nn.Module:
    if kind == "transpose":
        return nn.ConvTranspose2d(ch, ch, 4, stride=2, padding=1)
    return nn.Sequential(
        nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(ch, ch, 3, padding=1)
    )


class UNet(nn.Module):
    """eps_theta(x_t, t, y): x (B,C,H,W), t (B,) 0-based index, y (B,) in [0, num_classes]."""

    def __init__(self, cfg: UNetConfig) -> None:
        super().__init__()
        _validate(cfg)
        self.cfg = cfg
        self.null_label = cfg.num_classes
        ch0, groups = cfg.base_channels, cfg.num_groups
        emb_dim = ch0 * cfg.time_embed_mult
        self.time_embed = TimestepEmbedding(ch0, emb_dim)
        self.label_embed = nn.Embedding(cfg.num_classes + 1, emb_dim)
        self.in_conv = nn.Conv2d(cfg.in_channels, ch0, 3, padding=1)

        def block(cin: int, cout: int) -> ResBlock:
            return ResBlock(cin, cout, emb_dim, cfg.dropout, groups)

        def attn(ch: int, res: int) -> nn.Module:
            use = res in cfg.attention_resolutions
            return AttentionBlock(ch, cfg.num_heads, groups) if use else nn.Identity()

        widths = [ch0 * m for m in cfg.channel_mults]
        skip_ch, ch, res = [ch0], ch0, cfg.image_size
        self.down, self.downsamplers = nn.ModuleList(), nn.ModuleList()
        for level, width in enumerate(widths):
            blocks, attns = [], []
            for _ in range(cfg.num_res_blocks):
                blocks.append(block(ch, width))
                attns.append(attn(width, res))
                ch = width
                skip_ch.append(ch)
            self.down.append(Level(blocks, attns))
            if level < len(widths) - 1:
                self.downsamplers.append(_downsample(cfg.downsample, ch))
                skip_ch.append(ch)
                res //= 2
        self.mid = Level(
            [block(ch, ch), block(ch, ch)],
            [AttentionBlock(ch, cfg.num_heads, groups), nn.Identity()],
        )
        self.up, self.upsamplers = nn.ModuleList(), nn.ModuleList()
        for level, width in reversed(list(enumerate(widths))):
            blocks, attns = [], []
            for _ in range(cfg.num_res_blocks + 1):
                blocks.append(block(ch + skip_ch.pop(), width))
                attns.append(attn(width, res))
                ch = width
            self.up.append(Level(blocks, attns))
            if level > 0:
                self.upsamplers.append(_upsample(cfg.upsample, ch))
                res *= 2
        self.out_norm = nn.GroupNorm(_groups(ch, groups), ch)
        self.out_conv = nn.Conv2d(ch, cfg.in_channels, 3, padding=1)
        for p in self.out_conv.parameters():
            nn.init.zeros_(p)  # the untrained net predicts eps = 0

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """(C, H, W) of the images this network denoises."""
        return (self.cfg.in_channels, self.cfg.image_size, self.cfg.image_size)

    def forward(self, x: torch.Tensor, t: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        emb = self.time_embed(t) + self.label_embed(y)  # (B, emb_dim)
        h = self.in_conv(x)  # (B, ch0, H, W)
        skips = [h]
        for level, stage in enumerate(self.down):
            h = stage(h, emb, push=skips)
            if level < len(self.downsamplers):
                h = self.downsamplers[level](h)  # (B, ch, H/2, W/2)
                skips.append(h)
        h = self.mid(h, emb)
        for level, stage in enumerate(self.up):
            h = stage(h, emb, pop=skips)
            if level < len(self.upsamplers):
                h = self.upsamplers[level](h)  # (B, ch, 2H, 2W)
        return self.out_conv(F.silu(self.out_norm(h)))  # (B, C, H, W)


def _validate(cfg: UNetConfig) -> None:
    levels = len(cfg.channel_mults)
    if levels < 1 or cfg.base_channels < 1 or cfg.num_res_blocks < 1 or cfg.in_channels < 1:
        raise ConfigError("unet: base_channels, channel_mults, num_res_blocks must be non-empty/>0")
    if cfg.image_size % 2 ** (levels - 1):
        raise ConfigError(
            f"unet.image_size: {cfg.image_size} is not divisible by 2^{levels - 1} "
            f"({levels} levels of 2x down-sampling)"
        )
    sizes = [cfg.image_size >> i for i in range(levels)]
    bad = [r for r in cfg.attention_resolutions if r not in sizes]
    if bad:
        raise ConfigError(
            f"unet.attention_resolutions: {bad} are not level resolutions {sizes}",
            hint="give resolutions in pixels of the levels where attention should run",
        )
    if cfg.num_classes < 1 or not 0.0 <= cfg.dropout < 1.0:
        raise ConfigError("unet: need num_classes >= 1 and 0 <= dropout < 1")

"""The classifier of SPEC §4: a ResNet (He et al. 2016) with self-attention in the deep stages.

Post-activation BasicBlocks (conv-BN-ReLU-conv-BN, add the shortcut, ReLU), as in the original
ResNet-18; stride-2 convolutions between stages; after the blocks of each stage listed in
`attention_stages`, a multi-head self-attention layer with a residual connection. The head is
global average pooling over H x W and one linear layer returning LOGITS: the softmax of SPEC §4
lives inside the cross-entropy loss (the study's code applied softmax twice).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from synthmix.config import from_dict
from synthmix.errors import ConfigError


@dataclass(frozen=True)
class ClassifierConfig:
    """Shape of the ResNet classifier; the defaults are the study-sized ("paper") network."""

    in_channels: int = 1
    num_classes: int = 10
    widths: tuple[int, ...] = (64, 128, 256, 512)
    blocks_per_stage: tuple[int, ...] = (2, 2, 2, 2)
    # Stage indices followed by a self-attention layer ("ResNet blocks with attention layers").
    attention_stages: tuple[int, ...] = (2, 3)
    dropout: float = 0.0
    num_heads: int = 4

    def __post_init__(self) -> None:
        if self.in_channels < 1 or self.num_classes < 2:
            raise ConfigError(
                f"classifier: need in_channels >= 1 and num_classes >= 2, got "
                f"{self.in_channels} and {self.num_classes}"
            )
        if not self.widths or len(self.widths) != len(self.blocks_per_stage):
            raise ConfigError(
                f"classifier: widths {list(self.widths)} and blocks_per_stage "
                f"{list(self.blocks_per_stage)} must be non-empty and of the same length"
            )
        if min(self.widths) < 1 or min(self.blocks_per_stage) < 1:
            raise ConfigError("classifier: every width and blocks_per_stage entry must be >= 1")
        for stage in self.attention_stages:
            if not 0 <= stage < len(self.widths):
                raise ConfigError(
                    f"classifier: attention stage {stage} out of range 0..{len(self.widths) - 1}"
                )
            if self.num_heads < 1 or self.widths[stage] % self.num_heads:
                raise ConfigError(
                    f"classifier: num_heads={self.num_heads} must divide the width "
                    f"{self.widths[stage]} of attention stage {stage}"
                )
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"classifier: dropout must be in [0, 1), got {self.dropout}")


CLASSIFIER_PRESETS: dict[str, dict[str, Any]] = {
    # SPEC §4: ResNet-18-like, widths 64..512, attention in the two deepest stages (~12.5M).
    "paper": {},
    # CPU-sized: one block per stage (~ResNet-9/10 depth) at width 32 (~1.5M parameters).
    "small": {
        "widths": (32, 64, 128, 256),
        "blocks_per_stage": (1, 1, 1, 1),
        "attention_stages": (2, 3),
    },
    # Tests and the demo: width 16 (~0.38M parameters).
    "tiny": {
        "widths": (16, 32, 64, 128),
        "blocks_per_stage": (1, 1, 1, 1),
        "attention_stages": (2, 3),
    },
}


def classifier_config(preset: str | None, **overrides: Any) -> ClassifierConfig:
    """Config of `preset` (None: the defaults) with `overrides`; unknown keys are errors."""
    if preset is not None and preset not in CLASSIFIER_PRESETS:
        raise ConfigError(
            f"unknown classifier preset {preset!r}",
            hint=f"choose one of {', '.join(CLASSIFIER_PRESETS)}",
        )
    base = dict(CLASSIFIER_PRESETS[preset]) if preset is not None else {}
    return from_dict(ClassifierConfig, {**base, **overrides}, where="classifier")


class BasicBlock(nn.Module):
    """Post-activation residual block: relu(bn(conv(relu(bn(conv(x))))) + shortcut(x))."""

    def __init__(self, in_channels: int, out_channels: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or in_channels != out_channels:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, stride, bias=False),
                nn.BatchNorm2d(out_channels),
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.relu(self.bn1(self.conv1(x)))
        h = self.bn2(self.conv2(h))
        return F.relu(h + self.shortcut(x))


class SelfAttention2d(nn.Module):
    """Multi-head self-attention over the H*W positions, pre-normed, with a residual connection."""

    def __init__(self, channels: int, num_heads: int) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.norm = nn.GroupNorm(math.gcd(32, channels), channels)
        self.qkv = nn.Conv2d(channels, 3 * channels, 1)
        self.proj = nn.Conv2d(channels, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        qkv = self.qkv(self.norm(x)).reshape(b, 3, self.num_heads, c // self.num_heads, h * w)
        q, k, v = qkv.transpose(-1, -2).unbind(1)  # each (B, heads, HW, C/heads)
        out = F.scaled_dot_product_attention(q, k, v)  # (B, heads, HW, C/heads)
        out = out.transpose(-1, -2).reshape(b, c, h, w)  # (B, C, H, W)
        return x + self.proj(out)


class ResNetClassifier(nn.Module):
    """ResNet with attention; `forward` returns logits, `features` the pooled penultimate layer."""

    def __init__(self, config: ClassifierConfig) -> None:
        super().__init__()
        self.config = config
        widths = config.widths
        # CIFAR-style stem: one 3x3 convolution, no max-pool, so 8x8 inputs still work.
        self.stem = nn.Sequential(
            nn.Conv2d(config.in_channels, widths[0], 3, 1, 1, bias=False),
            nn.BatchNorm2d(widths[0]),
            nn.ReLU(inplace=True),
        )
        stages: list[nn.Module] = []
        in_ch = widths[0]
        for i, (width, n_blocks) in enumerate(zip(widths, config.blocks_per_stage, strict=True)):
            layers: list[nn.Module] = []
            for j in range(n_blocks):
                stride = 2 if (i > 0 and j == 0) else 1
                layers.append(BasicBlock(in_ch, width, stride))
                in_ch = width
            if i in config.attention_stages:
                layers.append(SelfAttention2d(width, config.num_heads))
            stages.append(nn.Sequential(*layers))
        self.stages = nn.Sequential(*stages)
        self.dropout = nn.Dropout(config.dropout)
        self.head = nn.Linear(widths[-1], config.num_classes)

    @property
    def num_features(self) -> int:
        """Dimension D of `features(x)`."""
        return self.config.widths[-1]

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Globally average-pooled penultimate features of images in [-1, 1]: (B, D)."""
        h = self.stages(self.stem(x))  # (B, D, H / 2^(S-1), W / 2^(S-1))
        return h.mean(dim=(2, 3))  # (B, D)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits (B, num_classes) of images x (B, C, H, W) in [-1, 1]; no softmax here."""
        return self.head(self.dropout(self.features(x)))


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def config_dict(config: ClassifierConfig) -> dict[str, Any]:
    """The config as plain data (lists), e.g. to store next to the weights."""
    return {
        k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(config).items()
    }

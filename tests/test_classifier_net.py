"""The ResNet classifier: shapes, presets, memory formats, logits, and that it can learn."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from synthmix.classifier import (
    CLASSIFIER_PRESETS,
    ClassifierConfig,
    ResNetClassifier,
    classifier_config,
    count_parameters,
)
from synthmix.errors import ConfigError


def _net(preset: str, in_channels: int, seed: int = 0, **overrides: object) -> ResNetClassifier:
    torch.manual_seed(seed)  # module initialisation draws from the global generator
    return ResNetClassifier(classifier_config(preset, in_channels=in_channels, **overrides))


@pytest.mark.parametrize("preset", ["tiny", "small", "paper"])
@pytest.mark.parametrize("shape", [(1, 28, 28), (3, 32, 32), (1, 16, 16)])
def test_shapes_for_presets(preset: str, shape: tuple[int, int, int]) -> None:
    net = _net(preset, shape[0], num_classes=7).eval()
    x = torch.rand(2, *shape) * 2 - 1
    with torch.no_grad():
        logits, feats = net(x), net.features(x)
    assert logits.shape == (2, 7)
    assert feats.shape == (2, net.config.widths[-1]) == (2, net.num_features)
    assert torch.isfinite(logits).all()


@pytest.mark.parametrize(
    ("preset", "low", "high"), [("tiny", 1e5, 4e5), ("small", 1e6, 2e6), ("paper", 11e6, 14e6)]
)
def test_parameter_counts_in_documented_ranges(preset: str, low: float, high: float) -> None:
    for channels in (1, 3):
        assert low <= count_parameters(_net(preset, channels)) <= high


def test_smallest_image_size_and_attention_everywhere() -> None:
    net = _net("tiny", 1, attention_stages=[0, 1, 2, 3]).eval()
    assert sum(type(m).__name__ == "SelfAttention2d" for m in net.modules()) == 4
    with torch.no_grad():
        assert net(torch.zeros(3, 1, 8, 8)).shape == (3, 10)


def test_channels_last_matches_contiguous() -> None:
    net = _net("tiny", 3).eval()
    x = torch.rand(4, 3, 32, 32, generator=torch.Generator().manual_seed(1)) * 2 - 1
    with torch.no_grad():
        ref = net(x)
        net_cl = net.to(memory_format=torch.channels_last)
        out = net_cl(x.contiguous(memory_format=torch.channels_last))
    torch.testing.assert_close(out, ref, rtol=1e-4, atol=1e-5)


def test_forward_returns_logits_not_probabilities() -> None:
    net = _net("tiny", 1).eval()
    x = torch.rand(8, 1, 16, 16, generator=torch.Generator().manual_seed(2)) * 2 - 1
    with torch.no_grad():
        logits = net(x)
        # forward is exactly the linear head on the pooled features: no softmax after it.
        torch.testing.assert_close(logits, net.head(net.features(x)))
    assert not torch.allclose(logits.sum(dim=1), torch.ones(8))
    assert (logits < 0).any()


def test_features_are_batch_independent_in_eval_mode() -> None:
    net = _net("tiny", 1).eval()
    x = torch.rand(6, 1, 16, 16, generator=torch.Generator().manual_seed(3)) * 2 - 1
    with torch.no_grad():
        torch.testing.assert_close(net.features(x)[:2], net.features(x[:2]), rtol=1e-4, atol=1e-5)


def test_adam_drives_training_loss_down() -> None:
    net = _net("tiny", 1).train()
    gen = torch.Generator().manual_seed(4)
    x = torch.rand(16, 1, 16, 16, generator=gen) * 2 - 1
    y = torch.arange(16) % 10
    opt = torch.optim.Adam(net.parameters(), lr=5e-3)
    losses = []
    for _ in range(15):
        loss = F.cross_entropy(net(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.3 * losses[0]


def test_config_presets_and_validation() -> None:
    assert classifier_config(None) == ClassifierConfig()
    assert set(CLASSIFIER_PRESETS) == {"paper", "small", "tiny"}
    cfg = classifier_config("tiny", widths=[8, 16, 32, 64], num_heads=2)
    assert cfg.widths == (8, 16, 32, 64) and cfg.blocks_per_stage == (1, 1, 1, 1)
    with pytest.raises(ConfigError, match="preset"):
        classifier_config("huge")
    with pytest.raises(ConfigError, match="unknown key"):
        classifier_config("tiny", depth=3)
    with pytest.raises(ConfigError, match="num_heads"):
        classifier_config("tiny", num_heads=3)
    with pytest.raises(ConfigError, match="same length"):
        classifier_config("tiny", widths=[16, 32])
    with pytest.raises(ConfigError, match="attention stage"):
        classifier_config("tiny", attention_stages=[4])

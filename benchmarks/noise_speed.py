"""Ancestral sampling speed with the two seed rules: one torch.randn per image per step (rule 1)
against counter-based Philox noise for the whole batch (rule 2).

Times `steps` ancestral steps of a U-Net preset at a batch size (the per-step work is the same
at every t, so T steps cost T/steps times as much) and the noise draw alone, and extrapolates to
the schedule's T steps. Writes JSON with images/s per rule and the speed-up.

    PYTHONPATH=src python benchmarks/noise_speed.py --preset paper --shape 1 32 32 \\
        --batch 500 --device cuda --out noise-speed.json
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

import torch

from synthmix.diffusion.noise import make_noise
from synthmix.diffusion.samplers import sample
from synthmix.diffusion.schedule import NoiseSchedule
from synthmix.diffusion.unet import UNet, unet_config

NUM_CLASSES = 10


def _timed(fn: Callable[[], Any], device: torch.device, repeats: int) -> float:
    fn()  # warm-up: kernels, allocator
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return (time.perf_counter() - start) / repeats


def measure(preset: str, shape: Sequence[int], batch: int, steps: int, T: int,
            device: torch.device, repeats: int, amp: bool) -> dict[str, Any]:
    c, h, _ = shape
    model = UNet(unet_config(preset, in_channels=c, image_size=h, num_classes=NUM_CLASSES))
    model = model.to(device).eval()
    short = NoiseSchedule(NoiseSchedule.linear(T).betas[:steps])  # the same work per step
    labels = torch.arange(batch, device=device) % NUM_CLASSES
    seeds = [2**32 + i for i in range(batch)]
    out: dict[str, Any] = {"preset": preset, "shape": list(shape), "batch": batch,
                           "timed_steps": steps, "T": T, "device": str(device), "rules": {}}
    dtype = torch.bfloat16 if amp and device.type == "cuda" else None
    for rule in (1, 2):
        def run(rule: int = rule) -> torch.Tensor:
            with torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
                return sample("ancestral", model, short, labels, make_noise(seeds, device, rule),
                              guidance_scale=3.0)

        def draw(rule: int = rule) -> torch.Tensor:
            noise = make_noise(seeds, device, rule)
            return torch.stack([noise.randn(shape) for _ in range(steps)])

        per_call = _timed(run, device, repeats)
        seconds_T = per_call * T / steps
        noise_T = _timed(draw, device, repeats) * T / steps
        out["rules"][str(rule)] = {
            "seconds_per_batch_at_T": round(seconds_T, 3),
            "images_per_second": round(batch / seconds_T, 3),
            "noise_seconds_per_batch_at_T": round(noise_T, 3),
            "noise_share": round(noise_T / seconds_T, 3),
        }
    r1, r2 = out["rules"]["1"], out["rules"]["2"]
    out["speedup_rule2_over_rule1"] = round(r2["images_per_second"] / r1["images_per_second"], 2)
    return out


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--preset", default="cpu")
    p.add_argument("--shape", nargs=3, type=int, default=[1, 16, 16], metavar=("C", "H", "W"))
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--steps", type=int, default=10, help="ancestral steps timed (of T)")
    p.add_argument("--T", type=int, default=400)
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int)
    p.add_argument("--amp", action="store_true", help="bf16 autocast (CUDA)")
    p.add_argument("--out", help="write the result as JSON here")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    result = measure(args.preset, args.shape, args.batch, args.steps, args.T,
                     torch.device(args.device), args.repeats, args.amp)
    result.update({"torch": torch.__version__, "python": platform.python_version(),
                   "command": " ".join(sys.argv), "threads": torch.get_num_threads()})
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

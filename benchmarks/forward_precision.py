"""U-Net forward passes (what sampling runs) in fp32 and under bf16 autocast, on this CPU.

Issue 19 item 4: is bf16 sampling worth it on a host with native bf16? Times one forward pass
of the `cpu` and `cpu-wide` U-Nets at 16x16 on a batch of 250 (the studies' sampling batch), in
inference mode, 2 threads, median of 5 after a warm-up, and writes the images/s with the
machine record. A speed number only: whether bf16 samples are as good is a separate question
(sampler_quality.py on validation images).

    PYTHONPATH=src python benchmarks/forward_precision.py [--out forward-precision.json]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path

import torch

from synthmix.diffusion.unet import UNet, unet_config
from synthmix.files import atomic_write_json
from synthmix.runinfo import code_version, hardware

BATCH, SIZE, REPEATS = 250, 16, 5


def images_per_second(net: UNet, channels: int, dtype: torch.dtype | None) -> float:
    x = torch.randn(BATCH, channels, SIZE, SIZE, generator=torch.Generator().manual_seed(0))
    t = torch.full((BATCH,), 200)
    y = torch.zeros(BATCH, dtype=torch.long)
    times = []
    for _ in range(REPEATS + 1):  # the first call warms up
        t0 = time.perf_counter()
        with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16,
                                                    enabled=dtype is not None):
            net(x, t, y)
        times.append(time.perf_counter() - t0)
    return BATCH / statistics.median(times[1:])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("forward-precision.json"))
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    load = os.getloadavg()[0]
    rows = []
    for preset, channels in (("cpu", 1), ("cpu-wide", 3)):
        net = UNet(unet_config(preset, in_channels=channels, num_classes=10,
                               image_size=SIZE)).eval()
        fp32 = images_per_second(net, channels, None)
        bf16 = images_per_second(net, channels, torch.bfloat16)
        rows.append({"preset": preset, "channels": channels, "fp32_images_per_s": round(fp32, 1),
                     "bf16_images_per_s": round(bf16, 1), "bf16_speedup": round(bf16 / fp32, 2)})
        print(f"{preset:9} fp32 {fp32:8.1f}  bf16 {bf16:8.1f} images/s  ({bf16 / fp32:.2f}x)")
    atomic_write_json(args.out, {"batch": BATCH, "image_size": SIZE, "threads": args.threads,
                                 "load_1min_start": load, "load_1min_end": os.getloadavg()[0],
                                 "hardware": hardware(), "code_version": code_version(),
                                 "rows": rows})


if __name__ == "__main__":
    main()

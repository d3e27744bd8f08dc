"""Stages against the machine's limit: FLOPs per image counted by torch's flop counter against
hand counts, and the peak estimate's arithmetic."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from synthmix.experiment import flops


def test_flops_per_image_match_hand_counts() -> None:
    linear = nn.Linear(10, 20, bias=False)
    x = torch.randn(4, 10)
    assert flops.gflop_per_image(linear, (x,), train=False) * 1e9 == 2 * 10 * 20
    # Backward: the weight's gradient, and the input's where it needs one (inner layers),
    # each as costly as the forward.
    assert flops.gflop_per_image(linear, (x,), train=True) * 1e9 == 2 * 2 * 10 * 20
    x.requires_grad_()
    assert flops.gflop_per_image(linear, (x,), train=True) * 1e9 == 3 * 2 * 10 * 20
    conv = nn.Conv2d(1, 4, 3, padding=1, bias=False)
    images = torch.randn(2, 1, 8, 8)
    assert flops.gflop_per_image(conv, (images,), train=False) * 1e9 == 2 * 4 * 9 * 64


def test_peak_is_cores_times_clock_times_flops_per_cycle(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(flops, "_clock_ghz", lambda: 2.0)
    monkeypatch.setattr(flops.os, "sched_getaffinity", lambda pid: {0, 1})
    monkeypatch.setattr(flops, "cpu_capability", lambda: "AVX2")
    monkeypatch.setattr(flops, "cpu_flags", lambda: {"avx2", "fma"})
    peak = flops.host_peak()
    assert peak["peak_gflops"] == 2 * 2.0 * 8 * 2 * 2  # 8 lanes x FMA x 2 units
    assert "AVX2" in peak["peak_assumption"] and "2 CPUs" in peak["peak_assumption"]
    monkeypatch.setattr(flops, "cpu_capability", lambda: "AVX512")
    assert flops.host_peak()["peak_gflops"] == 2 * 2.0 * 16 * 2 * 2


def test_a_stage_record_gains_achieved_gflops_and_share() -> None:
    out = flops.with_compute({"seconds": 10.0}, 0.5, 200.0, 400.0)
    assert out["achieved_gflops"] == 100.0 and out["share_of_peak"] == 0.25
    assert flops.with_compute({"seconds": 1.0}, None, 200.0, 400.0) == {"seconds": 1.0}

"""Per-image noise: the Philox rule against its published answers, seeds that matter on the CPU,
images that do not depend on the batch or the sharding, and the old rule still regenerating."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy import stats

from synthmix.cli import main
from synthmix.diffusion.noise import PerImageNoise, PhiloxNoise, make_noise, philox4x32
from synthmix.errors import ConfigError
from synthmix.synthetic.format import read_synthetic_set

ROOT = Path(__file__).resolve().parents[1]

# Random123's known-answer vectors for philox4x32-10: counter, key -> output.
KAT = [
    ((0, 0, 0, 0), (0, 0), (0x6627E8D5, 0xE169C58D, 0xBC57AC4C, 0x9B00DBD8)),
    ((0xFFFFFFFF,) * 4, (0xFFFFFFFF,) * 2, (0x408F276D, 0x41C83B0E, 0xA20BC7C6, 0x6D5451FD)),
    ((0x243F6A88, 0x85A308D3, 0x13198A2E, 0x03707344), (0xA4093822, 0x299F31D0),
     (0xD16CFE09, 0x94FDCCEB, 0x5001E420, 0x24126EA1)),
]


@pytest.mark.parametrize(("counter", "key", "expected"), KAT)
def test_philox_matches_random123_known_answers(counter, key, expected) -> None:
    words = philox4x32([torch.tensor([c]) for c in counter], [torch.tensor([k]) for k in key])
    assert tuple(int(w) for w in words) == expected


def test_every_bit_of_the_seed_matters_on_the_cpu() -> None:
    # The old rule's CPU generator keeps only the low 32 bits: seeds 7 and 7 + 2**32 collide.
    old = PerImageNoise([7, 7 + 2**32], "cpu").randn((16,))
    assert torch.equal(old[0], old[1])
    new = PhiloxNoise([7, 7 + 2**32, 8], "cpu").randn((16,))
    assert not torch.equal(new[0], new[1]) and not torch.equal(new[0], new[2])


def test_an_image_does_not_depend_on_its_batch() -> None:
    seeds = [3, 2**32 + 5, 11, 2**40 + 1, 0]
    batch = PhiloxNoise(seeds, "cpu")
    together = [batch.randn((1, 5, 5)) for _ in range(3)]  # x_T, then two step draws
    for i, s in enumerate(seeds):
        alone = PhiloxNoise([s], "cpu")
        for draw in together:
            torch.testing.assert_close(alone.randn((1, 5, 5))[0], draw[i], rtol=0, atol=0)
    # Another shape per draw gives other numbers, and the stream advances per draw.
    assert not torch.equal(together[0], together[1])


def test_philox_normals_are_standard_normal() -> None:
    z = PhiloxNoise(list(range(20_000)), "cpu").randn((10,)).flatten().numpy()  # 200,000 draws
    assert abs(z.mean()) < 0.01 and abs(z.std() - 1.0) < 0.01
    assert stats.kstest(z, "norm").pvalue > 1e-3  # deterministic: this cannot flake
    # Neighbouring images are uncorrelated.
    pairs = PhiloxNoise(list(range(2000)), "cpu").randn((64,))
    r = np.corrcoef(pairs[:-1].flatten().numpy(), pairs[1:].flatten().numpy())[0, 1]
    assert abs(r) < 0.01


def test_unknown_rule_and_negative_seeds_are_refused() -> None:
    with pytest.raises(ConfigError, match="seed rule"):
        make_noise([1], "cpu", rule=3)
    with pytest.raises(ConfigError, match=">= 0"):
        PhiloxNoise([-1], "cpu")


@pytest.fixture(scope="module")
def tiny_run(tiny_ddpm: Path) -> Path:
    return tiny_ddpm


def _sample(run: Path, out: Path, *extra: str) -> np.ndarray:
    assert main(["sample", str(run), "--n-per-class", "2", "--out", str(out), "--sampler",
                 "ddim", "--steps", "2", "--no-progress", *extra]) == 0
    return read_synthetic_set(out).images


def test_sample_seed_0_and_seed_1_give_different_images_on_the_cpu(tiny_run, tmp_path) -> None:
    a = _sample(tiny_run, tmp_path / "s0", "--seed", "0")
    b = _sample(tiny_run, tmp_path / "s1", "--seed", "1")
    again = _sample(tiny_run, tmp_path / "s0-again", "--seed", "0")
    assert np.array_equal(a, again)
    differ = [not np.array_equal(x, y) for x, y in zip(a, b)]
    assert all(differ)
    manifest = json.loads((tmp_path / "s1" / "manifest.json").read_text())
    assert manifest["provenance"]["seed_rule"] == 2
    assert manifest["generation"]["seed_rule_version"] == 2
    assert manifest["environment"]["device"] == "cpu" and manifest["environment"]["torch"]


def test_rule_1_sets_stay_regenerable(tiny_run, tmp_path) -> None:
    from synthmix.runs.ddpm import load_ddpm
    from synthmix.synthetic.generate import make_diffusion_sample_fn, sampling_dtype, settings_of

    old = _sample(tiny_run, tmp_path / "old", "--seed-rule", "1")
    new = _sample(tiny_run, tmp_path / "new")
    assert not np.array_equal(old, new)  # the rules draw other noise
    syn = read_synthetic_set(tmp_path / "old")
    settings, rule = settings_of(syn.manifest)
    assert rule == 1 and settings.sampler == "ddim" and settings.steps == 2
    ddpm = load_ddpm(tiny_run)
    amp = sampling_dtype("cpu", syn.manifest["environment"]["precision"])
    fn = make_diffusion_sample_fn(ddpm.model, ddpm.schedule, settings, "cpu", seed_rule=rule,
                                  amp_dtype=amp)  # in the precision the set was sampled in
    i = 7  # image 7 alone, from its (label, seed)
    x0 = fn(torch.tensor([int(syn.labels[i])]), [int(syn.seeds[i])])
    pixels = ((x0 + 1) * 127.5).round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1)
    assert np.abs(pixels[0].numpy().astype(int) - syn.images[i].astype(int)).max() <= 1


def test_blocks_of_draws_give_the_numbers_of_single_draws(monkeypatch) -> None:
    seeds = [1, 2**33 + 7, 12]
    shapes = [(1, 4, 4)] * 9 + [(3,)] + [(1, 4, 4)] * 3
    blocked = PhiloxNoise(seeds, "cpu")
    got = [blocked.randn(s) for s in shapes]
    monkeypatch.setattr(PhiloxNoise, "MAX_BLOCK", 1)
    single = PhiloxNoise(seeds, "cpu")
    want = [single.randn(s) for s in shapes]
    for i, (a, b) in enumerate(zip(got, want)):
        torch.testing.assert_close(a, b, rtol=0, atol=0, msg=f"draw {i}")
    assert blocked.draws == single.draws == len(shapes)

"""Generation: deterministic plan, resume after a kill, parallel ranks equal one process."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from synthmix.errors import DataError
from synthmix.synthetic.format import read_synthetic_set
from synthmix.synthetic.generate import generate_synthetic_set, plan_generation

SRC = str(Path(__file__).resolve().parents[1] / "src")

# A sampler whose image is a pure function of (seed, label); also run in subprocesses.
FAKE_SAMPLER = textwrap.dedent("""
    import numpy as np
    import torch

    def fake_sample_fn(labels, seeds):
        images = [
            np.random.default_rng(seed).uniform(-0.5, 0.5, size=(3, 8, 6)) + 0.4 * (label - 1)
            for label, seed in zip(labels.tolist(), seeds)
        ]
        return torch.tensor(np.stack(images), dtype=torch.float32)  # (B, 3, 8, 6)
""")
namespace: dict[str, Any] = {}
exec(FAKE_SAMPLER, namespace)
fake_sample_fn = namespace["fake_sample_fn"]

ARGS: dict[str, Any] = {
    "class_names": ["a", "b", "c"],
    "n_per_class": [8, 8, 8],
    "image_shape": [8, 6, 3],
    "base_seed": 7,
    "provenance": {"checkpoint_sha256": "abc", "sampler": "fake", "steps": 3},
    "shard_size": 4,
    "batch_size": 2,
    "progress": False,
}


class CountingSampler:
    def __init__(self) -> None:
        self.seeds: list[int] = []

    def __call__(self, labels: torch.Tensor, seeds: list[int]) -> torch.Tensor:
        self.seeds += seeds
        return fake_sample_fn(labels, seeds)


def run_python(script: str, *args: str, timeout: float = 60) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": SRC, "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, "-c", FAKE_SAMPLER + script, *args], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


@pytest.fixture(scope="module")
def background(tmp_path_factory: pytest.TempPathFactory):
    """Start the subprocess runs first: each spends seconds importing torch, so they overlap."""
    root = tmp_path_factory.mktemp("background")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"tcp://127.0.0.1:{port}"
    # Batches of 2 in shards of 4: dying at call 7 leaves shards 0-2 and half of shard 3.
    runs = {
        "killed": (root / "killed", [run_python(KILLED_RUN, str(root / "killed"),
                                                json.dumps(ARGS), "7")]),
        "gloo": (root / "gloo", [run_python(DIST_RUN, str(root / "gloo"), json.dumps(ARGS),
                                            str(r), url) for r in (0, 1)]),
    }
    yield runs
    for _, procs in runs.values():
        for p in procs:
            p.kill()
            p.wait()


def finished(procs: list[subprocess.Popen[str]]) -> tuple[list[int], list[str]]:
    logs = [p.communicate(timeout=90)[0] for p in procs]
    return [p.returncode for p in procs], logs


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory, background):
    """An uninterrupted one-process run (asking for `background` starts the subprocesses)."""
    out = tmp_path_factory.mktemp("ref") / "set"
    generate_synthetic_set(out, sample_fn=fake_sample_fn, **ARGS)
    return read_synthetic_set(out)


def assert_same_set(path: Path, reference) -> None:
    s = read_synthetic_set(path)
    assert np.array_equal(s.images, reference.images)
    assert np.array_equal(s.labels, reference.labels)
    assert np.array_equal(s.seeds, reference.seeds)


def test_plan_is_deterministic_class_balanced_and_seeded_by_index() -> None:
    a, b = plan_generation([8, 8, 8], 7, 6), plan_generation([8, 8, 8], 7, 6)
    assert np.array_equal(a.labels, b.labels) and np.array_equal(a.seeds, b.seeds)
    assert a.labels.tolist() == [0, 1, 2] * 8
    assert a.seeds.tolist() == [7 * 2**32 + i for i in range(24)]
    assert len(set(plan_generation([8, 8, 8], 8, 6).seeds) & set(a.seeds)) == 0
    uneven = plan_generation([30, 10, 20], 0, 12)
    for s in range(uneven.num_shards):
        assert np.bincount(uneven.labels[uneven.shard_rows(s)], minlength=3).tolist() == [6, 2, 4]
    rng = np.random.default_rng(0)
    for _ in range(20):
        counts = rng.integers(1, 40, size=rng.integers(2, 10))
        plan = plan_generation(counts, 1, 7)
        assert np.bincount(plan.labels).tolist() == counts.tolist()
        for s in range(plan.num_shards):
            rows = plan.shard_rows(s)
            share = np.bincount(plan.labels[rows], minlength=len(counts))
            assert np.abs(share - (rows.stop - rows.start) * counts / counts.sum()).max() <= 2


def test_generated_set_matches_the_plan_and_the_sampler(reference) -> None:
    plan = plan_generation([8, 8, 8], 7, 4)
    assert np.array_equal(reference.labels, plan.labels)
    assert np.array_equal(reference.seeds, plan.seeds)
    # Image 5 regenerated alone from its (label, seed) equals the stored one.
    x = fake_sample_fn(torch.tensor([reference.labels[5]]), [int(reference.seeds[5])])
    expect = ((x.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(0, 2, 3, 1)[0]
    assert np.array_equal(reference.images[5], expect.numpy())
    m = reference.manifest
    assert m["complete"] is True and m["provenance"]["base_seed"] == 7
    assert m["provenance"]["checkpoint_sha256"] == "abc" and m["provenance"]["eta"] is None


KILLED_RUN = """
import json, os, sys
from synthmix.synthetic.generate import generate_synthetic_set
args = json.loads(sys.argv[2])
calls = 0
def dying(labels, seeds):
    global calls
    if calls == int(sys.argv[3]):
        os._exit(9)  # like SIGKILL: no cleanup, no exception handlers
    calls += 1
    return fake_sample_fn(labels, seeds)
generate_synthetic_set(sys.argv[1], sample_fn=dying, **args)
"""


@pytest.mark.slow
def test_killed_run_resumes_without_resampling_finished_shards(background, reference,
                                                               monkeypatch) -> None:
    out, procs = background["killed"]
    codes, logs = finished(procs)
    assert codes == [9], logs
    assert sorted(p.name for p in out.glob("shard-*")) == [f"shard-0000{i}.npz" for i in range(3)]
    with pytest.raises(DataError, match="incomplete: 3 of 6 shards"):
        read_synthetic_set(out)
    import synthmix.synthetic.generate as generate

    real_write, written = generate.write_shard, []

    def write_recorded(path, *args, **kwargs):
        written.append(Path(path).name)
        return real_write(path, *args, **kwargs)

    monkeypatch.setattr(generate, "write_shard", write_recorded)
    sampler = CountingSampler()
    generate_synthetic_set(out, sample_fn=sampler, **ARGS)
    assert sampler.seeds == [7 * 2**32 + i for i in range(12, 24)]
    assert written == [f"shard-0000{i}.npz" for i in range(3, 6)]  # finished shards kept
    assert_same_set(out, reference)
    again = CountingSampler()
    generate_synthetic_set(out, sample_fn=again, **ARGS)
    assert again.seeds == []


def test_corrupt_or_stray_files_on_resume(tmp_path: Path, reference) -> None:
    out = tmp_path / "set"
    generate_synthetic_set(out, sample_fn=fake_sample_fn, **ARGS)
    data = bytearray((out / "shard-00004.npz").read_bytes())
    data[-40] ^= 0xFF
    (out / "shard-00004.npz").write_bytes(bytes(data))
    (out / ".shard-00005.npz.abc123.tmp").write_bytes(b"torn write")
    (out / ".manifest.json.xyz.tmp").write_bytes(b"torn write")
    sampler = CountingSampler()
    generate_synthetic_set(out, sample_fn=sampler, **ARGS)
    assert sampler.seeds == [7 * 2**32 + i for i in range(16, 20)]
    assert not (out / ".shard-00005.npz.abc123.tmp").exists()
    assert not (out / ".manifest.json.xyz.tmp").exists()
    assert_same_set(out, reference)


def test_different_arguments_into_the_same_directory_are_refused(tmp_path: Path) -> None:
    out = tmp_path / "set"
    generate_synthetic_set(out, sample_fn=fake_sample_fn, **ARGS)
    with pytest.raises(DataError, match=r"different arguments: n_per_class \[8, 8, 8\] there"):
        generate_synthetic_set(out, sample_fn=fake_sample_fn, **{**ARGS, "n_per_class": [8, 8, 9]})
    other = {**ARGS, "provenance": {**ARGS["provenance"], "checkpoint_sha256": "def"}}
    with pytest.raises(DataError, match=r"provenance\.checkpoint_sha256 'abc' there, 'def' now"):
        generate_synthetic_set(out, sample_fn=fake_sample_fn, **other)
    with pytest.raises(DataError, match="base_seed"):
        generate_synthetic_set(out, sample_fn=fake_sample_fn, **{**ARGS, "base_seed": 8})
    (tmp_path / "home").mkdir()
    (tmp_path / "home" / "thesis.tex").write_text("precious")
    with pytest.raises(DataError, match="holds no synthetic set"):
        generate_synthetic_set(tmp_path / "home", sample_fn=fake_sample_fn, **ARGS)


def test_explicit_ranks_run_one_after_another_equal_one_process(tmp_path: Path, reference) -> None:
    out = tmp_path / "set"
    first = CountingSampler()
    generate_synthetic_set(out, sample_fn=first, rank=1, world_size=2, **ARGS)
    assert sorted(p.name for p in out.iterdir()) == ["shard-00001.npz", "shard-00003.npz",
                                                    "shard-00005.npz"]
    resumed = CountingSampler()  # no manifest yet: shards are checked against the plan
    generate_synthetic_set(out, sample_fn=resumed, rank=1, world_size=2, **ARGS)
    assert resumed.seeds == []
    second = CountingSampler()
    generate_synthetic_set(out, sample_fn=second, rank=0, world_size=2, **ARGS)
    assert sorted(first.seeds + second.seeds) == reference.seeds.tolist()
    assert_same_set(out, reference)


DIST_RUN = """
import json, sys
import torch.distributed as dist
from synthmix.synthetic.generate import generate_synthetic_set
rank = int(sys.argv[3])
dist.init_process_group("gloo", init_method=sys.argv[4], rank=rank, world_size=2)
sampled = []
def sample_fn(labels, seeds):
    sampled.extend(seeds)
    return fake_sample_fn(labels, seeds)
generate_synthetic_set(sys.argv[1], sample_fn=sample_fn, **json.loads(sys.argv[2]))
dist.destroy_process_group()
print("SAMPLED", json.dumps(sampled))
"""


@pytest.mark.slow
def test_two_gloo_processes_equal_one_process(background, reference) -> None:
    out, procs = background["gloo"]
    codes, logs = finished(procs)
    assert codes == [0, 0], logs
    sampled = [json.loads(log.split("SAMPLED", 1)[1]) for log in logs]
    # Rank r sampled exactly the shards s with s % 2 == r (4 images each).
    assert sampled == [[7 * 2**32 + i for i in range(24) if i // 4 % 2 == r] for r in (0, 1)]
    assert_same_set(out, reference)


def test_real_tiny_unet_through_make_diffusion_sample_fn(tmp_path: Path) -> None:
    from synthmix.diffusion.schedule import NoiseSchedule
    from synthmix.diffusion.settings import SamplerSettings
    from synthmix.diffusion.unet import UNet, unet_config
    from synthmix.synthetic.generate import make_diffusion_sample_fn

    torch.manual_seed(0)
    model = UNet(unet_config("tiny", in_channels=1, num_classes=2, image_size=16)).eval()
    schedule = NoiseSchedule.linear(T=20)
    settings = SamplerSettings(sampler="ddim", steps=3, guidance_scale=3.0)
    sample_fn = make_diffusion_sample_fn(model, schedule, settings, "cpu")
    args = {**ARGS, "class_names": ["x", "y"], "n_per_class": [2, 1], "image_shape": [16, 16, 1],
            "shard_size": 2}
    first = read_synthetic_set(generate_synthetic_set(tmp_path / "a", sample_fn=sample_fn,
                                                      **args))
    assert first.images.shape == (3, 16, 16, 1) and first.images.std() > 0
    # The same seed gives the same image alone or in a batch.
    alone = sample_fn(torch.tensor([first.labels[2]]), [int(first.seeds[2])])
    pixels = ((alone.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(0, 2, 3, 1)
    assert np.abs(pixels[0].numpy().astype(int) - first.images[2]).max() <= 1

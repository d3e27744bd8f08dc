"""Resumable, parallel generation of a synthetic set (the format is in `format.py`).

Plan: `plan_generation` fixes every image's label and seed from (n_per_class, base_seed,
shard_size) alone. The j-th image of class c sits at fractional position (j + 1/2) / n_c and
images are sorted by that position (ties by class index, compared exactly), so classes are
interleaved: with equal n_per_class the labels run 0, 1, ..., K-1, 0, 1, ... and every shard
is class-balanced. Image i (its index in the set) gets seed_i = base_seed * 2**32 + i, from which
its x_T and per-step noise are drawn by the set's seed rule (`synthmix.diffusion.noise`; rule 2
uses all 64 bits, so every base seed gives other images): (label_i, seed_i) regenerate image i
alone. The manifest records the rule; sets of rule 1 stay readable and regenerable.

Resume: the manifest is written first (complete: false); a shard file is kept on re-run when
its sha256 matches the manifest or, with none recorded, when it loads and its labels and seeds
equal the plan's. Shard writes are atomic, so a run killed at any moment and re-run with the
same arguments makes exactly the images an uninterrupted run makes, sampling only what is
missing. Different arguments into the same directory are refused.

Parallel: rank r of world_size samples the shards s with s % world_size == r. Under
torch.distributed, rank 0 waits at a barrier, then verifies every shard and writes the final
manifest; without it, whichever rank finds every shard present at its end finalises.
"""

from __future__ import annotations

import contextlib
import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, get_args

import numpy as np
import torch

from synthmix.data import to_uint8_images
from synthmix.device import autocast, cpu_native_bf16, resolve_amp
from synthmix.diffusion.noise import make_noise
from synthmix.diffusion.settings import (
    DEFAULT_SAMPLING,
    DEFAULT_SEED_RULE,
    SEED_RULES,
    SamplerSettings,
)
from synthmix.errors import ConfigError, DataError, SynthmixError
from synthmix.files import sha256_file
from synthmix.synthetic.format import (
    MANIFEST_NAME,
    SHARD_PATTERN,
    load_shard,
    new_manifest,
    now_iso,
    read_manifest,
    shard_file_name,
    write_manifest,
    write_shard,
)

logger = logging.getLogger(__name__)

SEED_STRIDE = 2**32
MAX_BASE_SEED = 2**31 - 1  # keeps every seed_i below 2**63 (int64, torch.Generator)
SEED_RULE = "seed_i = base_seed * 2**32 + i, i = the image's index in the set"  # rule 1's text
ORDER_RULE = "j-th image of class c at (j + 1/2) / n_c; sorted by that, ties by class"
# Manifest fields that must agree for a re-run to continue an existing directory.
IDENTITY_KEYS = (
    "format_version", "class_names", "image_shape", "n_per_class", "shard_size", "provenance",
    "generation",
)

SampleFn = Callable[[torch.Tensor, list[int]], torch.Tensor]  # (labels (B,), seeds) -> x0


@dataclass(frozen=True, eq=False)
class GenerationPlan:
    """Every image's label and seed, in set order."""

    n_per_class: tuple[int, ...]
    base_seed: int
    shard_size: int
    labels: np.ndarray  # (N,) int64
    seeds: np.ndarray  # (N,) int64

    @property
    def num_images(self) -> int:
        return int(self.labels.shape[0])

    @property
    def num_shards(self) -> int:
        return -(-self.num_images // self.shard_size)

    def shard_rows(self, s: int) -> slice:
        """Rows of the set that shard s holds."""
        return slice(s * self.shard_size, min((s + 1) * self.shard_size, self.num_images))


def plan_generation(n_per_class: Sequence[int], base_seed: int, shard_size: int) -> GenerationPlan:
    """Labels and seeds of every image, a pure function of the three arguments."""
    counts = tuple(int(n) for n in n_per_class)
    if not counts or min(counts) < 0 or sum(counts) == 0:
        raise ConfigError(f"n_per_class must be counts >= 0 with a positive sum, got {counts}")
    if not 0 <= int(base_seed) <= MAX_BASE_SEED:
        raise ConfigError(f"base_seed must be in 0..{MAX_BASE_SEED}, got {base_seed}")
    if int(shard_size) < 1:
        raise ConfigError(f"shard_size must be >= 1, got {shard_size}")
    # Integer keys (2j + 1) * lcm / n_c compare the positions (j + 1/2) / n_c exactly.
    lcm = math.lcm(*(n for n in counts if n > 0))
    order = sorted(
        ((2 * j + 1) * (lcm // n), c) for c, n in enumerate(counts) for j in range(n)
    )
    labels = np.array([c for _, c in order], dtype=np.int64)
    seeds = int(base_seed) * SEED_STRIDE + np.arange(len(order), dtype=np.int64)
    labels.setflags(write=False)
    seeds.setflags(write=False)
    return GenerationPlan(counts, int(base_seed), int(shard_size), labels, seeds)


def generation_record(seed_rule: int, num_shards: int) -> dict[str, Any]:
    """The manifest's `generation` entry: how labels and seeds were planned and used."""
    if seed_rule not in SEED_RULES:
        raise ConfigError(f"seed rule {seed_rule!r} is unknown",
                          hint=f"known rules: {sorted(SEED_RULES)}")
    return {"seed_rule": f"{SEED_RULE}; noise: {SEED_RULES[seed_rule]}",
            "seed_rule_version": seed_rule, "order": ORDER_RULE, "num_shards": num_shards}


SamplingPrecision = Literal["auto", "fp32", "bf16"]
SAMPLING_PRECISIONS: tuple[str, ...] = get_args(SamplingPrecision)


def sampling_dtype(device: torch.device | str, precision: str = "auto") -> torch.dtype | None:
    """The U-Net's autocast dtype when sampling. `auto`: bf16 on CUDA (fp16 where the GPU lacks
    bf16), where fp32 convolutions are several times slower; on the CPU bf16 where it has
    native bf16 (AVX512_BF16/AMX), fp32 elsewhere (bf16 is 10-15x slower on AVX2). Measured on a
    2-core AMX host (benchmarks/results/cpu-2core-sampling-precision-cifar10.json): bf16
    sampled the CIFAR-10 cpu study's DDPM 2.24x faster, every pixel within 3 of 255 levels of
    fp32's, validation CAS +0.015 [-0.000, +0.031] and FID 4.12 against 4.09 (n=3 classifier
    seeds): no loss found. `fp32`: no autocast; `bf16`: bf16 on any device."""
    if precision not in SAMPLING_PRECISIONS:
        raise ConfigError(f"sampling precision {precision!r} is unknown",
                          hint=f"choose one of {', '.join(SAMPLING_PRECISIONS)}")
    device = torch.device(device)
    if precision == "fp32":
        return None
    if precision == "bf16":
        return torch.bfloat16
    if device.type == "cpu":
        return torch.bfloat16 if cpu_native_bf16() else None
    return resolve_amp("auto", device)


def precision_label(dtype: torch.dtype | None) -> str:
    """How a manifest names the sampling precision."""
    if dtype is None:
        return "fp32"
    return {torch.bfloat16: "bf16", torch.float16: "fp16"}[dtype]


def make_diffusion_sample_fn(
    model: torch.nn.Module,
    schedule: Any,
    settings: SamplerSettings,
    device: torch.device | str,
    seed_rule: int = DEFAULT_SEED_RULE,
    compile_batch: int | None = None,
    amp_dtype: torch.dtype | None = None,
) -> SampleFn:
    """A `sample_fn` running `synthmix.diffusion.samplers.sample` with per-image noise.

    `compile_batch`: torch.compile the network once for batches of this many images (smaller
    batches are padded to it); the first batch then pays the compile time. `amp_dtype`: the
    network runs under autocast to it (`sampling_dtype`); the sampler's update stays fp32."""
    from synthmix.diffusion.samplers import sample

    net = model
    if compile_batch:
        from synthmix.diffusion.compiled import compile_for_sampling

        net = compile_for_sampling(model, compile_batch, guided=settings.guidance_scale != 0)

    def sample_fn(labels: torch.Tensor, seeds: list[int]) -> torch.Tensor:
        noise = make_noise(seeds, device, seed_rule)
        with torch.no_grad(), autocast(torch.device(device), amp_dtype):
            x0 = sample(settings.sampler, net, schedule, labels.to(device), noise,
                        **settings.sampler_kwargs())  # (B, C, H, W)
        return x0.float().cpu()

    return sample_fn


def sampling_provenance(settings: SamplerSettings, T: int, base_seed: int,
                        seed_rule: int) -> dict[str, Any]:
    """What a manifest records of how its images were sampled (ancestral: steps = T)."""
    steps = T if settings.sampler == "ancestral" else settings.steps
    return {
        "sampler": settings.sampler, "steps": steps, "guidance_scale": settings.guidance_scale,
        "eta": settings.eta, "thresholding": settings.thresholding,
        "thresholding_percentile": settings.thresholding_percentile, "base_seed": base_seed,
        "seed_rule": seed_rule,
    }  # fmt: skip


def settings_of(manifest: dict[str, Any]) -> tuple[SamplerSettings, int]:
    """The sampler settings and seed rule a set was made with (sets older than thresholding and
    seed rule 2 recorded neither: they used none and rule 1)."""
    prov = manifest.get("provenance") or {}
    rule = int(prov.get("seed_rule") or (manifest.get("generation") or {}).get("seed_rule_version")
               or 1)
    settings = SamplerSettings(
        sampler=prov["sampler"], steps=int(prov["steps"]),
        guidance_scale=float(prov["guidance_scale"]), eta=float(prov.get("eta") or 0.0),
        thresholding=prov.get("thresholding") or "none",
        thresholding_percentile=float(prov.get("thresholding_percentile")
                                      or DEFAULT_SAMPLING.thresholding_percentile),
    )  # fmt: skip
    return settings, rule


def sample_from_ddpm(
    ddpm: Any,
    out_dir: str | Path,
    *,
    n_per_class: int,
    settings: SamplerSettings = DEFAULT_SAMPLING,
    base_seed: int = 0,
    seed_rule: int = DEFAULT_SEED_RULE,
    shard_size: int = 1024,
    batch_size: int = 256,
    checkpoint_sha256: str | None = None,
    wrap: Callable[[SampleFn], SampleFn] | None = None,
    progress: bool = True,
    compile_model: bool = False,
    rank: int | None = None,
    world_size: int | None = None,
    precision: SamplingPrecision = "auto",
) -> Path:
    """A class-balanced set from a trained DDPM (`synthmix.runs.ddpm.TrainedDDPM`), with the
    provenance every reader expects: checkpoint sha256 and run, sampler settings, seeds.

    Under torchrun the ranks share the shards; `rank=0, world_size=1` samples the whole set in
    this process alone. `precision`: the network's autocast when sampling (`sampling_dtype`);
    the manifest's `environment` records it."""
    device = next(ddpm.model.parameters()).device
    amp_dtype = sampling_dtype(device, precision)
    provenance = {
        "checkpoint_sha256": checkpoint_sha256 or sha256_file(ddpm.weights_file),
        "checkpoint": str(ddpm.weights_file),
        "run_dir": str(Path(ddpm.run_dir).resolve()),
        **sampling_provenance(settings, ddpm.schedule.T, base_seed, seed_rule),
    }
    fn = make_diffusion_sample_fn(ddpm.model, ddpm.schedule, settings, device, seed_rule,
                                  compile_batch=batch_size if compile_model else None,
                                  amp_dtype=amp_dtype)
    return generate_synthetic_set(
        out_dir, sample_fn=wrap(fn) if wrap else fn, class_names=ddpm.class_names,
        n_per_class=[n_per_class] * len(ddpm.class_names), image_shape=ddpm.image_shape,
        base_seed=base_seed, provenance=provenance, shard_size=shard_size,
        batch_size=batch_size, progress=progress, seed_rule=seed_rule,
        environment={"device": device.type, "torch": torch.__version__,
                     "precision": precision_label(amp_dtype)},
        rank=rank, world_size=world_size,
    )  # fmt: skip


def generate_synthetic_set(
    out_dir: str | Path,
    *,
    sample_fn: SampleFn,
    class_names: Sequence[str],
    n_per_class: Sequence[int],
    image_shape: Sequence[int],
    base_seed: int,
    provenance: dict[str, Any],
    shard_size: int = 1024,
    batch_size: int = 256,
    rank: int | None = None,
    world_size: int | None = None,
    progress: bool = True,
    seed_rule: int = DEFAULT_SEED_RULE,
    environment: dict[str, Any] | None = None,
) -> Path:
    """Sample the planned set into `out_dir`, resuming whatever an earlier run finished.

    `seed_rule` names how `sample_fn` turns seeds into noise (recorded in the manifest);
    `environment` (device, torch version) is recorded too, but a resume may differ in it."""
    out_dir = Path(out_dir)
    rank, world_size, distributed = _resolve_world(rank, world_size)
    plan = plan_generation(n_per_class, base_seed, shard_size)
    if len(class_names) != len(plan.n_per_class):
        raise ConfigError(f"{len(class_names)} class names but {len(plan.n_per_class)} counts")
    if batch_size < 1:
        raise ConfigError(f"batch_size must be >= 1, got {batch_size}")
    if provenance.get("base_seed", base_seed) != base_seed:
        raise ConfigError(f"provenance base_seed {provenance['base_seed']} != {base_seed}")
    manifest = new_manifest(
        class_names, image_shape, plan.n_per_class, plan.shard_size,
        {**provenance, "base_seed": base_seed},
        {"generation": generation_record(seed_rule, plan.num_shards)},
    )
    if environment:
        manifest["environment"] = environment
    existing = _check_existing(out_dir, manifest)
    if existing is not None:
        manifest["created"] = existing.get("created", manifest["created"])
        if existing.get("complete") is True and _recorded_shards_intact(out_dir, existing):
            logger.info("%s: already complete (%d images)", out_dir, plan.num_images)
            return out_dir
    recorded = {e.get("file"): e.get("sha256") for e in (existing or {}).get("shards", [])}
    mine = [s for s in range(plan.num_shards) if s % world_size == rank]
    done = _finished_shards(out_dir, plan, manifest, mine, recorded)
    if rank == 0:
        for s, sha in done.items():
            manifest["shards"][s]["sha256"] = sha
        write_manifest(out_dir, manifest)
    _sample_missing(out_dir, plan, manifest, sample_fn, [s for s in mine if s not in done],
                    batch_size, rank, world_size, progress)
    return _finish(out_dir, plan, manifest, rank, world_size, distributed)


def _resolve_world(rank: int | None, world_size: int | None) -> tuple[int, int, bool]:
    """(rank, world_size, whether to use torch.distributed collectives)."""
    dist = torch.distributed
    initialised = dist.is_available() and dist.is_initialized()
    if rank is None and world_size is None:
        if initialised:
            return dist.get_rank(), dist.get_world_size(), True
        return 0, 1, False
    if rank is None or world_size is None or not 0 <= rank < world_size:
        raise ConfigError(f"need 0 <= rank < world_size, got rank={rank} world={world_size}")
    collective = initialised and (rank, world_size) == (dist.get_rank(), dist.get_world_size())
    return rank, world_size, collective


def _check_existing(out_dir: Path, manifest: dict[str, Any]) -> dict[str, Any] | None:
    """The manifest already in `out_dir` if it plans the same set; refuse anything else."""
    if out_dir.exists() and not out_dir.is_dir():
        raise DataError("exists and is not a directory", path=out_dir)
    if not (out_dir / MANIFEST_NAME).exists():
        # Other ranks may be writing shards (and rank 0 the manifest) here right now.
        names = sorted(p.name for p in out_dir.iterdir()) if out_dir.is_dir() else []
        foreign = [
            n for n in names
            if not (SHARD_PATTERN.fullmatch(n) or _is_temp(n) or n == MANIFEST_NAME)
        ]
        if foreign:
            raise DataError(
                f"is not empty ({foreign[0]}, ...) and holds no synthetic set", path=out_dir,
                hint="choose a new output directory",
            )
        return None
    existing = read_manifest(out_dir)
    diffs = _differences(existing, manifest, IDENTITY_KEYS)
    if diffs:
        raise DataError(
            "holds a synthetic set made with different arguments: " + "; ".join(diffs),
            path=out_dir, hint="re-run with the original arguments or choose a new directory",
        )
    return existing


def _differences(old: dict[str, Any], new: dict[str, Any], keys: Sequence[str]) -> list[str]:
    out = []
    for key in keys:
        a, b = old.get(key), new.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            out += [f"{key}.{d}" for d in _differences(a, b, sorted(set(a) | set(b)))]
        elif a != b:
            out.append(f"{key} {a!r} there, {b!r} now")
    return out


def _is_temp(name: str) -> bool:
    """A temporary file that `atomic_open` leaves behind when killed mid-write."""
    return name.startswith((".shard-", f".{MANIFEST_NAME}.")) and name.endswith(".tmp")


def _recorded_shards_intact(out_dir: Path, manifest: dict[str, Any]) -> bool:
    return all(
        (out_dir / e["file"]).is_file() and sha256_file(out_dir / e["file"]) == e.get("sha256")
        for e in manifest["shards"]
    )


def _verify_against_plan(
    out_dir: Path, plan: GenerationPlan, manifest: dict[str, Any], s: int
) -> str:
    """Load shard s, check it holds the planned labels and seeds; return its sha256."""
    path = out_dir / shard_file_name(s)
    rows = plan.shard_rows(s)
    _, labels, seeds = load_shard(
        path, rows.stop - rows.start, manifest["image_shape"], len(plan.n_per_class)
    )
    if not (np.array_equal(labels, plan.labels[rows]) and np.array_equal(seeds, plan.seeds[rows])):
        raise DataError("labels or seeds differ from the generation plan", path=path)
    return sha256_file(path)


def _finished_shards(
    out_dir: Path,
    plan: GenerationPlan,
    manifest: dict[str, Any],
    shard_ids: Sequence[int],
    recorded: dict[Any, Any],
) -> dict[int, str]:
    """Shards among `shard_ids` already on disk and intact, with their sha256."""
    done: dict[int, str] = {}
    for s in shard_ids:
        path = out_dir / shard_file_name(s)
        if not path.is_file():
            continue
        sha = recorded.get(path.name)
        try:
            if sha is None:
                done[s] = _verify_against_plan(out_dir, plan, manifest, s)
            elif sha256_file(path) == sha:
                done[s] = sha
            else:
                raise DataError("sha256 does not match the manifest", path=path)
        except DataError as e:
            logger.warning("%s; sampling it again", e)
    return done


def _sample_missing(
    out_dir: Path,
    plan: GenerationPlan,
    manifest: dict[str, Any],
    sample_fn: SampleFn,
    todo: Sequence[int],
    batch_size: int,
    rank: int,
    world_size: int,
    progress: bool,
) -> None:
    """Sample and write the shards in `todo`; rank 0 records each one's sha256 as it goes."""
    from tqdm.auto import tqdm

    mine = [s for s in range(plan.num_shards) if s % world_size == rank]
    total = sum(_rows_len(plan.shard_rows(s)) for s in mine)
    n_todo = sum(_rows_len(plan.shard_rows(s)) for s in todo)
    where = f" (rank {rank}/{world_size})" if world_size > 1 else ""
    bar = tqdm(
        total=total, initial=total - n_todo, unit="img", desc=f"sampling {out_dir.name}{where}",
        disable=not progress or rank != 0, mininterval=1.0,
    )
    start = time.perf_counter()
    with contextlib.closing(bar):
        for s in todo:
            rows = plan.shard_rows(s)
            images = _sample_rows(plan, rows, sample_fn, manifest["image_shape"], batch_size,
                                  bar.update)
            sha = write_shard(out_dir / shard_file_name(s), images, plan.labels[rows],
                              plan.seeds[rows])
            if rank == 0:
                manifest["shards"][s]["sha256"] = sha
                write_manifest(out_dir, manifest)
    seconds = time.perf_counter() - start
    logger.info(
        "%s%s: sampled %d images in %d shards in %.1f s (%.1f img/s); %d of %d were already done",
        out_dir, where, n_todo, len(todo), seconds, n_todo / max(seconds, 1e-9),
        total - n_todo, total,
    )


def _rows_len(rows: slice) -> int:
    return int(rows.stop - rows.start)


def _sample_rows(
    plan: GenerationPlan,
    rows: slice,
    sample_fn: SampleFn,
    image_shape: Sequence[int],
    batch_size: int,
    on_batch: Callable[[int], Any],
) -> np.ndarray:
    """uint8 images (n, H, W, C) for the planned rows, sampled in batches."""
    height, width, channels = (int(d) for d in image_shape)
    parts = []
    for lo in range(rows.start, rows.stop, batch_size):
        hi = min(lo + batch_size, rows.stop)
        labels = torch.from_numpy(plan.labels[lo:hi].copy())  # (B,)
        seeds = [int(x) for x in plan.seeds[lo:hi]]
        x0 = sample_fn(labels, seeds)  # (B, C, H, W) in [-1, 1]
        if not isinstance(x0, torch.Tensor) or tuple(x0.shape) != (hi - lo, channels, height,
                                                                       width):
            got = tuple(x0.shape) if isinstance(x0, torch.Tensor) else type(x0).__name__
            raise ConfigError(
                f"sampler returned {got}, expected ({hi - lo}, {channels}, {height}, {width})"
            )
        if not torch.isfinite(x0).all():
            raise SynthmixError(
                f"sampler returned non-finite values for seeds {seeds[0]}..{seeds[-1]}",
                hint="the checkpoint may have diverged",
            )
        parts.append(to_uint8_images(x0))  # (B, H, W, C)
        on_batch(hi - lo)
    return np.concatenate(parts)


def _finish(
    out_dir: Path,
    plan: GenerationPlan,
    manifest: dict[str, Any],
    rank: int,
    world_size: int,
    distributed: bool,
) -> Path:
    """Verify every shard and mark the set complete, once all ranks are done."""
    if distributed:
        dist = torch.distributed
        dist.barrier()
        box: list[str | None] = [None]
        if rank == 0:
            try:
                _finalise(out_dir, plan, manifest, clean_temp=True)
            except DataError as e:
                box[0] = str(e)
        dist.broadcast_object_list(box, src=0)
        if box[0] is not None:
            raise DataError(box[0] if rank == 0 else f"rank 0 could not finalise: {box[0]}")
        return out_dir
    missing = [s for s in range(plan.num_shards) if not (out_dir / shard_file_name(s)).is_file()]
    if missing:
        logger.info(
            "%s: rank %d of %d done; %d shards of other ranks missing, the rank that finishes "
            "last completes the set", out_dir, rank, world_size, len(missing),
        )
        return out_dir
    _finalise(out_dir, plan, manifest, clean_temp=world_size == 1)
    return out_dir


def _finalise(
    out_dir: Path, plan: GenerationPlan, manifest: dict[str, Any], clean_temp: bool
) -> None:
    for s, entry in enumerate(manifest["shards"]):
        entry["sha256"] = _verify_against_plan(out_dir, plan, manifest, s)
    manifest["complete"] = True
    manifest["completed"] = now_iso()
    write_manifest(out_dir, manifest)
    if clean_temp:  # only when no other process can be mid-write
        for p in out_dir.glob(".*"):
            if _is_temp(p.name):
                p.unlink(missing_ok=True)
    logger.info(
        "%s: complete, %d images in %d shards (%s per class)", out_dir, plan.num_images,
        plan.num_shards, ", ".join(str(n) for n in plan.n_per_class),
    )

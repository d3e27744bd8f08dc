"""Quality versus network evaluations: CAS of synthetic sets made by each sampler from one DDPM.

For every sampler config (ancestral at T, the study's; DDIM and DPM-Solver++ at a few step
counts) the same class-balanced set is sampled from the same DDPM with the same per-image
seeds, so every set starts from the same x_T noise and differs only by the sampler. Each set
is scored by CAS (macro-F1 on the real test set of a classifier trained on the set alone, mean
± std over seeds) beside one real-trained baseline of the same recipe and size. The cheapest
config within 1 macro-F1 point of ancestral-T picks the default sampler.

    PYTHONPATH=src python benchmarks/sampler_quality.py RUN_DIR --real mnist \
        --data-dir ../shared/datasets --out runs/sampler-quality

Writes OUT/sets/<sampler>-<steps>/ (synthetic sets), OUT/cas/ (classifier runs),
OUT/generation.json (sampling times), OUT/sampler_quality.json and OUT/sampler_quality.png, and
prints a markdown table. A re-run reuses complete sets and finished classifier runs.
"""

from __future__ import annotations

import argparse
import io
import json
import logging
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from synthmix.errors import ConfigError, SynthmixError
from synthmix.synthetic.cas import cas_classifier_config

if TYPE_CHECKING:
    from synthmix.runs.ddpm import TrainedDDPM
    from synthmix.synthetic.generate import SampleFn

log = logging.getLogger("synthmix.sampler_quality")

DEFAULT_CONFIGS = ("ancestral", "ddim:10", "ddim:25", "ddim:50", "dpmpp:10", "dpmpp:25", "dpmpp:50")
TOLERANCE = 0.01  # "within 1 point" of macro-F1 on its [0, 1] scale
RESULT_JSON = "sampler_quality.json"
RESULT_PNG = "sampler_quality.png"
TIMINGS_JSON = "generation.json"


@dataclass(frozen=True)
class SamplerSpec:
    """One point of the curve: a sampler and its number of steps."""

    sampler: str
    steps: int

    @property
    def label(self) -> str:
        return f"{self.sampler}-{self.steps}"


def parse_configs(specs: Sequence[str], T: int) -> list[SamplerSpec]:
    """'ancestral', 'ancestral:T', 'ddim:10', 'dpmpp:25' -> specs; ancestral always runs T steps."""
    from synthmix.diffusion.samplers import SAMPLERS

    out: list[SamplerSpec] = []
    for text in specs:
        name, _, steps_text = text.partition(":")
        if name not in SAMPLERS:
            raise ConfigError(
                f"--configs {text!r}: unknown sampler {name!r}",
                hint=f"choose from {', '.join(SAMPLERS)}",
            )
        try:
            steps = T if name == "ancestral" and not steps_text else int(steps_text)
        except ValueError:
            raise ConfigError(f"--configs {text!r}: write SAMPLER:STEPS, e.g. ddim:25") from None
        if name == "ancestral" and steps != T:
            raise ConfigError(
                f"--configs {text!r}: ancestral sampling runs all T={T} steps of this DDPM",
                hint=f"write 'ancestral' or 'ancestral:{T}'",
            )
        if not 1 <= steps <= T:
            raise ConfigError(f"--configs {text!r}: steps must be in 1..{T}")
        spec = SamplerSpec(name, steps)
        if spec in out:
            raise ConfigError(f"--configs {text!r} is given twice")
        out.append(spec)
    if not out:
        raise ConfigError("--configs: give at least one sampler config")
    return out


class SamplingClock:
    """Adds up the seconds and images of the sample_fn it wraps (`wrap`)."""

    def __init__(self) -> None:
        self.seconds, self.images = 0.0, 0

    def wrap(self, sample_fn: SampleFn) -> SampleFn:
        def timed(labels: torch.Tensor, seeds: list[int]) -> torch.Tensor:
            start = time.perf_counter()
            x0 = sample_fn(labels, seeds)  # (B, C, H, W); synchronous: the result is on the CPU
            self.seconds += time.perf_counter() - start
            self.images += len(seeds)
            return x0

        return timed


def _warm_up(ddpm: TrainedDDPM, device: torch.device, batch_size: int) -> None:
    """One short untimed sampling call, so one-time costs (kernels, allocator) miss the clock."""
    from synthmix.synthetic.generate import make_diffusion_sample_fn

    n = min(batch_size, 64)
    fn = make_diffusion_sample_fn(ddpm.model, ddpm.schedule, "ddim", 2, 1.0, 0.0, device)
    fn(torch.arange(n) % len(ddpm.class_names), list(range(n)))


def generate_sets(
    ddpm: TrainedDDPM,
    specs: Sequence[SamplerSpec],
    out: Path,
    *,
    checkpoint_sha: str,
    n_per_class: int,
    guidance_scale: float,
    base_seed: int,
    batch_size: int,
    device: torch.device,
    progress: bool,
) -> dict[str, dict[str, Any]]:
    """Sample (or reuse) one set per spec in out/sets/<label>; their sampling times by label."""
    from synthmix.files import atomic_write_json
    from synthmix.synthetic.format import MANIFEST_NAME
    from synthmix.synthetic.generate import sample_from_ddpm

    timings_path = out / TIMINGS_JSON
    timings: dict[str, Any] = json.loads(timings_path.read_text()) if timings_path.is_file() else {}
    warm = False
    for spec in specs:
        set_dir = out / "sets" / spec.label
        fresh = not (set_dir / MANIFEST_NAME).is_file()
        clock = SamplingClock()
        if not warm and not _is_complete(set_dir):
            _warm_up(ddpm, device, batch_size)
            warm = True
        sample_from_ddpm(
            ddpm, set_dir, n_per_class=n_per_class, sampler=spec.sampler, steps=spec.steps,
            guidance_scale=guidance_scale, base_seed=base_seed, shard_size=max(1, batch_size),
            batch_size=batch_size, checkpoint_sha256=checkpoint_sha, wrap=clock.wrap,
            progress=progress,
        )  # fmt: skip
        if clock.images:
            # A resumed set adds this call's timed images to the earlier calls' ones.
            old = {} if fresh else timings.get(spec.label, {})
            timings[spec.label] = {
                "seconds": old.get("seconds", 0.0) + clock.seconds,
                "images": old.get("images", 0) + clock.images,
            }
            atomic_write_json(timings_path, timings)
    return {spec.label: timings.get(spec.label, {}) for spec in specs}


def _is_complete(set_dir: Path) -> bool:
    from synthmix.synthetic.format import MANIFEST_NAME

    try:
        return bool(json.loads((set_dir / MANIFEST_NAME).read_text()).get("complete"))
    except (OSError, ValueError):
        return False


def real_data_config(real: str, data_dir: str | None, manifest: dict[str, Any]) -> Any:
    """The real data's DataConfig from the DDPM run's config.yaml, as evaluate-synthetic does."""
    from synthmix.commands.quality import ddpm_data_section, resolve_data_config

    given = data_dir or ddpm_data_section(manifest).get("data_dir")
    args = argparse.Namespace(
        real=real, data_dir=given, image_size=None, resize=None, channels=None, split_seed=None
    )
    return resolve_data_config(args, manifest)


def score_sets(
    specs: Sequence[SamplerSpec],
    out: Path,
    *,
    real: str,
    data_dir: str | None,
    classifier_cfg: Any,
    seeds: int,
    progress: bool,
) -> dict[str, Any]:
    """CAS of every set, plus one real-trained baseline shared by all of them."""
    from synthmix.runs.common import prepare_data
    from synthmix.synthetic.cas import classification_accuracy_score as cas
    from synthmix.synthetic.format import read_synthetic_set

    sets = {spec.label: read_synthetic_set(out / "sets" / spec.label) for spec in specs}
    first = sets[specs[0].label]
    data_cfg = real_data_config(real, data_dir, first.manifest)
    data = prepare_data(data_cfg)
    common = {"seeds": seeds, "progress": progress, "prepared": data}
    # Every set has the same labels, so the real side (same size, same seeds) is the same
    # classifier for all of them: it is trained once, under cas/real-baseline.
    baseline = cas(
        first.path,
        data_cfg,
        classifier_cfg,
        out / "cas" / "real-baseline",
        synthetic=first,
        roles=("real",),
        **common,
    )
    scores = {
        label: cas(
            syn.path,
            data_cfg,
            classifier_cfg,
            out / "cas" / label,
            synthetic=syn,
            roles=("synthetic",),
            **common,
        )["synthetic"]
        for label, syn in sets.items()
    }
    return {
        "data_cfg": data_cfg,
        "n_test": baseline["n_test"],
        "real": baseline["real"],
        "synthetic": scores,
    }


def cheapest_within(
    rows: Sequence[dict[str, Any]], reference: dict[str, Any], tolerance: float = TOLERANCE
) -> dict[str, Any] | None:
    """The row with the fewest network evaluations whose mean CAS macro-F1 is at least the
    reference's minus `tolerance` (ties: the higher CAS), or None."""
    floor = reference["cas_macro_f1"]["mean"] - tolerance
    ok = [r for r in rows if r["cas_macro_f1"]["mean"] >= floor - 1e-12]
    if not ok:
        return None
    return min(ok, key=lambda r: (r["nfe_per_image"], -r["cas_macro_f1"]["mean"]))


def _generation_entry(timing: dict[str, Any]) -> dict[str, Any] | None:
    if not timing.get("images"):
        return None  # the set was made elsewhere: no time recorded
    seconds, images = float(timing["seconds"]), int(timing["images"])
    return {
        "seconds": round(seconds, 3),
        "images_timed": images,
        "images_per_second": round(images / max(seconds, 1e-9), 3),
    }


def run_sampler_quality(
    run_dir: Path,
    out: Path,
    *,
    real: str,
    data_dir: str | None = None,
    configs: Sequence[str] = DEFAULT_CONFIGS,
    n_per_class: int = 100,
    guidance_scale: float = 3.0,
    seeds: int = 2,
    base_seed: int = 0,
    classifier_preset: str = "tiny",
    max_epochs: int = 15,
    patience: int = 3,
    batch_size: int | None = None,
    device: str = "auto",
    progress: bool = True,
) -> dict[str, Any]:
    """Sample one set per sampler config, score each by CAS, write OUT/sampler_quality.json and
    .png; returns what the JSON holds."""
    from synthmix.config import to_dict
    from synthmix.device import select_device
    from synthmix.diffusion.samplers import network_evaluations
    from synthmix.files import atomic_write_json, sha256_file
    from synthmix.runinfo import code_version, hardware
    from synthmix.runs.ddpm import load_ddpm

    if n_per_class < 1 or seeds < 1:
        raise ConfigError("--n-per-class and --seeds must be >= 1")
    start = time.perf_counter()
    torch_device = select_device(device)
    ddpm = load_ddpm(Path(run_dir), device=torch_device)
    T = ddpm.schedule.T
    specs = parse_configs(configs, T)
    ccfg = cas_classifier_config(classifier_preset, max_epochs, patience, device)
    batch = batch_size or ddpm.cfg.sample.batch_size
    checkpoint_sha = sha256_file(ddpm.weights_file)
    timings = generate_sets(
        ddpm,
        specs,
        out,
        checkpoint_sha=checkpoint_sha,
        n_per_class=n_per_class,
        guidance_scale=guidance_scale,
        base_seed=base_seed,
        batch_size=batch,
        device=torch_device,
        progress=progress,
    )
    scores = score_sets(
        specs,
        out,
        real=real,
        data_dir=data_dir,
        classifier_cfg=ccfg,
        seeds=seeds,
        progress=progress,
    )
    rows = [
        {
            "label": spec.label,
            "sampler": spec.sampler,
            "steps": spec.steps,
            "nfe_per_image": network_evaluations(spec.sampler, spec.steps, T, guidance_scale),
            "set_dir": f"sets/{spec.label}",
            "cas_dir": f"cas/{spec.label}",
            "generation": _generation_entry(timings[spec.label]),
            "cas_macro_f1": scores["synthetic"][spec.label]["macro_f1"],
            "cas_accuracy": scores["synthetic"][spec.label]["accuracy"],
        }
        for spec in specs
    ]
    # The study's sampler is the reference; without it, the most expensive config is.
    reference = next(
        (r for r in rows if r["sampler"] == "ancestral"),
        max(rows, key=lambda r: r["nfe_per_image"]),
    )
    for r in rows:
        r["delta_macro_f1_vs_reference"] = (
            r["cas_macro_f1"]["mean"] - reference["cas_macro_f1"]["mean"]
        )
    best = cheapest_within(rows, reference)
    result = {
        "ddpm_run": str(Path(run_dir).resolve()),
        "checkpoint_sha256": checkpoint_sha,
        "T": T,
        "guidance_scale": guidance_scale,
        "n_per_class": n_per_class,
        "num_images": n_per_class * len(ddpm.class_names),
        "base_seed": base_seed,
        "batch_size": batch,
        "device": str(torch_device),
        "real_data": to_dict(scores["data_cfg"]),
        "n_test": scores["n_test"],
        "classifier": to_dict(ccfg),
        "cas_seeds": seeds,
        "tolerance_macro_f1": TOLERANCE,
        "real_baseline": {
            "macro_f1": scores["real"]["macro_f1"],
            "accuracy": scores["real"]["accuracy"],
            "cas_dir": "cas/real-baseline",
        },
        "configs": rows,
        "reference": reference["label"],
        "cheapest_within_tolerance": None
        if best is None
        else {
            "label": best["label"],
            "nfe_per_image": best["nfe_per_image"],
            "nfe_ratio": reference["nfe_per_image"] / best["nfe_per_image"],
            "delta_macro_f1": best["delta_macro_f1_vs_reference"],
        },
        "hardware": hardware(),
        "code_version": code_version(),
        "command": " ".join(sys.argv),
        "wall_seconds": round(time.perf_counter() - start, 2),
    }
    atomic_write_json(out / RESULT_JSON, result)
    plot_curve(result, out / RESULT_PNG)
    return result


def _fmt(stats: dict[str, Any]) -> str:
    from synthmix.metrics.classification import format_mean_std

    return format_mean_std(stats)


def markdown_table(result: dict[str, Any]) -> str:
    """The result as a markdown table plus the verdict lines."""
    lines = [
        f"CAS on {result['real_data']['dataset']} ({result['num_images']} synthetic images, "
        f"w={result['guidance_scale']:g}, classifier {result['classifier']['model']['preset']}, "
        f"CAS mean ± std over n={result['cas_seeds']} classifier seeds; NFE = network evaluations "
        "per image, a guided step counts 2)",
        "",
        "| sampler | steps | NFE/image | sampling s | images/s | CAS macro-F1 | accuracy "
        f"| Δ macro-F1 vs {result['reference']} |",
        "|---|---:|---:|---:|---:|---|---|---:|",
    ]
    for r in result["configs"]:
        g = r["generation"]
        secs, rate = (
            (f"{g['seconds']:.1f}", f"{g['images_per_second']:.1f}") if g else ("n/a", "n/a")
        )
        lines.append(
            f"| {r['sampler']} | {r['steps']} | {r['nfe_per_image']} | {secs} | {rate} "
            f"| {_fmt(r['cas_macro_f1'])} | {_fmt(r['cas_accuracy'])} "
            f"| {r['delta_macro_f1_vs_reference']:+.3f} |"
        )
    base = result["real_baseline"]
    lines.append(
        f"| real (classifier half, same size) | | | | | {_fmt(base['macro_f1'])} "
        f"| {_fmt(base['accuracy'])} | |"
    )
    best, points = result["cheapest_within_tolerance"], 100 * result["tolerance_macro_f1"]
    lines.append("")
    if best is None:
        lines.append(f"no config is within {points:g} macro-F1 point of {result['reference']}")
    else:
        verdict = "meets" if best["nfe_ratio"] >= 10 else "misses"
        lines.append(
            f"cheapest within {points:g} macro-F1 point of {result['reference']}: "
            f"{best['label']} ({best['nfe_per_image']} NFE/image, "
            f"{best['nfe_ratio']:.1f}x fewer, Δ {best['delta_macro_f1']:+.3f}); "
            f"{verdict} the >= 10x target"
        )
    return "\n".join(lines)


def plot_curve(result: dict[str, Any], path: Path) -> None:
    """CAS macro-F1 vs NFE per image (log x): a line per sampler, the reference as a marked
    point, the real baseline and the reference's 1-point band as horizontal lines."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    from synthmix.files import atomic_write_bytes

    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    rows = result["configs"]
    for sampler in dict.fromkeys(r["sampler"] for r in rows):
        pts = sorted(
            (r["nfe_per_image"], r["cas_macro_f1"])
            for r in rows
            if r["sampler"] == sampler and r["label"] != result["reference"]
        )
        if pts:
            ax.errorbar(
                [p[0] for p in pts],
                [p[1]["mean"] for p in pts],
                yerr=[p[1]["std"] for p in pts],
                marker="o",
                capsize=3,
                label=sampler,
            )
    ref = next(r for r in rows if r["label"] == result["reference"])
    y_ref = ref["cas_macro_f1"]["mean"]
    ax.errorbar(
        [ref["nfe_per_image"]],
        [y_ref],
        yerr=[ref["cas_macro_f1"]["std"]],
        marker="*",
        markersize=14,
        color="black",
        capsize=3,
        linestyle="none",
        label=f"{ref['label']} (reference)",
    )
    ax.axhline(
        y_ref - result["tolerance_macro_f1"],
        color="black",
        linestyle=":",
        linewidth=1,
        label=f"{ref['label']} - 1 point",
    )
    base = result["real_baseline"]["macro_f1"]["mean"]
    ax.axhline(base, color="tab:green", linestyle="--", label="real data, same size")
    ax.set_xscale("log")
    nfes = sorted({r["nfe_per_image"] for r in rows})
    ax.set_xticks(nfes, [str(n) for n in nfes])  # the measured NFEs, not log-minor labels
    ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    ax.set_xlabel("network evaluations per image (log scale)")
    ax.set_ylabel("CAS macro-F1 on the real test set")
    ax.set_title(
        f"sampler quality vs cost ({result['real_data']['dataset']}, "
        f"w={result['guidance_scale']:g}, n={result['cas_seeds']} seeds)",
        fontsize=10,
    )
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=120)
    plt.close(fig)
    atomic_write_bytes(path, buf.getvalue())


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("run_dir", type=Path, help="a trained DDPM run directory (train-ddpm)")
    p.add_argument("--real", required=True, help="the real data set, e.g. mnist, digits")
    p.add_argument(
        "--data-dir",
        help="where the real data set's files are (default: the DDPM run's data.data_dir)",
    )
    p.add_argument("--n-per-class", type=int, default=100, help="images per class and set")
    p.add_argument(
        "--configs",
        nargs="+",
        default=list(DEFAULT_CONFIGS),
        metavar="SAMPLER:STEPS",
        help="sampler configs (default: %(default)s; 'ancestral' runs all T steps)",
    )
    p.add_argument("--guidance", type=float, default=3.0, help="guidance scale w (study: 3)")
    p.add_argument("--seeds", type=int, default=2, help="CAS classifiers per config")
    p.add_argument(
        "--seed",
        type=int,
        default=0,
        help="base seed of the per-image seeds, shared by every set (same x_T)",
    )
    p.add_argument("--out", type=Path, help="output directory (default: RUN_DIR/sampler-quality)")
    p.add_argument("--classifier-preset", choices=("tiny", "small", "paper"), default="tiny")
    p.add_argument("--max-epochs", type=int, default=15, help="classifier epochs")
    p.add_argument("--patience", type=int, default=3, help="early-stopping patience (epochs)")
    p.add_argument(
        "--batch-size",
        type=int,
        help="images per sampling batch (default: the run's sample.batch_size)",
    )
    p.add_argument("--num-threads", type=int, help="torch intra-op threads")
    p.add_argument("--device", default="auto", help="torch device (default: auto)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    from synthmix.device import set_threads

    logging.basicConfig(level=logging.INFO, format="%(message)s")
    args = parse_args(argv)
    set_threads(args.num_threads)
    out = args.out or args.run_dir / "sampler-quality"
    try:
        result = run_sampler_quality(
            args.run_dir,
            out,
            real=args.real,
            data_dir=args.data_dir,
            configs=args.configs,
            n_per_class=args.n_per_class,
            guidance_scale=args.guidance,
            seeds=args.seeds,
            base_seed=args.seed,
            classifier_preset=args.classifier_preset,
            max_epochs=args.max_epochs,
            patience=args.patience,
            batch_size=args.batch_size,
            device=args.device,
            progress=not args.no_progress,
        )
    except SynthmixError as e:
        print(f"sampler_quality: error: {e}", file=sys.stderr)
        return 2
    print(markdown_table(result))
    print(f"\nwritten: {out / RESULT_JSON}, {out / RESULT_PNG} ({result['wall_seconds']:.1f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Quality versus network evaluations: the worth of synthetic sets made by each sampler setting.

For every sampler config (ancestral at T, the study's; DDIM and DPM-Solver++ at a few step
counts), each x_0 thresholding mode and each guidance scale asked for, the same class-balanced
set is sampled from one DDPM with the same per-image seeds (every set starts from the same x_T)
and scored on VALIDATION images, never the test set (`synthmix.synthetic.tune`): macro-F1 on the
classifier half's validation split of a classifier trained on the set alone (mean ± std over
seeds), beside a real-trained baseline of the same recipe and size. Each set also gets its
isolated-pixel count (salt-and-pepper noise per image, `synthmix.metrics.speckle`) and its FID
against the validation images in the feature space of that real-trained baseline. The cheapest
config within 1 macro-F1 point of ancestral-T picks the default sampler.

    PYTHONPATH=src python benchmarks/sampler_quality.py RUN_DIR --real mnist \\
        --data-dir ../shared/datasets --out runs/sampler-quality

Writes OUT/<candidate>/ (sets, classifier runs, sampling times), OUT/real-baseline/,
OUT/sampler_quality.json and OUT/sampler_quality.png, and prints a markdown table. A re-run
reuses complete sets and finished classifier runs.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch

from synthmix.errors import ConfigError, SynthmixError
from synthmix.synthetic.generate import SAMPLING_PRECISIONS, SamplingPrecision

log = logging.getLogger("synthmix.sampler_quality")

DEFAULT_CONFIGS = ("ancestral", "ddim:10", "ddim:25", "ddim:50", "dpmpp:10", "dpmpp:25", "dpmpp:50")
TOLERANCE = 0.01  # "within 1 point" of macro-F1 on its [0, 1] scale
RESULT_JSON = "sampler_quality.json"
RESULT_PNG = "sampler_quality.png"


@dataclass(frozen=True)
class SamplerSpec:
    """One sampler and its number of steps."""

    sampler: str
    steps: int

    @property
    def label(self) -> str:
        return f"{self.sampler}-{self.steps}"


def parse_configs(specs: Sequence[str], T: int) -> list[SamplerSpec]:
    """'ancestral', 'ancestral:T', 'ddim:10', 'dpmpp:25' -> specs; ancestral always runs T steps."""
    from synthmix.synthetic.tune import parse_sampler

    out: list[SamplerSpec] = []
    for text in specs:
        spec = SamplerSpec(*parse_sampler(text, T))
        if spec in out:
            raise ConfigError(f"--configs {text!r} is given twice")
        out.append(spec)
    if not out:
        raise ConfigError("--configs: give at least one sampler config")
    return out


def cheapest_within(
    rows: Sequence[dict[str, Any]], reference: dict[str, Any], tolerance: float = TOLERANCE
) -> dict[str, Any] | None:
    """The row with the fewest network evaluations whose mean score is at least the
    reference's minus `tolerance` (ties: the higher score), or None."""
    floor = reference["val_macro_f1"]["mean"] - tolerance
    ok = [r for r in rows if r["val_macro_f1"]["mean"] >= floor - 1e-12]
    if not ok:
        return None
    return min(ok, key=lambda r: (r["nfe_per_image"], -r["val_macro_f1"]["mean"]))


def real_baseline(data: Any, n_train: int, ccfg: Any, out: Path, seeds: int,
                  progress: bool) -> dict[str, Any]:
    """The recipe on `n_train` real images of the classifier half (10% of them held out for
    early stopping, as the synthetic side does), scored on the validation split."""
    from synthmix.data.splits import stratified_holdout, stratified_prefix
    from synthmix.metrics.classification import mean_std
    from synthmix.runs.classifier import train_classifier

    rx, ry = data.classifier_train
    runs = []
    for k in range(seeds):
        idx = torch.as_tensor(stratified_prefix(ry.numpy(), None, k, count=min(n_train, len(ry))))
        keep, held = (torch.as_tensor(i) for i in stratified_holdout(ry[idx].numpy(), 0.1, k))
        cfg = replace(ccfg, train=replace(ccfg.train, seed=k))
        runs.append(train_classifier(
            cfg, (rx[idx][keep], ry[idx][keep]), (rx[idx][held], ry[idx][held]),
            data.classifier_val, data.class_names, out / f"seed-{k}",
            resume=(out / f"seed-{k}" / "checkpoints").is_dir(), progress=progress,
            split="validation"))
    return {"val_macro_f1": mean_std([r["macro_f1"] for r in runs]),
            "val_accuracy": mean_std([r["accuracy"] for r in runs]),
            "n_train": len(idx), "run_dir": "real-baseline/seed-0"}


def set_measures(row: dict[str, Any], data: Any, feature_net: Any) -> dict[str, Any]:
    """Isolated pixels per image, FID and improved precision/recall (k=3) against the
    validation images (feature space of the real-trained baseline)."""
    from synthmix.data import to_uint8_images
    from synthmix.metrics.features import FeatureNet, extract_features
    from synthmix.metrics.generative import frechet_distance, precision_recall
    from synthmix.metrics.speckle import speckle_summary
    from synthmix.synthetic.format import read_synthetic_set

    syn = read_synthetic_set(row["set_dir"])
    net = FeatureNet(feature_net)
    real_f = extract_features(net, to_uint8_images(data.classifier_val[0]))
    syn_f = extract_features(net, syn.images)
    pr = precision_recall(real_f, syn_f)
    return {**speckle_summary(syn.images), "fid_vs_validation": frechet_distance(real_f, syn_f),
            "precision_vs_validation": pr["precision"], "recall_vs_validation": pr["recall"]}


def run_sampler_quality(
    run_dir: Path, out: Path, *, real: str, data_dir: str | None = None,
    configs: Sequence[str] = DEFAULT_CONFIGS, guidance: Sequence[float] = (3.0,),
    thresholding: Sequence[str] = ("none",), n_per_class: int = 100, seeds: int = 2,
    base_seed: int = 0, classifier_preset: str = "tiny", max_epochs: int = 15,
    patience: int = 3, batch_size: int | None = None, device: str = "auto",
    progress: bool = True, which: str = "best", precision: SamplingPrecision = "auto",
    steps_per_epoch: int | None = None,
) -> dict[str, Any]:
    """Sample and score every candidate, write OUT/sampler_quality.json and .png; returns what
    the JSON holds. `which`: the DDPM checkpoint sampled from (`load_ddpm`); `precision`: the
    network's autocast when sampling (`synthmix.synthetic.generate.sampling_dtype`)."""
    from synthmix.config import to_dict
    from synthmix.device import select_device
    from synthmix.files import atomic_write_json, sha256_file
    from synthmix.runinfo import code_version, hardware
    from synthmix.runs.common import prepare_data
    from synthmix.runs.ddpm import load_ddpm
    from synthmix.synthetic.cas import cas_classifier_config, load_feature_classifier
    from synthmix.synthetic.generate import precision_label, sampling_dtype
    from synthmix.synthetic.tune import TuneData, candidate_grid, ddpm_device, tune_sampling

    if n_per_class < 2 or seeds < 1:
        raise ConfigError("--n-per-class must be >= 2 and --seeds >= 1")
    start = time.perf_counter()
    ddpm = load_ddpm(Path(run_dir), which=which, device=select_device(device))
    T = ddpm.schedule.T
    specs = parse_configs(configs, T)
    ccfg = cas_classifier_config(classifier_preset, max_epochs, patience, device,
                                 steps_per_epoch)
    data_cfg = real_data_config(real, data_dir, run_dir)
    data = prepare_data(data_cfg)
    grid = candidate_grid(ddpm.cfg.sample, T, guidance, [f"{s.sampler}:{s.steps}" for s in specs],
                          thresholding)  # type: ignore[arg-type]
    tuned = tune_sampling(ddpm, grid, TuneData(tuple(data.class_names), data.classifier_val,
                                               ccfg), out, n_per_class=n_per_class, seeds=seeds,
                          base_seed=base_seed, batch_size=batch_size or ddpm.cfg.sample.batch_size,
                          progress=progress, precision=precision)
    n_train = round(n_per_class * len(data.class_names) * 0.9)
    baseline = real_baseline(data, n_train, ccfg, out / "real-baseline", seeds, progress)
    feature_net = load_feature_classifier(out / "real-baseline" / "seed-0", ccfg,
                                          data.test[0].shape[1], len(data.class_names))
    rows = [{**r, **set_measures(r, data, feature_net)} for r in tuned["candidates"]]
    reference = next((r for r in rows if r["settings"]["sampler"] == "ancestral"),
                     max(rows, key=lambda r: r["nfe_per_image"]))
    for r in rows:
        r["delta_vs_reference"] = r["val_macro_f1"]["mean"] - reference["val_macro_f1"]["mean"]
    best = cheapest_within(rows, reference)
    result = {
        "scored_on": "the classifier half's validation split (never the test set)",
        "ddpm_run": str(Path(run_dir).resolve()), "checkpoint": which,
        "precision": precision_label(sampling_dtype(ddpm_device(ddpm), precision)),
        "checkpoint_sha256": sha256_file(
            ddpm.weights_file), "T": T, "n_per_class": n_per_class,
        "num_images": n_per_class * len(data.class_names), "base_seed": base_seed,
        "real_data": to_dict(data_cfg), "n_validation": len(data.classifier_val[1]),
        "classifier": to_dict(ccfg), "seeds": seeds, "tolerance_macro_f1": TOLERANCE,
        "real_baseline": baseline,
        "real_isolated_pixels": _real_speckle(data), "configs": rows,
        "reference": reference["label"],
        "cheapest_within_tolerance": None if best is None else {
            "label": best["label"], "nfe_per_image": best["nfe_per_image"],
            "nfe_ratio": reference["nfe_per_image"] / best["nfe_per_image"],
            "delta_macro_f1": best["delta_vs_reference"]},
        "hardware": hardware(), "code_version": code_version(), "command": " ".join(sys.argv),
        "wall_seconds": round(time.perf_counter() - start, 2),
    }  # fmt: skip
    atomic_write_json(out / RESULT_JSON, result)
    plot_curve(result, out / RESULT_PNG)
    return result


def _real_speckle(data: Any) -> dict[str, Any]:
    from synthmix.data import to_uint8_images
    from synthmix.metrics.speckle import speckle_summary

    return speckle_summary(to_uint8_images(data.classifier_val[0]))


def real_data_config(real: str, data_dir: str | None, run_dir: Path) -> Any:
    """The real data's DataConfig: the DDPM run's data section for the same data set."""
    from synthmix.commands.quality import ddpm_data_section, resolve_data_config

    manifest = {"provenance": {"run_dir": str(run_dir)}, "image_shape": _image_shape(run_dir)}
    given = data_dir or ddpm_data_section(manifest).get("data_dir")
    args = argparse.Namespace(real=real, data_dir=given, image_size=None, resize=None,
                              channels=None, split_seed=None)
    return resolve_data_config(args, manifest)


def _image_shape(run_dir: Path) -> list[int]:
    return list(json.loads((Path(run_dir) / "run.json").read_text())["image_shape"])


def _fmt(stats: dict[str, Any]) -> str:
    from synthmix.metrics.classification import format_mean_std

    return format_mean_std(stats)


def markdown_table(result: dict[str, Any]) -> str:
    """The result as a markdown table plus the verdict line."""
    lines = [
        f"Validation macro-F1 on {result['real_data']['dataset']} ({result['num_images']} "
        f"synthetic images per set, classifier {result['classifier']['model']['preset']}, mean "
        f"± std over n={result['seeds']} seeds; scored on {result['n_validation']} validation "
        "images; NFE = network evaluations per image, a guided step counts 2)",
        "",
        "| setting | NFE/image | sampling s | images/s | validation macro-F1 "
        f"| isolated px/image | FID (val) | Δ vs {result['reference']} |",
        "|---|---:|---:|---:|---|---:|---:|---:|",
    ]
    for r in result["configs"]:
        g = r.get("sampling")
        secs, rate = ((f"{g['seconds']:.1f}", f"{g['images'] / max(g['seconds'], 1e-9):.1f}")
                      if g else ("n/a", "n/a"))
        lines.append(f"| {r['label']} | {r['nfe_per_image']} | {secs} | {rate} "
                     f"| {_fmt(r['val_macro_f1'])} | {r['isolated_pixels_per_image']:.3f} "
                     f"| {r['fid_vs_validation']:.2f} | {r['delta_vs_reference']:+.3f} |")
    base, sp = result["real_baseline"], result["real_isolated_pixels"]
    lines.append(f"| real (classifier half, {base['n_train']} images) | | | "
                 f"| {_fmt(base['val_macro_f1'])} | {sp['isolated_pixels_per_image']:.3f} | | |")
    best, points = result["cheapest_within_tolerance"], 100 * result["tolerance_macro_f1"]
    lines.append("")
    if best is None:
        lines.append(f"no config is within {points:g} macro-F1 point of {result['reference']}")
    else:
        lines.append(
            f"cheapest within {points:g} macro-F1 point of {result['reference']}: "
            f"{best['label']} ({best['nfe_per_image']} NFE/image, {best['nfe_ratio']:.1f}x "
            f"fewer, Δ {best['delta_macro_f1']:+.3f})")
    return "\n".join(lines)


def plot_curve(result: dict[str, Any], path: Path) -> None:
    """Validation macro-F1 vs NFE per image (log x): a line per (sampler, thresholding, w), the
    reference as a star, the real baseline and the reference's 1-point band as lines."""
    from synthmix.plots import _pyplot, _save

    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    rows = result["configs"]
    series: dict[str, list[Any]] = {}
    for r in rows:
        s = r["settings"]
        name = f"{s['sampler']} w={s['guidance_scale']:g} {s['thresholding']}"
        series.setdefault(name, []).append((r["nfe_per_image"], r["val_macro_f1"]))
    for name, pts in series.items():
        pts.sort(key=lambda p: p[0])
        ax.errorbar([p[0] for p in pts], [p[1]["mean"] for p in pts],
                    yerr=[p[1]["std"] for p in pts], marker="o", capsize=3, label=name)
    ref = next(r for r in rows if r["label"] == result["reference"])
    y_ref = ref["val_macro_f1"]["mean"]
    ax.plot([ref["nfe_per_image"]], [y_ref], "*", markersize=14, color="black",
            label=f"{ref['label']} (reference)")
    ax.axhline(y_ref - result["tolerance_macro_f1"], color="black", linestyle=":", linewidth=1,
               label="reference - 1 point")
    ax.axhline(result["real_baseline"]["val_macro_f1"]["mean"], color="tab:green",
               linestyle="--", label="real data, same size")
    ax.set_xscale("log")
    ax.set_xlabel("network evaluations per image (log scale)")
    ax.set_ylabel("macro-F1 on validation images")
    ax.set_title(f"sampler settings vs cost ({result['real_data']['dataset']}, "
                 f"n={result['seeds']} seeds)", fontsize=10)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7)
    _save(fig, path)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run_dir", type=Path, help="a trained DDPM run directory (train-ddpm)")
    p.add_argument("--real", required=True, help="the real data set, e.g. mnist, digits")
    p.add_argument("--data-dir", help="where the real data set's files are")
    p.add_argument("--n-per-class", type=int, default=100, help="images per class and set")
    p.add_argument("--configs", nargs="+", default=list(DEFAULT_CONFIGS), metavar="SAMPLER:STEPS",
                   help="sampler configs (default: %(default)s; 'ancestral' runs all T steps)")
    p.add_argument("--guidance", nargs="+", type=float, default=[3.0],
                   help="guidance scales w (default: 3, the study's)")
    p.add_argument("--thresholding", nargs="+", default=["none"],
                   choices=("none", "clip", "dynamic"), help="x_0 thresholding modes")
    p.add_argument("--seeds", type=int, default=2, help="classifiers per config")
    p.add_argument("--seed", type=int, default=0,
                   help="base seed of the per-image seeds, shared by every set (same x_T)")
    p.add_argument("--out", type=Path, help="output directory (default: RUN_DIR/sampler-quality)")
    p.add_argument("--classifier-preset", choices=("tiny", "small", "paper"), default="tiny")
    p.add_argument("--max-epochs", type=int, default=15, help="classifier epochs")
    p.add_argument("--steps-per-epoch", type=int,
                   help="classifier steps per epoch (default: one pass over its images)")
    p.add_argument("--patience", type=int, default=3, help="early-stopping patience (epochs)")
    p.add_argument("--batch-size", type=int, help="images per sampling batch")
    p.add_argument("--num-threads", type=int, help="torch intra-op threads")
    p.add_argument("--device", default="auto", help="torch device (default: auto)")
    p.add_argument("--precision", choices=SAMPLING_PRECISIONS, default=SAMPLING_PRECISIONS[0],
                   help="the network's autocast when sampling (auto: bf16 on CUDA and on CPUs "
                        "with native bf16, fp32 elsewhere); judge bf16 against fp32 with two runs")
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
            args.run_dir, out, real=args.real, data_dir=args.data_dir, configs=args.configs,
            guidance=args.guidance, thresholding=args.thresholding,
            n_per_class=args.n_per_class, seeds=args.seeds, base_seed=args.seed,
            classifier_preset=args.classifier_preset, max_epochs=args.max_epochs,
            patience=args.patience, batch_size=args.batch_size, device=args.device,
            steps_per_epoch=args.steps_per_epoch,
            progress=not args.no_progress, precision=args.precision)
    except SynthmixError as e:
        print(f"sampler_quality: error: {e}", file=sys.stderr)
        return 2
    print(markdown_table(result))
    print(f"\nwritten: {out / RESULT_JSON}, {out / RESULT_PNG} ({result['wall_seconds']:.1f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

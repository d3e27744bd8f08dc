"""The study's preliminary DDPM experiments at CPU scale (SPEC section 5), judged on
validation images: (a) image size x number of time steps T at equal training compute, and
(b) a DDPM trained on half of the train set against one trained on all of it, same budget.

The study compared 32 vs 64 pixels and T = 400 vs 1000 by looking at sample grids, and a DDPM
on 50% vs 100% of the train set. Here each DDPM is one candidate of
`ddpm_time_to_quality.py` (same base config, same judges) and is judged by

- validation CAS: a fixed classifier recipe trained on its samples alone (class-balanced,
  the same per-image seeds for every DDPM), scored on the validation split of the DDPM's own
  data (several classifier seeds), next to the same recipe trained on as many real images;
- FID and improved precision/recall (k=3) against those validation images, in the features
  of that real-trained classifier;
- a grid of the judged samples (one row per class).

Equal compute: the 32-pixel DDPMs get a quarter of the 16-pixel steps (the U-Net costs 4.0x
the GFLOP per image at 32x32, `synthmix.experiment.flops`); the training minutes measured are
in the table. Across image sizes only CAS (and CAS as a share of the real baseline at that
size) compares: FID and precision/recall are in different feature spaces. The half/all pair
is judged on each DDPM's own validation split (the full-data split's is larger). The test set
is never read.

    PYTHONPATH=src python benchmarks/preliminary.py configs/ddpm/cifar10-cpu.yaml \\
        --data-dir ../shared/datasets --out runs/prelim --steps 560 --guidance 2

Writes OUT/time_to_quality.json (every judged point), OUT/preliminary.json, .md and one
figure per experiment (OUT/prelim-size-T.png, OUT/prelim-data-share.png). Resumable: a re-run
reuses every trained DDPM and judged point.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import ddpm_time_to_quality as ttq  # noqa: E402

log = logging.getLogger("synthmix.preliminary")

RESULT_JSON = "preliminary.json"
RESULT_MD = "preliminary.md"
GRID_PER_CLASS = 6


def candidates(steps: int, small: int, large: int, T: Sequence[int],
               extra: Sequence[str] = (),
               large_T: Sequence[int] | None = None) -> dict[str, list[str]]:
    """Experiment name -> candidate specs for ddpm_time_to_quality (the first is the shared
    reference: `small` pixels, the first T, half of the data). `extra`: key=value overrides
    for every candidate, before the experiment's own; `large_T`: the T values run at the large
    size (default: all of `T`; the large DDPMs cost the most minutes to judge)."""
    def spec(size: int, t: int, fraction: float) -> str:
        n = steps if size == small else max(1, steps * small**2 // large**2)
        name = f"s{size}-T{t}" + ("-all" if fraction == 1.0 else "-half")
        return (f"{name}:" + "".join(f"{e}," for e in extra)
                + f"data.image_size={size},schedule.T={t},train.max_steps={n},"
                f"train.warmup_steps={max(1, n // 10)},data.diffusion_fraction={fraction:g}")

    ref = spec(small, T[0], 0.5)
    large_T = T if large_T is None else large_T
    size_t = ([ref] + [spec(small, t, 0.5) for t in T[1:]]
              + [spec(large, t, 0.5) for t in T if t in large_T])
    return {"size-T": size_t, "data-share": [ref, spec(small, T[0], 1.0)]}


def summary_rows(points: list[dict[str, Any]], names: Sequence[str]) -> list[dict[str, Any]]:
    """The final checkpoint of each named candidate, with CAS as a share of its baseline."""
    rows = []
    for name in names:
        p = next(x for x in points if x["candidate"] == name and x["final"])
        base = p["real_baseline_val_macro_f1"]["mean"]
        rows.append({**p, "cas_share_of_real": p["val_macro_f1"]["mean"] / base})
    return rows


def markdown(title: str, rows: list[dict[str, Any]], seeds: int) -> str:
    lines = [f"### {title}", "",
             f"| DDPM | steps | train min | img/s | val CAS (mean ± std, n={seeds}) | "
             "real baseline | CAS / real | vs reference ± 2 SE | FID | precision | recall | "
             "judged on |",
             "|---|---:|---:|---:|---|---|---:|---|---:|---:|---:|---|"]
    for r in rows:
        s, b = r["val_macro_f1"], r["real_baseline_val_macro_f1"]
        ref = rows[0]
        two_se = 2 * ttq.se_of_difference(r["val_macro_f1"], ref["val_macro_f1"])
        lines.append(
            f"| {r['candidate']} | {r['steps_trained']} | {r['train_minutes']:.1f} | "
            f"{r['images_per_second']:.0f} | {s['mean']:.3f} ± {s['std']:.3f} | "
            f"{b['mean']:.3f} ± {b['std']:.3f} | {r['cas_share_of_real']:.2f} | "
            f"{r['delta_vs_reference']:+.3f} ± {two_se:.3f} | {r['fid_vs_validation']:.2f} | "
            f"{r['precision_vs_validation']:.2f} | {r['recall_vs_validation']:.2f} | "
            f"{r['judge_data']}, {r['n_validation']} images |")
    return "\n".join(lines)


def class_rows(set_dir: Path, per_class: int) -> tuple[np.ndarray, list[str]]:
    """The first `per_class` images of each class of a judged set, class by class."""
    from synthmix.synthetic.format import read_synthetic_set

    syn = read_synthetic_set(set_dir)
    picks = [np.flatnonzero(syn.labels == c)[:per_class] for c in range(len(syn.class_names))]
    return syn.images[np.concatenate(picks)], list(syn.class_names)


def figure(title: str, rows: list[dict[str, Any]], out: Path, path: Path) -> None:
    """One grid of judged samples per DDPM and a bar chart of validation CAS."""
    from synthmix.plots import _pyplot, _save, tile_images

    plt = _pyplot()
    n = len(rows)
    fig, axes = plt.subplots(1, n + 1, figsize=(2.6 * n + 3.2, 3.6),
                             gridspec_kw={"width_ratios": [1] * n + [1.3]})
    for ax, r in zip(axes[:n], rows, strict=True):
        judged = json.loads((out / r["candidate"] / "best" / "sampler_quality.json").read_text())
        images, names = class_rows(Path(judged["configs"][0]["set_dir"]), GRID_PER_CLASS)
        grid = tile_images(images, nrow=GRID_PER_CLASS)
        ax.imshow(grid.squeeze(-1) if grid.shape[-1] == 1 else grid, cmap="gray", vmin=0,
                  vmax=255, interpolation="nearest")
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_title(f"{r['candidate']}\n{r['steps_trained']} steps, "
                     f"{r['train_minutes']:.1f} min", fontsize=8)
    bar = axes[n]
    x = np.arange(n)
    bar.bar(x, [r["val_macro_f1"]["mean"] for r in rows],
            yerr=[r["val_macro_f1"]["std"] for r in rows], capsize=3, color="tab:blue",
            label="synthetic (CAS)")
    bar.scatter(x, [r["real_baseline_val_macro_f1"]["mean"] for r in rows], color="k",
                marker="_", s=300, label="real baseline")
    bar.set_xticks(x)
    bar.set_xticklabels([r["candidate"] for r in rows], rotation=45, ha="right", fontsize=7)
    bar.yaxis.set_label_position("right")
    bar.yaxis.tick_right()
    bar.set_ylabel("validation macro-F1 (± std over seeds)", fontsize=8)
    bar.legend(fontsize=7)
    bar.grid(True, axis="y", alpha=0.3)
    fig.suptitle(title, fontsize=9, y=1.06)
    _save(fig, path)


def run(args: argparse.Namespace) -> dict[str, Any]:
    from synthmix.files import atomic_write_json, atomic_write_text

    experiments = candidates(args.steps, args.small, args.large, args.T, args.set,
                             args.large_T)
    # Training order: the small-size DDPMs of both experiments first, the costly large ones
    # last, so a run cut short still has experiment (b) whole.
    specs = sorted(dict.fromkeys(c for exp in experiments.values() for c in exp),
                   key=lambda c: f"data.image_size={args.large}," in c)
    t_args = argparse.Namespace(
        config=args.config, candidate=specs, snapshot_epochs=[], real=args.real,
        data_dir=args.data_dir, sampler=args.sampler, guidance=args.guidance,
        n_per_class=args.n_per_class, seeds=args.seeds, max_epochs=args.max_epochs,
        patience=args.patience, steps_per_epoch=args.steps_per_epoch, out=args.out,
        num_threads=args.num_threads, device=args.device,
        no_progress=args.no_progress)
    judged = ttq.run(t_args)
    titles = {
        "size-T": f"(a) image size x T at equal training compute ({args.steps} steps at "
                  f"{args.small}px, {args.steps * args.small**2 // args.large**2} at "
                  f"{args.large}px)",
        "data-share": f"(b) DDPM on half vs all of the train set ({args.steps} steps each)",
    }
    result: dict[str, Any] = {"experiments": {}, "judges": {
        k: judged[k] for k in ("scored_on", "sampler", "n_per_class", "seeds", "base_config")},
        "guidance": list(args.guidance), "hardware": judged["hardware"],
        "code_version": judged["code_version"], "command": " ".join(sys.argv),
        "wall_seconds": judged["wall_seconds"]}
    md = []
    for key, exp in experiments.items():
        rows = summary_rows(judged["points"], [ttq.parse_candidate(c).name for c in exp])
        png = args.out / f"prelim-{key}.png"
        figure(titles[key], rows, args.out, png)
        result["experiments"][key] = {"title": titles[key], "rows": rows, "figure": png.name}
        md.append(markdown(titles[key], rows, args.seeds))
    atomic_write_json(args.out / RESULT_JSON, result)
    atomic_write_text(args.out / RESULT_MD, "\n\n".join(md) + "\n")
    return result


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("config", type=Path, help="the base DDPM config (configs/ddpm/cifar10-cpu.yaml)")
    p.add_argument("--steps", type=int, required=True,
                   help="training steps at the small size (the large gets a quarter)")
    p.add_argument("--small", type=int, default=16, help="the small image size (pixels)")
    p.add_argument("--large", type=int, default=32, help="the large image size (pixels)")
    p.add_argument("--T", type=int, nargs=2, default=[400, 1000], help="the two T compared")
    p.add_argument("--large-T", type=int, nargs="+",
                   help="the T values also run at the large size (default: both)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="an override of the base config for every DDPM (repeat)")
    ttq.add_judge_arguments(p, sampler="dpmpp:20", guidance=2.0, n_per_class=100)
    # CIFAR-10's judge on 900 images: one pass is 14 steps, too few to learn before early
    # stopping (7 steps an epoch gave a real baseline of 0.097 ± 0.113); fixed 30-step epochs.
    p.set_defaults(steps_per_epoch=30, patience=4)
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    from synthmix.config import read_yaml
    from synthmix.device import set_threads
    from synthmix.errors import SynthmixError

    logging.basicConfig(level=logging.INFO, format="%(message)s")
    args = parse_args(argv)
    set_threads(args.num_threads)
    try:
        args.real = args.real or read_yaml(args.config)["data"]["dataset"]
        run(args)
    except SynthmixError as e:
        print(f"preliminary: error: {e}", file=sys.stderr)
        return 2
    print((args.out / RESULT_MD).read_text())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""`synthmix tune` and `synthmix worth`: choose sampling settings on validation images, and
measure how many real images a synthetic set is worth."""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path
from typing import Any

from synthmix.diffusion.settings import GUIDANCE_CANDIDATES, THRESHOLDING_MODES

log = logging.getLogger("synthmix")

TUNE_HELP = """\
Score sampling settings by the worth of the data they make, on validation images. For every
combination of --guidance, --samplers and --thresholding a small class-balanced set is sampled
from the DDPM run, a classifier recipe is trained on it alone (10% of it held out for early
stopping) and scored on the classifier half's validation split of the real data set, which the
DDPM never saw; the test set is never read. Each candidate is scored by --seeds classifiers; the
best mean validation macro-F1 wins unless others lie within one standard error of it, then the
cheapest, then the weakest guidance of those. Writes OUT/tuning.json and prints the table; use the
chosen settings with `synthmix sample`, or set `synthetic.guidance_scale: auto` in a study.
"""

WORTH_HELP = """\
How many real images is the synthetic data worth? Trains the classifier recipe on nested,
class-stratified real subsets of growing size, each with and without the synthetic set, and on
synthetic subsets alone, every point repeated; then reads the real-equivalent size of the
synthetic set off the real-only curve, the augmentation gain at each real size, and where adding
synthetic data helps or hurts (95% intervals over the repeats). Either for a finished study
(STUDY_DIR: its config gains a worth section and the study's report gets the answer at the top),
or for a DDPM run and a synthetic set (--ddpm RUN --synthetic SET --real DATASET).
"""


def register(sub: argparse._SubParsersAction) -> None:
    t = sub.add_parser("tune", help="choose guidance (and sampler) by validation macro-F1",
                       description=TUNE_HELP,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    t.add_argument("run_dir", type=Path, help="a trained DDPM run directory")
    t.add_argument("--real", required=True, metavar="DATASET",
                   help="the real data set the DDPM was trained on (its validation split scores)")
    t.add_argument("--data-dir", help="where the real data set's files are")
    t.add_argument("--guidance", nargs="+", type=float, default=list(GUIDANCE_CANDIDATES),
                   help="guidance scales to try (default: %(default)s)")
    t.add_argument("--samplers", nargs="+", default=[], metavar="SAMPLER:STEPS",
                   help="sampler configs to try, e.g. dpmpp:20 ddim:50 ancestral "
                   "(default: the run's sample settings)")
    t.add_argument("--thresholding", nargs="+", default=[], choices=THRESHOLDING_MODES,
                   help="x_0 thresholding modes to try (default: the run's)")
    t.add_argument("--n-per-class", type=int, default=100, help="images per class per candidate")
    t.add_argument("--seeds", type=int, default=2,
                   help="classifiers per candidate (at least 2 to know the noise)")
    t.add_argument("--seed", type=int, default=1000, help="base seed of the tuning sets")
    _recipe_args(t)
    t.add_argument("--out", type=Path, help="output directory (default: RUN_DIR/tuning)")
    t.add_argument("--no-progress", action="store_true", help="no progress bars")
    t.set_defaults(func=_tune)

    w = sub.add_parser("worth", help="how many real images the synthetic data is worth",
                       description=WORTH_HELP,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    w.add_argument("study_dir", nargs="?", type=Path, help="a finished study directory")
    w.add_argument("--ddpm", type=Path, help="a DDPM run (instead of a study)")
    w.add_argument("--synthetic", type=Path, help="a synthetic set sampled from it")
    w.add_argument("--real", metavar="DATASET", help="the real data set (with --ddpm)")
    w.add_argument("--data-dir", help="where the real data set's files are")
    w.add_argument("--real-pool-size", type=int,
                   help="cap the classifier half's real pool (with --ddpm)")
    w.add_argument("--out", type=Path, help="output directory (with --ddpm; default SET/worth)")
    w.add_argument("--set", dest="overrides", action="append", metavar="KEY=VALUE",
                   help="override a study value, e.g. --set worth.repeats=2 (repeatable)")
    _recipe_args(w)
    w.add_argument("--no-progress", action="store_true", help="no progress bars")
    w.set_defaults(func=_worth)


def _recipe_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--classifier-preset", choices=("tiny", "small", "paper"), default="tiny",
                   help="classifier recipe (default: tiny)")
    p.add_argument("--max-epochs", type=int, default=15, help="classifier epochs (default: 15)")
    p.add_argument("--patience", type=int, default=3, help="early-stopping patience")
    p.add_argument("--device", default="auto", help="torch device (default: auto)")


def _data_config(run_dir: Path, real: str, data_dir: str | None) -> Any:
    from synthmix.commands.quality import ddpm_data_section, resolve_data_config

    info = json.loads((run_dir / "run.json").read_text()) if (run_dir / "run.json").is_file() \
        else {}
    manifest = {"provenance": {"run_dir": str(run_dir)},
                "image_shape": info.get("image_shape", [32, 32, 1])}
    given = data_dir or ddpm_data_section(manifest).get("data_dir")
    args = argparse.Namespace(real=real, data_dir=given, image_size=None, resize=None,
                              channels=None, split_seed=None)
    return resolve_data_config(args, manifest)


def _tune(args: argparse.Namespace) -> int:
    from synthmix.device import select_device
    from synthmix.runs.common import prepare_data
    from synthmix.runs.ddpm import load_ddpm
    from synthmix.synthetic.cas import cas_classifier_config
    from synthmix.synthetic.tune import TuneData, candidate_grid, tune_sampling

    ddpm = load_ddpm(args.run_dir, device=select_device(args.device))
    data = prepare_data(_data_config(args.run_dir, args.real, args.data_dir))
    ccfg = cas_classifier_config(args.classifier_preset, args.max_epochs, args.patience,
                                 args.device)
    grid = candidate_grid(ddpm.cfg.sample, ddpm.schedule.T, args.guidance, args.samplers,
                          args.thresholding)
    out = args.out or args.run_dir / "tuning"
    result = tune_sampling(ddpm, grid, TuneData(tuple(data.class_names), data.classifier_val,
                                                ccfg), out, n_per_class=args.n_per_class,
                           seeds=args.seeds, base_seed=args.seed,
                           batch_size=ddpm.cfg.sample.batch_size, progress=not args.no_progress)
    print(f"{'candidate':<28}{'NFE/image':>10}  validation macro-F1")
    for c in result["candidates"]:
        f1 = c["val_macro_f1"]
        mark = "  <- chosen" if c["label"] == result["chosen"] else ""
        print(f"{c['label']:<28}{c['nfe_per_image']:>10}  {f1['mean']:.4f} ± {f1['std']:.4f} "
              f"(n={f1['n']}){mark}")
    noise = result["noise"]
    if noise["standard_error"] is not None:
        print(f"best mean {noise['best_mean']:.4f} ({noise['best']}), one standard error "
              f"{noise['standard_error']:.4f}: within it {', '.join(noise['within_noise'])}")
    print(f"written: {out / 'tuning.json'}")
    return 0


def _worth(args: argparse.Namespace) -> int:
    from synthmix.config import deep_merge, from_dict, load_config, parse_overrides, to_dict
    from synthmix.errors import ConfigError
    from synthmix.experiment.config import StudyConfig
    from synthmix.experiment.study import run_study

    progress = not args.no_progress
    if args.study_dir is not None:
        if args.ddpm or args.synthetic:
            raise ConfigError("give a study directory or --ddpm/--synthetic, not both")
        saved = args.study_dir / "study.yaml"
        cfg = load_config(StudyConfig, saved, ["worth.enabled=true", *(args.overrides or [])])
        results = run_study(cfg, args.study_dir, base_dir=args.study_dir, progress=progress,
                            allow_new_worth=True)
        out = args.study_dir
    else:
        if not (args.ddpm and args.synthetic and args.real):
            raise ConfigError("give a study directory, or --ddpm RUN --synthetic SET --real DATA")
        from synthmix.synthetic.cas import cas_classifier_config

        data = _data_config(args.ddpm, args.real, args.data_dir)
        clf = cas_classifier_config(args.classifier_preset, args.max_epochs, args.patience,
                                    args.device)
        base = {"name": f"worth-{args.synthetic.name}", "data": to_dict(data),
                "ddpm": {"run_dir": str(args.ddpm)}, "synthetic": {"path": str(args.synthetic)},
                "classifier": to_dict(clf), "mixes": {"experiments": [],
                                                      "real_pool_size": args.real_pool_size},
                "worth": {"enabled": True}, "quality": {"enabled": False},
                "device": args.device}
        cfg = from_dict(StudyConfig, deep_merge(base, parse_overrides(args.overrides)))
        out = args.out or args.synthetic.parent / f"{args.synthetic.name}-worth"
        results = run_study(cfg, out, progress=progress)
    print(results["worth"]["answer"])
    print(f"report: {out / 'report.md'}")
    return 0

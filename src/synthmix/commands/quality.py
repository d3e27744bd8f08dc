"""`synthmix evaluate-synthetic`: how good is a synthetic set, measured against real data."""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path
from typing import Any

log = logging.getLogger("synthmix")

DESCRIPTION = """\
Measure a synthetic set (a directory written by `synthmix sample`) against the real data set
its DDPM was trained on. Data options left out are taken from the DDPM run's config.yaml
(found through the set's provenance), else from the defaults below.

  CAS       classification accuracy score (Ravuri & Vinyals 2019): a fixed classifier recipe
            trained only on the synthetic set (10% held out for validation), tested on the
            real test set; next to it the same recipe trained on as many real images of the
            classifier half, which the DDPM never saw. A small gap means the synthetic set
            carries the information a classifier needs.
  FID       Fréchet distance between Gaussians fitted to real and synthetic features
            (0 = same mean and covariance); computed in the feature space of the real-trained
            classifier (feature_space "classifier"), and in Inception-V3 space with --inception.
  KID       kernel inception distance: unbiased polynomial-kernel MMD^2 of the same features,
            mean ± std over subsets; unlike FID not biased by the sample size.
  precision fraction of synthetic images inside the real images' k-NN feature manifold
            (are they realistic?); recall: fraction of real images inside the synthetic
            manifold (is the variety covered?) (Kynkäänniemi et al. 2019), also per class.
  memorisation
            distance from each synthetic image to its nearest real image in pixel space,
            beside the same distance of real test images; exact copies and synthetic images
            closer than any real one are counted, and nearest_neighbours.png shows examples.

Writes OUT/evaluation.json, OUT/samples_per_class.png, OUT/nearest_neighbours.png and the
classifier runs under OUT/cas/. A re-run reuses finished classifier runs.
"""


def register(sub: argparse._SubParsersAction) -> None:
    """Add `evaluate-synthetic`."""
    p = sub.add_parser(
        "evaluate-synthetic",
        help="measure a synthetic set: CAS, FID/KID, precision/recall, memorisation",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("set_dir", metavar="SET", type=Path, help="synthetic set directory")
    p.add_argument("--real", required=True, metavar="DATASET",
                   help="the real data set (as in `synthmix data`), e.g. mnist, cifar10, digits")
    p.add_argument("--data-dir", help="where the real data set's files are")
    p.add_argument("--image-size", type=int, help="real images are brought to this size "
                   "(default: the DDPM run's, else the set's height)")
    p.add_argument("--resize", choices=("pad", "resize"),
                   help="how: pad/crop or resize (default: the DDPM run's, else resize when "
                   "the real size differs from the set's, else pad)")
    p.add_argument("--channels", type=int, choices=(1, 3),
                   help="convert the real images to this many channels")
    p.add_argument("--split-seed", type=int,
                   help="seed of the study's real-data split (default: the DDPM run's, else 0)")
    p.add_argument("--classifier-preset", choices=("tiny", "small", "paper"), default="small",
                   help="classifier recipe for CAS and the feature space (default: small)")
    p.add_argument("--max-epochs", type=int, default=15, help="classifier epochs (default: 15)")
    p.add_argument("--patience", type=int, default=3,
                   help="early-stopping patience in epochs (default: 3)")
    p.add_argument("--seeds", type=int, default=1,
                   help="CAS classifiers per side, reported as mean ± std (default: 1)")
    p.add_argument("--max-images", type=int, default=5000,
                   help="images per side for FID/KID/precision/recall (default: 5000)")
    p.add_argument("--k", type=int, default=3, help="k of the k-NN manifolds (default: 3)")
    p.add_argument("--inception", metavar="PATH",
                   help="TorchScript Inception-V3 file: also report FID/KID in its space")
    p.add_argument("--device", default="auto", help="torch device (default: auto)")
    p.add_argument("--out", type=Path, help="output directory (default: SET/evaluation)")
    p.add_argument("--no-cas", action="store_true",
                   help="skip CAS; only the real-trained classifier (the feature network) "
                   "is trained")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(func=_evaluate)


def ddpm_data_section(manifest: dict[str, Any]) -> dict[str, Any]:
    """The `data` section of the config.yaml of the DDPM run that made the set, or {}."""
    from synthmix.config import read_yaml
    from synthmix.errors import SynthmixError

    run_dir = (manifest.get("provenance") or {}).get("run_dir")
    if not run_dir or not (Path(run_dir) / "config.yaml").is_file():
        return {}
    try:
        section = read_yaml(Path(run_dir) / "config.yaml").get("data")
    except (SynthmixError, OSError, AttributeError):
        return {}
    return dict(section) if isinstance(section, dict) else {}


def resolve_data_config(args: argparse.Namespace, manifest: dict[str, Any]) -> Any:
    """The DataConfig of the real data: arguments, else the DDPM run's, else the defaults."""
    from synthmix.data import load_dataset
    from synthmix.runs.common import DataConfig

    ddpm = ddpm_data_section(manifest)
    if ddpm and ddpm.get("dataset") != args.real:
        log.warning("the set's DDPM was trained on %r, not %r: its data settings are not used",
                    ddpm.get("dataset"), args.real)
        ddpm = {}

    def pick(name: str, default: Any) -> Any:
        given = getattr(args, name)
        return given if given is not None else ddpm.get(name, default)

    image_size = pick("image_size", int(manifest["image_shape"][0]))
    channels = pick("channels", None)
    resize = pick("resize", None)
    if resize is None:
        raw = load_dataset(args.real, args.data_dir, channels=channels, image_size=image_size)
        resize = "resize" if raw.image_shape[0] != image_size else "pad"
    return DataConfig(
        dataset=args.real, data_dir=args.data_dir, image_size=image_size, resize=resize,
        channels=channels, split_seed=pick("split_seed", 0),
        diffusion_fraction=float(ddpm.get("diffusion_fraction", 0.5)),
        val_fraction=float(ddpm.get("val_fraction", 0.1)),
    )


def _classifier_config(args: argparse.Namespace) -> Any:
    from synthmix.errors import ConfigError
    from synthmix.synthetic.cas import cas_classifier_config

    for name in ("seeds", "max_images", "k"):
        if getattr(args, name) < 1:
            raise ConfigError(f"--{name.replace('_', '-')} must be >= 1")
    return cas_classifier_config(args.classifier_preset, args.max_epochs, args.patience,
                                 args.device)


def _evaluate(args: argparse.Namespace) -> int:
    from synthmix.config import to_dict
    from synthmix.data import to_uint8_images
    from synthmix.device import select_device
    from synthmix.files import atomic_write_json
    from synthmix.runinfo import code_version
    from synthmix.runs.common import prepare_data
    from synthmix.synthetic.cas import (
        check_compatible,
        classification_accuracy_score,
        load_feature_classifier,
    )
    from synthmix.synthetic.evaluate import Reference, evaluate_quality
    from synthmix.synthetic.format import read_synthetic_set

    start, timings = time.perf_counter(), {}
    ccfg = _classifier_config(args)
    syn = read_synthetic_set(args.set_dir)
    data_cfg = resolve_data_config(args, syn.manifest)
    data = prepare_data(data_cfg)
    check_compatible(syn, data, args.real)
    timings["prepare"] = round(time.perf_counter() - start, 2)
    out = Path(args.out or args.set_dir / "evaluation")
    cas = classification_accuracy_score(
        args.set_dir, data_cfg, ccfg, out / "cas", seeds=1 if args.no_cas else args.seeds,
        progress=not args.no_progress, prepared=data, synthetic=syn,
        roles=("real",) if args.no_cas else ("synthetic", "real"))
    timings["cas"] = cas["wall_seconds"]
    feature_dir = out / "cas" / cas["feature_run_dir"]
    net = load_feature_classifier(feature_dir, ccfg, data.test[0].shape[1],
                                  len(data.class_names)).to(select_device(args.device))
    half_a = "the DDPM's training images (half A)" if not data.splits.overlap else \
        "the DDPM's training images (the whole train set)"
    reference = Reference(to_uint8_images(data.diffusion_train[0]),
                          data.diffusion_train[1].numpy(), half_a)
    quality = evaluate_quality(
        net, to_uint8_images(data.test[0]), data.test[1].numpy(), syn.images, syn.labels,
        data.class_names, out, max_images=args.max_images, k=args.k, seed=data_cfg.split_seed,
        inception=args.inception, reference=reference, progress=not args.no_progress)
    quality["feature_network"] = str(feature_dir)
    timings["quality"] = quality["timings_s"]["total"]
    timings["total"] = round(time.perf_counter() - start, 2)
    evaluation = {
        "synthetic_set": str(Path(args.set_dir).resolve()),
        "manifest": {key: syn.manifest.get(key) for key in (
            "class_names", "image_shape", "n_per_class", "num_images", "provenance", "created",
            "code_version", "generation", "filter") if key in syn.manifest},
        "real_data": {**to_dict(data_cfg), "n_test": len(data.test[1])},
        "classifier": to_dict(ccfg),
        "cas": None if args.no_cas else cas,
        "quality": quality,
        "timings_s": timings,
        "code_version": code_version(),
        "command": " ".join(sys.argv),
    }
    atomic_write_json(out / "evaluation.json", evaluation)
    print_summary(evaluation, out)
    return 0


def print_summary(ev: dict[str, Any], out: Path) -> None:
    """A short table of the numbers in evaluation.json."""
    from synthmix.metrics.classification import format_mean_std

    m = ev["manifest"]
    print(f"synthetic set {ev['synthetic_set']}: {m['num_images']} images, "
          f"{len(m['class_names'])} classes, {'x'.join(map(str, m['image_shape']))}")
    cas = ev["cas"]
    if cas is not None:
        n = cas["synthetic"]["runs"][0]["n_train"]
        print(f"\nCAS ({n} training images per side; real test set of {cas['n_test']})")
        print(f"  {'trained on':<28}{'macro-F1':<26}accuracy")
        for label, key in (("synthetic", "synthetic"), ("real (classifier half)", "real"),
                           ("gap (real - synthetic)", "gap_real_minus_synthetic")):
            row = cas[key]
            print(f"  {label:<28}{format_mean_std(row['macro_f1']):<26}"
                  f"{format_mean_std(row['accuracy'])}")
    q = ev["quality"]
    print(f"\nquality in the {q['feature_space']} feature space ({q['n_real']} real test vs "
          f"{q['n_synthetic']} synthetic images, k={q['k']})")
    print(f"  FID {q['fid']:.3f}   KID {q['kid_mean']:.4f} ± {q['kid_std']:.4f}   "
          f"precision {q['precision']:.3f}   recall {q['recall']:.3f}")
    if "inception" in q:
        i = q["inception"]
        print(f"  Inception-V3: FID {i['fid']:.3f}   KID {i['kid_mean']:.4f} ± {i['kid_std']:.4f}")
    mem = q["memorisation"]
    s, r = "synthetic_nn_distance", "real_nn_distance"
    print(f"  pixel distance to the nearest of {mem['reference']}: synthetic mean "
          f"{mem[s + '_mean']:.3f} (min {mem[s + '_min']:.3f}) vs real test mean "
          f"{mem[r + '_mean']:.3f} (min {mem[r + '_min']:.3f});\n    "
          f"{mem['exact_copies']} exact copies, "
          f"{100 * mem['fraction_closer_than_any_real']:.1f}% closer than any real image")
    t = q["timings_s"]
    print("\ntimings (s): " + ", ".join(f"{k} {v:.1f}" for k, v in ev["timings_s"].items()
                                        if isinstance(v, int | float))
          + " | quality: " + ", ".join(f"{k} {v:.1f}" for k, v in t.items()))
    print(f"written: {out / 'evaluation.json'}, {q['files']['samples_per_class']}, "
          f"{q['files']['nearest_neighbours']}")

"""`synthmix export` (files other tools read) and `synthmix filter` (keep confident samples)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any


def register(subparsers: Any) -> None:
    """Add the synthetic-set subcommands."""
    p = subparsers.add_parser(
        "export",
        help="export a synthetic set as a PNG image folder (Hugging Face datasets) or one .npz",
        description=(
            "Export a complete synthetic set (a directory written by `synthmix sample`). "
            "png: OUT/train/<class folder>/<index>-seed<seed>.png with OUT/train/metadata.jsonl "
            "(file_name, label = synthmix class index, class_name, seed per image) and a dataset "
            "card OUT/README.md saying how the images were sampled; "
            'datasets.load_dataset("imagefolder", data_dir=OUT) reads it with the right labels. '
            "Class names that are not folder-safe ('T-shirt/top') get a folder-safe folder name "
            "and keep their real name in the metadata. Written into OUT.partial, renamed when "
            "done. npz: OUT/<set name>.npz with images (N,H,W,C uint8), labels, seeds and "
            "class_names."
        ),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("set_dir", metavar="DIR", type=Path, help="synthetic set directory")
    p.add_argument("--format", dest="fmt", choices=("png", "npz"), default="png",
                   help="what to write")
    p.add_argument("--out", required=True, type=Path,
                   help="png: tree to create (must not exist); npz: directory for the file")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    p.set_defaults(func=_export)

    f = subparsers.add_parser(
        "filter",
        help="keep the synthetic images a real-trained classifier assigns to their own label",
        description=(
            "Write a new synthetic set holding only the images whose probability for the label "
            "they were sampled with, under a classifier trained on real images, reaches "
            "--threshold (after Wang et al. 2023: drops off-class and broken samples). "
            "CLASSIFIER is a finished classifier run directory, e.g. a study's "
            "classifiers/exp-1/seed-0 (all real data); its best weights and config are used. "
            "The new manifest records the threshold, the counts kept and dropped per class and "
            "the source set."
        ),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    f.add_argument("set_dir", metavar="DIR", type=Path, help="synthetic set directory")
    f.add_argument("--classifier", required=True, type=Path, metavar="CLASSIFIER",
                   help="classifier run directory (trained on real images)")
    f.add_argument("--threshold", type=float, default=0.9, help="least p(own label) kept")
    f.add_argument("--out", required=True, type=Path, help="directory of the filtered set")
    f.add_argument("--device", default="auto", help="torch device")
    f.set_defaults(func=_filter)


def _export(args: argparse.Namespace) -> int:
    from synthmix.synthetic.export import export_synthetic_set

    path = export_synthetic_set(args.set_dir, args.out, args.fmt, progress=not args.no_progress)
    print(path)
    return 0


def _filter(args: argparse.Namespace) -> int:
    import numpy as np
    import torch

    from synthmix.config import load_config
    from synthmix.data import to_model_tensor
    from synthmix.device import select_device
    from synthmix.runs.classifier import ClassifierRunConfig, predict_logits
    from synthmix.synthetic.cas import load_feature_classifier
    from synthmix.synthetic.filter import filter_by_confidence
    from synthmix.synthetic.format import read_manifest

    ccfg = load_config(ClassifierRunConfig, args.classifier / "config.yaml")
    manifest = read_manifest(args.set_dir)
    shape = manifest["image_shape"]  # (H, W, C)
    device = select_device(args.device)
    net = load_feature_classifier(args.classifier, ccfg, int(shape[2]),
                                  len(manifest["class_names"])).to(device)

    def predict_proba(images: np.ndarray) -> np.ndarray:
        x = to_model_tensor(images, None).to(device)  # (N, C, H, W) in [-1, 1]
        return torch.softmax(predict_logits(net, x, ccfg.eval_batch_size,
                                             ccfg.test_time_flip), 1).cpu().numpy()

    counts = filter_by_confidence(args.set_dir, args.out, predict_proba, args.threshold)
    print(f"kept {counts['kept']} of {counts['kept'] + counts['dropped']} images "
          f"(per class {counts['kept_per_class']}) in {args.out}")
    return 0

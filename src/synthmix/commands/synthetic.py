"""`synthmix export`: turn a synthetic set into files other tools read."""

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


def _export(args: argparse.Namespace) -> int:
    from synthmix.synthetic.export import export_synthetic_set

    path = export_synthetic_set(args.set_dir, args.out, args.fmt, progress=not args.no_progress)
    print(path)
    return 0

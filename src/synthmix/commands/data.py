"""`synthmix data info` and `synthmix data fetch`."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from synthmix.data import RawDataset, StudySplits

_NAMES_HELP = "mnist, fashion-mnist, cifar10, cifar10-jpeg, digits or imagefolder:PATH"


def register(sub: argparse._SubParsersAction) -> None:
    group = sub.add_parser(
        "data",
        help="inspect and download data sets",
        description="Inspect a data set (files, checksums, counts, study splits) or download one.",
    )
    data_sub = group.add_subparsers(dest="data_command", metavar="DATA_COMMAND")
    group.set_defaults(func=lambda args: _help(group))

    info = data_sub.add_parser(
        "info",
        help="show a data set's files, checksums, counts per class and study split sizes",
        description=(
            "Load a data set (decoding it once; later loads come from the cache in "
            "$SYNTHMIX_CACHE) and print the files it was read from with their checksum status "
            "(ok / mismatch / unknown against the official md5s), the image shape, the number "
            "of images per class in the official train and test splits, and the sizes of the "
            "study's four splits of the train set (SPEC §1): DDPM train/val and classifier "
            "train/val. For imagefolder:PATH it first describes the folder as it is: images per "
            "class and split, a histogram of image sizes and modes, files skipped and why, and "
            "a suggested image_size (used for the splits when sizes differ)."
        ),
    )
    info.add_argument("dataset", help=_NAMES_HELP)
    _add_data_dir(info)
    info.add_argument("--image-size", type=int, default=None,
                      help="resize image folders to SxS (needed when their sizes differ)")
    info.add_argument("--channels", type=int, choices=(1, 3), default=None,
                      help="convert to 1 (grey) or 3 (RGB) channels")
    info.add_argument("--split-seed", type=int, default=0, help="seed of the study split")
    info.add_argument("--diffusion-fraction", type=float, default=0.5,
                      help="share of the train set for the DDPM (1.0: the full-data scenario)")
    info.add_argument("--val-fraction", type=float, default=0.1,
                      help="validation share of each half (study: 0.1)")
    info.set_defaults(func=_info)

    fetch = data_sub.add_parser(
        "fetch",
        help="download MNIST, Fashion-MNIST or CIFAR-10 with checksum verification",
        description=(
            "Download the official files of mnist, fashion-mnist or cifar10 into "
            "DATA_DIR/<name>/. Each file is verified against its official md5 (or that of its "
            "decompressed content) before it is put in place; verified files are skipped."
        ),
    )
    fetch.add_argument("name", choices=("mnist", "fashion-mnist", "cifar10"))
    _add_data_dir(fetch)
    fetch.add_argument("--base-url", default=None, help="download from this URL instead")
    fetch.add_argument("--timeout", type=float, default=30.0, help="seconds per connection")
    fetch.set_defaults(func=_fetch)


def _add_data_dir(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data-dir", default=None,
                   help="where the files are (also DATA_DIR/<name>/); default $SYNTHMIX_DATA, "
                        "else ~/.cache/synthmix")


def _help(parser: argparse.ArgumentParser) -> int:
    parser.print_help()
    return 2


def _info(args: argparse.Namespace) -> int:
    from synthmix.data import load_dataset, make_study_splits

    channels, image_size = args.channels, args.image_size
    if args.dataset.startswith("imagefolder:"):
        from synthmix.data.describe import describe_folder, format_summary, suggest_image_size

        summary = describe_folder(Path(args.dataset[len("imagefolder:"):]).expanduser())
        print("\n".join(format_summary(summary)))
        if summary.problems():
            return 0  # described; the study splits below need a folder a study can use
        if len(summary.sizes) > 1 and image_size is None:
            image_size = suggest_image_size(summary.sizes)
            print(f"(study splits below at the suggested image_size {image_size})")
        if summary.mixes_grey_and_colour and channels is None:
            channels = summary.channels
    dataset = load_dataset(args.dataset, args.data_dir, channels=channels,
                           image_size=image_size)
    splits = make_study_splits(dataset.train.labels, seed=args.split_seed,
                               diffusion_fraction=args.diffusion_fraction,
                               val_fraction=args.val_fraction)
    print("\n".join(format_info(dataset, splits)))
    return 0


def format_info(dataset: RawDataset, splits: StudySplits) -> list[str]:
    """The lines `data info` prints."""
    h, w, c = dataset.image_shape
    lines = [f"data set: {dataset.name} ({dataset.num_classes} classes)",
             f"image shape (H, W, C): {h} x {w} x {c}", "sources:"]
    for s in dataset.sources:
        check: str = s.checksum
        if s.md5:
            check += f" (md5 of {s.md5_of} {s.md5}" + (
                f", official {s.expected_md5})" if s.checksum == "mismatch" else ")")
        lines.append(f"  {s.path}  {s.size:,} bytes  checksum {check}")
    train_counts = dataset.train.class_counts(dataset.num_classes)
    test_counts = dataset.test.class_counts(dataset.num_classes)
    width = max(12, *(len(n) for n in dataset.class_names))
    lines.append(f"  {'class':<{width}} {'train':>7} {'test':>7}")
    for name, n_train, n_test in zip(dataset.class_names, train_counts, test_counts, strict=True):
        lines.append(f"  {name:<{width}} {n_train:>7} {n_test:>7}")
    lines.append(f"  {'total':<{width}} {len(dataset.train):>7} {len(dataset.test):>7}")
    sizes = splits.sizes()
    lines += [
        f"study splits of the train set (seed {splits.seed}, diffusion fraction "
        f"{splits.diffusion_fraction:g}, validation fraction {splits.val_fraction:g}"
        + (", classifier uses the same images" if splits.overlap else "") + "):",
        f"  diffusion  train {sizes['diffusion_train']:>7}  val {sizes['diffusion_val']:>6}",
        f"  classifier train {sizes['classifier_train']:>7}  val {sizes['classifier_val']:>6}",
    ]
    return lines


def _fetch(args: argparse.Namespace) -> int:
    from synthmix.data.fetch import fetch_dataset

    for path in fetch_dataset(args.name, args.data_dir, args.base_url, args.timeout):
        print(path)
    return 0

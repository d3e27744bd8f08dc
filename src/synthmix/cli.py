"""The `synthmix` command: one subcommand per pipeline stage.

Each group of subcommands lives in `synthmix.commands.<group>` and exposes
`register(subparsers)`; heavy imports happen inside the handlers so `--help` is instant.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from synthmix import __version__
from synthmix.errors import SynthmixError

# Modules in synthmix.commands, in the order the pipeline runs.
COMMAND_MODULES = ("data", "ddpm", "synthetic", "quality", "analysis", "experiment")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="synthmix",
        description=(
            "Train a class-conditional DDPM with classifier-free guidance, sample labelled "
            "synthetic data sets from it, train classifiers on real/synthetic mixes and report "
            "what the synthetic data is worth (macro-F1 on the real test set)."
        ),
    )
    parser.add_argument("--version", action="version", version=f"synthmix {__version__}")
    parser.add_argument(
        "--debug", action="store_true", help="show full tracebacks instead of one-line errors"
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    import importlib

    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(f"synthmix.commands.{name}")
        except ModuleNotFoundError as e:  # a group not written yet
            if e.name != f"synthmix.commands.{name}":
                raise
            continue
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.debug else logging.INFO,
        format="%(message)s",
        stream=sys.stderr,
    )
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except SynthmixError as e:
        if args.debug:
            raise
        print(f"synthmix: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("synthmix: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())

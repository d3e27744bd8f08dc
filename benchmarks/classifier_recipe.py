"""Which classifier recipe makes the most of real and of synthetic data? Scored on validation.

Trains each recipe (a `classifier:` section of a study, as YAML) on real images of the
classifier half and, optionally, on a synthetic set alone (10% held out for early stopping),
each with several seeds, and scores macro-F1 on the classifier half's validation split, which
no model trains on; the test set is not read.

    PYTHONPATH=src python benchmarks/classifier_recipe.py --real mnist --data-dir DIR \\
        --image-size 16 --resize resize --real-pool 5000 --synthetic SET \\
        --recipe old=recipes/old.yaml --recipe new=recipes/new.yaml --seeds 2 --out OUT

`--synthetic-per-class 400 700 --no-real` compares synthetic set sizes instead (nested subsets).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch

from synthmix.config import from_dict, read_yaml, to_dict
from synthmix.data.splits import stratified_holdout, stratified_prefix
from synthmix.files import atomic_write_json
from synthmix.metrics.classification import mean_std
from synthmix.runinfo import code_version, hardware
from synthmix.runs.classifier import ClassifierRunConfig, train_classifier
from synthmix.runs.common import DataConfig, prepare_data
from synthmix.synthetic.dataset import set_tensors


def _sources(args: argparse.Namespace) -> tuple[Any, dict[str, tuple[Any, Any]]]:
    data = prepare_data(DataConfig(dataset=args.real, data_dir=args.data_dir,
                                   image_size=args.image_size, resize=args.resize))
    rx, ry = data.classifier_train
    idx = torch.as_tensor(stratified_prefix(ry.numpy(), None, 0, count=min(args.real_pool,
                                                                           len(ry))))
    vx, vy = data.classifier_val
    vidx = torch.as_tensor(stratified_prefix(vy.numpy(), min(1.0, args.real_pool / len(ry)), 0))
    sources = {} if args.no_real else {"real": ((rx[idx], ry[idx]), (vx[vidx], vy[vidx]))}
    if args.synthetic:
        sx, sy = set_tensors(args.synthetic)
        k = len(torch.unique(sy))
        for n in args.synthetic_per_class or [None]:
            if n is None:
                x, y, name = sx, sy, "synthetic"
            else:  # a seeded class-stratified subset: n images per class, nested in larger n
                sub = torch.as_tensor(stratified_prefix(sy.numpy(), None, 0, count=n * k))
                x, y, name = sx[sub], sy[sub], f"synthetic-{n}"
            keep, held = (torch.as_tensor(i) for i in stratified_holdout(y.numpy(), 0.1, 0))
            sources[name] = ((x[keep], y[keep]), (x[held], y[held]))
    return data, sources


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--real", required=True)
    p.add_argument("--data-dir")
    p.add_argument("--image-size", type=int, default=32)
    p.add_argument("--resize", default="pad", choices=("pad", "resize"))
    p.add_argument("--real-pool", type=int, default=5000)
    p.add_argument("--synthetic", type=Path, help="a synthetic set to train on alone too")
    p.add_argument("--synthetic-per-class", type=int, nargs="+", metavar="N",
                   help="train on N images per class of the set (each N its own row)")
    p.add_argument("--no-real", action="store_true", help="skip the real-image rows")
    p.add_argument("--recipe", action="append", required=True, metavar="NAME=YAML")
    p.add_argument("--seeds", type=int, default=2)
    p.add_argument("--out", type=Path, required=True)
    args = p.parse_args(argv)
    start = time.perf_counter()
    data, sources = _sources(args)
    recipes = {}
    for item in args.recipe:
        name, _, path = item.partition("=")
        recipes[name] = from_dict(ClassifierRunConfig, read_yaml(path), "classifier")
    rows = []
    for name, cfg in recipes.items():
        for source, ((tx, ty), (vx, vy)) in sources.items():
            runs = []
            for k in range(args.seeds):
                ccfg = replace(cfg, train=replace(cfg.train, seed=k))
                run_dir = args.out / name / source / f"seed-{k}"
                runs.append(train_classifier(
                    ccfg, (tx, ty), (vx, vy), data.classifier_val, data.class_names, run_dir,
                    resume=(run_dir / "checkpoints").is_dir(), progress=False,
                    split="validation"))
            rows.append({"recipe": name, "trained_on": source, "n_train": len(ty),
                         "val_macro_f1": mean_std([r["macro_f1"] for r in runs]),
                         "epochs": [r["epochs"] for r in runs],
                         "train_seconds": [r["train_seconds"] for r in runs]})
            f1 = rows[-1]["val_macro_f1"]
            print(f"{name:<12} {source:<10} n={len(ty):<6} validation macro-F1 "
                  f"{f1['mean']:.4f} ± {f1['std']:.4f} (n={f1['n']})  epochs {rows[-1]['epochs']}",
                  flush=True)
    atomic_write_json(args.out / "classifier_recipe.json", {
        "rows": rows, "recipes": {n: to_dict(c) for n, c in recipes.items()},
        "scored_on": "the classifier half's validation split", "hardware": hardware(),
        "code_version": code_version(), "command": " ".join(sys.argv),
        "wall_seconds": round(time.perf_counter() - start, 1)})
    return 0


if __name__ == "__main__":
    sys.exit(main())

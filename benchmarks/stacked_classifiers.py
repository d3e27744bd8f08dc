"""Training images/s of K classifiers trained stacked (classifier.group_size = K) against one
trained alone by the loop, at the MNIST `cpu` study's classifier recipe (issue 19).

    PYTHONPATH=src python benchmarks/stacked_classifiers.py [--ks 1 2 4 8] [--threads 2]
        [--windows 4] [--steps 4] [--out stacked.json]

Every K is timed in the same run, window by window in turn (so load drifting on a shared
machine hits all alike); images/s counts every member's images. "alone" is the loop's own step
(channels_last, as the study trains today); "stacked K=1" isolates vmap's cost. Seconds per
cell assume a cell that runs all 12 epochs of 100 steps (early stopping shortens both alike).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import warnings
from dataclasses import replace
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "src"))

import torch  # noqa: E402
from measure import interleaved_windows, load_average, machine, warm_up  # noqa: E402

from synthmix.config import from_dict, read_yaml  # noqa: E402
from synthmix.experiment.config import StudyConfig  # noqa: E402
from synthmix.runs.classifier import ClassifierTask, augment, build_classifier  # noqa: E402
from synthmix.runs.classifier_group import Member, _Stack  # noqa: E402
from synthmix.seeding import StepRandom  # noqa: E402
from synthmix.training.loop import State, make_optimizer, train_step  # noqa: E402

STUDY = HERE.parent / "configs" / "cpu" / "mnist.yaml"
SIZE, CHANNELS, CLASSES = 16, 1, 10  # the MNIST cpu study's images


def recipe() -> Any:
    data = read_yaml(STUDY)
    data["ddpm"] = {}
    return from_dict(StudyConfig, data, "study").classifier


def fake_data(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(n, CHANNELS, SIZE, SIZE, generator=g) * 2 - 1,
            torch.randint(0, CLASSES, (n,), generator=g))


def stacked_step(cfg: Any, k: int) -> Any:
    """One stacked step of k members, augmentation included, as the group trainer takes it."""
    cpu = torch.device("cpu")
    members = [Member(build_classifier(cfg.model, CHANNELS, CLASSES, i),
                      ClassifierTask(cfg, fake_data(64, 100 + i), cpu), fake_data(640, i),
                      replace(cfg.train, seed=i), Path("."), State()) for i in range(k)]
    stack = _Stack(members, None)
    bs = cfg.train.batch_size

    def step() -> None:
        xs = [augment(m.train[0][:bs], cfg.augment, StepRandom(torch.Generator().manual_seed(1)))
              for m in members]
        stack.step(torch.stack(xs), torch.stack([m.train[1][:bs] for m in members]),
                   cfg.train.lr)
    return step


def alone_step(cfg: Any) -> Any:
    """The loop's step for one classifier (channels_last), as the study trains today."""
    model = build_classifier(cfg.model, CHANNELS, CLASSES, 0)
    model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
    model.train()
    opt = make_optimizer(model, cfg.train)
    scaler = torch.amp.GradScaler("cpu", enabled=False)
    task = ClassifierTask(cfg, fake_data(64, 100), torch.device("cpu"))
    x, y = fake_data(cfg.train.batch_size, 0)
    x = x.contiguous(memory_format=torch.channels_last)
    return lambda: train_step(model, task, x, y, opt, scaler, cfg.train, 0, cfg.train.lr, None)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--ks", type=int, nargs="+", default=[1, 2, 4, 8])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--windows", type=int, default=4)
    p.add_argument("--steps", type=int, default=4, help="training steps per timed window")
    p.add_argument("--out", type=Path, default=Path("stacked_classifiers.json"))
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    warnings.filterwarnings("ignore", message=".*batching rule.*")
    cfg = recipe()
    bs = cfg.train.batch_size
    names = ["alone"] + [f"stacked K={k}" for k in args.ks]
    fns = [alone_step(cfg)] + [stacked_step(cfg, k) for k in args.ks]
    items = [bs] + [bs * k for k in args.ks]
    info = machine(torch.device("cpu"))
    for fn in fns:
        warm_up(fn, 2, torch.device("cpu"))
    rates = interleaved_windows(fns, items, windows=args.windows, calls_per_window=args.steps,
                                device=torch.device("cpu"))
    info["load_average_1min_end"] = round(load_average(), 2)
    base = statistics.median(rates[0])
    rows = []
    cell_images = cfg.train.max_epochs * (cfg.train.steps_per_epoch or 0) * bs
    for name, r in zip(names, rates, strict=True):
        med = statistics.median(r)
        rows.append({"case": name, "images_per_s": round(med, 1),
                     "windows": [round(v, 1) for v in r], "vs_alone": round(med / base, 2),
                     "seconds_per_cell": round(cell_images / med, 1)})
    print(f"{info['cpu']}, {args.threads} threads, load {info['load_average_1min_start']}"
          f" -> {info['load_average_1min_end']}")
    print("| case | images/s (median) | vs alone | s per cell |\n|---|---|---|---|")
    for row in rows:
        print(f"| {row['case']} | {row['images_per_s']} | {row['vs_alone']}x"
              f" | {row['seconds_per_cell']} |")
    args.out.write_text(json.dumps({"machine": info, "threads": args.threads, "rows": rows},
                                   indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Training the classifier of one cell of a study plan, and sharing cells out between ranks.

A cell's data follow from its repeat k alone: the real subset and the synthetic subset are
class-stratified prefixes in an order drawn from the mix seed of repeat k (with
`mixes.resample`; otherwise one order for all repeats), the classifier starts from seed
classifier.train.seed + k, and the synthetic images come from set k mod synthetic.sets. The
test set is scored once, after training, and steers nothing.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch

from synthmix.data.splits import stratified_prefix
from synthmix.experiment.config import StudyConfig
from synthmix.experiment.mixes import MixedSet, build_mix
from synthmix.experiment.plan import Cell
from synthmix.files import atomic_write_json
from synthmix.runs.classifier import ClassifierRunConfig, train_classifier
from synthmix.runs.classifier_group import train_classifier_group
from synthmix.runs.common import PreparedData, write_run_info
from synthmix.seeding import STREAM_MIX, derive_seed
from synthmix.training import distributed as dist

log = logging.getLogger(__name__)

Tensors = tuple[torch.Tensor, torch.Tensor]
RESULT_FILE = "test_metrics.json"


def real_pools(cfg: StudyConfig, data: PreparedData) -> tuple[Tensors, Tensors]:
    """The classifier half's train/val split, capped at `real_pool_size` (CPU presets)."""
    train, val = data.classifier_train, data.classifier_val
    cap = cfg.mixes.real_pool_size
    if cap is None or cap >= len(train[1]):
        return train, val
    seed = cfg.data.split_seed
    ti = torch.as_tensor(stratified_prefix(train[1].numpy(), None, seed, count=cap))
    vi = torch.as_tensor(stratified_prefix(val[1].numpy(), cap / len(train[1]), seed))
    return (train[0][ti], train[1][ti]), (val[0][vi], val[1][vi])


def mix_seed(cfg: StudyConfig, repeat: int) -> int:
    """The seed that orders the pools for repeat `repeat` (nested subsets within a repeat)."""
    if not cfg.mixes.resample:
        return cfg.data.split_seed
    return derive_seed(cfg.data.split_seed, STREAM_MIX, repeat) % 2**31


@dataclass
class CellInputs:
    """Everything a cell's classifier may train on: the real pools and the synthetic sets."""

    real: Tensors
    real_val: Tensors
    synthetic: Callable[[int], Tensors]  # set index -> its images and labels
    synthetic_paths: Sequence[Path]
    data: PreparedData


def shown_in_report(cell: Cell) -> bool:
    """The runs whose loss curve and confusion matrix the report shows: Table 6, repeat 0
    (the first cell of its content, so a shared run is this one)."""
    return cell.group == "table" and cell.repeat == 0


def prepare_cell(cfg: StudyConfig, cell: Cell, inputs: CellInputs, run_dir: Path
                 ) -> tuple[ClassifierRunConfig, MixedSet]:
    """A cell's classifier config (seed shifted by its repeat) and mix; mix.json and the run
    info are written."""
    syn = (inputs.synthetic(cell.synthetic_set) if cell.synthetic_set is not None
           else (inputs.real[0][:0], inputs.real[1][:0]))
    seed = mix_seed(cfg, cell.repeat)
    mixed = build_mix(cell.n_real, cell.n_synthetic, inputs.real, inputs.real_val, syn, seed,
                      min_val_per_class=cfg.mixes.min_val_per_class)
    train = cfg.classifier.train
    ccfg = replace(
        cfg.classifier,
        train=replace(train, seed=train.seed + cell.repeat,
                      pictures=train.pictures and shown_in_report(cell)),
        device=cfg.device, num_threads=cfg.num_threads,
    )  # fmt: skip
    run_dir.mkdir(parents=True, exist_ok=True)
    sources = {
        "repeat": cell.repeat, "classifier_seed": ccfg.train.seed, "mix_seed": seed,
        "synthetic_set": None if cell.synthetic_set is None
        else str(inputs.synthetic_paths[cell.synthetic_set]),
    }  # fmt: skip
    atomic_write_json(run_dir / "mix.json", {
        "name": cell.name, "group": cell.group, "real_fraction": cell.real_fraction,
        "semantics": cfg.mixes.semantics, "seed": cell.repeat, **sources, **mixed.sizes(),
    })  # fmt: skip
    write_run_info(run_dir, ccfg, {"kind": "classifier", "cell": cell.name,
                                   "rank": dist.rank()})
    return ccfg, mixed


def train_cell(cfg: StudyConfig, cell: Cell, inputs: CellInputs, run_dir: Path,
               progress: bool) -> dict[str, Any]:
    """Train and test one cell's classifier; a finished run is read back instead."""

    result_path = run_dir / RESULT_FILE
    if result_path.is_file():
        return dict(json.loads(result_path.read_text()))
    ccfg, mixed = prepare_cell(cfg, cell, inputs, run_dir)
    metrics = train_classifier(ccfg, (mixed.train_x, mixed.train_y), (mixed.val_x, mixed.val_y),
                               inputs.data.test, inputs.data.class_names, run_dir,
                               resume=(run_dir / "checkpoints").is_dir(), progress=progress)
    _log_cell(cell, metrics)
    return metrics


def train_cell_group(cfg: StudyConfig, cells: Sequence[Cell], inputs: CellInputs,
                     study_dir: Path, progress: bool) -> None:
    """Train several cells' classifiers at once (`classifier.group_size`); each cell's result
    is written as soon as its classifier stops."""
    prepared = [prepare_cell(cfg, c, inputs, study_dir / c.run_dir) for c in cells]
    results = train_classifier_group(
        [p[0] for p in prepared],
        [((m.train_x, m.train_y), (m.val_x, m.val_y)) for _, m in prepared],
        inputs.data.test, inputs.data.class_names, [study_dir / c.run_dir for c in cells],
        progress=progress)
    for cell, metrics in zip(cells, results, strict=True):
        _log_cell(cell, metrics)


def _log_cell(cell: Cell, metrics: dict[str, Any]) -> None:
    log.info("%s repeat %d: macro-F1 %.4f, accuracy %.4f", cell.name, cell.repeat,
             metrics["macro_f1"], metrics["accuracy"])


def my_share(n: int, comm: dist.Comm) -> list[int]:
    """The indices of n tasks this rank takes: i with i mod world == rank."""
    return [i for i in range(n) if i % comm.world == comm.rank]


def run_cells(cfg: StudyConfig, cells: Sequence[Cell], inputs: CellInputs, study_dir: Path,
              progress: bool, comm: dist.Comm) -> dict[str, dict[str, Any]]:
    """Train the cells (rank r takes cells r, r + N, ...; `classifier.group_size` of its
    unfinished ones at once), wait for every rank, and return each cell's test metrics by run
    directory."""
    mine = [cells[i] for i in my_share(len(cells), comm)]
    todo = [c for c in mine if not (study_dir / c.run_dir / RESULT_FILE).is_file()]
    size = max(1, cfg.classifier.group_size)
    for i in range(0, len(todo), size):
        if size == 1:
            train_cell(cfg, todo[i], inputs, study_dir / todo[i].run_dir, progress)
        else:
            train_cell_group(cfg, todo[i : i + size], inputs, study_dir, progress)
    comm.barrier()
    return {c.run_dir: dict(json.loads((study_dir / c.run_dir / RESULT_FILE).read_text()))
            for c in cells}

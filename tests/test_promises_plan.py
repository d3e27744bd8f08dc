"""`synthmix demo` runs through its own command (at tiny size), and every shipped study config is
planned against its data set's real split sizes on the CPU, so a config that cannot run fails
here and not on the GPU."""

from __future__ import annotations

import json
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch

from synthmix.cli import main
from synthmix.config import load_config
from synthmix.data import load_dataset, make_study_splits
from synthmix.data.idx import read_idx
from synthmix.data.prepared import PreparedData
from synthmix.experiment.config import StudyConfig
from synthmix.experiment.stages import base_settings, ddpm_config_for
from synthmix.experiment.study import make_plan
from synthmix.runs.ddpm import build_unet

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "src" / "synthmix" / "experiment" / "demo.yaml"

# The demo's own config and command; only the sizes shrink (seconds instead of ten minutes).
TINY_DEMO = [
    "data.image_size=8", "seeds=1", "quality.max_images=100",
    "ddpm.overrides.schedule.T=20", "ddpm.overrides.unet.preset=tiny",
    "ddpm.overrides.train.max_steps=2", "ddpm.overrides.train.steps_per_epoch=2",
    "ddpm.overrides.train.batch_size=32", "ddpm.overrides.train.warmup_steps=0",
    "ddpm.overrides.sample.steps=2", "ddpm.overrides.sample.grid_per_class=1",
    "synthetic.n_per_class=6", "synthetic.steps=2", "synthetic.batch_size=60",
    "synthetic.shard_size=60", "tune.n_per_class=3",
    "classifier.train.max_epochs=1", "classifier.train.steps_per_epoch=2",
    "mixes.controls=false", "worth.real_fractions=[0.3,1.0]", "worth.synthetic_fractions=[1.0]",
    "worth.with_synthetic=false",
]


def test_the_demo_runs_through_its_own_command(tmp_path: Path, capsys) -> None:
    out = tmp_path / "demo"
    sets = [arg for key in TINY_DEMO for arg in ("--set", key)]
    assert main(["demo", "--study-dir", str(out), *sets, "--no-progress"]) == 0
    results = json.loads((out / "results.json").read_text())
    assert results["name"] == "demo" and results["config"]["data"]["dataset"] == "digits"
    assert [r["name"] for r in results["table"]] == [f"Exp {i}" for i in range(1, 6)]
    assert results["worth"]["answer"] and results["quality"]["fid"] is not None
    assert len(results["tuning"]["candidates"]) == 3  # the demo's guidance scales, tuned
    assert results["stages"]["ddpm"]["steps"] == 2
    assert len(json.loads((out / "synthetic" / "set-1" / "manifest.json").read_text())
               ["shards"]) == 1
    assert "The answer" in (out / "report.md").read_text()
    assert (out / "report.html").is_file()


def _train_labels(dataset: str, shared: Path) -> tuple[np.ndarray, int]:
    """The official training labels of `dataset`, read from the real files (labels only;
    cifar10 and cifar10-jpeg hold the same 50,000 training images)."""
    if dataset == "digits":
        raw = load_dataset("digits")
        return raw.train.labels, len(raw.class_names)
    if dataset in ("mnist", "fashion-mnist"):
        return read_idx(shared / dataset / "train-labels-idx1-ubyte.gz", 1)[0], 10
    # The archive's listing gives the classes; stratified split sizes depend on class counts.
    archive = shared / "cifar10-jpeg" / "cifar10-jpeg.tar.gz"
    with tarfile.open(archive, "r:gz") as tar:
        classes = [m.name.split("/")[2] for m in tar if m.isfile() and "/train/" in m.name]
    names = sorted(set(classes))
    return np.array([names.index(c) for c in classes]), len(names)


def _labels_only(cfg: StudyConfig, labels: np.ndarray, k: int) -> PreparedData:
    """The data a study plans with: the study's split of the real labels, images left empty."""
    splits = make_study_splits(labels, seed=cfg.data.split_seed,
                               diffusion_fraction=cfg.data.diffusion_fraction,
                               val_fraction=cfg.data.val_fraction)

    def part(idx: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        return torch.empty(len(idx), 0), torch.as_tensor(labels[idx])

    return PreparedData(tuple(str(i) for i in range(k)), part(splits.diffusion_train),
                        part(splits.diffusion_val), part(splits.classifier_train),
                        part(splits.classifier_val), part(np.arange(0)), splits)


def _shipped_studies() -> list[Path]:
    return [p for p in sorted((ROOT / "configs").glob("*/*.yaml")) if p.parent.name != "ddpm"]


def test_every_shipped_study_is_planned_against_its_real_split_sizes(shared_datasets) -> None:
    studies = [*_shipped_studies(), DEMO]
    assert {p.parent.name for p in studies} >= {"paper", "gpu", "cpu"}
    labels: dict[str, tuple[np.ndarray, int]] = {}
    nets: set[tuple[str, int, int, int]] = set()
    for path in studies:
        cfg = load_config(StudyConfig, path)
        name = "cifar10" if cfg.data.dataset.startswith("cifar10") else cfg.data.dataset
        if name not in labels:
            labels[name] = _train_labels(name, shared_datasets)
        k = labels[name][1]
        plan, real, real_val = make_plan(cfg, _labels_only(cfg, *labels[name]))
        assert plan.runs() and len(real[1]) == plan.n_real_pool, path
        if cfg.mixes.real_pool_size is not None:
            assert plan.n_real_pool <= cfg.mixes.real_pool_size, path
        ddpm = ddpm_config_for(cfg, path.parent)
        channels = cfg.data.channels or (3 if name.startswith("cifar10") else 1)
        nets.add((json.dumps(ddpm.unet, sort_keys=True), channels, cfg.data.image_size or 32, k))
        base_settings(cfg)
    for spec, channels, size, k in nets:  # each distinct U-Net built once, on the CPU
        build_unet(json.loads(spec), channels, size, k)
    assert len(labels["mnist"][0]) == 60000 and len(labels["cifar10"][0]) == 50000


def test_an_impossible_gpu_config_fails_here(tmp_path: Path, shared_datasets) -> None:
    """What the test above guards against: a size the real pools cannot give."""
    path = ROOT / "configs" / "gpu" / "mnist.yaml"
    cfg = load_config(StudyConfig, path, ["synthetic.n_per_class=2000",
                                          "mixes.semantics=fixed-total", "mixes.total=40000"])
    from synthmix.errors import ConfigError

    with pytest.raises(ConfigError, match="fixed-total 40000 needs"):
        make_plan(cfg, _labels_only(cfg, *_train_labels("mnist", shared_datasets)))

"""synthmix as a library: a light `import synthmix`, sampling from a run (the same images as a
synthetic set), synthetic and real sets as torch Datasets, study configs and results."""

from __future__ import annotations

import json
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

import synthmix
from synthmix.cli import main
from synthmix.data import to_uint8_images
from synthmix.errors import ConfigError, DataError
from synthmix.runs.common import DataConfig, prepare_data
from synthmix.synthetic import dataset as dataset_module
from synthmix.synthetic.format import read_synthetic_set, write_synthetic_set

ROOT = Path(__file__).resolve().parents[1]
TINY = [
    "--set", "data.dataset=digits", "--set", "data.image_size=8", "--set", "unet.preset=tiny",
    "--set", "schedule.T=20", "--set", "train.max_steps=2", "--set", "train.steps_per_epoch=2",
    "--set", "train.batch_size=32", "--set", "sample.steps=2", "--set", "sample.grid_per_class=1",
    "--set", "num_threads=1",
]  # fmt: skip
CLASSES = ("cat", "dog", "fox")


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> synthmix.Run:
    run_dir = tmp_path_factory.mktemp("library") / "run"
    cfg = str(ROOT / "configs" / "ddpm" / "mnist-cpu.yaml")
    assert main(["train-ddpm", cfg, *TINY, "--run-dir", str(run_dir), "--no-progress"]) == 0
    run = synthmix.load_run(run_dir, device="cpu")
    # Two steps leave the network's eps near zero, where every sampler setting makes about the
    # same image; jittered weights make the settings (and a test that ignored them) show.
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in run.ddpm.model.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=g))
    return run


@pytest.fixture
def small_set(tmp_path: Path) -> tuple[Path, np.ndarray, np.ndarray, np.ndarray]:
    """10 random RGB 5x4 images of 3 classes in shards of 4 (4, 4, 2)."""
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(10, 5, 4, 3), dtype=np.uint8)
    images[0] = 0
    images[1] = 255
    labels = (np.arange(10) % 3).astype(np.int64)
    seeds = rng.integers(0, 2**62, size=10, dtype=np.int64)
    path = write_synthetic_set(tmp_path / "set", images, labels, seeds, CLASSES,
                               {"sampler": "ddim"}, shard_size=4)
    return path, images, labels, seeds


def test_import_synthmix_stays_light_and_every_public_name_resolves() -> None:
    code = "import sys, synthmix; print('torch' in sys.modules, synthmix.__version__)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.split()
    assert out == ["False", "0.1.0"]
    for name in synthmix.__all__:
        assert getattr(synthmix, name) is not None, name
    assert {"load_run", "SyntheticDataset", "RealDataset", "run_study"} <= set(dir(synthmix))
    with pytest.raises(AttributeError, match="no_such_name"):
        _ = synthmix.no_such_name  # type: ignore[attr-defined]


def test_sample_gives_images_in_range_and_the_set_order_of_labels(run) -> None:
    assert run.class_names == tuple(str(d) for d in range(10))
    assert run.image_shape == (8, 8, 1)
    assert run.settings == synthmix.SamplerSettings("dpmpp", 2, 1.0)  # the run's sample: section
    images, labels = run.sample(n_per_class=2)
    assert images.shape == (20, 1, 8, 8) and images.dtype == torch.float32
    assert images.device.type == "cpu" and torch.isfinite(images).all()
    assert images.min() >= -1.0 and images.max() <= 1.0 and images.std() > 0.05
    assert labels.dtype == torch.int64
    assert labels.tolist() == list(range(10)) * 2  # classes interleaved, as in a set


def test_sample_makes_the_images_of_a_synthetic_set_with_the_same_seed(run, tmp_path) -> None:
    overrides = {"sampler": "ddim", "steps": 3, "guidance_scale": 2.0}
    path = run.sample_set(tmp_path / "set", n_per_class=3, seed=5, shard_size=7, **overrides)
    syn = read_synthetic_set(path)
    assert syn.manifest["provenance"]["sampler"] == "ddim"
    assert syn.manifest["provenance"]["steps"] == 3 and syn.manifest["provenance"]["base_seed"] == 5
    images, labels = run.sample(n_per_class=3, seed=5, batch_size=4, **overrides)
    assert np.array_equal(labels.numpy(), syn.labels)
    diff = np.abs(to_uint8_images(images).astype(int) - syn.images.astype(int))
    assert diff.max() <= 1  # other batch sizes may round a pixel the other way
    unguided, _ = run.sample(n_per_class=3, seed=5, **{**overrides, "guidance_scale": 0.0})
    assert np.abs(to_uint8_images(unguided).astype(int) - syn.images.astype(int)).max() > 10
    # Asking for two classes gives exactly their images of the same set.
    some, some_labels = run.sample(n_per_class=3, seed=5, labels=[7, "2"], **overrides)
    keep = np.isin(syn.labels, [2, 7])
    assert some_labels.tolist() == syn.labels[keep].tolist()
    assert np.abs(to_uint8_images(some).astype(int) - syn.images[keep].astype(int)).max() <= 1


def test_seeds_own_the_images(run) -> None:
    a, _ = run.sample(n_per_class=1, seed=0)
    again, _ = run.sample(n_per_class=1, seed=0)
    b, _ = run.sample(n_per_class=1, seed=1)
    assert torch.equal(a, again)
    assert all(not torch.equal(x, y) for x, y in zip(a, b))


def test_bad_sampling_arguments_are_config_errors(run) -> None:
    with pytest.raises(ConfigError, match="unknown key.*'stepz'"):
        run.sample(n_per_class=1, stepz=3)
    with pytest.raises(ConfigError, match="sampler"):
        run.sample(n_per_class=1, sampler="euler")
    with pytest.raises(ConfigError, match="no class named 'eleven'"):
        run.sample(n_per_class=1, labels=["eleven"])
    with pytest.raises(ConfigError, match="n_per_class"):
        run.sample(n_per_class=0)
    with pytest.raises(synthmix.SynthmixError, match="no run.json"):
        synthmix.load_run(run.path.parent)


def test_synthetic_dataset_items_equal_the_set(small_set) -> None:
    path, images, labels, seeds = small_set
    ds = synthmix.SyntheticDataset(path)
    assert len(ds) == 10 and ds.class_names == CLASSES and ds.image_shape == (5, 4, 3)
    assert ds.manifest["provenance"]["sampler"] == "ddim"
    assert np.array_equal(ds.seeds, seeds) and np.array_equal(ds.labels, labels)
    for i in (0, 1, 5, 9, -1):
        x, y = ds[i]
        assert x.shape == (3, 5, 4) and x.dtype == torch.float32
        expected = torch.from_numpy(images[i].transpose(2, 0, 1).astype(np.float32)) / 127.5 - 1
        assert torch.equal(x, expected) and y == labels[i] and isinstance(y, int)
        assert ds.seed(i) == seeds[i]
    assert ds[0][0].min() == -1.0 and ds[1][0].max() == 1.0
    with pytest.raises(IndexError):
        ds[10]
    raw = synthmix.SyntheticDataset(path, transform=lambda pixels: pixels)
    assert raw[6][0].dtype == np.uint8 and np.array_equal(raw[6][0], images[6])


def test_synthetic_dataset_loads_one_shard_at_a_time(small_set, monkeypatch) -> None:
    path, *_ = small_set
    loads: list[str] = []
    real_load = dataset_module.load_shard

    def counting_load(file, *args, **kwargs):
        loads.append(file.name)
        return real_load(file, *args, **kwargs)

    monkeypatch.setattr(dataset_module, "load_shard", counting_load)
    ds = synthmix.SyntheticDataset(path)
    assert loads == []  # opening reads only the manifest
    [ds[i] for i in range(10)]
    assert loads == ["shard-00000.npz", "shard-00001.npz", "shard-00002.npz"]
    assert list(ds._cache) == [2]  # only the most recent shard is held
    ds[0], ds[9], ds[8]
    assert loads[3:] == ["shard-00000.npz", "shard-00002.npz"]
    # A DataLoader worker gets the dataset without the loaded shard.
    assert pickle.loads(pickle.dumps(ds))._cache == {}
    two = synthmix.SyntheticDataset(path, cached_shards=2)
    loads.clear()
    two[0], two[5], two[1], two[6]
    assert loads == ["shard-00000.npz", "shard-00001.npz"]


def test_synthetic_dataset_works_with_a_dataloader(small_set) -> None:
    path, images, labels, _ = small_set
    batches = list(DataLoader(synthmix.SyntheticDataset(path), batch_size=4, shuffle=False))
    x = torch.cat([b[0] for b in batches])
    y = torch.cat([b[1] for b in batches])
    assert x.shape == (10, 3, 5, 4) and y.tolist() == labels.tolist()
    assert np.array_equal(to_uint8_images(x), images)


def test_corrupt_or_incomplete_sets_are_data_errors_naming_the_file(small_set) -> None:
    path, *_ = small_set
    shard = path / "shard-00001.npz"
    data = bytearray(shard.read_bytes())
    data[len(data) // 2] ^= 0xFF
    shard.write_bytes(bytes(data))
    ds = synthmix.SyntheticDataset(path)
    assert ds[0][1] == 0  # an intact shard still reads
    with pytest.raises(DataError, match=r"shard-00001\.npz.*sha256"):
        ds[4]
    with pytest.raises(DataError, match=r"shard-00001\.npz.*sha256"):
        _ = ds.seeds
    manifest = json.loads((path / "manifest.json").read_text())
    manifest["complete"] = False
    (path / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(DataError, match=r"incomplete: 3 of 3 shards"):
        synthmix.SyntheticDataset(path)
    with pytest.raises(DataError, match="no manifest.json"):
        synthmix.SyntheticDataset(path.parent)


def test_real_dataset_gives_the_study_splits_of_digits() -> None:
    cfg = DataConfig(dataset="digits", image_size=8, resize="resize")
    data = prepare_data(cfg)
    sizes = {}
    for split in ("diffusion_train", "diffusion_val", "classifier_train", "classifier_val",
                  "test"):
        ds = synthmix.RealDataset("digits", split, image_size=8, resize="resize")
        x, y = getattr(data, split)
        sizes[split] = len(ds)
        assert len(ds) == len(y) and ds.class_names == data.class_names
        assert torch.equal(ds.labels, y) and set(ds.labels.tolist()) == set(range(10))
        first, label = ds[0]
        assert torch.equal(first, x[0]) and label == int(y[0]) and first.shape == (1, 8, 8)
    assert sizes["test"] == 360 and sum(sizes.values()) == 1797
    assert sizes["diffusion_train"] + sizes["diffusion_val"] == pytest.approx(1437 / 2, abs=10)
    flipped = synthmix.RealDataset("digits", "test", image_size=8, resize="resize",
                                   transform=lambda pixels: pixels[:, ::-1].copy())
    assert flipped[3][0].dtype == np.uint8 and flipped[3][0].shape == (8, 8, 1)
    assert np.array_equal(flipped[3][0], to_uint8_images(data.test[0][3:4])[0][:, ::-1])
    with pytest.raises(ConfigError, match="unknown split 'validation'"):
        synthmix.RealDataset("digits", "validation")  # type: ignore[arg-type]


def test_read_results_and_load_config(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"results\.json.*synthmix experiment"):
        synthmix.read_results(tmp_path)
    (tmp_path / "results.json").write_text(json.dumps({"name": "x", "table": []}))
    assert synthmix.read_results(tmp_path) == {"name": "x", "table": []}
    demo = ROOT / "src" / "synthmix" / "experiment" / "demo.yaml"
    as_list = synthmix.load_config(demo, ["seeds=2", "data.image_size=8"])
    as_dict = synthmix.load_config(demo, {"seeds": 2, "data.image_size": 8})
    assert isinstance(as_dict, synthmix.StudyConfig) and as_dict == as_list
    assert as_dict.seeds == 2 and as_dict.data.image_size == 8 and as_dict.name == "demo"
    with pytest.raises(ConfigError, match="unknown key"):
        synthmix.load_config(demo, {"seedz": 2})
    with pytest.raises(ConfigError, match="StudyConfig or a YAML path"):
        synthmix.run_study(42, tmp_path / "study")  # type: ignore[arg-type]

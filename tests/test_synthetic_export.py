"""Export: PNG image-folder tree (pixels exact, L or RGB) with metadata.jsonl and a dataset card
that Hugging Face `datasets` reads with synthmix's labels, and one .npz, also via the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from synthmix.cli import main
from synthmix.errors import DataError
from synthmix.synthetic.export import export_synthetic_set, folder_names
from synthmix.synthetic.format import read_synthetic_set, write_synthetic_set

CLASSES = ("zero", "one", "two")
# Alphabetical folder order (Ankle, T-shirt, zebra) is not the class order, and "/" is no folder.
AWKWARD = ("zebra", "T-shirt/top", "Ankle boot")
PROVENANCE = {"checkpoint_sha256": "c0ffee" * 10 + "beef", "run_dir": "/runs/ddpm-x",
              "sampler": "ddim", "steps": 7, "guidance_scale": 1.5, "eta": 0.25,
              "thresholding": "dynamic", "seed_rule": 2, "base_seed": 3}


def make_set(root: Path, channels: int, n: int = 7, classes: tuple[str, ...] = CLASSES,
             provenance: dict | None = None) -> tuple[Path, np.ndarray]:
    rng = np.random.default_rng(channels)
    images = rng.integers(0, 256, size=(n, 6, 5, channels), dtype=np.uint8)
    images[0] = 0  # the extremes survive the round trip too
    images[1] = 255
    labels = np.array([2, 0, 1, 1, 0, 2, 2], dtype=np.int64)[:n]
    seeds = np.arange(n, dtype=np.int64) + 10**12
    path = write_synthetic_set(root / f"set{channels}", images, labels, seeds, classes,
                               provenance or {}, shard_size=3)
    return path, images


@pytest.mark.parametrize(("channels", "mode"), [(1, "L"), (3, "RGB")])
def test_png_tree_reads_back_exactly(tmp_path: Path, channels: int, mode: str) -> None:
    path, images = make_set(tmp_path, channels)
    out = export_synthetic_set(path, tmp_path / "png", "png", progress=False)
    assert out == tmp_path / "png" and not (tmp_path / "png.partial").exists()
    files = sorted((out / "train").glob("*/*.png"))
    assert len(files) == 7
    assert sorted(p.name for p in (out / "train").iterdir()) == sorted(
        [*CLASSES, "metadata.jsonl"])
    labels = [2, 0, 1, 1, 0, 2, 2]
    for i in range(7):
        file = out / "train" / CLASSES[labels[i]] / f"{i:06d}-seed{10**12 + i}.png"
        with Image.open(file) as im:
            assert im.mode == mode
            pixels = np.asarray(im)
        assert np.array_equal(pixels.reshape(images[i].shape), images[i])
    assert (out / "export.json").is_file()
    with pytest.raises(DataError, match="already exists"):
        export_synthetic_set(path, out, "png", progress=False)


def test_npz_export_and_cli(tmp_path: Path) -> None:
    path, images = make_set(tmp_path, 3)
    assert main(["export", str(path), "--format", "npz", "--out", str(tmp_path / "x")]) == 0
    with np.load(tmp_path / "x" / "set3.npz", allow_pickle=False) as npz:
        assert np.array_equal(npz["images"], images)
        assert npz["labels"].tolist() == [2, 0, 1, 1, 0, 2, 2]
        assert npz["seeds"].tolist() == [10**12 + i for i in range(7)]
        assert npz["class_names"].tolist() == list(CLASSES)
    assert main(["export", str(path), "--out", str(tmp_path / "tree"), "--no-progress"]) == 0
    assert len(list((tmp_path / "tree" / "train").glob("*/*.png"))) == 7
    # A broken set is a one-line error and exit code 2, not a traceback.
    (path / "shard-00001.npz").unlink()
    assert main(["export", str(path), "--format", "npz", "--out", str(tmp_path / "y")]) == 2
    assert not (tmp_path / "y").exists()


def read_metadata(tree: Path) -> list[dict]:
    lines = (tree / "train" / "metadata.jsonl").read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines]


def test_metadata_rows_match_images_and_the_card_says_how_they_were_made(tmp_path: Path) -> None:
    path, images = make_set(tmp_path, 3, provenance=PROVENANCE)
    out = export_synthetic_set(path, tmp_path / "png", "png", progress=False)
    rows = read_metadata(out)
    labels = [2, 0, 1, 1, 0, 2, 2]
    assert [r["label"] for r in rows] == labels
    assert [r["class_name"] for r in rows] == [CLASSES[c] for c in labels]
    assert [r["seed"] for r in rows] == [10**12 + i for i in range(7)]
    for i, row in enumerate(rows):
        assert set(row) == {"file_name", "label", "class_name", "seed"}
        assert row["file_name"] == f"{CLASSES[labels[i]]}/{i:06d}-seed{10**12 + i}.png"
        with Image.open(out / "train" / row["file_name"]) as im:  # relative to metadata.jsonl
            assert np.array_equal(np.asarray(im), images[i])
    card = (out / "README.md").read_text(encoding="utf-8")
    for fact in ("| sampler | `ddim` |", "| steps | `7` |", "| guidance_scale | `1.5` |",
                 "| eta | `0.25` |", "| thresholding | `dynamic` |", "| seed_rule | `2` |",
                 "| base_seed | `3` |", PROVENANCE["checkpoint_sha256"], "| DDPM run | `ddpm-x` |",
                 "| 0 | zero | `zero` | 2 |", "| 2 | two | `two` | 3 |",
                 'load_dataset("imagefolder"', "synthmix (sampling) | `0.1.0"):
        assert fact in card, fact
    record = json.loads((out / "export.json").read_text())
    assert record["source_manifest"]["provenance"]["sampler"] == "ddim"
    assert record["class_folders"] == {c: c for c in CLASSES}
    assert record["code_version"]["synthmix"] == "0.1.0"


def test_folder_names_are_safe_and_unique() -> None:
    assert folder_names(("T-shirt/top", "a\\b", "nul\0", "ok")) == (
        "T-shirt_top", "a_b", "nul_", "ok")
    assert folder_names((".", "..", "Cat", "cat", "x/y", "x_y")) == (
        "_", "__", "Cat", "cat-3", "x_y", "x_y-5")
    assert folder_names(("Metadata.JSONL",)) == ("Metadata.JSONL-0",)  # the file's name is taken


def test_class_names_with_slashes_export_to_safe_folders(tmp_path: Path) -> None:
    path, images = make_set(tmp_path, 1, classes=AWKWARD)  # a Fashion-MNIST name is fine now
    assert read_synthetic_set(path).class_names == AWKWARD
    out = export_synthetic_set(path, tmp_path / "png", "png", progress=False)
    assert sorted(p.name for p in (out / "train").iterdir()) == [
        "Ankle boot", "T-shirt_top", "metadata.jsonl", "zebra"]
    rows = read_metadata(out)
    assert [r["class_name"] for r in rows[1:4]] == ["zebra", "T-shirt/top", "T-shirt/top"]
    assert rows[2]["file_name"].startswith("T-shirt_top/") and rows[2]["label"] == 1
    record = json.loads((out / "export.json").read_text())
    assert record["class_folders"]["T-shirt/top"] == "T-shirt_top"
    assert "| 1 | T-shirt/top | `T-shirt_top` | 2 |" in (out / "README.md").read_text()


def test_published_tree_names_no_path_of_this_machine(tmp_path: Path) -> None:
    run = tmp_path / "runs" / "ddpm-x"
    provenance = {**PROVENANCE, "run_dir": str(run),
                  "checkpoint": str(run / "checkpoints" / "best" / "model.safetensors"),
                  "elsewhere": str(tmp_path / "other" / "file.npz")}
    path, _ = make_set(tmp_path / "sets", 3, provenance=provenance, classes=("/a", "b", "c"))
    out = export_synthetic_set(path, tmp_path / "png", "png", progress=False)
    card = (out / "README.md").read_text(encoding="utf-8")
    text = (out / "export.json").read_text(encoding="utf-8")
    for published in (card, text):
        assert str(tmp_path) not in published
    assert "| DDPM run | `ddpm-x` |" in card
    record = json.loads(text)
    prov = record["source_manifest"]["provenance"]
    assert prov["run_dir"] == "ddpm-x"
    assert prov["checkpoint"] == "ddpm-x/checkpoints/best/model.safetensors"
    assert prov["elsewhere"] == "file.npz"
    assert record["source"] == "set3"
    assert record["source_manifest"]["class_names"] == ["/a", "b", "c"]  # names are not paths
    # The set itself keeps its local paths: only what is published drops them.
    assert read_synthetic_set(path).manifest["provenance"]["run_dir"] == str(run)


def test_hugging_face_datasets_round_trip(tmp_path: Path, monkeypatch, optional_extra) -> None:
    """`load_dataset(OUT)` gives every image's pixels, label (a ClassLabel named in synthmix's
    order), class name and seed; `load_dataset("imagefolder", data_dir=OUT)` the same labels."""
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))  # nothing outside tmp_path, no network
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    datasets = optional_extra("datasets", "hf")
    path, images = make_set(tmp_path, 3, classes=AWKWARD)
    out = export_synthetic_set(path, tmp_path / "png", "png", progress=False)
    ds = datasets.load_dataset(str(out), split="train", cache_dir=str(tmp_path / "cache"))
    # Folder-inferred labels would be alphabetical: Ankle boot 0, T-shirt_top 1, zebra 2.
    assert ds.features["label"].names == list(AWKWARD)
    assert sorted(ds.column_names) == ["class_name", "image", "label", "seed"]
    labels = [2, 0, 1, 1, 0, 2, 2]
    by_seed = {row["seed"]: row for row in ds}
    assert sorted(by_seed) == [10**12 + i for i in range(7)]
    for i in range(7):
        row = by_seed[10**12 + i]
        assert row["label"] == labels[i]
        assert row["class_name"] == AWKWARD[labels[i]]
        assert ds.features["label"].int2str(row["label"]) == AWKWARD[labels[i]]
        assert row["image"].mode == "RGB"
        assert np.array_equal(np.asarray(row["image"]), images[i])
    plain = datasets.load_dataset("imagefolder", data_dir=str(out), split="train",
                                  cache_dir=str(tmp_path / "cache2"))
    assert {r["seed"]: r["label"] for r in plain} == {10**12 + i: labels[i] for i in range(7)}

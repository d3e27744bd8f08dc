"""Export a synthetic set as an image-folder PNG tree (readable by Hugging Face `datasets`) or as
one .npz file.

The PNG tree::

    OUT/README.md                 dataset card: what made the images, how to load them
    OUT/export.json               the source set's name and whole manifest (no local paths)
    OUT/train/metadata.jsonl      one row per image: file_name, label, class_name, seed
    OUT/train/<class folder>/<index>-seed<seed>.png

Labels come from metadata.jsonl, not from the folder names. `datasets`' imagefolder sorts the
class folders alphabetically to number them, which would renumber synthmix's classes ("T-shirt/top"
before "Trouser" but "Ankle boot" first); when a metadata file is present it drops the
folder-inferred labels by default (https://huggingface.co/docs/datasets/image_dataset, "If
metadata files are present, the inferred labels based on the directory name are dropped by
default"), so the `label` column is the metadata's: the synthmix class index. `file_name` is
relative to the folder holding metadata.jsonl, as that page's examples are.

The card's YAML header declares the columns (`configs: features:`), with `label` a `ClassLabel`
of the class names in synthmix's order: `load_dataset(OUT)` reads it, as it does for a data set
on the Hub (`load_dataset("imagefolder", data_dir=OUT)` ignores the card: plain int labels).
What is published names no path of this machine: absolute paths in the manifest become relative
to the DDPM run's parent folder (the run's own folder name first), else just a file name.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import yaml

from synthmix.errors import ConfigError, DataError
from synthmix.files import atomic_save_npz, atomic_write_json, atomic_write_text
from synthmix.runinfo import code_version
from synthmix.synthetic.format import SyntheticSet, now_iso, read_synthetic_set

logger = logging.getLogger(__name__)

PNG_MODES = {1: "L", 3: "RGB", 4: "RGBA"}  # channels -> PIL mode
SPLIT = "train"  # the tree's one split folder
METADATA_NAME = "metadata.jsonl"
CARD_NAME = "README.md"
UNSAFE_IN_FOLDER_NAMES = "/\\\0"
# What the card reports of how the images were sampled (keys of the manifest's provenance).
CARD_SAMPLING_KEYS = ("sampler", "steps", "guidance_scale", "eta", "thresholding", "seed_rule",
                      "base_seed")


def export_synthetic_set(
    set_path: str | Path, out: str | Path, fmt: Literal["png", "npz"], progress: bool = True
) -> Path:
    """Write the set as `out`/train/<class>/<index>-seed<seed>.png (+ metadata.jsonl and a
    dataset card) or `out`/<name>.npz."""
    if fmt not in ("png", "npz"):
        raise ConfigError(f"unknown export format {fmt!r}; use png or npz")
    synthetic = read_synthetic_set(set_path)
    out = Path(out)
    path = _export_png(synthetic, out, progress) if fmt == "png" else _export_npz(synthetic, out)
    logger.info("exported %d images from %s to %s", len(synthetic), synthetic.path, path)
    return path


def folder_names(class_names: Sequence[str]) -> tuple[str, ...]:
    """A folder-safe, unique name per class: "/", "\\" and NUL become "_", "." and ".." are
    spelt with "_", and a clash (also one differing only in case, or with metadata.jsonl) gets
    "-<class index>"."""
    out: list[str] = []
    taken = {METADATA_NAME.casefold()}
    for c, name in enumerate(class_names):
        safe = "".join("_" if ch in UNSAFE_IN_FOLDER_NAMES else ch for ch in name)
        if safe.strip(".") == "":
            safe = safe.replace(".", "_") or "_"
        while safe.casefold() in taken:
            safe = f"{safe}-{c}"
        taken.add(safe.casefold())
        out.append(safe)
    return tuple(out)


def _export_png(synthetic: SyntheticSet, out: Path, progress: bool) -> Path:
    """A class-per-folder PNG tree, written into `out`.partial and renamed when done."""
    from PIL import Image
    from tqdm.auto import tqdm

    if out.exists():
        raise DataError("already exists; remove it or choose another --out", path=out)
    channels = synthetic.images.shape[-1]
    if channels not in PNG_MODES:
        raise DataError(f"{channels}-channel images cannot be PNG", path=synthetic.path)
    partial = out.with_name(out.name + ".partial")
    if partial.exists():
        logger.info("removing %s left by an interrupted export", partial)
        shutil.rmtree(partial)
    folders = folder_names(synthetic.class_names)
    for folder in folders:
        (partial / SPLIT / folder).mkdir(parents=True)
    rows: list[dict[str, Any]] = []
    for i in tqdm(range(len(synthetic)), unit="img", desc="export png", disable=not progress,
                  mininterval=1.0):
        label, seed = int(synthetic.labels[i]), int(synthetic.seeds[i])
        file_name = f"{folders[label]}/{i:06d}-seed{seed}.png"  # relative to metadata.jsonl
        pixels = synthetic.images[i]  # (H, W, C)
        # PIL picks mode L for (H, W) and RGB/RGBA for (H, W, 3/4) uint8 arrays.
        Image.fromarray(pixels[:, :, 0] if channels == 1 else pixels).save(
            partial / SPLIT / file_name)
        rows.append({"file_name": file_name, "label": label,
                     "class_name": synthetic.class_names[label], "seed": seed})
    atomic_write_text(partial / SPLIT / METADATA_NAME,
                      "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    record = _export_record(synthetic, "png", folders)
    atomic_write_json(partial / "export.json", record)
    atomic_write_text(partial / CARD_NAME, dataset_card(synthetic, folders, record))
    os.replace(partial, out)
    return out


def _export_npz(synthetic: SyntheticSet, out: Path) -> Path:
    """One uncompressed `out`/<set name>.npz with images, labels, seeds and class_names."""
    path = out / f"{synthetic.path.resolve().name}.npz"
    if path.exists():
        raise DataError("already exists; remove it or choose another --out", path=path)
    atomic_save_npz(
        path,
        images=synthetic.images,
        labels=synthetic.labels,
        seeds=synthetic.seeds,
        class_names=np.array(synthetic.class_names, dtype=np.str_),  # unicode, no pickle
    )
    return path


def _export_record(
    synthetic: SyntheticSet, fmt: str, folders: Sequence[str] | None = None
) -> dict[str, Any]:
    """Where and when the tree was exported from, with the source manifest, for provenance."""
    record: dict[str, Any] = {
        "format": fmt,
        "source": synthetic.path.resolve().name,
        "created": now_iso(),
        "code_version": code_version(),
    }
    if folders is not None:
        record["class_folders"] = dict(zip(synthetic.class_names, folders))
    record["source_manifest"] = published_manifest(synthetic.manifest)
    return record


def published_manifest(manifest: dict[str, Any]) -> dict[str, Any]:
    """The manifest without this machine's absolute paths: relative to the DDPM run's parent
    folder where under it (`ddpm-x`, `ddpm-x/checkpoints/...`), else the last component."""
    run_dir = (manifest.get("provenance") or {}).get("run_dir")
    base = Path(run_dir).parent if isinstance(run_dir, str) and os.path.isabs(run_dir) else None
    names = manifest.get("class_names")
    out = _relative_paths(manifest, base)
    if names is not None:
        out["class_names"] = names  # a class name is never a path, even one that starts with /
    return out


def _relative_paths(value: Any, base: Path | None) -> Any:
    if isinstance(value, dict):
        return {k: _relative_paths(v, base) for k, v in value.items()}
    if isinstance(value, list):
        return [_relative_paths(v, base) for v in value]
    if isinstance(value, str) and os.path.isabs(value):
        path = Path(value)
        if base is not None and path.is_relative_to(base):
            return path.relative_to(base).as_posix()
        return path.name
    return value


def dataset_card(synthetic: SyntheticSet, folders: Sequence[str], export: dict[str, Any]) -> str:
    """README.md of an exported tree: how the images were made and how to load them."""
    m = export["source_manifest"]
    prov = m.get("provenance") or {}
    per_class = np.bincount(synthetic.labels, minlength=len(folders)).tolist()
    lines = [
        card_header(synthetic.class_names),
        f"# Synthetic images: {synthetic.path.resolve().name}",
        "",
        f"{len(synthetic)} labelled images ({_shape(m)}) sampled by synthmix from a "
        "class-conditional DDPM, each with its own seed: (label, seed) regenerate an image.",
        "",
        "## How they were made",
        "",
        "| | |",
        "| --- | --- |",
        f"| DDPM run | `{_value(prov.get('run_dir'))}` |",
        f"| checkpoint sha256 | `{_value(prov.get('checkpoint_sha256'))}` |",
        *(f"| {key} | `{_value(prov.get(key))}` |" for key in CARD_SAMPLING_KEYS),
        f"| set created | {m.get('created')} |",
        f"| synthmix (sampling) | `{_version(m.get('code_version'))}` |",
        f"| exported | {export['created']} |",
        f"| synthmix (export) | `{_version(export['code_version'])}` |",
        "",
        "`export.json` holds the set's whole manifest (`source_manifest`).",
        "",
        "## Classes",
        "",
        "| label | class name | folder | images |",
        "| ---: | --- | --- | ---: |",
        *(f"| {c} | {_cell(name)} | `{folders[c]}` | {per_class[c]} |"
          for c, name in enumerate(synthetic.class_names)),
        "",
        "## Loading with Hugging Face `datasets`",
        "",
        "```python",
        "from datasets import load_dataset",
        "",
        'ds = load_dataset("path/to/this/folder", split="train")',
        'image, label = ds[0]["image"], ds[0]["label"]  # also ds[0]["class_name"], ds[0]["seed"]',
        'ds.features["label"].names  # the class names of the table above, in its order',
        "```",
        "",
        "`label` is the class index of the table above, read from `train/metadata.jsonl`, and a "
        "`ClassLabel` with the class names declared in this card's header; the folders only "
        "group the files. `load_dataset(\"imagefolder\", data_dir=...)` skips this card: the "
        "same labels as plain integers.",
        "",
    ]
    return "\n".join(lines)


def card_header(class_names: Sequence[str]) -> str:
    """The card's YAML header: the columns, `label` a ClassLabel named in synthmix's order.

    `datasets` reads `configs[].features` in its YAML form (`Features._from_yaml_list`)."""
    features = [
        {"name": "image", "dtype": "image"},
        {"name": "label",
         "dtype": {"class_label": {"names": {str(c): n for c, n in enumerate(class_names)}}}},
        {"name": "class_name", "dtype": "string"},
        {"name": "seed", "dtype": "int64"},
    ]
    config = {"config_name": "default", "data_dir": SPLIT, "features": features}
    body = yaml.safe_dump({"configs": [config]}, sort_keys=False, allow_unicode=True)
    return f"---\n{body}---\n"


def _shape(manifest: dict[str, Any]) -> str:
    h, w, c = manifest.get("image_shape") or ("?", "?", "?")
    return f"{h}x{w}, {c} channel{'s' if c != 1 else ''}"


def _value(value: Any) -> str:
    return "null" if value is None else str(value)


def _version(info: Any) -> str:
    if not isinstance(info, dict):
        return _value(info)
    commit = info.get("git_commit")
    dirty = " (uncommitted changes)" if info.get("git_dirty") else ""
    return f"{info.get('synthmix')}" + (f", git {commit}{dirty}" if commit else "")


def _cell(text: str) -> str:
    """Text safe inside a markdown table cell."""
    return text.replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ")

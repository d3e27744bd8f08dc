"""Image-folder data sets: `{train,test}/<class>/*.png|jpg|...` in a folder or a tar archive."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

import numpy as np
from tqdm import tqdm

from synthmix.data.archive import is_tar_path, iter_tar_members
from synthmix.data.checksums import checksum_status
from synthmix.data.images import decode_image, is_image_name
from synthmix.data.raw import RawDataset, RawSplit, SourceInfo
from synthmix.errors import DataError

SPLITS = ("train", "test")


@dataclass
class _Collected:
    """Decoded images per (split, class), filled while walking the folder or archive."""

    source: Path
    images: dict[tuple[str, str], list[tuple[str, np.ndarray]]] = field(default_factory=dict)
    class_dirs: set[tuple[str, str]] = field(default_factory=set)
    roots: set[PurePosixPath] = field(default_factory=set)

    def add_dir(self, root: PurePosixPath, split: str, cls: str) -> None:
        self.roots.add(root)
        self.class_dirs.add((split, cls))

    def add_image(
        self, root: PurePosixPath, split: str, cls: str, name: str, image: np.ndarray
    ) -> None:
        self.add_dir(root, split, cls)
        self.images.setdefault((split, cls), []).append((name, image))


def folder_files(root: Path) -> list[Path]:
    """Every file under root/{train,test}, sorted (the fingerprint of an image folder)."""
    return sorted(p for s in SPLITS if (root / s).is_dir() for p in (root / s).rglob("*")
                  if p.is_file())


def _walk_folder(root: Path) -> Iterator[tuple[PurePosixPath, bytes | None]]:
    for split in SPLITS:
        split_dir = root / split
        if not split_dir.is_dir():
            raise DataError(f"no {split}/ folder", path=root,
                            hint="an image folder holds train/<class>/* and test/<class>/*")
        for class_dir in sorted(p for p in split_dir.iterdir() if p.is_dir()):
            yield PurePosixPath(split, class_dir.name), None
            for f in sorted(class_dir.iterdir()):
                if f.is_file() and is_image_name(f.name):
                    try:
                        yield PurePosixPath(split, class_dir.name, f.name), f.read_bytes()
                    except OSError as e:
                        raise DataError(f"cannot read: {e.strerror or e}", path=f) from e
        for f in split_dir.iterdir():
            if f.is_file() and is_image_name(f.name):
                raise DataError("image not inside a class folder", path=f)


def _split_position(parts: tuple[str, ...], is_dir: bool) -> int | None:
    """Index of the train/test component in a member path, or None if not in the tree."""
    want = len(parts) - (2 if is_dir else 3)  # <root>/<split>/<class>[/<file>]
    if want >= 0 and parts[want] in SPLITS:
        return want
    return None


def _collect(source: Path, channels: int | None, image_size: int | None,
             progress: bool) -> _Collected:
    out = _Collected(source)
    members = iter_tar_members(source) if source.is_file() else _walk_folder(source)
    where_prefix = f"{source}:" if source.is_file() else f"{source}/"
    for path, data in tqdm(members, desc=f"decoding {source.name}", unit=" files",
                           disable=not progress, mininterval=1.0):
        parts = path.parts
        if any(p.startswith(".") or p == "__MACOSX" for p in parts):
            continue
        pos = _split_position(parts, data is None)
        if data is not None and not is_image_name(path.name):
            continue
        if pos is None:
            if data is not None and len(parts) >= 2 and parts[-2] in SPLITS:
                raise DataError(f"image {path} is not inside a class folder", path=source)
            continue
        root, split, cls = PurePosixPath(*parts[:pos]), parts[pos], parts[pos + 1]
        if data is None:
            out.add_dir(root, split, cls)
            continue
        image = decode_image(data, f"{where_prefix}{path}", channels, image_size)
        out.add_image(root, split, cls, path.name, image)
    return out


def _check_tree(c: _Collected) -> tuple[str, ...]:
    if len(c.roots) > 1:
        found = ", ".join(sorted(str(r) or "." for r in c.roots))
        raise DataError(f"holds several image-folder trees ({found})", path=c.source)
    classes = {s: sorted({cls for split, cls in c.class_dirs if split == s}) for s in SPLITS}
    for s in SPLITS:
        if not classes[s]:
            raise DataError(f"no {s}/<class>/ folders with images found", path=c.source,
                            hint="an image folder holds train/<class>/* and test/<class>/*")
    if classes["train"] != classes["test"]:
        raise DataError(
            f"test class folders {classes['test']} differ from train class folders "
            f"{classes['train']}",
            path=c.source,
        )
    for s in SPLITS:
        for cls in classes[s]:
            if not c.images.get((s, cls)):
                raise DataError(f"class folder {s}/{cls} holds no images", path=c.source)
    return tuple(classes["train"])


def _stack(c: _Collected, split: str, class_names: tuple[str, ...],
           channels: int | None) -> RawSplit:
    items = [(cls_i, name, a) for cls_i, cls in enumerate(class_names)
             for name, a in sorted(c.images[(split, cls)], key=lambda t: t[0])]
    shapes = {a.shape[:2] for _, _, a in items}
    if len(shapes) > 1:
        raise DataError(
            f"images have different sizes ({', '.join(f'{h}x{w}' for h, w in sorted(shapes)[:4])})",
            path=c.source, hint="set image_size (--image-size) to resize them all",
        )
    kinds = {a.shape[2] for _, _, a in items}
    if len(kinds) > 1 and channels is None:
        raise DataError("the folder mixes grey and colour images", path=c.source,
                        hint="set channels to 1 or 3 to convert them explicitly")
    images = np.stack([a for _, _, a in items])  # (N, H, W, C)
    labels = np.array([cls_i for cls_i, _, _ in items], dtype=np.int64)
    return RawSplit(images, labels)


def load_image_folder(name: str, source: Path, channels: int | None = None,
                      image_size: int | None = None, progress: bool = True) -> RawDataset:
    """Decode a folder or tar (.tar, .tar.gz, .tgz) of `{train,test}/<class>/<image>`.

    Class names are the sorted folder names; images are ordered by class, then file name.
    """
    if not source.exists():
        raise DataError("no such folder or archive", path=source)
    if source.is_file() and not is_tar_path(source):
        raise DataError("expected a folder or a .tar/.tar.gz/.tgz archive", path=source)
    collected = _collect(source, channels, image_size, progress)
    class_names = _check_tree(collected)
    train = _stack(collected, "train", class_names, channels)
    test = _stack(collected, "test", class_names, channels)
    if train.images.shape[1:] != test.images.shape[1:]:
        raise DataError(
            f"train images are {train.images.shape[1:]} but test images "
            f"{test.images.shape[1:]} (height, width, channels)",
            path=source, hint="set image_size and channels to make them agree",
        )
    if source.is_file():
        sources: tuple[SourceInfo, ...] = (checksum_status(name, source),)
    else:
        files = folder_files(source)
        sources = (SourceInfo(str(source), sum(f.stat().st_size for f in files), "unknown"),)
    return RawDataset(name, class_names, train, test, sources)

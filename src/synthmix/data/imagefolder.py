"""Image-folder data sets: `{train,test}/<class>/*.png|jpg|...` in a folder or a tar archive."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tqdm import tqdm

from synthmix.data.archive import is_tar_path, iter_tar_members
from synthmix.data.checksums import checksum_status
from synthmix.data.images import conform_dataset, conform_images, decode_image, is_image_name
from synthmix.data.raw import RawDataset, RawSplit, SourceInfo
from synthmix.errors import DataError

SPLITS = ("train", "test")


@dataclass
class _Collected:
    """Decoded images per (split, class), filled while walking the folder or archive."""

    source: Path
    images: dict[tuple[str, str], list[tuple[str, np.ndarray]]] = field(default_factory=dict)
    class_dirs: set[tuple[str, str]] = field(default_factory=set)
    roots: set[str] = field(default_factory=set)

    def add_dir(self, root: str, split: str, cls: str) -> None:
        self.roots.add(root)
        self.class_dirs.add((split, cls))

    def add_image(
        self, root: str, split: str, cls: str, name: str, image: np.ndarray
    ) -> None:
        self.add_dir(root, split, cls)
        self.images.setdefault((split, cls), []).append((name, image))


def folder_files(root: Path) -> list[Path]:
    """Every file under root/{train,test}, sorted (the fingerprint of an image folder)."""
    return sorted(p for s in SPLITS if (root / s).is_dir() for p in (root / s).rglob("*")
                  if p.is_file())


def _walk_folder(root: Path) -> Iterator[tuple[tuple[str, ...], bytes | None]]:
    for split in SPLITS:
        split_dir = root / split
        if not split_dir.is_dir():
            raise DataError(f"no {split}/ folder", path=root,
                            hint="an image folder holds train/<class>/* and test/<class>/*")
        for class_dir in sorted(p for p in split_dir.iterdir() if p.is_dir()):
            yield (split, class_dir.name), None
            for f in sorted(class_dir.iterdir()):
                if f.is_file() and is_image_name(f.name):
                    try:
                        yield (split, class_dir.name, f.name), f.read_bytes()
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


def _collect(source: Path, progress: bool) -> _Collected:
    out = _Collected(source)
    members = iter_tar_members(source) if source.is_file() else _walk_folder(source)
    where_prefix = f"{source}:" if source.is_file() else f"{source}/"
    for parts, data in tqdm(members, desc=f"decoding {source.name}", unit=" files",
                            disable=not progress, mininterval=1.0):
        if not parts or any(p.startswith(".") or p == "__MACOSX" for p in parts):
            continue
        if data is not None and not is_image_name(parts[-1]):
            continue
        pos = _split_position(parts, data is None)
        if pos is None:
            if data is not None and len(parts) >= 2 and parts[-2] in SPLITS:
                raise DataError("image not inside a class folder",
                                path=where_prefix + "/".join(parts))
            continue
        root, split, cls = "/".join(parts[:pos]), parts[pos], parts[pos + 1]
        if data is None:
            out.add_dir(root, split, cls)
            continue
        image = decode_image(data, where_prefix + "/".join(parts))
        out.add_image(root, split, cls, parts[-1], image)
    return out


def _check_tree(c: _Collected) -> tuple[str, ...]:
    if len(c.roots) > 1:
        found = ", ".join(sorted(r or "." for r in c.roots))
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


def _stack(c: _Collected, class_names: tuple[str, ...], channels: int | None,
           image_size: int | None) -> tuple[RawSplit, RawSplit, bool]:
    """(train, test, native): native when every image had one shape and was left as decoded
    (the caller then converts); otherwise each image is converted and resized here."""
    items = {
        s: [(i, name, a) for i, cls in enumerate(class_names)
            for name, a in sorted(c.images[(s, cls)], key=lambda t: t[0])]
        for s in SPLITS
    }
    every = [a for s in SPLITS for _, _, a in items[s]]
    shapes = {a.shape for a in every}
    native = len(shapes) == 1
    if not native:
        if len({shape[2] for shape in shapes}) > 1 and channels is None:
            raise DataError("the folder mixes grey and colour images", path=c.source,
                            hint="set channels to 1 or 3 to convert them explicitly")
        sizes = sorted({shape[:2] for shape in shapes})
        if len(sizes) > 1 and image_size is None:
            raise DataError(
                f"images have different sizes ({', '.join(f'{h}x{w}' for h, w in sizes[:4])})",
                path=c.source, hint="set image_size (--image-size) to resize them all",
            )
    splits = []
    for s in SPLITS:
        arrays = [a if native else conform_images(a[None], channels, image_size)[0]
                  for _, _, a in items[s]]
        labels = np.array([i for i, _, _ in items[s]], dtype=np.int64)
        splits.append(RawSplit(np.stack(arrays), labels))  # (N, H, W, C)
    return splits[0], splits[1], native


def decode_image_folder(name: str, source: Path, channels: int | None = None,
                        image_size: int | None = None,
                        progress: bool = True) -> tuple[RawDataset, bool]:
    """Decode a folder or tar; (data set, native) as in _stack: if native, `channels` and
    `image_size` are still to be applied (see conform_images)."""
    if not source.exists():
        raise DataError("no such folder or archive", path=source)
    if source.is_file() and not is_tar_path(source):
        raise DataError("expected a folder or a .tar/.tar.gz/.tgz archive", path=source)
    collected = _collect(source, progress)
    class_names = _check_tree(collected)
    train, test, native = _stack(collected, class_names, channels, image_size)
    if source.is_file():
        sources: tuple[SourceInfo, ...] = (checksum_status(name, source),)
    else:
        files = folder_files(source)
        sources = (SourceInfo(str(source), sum(f.stat().st_size for f in files), "unknown"),)
    return RawDataset(name, class_names, train, test, sources), native


def load_image_folder(name: str, source: Path, channels: int | None = None,
                      image_size: int | None = None, progress: bool = True) -> RawDataset:
    """Decode a folder or tar (.tar, .tar.gz, .tgz) of `{train,test}/<class>/<image>`.

    Class names are the sorted folder names; images are ordered by class, then file name.
    `channels` converts (needed if grey and colour mix); `image_size` resizes to S x S
    (bicubic; needed if sizes differ).
    """
    dataset, native = decode_image_folder(name, source, channels, image_size, progress)
    return conform_dataset(dataset, channels, image_size) if native else dataset


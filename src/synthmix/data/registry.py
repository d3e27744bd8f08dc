"""`load_dataset(name)`: find a data set's files, decode them once, and cache the arrays."""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from synthmix.data.cache import cache_path, load_cached, save_cached
from synthmix.data.images import conform_dataset
from synthmix.data.raw import RawDataset
from synthmix.errors import ConfigError, DataError

log = logging.getLogger(__name__)

IMAGEFOLDER_PREFIX = "imagefolder:"
FASHION_MNIST_SYSTEM_DIR = Path("/usr/share/datasets/fashion-mnist")  # Debian's package
DOWNLOADABLE = ("mnist", "fashion-mnist", "cifar10")
_NAMES = ("mnist", "fashion-mnist", "cifar10", "cifar10-jpeg", "digits")


def dataset_names() -> list[str]:
    """Known data set names; any `imagefolder:PATH` is accepted as well."""
    return list(_NAMES)


def check_dataset_name(name: str) -> str:
    """Return `name` if load_dataset understands it, else raise ConfigError."""
    if name in _NAMES or (name.startswith(IMAGEFOLDER_PREFIX) and len(name) > 12):
        return name
    raise ConfigError(
        f"unknown data set {name!r}; choose one of {', '.join(_NAMES)} or imagefolder:PATH"
    )


def default_data_dir() -> Path:
    """$SYNTHMIX_DATA, else ~/.cache/synthmix."""
    env = os.environ.get("SYNTHMIX_DATA")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "synthmix"


@dataclass(frozen=True)
class _Located:
    """What to decode: the files (for the cache key) and the decoder. decode() returns
    (data set, native); native means `channels`/`image_size` are still to be applied."""

    files: tuple[Path, ...]
    decode: Callable[[], tuple[RawDataset, bool]]
    resizable: bool = False  # image folders: image_size resizes; fixed-size sets ignore it


def _native(load: Callable[[], RawDataset]) -> Callable[[], tuple[RawDataset, bool]]:
    return lambda: (load(), True)


def _search_dirs(name: str, data_dir: Path) -> list[Path]:
    dirs = [data_dir, data_dir / name]
    if name == "fashion-mnist":
        dirs.append(FASHION_MNIST_SYSTEM_DIR)
    return dirs


def _missing(name: str, wanted: list[str], dirs: list[Path]) -> DataError:
    where = ", ".join(str(d) for d in dirs)
    hint = (
        f"run `synthmix data fetch {name} --data-dir {dirs[0]}` to download them"
        if name in DOWNLOADABLE
        else f"put them in {dirs[-1]}"
    )
    return DataError(f"{name}: none of {', '.join(wanted)} found in {where}", hint=hint)


def _locate_idx(name: str, data_dir: Path) -> _Located:
    from synthmix.data.idx import FASHION_MNIST_CLASSES, IDX_FILES, MNIST_CLASSES, load_idx_dataset

    stems = [stem for _, images, labels in IDX_FILES for stem in (images, labels)]
    dirs = _search_dirs(name, data_dir)
    for d in dirs:
        found = {s: next((d / n for n in (s, s + ".gz") if (d / n).is_file()), None) for s in stems}
        if all(found.values()):
            files = {s: p for s, p in found.items() if p is not None}
            classes = MNIST_CLASSES if name == "mnist" else FASHION_MNIST_CLASSES
            decode = partial(load_idx_dataset, name, classes, files)
            return _Located(tuple(files.values()), _native(decode))
    raise _missing(name, [f"{s}[.gz]" for s in stems], dirs)


def _locate_cifar10(data_dir: Path) -> _Located:
    from synthmix.data.cifar import BATCHES_DIR, load_cifar10

    dirs = _search_dirs("cifar10", data_dir)
    for d in dirs:
        batches = d / BATCHES_DIR
        if (batches / "data_batch_1").is_file():
            files = tuple(sorted(p for p in batches.iterdir() if p.is_file()))
            return _Located(files, _native(partial(load_cifar10, batches)))
        archive = d / "cifar-10-python.tar.gz"
        if archive.is_file():
            return _Located((archive,), _native(partial(load_cifar10, archive)))
    raise _missing("cifar10", [f"{BATCHES_DIR}/", "cifar-10-python.tar.gz"], dirs)


def _locate_folder(name: str, source: Path, channels: int | None,
                   image_size: int | None) -> _Located:
    from synthmix.data.imagefolder import decode_image_folder, folder_files

    files = (source,) if source.is_file() else tuple(folder_files(source))
    progress = sys.stderr.isatty()
    decode = partial(decode_image_folder, name, source, channels, image_size, progress)
    return _Located(files, decode, resizable=True)


def _locate_cifar10_jpeg(data_dir: Path, channels: int | None, image_size: int | None) -> _Located:
    dirs = _search_dirs("cifar10-jpeg", data_dir)
    for d in dirs:
        for candidate in (d / "cifar10-jpeg.tar.gz", d / "cifar10-jpeg"):
            if candidate.is_file() or (candidate / "train").is_dir():
                return _locate_folder("cifar10-jpeg", candidate, channels, image_size)
    raise _missing("cifar10-jpeg", ["cifar10-jpeg.tar.gz", "cifar10-jpeg/{train,test}/"], dirs)


def _locate_digits() -> _Located:
    from synthmix.data.digits import digits_csv_path, load_digits_dataset

    # Cached too: importing scikit-learn alone takes longer than reading the cache.
    return _Located((digits_csv_path(),), _native(load_digits_dataset))


def _locate(name: str, data_dir: Path, channels: int | None, image_size: int | None) -> _Located:
    if name == "digits":
        return _locate_digits()
    if name in ("mnist", "fashion-mnist"):
        return _locate_idx(name, data_dir)
    if name == "cifar10":
        return _locate_cifar10(data_dir)
    if name == "cifar10-jpeg":
        return _locate_cifar10_jpeg(data_dir, channels, image_size)
    source = Path(name[len(IMAGEFOLDER_PREFIX):]).expanduser()
    if not source.exists():
        raise DataError("no such image folder or archive", path=source)
    return _locate_folder(name, source, channels, image_size)


def load_dataset(name: str, data_dir: str | Path | None = None, *, channels: int | None = None,
                 image_size: int | None = None) -> RawDataset:
    """Decode data set `name` (see dataset_names(); or imagefolder:PATH) to uint8 arrays.

    Files are looked up in data_dir and data_dir/<name>/ (data_dir defaults to
    $SYNTHMIX_DATA, else ~/.cache/synthmix). `channels` (1 or 3) converts explicitly.
    `image_size` resizes image folders (required when their sizes differ); fixed-size
    data sets keep their native size here and are padded or resized by to_model_tensor.
    """
    check_dataset_name(name)
    if channels not in (None, 1, 3):
        raise ConfigError(f"channels must be 1 or 3, got {channels}")
    if image_size is not None and image_size < 1:
        raise ConfigError(f"image_size must be a positive number of pixels, got {image_size}")
    located = _locate(name, Path(data_dir or default_data_dir()).expanduser(), channels,
                      image_size)
    if not located.resizable:
        image_size = None
    # The native decode is cached once and converted on each load, so loads with different
    # options share it; only folders that need the options to decode at all (mixed sizes or
    # mixed grey/colour) get a cache entry of their own.
    native_path = cache_path(name, {}, located.files)
    exact_path = cache_path(name, {"channels": channels, "image_size": image_size},
                            located.files)
    for path in dict.fromkeys((native_path, exact_path)):
        cached = load_cached(path)
        if cached is not None:
            log.debug("%s: loaded from cache %s", name, path)
            if path == native_path:
                return conform_dataset(cached, channels, image_size)
            return cached
    dataset, native = located.decode()
    save_cached(native_path if native else exact_path, dataset)
    return conform_dataset(dataset, channels, image_size) if native else dataset

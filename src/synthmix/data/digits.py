"""scikit-learn's bundled 8x8 UCI digits: a tiny real data set that is always available."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np

from synthmix.data.raw import RawDataset, RawSplit, SourceInfo
from synthmix.errors import DataError

DIGITS_TEST_FRACTION = 0.2
DIGITS_SPLIT_SEED = 0


def digits_csv_path() -> Path:
    """scikit-learn's digits.csv.gz, found without importing scikit-learn."""
    spec = importlib.util.find_spec("sklearn")
    if spec is None or not spec.submodule_search_locations:
        raise DataError("scikit-learn is not installed; it ships the digits data set")
    path = Path(next(iter(spec.submodule_search_locations))) / "datasets" / "data" / "digits.csv.gz"
    if not path.is_file():
        raise DataError("scikit-learn's digits data file is missing", path=path)
    return path


def load_digits_dataset() -> RawDataset:
    """The 1,797 8x8 digits as uint8 (value v in 0..16 becomes round(v * 255 / 16)).

    There is no official test set, so a class-stratified 80/20 split with
    sklearn's train_test_split(random_state=0) makes one: 1,437 train / 360 test images,
    each split kept in the original file order.
    """
    from sklearn import datasets
    from sklearn.model_selection import train_test_split

    bunch = datasets.load_digits()
    values = np.asarray(bunch.images, dtype=np.float64)  # (1797, 8, 8) in 0..16
    images = np.rint(values * 255.0 / 16.0).astype(np.uint8)[..., None]  # (N, 8, 8, 1)
    labels = np.asarray(bunch.target, dtype=np.int64)
    train_idx, test_idx = train_test_split(
        np.arange(len(labels)),
        test_size=DIGITS_TEST_FRACTION,
        stratify=labels,
        random_state=DIGITS_SPLIT_SEED,
    )
    train_idx, test_idx = np.sort(train_idx), np.sort(test_idx)
    csv = digits_csv_path()
    source = SourceInfo(str(csv), csv.stat().st_size, "unknown")
    return RawDataset(
        name="digits",
        class_names=tuple(str(i) for i in range(10)),
        train=RawSplit(images[train_idx], labels[train_idx]),
        test=RawSplit(images[test_idx], labels[test_idx]),
        sources=(source,),
    )

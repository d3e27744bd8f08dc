"""The loaders on the real files beside the project (skipped when they are not there)."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from synthmix.cli import main
from synthmix.data import load_dataset, make_study_splits, to_model_tensor

MNIST_TRAIN_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
MNIST_TEST_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


@pytest.fixture(scope="module")
def real_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One decode cache shared by this module's tests, so MNIST is decoded once."""
    return tmp_path_factory.mktemp("real-cache")


def test_mnist_real(shared_datasets: Path, real_cache: Path,
                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SYNTHMIX_CACHE", str(real_cache))
    ds = load_dataset("mnist", shared_datasets)
    assert (len(ds.train), len(ds.test), ds.image_shape) == (60000, 10000, (28, 28, 1))
    assert ds.train.class_counts(10).tolist() == MNIST_TRAIN_COUNTS
    assert ds.test.class_counts(10).tolist() == MNIST_TEST_COUNTS
    assert [s.checksum for s in ds.sources] == ["ok"] * 4  # the SPEC's md5s verify
    # The second load comes from the cache: decoding the IDX files again would fail here.
    import synthmix.data.idx as idx

    def no_decoding(*args: object, **kwargs: object) -> None:
        raise AssertionError("decoded again instead of reading the cache")

    with monkeypatch.context() as m:
        m.setattr(idx, "read_idx", no_decoding)
        again = load_dataset("mnist", shared_datasets)
    np.testing.assert_array_equal(again.test.images, ds.test.images)
    x = to_model_tensor(ds.test.images[:8], 32)
    assert x.shape == (8, 1, 32, 32) and x.min() == -1.0 and x.max() == 1.0


def test_data_info_cli_prints_study_sizes(shared_datasets: Path, real_cache: Path,
                                          monkeypatch: pytest.MonkeyPatch,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("SYNTHMIX_CACHE", str(real_cache))
    assert main(["data", "info", "mnist", "--data-dir", str(shared_datasets)]) == 0
    out = capsys.readouterr().out
    assert "27000" in out and "3000" in out and "checksum ok" in out and "60000" in out


def test_fashion_mnist_real(shared_datasets: Path) -> None:
    ds = load_dataset("fashion-mnist", shared_datasets)
    assert (len(ds.train), len(ds.test)) == (60000, 10000)
    assert set(ds.train.class_counts(10).tolist()) == {6000}
    assert set(ds.test.class_counts(10).tolist()) == {1000}
    assert [s.checksum for s in ds.sources] == ["ok"] * 4
    splits = make_study_splits(ds.train.labels)
    assert splits.sizes()["diffusion_train"] == 27000


def test_cifar10_jpeg_subset_of_the_real_archive(shared_datasets: Path, tmp_path: Path) -> None:
    # The archive starts with test/airplane/0000.jpg ...: its first 200 JPEGs, read in one
    # short sequential pass, become a one-class set (100 train, 100 test) in the real layout.
    real = shared_datasets / "cifar10-jpeg" / "cifar10-jpeg.tar.gz"
    jpegs: dict[str, bytes] = {}
    with tarfile.open(real, "r|gz") as src:
        for m in src:
            if m.isfile() and m.name.startswith("cifar10-jpeg/test/airplane/"):
                f = src.extractfile(m)
                assert f is not None
                jpegs[Path(m.name).name] = f.read()
            if len(jpegs) == 200:
                break
    assert len(jpegs) == 200
    folder = tmp_path / "cifar10-jpeg"
    folder.mkdir()
    with tarfile.open(folder / "cifar10-jpeg.tar.gz", "w:gz") as dst:
        for i, (name, data) in enumerate(sorted(jpegs.items())):
            info = tarfile.TarInfo(f"cifar10-jpeg/{'train' if i < 100 else 'test'}/airplane/{name}")
            info.size = len(data)
            dst.addfile(info, io.BytesIO(data))
    ds = load_dataset("cifar10-jpeg", tmp_path)
    assert ds.class_names == ("airplane",)
    assert (len(ds.train), len(ds.test), ds.image_shape) == (100, 100, (32, 32, 3))
    first_test = sorted(jpegs)[100]
    expected = np.asarray(Image.open(io.BytesIO(jpegs[first_test])).convert("RGB"))
    np.testing.assert_array_equal(ds.test.images[0], expected)
    assert ds.train.images.std() > 20  # real photographs, not blank decodes


def test_digits() -> None:
    from sklearn.datasets import load_digits

    ds = load_dataset("digits")
    assert (len(ds.train), len(ds.test), ds.image_shape) == (1437, 360, (8, 8, 1))
    assert ds.train.images.max() == 255 and ds.train.images.min() == 0
    assert np.abs(ds.test.class_counts(10) - 36).max() <= 1  # stratified 20 %
    raw = load_digits()
    values = {tuple(np.rint(im * 255 / 16).astype(np.uint8).ravel()) for im in raw.images}
    assert tuple(ds.test.images[5].ravel()) in values
    again = load_dataset("digits")
    np.testing.assert_array_equal(again.train.labels, ds.train.labels)
    x = to_model_tensor(ds.train.images[:4], 16, "resize")
    assert x.shape == (4, 1, 16, 16)

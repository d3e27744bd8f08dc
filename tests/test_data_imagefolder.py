"""Image folders and their tar archives: layout, conversions, and every kind of bad input."""

from __future__ import annotations

import io
import os
import re
import tarfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from synthmix.data import load_dataset
from synthmix.errors import DataError

CLASSES = ("cat", "dog", "emu")


def png_bytes(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="PNG")
    return buf.getvalue()


def make_folder(root: Path, n: int = 2, size: int = 6, mode: str = "RGB") -> dict[str, np.ndarray]:
    """root/{train,test}/<class>/<i>.png with distinct random pixels; returns them by path."""
    rng = np.random.default_rng(0)
    written = {}
    for split in ("train", "test"):
        for cls in CLASSES:
            (root / split / cls).mkdir(parents=True, exist_ok=True)
            for i in range(n):
                shape = (size, size, 3) if mode == "RGB" else (size, size)
                a = rng.integers(0, 256, size=shape, dtype=np.uint8)
                rel = f"{split}/{cls}/{i:04d}.png"
                (root / rel).write_bytes(png_bytes(a))
                written[rel] = a
    return written


def tar_folder(root: Path, archive: Path, prefix: str = "set") -> Path:
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(root, arcname=prefix)
    return archive


def test_folder_loads_sorted_classes_and_exact_pixels(tmp_path: Path) -> None:
    written = make_folder(tmp_path / "f")
    ds = load_dataset(f"imagefolder:{tmp_path / 'f'}")
    assert ds.class_names == CLASSES and ds.image_shape == (6, 6, 3)
    assert ds.train.labels.tolist() == [0, 0, 1, 1, 2, 2]
    np.testing.assert_array_equal(ds.train.images[3], written["train/dog/0001.png"])
    np.testing.assert_array_equal(ds.test.images[0], written["test/cat/0000.png"])


def test_tar_gives_the_same_arrays(tmp_path: Path) -> None:
    make_folder(tmp_path / "f")
    archive = tar_folder(tmp_path / "f", tmp_path / "f.tgz")
    from_dir = load_dataset(f"imagefolder:{tmp_path / 'f'}")
    from_tar = load_dataset(f"imagefolder:{archive}")
    np.testing.assert_array_equal(from_dir.train.images, from_tar.train.images)
    np.testing.assert_array_equal(from_dir.test.labels, from_tar.test.labels)


def test_grey_folder_and_channel_conversion(tmp_path: Path) -> None:
    make_folder(tmp_path / "f", mode="L")
    assert load_dataset(f"imagefolder:{tmp_path / 'f'}").image_shape == (6, 6, 1)
    rgb = load_dataset(f"imagefolder:{tmp_path / 'f'}", channels=3)
    assert rgb.image_shape == (6, 6, 3)
    np.testing.assert_array_equal(rgb.train.images[..., 0], rgb.train.images[..., 1])


def test_mixed_grey_and_colour_needs_channels(tmp_path: Path) -> None:
    make_folder(tmp_path / "f")
    grey = np.full((6, 6), 200, dtype=np.uint8)
    (tmp_path / "f/train/cat/0000.png").write_bytes(png_bytes(grey))
    with pytest.raises(DataError, match="mixes grey and colour.*set channels"):
        load_dataset(f"imagefolder:{tmp_path / 'f'}")
    ds = load_dataset(f"imagefolder:{tmp_path / 'f'}", channels=3)
    assert (ds.train.images[0] == 200).all()
    ds1 = load_dataset(f"imagefolder:{tmp_path / 'f'}", channels=1)
    assert ds1.image_shape == (6, 6, 1)


def test_mixed_sizes_need_image_size(tmp_path: Path) -> None:
    make_folder(tmp_path / "f")
    big = np.zeros((9, 9, 3), dtype=np.uint8)
    (tmp_path / "f/test/emu/0001.png").write_bytes(png_bytes(big))
    with pytest.raises(DataError, match=r"different sizes \(6x6, 9x9\).*image_size"):
        load_dataset(f"imagefolder:{tmp_path / 'f'}")
    assert load_dataset(f"imagefolder:{tmp_path / 'f'}", image_size=8).image_shape == (8, 8, 3)


def test_other_formats_are_read(tmp_path: Path) -> None:
    make_folder(tmp_path / "f")
    a = np.full((6, 6, 3), 77, dtype=np.uint8)
    for i, fmt in enumerate(("BMP", "GIF", "WEBP")):
        Image.fromarray(a).save(tmp_path / f"f/train/cat/x{i}.{fmt.lower()}", format=fmt,
                                **({"lossless": True} if fmt == "WEBP" else {}))
    ds = load_dataset(f"imagefolder:{tmp_path / 'f'}")
    assert len(ds.train) == 9 and (ds.train.images[2:5] == 77).all()


@pytest.mark.parametrize(("damage", "expected"), [
    ("empty_class", "class folder test/dog holds no images"),
    ("unreadable", "train/emu/0000.png: unreadable image"),
    ("class_mismatch", "test class folders ['cat', 'dog', 'emu', 'yak'] differ"),
    ("loose_image", "image not inside a class folder"),
    ("no_test", "no test/ folder"),
])
def test_bad_folders(tmp_path: Path, damage: str, expected: str) -> None:
    root = tmp_path / "f"
    make_folder(root)
    if damage == "empty_class":
        for p in (root / "test/dog").iterdir():
            p.unlink()
    elif damage == "unreadable":
        (root / "train/emu/0000.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    elif damage == "class_mismatch":
        (root / "test/yak").mkdir()
        (root / "test/yak/0.png").write_bytes(png_bytes(np.zeros((6, 6, 3), np.uint8)))
    elif damage == "loose_image":
        (root / "train/x.png").write_bytes(png_bytes(np.zeros((6, 6, 3), np.uint8)))
    else:
        for p in sorted((root / "test").rglob("*"), reverse=True):
            p.unlink() if p.is_file() else p.rmdir()
        (root / "test").rmdir()
    with pytest.raises(DataError, match=re.escape(expected)):
        load_dataset(f"imagefolder:{root}")
    archive = tar_folder(root, tmp_path / "f.tar.gz")
    if damage != "no_test":  # an archive cannot tell a missing folder from an empty one
        with pytest.raises(DataError, match=re.escape(expected)):
            load_dataset(f"imagefolder:{archive}")
    assert not list(Path(os.environ["SYNTHMIX_CACHE"]).glob("*"))


def _tar_with(archive: Path, member: tarfile.TarInfo, base: Path) -> Path:
    tar_folder(base, archive.with_suffix(".tmp"), prefix="set")
    with tarfile.open(archive.with_suffix(".tmp")) as src, tarfile.open(archive, "w") as dst:
        for m in src.getmembers():
            f = src.extractfile(m)
            dst.addfile(m, f)
        dst.addfile(member, io.BytesIO(b"x" * member.size) if member.isfile() else None)
    return archive


@pytest.mark.parametrize(("name", "kind", "link", "expected"), [
    ("../evil.png", tarfile.REGTYPE, "", "'../evil.png' would escape"),
    ("/etc/evil.png", tarfile.REGTYPE, "", "'/etc/evil.png' would escape"),
    ("set/train/cat/a/../../../../x.png", tarfile.REGTYPE, "", "would escape"),
    ("set/train/cat/l.png", tarfile.SYMTYPE, "../../../../etc/passwd", "links to"),
    ("set/train/cat/h.png", tarfile.LNKTYPE, "/etc/passwd", "links to"),
])
def test_escaping_tar_members_are_refused(tmp_path: Path, name: str, kind: bytes, link: str,
                                          expected: str) -> None:
    make_folder(tmp_path / "f")
    member = tarfile.TarInfo(name)
    member.type = kind
    member.linkname = link
    member.size = 1 if kind == tarfile.REGTYPE else 0
    archive = _tar_with(tmp_path / "bad.tar", member, tmp_path / "f")
    with pytest.raises(DataError) as e:
        load_dataset(f"imagefolder:{archive}")
    assert expected in str(e.value) and "bad.tar" in str(e.value)
    assert not (tmp_path / "evil.png").exists()


def test_symlink_inside_the_tree_is_ignored(tmp_path: Path) -> None:
    make_folder(tmp_path / "f")
    member = tarfile.TarInfo("set/train/cat/link.png")
    member.type = tarfile.SYMTYPE
    member.linkname = "0000.png"
    archive = _tar_with(tmp_path / "ok.tar", member, tmp_path / "f")
    assert len(load_dataset(f"imagefolder:{archive}").train) == 6


def test_not_a_folder_or_archive(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="no such image folder"):
        load_dataset(f"imagefolder:{tmp_path / 'nothing'}")
    (tmp_path / "a.zip").write_bytes(b"PK")
    with pytest.raises(DataError, match="expected a folder or a .tar"):
        load_dataset(f"imagefolder:{tmp_path / 'a.zip'}")


def test_cifar10_jpeg_layout_and_cache(tmp_path: Path) -> None:
    make_folder(tmp_path / "src")
    (tmp_path / "data/cifar10-jpeg").mkdir(parents=True)
    archive = tar_folder(tmp_path / "src", tmp_path / "data/cifar10-jpeg/cifar10-jpeg.tar.gz",
                         prefix="cifar10-jpeg")
    first = load_dataset("cifar10-jpeg", tmp_path / "data")
    assert first.name == "cifar10-jpeg" and first.class_names == CLASSES
    assert first.sources[0].path == str(archive) and first.sources[0].checksum == "unknown"
    archive.write_bytes(b"garbage")  # same mtime resolution could hide this: bump it too
    os.utime(archive, ns=(archive.stat().st_mtime_ns + 10**9,) * 2)
    with pytest.raises(DataError, match="cifar10-jpeg.tar.gz: cannot read archive"):
        load_dataset("cifar10-jpeg", tmp_path / "data")


def _no_decode(*args: object, **kwargs: object) -> None:
    raise AssertionError("decoded again although cached")


def test_other_options_reuse_the_native_cache(tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    make_folder(tmp_path / "f")
    name = f"imagefolder:{tmp_path / 'f'}"
    load_dataset(name)
    with monkeypatch.context() as m:
        m.setattr("synthmix.data.imagefolder.decode_image_folder", _no_decode)
        ds = load_dataset(name, channels=1, image_size=4)
    assert ds.image_shape == (4, 4, 1)
    with Image.open(tmp_path / "f/train/dog/0001.png") as im:
        expected = np.asarray(im.convert("L").resize((4, 4), Image.Resampling.BICUBIC))
    np.testing.assert_array_equal(ds.train.images[3, ..., 0], expected)


def test_mixed_folder_is_cached_with_its_options(tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    make_folder(tmp_path / "f")
    (tmp_path / "f/test/emu/0001.png").write_bytes(png_bytes(np.zeros((9, 9), np.uint8)))
    name = f"imagefolder:{tmp_path / 'f'}"
    first = load_dataset(name, channels=3, image_size=8)
    with monkeypatch.context() as m:
        m.setattr("synthmix.data.imagefolder.decode_image_folder", _no_decode)
        second = load_dataset(name, channels=3, image_size=8)
        with pytest.raises(AssertionError, match="decoded again"):
            load_dataset(name, channels=3, image_size=7)  # other options: decoded anew
    np.testing.assert_array_equal(first.test.images, second.test.images)
    assert (second.test.images[-1] == 0).all() and second.image_shape == (8, 8, 3)


def test_archive_with_two_trees_is_ambiguous(tmp_path: Path) -> None:
    make_folder(tmp_path / "f")
    archive = tmp_path / "two.tar"
    with tarfile.open(archive, "w") as tar:
        tar.add(tmp_path / "f", arcname="one")
        tar.add(tmp_path / "f", arcname="two")
    with pytest.raises(DataError, match=r"two.tar: holds several image-folder trees \(one, two\)"):
        load_dataset(f"imagefolder:{archive}")

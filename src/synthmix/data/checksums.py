"""Official checksums of the published data files, shared by `data info` and `data fetch`."""

from __future__ import annotations

import gzip
import hashlib
import zlib
from dataclasses import dataclass
from pathlib import Path

from synthmix.data.raw import ChecksumStatus, SourceInfo
from synthmix.files import md5_file


@dataclass(frozen=True)
class OfficialFile:
    """A file as its publisher ships it: md5 of the file, and of its content if gzipped."""

    name: str
    md5: str
    content_md5: str | None = None  # md5 of the decompressed bytes (mirrors re-gzip the files)
    fetch: bool = True  # False: a member of an archive, checked but never downloaded alone


# MNIST content md5s: SPEC.md section 7; file md5s: the files on the ossci-datasets mirror.
# Fashion-MNIST: zalandoresearch/fashion-mnist README (file) and its decompressed content.
# CIFAR-10: https://www.cs.toronto.edu/~kriz/cifar.html (archive) and its extracted batches.
OFFICIAL_FILES: dict[str, tuple[OfficialFile, ...]] = {
    "mnist": (
        OfficialFile(
            "train-images-idx3-ubyte.gz",
            "f68b3c2dcbeaaa9fbdd348bbdeb94873",
            "6bbc9ace898e44ae57da46a324031adb",
        ),
        OfficialFile(
            "train-labels-idx1-ubyte.gz",
            "d53e105ee54ea40749a09fcbcd1e9432",
            "a25bea736e30d166cdddb491f175f624",
        ),
        OfficialFile(
            "t10k-images-idx3-ubyte.gz",
            "9fb629c4189551a2d022fa330f9573f3",
            "2646ac647ad5339dbf082846283269ea",
        ),
        OfficialFile(
            "t10k-labels-idx1-ubyte.gz",
            "ec29112dd5afa0611ce80d1b7f02629c",
            "27ae3e4e09519cfbb04c329615203637",
        ),
    ),
    "fashion-mnist": (
        OfficialFile(
            "train-images-idx3-ubyte.gz",
            "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
            "f4a8712d7a061bf5bd6d2ca38dc4d50a",
        ),
        OfficialFile(
            "train-labels-idx1-ubyte.gz",
            "25c81989df183df01b3e8a0aad5dffbe",
            "9018921c3c673c538a1fc5bad174d6f9",
        ),
        OfficialFile(
            "t10k-images-idx3-ubyte.gz",
            "bef4ecab320f06d8554ea6380940ec79",
            "8181f5470baa50b63fa0f6fddb340f0a",
        ),
        OfficialFile(
            "t10k-labels-idx1-ubyte.gz",
            "bb300cfdad3c16e7a12a480ee83cd310",
            "15d484375f8d13e6eb1aabb0c3f46965",
        ),
    ),
    "cifar10": (
        OfficialFile("cifar-10-python.tar.gz", "c58f30108f718f92721af3b95e74349a"),
        OfficialFile("data_batch_1", "c99cafc152244af753f735de768cd75f", fetch=False),
        OfficialFile("data_batch_2", "d4bba439e000b95fd0a9bffe97cbabec", fetch=False),
        OfficialFile("data_batch_3", "54ebc095f3ab1f0389bbae665268c751", fetch=False),
        OfficialFile("data_batch_4", "634d18415352ddfa80567beed471001a", fetch=False),
        OfficialFile("data_batch_5", "482c414d41f54cd18b22e5b47cb7c3cb", fetch=False),
        OfficialFile("test_batch", "40351d587109b95175f43aff81a1287e", fetch=False),
        OfficialFile("batches.meta", "5ff9c542aee3614f3951f8cda6e48888", fetch=False),
    ),
}


def md5_bytes(data: bytes) -> str:
    return hashlib.md5(data, usedforsecurity=False).hexdigest()


def find_official(dataset: str, filename: str) -> tuple[OfficialFile, bool] | None:
    """The table entry for `filename`, and whether the file is its decompressed form."""
    for entry in OFFICIAL_FILES.get(dataset, ()):
        if filename == entry.name:
            return entry, False
        if entry.content_md5 and entry.name.endswith(".gz") and filename == entry.name[:-3]:
            return entry, True
    return None


def checksum_status(
    dataset: str, path: str | Path, data: bytes | None = None, content: bytes | None = None
) -> SourceInfo:
    """Compare `path` with the official md5s; `data`/`content` avoid re-reading the file."""
    path = Path(path)
    size = path.stat().st_size if data is None else len(data)
    found = find_official(dataset, path.name)
    if found is None:
        return SourceInfo(str(path), size, "unknown")
    entry, is_content = found
    if is_content:
        md5 = md5_bytes(data) if data is not None else md5_file(path)
        ok = md5 == entry.content_md5
        return SourceInfo(str(path), size, _status(ok), md5, entry.content_md5, "content")
    md5 = md5_bytes(data) if data is not None else md5_file(path)
    if md5 == entry.md5 or entry.content_md5 is None:
        return SourceInfo(str(path), size, _status(md5 == entry.md5), md5, entry.md5, "file")
    # Re-gzipped copies (Debian, mirrors) differ in the gzip header only: compare the content.
    if content is None:
        try:
            content = gzip.decompress(data if data is not None else path.read_bytes())
        except (OSError, EOFError, zlib.error):
            return SourceInfo(str(path), size, "mismatch", md5, entry.md5, "file")
    content_md5 = md5_bytes(content)
    ok = content_md5 == entry.content_md5
    return SourceInfo(str(path), size, _status(ok), content_md5, entry.content_md5, "content")


def _status(ok: bool) -> ChecksumStatus:
    return "ok" if ok else "mismatch"

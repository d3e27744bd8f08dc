"""Downloading the official MNIST, Fashion-MNIST and CIFAR-10 files, checksum-verified."""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import http.client
import logging
import os
import sys
import tempfile
import urllib.error
import urllib.request
import zlib
from pathlib import Path

from tqdm import tqdm

from synthmix.data import checksums
from synthmix.data.registry import DOWNLOADABLE, default_data_dir
from synthmix.errors import ConfigError, DataError

log = logging.getLogger(__name__)

MIRRORS: dict[str, tuple[str, ...]] = {
    "mnist": (
        "https://ossci-datasets.s3.amazonaws.com/mnist/",
        "http://yann.lecun.com/exdb/mnist/",
    ),
    "fashion-mnist": ("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",),
    "cifar10": ("https://www.cs.toronto.edu/~kriz/",),
}
_CHUNK = 1 << 20


class _ChecksumMismatch(Exception):
    pass


def fetch_dataset(
    name: str, data_dir: str | Path | None = None, base_url: str | None = None, timeout: float = 30
) -> list[Path]:
    """Download `name`'s official files into data_dir/<name>/ (skipping verified ones).

    Each file goes to a temporary file and is renamed into place only if its md5 (or that
    of its decompressed content) is the official one. `base_url` replaces the mirrors.
    """
    if name not in DOWNLOADABLE:
        raise ConfigError(f"cannot download {name!r}; downloadable: {', '.join(DOWNLOADABLE)}")
    target = Path(data_dir or default_data_dir()).expanduser() / name
    try:
        target.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise DataError(f"cannot create the folder ({e.strerror or e})", path=target) from e
    mirrors = (base_url,) if base_url else MIRRORS[name]
    paths = []
    for entry in checksums.OFFICIAL_FILES[name]:
        if not entry.fetch:
            continue
        dest = target / entry.name
        if dest.is_file() and checksums.checksum_status(name, dest).checksum == "ok":
            log.info("%s: already there, checksum ok", dest)
        else:
            _download_from_mirrors(mirrors, entry, dest, timeout)
        paths.append(dest)
    return paths


def _download_from_mirrors(
    mirrors: tuple[str, ...], entry: checksums.OfficialFile, dest: Path, timeout: float
) -> None:
    failures = []
    for base in mirrors:
        url = base.rstrip("/") + "/" + entry.name
        try:
            _download(url, entry, dest, timeout)
            log.info("downloaded %s -> %s", url, dest)
            return
        except _ChecksumMismatch as e:
            failures.append(f"{url}: {e}")
        except urllib.error.HTTPError as e:
            failures.append(f"{url}: HTTP {e.code} {e.reason}")
        except (urllib.error.URLError, http.client.HTTPException, OSError) as e:
            reason = getattr(e, "reason", None) or e
            failures.append(f"{url}: {reason}")
    raise DataError(
        f"could not download {'; '.join(failures)}; put the files in {dest.parent} yourself"
    )


def _download(url: str, entry: checksums.OfficialFile, dest: Path, timeout: float) -> None:
    request = urllib.request.Request(url, headers={"User-Agent": "synthmix (urllib)"})
    fd, tmp_name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".part", dir=dest.parent)
    tmp = Path(tmp_name)
    try:
        md5 = hashlib.md5(usedforsecurity=False)
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(request, timeout=timeout) as resp:
            total = int(resp.headers.get("Content-Length") or 0) or None
            with tqdm(total=total, unit="B", unit_scale=True, desc=entry.name,
                      disable=not sys.stderr.isatty()) as bar:
                while block := resp.read(_CHUNK):
                    out.write(block)
                    md5.update(block)
                    bar.update(len(block))
            if total is not None and out.tell() != total:
                raise OSError(f"connection closed after {out.tell()} of {total} bytes")
            out.flush()
            os.fsync(out.fileno())
        _verify(md5.hexdigest(), entry, tmp)
        os.replace(tmp, dest)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


def _verify(file_md5: str, entry: checksums.OfficialFile, tmp: Path) -> None:
    if file_md5 == entry.md5:
        return
    if entry.content_md5 is not None:
        # Mirrors may re-gzip the files; the decompressed bytes are what must match.
        content = hashlib.md5(usedforsecurity=False)
        try:
            with gzip.open(tmp, "rb") as f:
                while block := f.read(_CHUNK):
                    content.update(block)
        except (OSError, EOFError, zlib.error) as e:
            raise _ChecksumMismatch(f"md5 {file_md5} is not the official {entry.md5} "
                                    f"and the file is not valid gzip ({e})") from e
        if content.hexdigest() == entry.content_md5:
            return
        raise _ChecksumMismatch(f"checksum mismatch: decompressed md5 {content.hexdigest()}, "
                                f"expected {entry.content_md5}")
    raise _ChecksumMismatch(f"checksum mismatch: md5 {file_md5}, expected {entry.md5}")

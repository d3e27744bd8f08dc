"""Reading tar archives member by member in memory, refusing members that would escape."""

from __future__ import annotations

import contextlib
import gzip
import io
import logging
import posixpath
import tarfile
import zlib
from collections.abc import Iterator
from pathlib import Path

from synthmix.errors import DataError

log = logging.getLogger(__name__)

TAR_SUFFIXES = (".tar", ".tar.gz", ".tgz")


def is_tar_path(path: str | Path) -> bool:
    return str(path).lower().endswith(TAR_SUFFIXES)


def safe_member_parts(archive: str | Path, member: tarfile.TarInfo) -> tuple[str, ...]:
    """The member's relative path as parts; DataError if it (or a link target) points outside."""
    name = member.name
    parts = tuple(p for p in name.split("/") if p not in ("", "."))
    if name.startswith(("/", "\\")) or (parts and ":" in parts[0]) or ".." in parts:
        raise DataError(f"archive member {name!r} would escape the folder", path=archive)
    if member.issym() or member.islnk():
        target = member.linkname
        base = posixpath.dirname(name) if member.issym() else ""
        resolved = posixpath.normpath(posixpath.join(base, target))
        if target.startswith("/") or resolved == ".." or resolved.startswith("../"):
            raise DataError(
                f"archive member {name!r} links to {target!r} outside the folder", path=archive
            )
    return parts


@contextlib.contextmanager
def _open_stream(archive: str | Path) -> Iterator[tarfile.TarFile]:
    # tarfile's own gzip stream reads in 10 kB steps; GzipFile behind a 1 MB buffer is
    # about 1.5x faster on archives of many small members (60k JPEGs).
    with open(archive, "rb") as raw:
        gzipped = raw.read(2) == b"\x1f\x8b"
        raw.seek(0)
        if not gzipped:  # plain tar, or bz2/xz detected by tarfile itself
            with tarfile.open(fileobj=raw, mode="r|*") as tar:
                yield tar
            return
        with (
            gzip.GzipFile(fileobj=raw, mode="rb") as gz,
            io.BufferedReader(gz, 1 << 20) as buffered,
            tarfile.open(fileobj=buffered, mode="r|") as tar,
        ):
            yield tar


def iter_tar_members(archive: str | Path) -> Iterator[tuple[tuple[str, ...], bytes | None]]:
    """Yield (path parts, bytes) of each regular file and (parts, None) of each folder,
    streaming the archive once without extracting anything."""
    try:
        with _open_stream(archive) as tar:
            for member in tar:
                parts = safe_member_parts(archive, member)
                if member.isdir():
                    yield parts, None
                    continue
                if not member.isfile():
                    log.debug("%s: skipping non-file member %s", archive, member.name)
                    continue
                f = tar.extractfile(member)
                if f is not None:
                    yield parts, f.read()
    except (tarfile.TarError, EOFError, zlib.error, OSError) as e:
        if isinstance(e, FileNotFoundError):
            raise DataError("archive not found", path=archive) from e
        raise DataError(f"cannot read archive: {e or type(e).__name__}", path=archive) from e


def iter_tar_files(archive: str | Path) -> Iterator[tuple[tuple[str, ...], bytes]]:
    """Yield (path parts, bytes) of each regular file in the archive."""
    for parts, data in iter_tar_members(archive):
        if data is not None:
            yield parts, data

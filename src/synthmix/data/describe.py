"""Describe an image folder without loading it as a study would: counts, sizes, modes, litter.

`synthmix data info imagefolder:PATH` prints this for any folder (or tar of one), including
folders whose images differ in size or mode, which the loader only takes with `image_size` and
`channels` set. Only a file that cannot be read is refused, with its path; everything else
(litter, a class missing from a split, a class too small for a study) is described.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from synthmix.data.archive import is_tar_path, iter_tar_members
from synthmix.data.images import EIGHT_BIT_MODES, GREY_MODES, is_image_name, open_image
from synthmix.errors import DataError

SPLITS = ("train", "test")
# The study's image sizes on a CPU: a DDPM step at 32x32 costs about 4x one at 16x16.
CPU_IMAGE_SIZES = (8, 16)


@dataclass
class FolderSummary:
    """What a folder holds: images per (split, class), their sizes and modes, skipped files."""

    source: str
    counts: dict[str, Counter[str]] = field(
        default_factory=lambda: {s: Counter() for s in SPLITS})
    sizes: Counter[tuple[int, int]] = field(default_factory=Counter)  # (width, height)
    modes: Counter[str] = field(default_factory=Counter)
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (file, why)
    class_dirs: dict[str, set[str]] = field(
        default_factory=lambda: {s: set() for s in SPLITS})

    @property
    def classes(self) -> list[str]:
        return sorted(self.class_dirs["train"] | self.class_dirs["test"])

    @property
    def mixes_grey_and_colour(self) -> bool:
        grey = {m in GREY_MODES for m in self.modes if m in EIGHT_BIT_MODES}
        return len(grey) == 2

    @property
    def channels(self) -> int:
        """3 if any image is in colour (palette images count as colour), else 1."""
        return 3 if any(m not in GREY_MODES for m in self.modes) else 1

    def problems(self) -> list[str]:
        """Why a study cannot run on this folder as it is (empty: it can)."""
        out = []
        for s in SPLITS:
            if not self.class_dirs[s]:
                out.append(f"no {s}/<class>/ folders")
        for cls in self.classes:
            missing = [s for s in SPLITS if self.counts[s][cls] == 0]
            if missing:
                out.append(f"class {cls!r} has no images in {' or '.join(missing)}/")
        bad = sorted(m for m in self.modes if m not in EIGHT_BIT_MODES)
        if bad:
            out.append(f"{', '.join(bad)} images (16-bit or float) are not supported")
        return out


def suggest_image_size(sizes: Counter[tuple[int, int]], cap: int = max(CPU_IMAGE_SIZES)) -> int:
    """The study's image size: the largest of 8, 16, ... that is no larger than the median
    short side (no upscaling of typical images) and no larger than `cap` (the CPU budget)."""
    sides = sorted(min(wh) for wh, n in sizes.items() for _ in range(n))
    median = sides[len(sides) // 2] if sides else cap
    size = min(CPU_IMAGE_SIZES)
    while size * 2 <= min(median, cap):
        size *= 2
    return size


def _folder_members(root: Path) -> Iterator[tuple[tuple[str, ...], bytes | None]]:
    for split in SPLITS:
        if not (root / split).is_dir():
            raise DataError(f"no {split}/ folder", path=root,
                            hint="an image folder holds train/<class>/* and test/<class>/*")
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root).parts
        if rel[0] not in SPLITS or path.is_symlink():
            continue
        if path.is_dir():
            yield rel, None
        elif path.is_file():
            try:
                yield rel, path.read_bytes()
            except OSError as e:
                raise DataError(f"cannot read: {e.strerror or e}", path=path) from e


def _tree_parts(parts: tuple[str, ...]) -> tuple[str, ...] | None:
    """The part of a member path from its train/test component on (None: outside the tree)."""
    for i, p in enumerate(parts):
        if p in SPLITS:
            return parts[i:]
    return None


def _skip_reason(rel: tuple[str, ...]) -> str | None:
    if any(p.startswith(".") or p == "__MACOSX" for p in rel):
        return "hidden file"
    if not is_image_name(rel[-1]):
        return "not an image (by its suffix)"
    if len(rel) == 2:
        return "image not inside a class folder"
    if len(rel) > 3:
        return "inside a subfolder of a class folder"
    return None


def _probe(data: bytes, where: str) -> tuple[tuple[int, int], str]:
    """(width, height), mode of one image file, decoded fully so that a broken file is found."""
    with open_image(data, where) as im:
        return (im.width, im.height), im.mode


def describe_folder(source: str | Path) -> FolderSummary:
    """Walk a folder or tar of `{train,test}/<class>/<image>` once and describe it."""
    source = Path(source)
    if not source.exists():
        raise DataError("no such folder or archive", path=source)
    if source.is_file() and not is_tar_path(source):
        raise DataError("expected a folder or a .tar/.tar.gz/.tgz archive", path=source)
    out = FolderSummary(str(source))
    members = iter_tar_members(source) if source.is_file() else _folder_members(source)
    sep = ":" if source.is_file() else "/"
    for parts, data in members:
        rel = _tree_parts(parts)
        if rel is None:
            continue
        if data is None:
            if len(rel) == 2 and not rel[1].startswith("."):
                out.class_dirs[rel[0]].add(rel[1])
            continue
        where = f"{source}{sep}{'/'.join(parts)}"
        why = _skip_reason(rel)
        if why:
            out.skipped.append(("/".join(rel), why))
            continue
        size, mode = _probe(data, where)
        out.class_dirs[rel[0]].add(rel[1])
        out.counts[rel[0]][rel[1]] += 1
        out.sizes[size] += 1
        out.modes[mode] += 1
    if not any(out.class_dirs.values()) and not out.skipped:
        raise DataError("no train/<class>/ or test/<class>/ folders found", path=source,
                        hint="an image folder holds train/<class>/* and test/<class>/*")
    return out


def format_summary(s: FolderSummary, top: int = 5) -> list[str]:
    """The lines `data info` prints for an image folder."""
    width = max(12, *(len(c) for c in s.classes)) if s.classes else 12
    lines = [f"image folder: {s.source} ({len(s.classes)} classes)",
             f"  {'class':<{width}} {'train':>7} {'test':>7}"]
    for cls in s.classes:
        lines.append(f"  {cls:<{width}} {s.counts['train'][cls]:>7} {s.counts['test'][cls]:>7}")
    lines.append(f"  {'total':<{width}} {sum(s.counts['train'].values()):>7} "
                 f"{sum(s.counts['test'].values()):>7}")
    n = sum(s.sizes.values())
    lines.append(f"image sizes (width x height; {len(s.sizes)} distinct):")
    for (w, h), k in s.sizes.most_common(top):
        lines.append(f"  {w}x{h:<9} {k:>7}  {_bar(k, n)}")
    if len(s.sizes) > top:
        lines.append(f"  ({len(s.sizes) - top} other sizes, "
                     f"{n - sum(k for _, k in s.sizes.most_common(top))} images)")
    lines.append("modes: " + ", ".join(f"{m} {k}" for m, k in s.modes.most_common()))
    lines.append(f"suggested image_size: {suggest_image_size(s.sizes)} (the largest of "
                 f"{', '.join(map(str, CPU_IMAGE_SIZES))} up to the median short side; "
                 "a CPU budget)" + ("; channels: 3 (grey and colour mix)"
                                    if s.mixes_grey_and_colour else ""))
    if s.skipped:
        reasons = Counter(why for _, why in s.skipped)
        lines.append(f"skipped {len(s.skipped)} files: "
                     + "; ".join(f"{why} ({k})" for why, k in reasons.most_common()))
        lines += [f"  {f}: {why}" for f, why in s.skipped[:top]]
    lines += [f"cannot run a study: {p}" for p in s.problems()]
    return lines


def _bar(k: int, n: int, width: int = 30) -> str:
    return "#" * max(1, round(width * k / max(n, 1)))

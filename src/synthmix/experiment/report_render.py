"""Report building blocks and their two renderers: Markdown (report.md) and standalone HTML.

Sections of the study report are lists of these blocks; rendering them twice keeps the
Markdown and the HTML saying the same thing.
"""

from __future__ import annotations

import base64
import html
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote


@dataclass(frozen=True)
class Heading:
    text: str
    level: int = 2


@dataclass(frozen=True)
class Para:
    text: str  # plain text: both renderers escape it
    note: bool = False  # a "this section is missing" line, shown in italics


@dataclass(frozen=True)
class Image:
    """A PNG shown as a figure (with its caption) or inside a table cell (caption unused)."""

    path: Path
    alt: str
    caption: str = ""
    width: int | None = None


Cell = str | Image


@dataclass(frozen=True)
class Table:
    header: Sequence[str]
    rows: Sequence[Sequence[Cell]]


@dataclass(frozen=True)
class Code:
    text: str
    lang: str = ""


Block = Heading | Para | Table | Code | Image


_MD_SPECIAL = re.compile(r"([\\`*_<>\[\]|#])")


def _md(text: str) -> str:
    """Plain text made inert in Markdown (no HTML, emphasis or table breaks)."""
    return _MD_SPECIAL.sub(r"\\\1", text).replace("\n", " ")


def _md_link(path: Path, study_dir: Path) -> str:
    return quote(Path(os.path.relpath(path, study_dir)).as_posix())


def _md_cell(cell: Cell, study_dir: Path) -> str:
    if isinstance(cell, Image):
        return f"![{_md(cell.alt)}]({_md_link(cell.path, study_dir)})"
    return _md(cell)


def render_markdown(blocks: Sequence[Block], study_dir: Path) -> str:
    """report.md: image links relative to `study_dir`."""
    parts: list[str] = []
    for b in blocks:
        if isinstance(b, Heading):
            parts.append("#" * b.level + " " + _md(b.text))
        elif isinstance(b, Para):
            parts.append(f"*{_md(b.text)}*" if b.note else _md(b.text))
        elif isinstance(b, Table):
            lines = ["| " + " | ".join(_md(h) for h in b.header) + " |",
                     "|" + "---|" * len(b.header)]
            lines += ["| " + " | ".join(_md_cell(c, study_dir) for c in row) + " |"
                      for row in b.rows]
            parts.append("\n".join(lines))
        elif isinstance(b, Code):
            longest = max((len(m) for m in re.findall(r"`+", b.text)), default=0)
            fence = "`" * max(3, longest + 1)
            parts.append(f"{fence}{b.lang}\n{b.text.rstrip()}\n{fence}")
        else:
            img = _md_cell(b, study_dir)
            parts.append(img + (f"\n\n{_md(b.caption)}" if b.caption else ""))
    return "\n\n".join(parts) + "\n"


_CSS = """
body { font-family: system-ui, sans-serif; max-width: 1100px; margin: 2em auto; padding: 0 1em;
       color: #222; line-height: 1.45; }
h1 { border-bottom: 2px solid #3b75af; } h2 { margin-top: 1.8em; border-bottom: 1px solid #ddd; }
table { border-collapse: collapse; margin: .8em 0; font-size: .9em; }
th, td { border: 1px solid #ccc; padding: .3em .6em; text-align: left; vertical-align: top; }
th { background: #eef3f8; } tr:nth-child(even) td { background: #fafafa; }
figcaption, .note { font-size: .9em; color: #666; } .note { font-style: italic; }
img { max-width: 100%; } pre { background: #f6f8fa; padding: .8em; overflow-x: auto; }
"""


def _html_img(img: Image) -> str:
    data = base64.b64encode(img.path.read_bytes()).decode("ascii")
    width = f' width="{img.width}"' if img.width else ""
    return f'<img src="data:image/png;base64,{data}" alt="{html.escape(img.alt)}"{width}>'


def _html_cell(cell: Cell, tag: str) -> str:
    inner = _html_img(cell) if isinstance(cell, Image) else html.escape(cell)
    return f"<{tag}>{inner}</{tag}>"


def render_html(blocks: Sequence[Block], title: str) -> str:
    """report.html: one standalone page, images inlined as base64 data URIs."""
    e = html.escape
    body: list[str] = []
    for b in blocks:
        if isinstance(b, Heading):
            body.append(f"<h{b.level}>{e(b.text)}</h{b.level}>")
        elif isinstance(b, Para):
            body.append(f'<p class="note">{e(b.text)}</p>' if b.note else f"<p>{e(b.text)}</p>")
        elif isinstance(b, Table):
            head = "".join(_html_cell(h, "th") for h in b.header)
            rows = "".join("<tr>" + "".join(_html_cell(c, "td") for c in row) + "</tr>\n"
                           for row in b.rows)
            body.append(f"<table>\n<thead><tr>{head}</tr></thead>\n<tbody>\n{rows}</tbody>\n"
                        "</table>")
        elif isinstance(b, Code):
            body.append(f"<pre><code>{e(b.text)}</code></pre>")
        else:
            cap = f"<figcaption>{e(b.caption)}</figcaption>" if b.caption else ""
            body.append(f"<figure>{_html_img(b)}{cap}</figure>")
    return (f'<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
            f"<title>{e(title)}</title>\n<style>{_CSS}</style>\n</head>\n<body>\n"
            + "\n".join(body) + "\n</body>\n</html>\n")

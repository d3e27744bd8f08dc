"""The README's Python example runs as written (in a temporary directory)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def python_example(markdown: str) -> str | None:
    """The first ```python block of the "## Python" section, or None without such a section."""
    section = re.search(r"^## Python[ \t]*\n(.*?)(?=^## |\Z)", markdown, re.M | re.S)
    if section is None:
        return None
    block = re.search(r"^```python[ \t]*\n(.*?)^```", section.group(1), re.M | re.S)
    return None if block is None else block.group(1)


def test_python_example_finds_the_first_block_of_its_section() -> None:
    text = "## Python\n\nprose\n```python\nx = 1\n```\n```python\ny = 2\n```\n## Other\n"
    assert python_example(text) == "x = 1\n"
    assert python_example("## Usage\n```python\nz = 3\n```\n") is None


@pytest.mark.slow
def test_readme_python_example_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    code = python_example((ROOT / "README.md").read_text(encoding="utf-8"))
    assert code is not None, "README.md lost its '## Python' section with a ```python block"
    monkeypatch.chdir(tmp_path)  # the example writes tiny.yaml and studies/ where it runs
    exec(compile(code, "README.md (## Python)", "exec"), {"__name__": "__readme__"})

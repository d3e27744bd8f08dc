"""The study report from a fake study directory: every section, escaping, missing files."""

from __future__ import annotations

import base64
import json
import re
import statistics
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from synthmix.errors import SynthmixError
from synthmix.experiment.report import write_report
from synthmix.experiment.results import summarise_runs

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
CLASSES = ["zero", "one", "two"]
CELLS = [("Exp 1", 1.0, 0.0, 0.97), ("Exp 2", 0.0, 1.0, 0.71), ("Exp 3", 0.5, 0.5, 0.98),
         ("Exp 4", 0.1, 0.9, 0.95), ("Exp 5", 0.9, 0.1, 0.99)]
HEADINGS = ["The answer", "What was run", "Results (Table 6 layout)",
            "Paired differences (95% confidence intervals)", "What the synthetic data is worth",
            "Sampling settings", "Per-class F1 (mean over seeds)",
            "Macro-F1 next to the study", "Guidance sweep", "DDPM samples", "DDPM training",
            "Classifier training (seed 0)", "Synthetic data quality", "Provenance", "Config",
            "Code version", "Hardware", "Wall time per stage"]
NAME = "demo <script>alert(1)</script>"


def _png(path: Path, value: int) -> Path:
    """A tiny PNG whose pixels differ per file, so each embedding is distinguishable."""
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.full((4, 6, 3), value % 256, dtype=np.uint8)
    Image.fromarray(pixels).save(path)
    return path


def _config(semantics: str) -> dict[str, Any]:
    return {"name": NAME, "data": {"dataset": "mnist"},
            "ddpm": {"config": None, "overrides": {}, "run_dir": None},
            "synthetic": {"path": None, "n_per_class": 20, "sampler": "ddim", "steps": 50,
                          "guidance_scale": 3.0, "eta": 0.0, "seed": 0},
            "classifier": {"model": {"preset": "small"}, "augment": {"cutout": 8},
                           "test_time_flip": True},
            "mixes": {"semantics": semantics, "total": None, "real_pool_size": 300},
            "seeds": 2, "guidance_sweep": {"scales": [1.0, 3.0], "seeds": 2},
            "quality": {"enabled": True}}


def _run(seed: int, macro: float, run_dir: str) -> dict[str, Any]:
    per_class = {c: macro + 0.01 * i for i, c in enumerate(CLASSES)}
    return {"seed": seed, "run_dir": run_dir, "macro_f1": macro, "accuracy": macro + 0.005,
            "micro_f1": macro + 0.005, "per_class_f1": per_class,
            "confusion_matrix": [[1, 0, 0], [0, 1, 0], [0, 0, 1]], "epochs": 7 + seed,
            "best_epoch": 4, "stop_reason": "early_stopping", "train_seconds": 12.5}


def _mean_std_text(runs: list[dict[str, Any]], metric: str, with_n: bool = True) -> str:
    """The expected cell text, computed independently of the code under test."""
    values = [r[metric] for r in runs]
    std = statistics.stdev(values) if len(values) > 1 else 0.0
    text = f"{statistics.mean(values):.3f} ± {std:.3f}"
    return text + f" (n={len(values)})" if with_n else text


def _full_study(root: Path) -> tuple[dict[str, Any], int]:
    """A study dir like `synthmix experiment` writes; returns results and the image count."""
    images = 0
    table = []
    for i, (name, real, syn, paper) in enumerate(CELLS):
        runs = []
        for seed in (0, 1):
            rel = f"classifiers/exp-{i + 1}/seed-{seed}"
            _png(root / rel / "loss_curve.png", 10 * i + seed)
            _png(root / rel / "confusion_matrix.png", 100 + 10 * i + seed)
            n_real, n_syn = int(300 * real), int(60 * syn)
            where = ("6 held-out synthetic images (no real data in this experiment)"
                     if real == 0 else f"{n_real // 10} real images")
            (root / rel / "mix.json").write_text(json.dumps(
                {"name": name, "real": real, "synthetic": syn, "seed": seed,
                 "semantics": "fraction-of-pools", "train_real": n_real,
                 "train_synthetic": n_syn - (6 if real == 0 else 0),
                 "train_total": n_real + n_syn, "val": 30, "validation": where}))
            runs.append(_run(seed, 0.5 + 0.1 * i + 0.02 * seed, rel))
        images += 2  # seed 0's loss curve and confusion matrix
        table.append({"name": name, "real": real, "synthetic": syn, "runs": runs,
                      **summarise_runs(runs), "paper_f1": paper})
    sweep = []
    for w in (3.0, 1.0):
        runs = [_run(s, 0.3 + 0.1 * w + 0.01 * s, f"guidance_sweep/w{w:g}/seed-{s}")
                for s in (0, 1)]
        sweep.append({"guidance_scale": w, "runs": runs, **summarise_runs(runs)})
    _png(root / "ddpm" / "loss_curve.png", 200)
    _png(root / "ddpm" / "samples" / "final.png", 201)
    for epoch in (1, 2, 3, 5, 8, 13):
        _png(root / "ddpm" / "samples" / f"epoch-{epoch:04d}.png", 210 + epoch)
    images += 2 + 4  # loss curve, final grid, 4 of the 6 epoch grids
    (root / "ddpm" / "train_summary.json").write_text(json.dumps(
        {"epochs": 13, "best_epoch": 11, "stop_reason": "max_epochs", "train_seconds": 99.0}))
    (root / "ddpm" / "run.json").write_text(json.dumps({"command": "synthmix experiment x"}))
    _png(root / "quality" / "per_class_fid.png", 230)
    _png(root / "quality" / "nearest_neighbours.png", 231)
    images += 2 + 2  # quality PNGs, bar chart + sweep plot
    quality = {"fid": 12.345678, "kid_mean": 0.000123, "precision": 0.81, "recall": 0.7,
               "feature_network": "classifier Exp 1 seed 0 (seed-0)",
               "per_class": {c: {"fid": 10.0 + j, "precision": 0.8} for j, c in
                             enumerate(CLASSES)},
               "plots": {"per_class_fid": "per_class_fid.png"}}
    results = {"name": NAME, "dataset": "mnist", "semantics": "fraction-of-pools", "seeds": 2,
               "config": _config("fraction-of-pools"),
               "code_version": {"synthmix": "0.1.0", "git_commit": "abc123"},
               "hardware": {"python": "3.11", "cpu_count": 2}, "ddpm_run": str(root / "ddpm"),
               "synthetic_sets": {"0": str(root / "synthetic" / "w3-seed0")}, "table": table,
               "guidance_sweep": sweep, "quality": quality,
               "stages": {"ddpm": {"status": "done", "seconds": 3725.0, "finished": "today"},
                          "quality": {"status": "done", "seconds": 4.2}},
               "wall_seconds": 3800.4}
    (root / "results.json").write_text(json.dumps(results))
    return results, images


def _md_images(md: str) -> list[str]:
    return re.findall(r"!\[[^\]]*\]\(([^)]+)\)", md)


@pytest.fixture(scope="module")
def full_study(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any], int]:
    """One fake study, reported once (plotting is the slow part), shared by two tests."""
    root = tmp_path_factory.mktemp("study")
    results, n_images = _full_study(root)
    assert write_report(root) == root / "report.md"
    return root, results, n_images


def test_full_report_has_every_section_row_and_image(
    full_study: tuple[Path, dict[str, Any], int],
) -> None:
    tmp_path, results, n_images = full_study
    md = (tmp_path / "report.md").read_text(encoding="utf-8")
    for heading in HEADINGS:
        assert re.search(rf"^#+ {re.escape(heading)}$", md, re.M), heading
    assert md.startswith("# synthmix study: ")
    assert "fraction-of-pools" in md and "in 2 repeats" in md and "preset small" in md
    assert "with ddim-50 w=3 (as configured)" in md
    assert "horizontal flips off, cutout 8 px squares, test-time flip on." in md
    for cell in results["table"]:
        row = next(line for line in md.splitlines() if line.startswith(f"| {cell['name']} |"))
        assert f"| {_mean_std_text(cell['runs'], 'macro_f1')} |" in row
        assert f"| {_mean_std_text(cell['runs'], 'accuracy', with_n=False)} |" in row
        assert f"| {statistics.mean(r['micro_f1'] for r in cell['runs']):.3f} |" in row
        assert f"| {cell['paper_f1']:.2f} |" in row
        mix = json.loads((tmp_path / cell["runs"][0]["run_dir"] / "mix.json").read_text())
        assert f"| {mix['train_real']} | {mix['train_synthetic']} |" in row
    # Exp 2 has no real data: the report says where its validation images came from.
    assert "Exp 2: 6 held-out synthetic images" in md
    assert "| w=" not in md and "| 1 | " in md and "| 3 | " in md  # sweep rows, sorted by w
    assert md.index("| 1 | ") < md.index("| 3 | ")
    assert "| fid | 12.3457 |" in md and "| kid\\_mean | 0.000123 |" in md
    assert "1:03:20" in md  # total wall time 3800.4 s
    # Image links are relative to the study dir and resolve; 4 of the 6 epoch grids, first+last.
    links = _md_images(md)
    assert len(links) == n_images
    assert all(not Path(link).is_absolute() and (tmp_path / link).is_file() for link in links)
    epochs = [link for link in links if "epoch-" in link]
    assert epochs[0].endswith("epoch-0001.png") and epochs[-1].endswith("epoch-0013.png")
    assert len(epochs) == 4
    # The study name is made inert in Markdown too (only the YAML code block holds it raw).
    prose = re.sub(r"```yaml\n.*?```", "", md, flags=re.S)
    assert "<script>" not in prose and "\\<script\\>" in prose.splitlines()[0]


def test_full_report_html_is_standalone_and_escaped(
    full_study: tuple[Path, dict[str, Any], int],
) -> None:
    tmp_path, _, n_images = full_study
    page = (tmp_path / "report.html").read_text(encoding="utf-8")
    assert page.startswith("<!DOCTYPE html>") and "<html" in page and page.rstrip().endswith(
        "</html>")
    for heading in HEADINGS:
        assert f">{heading}</h" in page.replace("&#x27;", "'"), heading
    uris = re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', page)
    assert len(uris) == n_images
    assert all(base64.b64decode(u).startswith(PNG_MAGIC) for u in uris)
    assert "<script>" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert 'src="http' not in page and "<link" not in page  # no external assets
    for fig in ("table6_bar.png", "guidance_sweep.png"):
        data = (tmp_path / "figures" / fig).read_bytes()
        assert data.startswith(PNG_MAGIC)
        assert Image.open(tmp_path / "figures" / fig).size[0] > 100
    assert page.count("<table>") == page.count("</table>") >= 8


def test_minimal_study_gets_notes_for_missing_sections(tmp_path: Path) -> None:
    runs = [_run(0, 0.9, "classifiers/exp-1/seed-0")]  # run dir never created
    table = [{"name": "Exp 1", "real": 1.0, "synthetic": 0.0, "runs": runs, **summarise_runs(runs),
              "paper_f1": None}]
    results = {"name": "tiny", "dataset": "digits", "semantics": "fixed-total", "seeds": 1,
               "config": _config("fixed-total"), "ddpm_run": str(tmp_path / "elsewhere"),
               "table": table, "guidance_sweep": [], "quality": None, "stages": {},
               "wall_seconds": 1.0}
    (tmp_path / "results.json").write_text(json.dumps(results))
    md = write_report(tmp_path).read_text(encoding="utf-8")
    for heading in HEADINGS:
        assert re.search(rf"^#+ {re.escape(heading)}$", md, re.M), heading
    assert "fixed-total: every experiment trains on the same number of images" in md
    assert "*No guidance sweep in this study" in md
    assert "*No DDPM sample grids: run directory not found" in md
    assert "*No DDPM training record" in md
    assert "*No synthetic-quality results" in md
    assert "*No stage timings recorded.*" in md
    row = next(line for line in md.splitlines() if line.startswith("| Exp 1 |"))
    assert "0.900 ± 0.000 (n=1)" in row and row.endswith("| — |")  # no study F1 for digits
    assert (tmp_path / "figures" / "table6_bar.png").read_bytes().startswith(PNG_MAGIC)
    assert not (tmp_path / "figures" / "guidance_sweep.png").exists()
    page = (tmp_path / "report.html").read_text(encoding="utf-8")
    assert page.count("data:image/png;base64,") == 1  # only the bar chart
    # Regenerating from the saved results alone gives the same report.
    assert write_report(tmp_path).read_text(encoding="utf-8") == md


def test_missing_or_broken_results_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(SynthmixError, match="no results.json"):
        write_report(tmp_path)
    (tmp_path / "results.json").write_text("{not json")
    with pytest.raises(SynthmixError, match="not readable JSON"):
        write_report(tmp_path)


@pytest.mark.parametrize("fraction", [0.5, 1.0])
def test_report_says_which_images_each_part_saw(tmp_path: Path, fraction: float) -> None:
    """The split and the full-data scenario each say who trained and chose on which images,
    with the sizes of the saved split (the study's splits.json, written by the real code)."""
    from synthmix.data.splits import make_study_splits

    labels = np.repeat(np.arange(10), 40)  # 400 images
    splits = make_study_splits(labels, seed=3, diffusion_fraction=fraction, val_fraction=0.1)
    splits.save(tmp_path / "splits.json")
    runs = [_run(0, 0.9, "classifiers/exp-1/seed-0")]
    results = {"name": "s", "dataset": "mnist", "semantics": "fraction-of-pools", "seeds": 1,
               "config": _config("fraction-of-pools"),  # real_pool_size 300
               "table": [{"name": "Exp 1", "real": 1.0, "synthetic": 0.0, "runs": runs,
                          **summarise_runs(runs), "paper_f1": None}],
               "guidance_sweep": [], "quality": None, "stages": {}, "wall_seconds": 1.0}
    (tmp_path / "results.json").write_text(json.dumps(results))
    md = write_report(tmp_path).read_text(encoding="utf-8")
    para = next(line for line in md.splitlines() if line.startswith("Which images each part"))
    if fraction == 1.0:
        assert "full-data scenario" in para
        assert "the DDPM trained on 360 images" in para and "validated on 40" in para
        assert "from the same 360 (the pool capped at 300)" in para
        assert "the same 40 validation images the DDPM validated on" in para
    else:
        assert "split scenario, seed 3" in para and "DDPM part (50%)" in para
        assert "the DDPM trained on 180 images and validated on 20" in para
        assert "part's 180 (no cap)" in para and "No image is in two of these sets" in para
    assert "The test set was read once per classifier" in para

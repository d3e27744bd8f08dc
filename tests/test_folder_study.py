"""A user's own folder, as users leave them: names with spaces and non-ASCII letters, mixed sizes
and modes, litter; `data info` describes it, `experiment --data` sizes and runs a study on it,
and a corrupt file, a class missing from test/ or a class of two images gets one clear line."""

from __future__ import annotations

import json
import logging
import re
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from synthmix.cli import main
from synthmix.experiment.report_folder import guard_section, memorisation_flags
from synthmix.experiment.sizing import DataFacts, size_study

CLASSES = ("big cat", "emu", "Żółw")  # sorted as the loader sorts them
MODES = ("L", "RGB", "RGBA", "P")
SIZES = ((8, 8), (12, 10), (20, 20))
TINY = [  # explicit values: a study of seconds; everything else is sized from the folder
    "data.image_size=8", "ddpm.overrides.unet.preset=tiny", "ddpm.overrides.schedule.T=20",
    "ddpm.overrides.train.max_steps=3", "ddpm.overrides.train.steps_per_epoch=3",
    "ddpm.overrides.sample.grid_per_class=1", "ddpm.overrides.sample.steps=2",
    "synthetic.n_per_class=10", "synthetic.steps=2", "synthetic.guidance_scale=2.0",
    "synthetic.sets=1", "classifier.train.max_epochs=1", "classifier.train.steps_per_epoch=2",
    "seeds=2", "worth.enabled=false", "mixes.controls=false", "quality.max_images=100",
    "num_threads=1",
]


def write_folder(root: Path, n_train: int = 32, n_test: int = 4) -> Path:
    """root/{train,test}/<class>/*.png|jpg in every mode and size, plus the usual litter."""
    rng = np.random.default_rng(0)
    for split, n in (("train", n_train), ("test", n_test)):
        for c, cls in enumerate(CLASSES):
            d = root / split / cls
            d.mkdir(parents=True, exist_ok=True)
            for i in range(n):
                w, h = SIZES[i % len(SIZES)]
                a = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
                a[..., c] = 255 - 40 * c  # some class signal
                im = Image.fromarray(a).convert(MODES[i % len(MODES)])
                im.save(d / (f"{i:03d}.png" if i % 5 else f"{i:03d}.jpg")
                        if im.mode in ("RGB", "L") else d / f"{i:03d}.png")
    (root / "train" / ".DS_Store").write_bytes(b"\0\1")
    (root / "train" / "emu" / ".DS_Store").write_bytes(b"\0\1")
    (root / "train" / "emu" / "README.txt").write_text("photos from the zoo\n")
    return root


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_folder(tmp_path_factory.mktemp("user") / "my photos")


@pytest.fixture(scope="module")
def study(folder: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("study") / "out"
    sets = [x for kv in TINY for x in ("--set", kv)]
    assert main(["experiment", "--data", f"imagefolder:{folder}", "--budget-minutes", "0",
                 "--study-dir", str(out), "--no-progress", *sets]) == 0
    return out


def test_data_info_describes_a_mixed_folder(folder: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["data", "info", f"imagefolder:{folder}"]) == 0
    out = capsys.readouterr().out
    for cls in CLASSES:
        assert f"  {cls:<12}      32       4" in out
    for w, h in SIZES:
        assert f"  {w}x{h}" in out
    assert "modes: " in out and all(f"{m} 27" in out for m in MODES)
    assert "train/.DS_Store: hidden file" in out
    assert "train/emu/README.txt: not an image" in out
    assert "suggested image_size: 8" in out  # median short side 10 -> 8
    assert "study splits of the train set" in out  # at the suggested size, not refused


def test_sized_study_states_its_sizes_and_keeps_explicit_values(study: Path) -> None:
    sizing = json.loads((study / "plan.json").read_text())["sizing"]
    by_key = {c["key"]: c for c in sizing["choices"]}
    assert by_key["data.image_size"] == {"key": "data.image_size", "value": 8,
                                         "rule": "set by you", "source": "you"}
    assert by_key["seeds"]["value"] == 2 and by_key["seeds"]["source"] == "you"
    assert by_key["data.channels"]["value"] == 3  # grey and colour mixed: colour
    assert by_key["ddpm.overrides.train.batch_size"]["source"] == "data"
    cfg = yaml.safe_load((study / "study.yaml").read_text())
    assert cfg["data"]["image_size"] == 8 and cfg["seeds"] == 2
    assert cfg["data"]["channels"] == 3 and cfg["data"]["val_fraction"] == 0.3
    assert cfg["ddpm"]["overrides"]["train"]["max_steps"] == 3
    assert cfg["ddpm"]["overrides"]["train"]["batch_size"] == by_key[
        "ddpm.overrides.train.batch_size"]["value"]
    assert any("very few training images" in w for w in sizing["warnings"])


def test_report_opens_with_the_answer_then_the_warnings(study: Path) -> None:
    report = (study / "report.md").read_text()
    order = [report.index(h) for h in ("## The answer", "## Read the answer with these",
                                       "## What was run", "## Sizes chosen from the data")]
    assert order == sorted(order)
    assert "by written rules alone (no time budget was asked for" in report
    assert "Warning: very few training images (under 50) in class 'big cat' (32)" in report
    assert "macro-F1 (each class counts equally)" in report
    results = json.loads((study / "results.json").read_text())
    per_class = results["table"][0]["per_class_f1"]
    assert set(per_class) == set(CLASSES)  # names with spaces and non-ASCII letters kept


def test_rerun_reuses_the_sizes_and_resumes(study: Path, folder: Path,
                                            caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    sets = [x for kv in TINY for x in ("--set", kv)]
    assert main(["experiment", "--data", f"imagefolder:{folder}", "--study-dir", str(study),
                 "--no-progress", *sets]) == 0  # the saved sizes, not new ones
    assert "sizes: reused" in caplog.text
    assert "stage ddpm: finished earlier, skipped" in caplog.text


FACTS = DataFacts("imagefolder:/x/pets", ("a", "b", "c", "d"), (300,) * 4, (100,) * 4,
                  Counter({(32, 32): 1600}), 3)


def test_rules_follow_the_data() -> None:
    cfg = size_study(FACTS, {}, budget_minutes=0).config
    assert cfg.data.image_size == 16 and cfg.seeds >= 3 and cfg.synthetic.sets == cfg.seeds
    train = cfg.ddpm.overrides["train"]
    # 4 x 300 x 0.5 x 0.9 = 540 DDPM images: 100 passes at 128 is 422 steps, floor 500
    assert train["batch_size"] == 128 and train["max_steps"] == 500
    assert cfg.synthetic.n_per_class == 270  # 2 x 135 real images per class
    assert cfg.ddpm.overrides["unet"]["preset"] == "cpu"
    big = DataFacts("x", tuple("abcdefghij"), (5000,) * 10, (1000,) * 10,
                    Counter({(28, 28): 60000}), 1)
    cfg = size_study(big, {}, budget_minutes=0).config
    assert cfg.ddpm.overrides["unet"]["preset"] == "cpu-wide"
    assert cfg.ddpm.overrides["train"]["max_steps"] == 4000


def test_time_budget_lowers_sizes_but_never_explicit_values() -> None:
    calls = []

    def slow(cfg):  # each stage measured at twice the whole budget
        calls.append(cfg)
        return {"stages": [{"stage": s, "seconds": 1800.0}
                           for s in ("DDPM training", "sampling", "classifiers")]}

    sized = size_study(FACTS, {}, 15, measure=slow).config
    assert len(calls) == 1
    assert sized.ddpm.overrides["train"]["max_steps"] == 100  # 500 x 360 / 1800
    assert sized.classifier.train.max_epochs == 3  # 15 x 360 / 1800
    assert sized.synthetic.n_per_class < 270
    user = {"seeds": 5, "ddpm": {"overrides": {"train": {"max_steps": 777}}}}
    mine = size_study(FACTS, user, 15, measure=slow)
    assert mine.config.seeds == 5 and mine.config.ddpm.overrides["train"]["max_steps"] == 777
    assert {c.key: c.source for c in mine.choices}["ddpm.overrides.train.max_steps"] == "you"
    assert mine.config.ddpm.overrides["train"]["warmup_steps"] == 77  # follows your steps


def test_the_default_sizes_follow_the_data_not_this_machine(
    folder: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    """Without --budget-minutes a slow machine changes no size (same command, same study); it
    only hears that the estimate is long and how to fit it."""
    import synthmix.experiment.estimate as estimate

    real_estimate = estimate.estimate_study

    def slow(cfg, base_dir):  # type: ignore[no-untyped-def]
        est = real_estimate(cfg, base_dir)
        return {**est, "total_seconds": 3600.0}

    monkeypatch.setattr(estimate, "estimate_study", slow)
    assert main(["experiment", "--data", f"imagefolder:{folder}", "--estimate"]) == 0
    out = capsys.readouterr().out
    rules = {c.key: c.value for c in size_study(_facts_of(folder), {}, budget_minutes=0).choices}
    assert f"ddpm.overrides.train.max_steps = {rules['ddpm.overrides.train.max_steps']}:" in out
    assert f"synthetic.n_per_class = {rules['synthetic.n_per_class']}:" in out
    assert "lowered" not in out and "--budget-minutes 15 lowers the sizes" in out


def _facts_of(folder: Path) -> DataFacts:
    from synthmix.commands.sized import _facts

    return _facts(f"imagefolder:{folder}", None)


def _break(root: Path, damage: str) -> str:
    """Damage a fresh folder; returns what the one error line must name."""
    if damage == "corrupt":
        bad = root / "train" / "emu" / "007.png"
        bad.write_bytes(bad.read_bytes()[:40])
        return "007.png: unreadable image"
    if damage == "no-test-class":
        for f in (root / "test" / "Żółw").iterdir():
            f.unlink()
        (root / "test" / "Żółw").rmdir()
        return "class 'Żółw' has no images in test/"
    for f in sorted(p for p in (root / "train" / "emu").iterdir()
                    if p.suffix in (".png", ".jpg"))[2:]:
        f.unlink()
    return "too few training images in class 'emu' (2)"


@pytest.mark.parametrize("damage", ["corrupt", "no-test-class", "two-images"])
def test_a_broken_folder_gets_one_clear_line(tmp_path: Path, damage: str,
                                             capsys: pytest.CaptureFixture) -> None:
    root = write_folder(tmp_path / "f", n_train=32, n_test=2)
    expected = _break(root, damage)
    rc = main(["experiment", "--data", f"imagefolder:{root}", "--estimate"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and "Traceback" not in err[0]
    assert err[0].startswith("synthmix: error: ") and expected in err[0]
    info_rc = main(["data", "info", f"imagefolder:{root}"])
    captured = capsys.readouterr()
    if damage == "corrupt":  # cannot be read: refused, the file named
        assert info_rc == 2 and expected in captured.err
    elif damage == "no-test-class":  # described as it is, with what stops a study
        assert info_rc == 0 and f"cannot run a study: {expected}" in captured.out
    else:
        assert info_rc == 0 and re.search(r"\n  emu +2 +2\n", captured.out)


def test_copies_are_shown_beside_the_answer_only_when_flagged(tmp_path: Path) -> None:
    clean = {"memorisation": {"exact_copies": 0, "fraction_closer_than_any_real": 0.0,
                              "mean_ratio_synthetic_to_real": 1.02}}
    assert memorisation_flags(clean) == [] and guard_section(tmp_path, {"quality": clean}) == []
    copied = {"memorisation": {**clean["memorisation"], "exact_copies": 3,
                               "mean_ratio_synthetic_to_real": 0.5}}
    flags = memorisation_flags(copied)
    assert len(flags) == 2 and "3 synthetic images are exact copies" in flags[0]
    text = " ".join(str(getattr(b, "text", "")) for b in
                    guard_section(tmp_path, {"quality": copied}))
    assert "may be copying its training images" in text


def test_a_small_ddpm_half_for_its_budget_is_warned() -> None:
    small = DataFacts("imagefolder:/x/few", ("a", "b", "c"), (100, 100, 40), (20,) * 3,
                      Counter({(16, 16): 300}), 1)
    sizing = size_study(small, {}, budget_minutes=0)
    # 240 x 0.5 x 0.7 = 84 DDPM images (validation share 0.3 for the small class) at the
    # 500-step floor, batch 64: ~381 passes
    assert any("show each about 381 times" in w for w in sizing.warnings), sizing.warnings
    assert any("'c' (40)" in w for w in sizing.warnings)
    assert "imbalanced (largest / smallest 2.5x)" in sizing.notes[0]
    assert not any("show each" in w for w in size_study(FACTS, {}, 0).warnings)


def test_data_info_reads_a_tar_of_the_folder(folder: Path, tmp_path: Path,
                                             capsys: pytest.CaptureFixture) -> None:
    import tarfile

    with tarfile.open(tmp_path / "photos.tar.gz", "w:gz") as tar:
        tar.add(folder, arcname="my photos")
    assert main(["data", "info", f"imagefolder:{tmp_path / 'photos.tar.gz'}"]) == 0
    out = capsys.readouterr().out
    assert f"  {'Żółw':<12}      32       4" in out and "README.txt: not an image" in out

"""A study sized from its data: `synthmix experiment --data imagefolder:PATH`.

The rules, written once here and stated beside each size in plan.json and the report:
- image size: the largest of 8, 16 up to the median short side (data/describe.py);
  channels: colour if any image is in colour, so grey and colour folders load;
- validation share: 0.1, raised (to at most 0.3) until the smallest class keeps about 6
  validation images in each half;
- DDPM: batch 128 (fewer if the DDPM half is smaller), steps for about DDPM_PASSES passes over
  the DDPM half's training images, within [DDPM_MIN_STEPS, DDPM_MAX_STEPS]; network `cpu`
  (1.2M parameters), `cpu-wide` from WIDE_FROM training images;
- synthetic images per class: SYNTHETIC_PER_REAL x the real pool per class, within
  [SYNTHETIC_MIN, SYNTHETIC_MAX]; one synthetic set per repeat, so the +- covers the set's draw;
- classifiers: an epoch is one pass over the real pool (10 to 100 steps of 64), at most
  CLASSIFIER_EPOCHS epochs with early stopping;
- learning curve: the real fractions that keep at least 5 images of the smallest class;
- repeats: REPEATS.
These rules depend on the data alone, so the same command sizes the same study on any machine.
Only when asked (`--budget-minutes M`) is a time budget split between the stages
(BUDGET_SHARES), and the DDPM steps, the synthetic images per class and the classifier epochs
lowered to fit it at the rates measured here by the estimator. Either way the config records
steps, images and epochs, never minutes, so the same study.yaml trains the same models on any
machine. A value given in the user's YAML or with --set is never changed.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from synthmix.config import deep_merge, from_dict, read_yaml
from synthmix.data.describe import FolderSummary, suggest_image_size
from synthmix.errors import DataError
from synthmix.experiment.config import StudyConfig

FOLDER_RECIPE = Path(__file__).with_name("folder.yaml")
REPEATS = 3
DDPM_PASSES = 100  # the demo's budget: 500 steps of 128 on ~650 digits
DDPM_MIN_STEPS, DDPM_MAX_STEPS, DDPM_BATCH = 500, 4000, 128
WIDE_FROM = 5000
SYNTHETIC_PER_REAL, SYNTHETIC_MIN, SYNTHETIC_MAX = 2, 50, 1000
TUNE_PER_CLASS = 40
CLASSIFIER_EPOCHS, CLASSIFIER_BATCH = 15, 64
WORTH_FRACTIONS = (0.05, 0.1, 0.25, 0.5, 1.0)
MIN_TRAIN_PER_CLASS = 30  # refused below: Exp 4 needs 10% of the pool to hold every class
FEW_PER_CLASS = 50  # warned below
FEW_TEST_PER_CLASS = 10
PASSES_WARN = 200  # passes over the DDPM half above which copies become likely
BUDGET_SHARES = {"DDPM training": 0.4, "sampling": 0.2, "classifiers": 0.4}
DEFAULT_BUDGET_MINUTES = 15.0


@dataclass(frozen=True)
class DataFacts:
    """What the sizing rules read from a data set."""

    dataset: str
    class_names: tuple[str, ...]
    train_per_class: tuple[int, ...]
    test_per_class: tuple[int, ...]
    sizes: Counter[tuple[int, int]]  # (width, height) -> images
    channels: int

    @property
    def n_train(self) -> int:
        return sum(self.train_per_class)


@dataclass(frozen=True)
class Choice:
    key: str  # dotted config key
    value: Any
    rule: str
    source: str = "data"  # "data", "time budget" or "you" (an explicit value)


@dataclass
class Sizing:
    config: StudyConfig
    choices: list[Choice]
    warnings: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    sized: dict[str, Any] = field(default_factory=dict)  # the sized values (nested)

    def record(self) -> dict[str, Any]:
        """plan.json's `sizing` entry (the report reads it)."""
        return {"choices": [vars(c) for c in self.choices], "warnings": self.warnings,
                "notes": self.notes, "sized": self.sized}


def facts_from_folder(dataset: str, s: FolderSummary) -> DataFacts:
    problems = s.problems()
    if problems:
        raise DataError("; ".join(problems), path=s.source,
                        hint="see `synthmix data info " + dataset + "`")
    return DataFacts(dataset, tuple(s.classes), tuple(s.counts["train"][c] for c in s.classes),
                     tuple(s.counts["test"][c] for c in s.classes), s.sizes, s.channels)


def facts_from_arrays(dataset: str, raw: Any) -> DataFacts:
    """Facts of a named data set (uint8 arrays of one size)."""
    k = raw.num_classes
    h, w, c = raw.image_shape
    return DataFacts(dataset, tuple(raw.class_names),
                     tuple(int(n) for n in raw.train.class_counts(k)),
                     tuple(int(n) for n in raw.test.class_counts(k)),
                     Counter({(w, h): len(raw.train) + len(raw.test)}), c)


def _put(tree: dict[str, Any], key: str, value: Any) -> None:
    *parents, last = key.split(".")
    for p in parents:
        tree = tree.setdefault(p, {})
    tree[last] = value


def get_key(tree: dict[str, Any], key: str) -> Any:
    for p in key.split("."):
        if not isinstance(tree, dict) or p not in tree:
            return None
        tree = tree[p]
    return tree


def _has_key(tree: dict[str, Any], key: str) -> bool:
    *parents, last = key.split(".")
    node: Any = tree
    for p in parents:
        node = node.get(p) if isinstance(node, dict) else None
    return isinstance(node, dict) and last in node


def _clamp(x: float, lo: int, hi: int) -> int:
    return int(min(max(round(x), lo), hi))


def _pow2_at_most(n: int, cap: int, floor: int = 8) -> int:
    b = floor
    while b * 2 <= min(n, cap):
        b *= 2
    return b


def check_facts(f: DataFacts) -> None:
    small = [(c, n) for c, n in zip(f.class_names, f.train_per_class, strict=True)
             if n < MIN_TRAIN_PER_CLASS]
    if small:
        listed = ", ".join(f"{c!r} ({n})" for c, n in small)
        raise DataError(f"too few training images in class {listed}: a study splits each "
                        f"class four ways and needs at least {MIN_TRAIN_PER_CLASS}",
                        hint="add images or leave the class out")


def rule_sizes(f: DataFacts) -> list[Choice]:
    """Every data-derived size with its rule (before the time budget)."""
    check_facts(f)
    smallest = min(f.train_per_class)
    vf = min(0.3, max(0.1, math.ceil(6 / (0.5 * smallest) * 100) / 100))
    n_half = f.n_train * 0.5 * (1 - vf)  # training images of each half
    pool_per_class = n_half / len(f.class_names)
    batch = _pow2_at_most(int(n_half), DDPM_BATCH)
    steps = _clamp(DDPM_PASSES * n_half / batch, DDPM_MIN_STEPS, DDPM_MAX_STEPS)
    n_syn = _clamp(SYNTHETIC_PER_REAL * pool_per_class / 10, SYNTHETIC_MIN // 10,
                   SYNTHETIC_MAX // 10) * 10
    c_steps = _clamp(n_half / CLASSIFIER_BATCH, 10, 100)
    fractions = [x for x in WORTH_FRACTIONS
                 if x == 1.0 or x * smallest * 0.5 * (1 - vf) >= 5]
    size = suggest_image_size(f.sizes)
    return [
        Choice("data.dataset", f.dataset, "the data you gave"),
        Choice("data.image_size", size, "largest of 8, 16 up to the median short side"),
        Choice("data.channels", f.channels, "3 if any image is in colour, else 1"),
        Choice("data.val_fraction", vf, "0.1, raised until the smallest class keeps ~6 "
               "validation images per half"),
        Choice("ddpm.overrides.unet.preset", "cpu" if n_half < WIDE_FROM else "cpu-wide",
               f"cpu below {WIDE_FROM} DDPM training images, else cpu-wide"),
        Choice("ddpm.overrides.train.batch_size", batch, f"{DDPM_BATCH}, or the power of 2 "
               "at most the DDPM half"),
        Choice("ddpm.overrides.train.max_steps", steps, f"~{DDPM_PASSES} passes over the "
               f"DDPM half ({int(n_half)} images), {DDPM_MIN_STEPS} to {DDPM_MAX_STEPS}"),
        Choice("synthetic.n_per_class", n_syn, f"{SYNTHETIC_PER_REAL}x the real pool per "
               f"class (~{int(pool_per_class)}), {SYNTHETIC_MIN} to {SYNTHETIC_MAX}"),
        Choice("synthetic.sets", REPEATS, "one synthetic set per repeat"),
        Choice("classifier.train.steps_per_epoch", c_steps, "one pass over the real pool "
               f"at batch {CLASSIFIER_BATCH}, 10 to 100 steps"),
        Choice("classifier.train.max_epochs", CLASSIFIER_EPOCHS, "at most, early stopping"),
        Choice("worth.real_fractions", fractions, "those keeping >= 5 images of the "
               "smallest class"),
        Choice("worth.synthetic_fractions", [0.25, 0.5, 1.0], "a short synthetic-only curve"),
        Choice("worth.repeats", REPEATS, "as the table's repeats"),
        Choice("seeds", REPEATS, f"{REPEATS} repeats: the least that gives a spread"),
    ]


def derived_sizes(choices: list[Choice], budget_minutes: float) -> list[Choice]:
    """Sizes that follow from other sizes (warm-up, validation points, the safety cap)."""
    value = {c.key: c.value for c in choices}
    steps = value["ddpm.overrides.train.max_steps"]
    out = [
        Choice("tune.n_per_class", min(TUNE_PER_CLASS, value["synthetic.n_per_class"]),
               f"{TUNE_PER_CLASS} per guidance candidate, at most the set's"),
        Choice("ddpm.overrides.train.warmup_steps", steps // 10, "10% of the steps"),
        Choice("ddpm.overrides.train.steps_per_epoch", max(1, steps // 10),
               "10 validation points"),
    ]
    if budget_minutes > 0:
        cap = round(3 * budget_minutes * BUDGET_SHARES["DDPM training"], 1)
        out.append(Choice("ddpm.overrides.train.max_minutes", cap, "a safety cap, 3x the "
                          "DDPM's share of the budget; the report flags it if it fires"))
    return out


def folder_study_name(dataset: str) -> str:
    """folder-<the folder's name> (default study directory studies/<name>)."""
    from synthmix.files import slug

    stem = Path(dataset.split(":", 1)[-1]).name if ":" in dataset else dataset
    return f"folder-{slug(stem) or 'data'}"


def _name_choice(dataset: str) -> Choice:
    return Choice("name", folder_study_name(dataset), "the folder's name")


def _mark_explicit(choices: list[Choice], user: dict[str, Any]) -> list[Choice]:
    return [Choice(c.key, get_key(user, c.key), "set by you", "you")
            if _has_key(user, c.key) else c for c in choices]


def build_config(choices: list[Choice], user: dict[str, Any]) -> StudyConfig:
    """The recipe (folder.yaml), then the sized values, then the user's: the user's win."""
    sized: dict[str, Any] = {}
    for c in choices:
        _put(sized, c.key, c.value)
    return from_dict(StudyConfig, deep_merge(deep_merge(read_yaml(FOLDER_RECIPE), sized), user))


def _scaled(c: Choice, factor: float, floor: int, unit: int = 1) -> Choice:
    value = max(floor, int(c.value * factor) // unit * unit)
    return Choice(c.key, value, f"{c.rule}; lowered from {c.value} to fit the time budget",
                  "time budget")


def time_caps(choices: list[Choice], cfg: StudyConfig, est: dict[str, Any],
              budget_minutes: float) -> list[Choice]:
    """Lower DDPM steps, synthetic images per class and classifier epochs until each stage's
    measured estimate fits its share of the budget (explicit values are left alone)."""
    seconds = {r["stage"]: float(r["seconds"]) for r in est["stages"]}
    share = {k: v * budget_minutes * 60 for k, v in BUDGET_SHARES.items()}
    k = len(est.get("class_names") or []) or 1
    n_main = cfg.synthetic.sets * cfg.synthetic.n_per_class * k
    n_tune = len(cfg.tune.guidance_scales) * cfg.tune.n_per_class * k
    out = []
    for c in choices:
        if c.source == "you":
            out.append(c)
        elif c.key == "ddpm.overrides.train.max_steps" and seconds["DDPM training"] > share[
                "DDPM training"]:
            out.append(_scaled(c, share["DDPM training"] / seconds["DDPM training"], 100))
        elif c.key == "synthetic.n_per_class" and seconds["sampling"] > share["sampling"]:
            per_image = seconds["sampling"] / max(n_main + n_tune, 1)
            fit = (share["sampling"] / per_image - n_tune) / max(n_main, 1)
            out.append(_scaled(c, fit, SYNTHETIC_MIN // 2, 10))
        elif c.key == "classifier.train.max_epochs" and seconds["classifiers"] > share[
                "classifiers"]:
            out.append(_scaled(c, share["classifiers"] / seconds["classifiers"], 3))
        else:
            out.append(c)
    return out


def guardrails(f: DataFacts, cfg: StudyConfig) -> tuple[list[str], list[str]]:
    """(warnings, notes): small classes, a small DDPM half for its budget, class balance."""
    warnings = []
    few = [f"{c!r} ({n})" for c, n in zip(f.class_names, f.train_per_class, strict=True)
           if n < FEW_PER_CLASS]
    if few:
        warnings.append(f"very few training images (under {FEW_PER_CLASS}) in class "
                        f"{', '.join(few)}: the DDPM learns each from about half of them and "
                        "their F1 is noisy")
    few_test = [f"{c!r} ({n})" for c, n in zip(f.class_names, f.test_per_class, strict=True)
                if n < FEW_TEST_PER_CLASS]
    if few_test:
        warnings.append(f"few test images (under {FEW_TEST_PER_CLASS}) in class "
                        f"{', '.join(few_test)}: a class's F1 moves in steps of 1/n")
    train = cfg.ddpm.overrides.get("train") or {}
    steps, batch = train.get("max_steps"), train.get("batch_size")
    n_half = f.n_train * cfg.data.diffusion_fraction * (1 - cfg.data.val_fraction)
    if steps and batch and steps * batch / max(n_half, 1) > PASSES_WARN:
        warnings.append(
            f"the DDPM half holds {int(n_half)} images and {steps} steps of {batch} show each "
            f"about {steps * batch / n_half:.0f} times (over {PASSES_WARN}): a DDPM can copy "
            "its training images at this ratio; the copy check is shown beside the answer")
    ratio = max(f.train_per_class) / max(min(f.train_per_class), 1)
    notes = [("classes are imbalanced (largest / smallest " + f"{ratio:.1f}x)" if ratio >= 1.5
              else f"classes are balanced within {ratio:.1f}x")
             + ": every split is stratified by class, the score is macro-F1 (each class "
               "counts equally) and the report gives per-class F1"]
    return warnings, notes


def size_study(f: DataFacts, user: dict[str, Any], budget_minutes: float = DEFAULT_BUDGET_MINUTES,
               measure: Callable[[StudyConfig], dict[str, Any]] | None = None) -> Sizing:
    """The study for data `f`: rules, then the time budget at measured rates (if `measure`,
    an estimator), then the sizes that follow; `user` (YAML and --set) wins throughout."""
    choices = _mark_explicit([_name_choice(f.dataset), *rule_sizes(f)], user)
    if measure is not None and budget_minutes > 0:
        cfg = build_config(choices, user)
        est = measure(cfg)
        choices = time_caps(choices, cfg, {**est, "class_names": f.class_names},
                            budget_minutes)
    choices += _mark_explicit(derived_sizes(choices, budget_minutes), user)
    cfg = build_config(choices, user)
    warnings, notes = guardrails(f, cfg)
    sized: dict[str, Any] = {}
    for c in choices:
        if c.source != "you":
            _put(sized, c.key, c.value)
    return Sizing(cfg, choices, warnings, notes, sized)


def resume_sizing(record: dict[str, Any], f: DataFacts, user: dict[str, Any]) -> Sizing:
    """The sizes a study directory was started with (plan.json), so a re-run resumes the same
    study instead of re-measuring; the user's values still win."""
    choices = _mark_explicit([Choice(**c) for c in record["choices"]], user)
    cfg = build_config(choices, user)
    warnings, notes = guardrails(f, cfg)
    return Sizing(cfg, choices, warnings, notes, record.get("sized", {}))


def format_sizing(s: Sizing) -> list[str]:
    """The lines printed before a sized study trains."""
    lines = ["sizes chosen from the data (key = value: rule):"]
    for c in s.choices:
        tag = "" if c.source == "data" else f" [{c.source}]"
        lines.append(f"  {c.key} = {c.value}: {c.rule}{tag}")
    lines += [f"WARNING: {w}" for w in s.warnings]
    lines += [f"note: {n}" for n in s.notes]
    return lines

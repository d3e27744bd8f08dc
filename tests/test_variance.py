"""The variance statement is true for every config: the plan warns (one line, before any work)
when repeats would share what the settings seem to vary, and says per cell group what varied."""

from __future__ import annotations

import logging

import pytest

from synthmix.config import load_config
from synthmix.errors import ConfigError
from synthmix.experiment.config import StudyConfig
from synthmix.experiment.plan import plan_study
from synthmix.experiment.variance import variance_by_group

BASE = ["mixes.controls=true", "mixes.real_pool_size=1000", "synthetic.n_per_class=50"]


def _plan(*overrides: str):
    cfg = load_config(StudyConfig, None, [*BASE, *overrides])
    return cfg, plan_study(cfg, 1000, 100, 500, 10)


def _group(v: dict, name: str) -> dict:
    return next(g for g in v["groups"] if name in g["cells"])


def test_each_cell_group_says_what_varied(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        cfg, plan = _plan("seeds=3", "synthetic.sets=3")
    assert plan.warnings == [] and not caplog.records
    v = variance_by_group(cfg, plan)
    # Exp 1 trains on the whole pool: only its classifier seed changes between repeats.
    assert _group(v, "Exp 1")["varied"] == [
        "the classifier seed (initial weights and data order)"]
    assert _group(v, "Exp 1")["cells"] == ["Exp 1"] and _group(v, "Exp 1")["repeats"] == 3
    assert "the real subset drawn from the pool" in _group(v, "real 50% only")["varied"]
    mixed = _group(v, "Exp 3")["varied"]
    assert "the synthetic set (3 sets)" in mixed and not any("DDPM" in x for x in mixed)
    assert "the synthetic images drawn from the set" in mixed  # half of the set
    assert "the synthetic set (3 sets)" in _group(v, "Exp 2")["varied"]
    assert v["fixed"] == ["the DDPM (one trained DDPM)"]
    assert "for Exp 1 (3 repeats): the classifier seed (initial weights and data order) " \
        "only." in v["text"]


def test_cells_on_the_whole_set_do_not_claim_a_synthetic_subset() -> None:
    cfg, plan = _plan("seeds=2", "synthetic.sets=2", "worth.enabled=true",
                      "worth.real_fractions=[0.1,1.0]", "worth.synthetic_fractions=[1.0]")
    v = variance_by_group(cfg, plan)
    whole = _group(v, "100 real + synthetic")["varied"]  # all 500 synthetic images, every time
    assert "the synthetic images drawn from the set" not in whole
    assert "the synthetic set (2 sets)" in whole
    assert _group(v, "1000 real")["cells"] == ["Exp 1", "1000 real"]  # the same run


def test_repeats_sharing_a_set_warn_once_before_any_work(
        caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        cfg, plan = _plan("seeds=3", "synthetic.sets=2", "worth.enabled=true",
                          "worth.repeats=5", "worth.real_fractions=[0.1,1.0]",
                          "worth.synthetic_fractions=[1.0]")
    assert len(plan.warnings) == 1 and len(caplog.records) == 1
    assert "synthetic.sets = 2 < seeds = 3 and worth.repeats = 5" in plan.warnings[0]
    assert "\n" not in caplog.records[0].getMessage()
    v = variance_by_group(cfg, plan)
    assert "the synthetic set (2 sets)" in _group(v, "500 synthetic")["varied"]


def test_ddpm_runs_that_no_set_uses_warn() -> None:
    _, plan = _plan("seeds=2", "synthetic.sets=1", "ddpm.runs=2")
    assert any("every repeat uses DDPM 0" in w for w in plan.warnings)
    cfg, plan = _plan("seeds=2", "synthetic.sets=2", "ddpm.runs=3")
    assert plan.warnings == ["ddpm.runs = 3 > synthetic.sets = 2: DDPMs 2..2 make no set and "
                             "train for nothing"]
    cfg, plan = _plan("seeds=1", "synthetic.sets=1", "ddpm.runs=2")
    v = variance_by_group(cfg, plan)
    assert "the DDPM (DDPM 0 of 2 for every repeat)" in v["fixed"]


def test_the_ddpm_varies_only_where_the_repeats_sets_come_from_different_ddpms() -> None:
    cfg, plan = _plan("seeds=2", "synthetic.sets=2", "ddpm.runs=2")
    v = variance_by_group(cfg, plan)
    assert "the DDPM (2 DDPMs)" in _group(v, "Exp 3")["varied"]
    assert not any("DDPM" in x for x in _group(v, "Exp 1")["varied"])
    assert v["fixed"] == []


def test_seed_rule_1_with_several_sets_is_refused() -> None:
    with pytest.raises(ConfigError, match="seed_rule 1 with synthetic.sets = 2"):
        _plan("seeds=2", "synthetic.sets=2", "synthetic.seed_rule=1")
    _plan("seeds=1", "synthetic.sets=1", "synthetic.seed_rule=1")  # one set: nothing to repeat

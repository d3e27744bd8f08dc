from dataclasses import dataclass, field
from typing import Literal

import pytest

from synthmix.config import dump_yaml, from_dict, load_config, parse_overrides, to_dict
from synthmix.errors import ConfigError
from synthmix.runs.ddpm import DDPMConfig


@dataclass(frozen=True)
class Inner:
    lr: float = 1e-3
    mults: tuple[int, ...] = (1, 2)
    mode: Literal["a", "b"] = "a"


@dataclass(frozen=True)
class Outer:
    name: str = "x"
    inner: Inner = field(default_factory=Inner)
    limit: int | None = None


def test_defaults_and_nested_values():
    cfg = from_dict(Outer, {"inner": {"lr": 2, "mults": [1, 2, 4]}, "limit": 5})
    assert cfg.inner.lr == 2.0 and isinstance(cfg.inner.lr, float)
    assert cfg.inner.mults == (1, 2, 4)
    assert cfg.limit == 5 and cfg.name == "x"


@pytest.mark.parametrize(
    "data, words",
    [
        ({"inner": {"lrr": 1}}, ["lrr", "inner"]),
        ({"nme": "y"}, ["nme"]),
        ({"inner": {"mode": "c"}}, ["inner.mode", "'c'"]),
        ({"limit": "ten"}, ["limit"]),
        ({"inner": {"lr": True}}, ["inner.lr"]),
        ({"inner": 3}, ["inner"]),
    ],
)
def test_bad_values_are_errors_that_name_the_key(data, words):
    with pytest.raises(ConfigError) as e:
        from_dict(Outer, data)
    for w in words:
        assert w in str(e.value)


def test_overrides_and_yaml_round_trip(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("name: base\ninner: {lr: 0.5}\n")
    cfg = load_config(Outer, path, ["inner.mults=[3, 4]", "limit=null", "inner.mode=b"])
    assert cfg.name == "base" and cfg.inner.lr == 0.5
    assert cfg.inner.mults == (3, 4) and cfg.inner.mode == "b" and cfg.limit is None
    path.write_text(dump_yaml(cfg))
    assert load_config(Outer, path) == cfg
    assert to_dict(cfg)["inner"]["mults"] == [3, 4]


def test_override_syntax_errors():
    with pytest.raises(ConfigError, match="key=value"):
        parse_overrides(["no_equals_sign"])
    with pytest.raises(ConfigError, match="unknown key"):
        load_config(Outer, None, ["inner.nope=1"])


def test_missing_and_invalid_files(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_config(Outer, tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: [unclosed\n")
    with pytest.raises(ConfigError, match="bad.yaml"):
        load_config(Outer, bad)
    listy = tmp_path / "list.yaml"
    listy.write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="mapping"):
        load_config(Outer, listy)


def test_mode_names_like_off_stay_strings(tmp_path):
    # YAML 1.1 reads off/on/yes/no as booleans; `--set train.amp=off` must mean the mode "off".
    assert parse_overrides(["train.amp=off", "a.b=yes", "a.c=true", "a.d=False"]) == {
        "train": {"amp": "off"},
        "a": {"b": "yes", "c": True, "d": False},
    }
    path = tmp_path / "c.yaml"
    path.write_text("train: {amp: off, channels_last: false}\n")
    assert load_config(DDPMConfig, path).train.amp == "off"

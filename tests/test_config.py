"""Typed config tree: YAML recipe + section.key=value overrides."""

from __future__ import annotations

from pathlib import Path

import pytest

from rtseg.config import TrainConfig, load_config
from rtseg.errors import ConfigError

REPO = Path(__file__).resolve().parents[1]


def test_a_dict_override_merges_into_the_recipes_dict():
    base = load_config(REPO / "configs" / "fcn8s_kitti_road.yaml")
    assert base.model.args["backbone_weights"] == "imagenet"
    cfg = load_config(REPO / "configs" / "fcn8s_kitti_road.yaml", ["model.args.decoder_init=normal"])
    assert cfg.model.args == {**base.model.args, "decoder_init": "normal"}
    # Deeper mappings merge too; a scalar replaces.
    cfg = load_config(None, ["model.args={a: {b: 1, c: 2}}", "model.args.a.b=3", "optim.lr=1e-3"])
    assert cfg.model.args == {"a": {"b": 3, "c": 2}} and cfg.optim.lr == 1e-3


def test_overrides_are_typed_and_unknown_keys_named():
    cfg = load_config(None, ["data.crop=[64,96]", "run.amp=false", "schedule.epochs=3"])
    assert isinstance(cfg, TrainConfig) and cfg.data.crop == [64, 96] and cfg.run.amp is False
    with pytest.raises(ConfigError, match="unknown config key 'optim.lrate'.*lr"):
        load_config(None, ["optim.lrate=1"])
    with pytest.raises(ConfigError, match="schedule.epochs: expected an integer"):
        load_config(None, ["schedule.epochs=many"])
    with pytest.raises(ConfigError, match="expected section.key=value"):
        load_config(None, ["optim.lr"])
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(REPO / "configs" / "nope.yaml")

"""The run-folder contract: analysis reads a run's config.json only through
:class:`analysis.runconfig.RunConfig`, whose defaults are realnet's (pinned here, key by key)."""
from __future__ import annotations

import dataclasses
import json
import re
import subprocess
from pathlib import Path

import pytest

from analysis.errors import ConfigError
from analysis.runconfig import RunConfig
from realnet.config.train_config import TrainConfig, config_to_dict

ROOT = Path(__file__).resolve().parents[1]


def test_every_default_is_realnets():
    """A field of the contract defaults to what realnet writes for that key, so a run written
    before a key existed reads as realnet would have run it."""
    ours = RunConfig.from_dict({})
    theirs = TrainConfig()
    checked = 0
    for section in ("predictor", "method", "optim", "model", "eval", "train", "data"):
        for f in dataclasses.fields(getattr(ours, section)):
            assert getattr(getattr(ours, section), f.name) == getattr(getattr(theirs, section), f.name), \
                f"{section}.{f.name}"
            checked += 1
    assert checked >= 30 and ours.seed is None


def test_a_written_config_reads_back_and_a_wrong_type_is_named():
    cfg = config_to_dict(TrainConfig())
    cfg["predictor"].update(name="directcopy", eps_copy=0.3, freq=2)
    c = RunConfig.from_dict(cfg)
    assert (c.predictor.name, c.predictor.eps_copy, c.predictor.freq) == ("directcopy", 0.3, 2)
    assert c.predictor_weight_decay == cfg["optim"]["weight_decay"]  # unset: the optimiser's
    assert c.raw is cfg
    older = json.loads(json.dumps(cfg))
    del older["predictor"]["partitions"], older["eval"]  # written before these existed
    o = RunConfig.from_dict(older)
    assert o.predictor.partitions == 1 and o.eval.collapse_rank == 1.5
    for key, bad in (("predictor.freq", "2"), ("optim.lr", True), ("method.symmetric", 1),
                     ("optim.weight_decay", float("nan"))):
        broken = json.loads(json.dumps(cfg))
        sec, name = key.split(".")
        broken[sec][name] = bad
        with pytest.raises(ConfigError, match=re.escape(key)):
            RunConfig.from_dict(broken)
    with pytest.raises(ConfigError, match="predictor must be a table"):
        RunConfig.from_dict({"predictor": []})


def test_analysis_reads_no_config_key_outside_the_contract():
    """No code in analysis/ or figures/ indexes config.json's sections by string: the walk of a
    run's config ends in analysis/runconfig.py (before this contract: 51 such reads in 9 files).
    (``r.get("predictor")`` reads a scorecard row, not a config.)"""
    pattern = (r'(?<!\br)\.get\("(predictor|method|optim|model|eval|train|data)"|'
               r'\["(predictor|method|optim|model|eval|train|data)"\]|\bpc\.get\(|\bcfg\.get\(|config\.get\(')
    hits = [f"{p.relative_to(ROOT)}:{i}" for folder in ("analysis", "figures")
            for p in sorted((ROOT / folder).glob("*.py")) if p.name != "runconfig.py"
            for i, line in enumerate(p.read_text().splitlines(), 1) if re.search(pattern, line)]
    assert hits == []

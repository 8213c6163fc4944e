"""Run configuration: paper defaults, TOML loading, typed overrides, refusal of bad keys/values."""
from __future__ import annotations

import json

import pytest

from realnet.config.diff import config_diff
from realnet.config.train_config import (TrainConfig, all_keys, apply_overrides, config_from_dict,
                                         config_to_dict, load_config, resolve_config_path,
                                         shipped_configs)


def test_defaults_are_the_papers_recipe():
    # THEORY.md section 4, value by value.
    c = TrainConfig().validate()
    assert (c.method.name, c.method.ema, c.method.ema_schedule, c.method.loss) == \
        ("byol", 0.996, "constant", "cosine")
    assert c.method.symmetric and c.method.stop_grad and c.method.target_init_copy
    assert (c.optim.name, c.optim.lr, c.optim.momentum, c.optim.weight_decay, c.optim.schedule) \
        == ("sgd", 0.03, 0.9, 4e-4, "constant")
    assert (c.train.batch_size, c.train.epochs, c.train.steps) == (128, 100.0, None)
    assert (c.model.arch, c.model.stem, c.model.width) == ("resnet18", "cifar", 1.0)
    assert (c.model.proj_hidden_dim, c.model.proj_dim) == (512, 128)
    assert (c.predictor.name, c.predictor.rho, c.predictor.eps, c.predictor.freq) == \
        ("directpred", 0.3, 0.1, 1)


def test_toml_is_loaded_typed_and_overrides_apply(tmp_path):
    p = tmp_path / "run.toml"
    p.write_text('seed = 3\n[data]\ndataset = "digits"\n[optim]\nlr = 1\n'
                 '[train]\nsteps = 7\n[augment]\ncrop_scale = [0.3, 1.0]\n')
    c = load_config(p, ["optim.momentum=0.5", "method.target_init_copy=false",
                        "augment.flip_p=0", "eval.probe_lr=none", "predictor.name=linear"])
    assert c.seed == 3 and c.data.dataset == "digits"
    assert isinstance(c.optim.lr, float) and c.optim.lr == 1.0  # TOML int widened to float
    assert c.optim.momentum == 0.5 and c.method.target_init_copy is False
    assert c.augment == {"crop_scale": (0.3, 1.0), "flip_p": 0.0}
    assert c.augment_config().crop_scale == (0.3, 1.0)
    assert (c.train.steps, c.train.epochs) == (7, None)  # a [train] table with steps only
    assert c.eval.probe_lr is None and c.predictor.name == "linear"


def test_steps_and_epochs_overrides_replace_each_other():
    c = load_config("digits", ["train.epochs=2.5"])
    assert (c.train.epochs, c.train.steps) == (2.5, None)
    c = load_config(None, ["train.steps=10"])
    assert (c.train.epochs, c.train.steps) == (None, 10)


def test_both_steps_and_epochs_in_a_file_is_refused(tmp_path):
    p = tmp_path / "both.toml"
    p.write_text("[train]\nsteps = 5\nepochs = 1\n")
    with pytest.raises(ValueError, match=r"train\.steps"):
        load_config(p)


@pytest.mark.parametrize("override, key", [
    ("seed=-1", "seed"),
    ("device=tpu", "device"),
    ("data.dataset=mnist", "data.dataset"),
    ("data.ssl_limit=1", "data.ssl_limit"),
    ("data.image_size=4", "data.image_size"),
    ("model.arch=vgg", "model.arch"),
    ("model.stem=big", "model.stem"),
    ("model.width=0", "model.width"),
    ("model.proj_dim=0", "model.proj_dim"),
    ("method.name=moco", "method.name"),
    ("method.ema=1.5", "method.ema"),
    ("method.ema_schedule=linear", "method.ema_schedule"),
    ("method.loss=l1", "method.loss"),
    ("method.stop_grad=false", "method.stop_grad"),  # byol: no gradient to stop
    ("predictor.name=foo", "predictor.name"),
    ("predictor.rho=1", "predictor.rho"),
    ("predictor.feature_blocks=1000", "predictor.feature_blocks"),  # > model.proj_dim
    ("optim.lr=0", "optim.lr"),
    ("optim.momentum=1", "optim.momentum"),
    ("optim.weight_decay=-1", "optim.weight_decay"),
    ("augment.crop_scale=0.5,2", "augment.crop_scale"),
    ("augment.flip_p=2", "augment.flip_p"),
    ("train.steps=0", "train.steps"),
    ("train.epochs=-1", "train.epochs"),
    ("train.batch_size=1", "train.batch_size"),
    ("train.batch_size=abc", "train.batch_size"),
    ("train.bf16=maybe", "train.bf16"),
    ("eval.knn_every=-1", "eval.knn_every"),
    ("eval.knn_temperature=0", "eval.knn_temperature"),
    ("eval.collapse_rank=0.5", "eval.collapse_rank"),
    ("eval.collapse_std_fraction=1", "eval.collapse_std_fraction"),
    ("log.every=0", "log.every"),
    ("log.probe_size=1", "log.probe_size"),
    ("log.probe_size=9000", "log.probe_size"),
    ("augment.jitter=[0.4,0.4,0.4,0.9]", "augment.jitter"),
    ("augment.blur_kernel=4", "augment.blur_kernel"),
    ("augment.crop_ratio=[2.0,1.0]", "augment.crop_ratio"),
    ("optim.schedule=step", "optim.schedule"),
    ("predictor.cj=1", "predictor.cj"),
])
def test_each_bad_value_is_refused_naming_its_key(override, key):
    """One message style: ``key=value is invalid: allowed ...``."""
    with pytest.raises(ValueError) as err:
        load_config("digits", [override])
    assert str(err.value).startswith(f"{key}=") and " is invalid: allowed " in str(err.value)


def test_every_key_declares_its_allowed_values_next_to_its_default():
    import dataclasses
    import typing

    from realnet.data.augment import AugmentConfig
    from realnet.config.ranges import allowed_of

    free = {"data.root"}  # any path
    sections = {"": TrainConfig, "augment.": AugmentConfig}
    for name, tp in typing.get_type_hints(TrainConfig).items():
        if dataclasses.is_dataclass(tp):
            sections[name + "."] = tp
    missing = [prefix + f.name for prefix, cls in sections.items() for f in dataclasses.fields(cls)
               if not dataclasses.is_dataclass(typing.get_type_hints(cls)[f.name])
               and prefix + f.name != "augment" and prefix + f.name not in free
               and allowed_of(cls, f.name) is None]
    assert missing == []
    # and each default is itself allowed
    for prefix, cls in sections.items():
        for f in dataclasses.fields(cls):
            allowed = allowed_of(cls, f.name)
            if allowed is not None:
                assert allowed.ok(f.default), prefix + f.name


@pytest.mark.parametrize("override", ["predictor.hidden_dim=64", "predictor.eps=0.2",
                                      "predictor.optimal_reg=0.1", "predictor.bias=true"])
def test_a_knob_of_another_predictor_is_refused_naming_who_takes_it(override):
    key = override.split("=")[0]
    with pytest.raises(ValueError) as err:
        load_config("digits", ["predictor.name=directcopy", override])
    assert str(err.value).startswith(key + "=") and "directcopy" in str(err.value)


@pytest.mark.parametrize("override, suggestion", [
    ("optim.lrr=1", "optim.lr"),
    ("optm.lr=1", "optim.lr"),
    ("lr=1", "optim.lr"),
    ("augment.crop_scal=0.2,1", "augment.crop_scale"),
    ("predictor.nme=linear", "predictor.name"),
])
def test_unknown_keys_are_refused_with_a_close_match(override, suggestion):
    with pytest.raises(ValueError, match="unknown key") as err:
        load_config("digits", [override])
    assert f"did you mean '{suggestion}'" in str(err.value)


def test_unknown_toml_key_and_wrong_type_are_refused(tmp_path):
    p = tmp_path / "bad.toml"
    p.write_text("[optim]\nlearning_rate = 0.1\n")
    with pytest.raises(ValueError, match=r"optim\.learning_rate"):
        load_config(p)
    p.write_text('[train]\nbatch_size = "big"\n')
    with pytest.raises(ValueError, match=r"train\.batch_size"):
        load_config(p)
    p.write_text("[train\n")
    with pytest.raises(ValueError, match="not valid TOML"):
        load_config(p)


def test_malformed_overrides_are_refused():
    for bad in ("optim.lr", "optim=3", "seed.x=1", "augment.flip_p.x=1"):
        with pytest.raises(ValueError):
            apply_overrides(TrainConfig(), [bad])


def test_every_shipped_config_validates_and_round_trips_through_json():
    names = shipped_configs()
    want = {f"{ds}_{p}" for ds in ("cifar10", "stl10") for p in (
        "mlp", "linear", "linear_sym", "directpred", "directpred_freq5", "directcopy", "optimal")}
    want |= {f"fmnist_{p}" for p in ("directpred", "directcopy", "mlp", "linear", "nopred",
                                     "nostopgrad")} | {"digits"}
    assert want <= set(names)
    for name in names:
        c = load_config(name)
        again = config_from_dict(json.loads(json.dumps(config_to_dict(c)))).validate()
        assert config_diff(c, again) == [], name
    assert load_config("stl10_directpred_freq5").predictor.freq == 5
    assert load_config("fmnist_nopred").predictor.name == "identity"
    nsg = load_config("fmnist_nostopgrad")
    assert (nsg.method.name, nsg.method.stop_grad) == ("simsiam", False)


def test_config_name_lookup_suggests_the_closest_shipped_config():
    assert resolve_config_path("digits").name == "digits.toml"
    with pytest.raises(ValueError, match="did you mean 'digits'"):
        resolve_config_path("digit")


def test_all_keys_lists_every_settable_key():
    keys = all_keys()
    assert {"seed", "optim.lr", "predictor.rho", "augment.crop_scale", "train.steps"} <= set(keys)
    c = TrainConfig()
    for k in keys:  # every listed key is settable by an override of its current value
        if k.startswith("augment."):
            continue
        section, _, name = k.rpartition(".")
        obj = c
        for part in filter(None, section.split(".")):
            obj = getattr(obj, part)
        assert hasattr(obj, name), k


def test_base_key_merges_tables_and_refuses_cycles(tmp_path):
    from realnet.config.train_config import load_config

    (tmp_path / "parent.toml").write_text('seed = 4\n[optim]\nlr = 0.05\nmomentum = 0.8\n')
    (tmp_path / "child.toml").write_text('base = "parent.toml"\n[optim]\nlr = 0.01\n')
    cfg = load_config(tmp_path / "child.toml")
    assert (cfg.seed, cfg.optim.lr, cfg.optim.momentum) == (4, 0.01, 0.8)  # merged key by key
    shipped = tmp_path / "on_shipped.toml"
    shipped.write_text('base = "digits"\n[train]\nsteps = 3\n')
    assert load_config(shipped).data.dataset == "digits"
    (tmp_path / "a.toml").write_text('base = "b.toml"\n')
    (tmp_path / "b.toml").write_text('base = "a.toml"\n')
    with pytest.raises(ValueError, match="cycle"):
        load_config(tmp_path / "a.toml")


def test_overrides_are_toml_literals_merged_before_one_build():
    cfg = load_config("digits", ["augment.crop_scale=[0.3, 1.0]", 'predictor.name="linear"',
                                 "device=cpu", "train.epochs=2.5", "eval.probe_lr=none",
                                 "train.bf16=auto", "optim.lr=3e-2"])
    assert cfg.augment_config().crop_scale == (0.3, 1.0)
    assert cfg.predictor.name == "linear" and cfg.device == "cpu"
    assert (cfg.train.epochs, cfg.train.steps) == (2.5, None)  # epochs cleared the file's steps
    assert cfg.eval.probe_lr is None and cfg.train.bf16 is None and cfg.optim.lr == 0.03
    with pytest.raises(ValueError, match="train.bf16"):
        load_config("digits", ["train.bf16=1"])  # booleans are true / false


def test_overrides_may_follow_the_options_and_a_section_key_is_not_guessed_elsewhere(capsys):
    """``train ... --quiet method.name=simclr`` (an override after the options) is read as an
    override; a misspelt key inside a section lists that section's keys instead of guessing a
    key of another section (``train.foo`` is not ``predictor.floor``)."""
    from realnet.__main__ import main

    assert main(["print-config", "--config", "digits", "method.name=simclr"]) == 0
    first = capsys.readouterr().out
    assert 'name = "simclr"' in first and 'name = "identity"' in first  # its one predictor
    assert main(["print-config", "optim.lr=0.05", "--config", "digits", "seed=3"]) == 0  # split
    text = capsys.readouterr().out
    assert "lr = 0.05" in text and "seed = 3" in text
    assert main(["print-config", "--config", "digits", "train.foo=1"]) == 2
    err = capsys.readouterr().err
    assert "unknown key 'train.foo'" in err and "predictor.floor" not in err and "batch_size" in err


def test_the_papers_configs_train_in_fp32_unless_asked():
    """The paper trains in fp32: every shipped CIFAR-10 / STL-10 config pins train.bf16=false
    (auto would turn bf16 autocast on on CUDA); train.bf16=true opts in."""
    from realnet.config.train_config import shipped_configs

    paper = [n for n in shipped_configs() if n.startswith(("cifar10_", "stl10_"))]
    assert len(paper) == 14
    for name in paper:
        assert load_config(name).train.bf16 is False, name
        assert load_config(name, ["train.bf16=true"]).train.bf16 is True


def test_configs_lists_each_shipped_config_with_what_it_is(capsys):
    from realnet.__main__ import main
    from realnet.config.train_config import shipped_configs

    assert main(["configs"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert [ln.split()[0] for ln in lines] == shipped_configs()
    descs = {ln.split()[0]: ln.split(None, 1)[1] for ln in lines}
    assert all(len(d) >= 20 for d in descs.values())
    assert "DirectCopy" in descs["cifar10_directcopy"] and "symmetrised" in descs["stl10_linear_sym"]


def test_print_config_shows_every_key_and_reads_back(capsys, tmp_path):
    """Keys whose default is none/auto (train.bf16, data.root, ...) show as comments naming them,
    and the printed TOML loads back to the same config."""
    from realnet.__main__ import main
    from realnet.config.train_config import all_keys, config_to_dict

    assert main(["print-config", "--config", "fmnist_directpred"]) == 0
    text = capsys.readouterr().out
    for key in ("bf16", "channels_last", "threads", "epochs", "temperature", "root"):
        assert f"# {key} = none" in text, key
    shown = {ln.lstrip("# ").split(" = ")[0] for ln in text.splitlines() if " = " in ln}
    assert {k.split(".")[-1] for k in all_keys() if not k.startswith("augment.")} <= shown  # augment: overrides only
    (tmp_path / "c.toml").write_text(text)
    assert config_to_dict(load_config(tmp_path / "c.toml")) == config_to_dict(load_config("fmnist_directpred"))


def test_a_key_inert_in_both_configs_is_no_result_change():
    """A run saved before ``predictor.partition_seed``'s default changed (0 -> None, the run's seed)
    still matches its config when it has one partition (no hyperplanes are drawn), so a sweep does
    not call its folder a conflict; with 2 partitions the seed matters and the change is named."""
    from realnet.config.diff import result_changes
    from realnet.config.train_config import load_config

    new = load_config("fmnist_directpred", [])
    old = load_config("fmnist_directpred", ["predictor.partition_seed=0", "predictor.block_seed=7"])
    assert config_diff(old, new) == ["predictor.block_seed", "predictor.partition_seed"]
    assert result_changes(old, new) == []
    two = ["predictor.partitions=2", "predictor.freq=1"]
    assert result_changes(load_config("fmnist_directpred", two + ["predictor.partition_seed=0"]),
                          load_config("fmnist_directpred", two)) == ["predictor.partition_seed"]

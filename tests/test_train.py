"""The training loop on the bundled digits data at a tiny width: the run folder, exact resume,
NaN stop, the CLI and the model assembly."""
from __future__ import annotations

import importlib.metadata
import json

import numpy as np
import pytest
import torch

from realnet.__main__ import EXIT_BAD_CONFIG, EXIT_NON_FINITE, main
from realnet.config.train_config import load_config
from realnet.data.datasets import dataset_spec
from realnet.methods.losses import byol_cosine
from realnet.methods.losses import ssl_loss
from realnet.nets.ssl_model import build_ssl_model
from realnet.training.checkpoint import CHECKPOINT
from realnet.data.pools import BatchOrder
from realnet.training.failures import NonFiniteError
from realnet.training.trainer import train

# 8 steps of batch 32 on 8x8 digits with a 4-channel ResNet-18: a few seconds per run.
TINY = ["train.steps=8", "train.batch_size=32", "model.width=0.0625", "model.proj_hidden_dim=32",
        "model.proj_dim=8", "log.every=2", "log.spectra_every=4", "log.checkpoint_every=3",
        "log.probe_size=64", "eval.knn_every=4", "eval.knn_k=10", "eval.probe_epochs=3",
        "data.train_limit=300", "data.test_limit=100"]
SUMMARY_KEYS = {"knn_top1", "linear_top1", "linear_top1_random_init", "linear_top1_pixels", "effective_rank", "collapsed",
                "wall_time_s", "steps", "images_per_s", "spectra", "normalised_std"}


@pytest.fixture(scope="module")
def full_run(tmp_path_factory):
    """One uninterrupted run through the CLI (shared by the tests below)."""
    out = tmp_path_factory.mktemp("full")
    assert main(["train", "--config", "digits", *TINY, "--out", str(out), "--quiet"]) == 0
    return out


def _weights(folder):
    return torch.load(folder / CHECKPOINT, weights_only=True)["model"]


def _numbers(path, drop=("images_per_s",)):
    return [{k: v for k, v in json.loads(ln).items() if k not in drop}
            for ln in path.read_text().splitlines()]


def test_run_folder_holds_every_file(full_run):
    for name in ("config.json", "run.json", "metrics.jsonl", "spectra.jsonl", "summary.json",
                 str(CHECKPOINT)):
        assert (full_run / name).is_file(), name
    info = json.loads((full_run / "run.json").read_text())  # what the numbers depend on
    env = info["environment"]
    assert env["packages"]["torch"] == torch.__version__.split("+")[0]
    for name in ("numpy", "scipy", "sympy", "matplotlib", "numba", "scikit-learn", "pillow"):
        assert env["packages"][name] == importlib.metadata.version(name), name
    assert env["cpu_capability"] == torch.backends.cpu.get_cpu_capability()
    # auto numerics: bf16 where the CPU has it natively; channels_last settled off on every CPU,
    # as width 0.0625's first shortcut has 4 input channels (realnet.training.runtime.channels_last_hazard)
    assert info["bf16"] == env["cpu_native_bf16"] and info["channels_last"] is False
    summary = json.loads((full_run / "summary.json").read_text())
    assert SUMMARY_KEYS <= set(summary)
    assert summary["steps"] == 8
    # the collapse rule applied to the summary's own numbers (eval.collapse_rank 1.5, the std
    # floor 0.1 / sqrt(d) with d = 8)
    assert summary["normalised_std_floor"] == pytest.approx(0.1 / np.sqrt(8))
    assert summary["collapsed"] == (summary["effective_rank"] < 1.5 or
                                    summary["normalised_std"] < summary["normalised_std_floor"])
    lines = _numbers(full_run / "metrics.jsonl")
    final = [ln for ln in lines if ln.get("final")]
    assert len(final) == 1 and final[0]["knn_top1"] == summary["knn_top1"]  # one final evaluation
    logged = [ln for ln in lines if "loss" in ln]
    assert [ln["step"] for ln in logged] == [2, 4, 6, 8]
    assert all(np.isfinite(ln["loss"]) and ln["lr"] == 0.03 for ln in logged)
    assert [ln["step"] for ln in lines if "knn_top1" in ln] == [4, 8]  # monitor + final
    snaps = sorted(p.name for p in (full_run / "spectra").iterdir())
    assert snaps == ["step_0000000.npz", "step_0000004.npz", "step_0000008.npz"]
    spec_lines = _numbers(full_run / "spectra.jsonl")
    assert [ln["step"] for ln in spec_lines] == [0, 4, 8]
    assert summary["spectra"]["step"] == 8
    assert summary["spectra"]["effective_rank"] == spec_lines[-1]["effective_rank"]
    # DirectPred sets Wp from F every step: it commutes with F and is symmetric (Theorem 3's end
    # point by construction). float32 eigh: a relative error of ~1e-6; 1e-4 leaves a margin.
    assert spec_lines[-1]["relative_commutator"] < 1e-4
    assert spec_lines[-1]["asymmetry"] < 1e-4


def test_eval_command_reproduces_the_summary(full_run):
    # Same checkpoint, same seeded probe, same CPU: the numbers must agree exactly.
    assert main(["eval", str(full_run)]) == 0
    ev = json.loads((full_run / "eval.json").read_text())
    summary = json.loads((full_run / "summary.json").read_text())
    for k in ("knn_top1", "linear_top1", "linear_top1_random_init", "effective_rank"):
        assert ev[k] == summary[k], k
    assert ev["complete"] is True and ev["step"] == 8


def test_killed_run_resumes_to_identical_numbers(full_run, tmp_path):
    class Killed(Exception):
        pass

    def kill_at_5(step):  # after the checkpoint at step 3, before the one at 6
        if step == 5:
            raise Killed

    cfg = load_config("digits", TINY)
    with pytest.raises(Killed):
        train(cfg, tmp_path, quiet=True, on_step=kill_at_5)
    assert torch.load(tmp_path / CHECKPOINT, weights_only=True)["step"] == 3
    # a second, clean interruption by --stop-after (checkpoint written where it stops)
    assert train(load_config("digits", TINY), tmp_path, quiet=True, stop_after=2) is None
    assert torch.load(tmp_path / CHECKPOINT, weights_only=True)["step"] == 5
    summary = train(load_config("digits", TINY), tmp_path, quiet=True)

    a, b = _weights(full_run), _weights(tmp_path)
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a), "weights differ bitwise"
    ref = json.loads((full_run / "summary.json").read_text())
    for k in ("knn_top1", "linear_top1", "linear_top1_random_init", "effective_rank",
              "normalised_std", "collapsed"):
        assert summary[k] == ref[k], k
    assert _numbers(tmp_path / "metrics.jsonl") == _numbers(full_run / "metrics.jsonl")
    assert _numbers(tmp_path / "spectra.jsonl") == _numbers(full_run / "spectra.jsonl")
    # a finished run restarted with the same command does nothing and returns its summary
    again = train(load_config("digits", TINY), tmp_path, quiet=True)
    assert again["linear_top1"] == summary["linear_top1"]


def test_resume_with_a_different_config_is_refused(full_run):
    cfg = load_config("digits", TINY + ["optim.lr=0.05"])
    with pytest.raises(ValueError, match=r"optim\.lr"):
        train(cfg, full_run, quiet=True)


def test_nan_stops_the_run_and_keeps_the_last_good_checkpoint(tmp_path, monkeypatch):
    import realnet.training.step as tr

    built = []
    real_build = tr.build_ssl_model
    monkeypatch.setattr(tr, "build_ssl_model", lambda cfg, spec, backbone=None: built.append(
        real_build(cfg, spec, backbone)) or built[-1])
    saved = {}

    def poison_after_step_4(step):
        if step == 3:  # the checkpoint of step 3 has just been written
            saved.update(torch.load(tmp_path / CHECKPOINT, weights_only=True)["model"])
        if step == 4:  # a NaN weight: the loss of step 5 is NaN, the checkpoint of 6 never comes
            with torch.no_grad():
                next(built[0].online.parameters()).fill_(float("nan"))

    with pytest.raises(NonFiniteError) as err:
        train(load_config("digits", TINY), tmp_path, quiet=True, on_step=poison_after_step_4)
    assert err.value.step == 5 and "step 5" in str(err.value)
    state = torch.load(tmp_path / CHECKPOINT, weights_only=True)
    assert state["step"] == 3
    assert all(torch.equal(saved[k], state["model"][k]) for k in saved)
    assert not (tmp_path / "summary.json").exists()


def test_cli_exit_codes(tmp_path, capsys):
    # A huge learning rate overflows the weights within a step or two: exit code 3, no summary.
    rc = main(["train", "--config", "digits", *TINY, "optim.lr=1e6", "--out",
               str(tmp_path / "nan"), "--quiet"])
    assert rc == EXIT_NON_FINITE
    assert "non-finite" in capsys.readouterr().err
    assert not (tmp_path / "nan" / "summary.json").exists()
    rc = main(["train", "--config", "digits", "optim.lrr=1", "--out", str(tmp_path / "bad")])
    assert rc == EXIT_BAD_CONFIG
    assert "did you mean 'optim.lr'" in capsys.readouterr().err
    assert not (tmp_path / "bad").exists()  # refused before any work


def test_batch_order_is_a_permutation_per_epoch():
    order = BatchOrder(n=10, batch_size=3, seed=0)
    assert order.steps_per_epoch == 3
    for epoch in range(2):
        seen = torch.cat([order.indices(3 * epoch + i) for i in range(3)])
        assert len(set(seen.tolist())) == 9  # no repeat within an epoch (one image dropped)
    assert not torch.equal(order.permutation(0), order.permutation(1))
    assert torch.equal(BatchOrder(10, 3, 0).indices(4), order.indices(4))  # a function of the step


@pytest.mark.parametrize("method, predictor", [
    ("byol", "directpred"), ("byol", "mlp"), ("simsiam", "identity"), ("simsiam", "mlp"),
    ("byol", "directpred predictor.partitions=3")])
def test_step_loss_is_the_symmetrised_loss_with_the_right_gradient_paths(method, predictor):
    cfg = load_config("digits", TINY + [f"method.name={method}", *f"predictor.name={predictor}".split()])
    model = build_ssl_model(cfg, dataset_spec("digits"))
    torch.manual_seed(1)
    x1, x2 = torch.randn(6, 1, 8, 8), torch.randn(6, 1, 8, 8)
    out = ssl_loss(model, x1, x2, byol_cosine)
    assert out.z_online.shape == out.z_target.shape == (2, 6, 8)
    assert not out.z_online.requires_grad and not out.z_target.requires_grad
    # The loss is loss(p1, t2) + loss(p2, t1) with p = predictor(online), t = target outputs
    # (train-mode BatchNorm, same batches: the same floating-point operations, so 1e-6).
    z1, z2 = model.online(x1), model.online(x2)
    t1, t2 = model.target_encoder(x1), model.target_encoder(x2)
    ref = byol_cosine(model.predictor(z1), t2) + byol_cosine(model.predictor(z2), t1)
    assert out.loss.item() == pytest.approx(ref.item(), abs=1e-6)
    torch.testing.assert_close(out.z_target[1], t2.detach())

    def grads(stop_grad):
        model.zero_grad(set_to_none=True)
        ssl_loss(model, x1, x2, byol_cosine, stop_grad=stop_grad).loss.backward()
        return [p.grad.clone() for p in model.online.parameters()]

    g_sg = grads(True)
    if model.target is None:  # SimSiam: dropping the stop-gradient adds the target-side gradient
        g_nsg = grads(False)
        diff = max((a - b).abs().max().item() for a, b in zip(g_sg, g_nsg))
        assert diff > 1e-6
    else:  # BYOL: the EMA target never gets a gradient and starts as the online copy
        assert all(p.grad is None for p in model.target.parameters())
        a, b = model.online.state_dict(), model.target.state_dict()
        assert all(torch.equal(a[k], b[k]) for k in a)


def test_public_code_target_init_differs_from_the_online_network():
    cfg = load_config("digits", TINY + ["method.target_init_copy=false"])
    model = build_ssl_model(cfg, dataset_spec("digits"))
    a, b = model.online.state_dict(), model.target.state_dict()
    assert not torch.equal(a["backbone.conv1.weight"], b["backbone.conv1.weight"])
    again = build_ssl_model(cfg, dataset_spec("digits"))  # same seed, same networks
    assert torch.equal(again.target.state_dict()["backbone.conv1.weight"],
                       b["backbone.conv1.weight"])


def test_collapse_rule_fires_on_a_point_and_on_a_line_but_not_on_a_cloud():
    from realnet.eval.evaluate import collapse_verdict

    cfg = load_config("digits")  # collapse_rank 1.5, std fraction 0.1 of 1/sqrt(d)
    rng = np.random.default_rng(0)
    n, d = 500, 16
    cloud = rng.normal(size=(n, d))  # normalised std ~ 1/sqrt(d) = 0.25, RankMe ~ d
    point = np.ones((n, d)) + 1e-6 * rng.normal(size=(n, d))  # std ~1e-6: the std arm fires
    line = rng.normal(size=(n, 1)) * rng.normal(size=(1, d))  # rows +-u: std ~ mean|u_i| is
    # large, so only the rank arm (RankMe = 1 up to the 1e-7 offsets) can catch it
    assert not collapse_verdict(cloud, cfg)["collapsed"]
    v_point, v_line = collapse_verdict(point, cfg), collapse_verdict(line, cfg)
    assert v_point["collapsed"] and v_point["normalised_std"] < v_point["normalised_std_floor"]
    assert v_line["collapsed"] and v_line["effective_rank"] < 1.5
    assert v_line["normalised_std"] > v_line["normalised_std_floor"]


def test_plain_progress_lines_when_stderr_is_not_a_terminal(tmp_path):
    """nohup / SLURM: stderr is a file, so the bar becomes plain lines (first and last step at
    least); --quiet and the CI variable silence them."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    env = {k: v for k, v in os.environ.items() if k != "CI"}
    env["OMP_NUM_THREADS"] = "1"
    args = [sys.executable, "-m", "realnet", "train", "--config", "digits", "train.steps=6",
            "eval.linear_probe=false"]
    r = subprocess.run(args + ["--out", str(tmp_path / "a")], capture_output=True, text=True, cwd=root, env=env)
    lines = [ln for ln in r.stderr.splitlines() if ln.startswith("train step")]
    assert r.returncode == 0 and lines[0].startswith("train step 1/6") and lines[-1].startswith("train step 6/6")
    r = subprocess.run(args + ["--out", str(tmp_path / "b"), "--quiet"], capture_output=True, text=True,
                       cwd=root, env=env)
    assert r.returncode == 0 and "train step" not in r.stderr


def test_a_bug_inside_a_step_shows_its_traceback(tmp_path, monkeypatch, capsys):
    """A ValueError raised by the code (not by the user's config) in the middle of training is a
    bug: it propagates with its traceback instead of reading as a one-line bad config (exit 2),
    and the run keeps its last checkpoint."""
    from realnet.training.step import TrainStep

    real_update = TrainStep.update

    def update(self, x1, x2, k, *args, **kwargs):
        if k == 4:
            raise ValueError("a bug in the loss")
        return real_update(self, x1, x2, k, *args, **kwargs)

    monkeypatch.setattr(TrainStep, "update", update)
    out = tmp_path / "run"
    with pytest.raises(ValueError, match="a bug in the loss"):
        main(["train", "--config", "digits", *TINY, "--out", str(out), "--quiet"])
    assert "error:" not in capsys.readouterr().err
    assert torch.load(out / CHECKPOINT, weights_only=True)["step"] == 3  # log.checkpoint_every=3


def test_a_numerical_failure_in_a_snapshot_is_a_divergence_exit_3(tmp_path, monkeypatch, capsys):
    """numpy's LinAlgError in the spectra snapshot (as lr=1e5 gives) is a divergence: exit 3 and
    the last good checkpoint kept, not a bad config (exit 2) that a sweep would retry forever."""
    import realnet.training.trainer as train_mod

    real = train_mod._snapshot

    def snapshot(run):
        if run.step == 4:
            raise np.linalg.LinAlgError("Eigenvalues did not converge")
        return real(run)

    monkeypatch.setattr(train_mod, "_snapshot", snapshot)
    out = tmp_path / "run"
    assert main(["train", "--config", "digits", *TINY, "--out", str(out), "--quiet"]) == EXIT_NON_FINITE
    err = capsys.readouterr().err
    assert "LinAlgError" in err and "step 4" in err
    assert torch.load(out / CHECKPOINT, weights_only=True)["step"] == 3


def test_values_that_can_only_overflow_are_refused_with_their_key():
    for override, key in (("optim.lr=1e39", "optim.lr"), (f"seed={2**62}", "seed"),
                          ("train.threads=100000", "train.threads")):
        with pytest.raises(ValueError, match=f"^{key}=.* is invalid: allowed"):
            load_config("digits", [override])


def test_a_torchrun_rank_other_than_0_prints_no_stopped_line(monkeypatch, capsys, tmp_path):
    """Under torchrun, train() returns None on ranks other than 0 (rank 0 evaluates and prints):
    such a rank prints nothing, where it used to print a false 'stopped after None steps'."""
    import realnet.training.trainer as trainer

    monkeypatch.setattr(trainer, "train", lambda *a, **k: None)
    assert main(["train", "--config", "digits", "--out", str(tmp_path / "r"), "--quiet"]) == 0
    assert capsys.readouterr().out == ""
    assert main(["train", "--config", "digits", "--out", str(tmp_path / "r"), "--quiet",
                 "--stop-after", "3"]) == 0
    assert capsys.readouterr().out.startswith("stopped after 3 steps")

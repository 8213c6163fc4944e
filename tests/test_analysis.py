"""compare / report / collapse diagnostics on synthetic run folders written in the trainer's
exact format (its own config, snapshot and writer functions), with spectra placed exactly where
the theory puts them, so every predicted number is known by hand.

The views are built from an exact orthogonal design (sample moments equal the population ones
to round-off), so the estimated sigma2_j are exact; tolerances are then float64 round-off of
eigendecompositions of 8 x 8 matrices with eigenvalue gaps >= 1e-2 relative: 1e-8.
"""
import json
import math
import subprocess
import sys

import numpy as np
import pytest

from analysis.__main__ import main
from analysis.collapse import collapse_diagnostics
from analysis.compare import compare_run
from analysis.report import report_runs
from analysis.runs import load_run

spectra = pytest.importorskip("realnet.eval.spectra")
rconfig = pytest.importorskip("realnet.config.train_config")

TOL = 1e-8


def _orthogonal(d, seed):
    Q, R = np.linalg.qr(np.random.default_rng(seed).standard_normal((d, d)))
    return Q * np.sign(np.diag(R))


def _views(U, c, sigma2, n=64, seed=0):
    """Two views with exact moments: C_cross = U diag(c) U^T, C_same = U diag(c (1+sigma2)) U^T."""
    d = len(c)
    G, _ = np.linalg.qr(np.random.default_rng(seed).standard_normal((n, 3 * d)))
    G *= math.sqrt(n)
    u, n1, n2 = G[:, :d], G[:, d:2 * d], G[:, 2 * d:]
    sd, sg = np.sqrt(c), np.sqrt(sigma2)
    z1 = (sd * (u + sg * n1)) @ U.T
    z2 = (sd * (u + sg * n2)) @ U.T
    return spectra.ProbeViews(z1, z2, z1.copy())


def _write_run(folder, overrides, seed, snaps, summary):
    """``snaps``: list of (step, views, F or None, Wp or None)."""
    cfg = rconfig.load_config("digits", [f"seed={seed}", "train.steps=100"] + overrides)
    folder.mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps(rconfig.config_to_dict(cfg), indent=2))
    with open(folder / "metrics.jsonl", "w") as fh:
        for k in range(10, 101, 10):
            fh.write(json.dumps({"step": k, "epoch": k / 22, "lr": cfg.optim.lr, "momentum": 0.996,
                                 "loss": -1.5, "images_per_s": 100.0}) + "\n")
        fh.write(json.dumps({"step": 100, "epoch": 100 / 22, "final": True, "knn_top1": 50.0,
                             "effective_rank": 4.0}) + "\n")
    for step, views, F, Wp in snaps:
        spectra.write_snapshot(folder, spectra.snapshot(step, views, F=F, Wp=Wp))
    (folder / "summary.json").write_text(json.dumps({"steps": 100, **summary}))
    return folder


# DirectPred with eps 0.3: kappa = 1.3; sigma2 = 5 collapses (0.3 * 6 >= 1.3);
# sigma2 = 1 ends at e_rel = (1.3/2 - 0.3)^2 = 0.1225, p = 0.65; sigma2 = 0: e_rel 1, p = 1.3
SIG_DP = np.array([0.0, 0.0, 1.0, 1.0, 1.0, 5.0, 5.0, 5.0])
E_REL_DP = np.array([1.0, 1.0, 0.1225, 0.1225, 0.1225, 1e-6, 1e-6, 1e-6])


def _directpred_run(tmp_path, name, seed, perturb_dex=0.0, top1=50.0):
    d = 8
    U = _orthogonal(d, 1)
    c = np.ones(d)
    views = _views(U, c, SIG_DP, seed=2)
    e_final = 10.0 * E_REL_DP * np.where(SIG_DP == 1.0, 10.0 ** perturb_dex, 1.0)
    e_mid = 10.0 * np.where(SIG_DP == 5.0, 1e-2, E_REL_DP)
    wp = lambda e: (U * (np.sqrt(e / e.max()) + 0.3)) @ U.T  # noqa: E731  DirectPred, eps 0.3
    snaps = [(0, views, None, np.random.default_rng(3).standard_normal((d, d))),
             (50, views, (U * e_mid) @ U.T, wp(e_mid)),
             (100, views, (U * e_final) @ U.T, wp(e_final))]
    return _write_run(tmp_path / name, ["predictor.eps=0.3"], seed, snaps,
                      {"linear_top1": top1, "knn_top1": 40.0, "effective_rank": 4.0,
                       "collapsed": False})


# Linear predictor, L2 theory with eta = 4e-4 / (2 x 2) (continuous convention: loss scale 2, two pairs):
# p*_+ = [1 + sqrt(1 - 4 eta (1+sigma2))] / (2 (1+sigma2)); sigma2 = 4000 > 1/(4 eta) - 1 collapses
SIG_LIN = np.array([0.0, 0.5, 1.0, 2.0, 3.0, 4000.0])


def _p_plus(sigma2, eta=1e-4):
    lam = 1.0 + sigma2
    return (1.0 + math.sqrt(1.0 - 4.0 * eta * lam)) / (2.0 * lam)


def _linear_run(tmp_path, name="lin"):
    d = len(SIG_LIN)
    U = _orthogonal(d, 4)
    p = np.array([_p_plus(s) for s in SIG_LIN[:-1]] + [0.01])
    c = np.r_[5.0 * (p[:-1] / p[0]) ** 2, 1e-8]                     # on the parabola
    views = _views(U, c, SIG_LIN, seed=5)
    Wp = (U * p) @ U.T
    F = (U * (c * (1 + SIG_LIN))) @ U.T
    snaps = [(0, views, F, Wp), (100, views, F, Wp)]
    return _write_run(tmp_path / name, ["predictor.name=linear"], 0, snaps,
                      {"linear_top1": 60.0, "knn_top1": 45.0, "effective_rank": 3.0,
                       "collapsed": False})


def test_directpred_prediction_on_an_exact_fixed_point(tmp_path):
    report, data = compare_run(_directpred_run(tmp_path, "dp", 0))
    s = report["summary"]
    assert report["theory"]["name"] == "directset-cosine"
    assert s["n_fates_right"] == 8 and s["fate_share"] == 1.0
    assert s["n_surviving_pred"] == 5 and s["n_surviving_meas"] == 5
    assert s["s_log10_err_max"] <= TOL and s["p_err_max"] <= TOL
    np.testing.assert_allclose(np.sort(data["table"]["sigma2"]), np.sort(SIG_DP), atol=TOL)
    assert "8/8" in report["verdict"]
    # alignment of DirectPred is 1 by construction
    assert s["alignment_err_mean"] <= TOL


def test_per_mode_errors_measure_a_known_offset(tmp_path):
    report, _ = compare_run(_directpred_run(tmp_path, "dp", 1, perturb_dex=0.3))
    s = report["summary"]
    # three modes 0.3 dex above the prediction, two exact: median and max 0.3
    assert s["s_log10_err_max"] == pytest.approx(0.3, abs=TOL)
    assert s["s_log10_err_median"] == pytest.approx(0.3, abs=TOL)
    assert s["fate_share"] == 1.0


def test_linear_predictor_uses_the_l2_fixed_point(tmp_path):
    report, data = compare_run(_linear_run(tmp_path))
    s = report["summary"]
    assert report["theory"]["name"] == "linear-l2"
    assert report["hparams"]["eta"] == pytest.approx(1e-4, rel=1e-12)  # wd 4e-4 / (scale 2 x 2 pairs)
    assert s["fate_share"] == 1.0 and s["n_surviving_pred"] == 5
    assert s["p_err_max"] <= TOL and s["s_log10_err_max"] <= TOL
    assert s["p_rel_err_max"] <= TOL                                  # cosine loss: shape too
    tab = data["table"]
    collapsed = ~tab["survives_pred"]
    assert tab["sigma2"][collapsed] == pytest.approx([4000.0], rel=1e-6)


def test_collapse_onset_and_first_modes(tmp_path):
    diag = collapse_diagnostics(load_run(_directpred_run(tmp_path, "dp", 0)))
    assert diag.steps == [0, 50, 100]
    assert diag.n_surviving == [8, 8, 5]
    assert diag.onset_step == 100 and "8 -> 5" in diag.onset_reason
    first = diag.first_modes
    assert sorted(m["index"] for m in first) == [5, 6, 7]            # the smallest at step 50
    assert all(m["sigma2"] == pytest.approx(5.0, rel=1e-8) for m in first)
    assert not diag.total_collapse


def test_cli_compare_writes_report_and_figures(tmp_path, capsys):
    run = _directpred_run(tmp_path, "dp", 0)
    out = tmp_path / "cmp"
    assert main(["compare", str(run), "--out", str(out)]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["summary"]["fate_share"] == 1.0
    rep = json.loads((out / "report.json").read_text())
    assert len(rep["modes"]) == 8 and rep["collapse"]["onset_step"] == 100
    for png in ("predicted_vs_measured.png", "spectra_over_time.png"):
        assert (out / png).stat().st_size > 10_000                   # a real image, not empty
    assert (out / "modes.csv").read_text().count("\n") == 9


def test_cli_report_groups_by_config_minus_seed(tmp_path, capsys):
    runs = [_directpred_run(tmp_path, "dp0", 0, top1=50.0),
            _directpred_run(tmp_path, "dp1", 1, perturb_dex=0.3, top1=60.0),
            _linear_run(tmp_path)]
    for run, rand in zip(runs[:2], (40.0, 45.0)):  # the same seed's random-init probe
        summ = json.loads((run / "summary.json").read_text())
        (run / "summary.json").write_text(json.dumps({**summ, "linear_top1_random_init": rand}))
    groups, md = report_runs(runs, tmp_path / "rep")
    assert len(groups) == 2
    dp = next(g for g in groups if "directpred" in g["label"])
    assert dp["seeds"] == [0, 1]
    mean, std, n = dp["stats"]["linear_top1"]
    assert (mean, n) == (55.0, 2) and std == pytest.approx(math.sqrt(50.0), rel=1e-12)
    mean, std, n = dp["stats"]["gain"]  # paired: (50 - 40, 60 - 45)
    assert (mean, n) == (12.5, 2) and std == pytest.approx(math.sqrt(12.5), rel=1e-12)
    line = next(x for x in md.splitlines() if "directpred" in x)
    assert f"{runs[0].name}, {runs[1].name}" in line  # each group names its run folders
    mean, std, _ = dp["stats"]["s_log10_err"]
    assert mean == pytest.approx(0.15, abs=TOL) and std == pytest.approx(0.3 / math.sqrt(2), abs=TOL)
    assert (tmp_path / "rep" / "report.csv").is_file()
    assert main(["report", *map(str, runs)]) == 0
    assert "| group | runs | n |" in capsys.readouterr().out


def test_compare_without_a_mode_theory_still_diagnoses(tmp_path):
    d = 8
    U = _orthogonal(d, 1)
    views = _views(U, np.ones(d), SIG_DP, seed=2)
    F = (U * (10.0 * E_REL_DP)) @ U.T
    run = _write_run(tmp_path / "mlp", ["predictor.name=mlp"], 0,
                     [(0, views, None, None), (100, views, F, None)], {"linear_top1": 40.0})
    out = tmp_path / "cmp"
    assert main(["compare", str(run), "--out", str(out)]) == 0
    rep = json.loads((out / "report.json").read_text())
    assert rep["theory"] is None and "no mode-level theory" in rep["verdict"]
    assert rep["summary"]["n_surviving_meas"] == 5
    assert (out / "predicted_vs_measured.png").stat().st_size > 10_000


def test_cli_refuses_a_folder_that_is_not_a_run(tmp_path, capsys):
    assert main(["compare", str(tmp_path)]) == 2
    assert "config.json" in capsys.readouterr().err


@pytest.mark.slow
def test_compare_on_a_real_tiny_digits_run(tmp_path):
    run = tmp_path / "digits"
    subprocess.run([sys.executable, "-m", "realnet", "train", "--config", "digits", "--out",
                    str(run), "--quiet"], check=True, timeout=600)
    out = tmp_path / "cmp"
    assert main(["compare", str(run), "--out", str(out)]) == 0
    rep = json.loads((out / "report.json").read_text())
    assert rep["theory"]["name"] == "directset-cosine"
    assert len(rep["modes"]) == rep["summary"]["n_modes"] > 0
    agree = [m["survives_pred"] == m["survives_meas"] for m in rep["modes"]]  # per mode, recounted
    assert rep["summary"]["fate_share"] == pytest.approx(np.mean(agree))
    assert rep["summary"]["n_fates_right"] == sum(agree)
    assert (out / "predicted_vs_measured.png").stat().st_size > 10_000


def test_report_labels_leave_out_keys_a_run_does_not_use():
    from analysis.report import group_runs
    from realnet.config.diff import inert_keys
    from realnet.config.train_config import config_to_dict, load_config

    cfgs = [load_config("digits", ov) for ov in (["predictor.cj=0.1", "predictor.eps=0.0"],
                                                 ["predictor.eps=0.1"], ["predictor.name=linear"])]
    rows = [{"config": config_to_dict(c), "seed": 0, "inert_keys": inert_keys(c)} for c in cfgs]
    labels = [g["label"] for g in group_runs(rows)]
    assert labels == ["predictor.cj=0.1, predictor.name=directpred",
                      "predictor.cj=0.0, predictor.eps=0.1, predictor.name=directpred",
                      "predictor.name=linear"]

"""Theory figures: every script runs (tiny size) and writes its PNG, PDF, CSV tables and summary;
and the plotted numbers agree with the theory they illustrate."""
from __future__ import annotations

import importlib
import json

import numpy as np
import pytest

from figures._common import read_table
from figures.theory import THEORY_FIGURES
from figures.theory import main as theory_main


@pytest.mark.parametrize("name", THEORY_FIGURES)
def test_figure_script_writes_png_pdf_and_tables(name, tmp_path):
    module = importlib.import_module(f"figures.{name}")
    out = module.main(["--out", str(tmp_path), "--tiny"])
    assert out == tmp_path / name
    assert (out / f"{name}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (out / f"{name}.pdf").read_bytes()[:5] == b"%PDF-"
    summary = json.loads((out / "summary.json").read_text())
    assert summary["figure"] == name and summary["tiny"] is True
    csvs = sorted(out.glob("*.csv"))
    assert csvs, "no plotted numbers written"
    for path in csvs:
        table = read_table(path)
        lengths = {len(v) for v in table.values()}
        assert len(lengths) == 1 and lengths.pop() > 0, path.name


def test_theory_runner_fresh_removes_stale_files(tmp_path):
    stale = tmp_path / "fig4_phase_lines" / "stale.csv"
    stale.parent.mkdir(parents=True)
    stale.write_text("x\n1\n")
    theory_main(["--out", str(tmp_path), "--tiny", "--fresh", "--only", "fig4_phase_lines"])
    assert not stale.exists()
    assert (tmp_path / "fig4_phase_lines" / "fig4_phase_lines.png").exists()


def test_figure_rejects_unknown_option(tmp_path):
    from figures import fig4_phase_lines

    with pytest.raises(SystemExit):
        fig4_phase_lines.main(["--out", str(tmp_path), "--no-such-flag"])


def test_phase_diagram_boundary_is_eta_c(tmp_path):
    """Simulated collapse threshold on the (eta, tau) grid vs eta_c = tau^2/(4(1+sigma2)).

    On the parabola the flow is exactly Eqn 16, so for every tau the first grid eta at which all
    modes collapse must be the first grid eta above eta_c (tolerance: one grid step, the grid's
    own resolution), and every cell's collapsed fraction must equal the closed-form count of
    starts below p*_- exactly. Exact equality is possible because the starts sit at cell
    midpoints, away from p*_- on this grid, and t_end = 1000 exceeds the slowest decision time
    here (collapse at rate >= eta = 0.02, i.e. s/s0 ~ exp(-40), plus the saddle escape)."""
    from figures import fig_collapse_phase_diagram as fc

    cfg = fc.Config(n_eta=21, n_tau=7, n_p0=8, n_p0_b=10)
    data = fc.compute(cfg)
    th = data.tables["threshold_per_tau"]
    step = cfg.eta_max / (cfg.n_eta - 1)
    inside = th["eta_c"] < cfg.eta_max
    assert inside.sum() >= 5 and not inside.all()  # both kinds of rows are exercised
    first = th["first_grid_eta_all_collapsed"]
    assert np.all(first[inside] > th["eta_c"][inside])
    assert np.all(first[inside] - th["eta_c"][inside] <= step + 1e-12)
    assert np.all(np.isnan(first[~inside]))  # eta_c beyond the grid: never all collapsed
    grid = data.tables["grid_eta_tau"]
    np.testing.assert_array_equal(grid["fraction_collapsed"], grid["predicted_fraction"])
    b = data.tables["grid_eta_p0"]
    np.testing.assert_array_equal(b["collapsed"], b["predicted_collapsed"])

    # and the CSV written for the figure holds the same numbers
    out = fc.main(["--out", str(tmp_path), "--tiny"])
    written = read_table(out / "threshold_per_tau.csv")
    tau = written["tau"]
    np.testing.assert_allclose(written["eta_c"], tau ** 2 / (4 * (1 + fc.Config.sigma2)), rtol=1e-9)


def test_phase_line_endpoints_land_on_stable_branches():
    """Fig. 4(d): modes started on the parabola end on the stable branch Eqn 16 predicts (0 below
    p*_-, p*_+ above it). Away from eta_c (|eta - eta_c| > 0.02) the slowest linear rate at the
    attracting point is >= min|f'(p*)| ~ 0.01, so by t = 600 the residual is < exp(-6) of a
    distance ~1 ... in practice round-off; 1e-6 leaves room for that decay on the slowest cell."""
    from figures import fig4_phase_lines as f4

    data = f4.compute(f4.Config(n_eta=11, n_p0=8, t_end=600.0))
    assert data.summary["max_abs_error_endpoint_vs_stable_branch_away_from_eta_c"] < 1e-6


def test_commutator_stays_below_theorem3_bound():
    """Fig. 9: ||[F,Wp](t)|| <= ||[F,Wp](0)|| exp(-2 int lambda_min(K)) along every run (exact for
    the ODE). Numerical slack: the integral is a trapezoid rule on saves 0.1 apart (error of the
    exponent <= sum dt^3 |lambda''| / 12 ~ 1e-4 here) and DOP853 runs at rtol 1e-8, so the ratio may
    exceed 1 by ~2e-4 at most; tolerance 1e-3. Points at the round-off floor are excluded."""
    from figures import fig9_commutator as f9

    cfg = f9.Config(taus=(0.5, 1.0), etas=(0.0, 0.05), n=6, n_runs=2, t_end=40.0, n_save=401)
    runs = f9.compute(cfg).tables["runs"]
    ok = runs["commutator_norm"] > f9.FLOOR
    ratio = runs["commutator_norm"][ok] / runs["bound"][ok]
    assert ratio.max() <= 1.0 + 1e-3
    # the commutator does decay (Theorem 3): by t = 40 it is below 1e-4 of its start in every run
    end = runs["t"] == cfg.t_end
    start = runs["t"] == 0.0
    assert np.all(runs["commutator_norm"][end] < 1e-4 * runs["commutator_norm"][start])


def test_antisymmetric_part_decays_at_rate_eta():
    """Fig. 8: the antisymmetric part of Wp decays as exp(-eta t) at late times (derived in the
    module: d(Wp P0)/dt = -eta Wp P0 on the null space of F). A sub-leading term of relative size
    A exp(-eta t) biases a least-squares log-slope over [2/eta, 10/eta] by at most ~5% A (its
    window average of exp(-eta t) is < 0.05), with A <= 1: tolerance 5%."""
    from figures import fig8_sym_antisym as f8

    data = f8.compute(f8.Config(etas=(0.05,), n=6, n_runs=2, t_end=250.0, n_save=501))
    row = data.summary["per_eta"][0]
    assert min(row["n_collapsed_modes"]) >= 1  # the derivation needs a null space of F
    np.testing.assert_allclose(row["fitted_rate_over_eta"], 1.0, atol=0.05)


def test_scalar_byol_equals_per_mode_system():
    """Fig. 10: scalar BYOL (w_p, w, w_a) and the per-mode system (p, s, tau) = (w_p, w^2, w_a/w)
    are the same ODE in different coordinates (Eqn 13 is exact for tau = w_a/w). Both are rk4
    with dt = 0.02, so they differ by the two truncation errors, O(dt^4) ~ 1e-7 times the
    derivatives (measured ~1e-8); tolerance 1e-6."""
    from figures import fig10_scalar_flows as f10

    data = f10.compute(f10.Config(taus=(1.0,), n_grid=10, t_end=20.0, n_save=101))
    dev = data.summary["max_abs_deviation_scalar_vs_modes"]
    assert max(dev.values()) < 1e-6
    # the collapsing start whose w crosses 0 is reported, not silently compared
    assert any(v["scalar_w_crosses_zero_at_t"] is not None
               for v in data.summary["per_mode_breakdown"].values())


def test_phase_portrait_trajectories_end_where_the_basins_say():
    """Fig. 3: every plotted trajectory ends in the basin that dynamics.exact.classify_basin
    predicts (collapse rule of analysis.metrics: s(t_end) <= COLLAPSE_REL_TOL * s(0)); at eta = 0
    also at the predicted point, from the conserved c = s - p^2/alpha_p (Eqn 14). Tolerance 1e-5:
    the slowest surviving start relaxes onto the line p = 1 at rate alpha_p s_inf >= 0.25, so by
    t = 150 its distance is < exp(-37) of its initial value (rk4 error is far smaller)."""
    from analysis.metrics import COLLAPSE_REL_TOL
    from dynamics import classify_basin
    from figures import fig3_phase_portraits as f3

    cfg = f3.Config(n_grid=12)
    data = f3.compute(cfg)
    starts = np.array(f3.STARTS)
    for eta in cfg.etas:
        final = np.array(data.summary["trajectory_final_p_s"][float(eta)])
        pred = classify_basin(starts[:, 0], starts[:, 1], alpha_p=cfg.alpha_p, eta=eta,
                              sigma2=cfg.sigma2, tau=cfg.tau)
        survived = final[:, 1] > COLLAPSE_REL_TOL * starts[:, 1]
        np.testing.assert_array_equal(survived, pred.survives, err_msg=f"eta={eta}")
        if eta == 0:
            np.testing.assert_allclose(final[:, 0], pred.p_inf, atol=1e-5)
            np.testing.assert_allclose(final[:, 1], pred.s_inf, atol=1e-5)


def test_fig6_forecast_scores_and_leave_one_out_threshold():
    import numpy as np

    from figures.fig6_alpha_p import _loo_threshold, forecasts, score

    truth = np.array([True, True, False, False])
    assert score(np.array([True, False, False, False]), truth) == \
        {"accuracy": 0.75, "balanced_accuracy": 0.75, "n": 4}
    assert score(np.zeros(4, bool), truth)["balanced_accuracy"] == 0.5
    ranks, fails = np.array([1.0, 2.0, 8.0, 10.0]), truth
    # without run 0: failing median 2, working median 9 -> threshold 5.5, fitted without run 0
    assert _loo_threshold(ranks, fails, 0) == 5.5
    rows = [{"eqn17_holds": h, "collapsed_cutoff": c, "rank_cutoff": r, "fails": f}
            for h, c, r, f in zip([False, True, True, True], [True, False, False, False],
                                  ranks, fails)]
    fc = forecasts(rows)
    assert fc["eqn17"].tolist() == [True, False, False, False]
    assert fc["rank_threshold"].tolist() == [True, True, False, False]
    assert fc["none_fail"].tolist() == [False] * 4


def test_align_uniform_paths_average_seeds_at_common_steps(tmp_path):
    import json

    import numpy as np

    from figures.fig_align_uniform import setting_paths

    runs = {"a/seed0": [(0, 1.0, -1.0, 5.0), (10, 0.5, -2.0, 7.0)],
            "a/seed1": [(0, 0.0, -3.0, 3.0), (10, 0.1, -1.0, 9.0), (20, 9.0, 9.0, 9.0)],
            "b/seed0": [(0, 0.2, -0.5, 2.0)]}
    for run, lines in runs.items():
        (tmp_path / run).mkdir(parents=True)
        (tmp_path / run / "summary.json").write_text("{}")
        (tmp_path / run / "spectra.jsonl").write_text("".join(
            json.dumps({"step": s, "align": a, "uniform": u, "effective_rank": r}) + "\n"
            for s, a, u, r in lines))
    (tmp_path / "sweep.json").write_text(json.dumps({"name": "t", "tables": [{"settings": [
        {"label": {"setting": "A"}, "runs": ["a/seed0", "a/seed1", "a/seed2"]},
        {"label": {"predictor.freq": 2}, "runs": ["b/seed0"]},
        {"label": "C", "runs": ["c/seed0"]}]}]}))
    paths = setting_paths(tmp_path)
    assert list(paths) == ["A", "predictor.freq=2"]  # C has no finished run
    a = paths["A"]
    assert a["step"].tolist() == [0, 10] and int(a["n_seeds"]) == 2  # step 20 is not common
    np.testing.assert_allclose(a["align"], [0.5, 0.3])
    np.testing.assert_allclose(a["uniform"], [-2.0, -1.5])
    np.testing.assert_allclose(a["effective_rank"], [4.0, 8.0])


def test_align_uniform_ends_come_from_every_finished_seeds_summary(tmp_path):
    """The ends need no trajectory: a fresh clone has the summaries, not the spectra logs."""
    import json

    import numpy as np

    from figures.fig_align_uniform import setting_ends, setting_paths

    ends = {"a/seed0": (0.1, -2.0, 10.0), "a/seed1": (0.3, -1.0, 6.0), "b/seed0": None}
    for run, end in ends.items():
        (tmp_path / run).mkdir(parents=True)
        summary = {} if end is None else {"spectra": dict(zip(("align", "uniform", "effective_rank"), end))}
        (tmp_path / run / "summary.json").write_text(json.dumps(summary))
    (tmp_path / "a/seed0/spectra.jsonl").write_text(json.dumps(
        {"step": 0, "align": 0.0, "uniform": 0.0, "effective_rank": 1.0}) + "\n")
    (tmp_path / "sweep.json").write_text(json.dumps({"name": "t", "tables": [{"settings": [
        {"label": "A", "runs": ["a/seed0", "a/seed1"]}, {"label": "B", "runs": ["b/seed0"]}]}]}))
    got = setting_ends(tmp_path)
    assert list(got) == ["A"]  # B's summary has no spectra
    np.testing.assert_allclose(got["A"]["align"], [0.1, 0.3])
    np.testing.assert_allclose(got["A"]["effective_rank"], [10.0, 6.0])
    assert int(setting_paths(tmp_path)["A"]["n_seeds"]) == 1

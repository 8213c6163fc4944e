"""Sweep runner and table aggregation (realnet.sweeps, realnet.sweeps.tables): sweep-file validation,
deduplication of identical resolved configs, skip / resume / failure bookkeeping (with a fake
launcher, and once with real tiny digits runs), and the mean / std arithmetic."""
from __future__ import annotations

import json
import math
import re
import sys
from pathlib import Path

import pytest

from realnet.sweeps import runner as sw
from realnet.sweeps import tables as tb
from analysis.textio import read_table

SWEEPS = Path(__file__).resolve().parents[1] / "figures" / "sweeps"


def _spec(**extra):
    data = {"name": "t", "base": "digits", "seeds": [0, 1],
            "overrides": {"train.steps": 4},
            "tables": [{"name": "freq", "rows": "predictor.freq",
                        "grid": {"predictor.freq": [1, 2]}}]}
    data.update(extra)
    return sw.sweep_from_dict(data)


# ---------------------------------------------------------------------------------------------
# validation: every error names what is wrong, before anything runs
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("data, words", [
    ({"base": "digits", "tables": [], "sedes": [0]}, ["sedes"]),
    ({"base": "digits"}, ["tables"]),
    ({"tables": [{"grid": {"predictor.freq": [1]}}]}, ["base"]),
    ({"base": "no_such_config", "tables": [{"grid": {"predictor.freq": [1]}}]}, ["no_such_config"]),
    ({"base": "digits", "seeds": [0, 0], "tables": [{"grid": {"predictor.freq": [1]}}]}, ["seeds"]),
    ({"base": "digits", "seeds": [-1], "tables": [{"grid": {"predictor.freq": [1]}}]}, ["seeds"]),
    ({"base": "digits", "tables": [{"grid": {"predictor.freq": [1]}, "colums": "x"}]}, ["colums"]),
    ({"base": "digits", "tables": [{"grid": {"predictor.freq": 2}}]}, ["predictor.freq", "list"]),
    ({"base": "digits", "tables": [{"grid": {"seed": [0, 1]}}]}, ["seed"]),
    ({"base": "digits", "tables": [{"grid": {"predictor.freq": [1]}, "rows": "predictor.eps"}]},
     ["rows", "predictor.eps"]),
    ({"base": "digits", "tables": [{"grid": {"predictor.freq": [1], "predictor.eps": [0.1],
                                             "predictor.rho": [0.3]}}]}, ["at most two"]),
    ({"base": "digits", "tables": [{"grid": {"predictor.freq": [1]},
                                    "settings": [{"label": "a"}]}]}, ["exactly one"]),
    ({"base": "digits", "tables": [{"settings": [{"label": "a", "overides": {}}]}]}, ["overides"]),
    ({"base": "digits", "overrides": {"seed": 3}, "tables": [{"grid": {"predictor.freq": [1]}}]},
     ["seed"]),
])
def test_structural_errors_name_the_key(data, words):
    with pytest.raises(ValueError) as e:
        sw.sweep_from_dict(data)
    for w in words:
        assert w in str(e.value)


@pytest.mark.parametrize("grid, words", [
    ({"predictor.frq": [1, 2]}, ["tables.freq", "predictor.frq", "predictor.freq"]),  # typo
    ({"predictor.freq": [1, 0]}, ["tables.freq", "predictor.freq=0"]),                # range
    ({"predictor": {"eps": [-0.1]}}, ["tables.freq", "predictor.eps"]),                # nested key
])
def test_config_errors_name_table_setting_and_key(grid, words):
    spec = sw.sweep_from_dict({"base": "digits", "tables": [{"name": "freq", "grid": grid}]})
    with pytest.raises(ValueError) as e:
        sw.plan_runs(spec)
    for w in words:
        assert w in str(e.value)


def test_fixed_override_error_and_bare_dotted_keys():
    with pytest.raises(ValueError, match="optim.lrr"):
        sw.plan_runs(_spec(overrides={"optim.lrr": 0.1}))
    # bare dotted TOML keys (nested tables) mean the same as quoted dotted keys
    a = sw.sweep_from_dict({"base": "digits", "overrides": {"train": {"steps": 4}},
                            "tables": [{"grid": {"predictor": {"freq": [2]}}}]})
    assert a.overrides == ("train.steps=4",)
    assert a.tables[0].settings[0].overrides == ("predictor.freq=2",)


def test_shipped_sweep_files_validate():
    """Every shipped sweep file parses and every grid point resolves (no run is launched)."""
    files = sorted(SWEEPS.glob("*.toml"))
    assert files
    for f in files:
        plan = sw.plan_runs(sw.load_sweep(f))
        assert plan, f


# ---------------------------------------------------------------------------------------------
# dedupe
# ---------------------------------------------------------------------------------------------
def test_cpu_sweep_dedupes_shared_settings():
    """8 predictor settings (the first is DirectPred, the base) + freq {1,2,5,10} + (c_j
    {0.1,0.05,0,-0.05,-0.1} x freq {1,2}) + eps {0,0.01,0.1,0.5}: the freq = 1, c_j = 0 and
    eps = 0.1 cells are the base run, and c_j = 0, freq = 2 is the freq = 2 run, so
    8 + 3 + (10 - 2) + 3 = 22 distinct settings of 26 cells."""
    spec = sw.load_sweep(SWEEPS / "cpu.toml")
    plan = sw.plan_runs(spec)
    n_cells = sum(len(t.settings) for t in spec.tables)
    assert n_cells == 26
    assert len(plan) == 22 * len(spec.seeds)
    assert len({r.folder for r in plan}) == len(plan)
    base = [r for r in plan if r.setting == "base"]
    assert len(base) == len(spec.seeds)
    # the base run serves DirectPred, freq=1, (c_j=0, freq=1) and eps=0.1: four tables
    assert sorted(t for t, _ in base[0].uses) == ["cj_freq", "eps", "freq", "predictors"]
    names = {r.setting for r in plan}
    assert {"freq=2", "cj=0.1", "cj=-0.05_freq=2", "eps=0.0"} <= names


def test_identical_resolved_configs_share_one_run():
    """Two spellings of the same config (the base value given explicitly, a named setting with
    no override) resolve equal and run once."""
    spec = sw.sweep_from_dict({
        "base": "digits", "seeds": [0],
        "tables": [{"name": "a", "grid": {"predictor.rho": [0.3, 0.5]}},
                   {"name": "b", "settings": [{"label": "default", "overrides": {}},
                                               {"label": "rho half", "overrides":
                                                {"predictor.rho": 0.5}}]}]})
    plan = sw.plan_runs(spec)
    assert [r.setting for r in plan] == ["base", "rho=0.5"]
    assert [len(r.uses) for r in plan] == [2, 2]


# ---------------------------------------------------------------------------------------------
# bookkeeping with a fake launcher
# ---------------------------------------------------------------------------------------------
class FakeLauncher:
    """Records launches; writes summary.json (done), or returns a nonfinite / failed outcome
    for the folders named in ``behaviour``."""

    def __init__(self, behaviour=None):
        self.behaviour = behaviour or {}
        self.launched: list[str] = []

    def __call__(self, cmd, folder, env):
        key = f"{folder.parent.name}/{folder.name}"
        self.launched.append(key)
        folder.mkdir(parents=True, exist_ok=True)
        what = self.behaviour.get(key, "done")
        if what == "nonfinite":
            return sw.RunOutcome("nonfinite", 3, 0.1, "error: loss nan at step 2")
        if what == "failed":
            return sw.RunOutcome("failed", 1, 0.1, "error: boom")
        seed = int(folder.name.removeprefix("seed"))
        (folder / "summary.json").write_text(json.dumps(
            {"linear_top1": 70.0 + seed, "knn_top1": 60.0, "effective_rank": 5.0,
             "collapsed": False, "steps": 10}))
        return sw.RunOutcome("done", 0, 0.1)


def test_skip_finished_resume_and_failures(tmp_path):
    spec = _spec()
    fake = FakeLauncher({"freq=2/seed1": "nonfinite", "freq=2/seed0": "failed"})
    states = sw.run_sweep(spec, tmp_path, launcher=fake, quiet=True)
    assert sorted(fake.launched) == ["base/seed0", "base/seed1", "freq=2/seed0", "freq=2/seed1"]
    assert states == {"base/seed0": "done", "base/seed1": "done", "freq=2/seed0": "failed",
                      "freq=2/seed1": "nonfinite"}
    status = json.loads((tmp_path / "freq=2/seed1" / sw.STATUS_FILE).read_text())
    assert status["status"] == "nonfinite" and status["returncode"] == 3
    assert "--out" in status["command"] and "seed=1" in status["command"]
    # the failed run has no verdict yet; the NaN run counts as collapsed
    assert "| 2 | NaN | NaN | NaN | NaN | 1/1 (1 NaN, 1 not finished) |" in (tmp_path / "tables.md").read_text()

    # second invocation: finished runs and the NaN result are skipped, the crash is retried
    fake2 = FakeLauncher()
    sw.run_sweep(spec, tmp_path, launcher=fake2, quiet=True)
    assert fake2.launched == ["freq=2/seed0"]

    # a half-finished run (checkpoint, no summary) is launched again (realnet resumes it)
    (tmp_path / "base/seed1/summary.json").unlink()
    ckpt = tmp_path / "base/seed1/checkpoints/last.pt"
    ckpt.parent.mkdir(parents=True)
    ckpt.write_bytes(b"x")
    assert sw.run_state(tmp_path / "base/seed1", {}) == "partial"
    fake3 = FakeLauncher()
    sw.run_sweep(spec, tmp_path, launcher=fake3, quiet=True)
    assert fake3.launched == ["base/seed1"]

    # --retry-failed reruns the NaN run; nothing else
    fake4 = FakeLauncher()
    sw.run_sweep(spec, tmp_path, launcher=fake4, quiet=True, retry_failed=True)
    assert fake4.launched == ["freq=2/seed1"]


def test_dry_run_touches_nothing_and_conflict_is_not_launched(tmp_path):
    spec = _spec()
    fake = FakeLauncher()
    states = sw.run_sweep(spec, tmp_path / "dry", launcher=fake, dry_run=True, quiet=True)
    assert fake.launched == [] and not (tmp_path / "dry").exists()
    assert set(states.values()) == {"new"}
    # a folder holding a run of another config: the whole sweep is refused before anything is
    # launched or any table rewritten (a sweep never mixes configurations)
    folder = tmp_path / "base" / "seed0"
    folder.mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps({"seed": 0, "other": True}))
    states = sw.run_sweep(spec, tmp_path, launcher=fake, dry_run=True, quiet=True)
    assert states["base/seed0"] == "conflict"
    with pytest.raises(ValueError, match="base/seed0"):
        sw.run_sweep(spec, tmp_path, launcher=fake, quiet=True)
    assert fake.launched == [] and not (tmp_path / "sweep.json").exists()


def test_jobs_must_be_positive(tmp_path):
    with pytest.raises(ValueError, match="jobs"):
        sw.run_sweep(_spec(), tmp_path, jobs=0, launcher=FakeLauncher(), quiet=True)


def test_exit_status_mapping_of_the_subprocess_launcher(tmp_path):
    """realnet's exit status 3 (NaN/inf) is a result, anything else non-zero a failure."""
    env = sw._child_env(1)
    nan = [sys.executable, "-c", "import sys; print('error: loss nan at step 7'); sys.exit(3)"]
    out = sw.launch_subprocess(nan, tmp_path / "a", env)
    assert (out.status, out.returncode) == ("nonfinite", 3)
    assert re.fullmatch(r"pid \d+ exit 3: error: loss nan at step 7", out.message)  # why it ended
    crash = [sys.executable, "-c", "raise SystemExit(4)"]
    assert sw.launch_subprocess(crash, tmp_path / "b", env).status == "failed"
    stopped = [sys.executable, "-c", "raise SystemExit(130)"]
    assert sw.launch_subprocess(stopped, tmp_path / "d", env).status == "interrupted"
    ok_no_summary = [sys.executable, "-c", "pass"]
    assert sw.launch_subprocess(ok_no_summary, tmp_path / "c", env).status == "failed"
    killed = [sys.executable, "-c", "import os, signal; os.kill(os.getpid(), signal.SIGKILL)"]
    out = sw.launch_subprocess(killed, tmp_path / "e", env)
    assert out.status == "failed" and re.fullmatch(r"pid \d+ killed by SIGKILL", out.message)
    assert "$ " in (tmp_path / "a" / sw.LOG_FILE).read_text()


# ---------------------------------------------------------------------------------------------
# aggregation arithmetic
# ---------------------------------------------------------------------------------------------
def test_mean_std_against_hand_computation():
    # 70, 72, 74: mean 72, sample variance ((-2)^2 + 0 + 2^2) / (3 - 1) = 4, std 2. Exact in
    # float64 (small integers), so compared to 1e-12 relative (a few roundings at most).
    m, s, n = tb.mean_std([70.0, 72.0, 74.0, float("nan"), None])
    assert n == 3
    assert m == pytest.approx(72.0, rel=1e-12) and s == pytest.approx(2.0, rel=1e-12)
    m, s, n = tb.mean_std([81.5])
    assert (m, n) == (81.5, 1) and math.isnan(s)
    m, s, n = tb.mean_std([])
    assert n == 0 and math.isnan(m) and math.isnan(s)


def test_tables_from_folders(tmp_path):
    """Two settings x 3 seeds with hand-chosen summaries; one NaN run and one collapsed run."""
    spec = _spec(seeds=[0, 1, 2])
    values = {("base", 0): 70.0, ("base", 1): 72.0, ("base", 2): 74.0,
              ("freq=2", 0): 50.0, ("freq=2", 1): 53.0}

    def launcher(cmd, folder, env):
        key = (folder.parent.name, int(folder.name.removeprefix("seed")))
        folder.mkdir(parents=True, exist_ok=True)
        if key not in values:
            return sw.RunOutcome("nonfinite", 3, 0.0, "error: nan")
        (folder / "summary.json").write_text(json.dumps({
            "linear_top1": values[key], "knn_top1": values[key] - 10.0,
            "linear_top1_random_init": 60.0 + key[1],
            "effective_rank": 2.0 * key[1], "collapsed": key == ("freq=2", 1), "steps": 10}))
        return sw.RunOutcome("done", 0, 0.0)

    sw.run_sweep(spec, tmp_path, launcher=launcher, quiet=True)  # aggregates at the end
    res = read_table(tmp_path / "results.csv")
    # the CSV keeps 10 significant digits: read-back values are within 5e-10 relative, so
    # they are compared to 1e-9 relative
    base = {k: v[0] for k, v in res.items()}
    f2 = {k: v[1] for k, v in res.items()}
    assert base["row"] == 1.0 and f2["row"] == 2.0
    # base: as in test_mean_std_against_hand_computation; effective rank 0, 2, 4 -> 2 +- 2
    assert base["linear_top1_mean"] == pytest.approx(72.0, rel=1e-9)
    assert base["linear_top1_std"] == pytest.approx(2.0, rel=1e-9)
    assert base["knn_top1_mean"] == pytest.approx(62.0, rel=1e-9)
    assert base["effective_rank_std"] == pytest.approx(2.0, rel=1e-9)
    assert (base["n_runs"], base["n_done"], base["n_collapsed"]) == (3, 3, 0)
    # freq=2: 50, 53 -> mean 51.5, std sqrt(2 * 1.5^2 / 1) = 1.5 sqrt(2); seed 2 is NaN and
    # counts as collapsed, seed 1 collapsed by its summary -> 2 of 3
    assert f2["linear_top1_mean"] == pytest.approx(51.5, rel=1e-9)
    assert f2["linear_top1_std"] == pytest.approx(1.5 * math.sqrt(2.0), rel=1e-9)
    assert (f2["n_done"], f2["n_nonfinite"], f2["n_collapsed"], f2["linear_top1_n"]) == \
        (2, 1, 2, 2)
    md = (tmp_path / "tables.md").read_text()
    # mean ± se, se = std / sqrt(n): 2 / sqrt(3) = 1.15; the gain is paired per seed:
    # 70 - 60, 72 - 61, 74 - 62 = 10, 11, 12 -> 11 ± 1/sqrt(3); freq=2: -10, -8 -> -9 ± 1
    assert "| 1 | 72.00 ± 1.15 | 11.00 ± 0.58 | 62.00 ± 1.15 | 2.00 ± 1.15 | 0/3 |" in md
    assert "| 2 | 51.50 ± 1.50 (n=2) | -9.00 ± 1.00 (n=2) |" in md and "2/3 (1 NaN)" in md
    assert base["linear_top1_se"] == pytest.approx(2.0 / math.sqrt(3.0), rel=1e-9)
    runs = read_table(tmp_path / "runs.csv")
    assert sorted(runs["status"].tolist()) == ["done"] * 5 + ["nonfinite"]
    # re-aggregation from the folders alone gives the same files
    before = (tmp_path / "results.csv").read_text()
    assert tb.main([str(tmp_path)]) == 0
    assert (tmp_path / "results.csv").read_text() == before


def test_two_dimensional_table_layout(tmp_path):
    spec = sw.sweep_from_dict({
        "base": "digits", "seeds": [0],
        "tables": [{"name": "cj", "rows": "predictor.freq", "cols": "predictor.cj",
                    "grid": {"predictor.freq": [1, 2], "predictor.cj": [0.1, -0.1]}}]})
    sw.run_sweep(spec, tmp_path, launcher=FakeLauncher(), quiet=True)
    md = (tmp_path / "tables.md").read_text()
    assert "| freq \\ cj | 0.1 | -0.1 |" in md
    assert md.count("| 1 | 70.00 | 70.00 |") == 1  # linear top-1 grid, one seed: no std


def test_tables_refuses_a_folder_without_manifest(tmp_path):
    with pytest.raises(ValueError, match="sweep.json"):
        tb.write_tables(tmp_path)


@pytest.mark.parametrize("text, words", [
    ("[]", "no list 'tables'"), ("{\"tables\": 3}", "no list 'tables'"),
    ("{\"tables\": [{\"x\": 1}]}", "tables[0] has no name"),
    ("{\"tables\": [{\"name\": \"a\", \"rows\": 1, \"cols\": null, \"settings\": []}]}", "'rows'"),
    ("{\"tables\": [{\"name\": \"a\", \"rows\": null, \"cols\": null}]}", "no list 'settings'"),
    ("{\"tables\": [{\"name\": \"a\", \"rows\": null, \"cols\": null, "
     "\"settings\": [{\"label\": {}, \"runs\": [3]}]}]}", "settings[0]"),
    ("{not json", "not JSON")])
def test_tables_refuse_a_manifest_of_another_schema_in_one_line(tmp_path, capsys, text, words):
    """A sweep.json of the wrong shape is named with what is wrong (exit 2), not a TypeError or
    KeyError traceback from inside the aggregation."""
    (tmp_path / "sweep.json").write_text(text)
    assert tb.main([str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "not a sweep manifest" in err and words in err and len(err.strip().splitlines()) == 1


# ---------------------------------------------------------------------------------------------
# real runs: two tiny digits runs through `python -m realnet train`, one resumed
# ---------------------------------------------------------------------------------------------
def test_real_sweep_with_resume(tmp_path, monkeypatch):
    """Two 4-step digits runs in parallel; the freq=2 one is stopped after 2 steps (realnet's
    --stop-after) and the next invocation of the sweep resumes it from its checkpoint."""
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # two single-thread runs side by side
    spec = sw.sweep_from_dict({
        "base": "digits", "seeds": [0],
        "overrides": {"train.steps": 4, "log.every": 1, "log.spectra_every": 2,
                      "log.checkpoint_every": 2, "eval.probe_epochs": 2,
                      "eval.random_init_baseline": False, "device": "cpu"},
        "tables": [{"name": "freq", "grid": {"predictor.freq": [1, 2]}}]})

    def stop_freq2_half_way(cmd, folder, env):
        if folder.parent.name == "freq=2":
            cmd = cmd + ["--stop-after", "2"]
        return sw.launch_subprocess(cmd, folder, env)

    states = sw.run_sweep(spec, tmp_path, jobs=2, quiet=True, launcher=stop_freq2_half_way)
    # realnet exits 0 without a summary when stopped: recorded as a failure, resumable
    assert states == {"base/seed0": "done", "freq=2/seed0": "failed"}
    half = next(r for r in sw.plan_runs(spec) if r.setting == "freq=2")
    assert sw.run_state(tmp_path / half.folder, half.config) == "partial"
    step0 = tmp_path / half.folder / "spectra" / "step_0000000.npz"
    mtime0 = step0.stat().st_mtime_ns  # a restart from scratch would rewrite the step-0 snapshot
    states = sw.run_sweep(spec, tmp_path, quiet=True)
    assert states == {"base/seed0": "done", "freq=2/seed0": "done"}
    resumed = [json.loads(ln) for ln in (tmp_path / half.folder / "metrics.jsonl").read_text()
               .splitlines()]
    # steps 1..4 logged once each (the second invocation continued at step 3), then the final
    assert [m["step"] for m in resumed if not m.get("final")] == [1, 2, 3, 4]
    assert (tmp_path / half.folder / sw.LOG_FILE).read_text().count("$ ") == 2
    assert step0.stat().st_mtime_ns == mtime0
    summary = json.loads((tmp_path / half.folder / "summary.json").read_text())
    assert summary["steps"] == 4
    res = read_table(tmp_path / "results.csv")
    assert res["n_done"].tolist() == [1.0, 1.0]
    # a third invocation launches nothing: both finished
    fake = FakeLauncher()
    again = sw.run_sweep(spec, tmp_path, quiet=True, launcher=fake)
    assert set(again.values()) == {"done"} and fake.launched == []


# ---------------------------------------------------------------------------------------------
# Fig. 2 from run folders (synthetic snapshots with known alignment and asymmetry)
# ---------------------------------------------------------------------------------------------
def test_fig2_reads_snapshots(tmp_path):
    """Two fake runs of d = 4: (i) ``Wp = I + A`` with ``A`` antisymmetric, for which
    ``cos(Wp u, u) = 1 / sqrt(1 + ||A u||^2)`` (``u^T A u = 0``) and
    ``||Wp - Wp^T|| / ||Wp|| = 2 ||A|| / sqrt(d + ||A||^2)`` (I and A are Frobenius-orthogonal);
    (ii) ``Wp = U diag(p) U^T`` with ``p > 0`` built from ``F``'s eigenvectors: alignment 1,
    asymmetry 0. Float64 linear algebra on 4 x 4 matrices: 1e-10 absolute."""
    import numpy as np

    from figures import fig2_real_spectra as f2
    from realnet.eval import spectra

    rng = np.random.default_rng(0)
    d = 4
    views = spectra.ProbeViews(rng.standard_normal((16, d)), rng.standard_normal((16, d)),
                               rng.standard_normal((16, 8)))
    B = rng.standard_normal((d, d))
    F = B @ B.T
    A = 0.3 * (B - B.T)
    s, U = np.linalg.eigh(F)
    s, U = s[::-1], U[:, ::-1]
    for name, Wp in (("lin", np.eye(d) + A), ("dp", U @ np.diag(np.sqrt(s / s[0]) + 0.1) @ U.T)):
        folder = tmp_path / name
        folder.mkdir()
        (folder / "config.json").write_text(json.dumps({"predictor": {"name": "linear"}}))
        for step in (0, 10):
            spectra.write_snapshot(folder, spectra.snapshot(step, views, F=F, Wp=Wp))
    out = f2.main([str(tmp_path / "lin"), str(tmp_path / "dp"), "--labels", "L", "D",
                   "--out", str(tmp_path / "fig")])
    assert (out / f"{f2.NAME}.png").is_file() and (out / f"{f2.NAME}.pdf").is_file()
    modes = read_table(out / "modes.csv")
    assert len(modes["step"]) == 2 * 2 * d
    lin = modes["run"] == "L"
    expected = 1.0 / np.sqrt(1.0 + np.sum((A @ U) ** 2, axis=0))
    np.testing.assert_allclose(modes["alignment"][lin][:d], expected, atol=1e-10)
    np.testing.assert_allclose(modes["alignment"][~lin], 1.0, atol=1e-10)
    np.testing.assert_allclose(modes["F_eig"][lin][:d], s, atol=1e-10)
    summary = json.loads((out / "summary.json").read_text())["runs"]
    nA = np.linalg.norm(A)
    assert summary["L"]["last_asymmetry"] == pytest.approx(2 * nA / np.sqrt(d + nA ** 2),
                                                           abs=1e-10)
    assert summary["D"]["last_asymmetry"] == pytest.approx(0.0, abs=1e-10)
    assert summary["D"]["last_Wp_sym_eig_max"] == pytest.approx(1.1, abs=1e-10)


def test_paper_orderings_against_hand_numbers():
    """Three cells, paper a > b > c. Sweep: a - b = 2.0 with se sqrt(0.5^2 + 0.5^2) = 0.707
    (2.83 se: reproduced); b - c = -0.5 (0.71 se: within noise); a - c = 1.5 (2.1 se:
    reproduced); a cell without a paper number is left out."""
    def cell(name, paper, mean, se, row=1, col=None):
        return {"setting": name, "paper": paper, "linear_top1_mean": mean, "linear_top1_se": se,
                "linear_top1_n": 3, "row": row, "col": col}
    cells = [cell("a", 78.0, 80.0, 0.5), cell("b", 77.0, 78.0, 0.5), cell("c", 70.0, 78.5, 0.5),
             cell("d", None, 90.0, 0.5)]
    got = {(p["a"], p["b"]): p["verdict"] for p in tb.paper_orderings(cells, two_d=False)}
    assert got == {("a", "b"): "reproduced", ("a", "c"): "reproduced", ("b", "c"): "within noise"}
    cells = [cell("a", 78.0, 75.0, 0.5), cell("b", 77.0, 80.0, 0.5)]
    assert tb.paper_orderings(cells, two_d=False)[0]["verdict"] == "reversed"
    # 2-D: only pairs sharing a row or a column
    grid = [cell("x", 1.0, 1.0, 0.1, row=1, col=1), cell("y", 2.0, 2.0, 0.1, row=2, col=2),
            cell("z", 3.0, 3.0, 0.1, row=1, col=2)]
    pairs = {(p["a"], p["b"]) for p in tb.paper_orderings(grid, two_d=True)}
    assert pairs == {("x", "z"), ("y", "z")}


def test_paper_numbers_attach_to_grid_cells_and_bad_ones_are_refused():
    spec = sw.sweep_from_dict({
        "base": "digits", "seeds": [0],
        "tables": [{"name": "f", "grid": {"predictor.freq": [1, 5]}, "paper": [[1, 77.86], [5, 77.54]]}]})
    assert [st.paper for st in spec.tables[0].settings] == [77.86, 77.54]
    with pytest.raises(ValueError, match="names no cell"):
        sw.sweep_from_dict({"base": "digits", "tables": [
            {"name": "f", "grid": {"predictor.freq": [1]}, "paper": [[2, 70.0]]}]})


def test_tables_option_launches_only_that_tables_runs(tmp_path):
    spec = sw.sweep_from_dict({
        "base": "digits", "seeds": [0],
        "tables": [{"name": "a", "grid": {"predictor.freq": [1, 2]}},
                   {"name": "b", "grid": {"predictor.eps": [0.0]}}]})
    launched = []

    def launcher(cmd, folder, env):
        launched.append(folder.parent.name)
        return FakeLauncher()(cmd, folder, env)

    sw.run_sweep(spec, tmp_path, launcher=launcher, quiet=True, tables=["b"])
    assert launched == ["eps=0.0"]
    manifest = json.loads((tmp_path / "sweep.json").read_text())
    assert [t["name"] for t in manifest["tables"]] == ["a", "b"]  # the manifest covers every table
    with pytest.raises(ValueError, match="--tables"):
        sw.run_sweep(spec, tmp_path, launcher=launcher, quiet=True, tables=["nope"])


def test_paper_ordering_with_one_seed_is_not_judged():
    one = {"setting": "a", "paper": 78.0, "linear_top1_mean": 80.0, "linear_top1_se": float("nan"),
           "linear_top1_n": 1, "row": 1, "col": None}
    two = dict(one, setting="b", paper=70.0, linear_top1_mean=60.0, linear_top1_se=0.1, linear_top1_n=3)
    assert tb.paper_orderings([one, two], two_d=False)[0]["verdict"] == "too few seeds"


# ---------------------------------------------------------------------------------------------
# launchers: torchrun per run, SLURM scripts, command-line overrides
# ---------------------------------------------------------------------------------------------
def test_nproc_runs_every_run_under_torchrun(tmp_path):
    fake = FakeLauncher()
    commands = []
    sw.run_sweep(_spec(), tmp_path, quiet=True, nproc=2,
                 launcher=lambda cmd, folder, env: commands.append(cmd) or fake(cmd, folder, env))
    assert len(commands) == 4
    for cmd in commands:
        assert cmd[1:6] == ["-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m"]
        assert cmd[6:8] == ["realnet", "train"]
    with pytest.raises(ValueError, match=r"--nproc=0 is invalid"):
        sw.run_sweep(_spec(), tmp_path / "x", quiet=True, nproc=0, launcher=fake)


def test_slurm_writes_one_script_per_unfinished_run_and_runs_nothing(tmp_path):
    import subprocess

    fake = FakeLauncher()
    spec = _spec()
    sw.run_sweep(spec, tmp_path, quiet=True, launcher=fake, tables=["freq"])  # all 4 finish
    (tmp_path / "freq=2" / "seed1" / "summary.json").unlink()  # one run left to do
    states = sw.run_sweep(spec, tmp_path, quiet=True, launcher=fake, nproc=2,
                          slurm=["--gres=gpu:2", "--time=01:00:00"])
    assert states["freq=2/seed1"] != "done" and len(fake.launched) == 4  # nothing ran
    scripts = sorted((tmp_path / "slurm").glob("*.sbatch"))
    assert [p.name for p in scripts] == ["freq=2__seed1.sbatch"]
    text = scripts[0].read_text()
    assert "#SBATCH --gres=gpu:2" in text and "#SBATCH --time=01:00:00" in text
    assert "--nproc_per_node=2" in text and "predictor.freq=2" in text and "seed=1" in text
    assert f"--output={(tmp_path / 'freq=2' / 'seed1').resolve()}/slurm-%j.out" in text
    submit = (tmp_path / "slurm" / "submit_all.sh").read_text()
    assert "sbatch freq=2__seed1.sbatch" in submit
    for p in (*scripts, tmp_path / "slurm" / "submit_all.sh"):  # valid bash
        assert subprocess.run(["bash", "-n", str(p)]).returncode == 0
    with pytest.raises(ValueError, match="--slurm-option 'gres=gpu:1' is invalid"):
        sw.run_sweep(spec, tmp_path, quiet=True, launcher=fake, slurm=["gres=gpu:1"])


def test_set_overrides_every_run_and_is_checked(tmp_path, capsys):
    sweep_file = tmp_path / "s.toml"
    sweep_file.write_text('name = "t"\nbase = "digits"\nseeds = [0]\n[overrides]\n"train.steps" = 4\n'
                          '[[tables]]\nname = "freq"\nrows = "predictor.freq"\n'
                          '[tables.grid]\n"predictor.freq" = [1, 2]\n')
    assert sw.main([str(sweep_file), "--out", str(tmp_path / "o"), "--dry-run",
                    "--set", "train.steps=7"]) == 0
    assert "train.steps=7" in capsys.readouterr().out
    assert sw.main([str(sweep_file), "--out", str(tmp_path / "o"), "--dry-run",
                    "--set", "train.stepz=7"]) == 2
    assert "train.stepz" in capsys.readouterr().err
    assert sw.main([str(sweep_file), "--out", str(tmp_path / "o"), "--set", "seed=3"]) == 2
    assert "--set 'seed=3' is invalid" in capsys.readouterr().err


def test_rerun_without_spectra_relaunches_finished_runs_that_lack_snapshots(tmp_path):
    fake = FakeLauncher()
    spec = _spec()
    sw.run_sweep(spec, tmp_path, quiet=True, launcher=fake)
    (tmp_path / "base" / "seed0" / "spectra").mkdir()  # this one kept its snapshots
    again = FakeLauncher()
    sw.run_sweep(spec, tmp_path, quiet=True, launcher=again)
    assert again.launched == []  # finished: nothing to do by default
    sw.run_sweep(spec, tmp_path, quiet=True, launcher=again, rerun_without_spectra=True)
    assert sorted(again.launched) == ["base/seed1", "freq=2/seed0", "freq=2/seed1"]


def test_the_submitit_backend_runs_every_run_as_one_job_array(tmp_path, monkeypatch):
    """--submitit local: each unfinished run is a submitit job (here a local process); the jobs'
    ids are written, every run finishes, and the same sweep command then has nothing left to run
    and writes the tables."""
    submitit = pytest.importorskip("submitit")
    import realnet.sweeps.submitit_backend as backend
    from realnet.sweeps.spec import sweep_from_dict

    spec = sweep_from_dict({"name": "t", "base": "digits", "seeds": [0, 1],
                            "overrides": {"train.steps": 2, "log.spectra_every": 0,
                                          "eval.linear_probe": False},
                            "tables": [{"name": "a", "settings": [{"label": "x"}]}]}, "t.toml")
    jobs, real = [], backend.submit_runs
    monkeypatch.setattr(backend, "submit_runs", lambda *a, **kw: jobs.extend(real(*a, **kw)) or jobs)
    states = sw.run_sweep(spec, tmp_path, quiet=True, submitit="local")
    assert set(states.values()) == {"new"} and len(jobs) == 2
    assert all(isinstance(j, submitit.Job) for j in jobs)
    assert [j.result() for j in jobs] == [0, 0]
    ids = json.loads((tmp_path / backend.SUBMITIT_DIR / "jobs.json").read_text())
    assert ids == {"base/seed0": jobs[0].job_id, "base/seed1": jobs[1].job_id}
    assert set(sw.run_sweep(spec, tmp_path, quiet=True).values()) == {"done"}
    assert (tmp_path / "tables.md").is_file()


def test_a_preempted_submitit_job_stops_its_run_and_requeues_the_same_command(tmp_path):
    """On pre-emption submitit calls checkpoint(): the running command gets SIGTERM (a trainer
    checkpoints and exits) and the requeued job is the same command; sbatch options map to
    submitit's parameters."""
    import threading

    pytest.importorskip("submitit")
    from realnet.sweeps.submitit_backend import RunCommand, slurm_parameters

    job = RunCommand([sys.executable, "-c", "import time; time.sleep(60)"], tmp_path)
    err: list[BaseException] = []
    t = threading.Thread(target=lambda: err.append(pytest.raises(RuntimeError, job)))
    t.start()
    while job._proc is None:
        pass
    again = job.checkpoint()
    t.join(timeout=30)
    assert not t.is_alive() and "exited -15" in str(err[0].value)
    assert again.function.cmd == job.cmd and again.function is not job
    assert slurm_parameters(["--gres=gpu:1", "--cpus-per-task=8"]) == {"gres": "gpu:1", "cpus_per_task": "8"}
    with pytest.raises(ValueError, match="--key=value"):
        slurm_parameters(["-p gpu"])

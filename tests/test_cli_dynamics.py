"""Command line of the theory package: python -m dynamics {demo, modes, scalar} and the bench."""
import json
import subprocess
import sys

import numpy as np
import pytest

from dynamics.__main__ import build_parser, main
from dynamics.demo import DemoConfig, run_demo
from dynamics.exact import collapse_threshold, fixed_points


def test_demo_tiny_as_a_user_runs_it(tmp_path):
    out = tmp_path / "demo"
    cmd = [sys.executable, "-m", "dynamics", "demo", "--out", str(out), "--n-p", "4", "--n-s", "3",
           "--n-parabola", "3", "--t-end", "100", "--t-plot", "5", "--dt", "0.05"]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    assert "fate matched" in res.stderr  # progress / result lines
    summary = json.loads((out / "summary.json").read_text())
    assert (out / "phase_portrait.png").stat().st_size > 10_000
    assert summary["collapse_threshold"] == pytest.approx(0.25, rel=1e-15)  # tau^2/(4(1+sigma2))
    rows = {r["eta"]: r for r in summary["per_eta"]}
    assert set(rows) == {0.0, 0.01, 1.0}
    pm, pp = fixed_points(1.0, 0.01, 0.0)
    fps = {f["name"]: f for f in rows[0.01]["fixed_points"]}
    assert fps["p_minus"]["p"] == pytest.approx(pm, rel=1e-12) and fps["p_minus"]["kind"] == "saddle"
    assert fps["p_plus"]["p"] == pytest.approx(pp, rel=1e-12) and fps["p_plus"]["kind"] == "stable"
    # eta = 1 > eta_c: s decays at least as exp(-2 (eta - eta_c) t) = e^-150 by t = 100, far
    # below the survival floor 1e-6, and every start is predicted to collapse: all must match.
    assert rows[1.0]["fate_match_fraction"] == 1.0 and rows[1.0]["n_survived_simulated"] == 0
    # 4 x 3 grid starts + parabola starts at p = -0.9, 0.3, 1.5 that lie inside s <= 1.6
    # (p = 1.5 gives s = 2.25 and is dropped)
    assert rows[0.0]["n_starts"] == 4 * 3 + 2


def test_demo_default_fates_match_except_near_the_boundary():
    # The README's main job, at its embedded default. The exact rule can only miss starts so
    # close to the basin boundary (|margin| < 1e-2) that t_end = 2000 does not decide them;
    # every other start must match (see test_exact for the margin argument).
    cfg = DemoConfig()
    summary, data = run_demo(cfg, progress=False)
    miss = data["pred"].survives != data["survived"]
    assert not np.any(miss & (np.abs(data["pred"].margin) > 1e-2))
    assert summary["fate_match_fraction"] == pytest.approx(1 - miss.mean())
    assert summary["collapse_threshold"] == collapse_threshold(1.0, 0.0)


def test_modes_command_writes_grid(tmp_path):
    out = tmp_path / "modes"
    main(["modes", "--p0", "0.2,0.8", "--s0", "0:1:3", "--eta", "0,0.05", "--t-end", "50", "--dt", "0.05",
          "--n-save", "11", "--out", str(out), "--quiet"])
    summary = json.loads((out / "summary.json").read_text())
    assert summary["n_trajectories"] == 2 * 3 * 2
    assert summary["axes"]["s0"] == [0.0, 0.5, 1.0]
    with np.load(out / "trajectories.npz") as z:
        # axes order: p0, s0, alpha_p, eta, sigma2, tau
        assert z["p"].shape == (11, 2, 3, 1, 2, 1, 1)
        assert np.all(z["s"][:, :, 0] == 0)  # s0 = 0 stays 0 (s = 0 is invariant, Eqn 12)
        survived = z["s"][-1] > summary["s_floor"]
    # the summary's fate agreement recomputed: the basin rule's fates against the simulated ones
    from dynamics.cli import grid
    from dynamics.exact import classify_basin

    g = grid({k: np.asarray(v, dtype=float) for k, v in summary["axes"].items()})
    pred = classify_basin(g["p0"], g["s0"], alpha_p=g["alpha_p"], eta=g["eta"], sigma2=g["sigma2"],
                          tau=g["tau"])
    assert summary["n_survived"] == int(survived.sum())
    assert summary["fate_match_fraction"] == pytest.approx(float(np.mean(pred.survives == survived)))


def test_modes_command_with_ema(tmp_path):
    out = tmp_path / "ema"
    main(["modes", "--p0", "0.5", "--s0", "0.5", "--beta", "0.4", "--t-end", "10", "--out", str(out), "--quiet"])
    summary = json.loads((out / "summary.json").read_text())
    assert summary["beta"] == 0.4 and "fate_match_fraction" not in summary  # rule is for fixed tau
    assert "fixed tau" in summary["fate_prediction"]


def test_scalar_command(tmp_path):
    out = tmp_path / "scalar"
    main(["scalar", "--w-p0", "0.1", "--w0", "0.5,1.0", "--t-end", "5", "--out", str(out), "--quiet"])
    summary = json.loads((out / "summary.json").read_text())
    assert summary["n_trajectories"] == 2
    with np.load(out / "trajectories.npz") as z:
        assert z["w"].shape[0] == 201 and np.isfinite(z["w_a"]).all()


@pytest.mark.parametrize("argv, name", [
    (["modes", "--sigma2", "-1"], "sigma2"), (["modes", "--p0", "a,b"], "--p0"),
    (["scalar", "--beta", "0"], "beta"), (["demo", "--n-p", "0"], "--n-p"),
])
def test_bad_cli_input_exits_2_naming_the_argument(argv, name, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(argv + ["--out", str(tmp_path / "x"), "--quiet"])
    assert exit_.value.code == 2
    assert name in capsys.readouterr().err


def test_each_module_registers_its_own_command():
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    assert set(sub.choices) == {"demo", "modes", "scalar", "matrix", "reduced", "sgd"}
    # one spelling of the progress switch in every command
    for name, p in sub.choices.items():
        flags = {s for a in p._actions for s in a.option_strings}
        assert "--quiet" in flags and "--progress" not in flags, name
    # a module that does not exist is skipped, not an error
    assert "demo" in next(a for a in build_parser(("dynamics.demo", "dynamics.not_there"))._actions
                          if a.dest == "command").choices


def test_bench_smoke(capsys):
    from dynamics.bench import main as bench

    res = bench(["--n-traj", "300", "--steps", "100", "--numpy-steps", "10", "--n-ivp", "3", "--matrix-steps", "5"])
    text = capsys.readouterr().out
    assert "numba kernel" in text and "solve_ivp" in text and "matrix ODE" in text
    # kernel and fallback run the same operations in the same order: see test_modes
    assert res["numpy_euler_max_diff"] <= 1e-12 and res["numpy_rk4_max_diff"] <= 1e-12
    assert res["numba_euler_s"] > 0 and res["solve_ivp_s"] > 0


def test_divergence_is_one_line_and_exit_3(tmp_path):
    import subprocess
    import sys
    from pathlib import Path

    r = subprocess.run([sys.executable, "-m", "dynamics", "modes", "--eta", "1e6", "--quiet", "--out",
                        str(tmp_path)], capture_output=True, text=True, cwd=Path(__file__).resolve().parents[1])
    assert r.returncode == 3 and "diverged" in r.stderr and "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1


def test_a_grid_that_cannot_fit_in_memory_is_refused_before_allocating(tmp_path):
    """Linux overcommits, so a huge grid is not a MemoryError but a kill by the kernel minutes
    later; the command refuses it first, in one line, naming the argument."""
    import subprocess
    import sys

    from dynamics._validate import available_memory

    free = available_memory()
    assert free is not None and free > 2**20
    n = int(free / 8) + 1  # one axis alone is larger than what is free
    for args in (["--p0", f"0:1:{n}"], ["--p0", "0:1:100000", "--s0", "0:1:100000"]):
        r = subprocess.run([sys.executable, "-m", "dynamics", "modes", *args, "--quiet",
                            "--out", str(tmp_path / "m")], capture_output=True, text=True, timeout=60)
        assert r.returncode == 2 and "GiB are available" in r.stderr and "Traceback" not in r.stderr
        assert len(r.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("argv", [
    ["modes", "--p0=-0.3,0.5", "--s0", "0.5", "--t-end", "5"],
    ["scalar", "--t-end", "2"],
    ["matrix", "--t-end", "0.5", "--n-save", "11"],
    ["reduced", "--t-end", "0.5", "--n-save", "11"],
    ["sgd", "--t-end", "0.2", "--n-save", "11"]])
def test_plot_draws_what_was_computed(tmp_path, argv):
    """``--plot`` writes OUT/plot.png beside the numbers (a PNG of the figure's size); without
    it there is none."""
    from PIL import Image

    out = tmp_path / argv[0]
    assert main([*argv, "--out", str(out), "--quiet", "--plot"]) == 0
    with Image.open(out / "plot.png") as im:
        assert im.format == "PNG" and im.size[0] > 2 * im.size[1] * 0.9  # two panels side by side
    bare = tmp_path / "bare"
    assert main([*argv, "--out", str(bare), "--quiet"]) == 0
    assert not (bare / "plot.png").exists()

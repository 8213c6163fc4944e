"""Paper Fig. 2 from real runs: the spectrum of ``F`` and the predictor ``Wp`` over training, one
row per run (e.g. a linear predictor trained by SGD next to DirectPred).

Columns: (a) ``log10`` of the eigenvalues ``s_j`` of ``F`` (one line per mode ``j``, sorted
descending at each snapshot; THEORY.md section 3's running correlation of the online projector
outputs, or the probe batch's ``C_same`` when the predictor keeps none); (b) the eigenvalues of
``sym(Wp)`` (a dashed line at 0: ``Wp`` becoming positive semi-definite); (c) the alignment
``cos(Wp u_j, u_j)`` for the eigenvectors ``u_j`` of ``F`` (1 when ``Wp`` shares the eigenbasis of
``F`` with positive eigenvalues, Theorem 3); (d) the asymmetry ``||Wp - Wp^T||_F / ||Wp||_F``.
Mode colour: dark = leading mode of ``F``. Every number is read from the runs' spectra snapshots
(``spectra/step_*.npz``, computed by :mod:`analysis.metrics`); nothing is recomputed here.

Run: ``python -m figures.fig2_real_spectra [RUN ...] [--labels A B ...] [--out DIR]``.
Without RUN: seed 0 of the linear-predictor and DirectPred rows of the CPU sweep
(``figures/out/sweeps/cpu/predictor.name=linear/seed0`` and ``.../base/seed0``, the
Fashion-MNIST recipe of ``realnet``'s ``fmnist_linear`` and ``fmnist_directpred`` configs).
Writes ``DIR/fig2_real_spectra/``: PNG, PDF, ``modes.csv`` (run, step, mode, F eigenvalue, sym(Wp)
eigenvalue, alignment), ``scalars.csv`` (run, step, asymmetry, relative commutator, effective
rank) and ``summary.json``.
"""
from __future__ import annotations

import argparse
import json
import logging
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from analysis.runs import load_run
from analysis.errors import ConfigError

from ._common import (doc_summary, DEFAULT_OUT, FigureData, STYLE, label_panel, param_colors, rows,
                      save_figure, to_json, write_table)

NAME = "fig2_real_spectra"
DEFAULT_RUNS = ("figures/out/sweeps/cpu/predictor.name=linear/seed0",
                "figures/out/sweeps/cpu/base/seed0")
#: Eigenvalues of F at or below this are drawn at the floor (log of a non-positive number).
LOG_FLOOR = 1e-12


@dataclass(frozen=True)
class Config:
    runs: tuple[str, ...] = DEFAULT_RUNS
    labels: tuple[str, ...] = ()

    def run_labels(self) -> tuple[str, ...]:
        return self.labels or tuple(_default_label(r) for r in self.runs)


def _default_label(run: str) -> str:
    if (Path(run) / "config.json").is_file():
        pred = load_run(run).cfg.predictor
        if pred.name == "linear":
            return "linear, SGD" + (", symmetrised" if pred.symmetrize else "")
        if pred.name == "directpred":
            return f"DirectPred (eps {pred.eps:g}, freq {pred.freq})"
        return pred.name
    return Path(run).name


def run_tables(run_dir: str | Path, label: str) -> tuple[dict[str, list], dict[str, list]]:
    """Per-mode and scalar columns of one run's snapshots (those holding ``Wp``)."""
    run = load_run(run_dir)
    modes = {k: [] for k in ("run", "step", "mode", "F_eig", "Wp_sym_eig", "alignment")}
    scal = {k: [] for k in ("run", "step", "asymmetry", "relative_commutator",
                            "effective_rank", "F_source")}
    for snap in run.snapshots():
        if "Wp_sym_eigvals" not in snap:
            raise ConfigError(f"runs: {str(run_dir)!r} has snapshots without a linear predictor "
                             "Wp (Fig. 2 needs predictor.name = linear or directpred)")
        s = np.asarray(snap["F_eigvals"], dtype=np.float64)
        d = len(s)
        modes["run"] += [label] * d
        modes["step"] += [int(snap["step"])] * d
        modes["mode"] += list(range(d))
        modes["F_eig"] += s.tolist()
        modes["Wp_sym_eig"] += np.asarray(snap["Wp_sym_eigvals"], dtype=np.float64).tolist()
        modes["alignment"] += np.asarray(snap["alignment"], dtype=np.float64).tolist()
        for k in ("asymmetry", "relative_commutator", "effective_rank"):
            scal[k].append(float(snap[k]))
        scal["run"].append(label)
        scal["step"].append(int(snap["step"]))
        scal["F_source"].append(str(snap["F_source"]))
    if not scal["step"]:
        raise ConfigError(f"runs: {str(run_dir)!r} has no spectra snapshots")
    return modes, scal


def _run_summary(m: dict[str, np.ndarray], sc: dict[str, np.ndarray]) -> dict[str, float]:
    """The numbers quoted in the README: first and last snapshot of one run."""
    steps = np.unique(m["step"])
    out: dict[str, float] = {"first_step": int(steps[0]), "last_step": int(steps[-1])}
    for tag, step in (("first", steps[0]), ("last", steps[-1])):
        r = rows(m, step=step)
        s = r["F_eig"]
        out[f"{tag}_F_eig_max"] = float(s.max())
        out[f"{tag}_F_eig_min"] = float(s.min())
        out[f"{tag}_F_eig_log10_range"] = float(np.log10(max(s.max(), LOG_FLOOR)) -
                                                np.log10(max(s.min(), LOG_FLOOR)))
        out[f"{tag}_Wp_sym_eig_max"] = float(r["Wp_sym_eig"].max())
        out[f"{tag}_Wp_sym_eig_min"] = float(r["Wp_sym_eig"].min())
        out[f"{tag}_alignment_mean"] = float(r["alignment"].mean())
        out[f"{tag}_alignment_min"] = float(r["alignment"].min())
        out[f"{tag}_alignment_top8_mean"] = float(r["alignment"][:8].mean())
        rs = rows(sc, step=step)
        out[f"{tag}_asymmetry"] = float(rs["asymmetry"][0])
        out[f"{tag}_relative_commutator"] = float(rs["relative_commutator"][0])
        out[f"{tag}_effective_rank"] = float(rs["effective_rank"][0])
    return out


def compute(cfg: Config) -> FigureData:
    if not cfg.runs:
        raise ConfigError("runs: give at least one run folder")
    labels = cfg.run_labels()
    if len(labels) != len(cfg.runs):
        raise ConfigError(f"labels: {len(labels)} labels for {len(cfg.runs)} runs")
    modes = {k: [] for k in ("run", "step", "mode", "F_eig", "Wp_sym_eig", "alignment")}
    scal = {k: [] for k in ("run", "step", "asymmetry", "relative_commutator",
                            "effective_rank", "F_source")}
    for run_dir, label in zip(cfg.runs, labels):
        m, s = run_tables(run_dir, label)
        for k in modes:
            modes[k] += m[k]
        for k in scal:
            scal[k] += s[k]
    mt = {k: np.asarray(v) for k, v in modes.items()}
    st = {k: np.asarray(v) for k, v in scal.items()}
    summary = {"runs": {label: {"folder": str(r), **_run_summary(rows(mt, run=label),
                                                                  rows(st, run=label))}
                        for r, label in zip(cfg.runs, labels)}}
    return FigureData({"modes": mt, "scalars": st}, summary)


#: Modes drawn one by one in the alignment panel (the others as a 10-90 % band and a median).
TOP_MODES = 8


def _run_caption(folder: str) -> str:
    """``\n<dataset>, <steps> steps, <arch> x<width>`` from the run's config.json ('' if absent)."""
    if not (Path(folder) / "config.json").is_file():
        return ""
    cfg = load_run(folder).cfg
    steps = cfg.train.steps or f"{cfg.train.epochs:g} epochs"
    return (f"\n{cfg.data.dataset}, {steps} steps,\n"
            f"{cfg.model.arch} x{cfg.model.width:g}, {cfg.predictor.name}")


def plot(data: FigureData, cfg: Config):
    import matplotlib.pyplot as plt
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import Normalize

    mt, st = data.tables["modes"], data.tables["scalars"]
    labels = list(dict.fromkeys(mt["run"].tolist()))
    fig, axes = plt.subplots(len(labels), 4, figsize=(11.5, 2.5 * len(labels) + 0.3),
                             squeeze=False, constrained_layout=True)
    letters = iter("abcdefghijklmnopqrstuvwxyz")
    for row, label in enumerate(labels):
        m, sc = rows(mt, run=label), rows(st, run=label)
        d = int(m["mode"].max()) + 1
        colors = param_colors(d, "viridis", 0.0, 0.9)
        ax_s, ax_w, ax_a, ax_y = axes[row]
        for j in range(d):
            r = rows(m, mode=j)
            ax_s.plot(r["step"], np.log10(np.maximum(r["F_eig"], LOG_FLOOR)), color=colors[j],
                      lw=0.9)
            ax_w.plot(r["step"], r["Wp_sym_eig"], color=colors[j], lw=0.9)
            if j < TOP_MODES:  # the leading modes one by one; the rest as a band
                ax_a.plot(r["step"], r["alignment"], color=colors[j], lw=0.9)
        steps = np.unique(m["step"])
        per_step = [rows(m, step=t)["alignment"] for t in steps]
        if d > TOP_MODES:
            ax_a.fill_between(steps, [np.nanpercentile(a, 10) for a in per_step],
                              [np.nanpercentile(a, 90) for a in per_step], color="0.6", alpha=0.3,
                              lw=0, label=f"all {d} modes: 10-90 %")
            ax_a.plot(steps, [np.nanmedian(a) for a in per_step], color="k", lw=1.4, ls="--",
                      label=f"all {d} modes: median")
            ax_a.legend(loc="lower right", fontsize="small")
        ax_w.axhline(0.0, color="0.4", ls="--", lw=0.8)
        ax_a.axhline(1.0, color="0.4", ls=":", lw=0.8)
        ax_a.set_ylim(min(-0.05, float(np.nanmin(m["alignment"])) - 0.05), 1.05)
        ax_y.plot(sc["step"], sc["asymmetry"], color="C3", label=r"$\|W_p-W_p^\top\|/\|W_p\|$")
        ax_y.plot(sc["step"], sc["relative_commutator"], color="C0", ls="--",
                  label=r"$\|[F,W_p]\|/(\|F\|\|W_p\|)$")
        ax_y.set_ylim(bottom=0.0)
        ax_y.legend(loc="upper right")
        probe_only = bool(np.all(sc["F_source"] == "probe"))  # no running F in the predictor
        titles = ("log$_{10}$ eigenvalues of $F$" + (" (probe batch)" if probe_only else ""),
                  r"eigenvalues of sym($W_p$)",
                  r"alignment cos($W_p u_j, u_j$)" + (f", top {TOP_MODES}" if d > TOP_MODES else ""),
                  "asymmetry / commutator")
        for ax, title in zip(axes[row], titles):
            ax.set_title(title)
            ax.set_xlabel("step")
            label_panel(ax, next(letters))
        ax_s.set_ylabel(label + _run_caption(data.summary["runs"][label]["folder"]), fontweight="bold")
        fig.colorbar(ScalarMappable(Normalize(0, d - 1), plt.get_cmap("viridis")),
                     ax=ax_a, label="mode j of F (0 = largest)", fraction=0.05, pad=0.02)
    return fig


def main(argv: Sequence[str] | None = None) -> Path:
    p = argparse.ArgumentParser(prog=f"python -m figures.{NAME}",
                                description=doc_summary(__doc__))
    p.add_argument("runs", nargs="*", help=f"run folders (default: {' '.join(DEFAULT_RUNS)})")
    p.add_argument("--labels", nargs="+", default=(), help="row labels, one per run")
    p.add_argument("--out", default=DEFAULT_OUT,
                   help=f"output root; files go to OUT/{NAME}/ (default {DEFAULT_OUT})")
    args = p.parse_args(argv)
    cfg = Config(tuple(args.runs) or DEFAULT_RUNS, tuple(args.labels))
    import matplotlib

    matplotlib.use("Agg")
    logging.getLogger("fontTools").setLevel(logging.ERROR)
    import matplotlib.pyplot as plt

    t0 = time.perf_counter()
    try:
        data = compute(cfg)
    except ConfigError as e:
        p.exit(2, f"error: {e}\n(the committed sweep runs keep their summaries, not their spectra: "
                  "recompute them with `python -m realnet.sweeps figures/sweeps/cpu.toml --out "
                  "figures/out/sweeps/cpu --tables predictors --rerun-without-spectra --jobs 2`, "
                  "or name run folders that have spectra/)\n")
    out_dir = Path(args.out) / NAME
    out_dir.mkdir(parents=True, exist_ok=True)
    with plt.rc_context(STYLE):
        fig = plot(data, cfg)
        written = save_figure(fig, out_dir, NAME)
    plt.close(fig)
    for tname, table in data.tables.items():
        written.append(write_table(out_dir / f"{tname}.csv", table))
    summary = {"figure": NAME, "config": asdict(cfg),
               "seconds": round(time.perf_counter() - t0, 3), **data.summary}
    (out_dir / "summary.json").write_text(json.dumps(to_json(summary), indent=2) + "\n")
    print(f"{NAME}: wrote {len(written) + 1} files to {out_dir}")
    return out_dir


if __name__ == "__main__":
    main()

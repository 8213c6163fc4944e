"""Predicted against measured for one real run (``python -m analysis compare RUN_DIR``).

Reads the run folder (:mod:`analysis.runs`), maps its hyperparameters (:mod:`analysis.hparams`),
predicts the fixed point of every mode of the final snapshot (:mod:`analysis.predict`), measures
the same quantities, diagnoses the collapse over time (:mod:`analysis.collapse`) and writes
``report.json``, ``modes.csv`` and two figures (:mod:`analysis.plots`).

Per-mode errors (over the modes predicted *and* measured to survive):

- ``s``: ``|log10 s_rel_pred - log10 s_rel_meas|`` (``s_rel = s_j / s_max``; for the linear
  predictor measured on the cross-view moment, for set predictors on the run's ``F``);
- ``p``: ``|p_pred - p_meas|`` and, when the loss is scale-free in ``Wp`` (cosine, trained
  linear predictor), ``|p_pred/p_pred_max - p_meas/p_meas_max|``;
- fates: the share of all modes whose survival/collapse was predicted right.

A mode is flagged ``still_moving`` when its ``s_rel`` along the final eigenvector changed by more
than :data:`MOVING_DEX` decades between the last two snapshots: the fixed-point prediction does
not apply to it yet. Trend: for the surviving modes whose ``s_rel`` is more than
:data:`MOVING_DEX` decades from the prediction, ``toward_prediction`` is the share whose
``log10 s_rel`` moved toward the prediction since the snapshot at 2/3 of the run (along the final
eigenvectors): near 1 means "not converged yet, heading there", near 0 "settled elsewhere".
"""
from __future__ import annotations

import csv
import dataclasses
import json
from pathlib import Path
from typing import Any

import numpy as np

from . import metrics
from .jsonio import json_ready
from .collapse import RANK_DROP, collapse_diagnostics
from .hparams import map_hparams, time_of_steps
from .predict import MeasuredModes, ModePrediction, measure_modes, predict_modes
from .runs import Run, load_run, require_finished

__all__ = ["compare_run", "write_compare", "mode_table", "comparison_summary", "verdict",
           "MOVING_DEX", "json_ready"]

#: Change of ``log10 s_rel`` between the last two snapshots above which a mode is still moving.
MOVING_DEX = 0.1



def _log10(x: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(x > 0, np.log10(np.where(x > 0, x, 1.0)), np.nan)


def mode_table(meas: MeasuredModes, pred: ModePrediction | None,
               moving: np.ndarray | None = None,
               trend: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """Per-mode columns (index 0 = largest mode of the final ``F``)."""
    d = meas.s.size
    nan = np.full(d, np.nan)
    s_meas = meas.cross_rel if (pred is not None and pred.s_kind == "cross") else meas.s_rel
    tab: dict[str, np.ndarray] = {
        "mode": np.arange(d),
        "s": meas.s,
        "s_rel_meas": s_meas,
        "sigma2": meas.sigma2,
        "survives_meas": meas.survives,
        "p_meas": nan if meas.p is None else meas.p,
        "alignment_meas": nan if meas.alignment is None else meas.alignment,
        "still_moving": np.zeros(d, bool) if moving is None else moving,
        "dlog10_s_recent": nan if trend is None else trend,
    }
    if pred is not None:
        tab.update(s_rel_pred=pred.s_rel, p_pred=pred.p, alignment_pred=pred.alignment,
                   survives_pred=pred.survives, fate_agrees=pred.survives == meas.survives)
    return tab


def _rel_to_max(v: np.ndarray, mask: np.ndarray) -> np.ndarray:
    if not mask.any():
        return np.full(v.shape, np.nan)
    top = np.nanmax(np.abs(np.where(mask, v, np.nan)))
    return np.where(mask, v / top, np.nan) if top > 0 else np.full(v.shape, np.nan)


def comparison_summary(tab: dict[str, np.ndarray], pred: ModePrediction | None) -> dict[str, Any]:
    """Fate agreement and error statistics (module docstring)."""
    d = int(tab["mode"].size)
    out: dict[str, Any] = {"n_modes": d, "n_surviving_meas": int(tab["survives_meas"].sum())}
    if pred is None:
        return out
    agree = tab["fate_agrees"]
    both = tab["survives_meas"] & tab["survives_pred"]
    out.update(n_surviving_pred=int(tab["survives_pred"].sum()), n_fates_right=int(agree.sum()),
               fate_share=float(agree.mean()), n_both_surviving=int(both.sum()))
    ds = np.abs(_log10(tab["s_rel_pred"]) - _log10(tab["s_rel_meas"]))[both]
    ds = ds[np.isfinite(ds)]
    out["s_log10_err_median"] = float(np.median(ds)) if ds.size else None
    out["s_log10_err_max"] = float(np.max(ds)) if ds.size else None
    dp = np.abs(tab["p_pred"] - tab["p_meas"])[both]
    dp = dp[np.isfinite(dp)]
    out["p_err_median"] = float(np.median(dp)) if dp.size else None
    out["p_err_max"] = float(np.max(dp)) if dp.size else None
    if pred.scale_free_p:
        pr = np.abs(_rel_to_max(tab["p_pred"], both) - _rel_to_max(tab["p_meas"], both))[both]
        pr = pr[np.isfinite(pr)]
        out["p_rel_err_median"] = float(np.median(pr)) if pr.size else None
        out["p_rel_err_max"] = float(np.max(pr)) if pr.size else None
    al = tab["alignment_meas"][tab["survives_meas"]]
    al = al[np.isfinite(al)]
    out["alignment_meas_mean"] = float(np.mean(al)) if al.size else None
    out["alignment_err_mean"] = float(np.mean(np.abs(1.0 - al))) if al.size else None
    err = _log10(tab["s_rel_pred"]) - _log10(tab["s_rel_meas"])
    far = both & (np.abs(err) > MOVING_DEX) & np.isfinite(tab["dlog10_s_recent"])
    out["n_far"] = int(far.sum())
    out["toward_prediction"] = (float(np.mean(np.sign(tab["dlog10_s_recent"][far]) == np.sign(err[far])))
                                if far.any() else None)
    wrong = np.flatnonzero(~agree)
    out["disagreeing_modes"] = wrong.tolist()
    out["disagreeing_still_moving"] = int(tab["still_moving"][wrong].sum())
    return out


def _describe_modes(idx: list[int], d: int) -> str:
    if not idx:
        return ""
    shown = ", ".join(map(str, idx[:8])) + (", ..." if len(idx) > 8 else "")
    where = ""
    if min(idx) >= d - max(len(idx), d // 4):
        where = " (the smallest modes)"
    elif max(idx) < max(len(idx), d // 4):
        where = " (the largest modes)"
    return f"modes {shown}{where}"


def verdict(summary: dict[str, Any], pred: ModePrediction | None, tab: dict[str, np.ndarray],
            predictor: str) -> str:
    """One sentence: how many fates the theory got right, where it failed, the typical errors."""
    d = summary["n_modes"]
    if pred is None:
        return (f"no mode-level theory for predictor {predictor!r}; collapse diagnostics only "
                f"({summary['n_surviving_meas']}/{d} modes alive at the end)")
    parts = [f"theory ({pred.equations}) predicts {summary['n_fates_right']}/{d} fates"]
    wrong = summary["disagreeing_modes"]
    if wrong:
        died = [i for i in wrong if tab["survives_pred"][i] and not tab["survives_meas"][i]]
        lived = [i for i in wrong if not tab["survives_pred"][i] and tab["survives_meas"][i]]
        if died:
            parts.append(f"collapsed although predicted to survive: {_describe_modes(died, d)}")
        if lived:
            parts.append(f"alive although predicted to collapse: {_describe_modes(lived, d)}")
        if summary["disagreeing_still_moving"]:
            parts.append(f"{summary['disagreeing_still_moving']} of the disagreeing modes still "
                         "moving at the last snapshot (not converged)")
    if summary.get("s_log10_err_median") is not None:
        parts.append(f"median |dlog10 s_rel| = {summary['s_log10_err_median']:.2f} over "
                     f"{summary['n_both_surviving']} surviving modes")
    if summary.get("toward_prediction") is not None:
        parts.append(f"{summary['toward_prediction']:.0%} of the {summary['n_far']} surviving modes "
                     f"off by > {MOVING_DEX:g} dex moved toward the prediction over the last third")
    if summary.get("p_err_median") is not None:
        parts.append(f"median |dp| = {summary['p_err_median']:.3g}")
    if summary.get("p_rel_err_median") is not None:
        parts.append(f"median |d(p/p_max)| = {summary['p_rel_err_median']:.3g}")
    return "; ".join(parts)


def _moving(run: Run, meas: MeasuredModes, tol: float) -> np.ndarray | None:
    steps = [s for s in run.snapshot_steps if s < meas.step]
    if not steps:
        return None
    prev_snap = run.snapshot(steps[-1])
    if "F" not in prev_snap:
        return None
    prev = measure_modes(prev_snap, tol=tol, U=meas.U)
    return np.abs(_log10(prev.s_rel) - _log10(meas.s_rel)) > MOVING_DEX


def _trend(run: Run, meas: MeasuredModes, tol: float, frac: float = 2.0 / 3.0) -> np.ndarray | None:
    """``log10 s_rel`` (along the final eigenvectors) at the end minus at the snapshot nearest to
    ``frac`` of the final step."""
    steps = [s for s in run.snapshot_steps if 0 < s < meas.step]
    if not steps:
        return None
    st = min(steps, key=lambda s: abs(s - frac * meas.step))
    snap = run.snapshot(st)
    if "F" not in snap:
        return None
    earlier = measure_modes(snap, tol=tol, U=meas.U)
    return _log10(meas.s_rel) - _log10(earlier.s_rel)


def compare_run(run_dir: str | Path, *, convention: str = "continuous",
                tol: float = metrics.COLLAPSE_REL_TOL,
                rank_drop: float = RANK_DROP) -> tuple[dict[str, Any], dict[str, Any]]:
    """Compare one run folder: returns ``(report, data)``: the JSON-ready report and the arrays
    the figures plot (per-mode table, spectra over time, collapse diagnostics)."""
    require_finished(run_dir)
    run = load_run(run_dir)
    hp = map_hparams(run.cfg, convention)
    first = run.snapshot(run.snapshot_steps[0]) if run.snapshot_steps else None
    final = run.final_snapshot()
    ref = None if first is None or "F" not in first else float(metrics.spectrum(first["F"])[0])
    meas = measure_modes(final, tol=tol, reference_smax=ref)
    pred = predict_modes(meas, hp, run.cfg)
    tab = mode_table(meas, pred, _moving(run, meas, tol), _trend(run, meas, tol))
    summ = comparison_summary(tab, pred)
    predictor = run.cfg.predictor.name
    diag = collapse_diagnostics(run, tol=tol, rank_drop=rank_drop)
    t_end = float(time_of_steps([meas.step], hp, run.lr_log())[0])
    report = {
        "run": str(run.path),
        "predictor": predictor,
        "method": dataclasses.asdict(run.cfg.method),
        "seed": run.cfg.seed,
        "final_step": meas.step,
        "theory_time_final": t_end,
        "hparams": hp.to_dict(),
        "theory": None if pred is None else {"name": pred.theory, "equations": pred.equations,
                                              "notes": pred.notes},
        "measurement_rule": f"mode survives iff s_j > {tol:g} s_max (and s_max > {tol:g} x the "
                            "first snapshot's s_max); sigma2_j = (same - cross)/cross along u_j",
        "summary": summ,
        "verdict": verdict(summ, pred, tab, predictor),
        "collapse": diag.to_dict(),
        "run_summary": {k: v for k, v in (run.summary or {}).items() if k != "spectra"},
        "modes": [{k: v[i] for k, v in tab.items()} for i in range(tab["mode"].size)],
    }
    data = {"table": tab, "collapse": diag, "run": run, "pred": pred, "meas": meas, "hp": hp}
    return json_ready(report), data


def _write_csv(path: Path, tab: dict[str, np.ndarray]) -> None:
    cols = list(tab)
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(cols)
        for i in range(tab["mode"].size):
            row = []
            for c in cols:
                v = tab[c][i]
                row.append(f"{v:.6g}" if isinstance(v, (float, np.floating)) else
                           (int(v) if isinstance(v, (bool, np.bool_)) else v))
            w.writerow(row)


def write_compare(run_dir: str | Path, out: str | Path | None = None, **kwargs: Any) -> dict[str, Any]:
    """Run :func:`compare_run` and write ``report.json``, ``modes.csv``,
    ``predicted_vs_measured.png`` and ``spectra_over_time.png`` into ``out`` (default
    ``RUN_DIR/analysis``). Returns the report."""
    from .plots import plot_predicted_vs_measured, plot_spectra_over_time

    report, data = compare_run(run_dir, **kwargs)
    out = Path(run_dir) / "analysis" if out is None else Path(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "report.json").write_text(json.dumps(report, indent=2) + "\n")
    _write_csv(out / "modes.csv", data["table"])
    plot_predicted_vs_measured(data, out / "predicted_vs_measured.png")
    plot_spectra_over_time(data, out / "spectra_over_time.png")
    report["files"] = sorted(str(p) for p in out.iterdir())
    return report

"""Forward predictions from a cutoff, scored against trivial baselines (``python -m analysis
scorecard RUN_DIR...``).

Every forecaster sees only what is known at the cutoff snapshot (the first spectra snapshot at or
after ``cutoff`` x the run's last snapshot step, 15 % by default) and the one before it: ``F`` and
its eigenbasis ``U_c``, the probe's same-view and cross-view moments along ``U_c`` (with their
bootstrap replicates when the snapshot has them), the predictor's ``Wp``, the config. It predicts
what happens *after* the cutoff and is scored on that.

Measured after the cutoff (:func:`measure_after`)
    ``m_j(k) = u_j^T F_k u_j`` along the cutoff's eigenvectors at every later snapshot ``k``, and
    the eigenvalues of ``F_k``. Final fate of cutoff mode ``j``: alive iff at least half of
    ``u_j`` lies in the final surviving subspace (``||P u_j||^2 >= 1/2``, ``P`` the projector on
    the eigenvectors of ``F_T`` with eigenvalue ``> tol x`` the largest), and the spectrum as a
    whole has not collapsed (``max eig F_T > tol x s_max`` at the cutoff). The subspace, not
    ``m_j(T)``, decides because the eigenvectors rotate: along a cutoff direction the mass of
    the rotated top modes keeps every ``m_j(T)`` above ``tol``.

Forecasters (:data:`FORECASTERS`; ``None`` where one does not apply to a run's predictor)
    Theories:

    ``cosine_modes`` (set predictors: directpred, directcopy)
        The project's mean-field cosine-loss per-mode flow (:func:`dynamics.cosine.cosine_mode_rhs`)
        integrated forward from the cutoff's ``s_j`` with the cutoff's ``sigma2_j`` and the run's
        DirectSet settings (``alpha``, ``eps``, ``floor``, ``c_j``; DirectCopy as ``alpha = 1``,
        ``eps = eps_copy``; the weight set at every step, so ``freq > 1`` is not modelled; a mode
        with no view-invariant signal gets the largest measured ``sigma2``). Weight decay is left out: in this flow it shrinks every mode by the
        same factor and so cannot change the relative spectrum the scorecard compares (with the
        cosine loss the scale is free; THEORY.md section 5); its only effect, a faster flow at a
        smaller scale, is absorbed in the fitted time factor below.
    ``cosine_modes_clocked`` (set predictors)
        The same flow with one clock per mode (:func:`analysis.forecasters.mode_clocks`): every
        per-mode flow runs ``x_m`` times faster, ``x_m`` the input variance along the mode on the
        linear network (derived and tested in :mod:`dynamics.cosine`), the kernel along it in a
        deep one; fitted on the window before the cutoff, after the run's time factor.
    ``l2_modes``
        The paper's L2 per-mode dynamics. For set predictors Eqn 12 with ``p`` set by DirectSet
        (:func:`dynamics.cosine.l2_mode_rhs`), integrated. For the trained linear predictor
        Eqns 11-12 (``tau = 1``) integrated from the cutoff's ``(p_j, s_j)`` in ``(p, log s)``;
        under the cosine loss ``p`` and ``s`` are first put in the theory's units by placing the
        top mode at its stable fixed point (``p*_+``, on the parabola ``s = p^2 / alpha_p``).
    ``l2_basin`` (trained linear predictor)
        The fixed points of Eqn 16 with the basin rule: mode ``j`` survives iff ``eta <
        eta_c(sigma2_j)`` and its cutoff ``p_j`` lies above ``p*_-`` (fates and ranks, no path).
    ``directset_threshold`` (every predictor; Wang et al. 2021)
        Feature ``k`` survives iff ``a_k^2 >= 4 eta (a_k + b_k)``, with the cross-view moment
        ``a_k`` and the augmentation moment ``b_k = same_k - cross_k`` along ``u_k``, both
        divided by the largest ``a`` (the scale of Eqn 16's ``X = I``), ``eta`` from
        :mod:`analysis.hparams`. Ranks by the margin ``a_k^2 - 4 eta (a_k + b_k)``.
    ``eqn17`` (run level, trained linear predictors; :func:`eqn17_aligns`)
        Theorem 3's condition at the cutoff: does ``Wp`` keep aligning with ``F`` (the relative
        commutator lower at the end than at the cutoff)? Against ``always_aligns`` and the
        persistence of the trend over the window before the cutoff.
    ``stepwise`` (every predictor; Simon et al. 2023)
        Modes are learned one at a time in the order of their view-invariant eigenvalue: the
        final ranks follow ``a_k``, and the modes alive at the cutoff are the top ones of that
        order (as many as are alive).

    Baselines, theory-free, from the same information: ``persistence`` (the cutoff's state stays:
    fates, relative spectrum and ranks), ``all_survive`` (every mode alive, an isotropic
    spectrum), ``all_collapse``, ``log_linear`` (each mode's log-rate over the window before the
    cutoff extrapolated with damping, time constant 5 windows fixed in advance, capped at the top
    mode: :func:`analysis.forecasters.log_linear`) and ``trend`` (orderings only: each run-level
    quantity at the cutoff plus its trend since the snapshot before).

    Oracle, labelled so everywhere: ``top_k`` (the ``k`` largest cutoff modes survive; ``k`` is
    the mean number of final survivors of the *other* runs given, the same setting's when there
    are any). It reads outcomes after the cutoff, so it is a replicate ceiling, not a forecast.

    A forecaster that fails on a run (a numerical error, a path that turns NaN or inf) is recorded
    for that run as an ``error`` row (neither alive nor dead) and the scorecard goes on.

Time axis. The integrating theories run on the run's own time axis: theory time is ``k x
(step - cutoff step)`` with one factor ``k`` per run and theory, fitted on the window *before* the
cutoff (the previous snapshot's state, integrated over the window, against the cutoff's measured
relative spectrum; a log grid of ``k``, :data:`TIME_GRID`). The mapping of :mod:`analysis.hparams`
gives the nominal ``a``; ``k / a`` is reported, and the ``*_nominal`` variants integrate at ``k =
a`` itself (the a-priori mapping, no fit). On the linear network the a-priori mapping is exact once
each mode runs on its own clock (``t = step x lr`` times ``u_j^T X u_j``; tested in
``tests/test_scorecard.py``): a single fitted ``k`` lands at the dying modes' input variances.

Across runs (:func:`orderings`): over all the runs given (one sweep table, say), the Spearman
correlation of each forecaster's predicted number of surviving modes, participation ratio and RankMe of
the final spectrum against the measured ones, with a bootstrap interval over runs.

The state and the measurements live in :mod:`analysis.cutoff`, the forecasters in
:mod:`analysis.forecasters`; this module scores and aggregates.

Scores (:func:`score`): fate accuracy and balanced accuracy (mean recall over the classes present),
the final relative spectrum's error in decades (sorted predicted against sorted measured
eigenvalues, both ``log10`` and floored at the collapse tolerance ``tol``, median over the ranks
alive in the prediction *or* in the measurement, so that a rank predicted alive that died and a
rank predicted dead that lived both cost), the path error (the same at every snapshot after the
cutoff, median over snapshots and those ranks), and the Spearman correlation of predicted
against measured final values per cutoff mode.
"""
from __future__ import annotations

import csv
import math
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from . import metrics
from .cutoff import CUTOFF, FLOOR, CutoffState, Measured, cutoff_state, measure_after
from .eqn17 import alignment_rows, eqn17_aligns
from .forecasters import (BASELINES, FORECASTERS, ORACLES, THEORIES, TIME_GRID, Forecast, kind_of,
                          log_rel, persistence, run_level_of)
from .jsonio import json_ready
from .questions import CHALLENGERS, QUESTIONS, bootstrap_interval, compare, spearman
from .runs import Run, load_run, require_finished
from .errors import ConfigError

__all__ = ["CUTOFF", "FLOOR", "TIME_GRID", "CutoffState", "Measured", "Forecast", "cutoff_state",
           "measure_after", "FORECASTERS", "THEORIES", "BASELINES", "ORACLES", "persistence", "eqn17_aligns",
           "alignment_rows", "balanced_accuracy", "score", "orderings", "summarise", "markdown",
           "scorecard", "write_scorecard"]


# ---------------------------------------------------------------------------------------------
# scores
# ---------------------------------------------------------------------------------------------
def balanced_accuracy(pred: np.ndarray, truth: np.ndarray) -> float:
    """Mean recall over the classes present in ``truth``."""
    recalls = [float(np.mean(pred[truth == c] == c)) for c in (True, False) if np.any(truth == c)]
    return float(np.mean(recalls))


def score(fc: Forecast, meas: Measured) -> dict[str, float | None]:
    """The scores of one forecast against one run's measurements (module docstring)."""
    out: dict[str, float | None] = {"fate_acc": None, "fate_bacc": None, "spectrum_dex": None,
                                    "path_dex": None, "spearman": None}
    if fc.fates is not None:
        out["fate_acc"] = float(np.mean(fc.fates == meas.fates))
        out["fate_bacc"] = balanced_accuracy(fc.fates, meas.fates)
    if fc.path is not None:
        floor = math.log10(meas.tol)  # both sides floored at the collapse tolerance
        pred = np.maximum(np.sort(log_rel(fc.path), axis=1)[:, ::-1], floor)
        got = np.maximum(log_rel(meas.spectra), floor)
        # both kinds of miss: ranks alive in the prediction or in the measurement
        either = (pred > floor) | (got > floor)
        err = np.abs(pred - got)
        out["spectrum_dex"] = float(np.median(err[-1][either[-1]])) if either[-1].any() else None
        out["path_dex"] = float(np.median(err[either])) if either.any() else None
    ranks = fc.rank_score if fc.rank_score is not None else fc.final
    if ranks is not None:
        out["spearman"] = spearman(np.asarray(ranks, dtype=np.float64), meas.along[-1])
    return out


# ---------------------------------------------------------------------------------------------
# many runs
# ---------------------------------------------------------------------------------------------
def _setting(run: Run) -> str:
    """The sweep cell of a run folder (``.../CELL/seedN`` -> CELL), else the folder's name."""
    return run.path.parent.name if run.path.name.startswith("seed") else run.path.name


def scorecard(run_dirs: Sequence[str | Path], *, cutoff: float = CUTOFF,
              tol: float = metrics.COLLAPSE_REL_TOL, convention: str = "continuous") -> dict[str, Any]:
    """Score every forecaster on every run (module docstring). Refuses runs that are not
    finished (:func:`analysis.runs.run_status` other than ``done``)."""
    if not (isinstance(tol, (int, float)) and math.isfinite(tol) and 0 < tol < 1):
        raise ConfigError(f"tol={tol!r} is invalid: allowed a number in (0, 1)")
    runs, cuts, meas = [], [], []
    for d in run_dirs:
        require_finished(d)
        run = load_run(d)
        cut = cutoff_state(run, cutoff=cutoff, tol=tol, convention=convention)
        runs.append(run)
        cuts.append(cut)
        meas.append(measure_after(run, cut))
    rows: list[dict[str, Any]] = []
    align: list[dict[str, Any]] = []
    for i, (run, cut, m) in enumerate(zip(runs, cuts, meas)):
        same = [j for j in range(len(runs)) if j != i and _setting(runs[j]) == _setting(run)]
        others = same or [j for j in range(len(runs)) if j != i]
        context = {"top_k": round(float(np.mean([meas[j].n_alive for j in others]))) if others else None}
        base = {"run": str(run.path), "setting": _setting(run), "seed": run.cfg.seed,
                "predictor": cut.predictor, "cutoff_step": cut.step, "final_step": cut.final_step,
                "n_modes": int(cut.s.size), "n_alive_cutoff": int(cut.alive.sum()),
                "n_alive_final": m.n_alive, "total_collapse": m.total_collapse,
                "n_probe_pairs": cut.n_pairs,
                "sigma2_ci_width_median": (None if cut.sigma2_ci is None else
                                           float(np.nanmedian(cut.sigma2_ci[1] - cut.sigma2_ci[0])))}
        align += [{"run": str(run.path), "setting": _setting(run), "seed": run.cfg.seed, **r}
                  for r in alignment_rows(cut, m)]
        for name, fn in FORECASTERS.items():
            try:
                fc = fn(cut, context)
                bad = _nonfinite(fc)
                if bad:
                    raise FloatingPointError(f"non-finite {bad}")
            except (ValueError, ArithmeticError, np.linalg.LinAlgError) as err:
                # the forecaster failed on this run: recorded, and the scorecard goes on
                rows.append({**base, "forecaster": name, "kind": _kind(name),
                             "error": f"{type(err).__name__}: {err}"})
                continue
            if fc is None:
                continue
            rows.append({**base, "forecaster": name, "kind": _kind(name), **score(fc, m),
                         **_run_level(fc, m), **{f"info_{k}": v for k, v in fc.info.items()}})
    return {"cutoff": cutoff, "tol": tol, "convention": convention, "rows": rows,
            "questions": compare(rows), "summary": summarise(rows), "orderings": orderings(rows),
            "alignment": align}


def _nonfinite(fc: Forecast | None) -> str | None:
    """Which part of a forecast is not finite (a path that turned NaN or inf), or None."""
    if fc is None:
        return None
    for part in ("path", "rank_score"):
        v = getattr(fc, part)
        if v is not None and not np.all(np.isfinite(np.asarray(v, dtype=np.float64))):
            return part
    if fc.run_level is not None and not all(math.isfinite(v) for v in fc.run_level.values()):
        return "run_level"
    return None


def _run_level(fc: Forecast, meas: Measured) -> dict[str, Any]:
    """Run-level quantities for the orderings across runs: the number of surviving modes, and the
    participation ratio and RankMe of the final spectrum, predicted and measured."""
    final = run_level_of(meas.spectra[-1], meas.tol)
    out: dict[str, Any] = {"n_alive_meas": meas.n_alive, "pr_meas": final["pr"],
                           "rankme_meas": final["rankme"]}
    if fc.run_level is not None:
        out.update({f"{k}_pred": v for k, v in fc.run_level.items()})
        return out
    out["n_alive_pred"] = None if fc.fates is None else int(fc.fates.sum())
    pred = None if fc.path is None else run_level_of(fc.path[-1], meas.tol)
    out["pr_pred"] = None if pred is None else pred["pr"]
    out["rankme_pred"] = None if pred is None else pred["rankme"]
    return out


#: Run-level quantities ordered across runs (:func:`orderings`).
ORDERED = ("n_alive", "pr", "rankme")


def orderings(rows: Sequence[Mapping[str, Any]], *, n_boot: int = 1000, seed: int = 0) -> list[dict[str, Any]]:
    """Across all the runs given (e.g. one sweep table), per forecaster: the Spearman correlation
    of the predicted against the measured number of surviving modes, participation ratio and
    RankMe, with a 16-84 % bootstrap interval over runs (resampled with replacement; resamples without
    spread in either variable are skipped, and the interval is widened to contain the estimate when
    that skews it past). Needs 4 runs or more."""
    rng = np.random.default_rng(seed)
    out = []
    for name in FORECASTERS:
        sel = [r for r in rows if r["forecaster"] == name and "error" not in r]
        entry: dict[str, Any] = {"forecaster": name, "kind": _kind(name), "n_runs": len(sel)}
        for what in ORDERED:
            pairs = np.array([(r[f"{what}_pred"], r[f"{what}_meas"]) for r in sel
                              if r.get(f"{what}_pred") is not None], dtype=np.float64)
            rho = lo = hi = None
            if len(pairs) >= 4:
                rho = spearman(pairs[:, 0], pairs[:, 1])
                # resamples without spread are left out, which can skew the distribution past
                # the estimate: the interval is widened to contain it, by construction
                iv = bootstrap_interval(lambda idx, p=pairs: spearman(p[idx, 0], p[idx, 1]),
                                        len(pairs), rng, n_boot, rho)
                if rho is not None and iv is not None:
                    lo, hi = iv
            entry[what] = {"spearman": rho, "ci16": lo, "ci84": hi, "n": int(len(pairs))}
        out.append(entry)
    return out


def _kind(name: str) -> str:
    return kind_of(name)


SCORES = ("fate_acc", "fate_bacc", "spectrum_dex", "path_dex", "spearman")


def summarise(rows: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Mean and std over the runs (seeds) of each setting, per forecaster."""
    out = []
    keys = sorted({(r["setting"], r["forecaster"]) for r in rows},
                  key=lambda k: (k[0], list(FORECASTERS).index(k[1])))
    for setting, name in keys:
        sel = [r for r in rows if r["setting"] == setting and r["forecaster"] == name]
        entry: dict[str, Any] = {"setting": setting, "forecaster": name, "kind": _kind(name),
                                 "n_runs": len(sel)}
        for sc in SCORES:
            v = np.array([r[sc] for r in sel if r.get(sc) is not None], dtype=np.float64)
            entry[sc] = None if v.size == 0 else float(v.mean())
            entry[sc + "_std"] = None if v.size < 2 else float(v.std(ddof=1))
        out.append(entry)
    return out


def _cell(v: float | None, sd: float | None, fmt: str) -> str:
    if v is None:
        return "-"
    return f"{v:{fmt}}" + ("" if sd is None else f" ± {sd:{fmt}}")


def _table_head(title: str, columns: Sequence[str]) -> list[str]:
    """A markdown section title and the head of its table."""
    return [f"### {title}", "", "| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]


def _interval(iv: Sequence[float] | None) -> str:
    return "" if iv is None else f" [{iv[0]:+.3f}, {iv[1]:+.3f}]"


def questions_markdown(entries: Sequence[Mapping[str, Any]]) -> list[str]:
    """The pre-declared questions (:mod:`analysis.questions`): the declared theory against the
    strongest theory-free baseline, paired over runs."""
    lines = _table_head("Pre-declared questions: the declared theory against the strongest "
                        "theory-free baseline, paired over runs (difference > 0 favours the "
                        "theory; 16-84 % bootstrap over runs)",
                        ("question", "family", "declared theory", "strongest baseline", "runs",
                         "theory", "baseline", "difference", "wins / ties / losses"))
    declared = [e for e in entries if e.get("role", "declared") == "declared"]
    for e in declared:
        lines.append(_question_line(e, e["theory"]))
    challengers = [e for e in entries if e.get("role") == "challenger"]
    if challengers:
        lines += ["", *_table_head(
            "Challengers (analysis.questions.CHALLENGERS: declared before they were scored): "
            "against the strongest baseline, and paired against the theory they challenge",
            ("question", "family", "challenger (declared on)", "strongest baseline", "runs", "theory",
             "baseline", "difference", "wins / ties / losses", "against the declared theory"))]
        for e in challengers:
            v = e.get("versus_declared", {})
            vs = (f"{_num3(v.get('difference'))}{_interval(v.get('interval'))}"
                  + (f" ({v['wins']} / {v['ties']} / {v['losses']})" if "wins" in v else "")
                  if v.get("n_runs") else "-")
            lines.append(_question_line(e, f"{e['theory']} ({e['declared_on']})") + f" {vs} |")
    return lines + [""]


def _num3(v: float | None) -> str:
    return "-" if v is None else f"{v:.3f}"


def _question_line(e: Mapping[str, Any], name: str) -> str:
    """One row of :func:`questions_markdown` (``name``: the theory as shown)."""
    if not e.get("n_runs"):
        return f"| {e['question']} | {e['family']} | {name} | - | 0 | - | - | - | - |"
    wtl = (f"{e['wins']} / {e['ties']} / {e['losses']}" if "wins" in e else "-")
    return (f"| {e['question']} | {e['family']} | {name} | {e['baseline']} | "
            f"{e['n_runs']} | {_num3(e['theory_value'])} | {_num3(e['baseline_value'])} | "
            f"{_num3(e['difference'])}{_interval(e.get('interval'))} | {wtl} |")


def _declared_anywhere() -> set[str]:
    return {t for q in QUESTIONS for t in q.theory.values()}


def _challengers() -> set[str]:
    return {c.theory for c in CHALLENGERS}


def markdown(card: Mapping[str, Any]) -> str:
    """The pre-declared questions first, then the summary as markdown tables, one per setting
    (mean ± std over seeds); a theory that no question declared is marked as chosen after the
    fact."""
    lines = [f"Cutoff {card['cutoff']:.0%} of the run; fate rule tol = {card['tol']:g}. Mean ± std "
             "over seeds. dex = decades (lower is better). Kinds: theory (declared for a question "
             "in analysis.questions), theory (after the fact: declared for none), baseline "
             "(theory-free, the same information), ORACLE (reads other runs' outcomes).", ""]
    if card.get("questions"):
        lines += questions_markdown(card["questions"])
    for setting in dict.fromkeys(e["setting"] for e in card["summary"]):
        ent = [e for e in card["summary"] if e["setting"] == setting]
        runs = [r for r in card["rows"] if r["setting"] == setting and r["forecaster"] == "persistence"]
        alive = ", ".join(f"{r['n_alive_cutoff']}->{r['n_alive_final']}" for r in runs)
        cuts = ", ".join(f"{r['cutoff_step']}/{r['final_step']}" for r in runs)
        lines += _table_head(f"{setting} ({ent[0]['n_runs']} runs; cutoff step used: {cuts}; "
                             f"modes alive cutoff->end: {alive})",
                             ("forecaster", "kind", "fate acc", "balanced acc", "spectrum dex",
                              "path dex", "Spearman"))
        for e in ent:
            kind = ({"oracle": "ORACLE"}.get(e["kind"], e["kind"]) if e["kind"] != "theory" else
                    "theory" if e["forecaster"] in _declared_anywhere() else
                    "theory (challenger)" if e["forecaster"] in _challengers() else "theory (after the fact)")
            lines.append(f"| {e['forecaster']} | {kind} | "
                         f"{_cell(e['fate_acc'], e['fate_acc_std'], '.2f')} | "
                         f"{_cell(e['fate_bacc'], e['fate_bacc_std'], '.2f')} | "
                         f"{_cell(e['spectrum_dex'], e['spectrum_dex_std'], '.2f')} | "
                         f"{_cell(e['path_dex'], e['path_dex_std'], '.2f')} | "
                         f"{_cell(e['spearman'], e['spearman_std'], '.2f')} |")
        lines.append("")
    if card.get("alignment"):
        lines += _table_head("Does `Wp` keep aligning with `F` after the cutoff? (runs with a trained "
                             "linear predictor; Eqn 17 against baselines)",
                             ("forecaster", "kind", "right", "runs where it aligned"))
        for name in dict.fromkeys(r["forecaster"] for r in card["alignment"]):
            sel = [r for r in card["alignment"] if r["forecaster"] == name]
            lines.append(f"| {name} | {sel[0]['kind']} | {sum(r['right'] for r in sel)}/{len(sel)} | "
                         f"{sum(r['aligns_meas'] for r in sel)}/{len(sel)} |")
        lines.append("")
    if card.get("orderings"):
        lines += _table_head("Across the runs given: predicted against measured ordering (Spearman, "
                             "16-84 % bootstrap over runs)",
                             ("forecaster", "kind", "runs", "surviving modes", "participation ratio", "RankMe"))
        for e in card["orderings"]:
            cells = []
            for what in ORDERED:
                o = e.get(what, {"spearman": None})
                cells.append("-" if o["spearman"] is None else
                             f"{o['spearman']:.2f}" + ("" if o["ci16"] is None else f" [{o['ci16']:.2f}, {o['ci84']:.2f}]"))
            lines.append(f"| {e['forecaster']} | {e['kind']} | {e['n_runs']} | {' | '.join(cells)} |")
        lines.append("")
    return "\n".join(lines)


def write_scorecard(run_dirs: Sequence[str | Path], out: str | Path, **kwargs: Any) -> dict[str, Any]:
    """:func:`scorecard`, written to ``out``: ``scorecard.json``, ``scorecard.csv`` (one row per
    run and forecaster), ``scorecard.md`` and ``scorecard.png``."""
    from .runs import write_json_atomic

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    card = scorecard(run_dirs, **kwargs)
    write_json_atomic(out / "scorecard.json", json_ready(card))
    cols = sorted({k for r in card["rows"] for k in r}, key=lambda k: (k not in ("setting", "seed", "forecaster"), k))
    with open(out / "scorecard.csv", "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=cols)
        w.writeheader()
        for r in card["rows"]:
            w.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in r.items()})
    (out / "scorecard.md").write_text(markdown(card))
    from .plots import plot_scorecard

    plot_scorecard(card, out / "scorecard.png")
    return card

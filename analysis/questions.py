"""Which theory answers which question, declared before any run is scored, and the paired
comparison of that theory with the strongest theory-free forecaster (:func:`compare`).

A scorecard shows many forecasters; quoting the best of them after the fact would let chance
pick the winner. So each question names one theory per predictor family here, with its reason
(THEORY.md sections 3-6), and the scorecard reports that theory first and compares it, paired over
runs, with the best of the theory-free baselines that answer the same question (the baseline is
picked by the data, which favours the baseline). Any other theory in a table is chosen after the
fact and is marked so.

Families: ``set`` (DirectPred, DirectCopy: ``Wp`` set from ``F``), ``linear`` (a linear predictor
trained by SGD). Other predictors (an MLP, none) have no mode-level theory here.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np

__all__ = ["Question", "QUESTIONS", "Challenger", "CHALLENGERS", "family", "declared", "compare",
           "PAIRED_QUANTILES", "spearman", "bootstrap_interval"]

_SET = ("directpred", "directcopy")
_LINEAR = ("linear",)

#: Why the per-mode flows answer the per-mode questions.
_FLOW_REASON = ("the runs use the cosine loss with a set predictor: the project's mean-field "
                "cosine flow per mode (THEORY.md section 5) with DirectSet's p (eps, floor, c_j), "
                "each mode on its own clock fitted before the cutoff (the clock of a mode is its "
                "input variance on the linear network); a trained linear predictor follows "
                "Eqns 11-12 of the paper from the cutoff's (p_j, s_j), on per-mode clocks")


@dataclass(frozen=True)
class Question:
    """``score``: the per-run score (:func:`analysis.scorecard.score`) or, for an ordering across
    runs, the run-level quantity ordered (:data:`analysis.scorecard.ORDERED`); ``theory``: the
    declared theory per family; ``baselines``: the theory-free forecasters that answer it."""

    name: str
    score: str
    higher_is_better: bool
    across_runs: bool
    theory: Mapping[str, str]
    baselines: tuple[str, ...]
    reason: str


QUESTIONS: tuple[Question, ...] = (
    Question("fates", "fate_bacc", True, False,
             {"set": "cosine_modes_clocked", "linear": "l2_modes_clocked"},
             ("persistence", "all_survive", "all_collapse", "log_linear"), _FLOW_REASON),
    Question("path", "path_dex", False, False,
             {"set": "cosine_modes_clocked", "linear": "l2_modes_clocked"},
             ("persistence", "all_survive", "log_linear"), _FLOW_REASON),
    Question("final_spectrum", "spectrum_dex", False, False,
             {"set": "cosine_modes_clocked", "linear": "l2_modes_clocked"},
             ("persistence", "all_survive", "log_linear"), _FLOW_REASON),
    Question("order_surviving_modes", "n_alive", True, True,
             {"set": "cosine_modes_clocked", "linear": "l2_modes_clocked"},
             ("persistence", "log_linear", "trend"),
             "the same flows: they contain the knobs the DirectPred tables vary (eps, c_j; not "
             "freq, not weight decay, which the scale-free cosine flow cannot see)"),
    Question("order_participation_ratio", "pr", True, True,
             {"set": "cosine_modes_clocked", "linear": "l2_modes_clocked"},
             ("persistence", "log_linear", "trend"), "the same flows' final spectrum"),
    Question("order_rankme", "rankme", True, True,
             {"set": "cosine_modes_clocked", "linear": "l2_modes_clocked"},
             ("persistence", "log_linear", "trend"), "the same flows' final spectrum"),
)

@dataclass(frozen=True)
class Challenger:
    """A theory-side improvement of a declared theory, declared here (with the date, before it
    was first scored) and scored the same way: against the strongest baseline and, paired, against
    the theory it challenges. It replaces nothing until it has won."""

    family: str
    theory: str
    challenges: str
    declared_on: str
    reason: str


CHALLENGERS: tuple[Challenger, ...] = (
    Challenger("set", "cosine_modes_clocked_wd", "cosine_modes_clocked", "2026-12-06",
               "the declared flow leaves weight decay out, and its clock fit gives a mode that "
               "decays while the loss would grow it the median clock of the others, so it revives: "
               "it predicts 21 survivors where 12 live (33 DirectPred runs, 7 alive at the cutoff). "
               "In the cosine flow the clock multiplies the loss drive only (THEORY.md section 5), "
               "so the drive a mode shows is its log-rate plus 2 eta; a mode without drive keeps "
               "decaying at the weight-decay rate"),
)

#: The bootstrap quantiles of the paired interval (16-84 %: one sigma).
PAIRED_QUANTILES = (16.0, 84.0)


def family(predictor: str) -> str | None:
    """``set``, ``linear`` or None (no mode-level theory)."""
    return "set" if predictor in _SET else "linear" if predictor in _LINEAR else None


def declared(question: Question, predictor: str) -> str | None:
    """The theory declared for ``question`` on runs of ``predictor``."""
    fam = family(predictor)
    return None if fam is None else question.theory.get(fam)


def _by_run(rows: Sequence[Mapping[str, Any]], key: str) -> dict[tuple[str, str], float]:
    return {(r["run"], r["forecaster"]): float(r[key]) for r in rows
            if "error" not in r and r.get(key) is not None and math.isfinite(float(r[key]))}


def bootstrap_interval(stat, n: int, rng: np.random.Generator, n_boot: int,
                       point: float | None = None) -> tuple[float, float] | None:
    """The 16-84 % interval of ``stat(idx)`` over ``n_boot`` resamples ``idx`` of ``range(n)``
    with replacement (resamples where it is None or not finite are left out; None when more than
    half are), widened where needed to contain ``point``, its estimate."""
    vals = []
    for _ in range(n_boot):
        v = stat(rng.integers(0, n, n))
        if v is not None and math.isfinite(v):
            vals.append(v)
    if len(vals) < n_boot // 2:
        return None
    lo, hi = (float(x) for x in np.percentile(vals, PAIRED_QUANTILES))
    return (lo, hi) if point is None else (min(lo, point), max(hi, point))


def spearman(x: np.ndarray, y: np.ndarray) -> float | None:
    """Spearman correlation over the pairs where both are finite; None with fewer than 3 pairs
    or no spread in either."""
    from scipy.stats import spearmanr

    ok = np.isfinite(x) & np.isfinite(y)
    if ok.sum() < 3 or np.ptp(x[ok]) == 0 or np.ptp(y[ok]) == 0:
        return None
    return float(spearmanr(x[ok], y[ok]).statistic)


def _paired(q: Question, rows: Sequence[Mapping[str, Any]], runs: Sequence[str], theory: str,
            rivals: Sequence[str], rng: np.random.Generator, n_boot: int, tie: float) -> dict[str, Any]:
    """``theory`` against the best of ``rivals`` on question ``q`` over ``runs`` (the fields of a
    :func:`compare` entry; ``n_runs`` 0 when no rival answered)."""
    if q.across_runs:
        pred = _by_run(rows, f"{q.score}_pred")
        meas = _by_run(rows, f"{q.score}_meas")
        cands = {}
        for b in rivals:
            ok = [u for u in runs if (u, theory) in pred and (u, b) in pred and (u, b) in meas]
            if len(ok) >= 4:
                t = np.array([pred[u, theory] for u in ok])
                x = np.array([pred[u, b] for u in ok])
                m = np.array([meas[u, b] for u in ok])
                rho_b = spearman(x, m)
                if rho_b is not None:
                    cands[b] = (rho_b, t, x, m)
        if not cands:
            return {"n_runs": 0}
        best = max(cands, key=lambda b: cands[b][0])
        rho_b, t, x, m = cands[best]
        rho_t = spearman(t, m)

        def diff(idx, t=t, x=x, m=m):
            a, b = spearman(t[idx], m[idx]), spearman(x[idx], m[idx])
            return None if a is None or b is None else a - b

        point = None if rho_t is None else rho_t - rho_b
        return {"baseline": best, "n_runs": int(len(t)), "theory_value": rho_t, "baseline_value": rho_b,
                "difference": point, "interval": bootstrap_interval(diff, len(t), rng, n_boot, point)}
    vals = _by_run(rows, q.score)
    sign = 1.0 if q.higher_is_better else -1.0
    means = {}
    for b in rivals:
        ok = [u for u in runs if (u, theory) in vals and (u, b) in vals]
        if ok:
            means[b] = (sign * float(np.mean([vals[u, b] for u in ok])), ok)
    if not means:
        return {"n_runs": 0}
    best = max(means, key=lambda b: means[b][0])
    ok = means[best][1]
    d = np.array([sign * (vals[u, theory] - vals[u, best]) for u in ok])
    return {"baseline": best, "n_runs": int(len(d)),
            "theory_value": float(np.mean([vals[u, theory] for u in ok])),
            "baseline_value": float(np.mean([vals[u, best] for u in ok])),
            "difference": float(d.mean()),
            "interval": bootstrap_interval(lambda idx, d=d: float(d[idx].mean()), len(d), rng, n_boot,
                                           float(d.mean())),
            "wins": int((d > tie).sum()), "ties": int((np.abs(d) <= tie).sum()),
            "losses": int((d < -tie).sum())}


def compare(rows: Sequence[Mapping[str, Any]], *, n_boot: int = 1000, seed: int = 0,
            tie: float = 1e-9) -> list[dict[str, Any]]:
    """Per question and family present in ``rows`` (the scorecard's per-run rows): the declared
    theory against the strongest baseline, paired over the runs where both answered (``role``
    ``declared``), then each challenger of :data:`CHALLENGERS` the same way (``role``
    ``challenger``) with, under ``versus_declared``, its paired comparison with the theory it
    challenges. Per-run questions: the mean of ``better = (theory - baseline)`` signed so that
    positive favours the theory, its 16-84 % bootstrap interval over runs, and wins / ties /
    losses. Orderings: the Spearman correlation of each with the measured quantity and the
    bootstrap interval of their difference over the same resampled runs."""
    rng = np.random.default_rng(seed)
    rng_c = np.random.default_rng(seed + 1)  # the challengers' own: the declared entries stay as they were
    out = []
    fams = sorted({f for r in rows if (f := family(r.get("predictor", ""))) is not None})
    present = {r["forecaster"] for r in rows}
    for q in QUESTIONS:
        for fam in fams:
            runs = sorted({r["run"] for r in rows if family(r.get("predictor", "")) == fam})
            theory = q.theory[fam]
            out.append({"question": q.name, "family": fam, "theory": theory, "role": "declared",
                        "score": q.score, "higher_is_better": q.higher_is_better,
                        **_paired(q, rows, runs, theory, q.baselines, rng, n_boot, tie)})
            for c in CHALLENGERS:
                if c.family != fam or c.theory not in present:
                    continue
                entry = {"question": q.name, "family": fam, "theory": c.theory, "role": "challenger",
                         "challenges": c.challenges, "declared_on": c.declared_on, "score": q.score,
                         "higher_is_better": q.higher_is_better,
                         **_paired(q, rows, runs, c.theory, q.baselines, rng_c, n_boot, tie)}
                entry["versus_declared"] = _paired(q, rows, runs, c.theory, (c.challenges,), rng_c,
                                                   n_boot, tie)
                out.append(entry)
    return out

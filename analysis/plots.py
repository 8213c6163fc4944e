"""Figures of ``python -m analysis compare``: predicted against measured per mode, and the
spectra of a run over time. Each function reads only the ``data`` of
:func:`analysis.compare.compare_run` and writes one PNG."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from . import metrics

__all__ = ["plot_predicted_vs_measured", "plot_spectra_over_time", "plot_scorecard"]

_STYLE = {"font.size": 8.5, "axes.titlesize": 9, "legend.fontsize": 7, "legend.frameon": False,
          "axes.spines.top": False, "axes.spines.right": False, "savefig.dpi": 150,
          "savefig.bbox": "tight"}


def _figure(nrows: int, ncols: int, size: tuple[float, float]):
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    with plt.rc_context(_STYLE):
        fig, axes = plt.subplots(nrows, ncols, figsize=size, squeeze=False)
    return plt, fig, axes


def _save(plt, fig, path: Path) -> Path:
    with plt.rc_context(_STYLE):
        fig.savefig(path)
    plt.close(fig)
    return path



def _legend_below(ax) -> None:
    """The panel's legend under it, in two columns: it covers no data point wherever they lie."""
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.17), ncol=2, fontsize=6.5)

def plot_predicted_vs_measured(data: dict[str, Any], path: str | Path) -> Path:
    """2 x 2 panels: (a) ``s_j / s_max`` by mode, measured and predicted; (b) predicted against
    measured ``s_j / s_max`` (log-log, the diagonal is agreement); (c) ``p_j`` by mode, measured and
    predicted (and ``p / p_max`` when the loss is scale-free in ``Wp``); (d) ``sigma2_j`` by mode
    with the predicted and measured fates."""
    tab, pred = data["table"], data["pred"]
    plt, fig, ax = _figure(2, 2, (8.4, 7.6))
    j = tab["mode"]
    alive = tab["survives_meas"].astype(bool)
    # a predicted (or measured) 0 has no place on a log axis: it is drawn on a line a decade
    # below the smallest positive value, labelled as such, not at an arbitrary number
    values = np.concatenate([np.asarray(tab["s_rel_meas"], float),
                             np.asarray(tab["s_rel_pred"], float) if pred is not None else []])
    positive = values[np.isfinite(values) & (values > 0)]
    floor = 10.0 ** (np.floor(np.log10(positive.min())) - 1) if positive.size else 1e-6
    clip = lambda v: np.clip(np.nan_to_num(v, nan=np.nan), floor, None)  # noqa: E731
    kind = "cross-view moment" if (pred is not None and pred.s_kind == "cross") else "$F$"
    a = ax[0, 0]
    a.semilogy(j, clip(tab["s_rel_meas"]), "o", ms=3.5, color="k", label="measured")
    if pred is not None:
        sp = tab["survives_pred"].astype(bool)
        a.semilogy(j[sp], clip(tab["s_rel_pred"])[sp], "s", ms=3.5, mfc="none", color="C3",
                   label="predicted")
        if (~sp).any():
            a.semilogy(j[~sp], np.full((~sp).sum(), floor), "v", ms=4, mfc="none", color="C3",
                       label="predicted 0 (collapse), drawn at the floor")
        bad = ~tab["fate_agrees"].astype(bool)
        if bad.any():
            a.semilogy(j[bad], clip(tab["s_rel_meas"])[bad], "x", ms=7, color="C1",
                       label="fate wrong")
    a.axhline(floor, color="0.85", lw=0.6)
    a.axhline(metrics.COLLAPSE_REL_TOL, color="0.6", lw=0.8, ls=":", label="collapse rule")
    a.set(xlabel="mode $j$ (0 = largest)", ylabel=f"$s_j / s_{{max}}$ ({kind})",
          title="(a) spectrum at the last snapshot")
    _legend_below(a)

    b = ax[0, 1]
    if pred is not None:
        both = alive & tab["survives_pred"].astype(bool)
        xs, ys = clip(tab["s_rel_pred"]), clip(tab["s_rel_meas"])
        ok = np.isfinite(xs) & np.isfinite(ys)
        b.loglog(xs[ok & both], ys[ok & both], "o", ms=3.5, color="C0", label="both alive")
        b.loglog(xs[ok & ~both], ys[ok & ~both], "x", ms=5, color="C1",
                 label=f"not both alive (a 0 is drawn at {floor:.0e})")
        lo = np.nanmin(np.concatenate([xs[ok], ys[ok]])) if ok.any() else floor
        b.plot([lo, 1.2], [lo, 1.2], color="0.5", lw=0.8, ls="--")
        b.set(xlabel="predicted $s_j / s_{max}$", ylabel="measured $s_j / s_{max}$",
              title="(b) predicted vs measured")
        _legend_below(b)
    else:
        b.text(0.5, 0.5, "no mode-level theory\nfor this predictor", ha="center", va="center",
               transform=b.transAxes)
        b.set_axis_off()

    c = ax[1, 0]
    if not np.all(np.isnan(tab["p_meas"])):
        c.plot(j, tab["p_meas"], "o", ms=3.5, color="k", label=r"measured $u_j^\top W_p u_j$")
    if pred is not None:
        c.plot(j, tab["p_pred"], "s", ms=3.5, mfc="none", color="C3", label="predicted $p_j$")
        if pred.scale_free_p and alive.any():
            pm = np.where(alive, tab["p_meas"], np.nan)
            pp = np.where(tab["survives_pred"].astype(bool), tab["p_pred"], np.nan)
            if np.isfinite(pm).any() and np.isfinite(pp).any():
                c.plot(j, pm / np.nanmax(pm), ".", color="0.4", label="measured $p / p_{max}$")
                c.plot(j, pp / np.nanmax(pp), "--", color="C3", lw=0.8, label="predicted $p / p_{max}$")
    c.set(xlabel="mode $j$", ylabel="$p_j$", title="(c) predictor eigenvalue along $u_j$")
    if c.get_legend_handles_labels()[0]:
        _legend_below(c)
    else:
        c.text(0.5, 0.5, "no linear predictor", ha="center", va="center", transform=c.transAxes)

    d = ax[1, 1]
    sig = tab["sigma2"]
    d.semilogy(j[alive], np.clip(sig[alive], 1e-4, None), "o", ms=3.5, color="C2",
               label="measured alive")
    d.semilogy(j[~alive], np.clip(sig[~alive], 1e-4, None), "o", ms=3.5, color="C1",
               label="measured collapsed")
    if pred is not None:
        sp = tab["survives_pred"].astype(bool)
        d.semilogy(j[~sp], np.clip(sig[~sp], 1e-4, None), "x", ms=7, color="k",
                   label="predicted collapse")
    d.set(xlabel="mode $j$", ylabel=r"$\sigma^2_j$ = (same $-$ cross) / cross",
          title="(d) augmentation strength per mode")
    _legend_below(d)
    title = "no theory" if pred is None else pred.equations
    fig.suptitle(f"{data['run'].name}: {data['run'].cfg.predictor.name} "
                 f"- {title}", fontsize=8)
    fig.tight_layout()
    return _save(plt, fig, Path(path))


def plot_spectra_over_time(data: dict[str, Any], path: str | Path) -> Path:
    """(a) eigenvalues of ``F`` (relative to the top one) over steps, one line per rank;
    (b) effective rank and surviving modes with the collapse onset; (c) mean alignment and
    asymmetry of ``Wp`` (when logged)."""
    run, diag = data["run"], data["collapse"]
    plt, fig, ax = _figure(1, 3, (11.0, 3.3))
    import matplotlib.cm as cm

    steps, spectra = [], []
    for st in run.snapshot_steps:
        snap = run.snapshot(st)
        if "F_eigvals" in snap:
            steps.append(st)
            spectra.append(np.asarray(snap["F_eigvals"], dtype=np.float64))
    a = ax[0, 0]
    if spectra:
        S = np.array(spectra)
        rel = np.clip(S / np.maximum(S[:, :1], 1e-300), 1e-8, None)
        colors = cm.viridis(np.linspace(0, 1, S.shape[1]))
        for k in range(S.shape[1]):
            a.semilogy(steps, rel[:, k], color=colors[k], lw=0.9)
    a.axhline(metrics.COLLAPSE_REL_TOL, color="0.6", lw=0.8, ls=":")
    a.set(xlabel="step", ylabel="s_j / s_max", title="(a) spectrum of F (dark = largest)")
    b = ax[0, 1]
    b.plot(diag.steps, diag.effective_rank, "o-", ms=3, color="C0", label="effective rank")
    b.plot(diag.steps, diag.n_surviving, "s--", ms=3, color="C2", label="surviving modes")
    if diag.onset_step is not None:
        b.axvline(diag.onset_step, color="C3", lw=1, label=f"onset ({diag.onset_reason})")
    b.set(xlabel="step", ylabel="modes", title="(b) rank and surviving modes",
          ylim=(0, 1.35 * max(max(diag.n_surviving), max(diag.effective_rank), 1)))
    b.legend(loc="upper right", fontsize=6.5)
    c = ax[0, 2]
    lines = run.spectra_lines
    al = [(ln["step"], ln["alignment_mean"]) for ln in lines if "alignment_mean" in ln]
    asy = [(ln["step"], ln["asymmetry"]) for ln in lines if "asymmetry" in ln]
    if al:
        c.plot(*zip(*al), "o-", ms=3, color="C4", label="mean alignment cos(Wp u_j, u_j)")
    if asy:
        c.plot(*zip(*asy), "s--", ms=3, color="C5", label="asymmetry ||Wp-Wp^T||/||Wp||")
    if not (al or asy):
        c.text(0.5, 0.5, "no linear predictor", ha="center", va="center", transform=c.transAxes)
    c.set(xlabel="step", title="(c) predictor alignment / asymmetry")
    if al or asy:
        top = max([v for _, v in al + asy] + [1.0])
        c.set_ylim(min([v for _, v in al + asy] + [0.0]) - 0.05, 1.4 * top)
        c.legend(loc="upper right", fontsize=6.5)
    fig.suptitle(f"{run.name}", fontsize=8)
    fig.tight_layout()
    return _save(plt, fig, Path(path))


def _short_setting(name: str) -> str:
    """A sweep cell's folder name, shortened for an axis label (``predictor.name=linear`` ->
    ``linear``)."""
    for prefix in ("predictor.name=", "method.name=", "predictor.", "method."):
        name = name.replace(prefix, "")
    return name.replace("_", " ")


def plot_scorecard(card: dict[str, Any], path: str | Path) -> None:
    """The scorecard of :func:`analysis.scorecard.scorecard`: per setting (rows) the balanced
    fate accuracy, the final spectrum error and the Spearman correlation of each forecaster,
    mean ± std over seeds; theories filled, baselines open. Spectrum errors beyond
    :data:`_DEX_MAX` are drawn at the edge as triangles."""
    summ = card["summary"]
    settings = list(dict.fromkeys(e["setting"] for e in summ))
    names = list(dict.fromkeys(e["forecaster"] for e in summ))
    panels = (("fate_bacc", "balanced fate accuracy\n(higher is better; 0.5 = chance)", (0.3, 1.02)),
              ("spectrum_dex", "final spectrum error, decades\n(ranks alive in either; lower is better)", (0.0, _DEX_MAX)),
              ("spearman", "Spearman, predicted vs measured\nfinal mode values (higher is better)", (-0.6, 1.02)))
    plt, fig, axes = _figure(1, 3, (12.5, 0.5 * len(settings) + 2.8))
    fig.set_layout_engine("constrained")
    colours = plt.get_cmap("tab10" if len(names) <= 10 else "tab20")  # one colour per forecaster
    step = 0.7 / max(len(names), 1)  # the forecasters of a row fill 70 % of it: rows stay apart
    for ax, (key, title, lim) in zip(axes[0], panels):
        for k, name in enumerate(names):
            off = (k - (len(names) - 1) / 2) * step
            for i, setting in enumerate(settings):
                e = next((x for x in summ if x["setting"] == setting and x["forecaster"] == name), None)
                if e is None or e[key] is None:
                    continue
                face = colours(k) if e["kind"] == "theory" else "white"
                marker = _KIND_MARKERS[e["kind"]]
                v, sd = e[key], e[key + "_std"] or 0.0
                if v > lim[1]:
                    ax.plot(lim[1], i + off, ">", ms=5, color=colours(k), mfc=face, clip_on=False)
                    continue
                ax.errorbar(v, i + off, xerr=sd, fmt=marker, ms=4, color=colours(k), mfc=face, lw=0.8,
                            label=name + (" (ORACLE)" if e["kind"] == "oracle" else ""))
        ax.set_xlim(*lim)
        ax.set_yticks(range(len(settings)))
        ax.set_yticklabels([_short_setting(x) for x in settings] if ax is axes[0][0] else [])
        ax.set_ylim(len(settings) - 0.5, -0.5)
        ax.set_title(title)
        ax.grid(axis="x", lw=0.3)
    handles, labels = [], []
    for ax in axes[0]:
        for h, lab in zip(*ax.get_legend_handles_labels()):
            if lab not in labels:
                handles.append(h)
                labels.append(lab)
    fig.legend(handles, labels, loc="outside lower center", ncol=5)
    fig.suptitle(f"Forward predictions from the cutoff ({card['cutoff']:.0%} of each run) against "
                 "baselines; mean ± std over seeds\nfilled circle = theory, open square = "
                 "theory-free baseline, x = oracle (reads other runs' outcomes: a ceiling, not a "
                 f"forecast); > = beyond {_DEX_MAX:g} decades, drawn at the edge", fontsize=9)
    fig.savefig(path)
    plt.close(fig)


#: Marker of each kind of forecaster in :func:`plot_scorecard`.
_KIND_MARKERS = {"theory": "o", "baseline": "s", "oracle": "x"}

#: Right edge of the spectrum-error panel of :func:`plot_scorecard` (decades).
_DEX_MAX = 3.0

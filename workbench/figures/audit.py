"""Audit figures, rebuilt from a saved run directory's CSVs alone (no model needed).

Every function is pure: it takes the DataFrames (and dicts) read from the files described in
``docs/run_dir.md`` and returns a ``plotly.graph_objects.Figure`` in one shared style. Rates
are stored as fractions in [0, 1]; the figures show them in percent (ASR) or percentage points
(ΔASR), with exact values in the hover text.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from workbench.deprecation import moved_names
from workbench.errors import WorkbenchError
from workbench.figures.style import (
    COLORWAY,
    GRID,
    MITIGATION_COLORS,
    MITIGATION_NAMES,
    NEUTRAL,
    SEQUENTIAL,
    SPLIT_COLORS,
    SYMBOLS,
    TEMPLATE,
    TEXT,
    ZERO_LINE,
    layer_axis,
    legend_above,
    open_symbol,
    padded_range,
    style_figure,
    top_margin,
    wrap_label,
)
from workbench.report import num, p_value_fixed
from workbench.rundir.tables import bool_column, parse_bool

__all__ = [
    "MITIGATION_COLORS",
    "SPLIT_COLORS",
    "TEMPLATE",
    "plot_asr_by_category",
    "plot_cosine_by_layer",
    "plot_delta_asr",
    "plot_delta_vs_cosine",
    "plot_efficacy",
    "plot_efficacy_open_ended",
    "plot_projections",
    "plot_projections_3d",
]

SIGNIFICANCE = 0.05


# --------------------------------------------------------------------------- helpers


def _pp_with_ci(g: pd.DataFrame, column: str) -> tuple[pd.Series, pd.Series, pd.Series]:
    """A change and its 95% CI bounds (``delta_ci_low`` / ``delta_ci_high``) in pp."""
    return tuple(g[c].astype(float) * 100 for c in (column, "delta_ci_low", "delta_ci_high"))


def _require(df: pd.DataFrame, columns: list[str], what: str) -> pd.DataFrame:
    if not isinstance(df, pd.DataFrame):
        raise WorkbenchError(f"{what}: expected a pandas DataFrame, got {type(df).__name__}")
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise WorkbenchError(
            f"{what} lacks column(s) {', '.join(missing)}; see docs/run_dir.md for the schema"
        )
    return df.copy()


def _as_bool(values: pd.Series) -> pd.Series:
    return bool_column(values)


def _num(x: Any, digits: int = 4) -> str:
    """A number for hover/legend text; '—' for missing."""
    return num(x, f".{digits}g", signed_zero=True)


def _coef(x: Any) -> str:
    return f"{float(x):g}"


def _layer(x: Any) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "—"
    return str(int(float(x)))


def _p(p: Any) -> str:
    return p_value_fixed(p)


def _not_baseline(df: pd.DataFrame) -> pd.DataFrame:
    return df[df["behaviour"].astype(str) != "none"]


def _multi_layer(df: pd.DataFrame) -> bool:
    return bool((df.groupby("behaviour")["layer"].nunique(dropna=True) > 1).any())


def _is_control(row: pd.Series) -> bool:
    """Positive controls carry ``control = True`` in every audit table."""
    return "control" in row.index and parse_bool(row["control"], unknown=False)


def _behaviour_label(row: pd.Series, with_layer: bool, with_method: bool = False) -> str:
    b = str(row["behaviour"])
    if with_method and "method" in row.index:
        b = f"{b} [{row['method']}]"
    if with_layer:
        b = f"{b} (L{_layer(row['layer'])})"
    return f"{b} (control)" if _is_control(row) else b


def _multi_method(df: pd.DataFrame) -> bool:
    return "method" in df.columns and bool(
        (df.groupby("behaviour")["method"].nunique(dropna=True) > 1).any())


def _order_splits(splits) -> list[str]:
    known = [s for s in ("harmful", "harmless") if s in set(splits)]
    return known + sorted(s for s in set(splits) if s not in known)


def _split_color(split: str, i: int) -> str:
    return SPLIT_COLORS.get(split, COLORWAY[(i + 2) % len(COLORWAY)])


# --------------------------------------------------------------------------- figures


def plot_cosine_by_layer(geometry: pd.DataFrame, *, refusal_layer: int | None = None) -> go.Figure:
    """Cosine of each behaviour's CAA vector with the refusal direction, by layer.

    ``geometry``: ``behaviour, layer, cosine`` (``geometry.csv``). One line per behaviour, a
    zero line, and a dashed vertical line at ``refusal_layer`` when given.
    """
    df = _require(geometry, ["behaviour", "layer", "cosine"], "geometry.csv")
    df = _not_baseline(df).dropna(subset=["layer", "cosine"])
    df["layer"] = df["layer"].astype(float).astype(int)
    fig = go.Figure()
    for i, (behaviour, g) in enumerate(sorted(df.groupby("behaviour"), key=lambda t: str(t[0]))):
        g = g.sort_values("layer")
        fig.add_trace(go.Scatter(
            x=g["layer"], y=g["cosine"], mode="lines+markers", name=str(behaviour),
            line=dict(width=3, color=COLORWAY[i % len(COLORWAY)]),
            marker=dict(size=8, symbol=SYMBOLS[i % len(SYMBOLS)]),
            hovertemplate=(f"<b>{behaviour}</b><br>layer %{{x}}<br>cosine %{{y:.5f}}"
                           "<extra></extra>"),
        ))
    if refusal_layer is not None:
        fig.add_vline(
            x=int(refusal_layer), line=dict(color=NEUTRAL, width=2, dash="dash"),
            # labelled above the plot, where no data point can sit under it
            annotation=dict(text=f"refusal direction layer {int(refusal_layer)}",
                            font=dict(size=14), yref="paper", y=1, yanchor="bottom"),
        )
    layer_axis(fig, [*df["layer"], *([] if refusal_layer is None else [int(refusal_layer)])])
    fig.update_xaxes(title_text="Layer (residual-stream index)")
    fig.update_yaxes(title_text="Cosine with the layer's own refusal candidate", **ZERO_LINE,
                     range=padded_range(df["cosine"], 0.08, include_zero=True))
    fig.update_layout(legend=dict(title_text="behaviour"))
    return style_figure(fig, "Alignment of behaviour steering vectors with the refusal direction",
                        520, top=24 if refusal_layer is not None else 0,
                        subtitle="r̂ here: each layer's own diff-in-means candidate at the last "
                                 "eoi token (the ΔASR tables use the one selected direction)")


def plot_delta_asr(delta: pd.DataFrame) -> go.Figure:
    """ΔASR (steered minus unsteered baseline) with CI error bars, unmitigated vs mitigated.

    ``delta``: ``delta_asr.csv``. One panel per jailbreak template; within a panel, bars are
    grouped by behaviour and coefficient, unmitigated and mitigated side by side.
    """
    cols = ["behaviour", "layer", "coefficient", "template", "mitigated", "asr", "baseline_asr",
            "delta_asr", "delta_ci_low", "delta_ci_high", "p_value"]
    df = _require(delta, cols, "delta_asr.csv")
    df = _not_baseline(df)
    df["mitigated"] = _as_bool(df["mitigated"])
    df["template"] = df["template"].astype(str)
    with_layer = _multi_layer(df) if len(df) else False
    with_method = _multi_method(df) if len(df) else False
    df = df.sort_values(["behaviour", "layer", "coefficient"], kind="stable")
    templates = sorted(df["template"].unique(), key=lambda t: (t == "all", t))
    n_conditions = len(df[["behaviour", "layer", "coefficient"]].drop_duplicates())
    ncols = 1 if n_conditions > 8 or len(templates) < 2 else 2
    nrows = max(1, math.ceil(len(templates) / ncols))
    # an odd last panel spans the whole row (no empty slot); labels wrapped to their group
    last_full = ncols == 2 and len(templates) % 2 == 1
    n_groups = max(1, len(df[["behaviour", "layer"]].drop_duplicates()))
    chars = max(8, int(1100 / ncols / n_groups / 8))
    df["b_label"] = [wrap_label(_behaviour_label(r, with_layer, with_method), chars)
                     for _, r in df.iterrows()]
    df["c_label"] = [f"α = {_coef(c)}" for c in df["coefficient"]]
    lines = max((lbl.count("<br>") + 1 for lbl in df["b_label"]), default=1)
    # pixels: plot panel, two-level x labels under it, a subplot title over it, legend row
    panel, xlab, ptitle, legend_px = 360, 52 + 18 * lines, 34, 44
    top = legend_px + ptitle
    height = top_margin() + top + nrows * panel + (nrows - 1) * (xlab + ptitle) + xlab
    specs = [[{} for _ in range(ncols)] for _ in range(nrows)]
    if last_full:
        specs[-1] = [{"colspan": 2}, None]
    fig = make_subplots(
        rows=nrows, cols=ncols, shared_yaxes=True, horizontal_spacing=0.04, specs=specs,
        vertical_spacing=(xlab + ptitle) / (height - top_margin() - top - xlab),
        subplot_titles=[f"template: {t}" for t in templates] or None,
    )
    for k, template in enumerate(templates):
        row, col = k // ncols + 1, k % ncols + 1
        for mitigated in (False, True):
            g = df[(df["template"] == template) & (df["mitigated"] == mitigated)]
            if g.empty:
                continue
            d, lo, hi = _pp_with_ci(g, "delta_asr")
            custom = np.stack([
                g["behaviour"].astype(str), g["layer"].map(_layer), g["coefficient"].map(_coef),
                (g["asr"].astype(float) * 100).map(lambda v: f"{v:.2f}"),
                (g["baseline_asr"].astype(float) * 100).map(lambda v: f"{v:.2f}"),
                d.map(lambda v: f"{v:+.2f}"), lo.map(lambda v: f"{v:+.2f}"),
                hi.map(lambda v: f"{v:+.2f}"), g["p_value"].map(_p),
            ], axis=-1)
            fig.add_trace(go.Bar(
                x=[g["b_label"].tolist(), g["c_label"].tolist()], y=d,
                error_y=dict(type="data", symmetric=False, array=(hi - d).clip(lower=0),
                             arrayminus=(d - lo).clip(lower=0), thickness=1.8, width=5,
                             color=TEXT),
                name=MITIGATION_NAMES[mitigated], legendgroup=str(mitigated),
                showlegend=k == 0, marker=dict(color=MITIGATION_COLORS[mitigated],
                                               line=dict(width=0)),
                customdata=custom,
                hovertemplate=(
                    f"<b>{MITIGATION_NAMES[mitigated]}</b> · template {template}<br>"
                    "behaviour %{customdata[0]}, layer %{customdata[1]}, "
                    "α = %{customdata[2]}<br>ASR %{customdata[3]}% "
                    "(baseline %{customdata[4]}%)<br>ΔASR %{customdata[5]} pp "
                    "[95% CI %{customdata[6]}, %{customdata[7]}]<br>"
                    "p = %{customdata[8]}<extra></extra>"),
            ), row=row, col=col)
    fig.update_yaxes(**ZERO_LINE)
    for r in range(1, nrows + 1):
        fig.update_yaxes(title_text="ΔASR vs unsteered baseline<br>(percentage points)",
                         row=r, col=1)
    fig.update_xaxes(tickfont=dict(size=14))
    fig.update_layout(barmode="group", bargap=0.25, bargroupgap=0.05, margin_b=xlab)
    legend_above(fig, height)
    fig.update_annotations(font=dict(size=17))
    return style_figure(fig, "Change in attack success rate from steering, before vs after "
                        "mitigation", height, top=top)


def plot_delta_vs_cosine(delta: pd.DataFrame, regression: pd.DataFrame | None = None, *,
                    template: str = "all") -> go.Figure:
    """ΔASR against what was added along the refusal direction.

    x is the added vector's projection on the selected refusal direction (``projection``,
    c × cos × scale) where the run wrote it, else the cosine (older runs). Points are the
    ``delta_asr.csv`` rows (pooled over templates when ``template == "all"``); colour
    separates unmitigated from mitigated, marker shape separates behaviours; placebo
    directions (x = 0 by construction) are grey. The curve is the prompt-level logistic fit
    over the behaviours (``regression.csv``, fit ``behaviours``), drawn as ΔASR over the x it
    was fitted on; older runs' least-squares lines are drawn as before.
    """
    cols = ["behaviour", "layer", "coefficient", "template", "mitigated", "delta_asr",
            "delta_ci_low", "delta_ci_high", "p_value", "cosine"]
    df = _require(delta, cols, "delta_asr.csv")
    x_name = ("projection" if "projection" in df.columns and df["projection"].notna().any()
              else "cosine")
    df = _not_baseline(df).dropna(subset=[x_name, "delta_asr"])
    df = df[~df["method"].astype(str).str.endswith("+random-removal")] if "method" in df else df
    df["mitigated"] = _as_bool(df["mitigated"])
    df["template"] = df["template"].astype(str)
    if template != "all" or (df["template"] == "all").any():
        df = df[df["template"] == template]  # the audit writes pooled rows as template "all"
    placebo = df["behaviour"].astype(str).str.startswith("placebo-")
    df, placebos = df[~placebo], df[placebo]
    behaviours = sorted(df["behaviour"].astype(str).unique())
    fig = go.Figure()
    for mitigated in (False, True):
        for j, behaviour in enumerate(behaviours):
            g = df[(df["mitigated"] == mitigated) & (df["behaviour"].astype(str) == behaviour)]
            if g.empty:
                continue
            d, lo, hi = _pp_with_ci(g, "delta_asr")
            custom = np.stack([
                g["layer"].map(_layer), g["coefficient"].map(_coef), g["template"],
                g[x_name].map(lambda v: f"{float(v):.5f}"), d.map(lambda v: f"{v:+.2f}"),
                lo.map(lambda v: f"{v:+.2f}"), hi.map(lambda v: f"{v:+.2f}"),
                g["p_value"].map(_p),
            ], axis=-1)
            fig.add_trace(go.Scatter(
                x=g[x_name].astype(float), y=d, mode="markers",
                name=f"{behaviour} (control)" if _is_control(g.iloc[0]) else behaviour,
                legendgroup=f"m{mitigated}",
                legendgrouptitle_text=MITIGATION_NAMES[mitigated],
                # mitigated points are hollow and larger, drawn over the filled unmitigated
                # ones: where the two coincide both stay visible
                marker=(dict(size=16, color=MITIGATION_COLORS[True], symbol=open_symbol(j),
                             line=dict(width=2.5, color=MITIGATION_COLORS[True]))
                        if mitigated else
                        dict(size=11, color=MITIGATION_COLORS[False],
                             symbol=SYMBOLS[j % len(SYMBOLS)],
                             line=dict(width=1, color="white"))),
                error_y=dict(type="data", symmetric=False, array=(hi - d).clip(lower=0),
                             arrayminus=(d - lo).clip(lower=0), thickness=1, width=0,
                             color=MITIGATION_COLORS[mitigated]),
                customdata=custom,
                hovertemplate=(
                    f"<b>{behaviour}</b> · {MITIGATION_NAMES[mitigated]}<br>"
                    "layer %{customdata[0]}, α = %{customdata[1]}, template %{customdata[2]}<br>"
                    f"{x_name} %{{customdata[3]}}<br>ΔASR %{{customdata[4]}} pp "
                    "[95% CI %{customdata[5]}, %{customdata[6]}]<br>p = %{customdata[7]}"
                    "<extra></extra>"),
            ))
    if not placebos.empty:  # one grey trace, drawn over the rest: all sit at x = 0
        d, lo, hi = _pp_with_ci(placebos, "delta_asr")
        fig.add_trace(go.Scatter(
            x=placebos[x_name].astype(float), y=d, mode="markers",
            name=f"placebo directions ({placebos['behaviour'].nunique()})",
            marker=dict(size=9, color=NEUTRAL, symbol="circle", opacity=0.8,
                        line=dict(width=1, color="white")),
            error_y=dict(type="data", symmetric=False, array=(hi - d).clip(lower=0),
                         arrayminus=(d - lo).clip(lower=0), thickness=1, width=0,
                         color=NEUTRAL),
            customdata=np.stack([placebos["behaviour"].astype(str),
                                 placebos["coefficient"].map(_coef)], axis=-1),
            hovertemplate=("<b>%{customdata[0]}</b> (random direction ⟂ r̂)<br>α = "
                           "%{customdata[1]}<br>ΔASR %{y:+.2f} pp<extra></extra>")))
        df = pd.concat([df, placebos])  # the axis range covers them
    if regression is not None and len(regression) and "fit" in regression.columns:
        reg = regression[regression["fit"].astype(str) == "behaviours"]
        pts = df[(~_as_bool(df["mitigated"])) & (~df["behaviour"].astype(str).isin(
            ["refusal", "refusal-direction"])) & (~df["behaviour"].astype(str)
                                                  .str.startswith("placebo-"))]
        for _, r in reg.iterrows():
            if pts.empty or not np.isfinite(float(r["slope"])):
                continue
            xs = np.linspace(float(pts[x_name].min()), float(pts[x_name].max()), 50)
            a, b = float(r["intercept"]), float(r["slope"])
            sig = lambda z: 1 / (1 + np.exp(-z))  # noqa: E731
            stats = (f"slope {b:+.2f} log-odds per unit, p = {_p(r['p_value'])}, "
                     f"n = {int(r['n'])} answers")
            fig.add_trace(go.Scatter(
                x=xs, y=(sig(a + b * xs) - sig(a)) * 100, mode="lines",
                name=f"behaviours: {stats}", legendgroup="fit",
                legendgrouptitle_text="prompt-level logistic fit (regression.csv)",
                line=dict(color=MITIGATION_COLORS[False], width=3),
                hovertemplate=(f"<b>behaviour fit</b><br>{stats}<br>"
                               "x %{x:.4f} → ΔASR %{y:+.2f} pp<extra></extra>")))
    elif regression is not None and len(regression):
        reg = _require(regression, ["mitigated", "template", "slope", "intercept", "r2",
                                    "p_value", "n"], "regression.csv")
        reg["mitigated"] = _as_bool(reg["mitigated"])
        reg = reg[reg["template"].astype(str) == template]
        if "controls" in reg.columns:  # the fit over every plotted point, controls included
            reg = reg[reg["controls"].astype(str) == "with"]
        for mitigated in (False, True):
            for _, r in reg[reg["mitigated"] == mitigated].iterrows():
                # the fit is drawn over the cosines it was fitted on, never past them
                pts = df[df["mitigated"] == mitigated]["cosine"].astype(float)
                if pts.empty:
                    continue
                x0, x1 = float(pts.min()), float(pts.max())
                slope, icpt = float(r["slope"]), float(r["intercept"])
                xs = np.linspace(x0, x1, 50)
                stats = (f"slope {slope * 100:+.1f} pp per unit cosine, "
                         f"R² = {float(r['r2']):.3f}, p = {_p(r['p_value'])}, n = {int(r['n'])}")
                short = "mitigated" if mitigated else "unmitigated"
                fig.add_trace(go.Scatter(
                    x=xs, y=(icpt + slope * xs) * 100, mode="lines",
                    name=f"{short}: {stats}", legendgroup="fit",
                    legendgrouptitle_text="least-squares fit (regression.csv)",
                    line=dict(color=MITIGATION_COLORS[mitigated], width=3,
                              dash="solid" if not mitigated else "dash"),
                    hovertemplate=(f"<b>{MITIGATION_NAMES[mitigated]} fit</b><br>{stats}<br>"
                                   "cosine %{x:.4f} → ΔASR %{y:+.2f} pp<extra></extra>"),
                ))
    fig.update_xaxes(title_text=("Added vector's projection on r̂: c × cos × scale (units of "
                                 "the mean residual norm)" if x_name == "projection" else
                                 "Cosine of steering vector with refusal direction (unitless)"),
                     range=padded_range(df[x_name].astype(float), 0.05))
    fig.update_yaxes(title_text="ΔASR vs unsteered baseline (percentage points)", **ZERO_LINE)
    fig.update_layout(legend=dict(orientation="h", x=0, xanchor="left", y=-0.16, yanchor="top",
                                  groupclick="toggleitem", font=dict(size=14)))
    suffix = "all templates pooled" if template == "all" else f"template {template}"
    return style_figure(fig, f"Does refusal alignment predict jailbreak uplift? ({suffix})", 760,
                        subtitle="error bars: 95% CI; each fit line spans the points it fits")


def _projection_frame(proj: pd.DataFrame, cols: list[str]) -> pd.DataFrame:
    df = _require(proj, ["prompt_id", "split", "category", "layer", *cols], "projections.csv")
    df["split"] = df["split"].astype(str)
    df["category"] = df["category"].fillna("").astype(str)
    return df.dropna(subset=cols)


def _layer_suffix(df: pd.DataFrame) -> str:
    layers = df["layer"].dropna().unique()
    return f" at layer {_layer(layers[0])}" if len(layers) == 1 else ""


def plot_projections(proj: pd.DataFrame, *, nbins: int = 30) -> go.Figure:
    """Harmful vs harmless activations on the refusal direction.

    ``proj``: ``projections.csv``. Left, overlaid histograms of ``refusal_proj`` by split (the
    dashed lines are the split means); right, ``refusal_proj`` against ``pc1``.
    """
    df = _projection_frame(proj, ["refusal_proj", "pc1"])
    splits = _order_splits(df["split"].unique())
    fig = make_subplots(
        rows=1, cols=2, column_widths=[0.45, 0.55], horizontal_spacing=0.1,
        subplot_titles=["Distribution along the refusal direction",
                        "Refusal direction vs first principal component"],
    )
    lo, hi = (float(df["refusal_proj"].min()), float(df["refusal_proj"].max())) if len(df) \
        else (0.0, 1.0)
    size = (hi - lo) / nbins if hi > lo else 1.0
    for i, split in enumerate(splits):
        g = df[df["split"] == split]
        color = _split_color(split, i)
        x = g["refusal_proj"].astype(float)
        mean = float(x.mean())
        fig.add_trace(go.Histogram(
            x=x, name=f"{split} (n = {len(g)}, mean {mean:.3g})", legendgroup=split,
            marker=dict(color=color, line=dict(width=0.5, color="white")), opacity=0.6,
            xbins=dict(start=lo, end=hi + size, size=size),
            hovertemplate=(f"<b>{split}</b><br>projection %{{x}}<br>%{{y}} prompts"
                           "<extra></extra>"),
        ), row=1, col=1)
        fig.add_vline(x=mean, line=dict(color=color, width=2.5, dash="dash"), row=1, col=1)
        fig.add_trace(go.Scatter(
            x=x, y=g["pc1"].astype(float), mode="markers", name=split, legendgroup=split,
            showlegend=False, marker=dict(color=color, size=8, opacity=0.75,
                                          line=dict(width=0.5, color="white")),
            customdata=np.stack([g["prompt_id"].astype(str), g["category"]], axis=-1),
            hovertemplate=(f"<b>{split}</b> %{{customdata[0]}}<br>category %{{customdata[1]}}"
                           "<br>refusal projection %{x:.5g}<br>PC1 %{y:.5g}<extra></extra>"),
        ), row=1, col=2)
    unit = "(residual-stream units)"
    fig.update_xaxes(title_text=f"Projection on refusal direction r̂<br>{unit}", row=1, col=1)
    fig.update_xaxes(title_text=f"Projection on refusal direction r̂<br>{unit}", row=1, col=2)
    fig.update_yaxes(title_text="Prompts (count)", row=1, col=1)
    fig.update_yaxes(title_text=f"PC1 of pooled activations {unit}", row=1, col=2)
    counts = [np.histogram(df.loc[df["split"] == s, "refusal_proj"].astype(float),
                           bins=np.arange(lo, hi + 2 * size, size))[0].max(initial=0)
              for s in splits]
    if max(counts, default=0) <= 10:
        fig.update_yaxes(dtick=1, row=1, col=1)  # whole prompts, not 0.5 steps
    fig.update_layout(barmode="overlay")
    top = legend_above(fig, 600) + 34
    fig.update_annotations(font=dict(size=17))
    title = f"Harmful vs harmless activations{_layer_suffix(df)} (last token)"
    return style_figure(fig, title, 600, top=top)


def plot_projections_3d(proj: pd.DataFrame) -> go.Figure:
    """3-D scatter of (``refusal_proj``, ``pc1``, ``pc2``) by split, with the refusal direction
    drawn as an arrow along its axis through the centre of the cloud."""
    df = _projection_frame(proj, ["refusal_proj", "pc1", "pc2"])
    splits = _order_splits(df["split"].unique())
    fig = go.Figure()
    for i, split in enumerate(splits):
        g = df[df["split"] == split]
        fig.add_trace(go.Scatter3d(
            x=g["refusal_proj"].astype(float), y=g["pc1"].astype(float),
            z=g["pc2"].astype(float), mode="markers", name=f"{split} (n = {len(g)})",
            marker=dict(size=4, color=_split_color(split, i), opacity=0.8),
            customdata=np.stack([g["prompt_id"].astype(str), g["category"]], axis=-1),
            hovertemplate=(f"<b>{split}</b> %{{customdata[0]}}<br>category %{{customdata[1]}}"
                           "<br>refusal projection %{x:.5g}<br>PC1 %{y:.5g}<br>PC2 %{z:.5g}"
                           "<extra></extra>"),
        ))
    if len(df):
        x = df["refusal_proj"].astype(float)
        x0, x1 = float(x.min()), float(x.max())
        span = (x1 - x0) or 1.0
        x0, x1 = x0 - 0.05 * span, x1 + 0.1 * span
        y, z = df["pc1"].astype(float), df["pc2"].astype(float)
        y0, z0 = float(y.mean()), float(z.mean())
        head = 0.08 * span
        # the cone's size is in data units (sizemode "absolute" with one cone: its length is
        # sizeref), so take it from the data's spread: as long as the arrow head along x, and
        # no wider than the cloud across y and z, whatever the scale of the activations
        across = max(float(y.max() - y.min()), float(z.max() - z.min()))
        cone = min(head, 0.5 * across) if across > 0 else head
        fig.add_trace(go.Scatter3d(
            x=[x0, x1 - head], y=[y0, y0], z=[z0, z0], mode="lines",
            name="refusal direction r̂", legendgroup="rhat",
            line=dict(color=TEXT, width=8),
            hovertemplate="refusal direction r̂ (+ = towards refusal)<extra></extra>",
        ))
        fig.add_trace(go.Cone(
            x=[x1 - head], y=[y0], z=[z0], u=[head], v=[0], w=[0], anchor="tail",
            sizemode="absolute", sizeref=cone, showscale=False, legendgroup="rhat",
            showlegend=False, colorscale=[[0, TEXT], [1, TEXT]],
            hovertemplate="refusal direction r̂<extra></extra>",
        ))
    axis = dict(title=dict(font=dict(size=15)), tickfont=dict(size=12),
                backgroundcolor="white", gridcolor=GRID, showbackground=True)
    fig.update_layout(
        scene=dict(
            xaxis=dict(axis, title_text="projection on r̂"),
            yaxis=dict(axis, title_text="PC1"), zaxis=dict(axis, title_text="PC2"),
            aspectmode="manual", aspectratio=dict(x=1.5, y=1, z=0.8),
            camera=dict(eye=dict(x=0.45, y=-2.0, z=0.7), center=dict(x=0.05, y=0, z=-0.08)),
            domain=dict(x=[0.14, 1], y=[0, 1]),
        ),
        legend=dict(x=0.01, xanchor="left", y=0.95, yanchor="top"),
        margin=dict(l=0, r=0, b=0),
    )
    title = f"Harmful vs harmless activations{_layer_suffix(df)}: refusal direction, PC1, PC2"
    return style_figure(fig, title, 620, subtitle="all axes in residual-stream units",
                        hint="drag to rotate")


def _condition_label(row: pd.Series, with_layer: bool) -> str:
    if str(row["behaviour"]) == "none":
        return "unsteered baseline"
    b = _behaviour_label(row, with_layer, with_method="method" in row.index
                         and str(row["method"]) not in ("caa", "none"))
    m = " · mitigated" if row["mitigated"] else ""
    return f"{b} · α = {_coef(row['coefficient'])}{m}"


def plot_asr_by_category(categories: pd.DataFrame) -> go.Figure:
    """Heatmap of ASR (%) by condition (rows) × harm category (columns).

    ``categories``: ``categories.csv``. Rows are the unsteered baseline, then each
    behaviour × coefficient, unmitigated then mitigated.
    """
    cols = ["behaviour", "layer", "coefficient", "mitigated", "category", "n", "n_jailbroken",
            "asr", "ci_low", "ci_high"]
    df = _require(categories, cols, "categories.csv")
    df["mitigated"] = _as_bool(df["mitigated"])
    df["category"] = df["category"].fillna("(none)").astype(str)
    steered = _not_baseline(df)
    with_layer = _multi_layer(steered) if len(steered) else False
    df["_base"] = df["behaviour"].astype(str) != "none"
    df["_layer"] = df["layer"].astype(float).fillna(-1)
    df = df.sort_values(["_base", "behaviour", "_layer", "coefficient", "mitigated"],
                        kind="stable")
    df["condition"] = [_condition_label(r, with_layer) for _, r in df.iterrows()]
    conditions = list(dict.fromkeys(df["condition"]))
    cats = sorted(df["category"].unique())
    idx = {(c, k): r for (c, k), r in
           df.drop_duplicates(["category", "condition"]).set_index(["category", "condition"])
           .iterrows()}
    z, custom = [], []
    for cond in conditions:  # one row per condition: long labels stay horizontal
        zr, cr = [], []
        for cat in cats:
            r = idx.get((cat, cond))
            if r is None:
                zr.append(None)
                cr.append(["", "", "", ""])
            else:
                zr.append(float(r["asr"]) * 100)
                cr.append([f"{int(r['n_jailbroken'])}", f"{int(r['n'])}",
                           f"{float(r['ci_low']) * 100:.1f}", f"{float(r['ci_high']) * 100:.1f}"])
        z.append(zr)
        custom.append(cr)
    chars = max(8, int(900 / max(len(cats), 1) / 8))
    sizes = sorted({int(n) for n in df["n"]})
    n_note = (f"{sizes[0]}" if len(sizes) == 1 else f"{sizes[0]}–{sizes[-1]}") if sizes else "0"
    fig = go.Figure(go.Heatmap(
        z=z, x=[wrap_label(c, chars) for c in cats], y=conditions, customdata=custom,
        zmin=0, zmax=100, colorscale=SEQUENTIAL,
        texttemplate="%{z:.0f}%<br>%{customdata[0]}/%{customdata[1]}",
        textfont=dict(size=12), hoverongaps=False, xgap=2, ygap=2,
        colorbar=dict(title=dict(text="ASR (%)", side="right"), ticksuffix="%"),
        hovertemplate=("<b>%{x}</b><br>%{y}<br>ASR %{z:.2f}% (%{customdata[0]} of "
                       "%{customdata[1]} jailbroken)<br>95% CI %{customdata[2]}–"
                       "%{customdata[3]}%<extra></extra>"),
    ))
    fig.update_xaxes(title_text="Harm category", showgrid=False, side="bottom")
    fig.update_yaxes(title_text="Condition (behaviour, steering coefficient α)",
                     autorange="reversed", showgrid=False)
    # each cell is a handful of answers: say how many, so no one reads 0% or 100% as a rate
    return style_figure(fig, "Attack success rate by harm category and condition",
                        160 + 40 * max(len(conditions), 4),
                        subtitle=f"Each cell: % jailbroken, and jailbroken/answers "
                                 f"(n = {n_note} answers per cell)")


def plot_efficacy(eff: pd.DataFrame) -> go.Figure:
    """Does each vector steer its own behaviour? Change in p(behaviour-matching A/B answer).

    ``eff``: ``efficacy.csv``. One bar per behaviour × coefficient (× layer, method when
    several), unmitigated and mitigated side by side, in percentage points with 95% CIs;
    positive controls are labelled.
    """
    cols = ["behaviour", "method", "layer", "coefficient", "mitigated", "n", "p_matching",
            "p_matching_baseline", "delta", "delta_ci_low", "delta_ci_high", "p_value"]
    df = _require(eff, cols, "efficacy.csv")
    df["mitigated"] = _as_bool(df["mitigated"])
    with_layer = _multi_layer(df) if len(df) else False
    with_method = _multi_method(df) if len(df) else False
    df = df.sort_values(["behaviour", "method", "layer", "coefficient"], kind="stable")
    df["b_label"] = [_behaviour_label(r, with_layer, with_method) for _, r in df.iterrows()]
    df["c_label"] = [f"α = {_coef(c)}" for c in df["coefficient"]]
    fig = go.Figure()
    for mitigated in (False, True):
        g = df[df["mitigated"] == mitigated]
        if g.empty:
            continue
        d, lo, hi = _pp_with_ci(g, "delta")
        custom = np.stack([
            g["behaviour"].astype(str), g["layer"].map(_layer), g["coefficient"].map(_coef),
            (g["p_matching_baseline"].astype(float) * 100).map(lambda v: f"{v:.2f}"),
            (g["p_matching"].astype(float) * 100).map(lambda v: f"{v:.2f}"),
            d.map(lambda v: f"{v:+.2f}"), lo.map(lambda v: f"{v:+.2f}"),
            hi.map(lambda v: f"{v:+.2f}"), g["p_value"].map(_p), g["n"].astype(str),
        ], axis=-1)
        fig.add_trace(go.Bar(
            x=[g["b_label"].tolist(), g["c_label"].tolist()], y=d,
            error_y=dict(type="data", symmetric=False, array=(hi - d).clip(lower=0).fillna(0),
                         arrayminus=(d - lo).clip(lower=0).fillna(0), thickness=1.8, width=5,
                         color=TEXT),
            name=MITIGATION_NAMES[mitigated], marker=dict(color=MITIGATION_COLORS[mitigated]),
            customdata=custom,
            hovertemplate=(
                f"<b>{MITIGATION_NAMES[mitigated]}</b><br>behaviour %{{customdata[0]}}, layer "
                "%{customdata[1]}, α = %{customdata[2]}<br>p(matching) %{customdata[4]}% "
                "(unsteered %{customdata[3]}%)<br>Δ %{customdata[5]} pp [95% CI "
                "%{customdata[6]}, %{customdata[7]}], p = %{customdata[8]}, n = "
                "%{customdata[9]}<extra></extra>"),
        ))
    fig.update_yaxes(title_text="Δ p(behaviour-matching answer)<br>(percentage points)",
                     **ZERO_LINE)
    fig.update_layout(barmode="group", bargap=0.25)
    top = legend_above(fig, 620)
    return style_figure(fig, "Steering efficacy on held-out A/B questions (does each vector "
                        "steer its own behaviour?)", 620, top=top)


def plot_efficacy_open_ended(eff: pd.DataFrame) -> go.Figure:
    """Do the free answers move along the behaviour's axis? The open-ended efficacy check.

    ``eff``: ``efficacy.csv`` with the ``open_*`` columns. One bar per unmitigated behaviour ×
    coefficient (× layer, method when several): the paired change of the answers' score on the
    behaviour axis (+1: like the behaviour-matching choices, −1: like the others), with 95% CIs;
    the hover gives the axis' held-out accuracy.
    """
    cols = ["behaviour", "method", "layer", "coefficient", "mitigated", "open_n", "open_score",
            "open_score_baseline", "open_delta", "open_ci_low", "open_ci_high", "open_p_value",
            "open_axis_accuracy"]
    df = _require(eff, cols, "efficacy.csv")
    df["mitigated"] = _as_bool(df["mitigated"])
    df = df[~df["mitigated"] & df["open_delta"].astype(float).notna()]
    if df.empty:
        raise WorkbenchError("efficacy.csv has no open-ended rows; run the audit with "
                             "open_ended_tokens > 0")
    with_layer, with_method = _multi_layer(df), _multi_method(df)
    df = df.sort_values(["behaviour", "method", "layer", "coefficient"], kind="stable")
    labels = [_behaviour_label(r, with_layer, with_method) for _, r in df.iterrows()]
    d, lo, hi = (df[c].astype(float) for c in ("open_delta", "open_ci_low", "open_ci_high"))
    custom = np.stack([
        df["behaviour"].astype(str), df["layer"].map(_layer), df["coefficient"].map(_coef),
        df["open_score_baseline"].map(lambda v: f"{float(v):+.2f}"),
        df["open_score"].map(lambda v: f"{float(v):+.2f}"), d.map(lambda v: f"{v:+.2f}"),
        lo.map(_num), hi.map(_num), df["open_p_value"].map(_p), df["open_n"].astype(str),
        df["open_axis_accuracy"].map(lambda v: f"{float(v):.2f}"),
    ], axis=-1)
    fig = go.Figure(go.Bar(
        x=[labels, [f"α = {_coef(c)}" for c in df["coefficient"]]], y=d,
        error_y=dict(type="data", symmetric=False, array=(hi - d).clip(lower=0).fillna(0),
                     arrayminus=(d - lo).clip(lower=0).fillna(0), thickness=1.8, width=5,
                     color=TEXT),
        marker=dict(color=MITIGATION_COLORS[False]), name=MITIGATION_NAMES[False],
        customdata=custom,
        hovertemplate=(
            "behaviour %{customdata[0]}, layer %{customdata[1]}, α = %{customdata[2]}<br>"
            "axis score %{customdata[4]} (unsteered %{customdata[3]})<br>Δ %{customdata[5]} "
            "[95% CI %{customdata[6]}, %{customdata[7]}], p = %{customdata[8]}, n = "
            "%{customdata[9]}<br>axis accuracy on held-out choices %{customdata[10]}"
            "<extra></extra>"),
    ))
    fig.update_yaxes(title_text="Δ score on the behaviour axis<br>(+1 = matching choices' mean)",
                     **ZERO_LINE)
    fig.update_layout(bargap=0.35, showlegend=False)
    return style_figure(fig, "Open-ended efficacy: do free answers move toward the steered "
                        "behaviour?", 560)


# The figure functions' names before they became ``plot_*``: importable for one release.
_RENAMED = {old: f"plot_{old}" for old in (
    "cosine_by_layer", "delta_asr", "delta_vs_cosine", "projections", "projections_3d",
    "asr_by_category", "efficacy", "efficacy_open_ended")}


__getattr__ = moved_names(__name__, {old: f"{__name__}:{new}" for old, new in _RENAMED.items()})

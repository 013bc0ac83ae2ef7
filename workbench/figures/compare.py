"""Cross-model figures, rebuilt from a ``workbench compare`` output folder's CSVs alone.

- ``delta_vs_cosine_models``: ΔASR against cosine with the refusal direction, one colour per
  model, with each model's least-squares line and the pooled one, each drawn only over the
  cosine range it was fitted on (no extrapolation);
- ``cosine_by_depth``: cosine of each CAA vector with the refusal direction against relative
  depth (layer / n_layers), so models of different depths share one axis.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from workbench.deprecation import moved_names
from workbench.errors import WorkbenchError
from workbench.figures.export import read_table, save_figures
from workbench.figures.style import NEUTRAL, TEXT, color, style_figure
from workbench.rundir.delta_fits import fit_rows

__all__ = ["build_compare_figures", "plot_cosine_by_depth", "plot_delta_vs_cosine_models",
           "render_compare_figures"]

def _colors(models: list[str]) -> dict[str, str]:
    return {m: color(i) for i, m in enumerate(models)}


def plot_delta_vs_cosine_models(rows: pd.DataFrame, fits: pd.DataFrame) -> go.Figure:
    """Points: the fitted rows of every model; lines: per-model and pooled fits, in range."""
    x_name = ("projection" if "projection" in rows.columns and rows["projection"].notna().any()
              else "cosine")
    for name, df, cols in (("rows", rows, ("model", "behaviour", x_name, "delta_asr")),
                           ("fits.csv", fits, ("model", "slope", "intercept", "cosine_min",
                                               "cosine_max"))):
        missing = [c for c in cols if c not in df.columns]
        if missing:
            raise WorkbenchError(f"{name} lacks column(s) {', '.join(missing)}; regenerate it "
                                 "with `workbench compare`")
    models = list(dict.fromkeys(rows["model"].astype(str)))
    colors = _colors(models)
    fig = go.Figure()
    for model in models:
        g = rows[rows["model"].astype(str) == model]
        d = g["delta_asr"].astype(float) * 100
        err = {}
        if {"delta_ci_low", "delta_ci_high"} <= set(g.columns):
            lo, hi = g["delta_ci_low"].astype(float) * 100, g["delta_ci_high"].astype(float) * 100
            err = dict(error_y=dict(type="data", symmetric=False, array=(hi - d).clip(lower=0),
                                    arrayminus=(d - lo).clip(lower=0), thickness=1, width=0))
        text = (g["behaviour"].astype(str) + " coef " + g["coefficient"].astype(str)
                if "coefficient" in g else g["behaviour"].astype(str))
        fig.add_trace(go.Scatter(
            x=g[x_name].astype(float), y=d, mode="markers", name=model, legendgroup=model,
            text=text, marker=dict(size=11, color=colors[model], opacity=0.85,
                                   line=dict(width=1, color="white")),
            hovertemplate=(f"<b>{model}</b><br>%{{text}}<br>{x_name} %{{x:.4f}}<br>"
                           "ΔASR %{y:+.1f} pp<extra></extra>"), **err))
    for _, f in fits.iterrows():
        model = str(f["model"])
        if not np.isfinite(float(f["slope"])):
            continue
        x = np.linspace(float(f["cosine_min"]), float(f["cosine_max"]), 20)
        y = (float(f["slope"]) * x + float(f["intercept"])) * 100
        pooled = model not in colors
        label = f"{'pooled' if pooled else model} fit: {100 * float(f['slope']):+.0f} pp/unit"
        if "r2" in f and np.isfinite(float(f["r2"])):
            label += f", R² {float(f['r2']):.2f}, n {int(f['n'])}"
        fig.add_trace(go.Scatter(
            x=x, y=y, mode="lines", name=label, legendgroup=model,
            line=dict(color=TEXT if pooled else colors[model],
                      dash="dash" if pooled else "solid", width=3 if pooled else 2),
            hoverinfo="skip"))
    fig.add_hline(y=0, line=dict(color=NEUTRAL, width=1))
    title = ("ΔASR against the added vector's projection on the refusal direction, by model"
             if x_name == "projection" else
             "ΔASR against cosine with the refusal direction, by model")
    style_figure(fig, title, 620)
    fig.update_layout(xaxis_title=("c × cos(v, r̂) × scale (units of the mean residual norm)"
                                   if x_name == "projection" else
                                   "cosine(steering vector, refusal direction)"),
                      yaxis_title="ΔASR (percentage points)")
    return fig


def plot_cosine_by_depth(geometry: pd.DataFrame) -> go.Figure:
    """One line per model x behaviour: cosine with the refusal direction by relative depth."""
    missing = [c for c in ("model", "behaviour", "relative_depth", "cosine")
               if c not in geometry.columns]
    if missing:
        raise WorkbenchError(f"geometry.csv lacks column(s) {', '.join(missing)}; regenerate "
                             "it with `workbench compare`")
    models = list(dict.fromkeys(geometry["model"].astype(str)))
    colors = _colors(models)
    dashes = ["solid", "dot", "dash", "longdash", "dashdot", "longdashdot"]
    behaviours = sorted(geometry["behaviour"].astype(str).unique())
    fig = go.Figure()
    for model in models:
        for j, behaviour in enumerate(behaviours):
            g = geometry[(geometry["model"].astype(str) == model)
                         & (geometry["behaviour"].astype(str) == behaviour)]
            if g.empty:
                continue
            g = g.sort_values("relative_depth")
            fig.add_trace(go.Scatter(
                x=g["relative_depth"].astype(float), y=g["cosine"].astype(float),
                mode="lines+markers", name=f"{model}: {behaviour}", legendgroup=model,
                line=dict(color=colors[model], dash=dashes[j % len(dashes)], width=2),
                marker=dict(size=5),
                hovertemplate=(f"<b>{model}</b> {behaviour}<br>depth %{{x:.2f}}<br>"
                               "cosine %{y:+.3f}<extra></extra>")))
    fig.add_hline(y=0, line=dict(color=NEUTRAL, width=1))
    style_figure(fig, "Cosine of each CAA vector with the refusal direction, by depth", 620)
    fig.update_layout(xaxis_title="relative depth (layer / n_layers)",
                      yaxis_title="cosine with the refusal direction")
    return fig


def build_compare_figures(out_dir: str | os.PathLike) -> dict[str, go.Figure]:
    """Every figure a compare folder supports, from its CSVs."""
    out = Path(out_dir)
    table, fits = read_table(out / "compare.csv"), read_table(out / "fits.csv")
    if table is None or fits is None:
        raise WorkbenchError(f"{out} has no compare.csv / fits.csv; run `workbench compare` first")
    figs = {"delta_vs_cosine_models": plot_delta_vs_cosine_models(fit_rows(table), fits)}
    geometry = read_table(out / "geometry.csv")
    if geometry is not None:
        figs["cosine_by_depth"] = plot_cosine_by_depth(geometry)
    return figs


def render_compare_figures(out_dir: str | os.PathLike, png: bool = True) -> list[Path]:
    """Write ``out_dir/figures/<name>.html`` (+ ``.png``)."""
    return save_figures(build_compare_figures(out_dir), Path(out_dir) / "figures", png=png)


# The figure functions' names before they became ``plot_*``: importable for one release.
_RENAMED = {old: f"plot_{old}" for old in (
    "delta_vs_cosine_models", "cosine_by_depth")}


__getattr__ = moved_names(__name__, {old: f"{__name__}:{new}" for old, new in _RENAMED.items()})

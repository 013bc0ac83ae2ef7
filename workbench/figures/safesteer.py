"""SafeSteer figures, rebuilt from a saved run directory's CSVs alone (no model needed).

Pure functions from the DataFrames of ``neuron_summary.csv``, ``metrics.csv`` and
``geometry.csv`` to plotly figures in the audit's style; ``render_safesteer_figures(run_dir)``
writes ``figures/<name>.html`` (+ ``.png``) through the shared export helpers.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from workbench.deprecation import moved_names
from workbench.errors import WorkbenchError
from workbench.figures.export import read_table, save_figures
from workbench.figures.style import (
    DIVERGING,
    MAGNITUDE,
    METHOD_COLORS,
    NEUTRAL,
    PATTERNS,
    color,
    layer_axis,
    style_figure,
)
from workbench.report import num

__all__ = ["SAFESTEER_FIGURE_INPUTS", "build_safesteer_figures", "plot_category_metrics",
           "plot_neuron_selectivity", "render_safesteer_figures", "plot_safety_quality_tradeoff",
           "plot_vector_cosines"]

SAFESTEER_FIGURE_INPUTS: dict[str, tuple[str, ...]] = {
    "neuron_selectivity": ("neuron_summary.csv",),
    "category_metrics": ("metrics.csv", "run.json"),
    "safety_quality_tradeoff": ("metrics.csv",),
    "vector_cosines": ("geometry.csv", "run.json"),
}


def _require(df: pd.DataFrame, columns: list[str], what: str) -> pd.DataFrame:
    if not isinstance(df, pd.DataFrame):
        raise WorkbenchError(f"{what}: expected a pandas DataFrame, got {type(df).__name__}")
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise WorkbenchError(f"{what} lacks column(s) {', '.join(missing)}; see "
                             "workbench/safesteer/README.md for the schema")
    return df.copy()


def _n(x, spec: str = ".3g") -> str:
    return num(x, spec, signed_zero=True)


def _pick_layer(df: pd.DataFrame, layer: int | None) -> int | None:
    layers = sorted(int(x) for x in df["layer"].dropna().unique())
    if not layers:
        return None
    return layer if layer in layers else layers[0]


def plot_neuron_selectivity(summary: pd.DataFrame) -> go.Figure:
    """Heatmaps (category x layer): mean Welch t of the top-k neurons, and its held-out value.

    Left: top-k ranked on all train texts. Right: top-k ranked on the discovery half, t measured
    on the held-out half (noise would give about 0).
    """
    df = _require(summary, ["category", "layer", "top_t", "heldout_t", "frac_replicated"],
                  "neuron_summary.csv")
    df["layer"] = df["layer"].astype(int)
    cats = list(dict.fromkeys(df["category"]))
    layers = sorted(df["layer"].unique())
    fig = make_subplots(rows=1, cols=2, horizontal_spacing=0.12, subplot_titles=(
        "top-k mean Welch t (all train texts)", "held-out mean t (top-k chosen on discovery half)"))
    zmax = float(np.nanmax(df[["top_t", "heldout_t"]].to_numpy(dtype=float))) if len(df) else 1.0
    for col, key in ((1, "top_t"), (2, "heldout_t")):
        grid = df.pivot(index="category", columns="layer", values=key).reindex(index=cats,
                                                                              columns=layers)
        rep = df.pivot(index="category", columns="layer", values="frac_replicated").reindex(
            index=cats, columns=layers)
        fig.add_trace(go.Heatmap(
            z=grid.to_numpy(dtype=float), x=layers, y=cats, zmin=0, zmax=max(zmax, 1e-9),
            colorscale=MAGNITUDE, showscale=col == 2, customdata=rep.to_numpy(dtype=float),
            colorbar=dict(title="Welch t"),
            hovertemplate=("<b>%{y}</b>, layer %{x}<br>t %{z:.2f}<br>replicated %{customdata:.0%}"
                           "<extra></extra>"),
        ), row=1, col=col)
    layer_axis(fig, layers, max_ticks=12)
    fig.update_xaxes(title_text="Layer (residual-stream index)", showgrid=False)
    fig.update_yaxes(showgrid=False)
    fig.update_yaxes(showticklabels=False, row=1, col=2)  # the same categories as on the left
    return style_figure(fig, "Risk-category neuron selectivity", 200 + 56 * max(len(cats), 3),
                        top=34)


def _method_label(method: str, mult) -> str:
    if method == "none":
        return "unsteered"
    what = "scale" if method == "neuron_suppress" else "m"
    return f"{method} ({what}={float(mult):g})"


def plot_category_metrics(metrics: pd.DataFrame, layer: int | None = None) -> go.Figure:
    """Per category: unsafe, refusal, relevance and ROUGE-L, unsteered vs each method and m.

    Held-out harmful prompts only, at one steering ``layer`` (default: the first).
    """
    df = _require(metrics, ["method", "category", "layer", "multiplier", "split", "unsafe_rate",
                            "refusal_rate", "relevance", "rouge_l"], "metrics.csv")
    df = df[df["split"] == "harmful"]
    chosen = _pick_layer(df, layer)
    base = df[df["method"] == "none"]
    steered = df[(df["method"] != "none") & (df["layer"].astype(float) == chosen)]
    cats = list(dict.fromkeys(base["category"])) or list(dict.fromkeys(steered["category"]))
    # rates in percent like the audit's; relevance and ROUGE-L are scores in [0, 1]
    panels = [("unsafe_rate", "unsafe rate", "% of prompts", 100),
              ("refusal_rate", "refusal rate", "% of prompts", 100),
              ("relevance", "relevance (prompt-answer cosine)", "cosine (unitless)", 1),
              ("rouge_l", "ROUGE-L vs unsteered answer", "ROUGE-L F (0-1)", 1)]
    fig = make_subplots(rows=2, cols=2, subplot_titles=[p[1] for p in panels],
                        vertical_spacing=0.2, horizontal_spacing=0.1)
    groups = [("none", 0.0, base)] + [
        (m, mult, g) for (m, mult), g in steered.groupby(["method", "multiplier"], sort=False)]
    for gi, (method, mult, g) in enumerate(groups):
        g = g.set_index("category").reindex(cats)
        col = METHOD_COLORS.get(method, color(gi))
        mults = sorted(steered.loc[steered["method"] == method, "multiplier"].unique())
        # several multipliers of one method: same colour, told apart by fill pattern
        shape = PATTERNS[(len(mults) - 1 - mults.index(mult)) % len(PATTERNS)] \
            if method != "none" else ""
        for p, (key, _, _, scale) in enumerate(panels):
            fig.add_trace(go.Bar(
                x=cats, y=g[key].astype(float) * scale, name=_method_label(method, mult),
                legendgroup=f"{method}{mult}", showlegend=p == 0,
                marker=dict(color=col, pattern=dict(shape=shape, fillmode="overlay",
                                                    fgcolor="white", size=8)),
                hovertemplate=(f"<b>%{{x}}</b><br>{_method_label(method, mult)}<br>"
                               f"{key} %{{y:.3g}}<extra></extra>"),
            ), row=p // 2 + 1, col=p % 2 + 1)
    for p, (_, _, unit, scale) in enumerate(panels):
        fig.update_yaxes(title_text=unit, rangemode="tozero",
                         range=[0, 105] if scale == 100 else None, row=p // 2 + 1,
                         col=p % 2 + 1)
    fig.update_layout(barmode="group", legend=dict(title_text=f"steering layer {chosen}"))
    return style_figure(fig, "Per-category safety and quality, before and after steering", 760,
                        subtitle="held-out harmful prompts", top=34)


def plot_safety_quality_tradeoff(metrics: pd.DataFrame) -> go.Figure:
    """Unsafe/refusal rate (left) and quality (right) vs multiplier, pooled over categories.

    Uses the rows pooled over categories (``category = all``) where the run wrote them, else
    the mean over categories. The unsteered unsafe rate and relevance are dashed grey lines;
    ``neuron_suppress`` is plotted against its scale. Methods are dodged slightly along x so
    equal rates at one multiplier stay visible (the hover shows the true multiplier); the dotted
    series use open markers, so a refusal rate equal to the unsafe rate does not hide it.
    """
    df = _require(metrics, ["method", "layer", "multiplier", "split", "unsafe_rate",
                            "refusal_rate", "relevance", "rouge_l"], "metrics.csv")
    df = df[df["split"] == "harmful"]
    if "category" in df and (df["category"] == "all").any():  # rows pooled over categories
        df = df[df["category"] == "all"]
    fig = make_subplots(rows=1, cols=2, horizontal_spacing=0.1, subplot_titles=(
        "safety: unsafe (solid) and refusal (dotted) rate",
        "quality: ROUGE-L (solid), relevance (dotted)"))
    keys = ["unsafe_rate", "refusal_rate", "relevance", "rouge_l"]
    scale = {"unsafe_rate": 100, "refusal_rate": 100, "relevance": 1, "rouge_l": 1}
    base = df[df["method"] == "none"][keys].astype(float).mean()
    steered = df[df["method"] != "none"].copy()
    steered["layer"] = steered["layer"].astype(float).astype(int)
    multi = steered["layer"].nunique() > 1
    groups = list(steered.groupby(["method", "layer"], sort=False))
    # methods that share a multiplier and a rate would hide each other: dodge them along x
    xs_all = steered["multiplier"].astype(float)
    width = 0.04 * max(float(xs_all.max() - xs_all.min()) if len(xs_all) else 0.0, 1.0)
    for i, ((method, layer), g) in enumerate(groups):
        g = g.groupby("multiplier")[keys].mean()
        name = f"{method} L{layer}" if multi else method
        line_color = METHOD_COLORS.get(method, color(0))
        m = g.index.astype(float)
        for key, col, dash, legend in (("unsafe_rate", 1, "solid", True),
                                       ("refusal_rate", 1, "dot", False),
                                       ("rouge_l", 2, "solid", False),
                                       ("relevance", 2, "dot", False)):
            fig.add_trace(go.Scatter(
                x=m + (i - (len(groups) - 1) / 2) * width, y=g[key].astype(float) * scale[key],
                customdata=m, mode="lines+markers", name=name, legendgroup=name,
                showlegend=legend, line=dict(color=line_color, dash=dash, width=3),
                # dotted series get open markers so a rate equal to the solid one stays visible
                marker=dict(size=9, symbol="circle" if dash == "solid" else "circle-open",
                            line=dict(width=2)),
                hovertemplate=(f"<b>{name}</b><br>m %{{customdata:g}}<br>{key} %{{y:.3g}}"
                               "<extra></extra>"),
            ), row=1, col=col)
    # the unsteered values as dashed reference lines across the multipliers, in the legend
    xs = steered["multiplier"].astype(float)
    span = [float(xs.min()), float(xs.max())] if len(xs) else [0.0, 1.0]
    for key, col in (("unsafe_rate", 1), ("relevance", 2)):
        if not math.isnan(base[key]):
            y = base[key] * scale[key]
            fig.add_trace(go.Scatter(
                x=span, y=[y, y], mode="lines", name="unsteered (dashed)",
                legendgroup="unsteered", showlegend=col == 1,
                line=dict(color=NEUTRAL, dash="dash", width=2),
                hovertemplate=f"<b>unsteered</b><br>{key} {y:.3g}<extra></extra>",
            ), row=1, col=col)
    fig.update_xaxes(title_text="multiplier m (suppress: scale)")
    fig.update_yaxes(title_text="% of held-out harmful prompts", rangemode="tozero", row=1, col=1)
    fig.update_yaxes(title_text="score (0-1)", rangemode="tozero", row=1, col=2)
    return style_figure(fig, "Safety / quality trade-off over the steering multiplier", 540,
                        subtitle="mean over risk categories", top=34)


def plot_vector_cosines(geometry: pd.DataFrame, layer: int | None = None) -> go.Figure:
    """Cosine matrices of the category vectors with each other and the refusal direction."""
    df = _require(geometry, ["kind", "layer", "a", "b", "cosine"], "geometry.csv")
    chosen = _pick_layer(df, layer)
    df = df[df["layer"].astype(int) == chosen]
    kinds = list(dict.fromkeys(df["kind"]))
    fig = make_subplots(rows=1, cols=max(len(kinds), 1), horizontal_spacing=0.14,
                        subplot_titles=[f"{k} vectors" for k in kinds])
    for i, kind in enumerate(kinds):
        g = df[df["kind"] == kind]
        names = [n for n in dict.fromkeys([*g["a"], *g["b"]]) if n != "refusal"] + ["refusal"]
        m = pd.DataFrame(np.eye(len(names)), index=names, columns=names)
        for _, r in g.iterrows():
            m.loc[r["a"], r["b"]] = m.loc[r["b"], r["a"]] = float(r["cosine"])
        fig.add_trace(go.Heatmap(
            z=m.to_numpy(), x=names, y=names, zmin=-1, zmax=1, colorscale=DIVERGING,
            showscale=i == len(kinds) - 1, colorbar=dict(title="cosine"),
            text=[[_n(v, ".2f") for v in row] for row in m.to_numpy()], texttemplate="%{text}",
            hovertemplate="%{y} vs %{x}<br>cosine %{z:.3f}<extra></extra>",
        ), row=1, col=i + 1)
        fig.update_yaxes(autorange="reversed", row=1, col=i + 1)
    return style_figure(fig, "Category vectors vs each other and the refusal direction "
                        f"(layer {chosen})", 600, top=34)


def _steering_layer(run_dir: Path) -> int | None:
    path = run_dir / "run.json"
    try:
        layers = json.loads(path.read_text()).get("steering_layers") if path.is_file() else None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise WorkbenchError(f"cannot read {path}: {exc}") from exc
    return int(layers[0]) if layers else None


def build_safesteer_figures(run_dir: str | os.PathLike) -> dict:
    """The figures a SafeSteer run directory's files support, by name (no files written)."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise WorkbenchError(f"run directory {run_dir} does not exist; pass the folder a "
                             "`workbench safesteer` job wrote")
    data = {n: read_table(run_dir / n) for n in ("neuron_summary.csv", "metrics.csv",
                                                "geometry.csv")}
    if all(v is None for v in data.values()):
        raise WorkbenchError(f"{run_dir} has no neuron_summary.csv, metrics.csv or geometry.csv; "
                             "is it a safesteer run directory?")
    layer = _steering_layer(run_dir)
    figs = {}
    if data["neuron_summary.csv"] is not None:
        figs["neuron_selectivity"] = plot_neuron_selectivity(data["neuron_summary.csv"])
    if data["metrics.csv"] is not None:
        figs["category_metrics"] = plot_category_metrics(data["metrics.csv"], layer)
        figs["safety_quality_tradeoff"] = plot_safety_quality_tradeoff(data["metrics.csv"])
    if data["geometry.csv"] is not None:
        figs["vector_cosines"] = plot_vector_cosines(data["geometry.csv"], layer)
    return figs


def render_safesteer_figures(run_dir: str | os.PathLike, png: bool = True) -> list[Path]:
    """Write ``run_dir/figures/<name>.html`` (+ ``.png``) for every figure the run supports."""
    return save_figures(build_safesteer_figures(run_dir), Path(run_dir) / "figures", png=png)


# The figure functions' names before they became ``plot_*``: importable for one release.
_RENAMED = {old: f"plot_{old}" for old in (
    "neuron_selectivity", "category_metrics", "safety_quality_tradeoff", "vector_cosines")}


__getattr__ = moved_names(__name__, {old: f"{__name__}:{new}" for old, new in _RENAMED.items()})

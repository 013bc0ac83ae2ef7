"""Figures of vector objects, for notebooks: ``wb.plot.cosine_by_layer(v, r)`` and friends.

Each takes :class:`workbench.vectors.SteeringVector` objects (one, a list, or a
``{name: vector}`` mapping), builds the tidy table and draws it in the house style (through
:mod:`workbench.figures` where a run-directory figure already shows the same thing). Each
returns a plotly figure; a notebook shows it as the cell's value.
"""

from __future__ import annotations

from collections.abc import Mapping

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from workbench.errors import WorkbenchError
from workbench.figures.audit import plot_cosine_by_layer
from workbench.figures.style import COLORWAY, NEUTRAL, layer_axis, style_figure
from workbench.vectors import RefusalDirection, SteeringVector, cosine_table

__all__ = ["cosine_by_layer", "norm_by_layer", "refusal_scores"]


def _named(vectors) -> dict[str, SteeringVector]:
    if isinstance(vectors, SteeringVector):
        return {vectors.name: vectors}
    if isinstance(vectors, Mapping):
        return dict(vectors)
    return {v.name: v for v in vectors}


def cosine_by_layer(vectors, reference, *, layer: int | None = None) -> go.Figure:
    """Cosine of each vector with ``reference`` at every layer (:func:`workbench.api.
    cosine_by_layer`), one line per vector; a dashed line marks ``layer`` (default: the
    refusal direction's selected layer)."""
    table = cosine_table(vectors, reference)
    if isinstance(reference, RefusalDirection):
        layer = reference.layer if layer is None else layer
        subtitle = (f"r̂ here: each layer's own diff-in-means candidate at eoi offset "
                    f"{reference.selection.offset}; the selected direction is layer "
                    f"{reference.layer}'s")
    else:
        name = reference.name if isinstance(reference, SteeringVector) else "the given direction"
        subtitle = f"reference: {name}" + (", layer by layer"
                                           if isinstance(reference, SteeringVector) else "")
    fig = plot_cosine_by_layer(table, refusal_layer=layer)
    ref_name = table["reference"].iloc[0] if len(table) else "the reference"
    fig.update_yaxes(title_text=f"Cosine with {ref_name}")
    fig.update_layout(title_text=f"Cosine of each vector with {ref_name}, by layer",
                      title_subtitle_text=subtitle, legend_title_text="vector")
    return fig


def norm_by_layer(vectors) -> go.Figure:
    """The norm of each vector at every layer, one line per vector."""
    named = _named(vectors)
    if not named:
        raise WorkbenchError("no vectors given; pass one, a list or {name: vector}")
    fig = go.Figure()
    for i, (name, v) in enumerate(named.items()):
        fig.add_trace(go.Scatter(
            x=list(range(v.n_layers)), y=v.norm().tolist(), mode="lines+markers", name=name,
            line=dict(width=3, color=COLORWAY[i % len(COLORWAY)]),
            hovertemplate=f"<b>{name}</b><br>layer %{{x}}<br>norm %{{y:.4g}}<extra></extra>"))
    layer_axis(fig, range(max(v.n_layers for v in named.values())))
    fig.update_xaxes(title_text="Layer (residual-stream index)")
    fig.update_yaxes(title_text="‖v_l‖")
    return style_figure(fig, "Norm of each vector, by layer", 460)


def refusal_scores(r: RefusalDirection) -> go.Figure:
    """The refusal direction's selection: bypass, induce and KL of every scored candidate by
    layer (one line per eoi offset), the selected layer dashed and the unsteered scores
    dotted."""
    if not isinstance(r, RefusalDirection) or r.selection is None:
        raise WorkbenchError("refusal_scores needs the RefusalDirection that "
                             "wb.refusal_direction(model) returns (it keeps the scores)")
    scores, sel = r.scores(), r.selection
    panels = [("bypass", "bypass: refusal score on harmful prompts, r̂ ablated (lower = better)"),
              ("induce", "induce: refusal score on harmless prompts, r added (must be > 0)"),
              ("kl", "KL(base ‖ ablated) on harmless prompts (must be small)")]
    fig = make_subplots(rows=3, cols=1, shared_xaxes=True, vertical_spacing=0.07,
                        subplot_titles=[title for _, title in panels])
    for row, (metric, _) in enumerate(panels, start=1):
        for i, (offset, g) in enumerate(scores.groupby("offset")):
            g = g.sort_values("layer")
            fig.add_trace(go.Scatter(
                x=g["layer"], y=g[metric], mode="lines+markers", name=f"eoi offset {offset}",
                showlegend=row == 1, legendgroup=str(offset),
                line=dict(width=3, color=COLORWAY[i % len(COLORWAY)]), marker=dict(size=8),
                hovertemplate=f"offset {offset}, layer %{{x}}<br>{metric} %{{y:.4g}}"
                              "<extra></extra>"), row=row, col=1)
        fig.add_vline(x=sel.layer, line=dict(dash="dash", color=NEUTRAL), row=row, col=1)
    for row, key in [(1, "harmful"), (2, "harmless")]:
        fig.add_hline(y=sel.baseline[f"{key}_refusal_score"], line=dict(dash="dot", color=NEUTRAL),
                      row=row, col=1, annotation_text=f"{key}, no intervention")
    fig.update_xaxes(dtick=1)
    fig.update_xaxes(title_text="layer", row=3, col=1)
    return style_figure(fig, f"Refusal-direction candidates (selected: layer {sel.layer}, "
                             f"rule {sel.rule!r})", 760, top=20)

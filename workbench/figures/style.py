"""One style for every workbench figure: palette, fonts, margins, markers and axis helpers.

New figures get the house style by building a plain ``go.Figure`` and calling
``style_figure(fig, title, height)``; colours come from the constants here (Okabe-Ito, which
stays distinguishable under the common colour-vision deficiencies), never from literals in the
figure code. Static exports (PNG) show no interaction hints: ``export.py`` adds them to the
HTML copy only (``with_interaction_hint``).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable

import numpy as np
import plotly.graph_objects as go

__all__ = [
    "COLORWAY", "DIVERGING", "FONT", "GRID", "MAGNITUDE", "METHOD_COLORS", "MITIGATION_COLORS",
    "MITIGATION_NAMES", "NEUTRAL", "OKABE_ITO", "PATTERNS", "SEQUENTIAL", "SPLIT_COLORS",
    "SYMBOLS", "TEMPLATE", "TEXT", "ZERO_LINE", "color", "layer_axis", "legend_above",
    "open_symbol", "padded_range", "style_figure", "top_margin", "with_interaction_hint",
    "wrap_label",
]

# Okabe & Ito (2008), the palette defined once for all figures.
OKABE_ITO = {
    "blue": "#0072B2", "orange": "#E69F00", "green": "#009E73", "vermillion": "#D55E00",
    "sky": "#56B4E9", "purple": "#CC79A7", "yellow": "#F0E442", "black": "#000000",
}
# order for categorical series (yellow last: weak on white)
COLORWAY = [OKABE_ITO[k] for k in ("blue", "orange", "green", "purple", "sky", "vermillion",
                                   "black", "yellow")]
NEUTRAL = "#666666"  # baselines and reference lines
TEXT = "#222222"
SEQUENTIAL = "Reds"  # rates in [0, 100] %
DIVERGING = "RdBu_r"  # signed values such as cosines, centred on 0
MAGNITUDE = "Viridis"  # unbounded non-negative values such as t statistics
PATTERNS = ["", "/", ".", "x", "-", "|", "+", "\\"]  # bar fills that need no colour
SYMBOLS = ["circle", "square", "diamond", "triangle-up", "triangle-down", "star", "cross", "x"]

MITIGATION_COLORS = {False: OKABE_ITO["vermillion"], True: OKABE_ITO["blue"]}
MITIGATION_NAMES = {False: "unmitigated", True: "mitigated (refusal component removed)"}
SPLIT_COLORS = {"harmful": OKABE_ITO["vermillion"], "harmless": OKABE_ITO["blue"]}
METHOD_COLORS = {"none": NEUTRAL, "safesteer": OKABE_ITO["blue"],
                 "neuron_add": OKABE_ITO["orange"], "neuron_suppress": OKABE_ITO["green"]}

FONT = "Arial, Helvetica, sans-serif"
GRID = "#e6e6e6"
_AXIS = dict(showgrid=True, gridcolor=GRID, linecolor="#444444", showline=True,
             ticks="outside", title=dict(font=dict(size=17), standoff=12),
             tickfont=dict(size=14), zeroline=False, automargin=True,
             autotickangles=[0, 30, 60, 90])
TEMPLATE = go.layout.Template(
    layout=go.Layout(
        font=dict(family=FONT, size=16, color=TEXT),
        # the title pushes the top margin itself; x in container pixels from the left edge
        title=dict(font=dict(size=22), x=0, xref="container", xanchor="left", y=1,
                   yref="container", yanchor="top", pad=dict(l=16, t=14),
                   subtitle=dict(font=dict(size=15, color="#555555"))),
        colorway=COLORWAY,
        paper_bgcolor="white",
        plot_bgcolor="white",
        margin=dict(l=16, r=16, t=70, b=16, autoexpand=True),
        hoverlabel=dict(font=dict(family=FONT, size=15), align="left"),
        legend=dict(font=dict(size=15), bgcolor="rgba(255,255,255,0.85)",
                    bordercolor="#cccccc", borderwidth=1),
        xaxis=_AXIS,
        yaxis=_AXIS,
    )
)
ZERO_LINE = dict(zeroline=True, zerolinecolor="#333333", zerolinewidth=2)
# pixels the title (and subtitle) take at the top of the canvas
_TITLE_PX, _SUBTITLE_PX = 58, 26


def color(i: int) -> str:
    """The ``i``-th categorical colour."""
    return COLORWAY[i % len(COLORWAY)]


def open_symbol(i: int) -> str:
    """The hollow version of the ``i``-th marker symbol (for a series drawn over another)."""
    return f"{SYMBOLS[i % len(SYMBOLS)]}-open"


def top_margin(subtitle: str | None = None, extra: int = 0) -> int:
    """Top margin (px) that holds the title, the subtitle if any, and ``extra`` px below."""
    return _TITLE_PX + (_SUBTITLE_PX if subtitle else 0) + extra


def style_figure(fig: go.Figure, title: str, height: int, *, subtitle: str | None = None,
                 hint: str | None = None, top: int = 0) -> go.Figure:
    """Apply the house style: template, title (+ subtitle), height and a tight top margin.

    ``top``: extra pixels under the title (for a legend or subplot titles placed there).
    ``hint``: how to interact with the figure ("drag to rotate"), shown in the HTML only.
    """
    fig.update_layout(template=TEMPLATE, title_text=title, height=height,
                      margin_t=top_margin(subtitle, top))
    if subtitle:
        fig.update_layout(title_subtitle_text=subtitle)
    if hint:
        meta = fig.layout.meta if isinstance(fig.layout.meta, dict) else {}
        fig.update_layout(meta={**meta, "interaction_hint": hint})
    return fig


def with_interaction_hint(fig: go.Figure) -> go.Figure:
    """A copy of ``fig`` whose subtitle also tells how to interact (hover; drag to rotate)."""
    out = go.Figure(fig)
    meta = fig.layout.meta if isinstance(fig.layout.meta, dict) else {}
    hints = ["hover for exact values", *([meta["interaction_hint"]]
                                         if meta.get("interaction_hint") else [])]
    sub = fig.layout.title.subtitle.text if fig.layout.title.subtitle else None
    text = f"{sub}; {'; '.join(hints)}" if sub else "; ".join(hints).capitalize()
    out.update_layout(title_subtitle_text=text)
    if not sub:
        out.update_layout(margin_t=(fig.layout.margin.t or 0) + _SUBTITLE_PX)
    return out


def legend_above(fig: go.Figure, height: int, subtitle: str | None = None, **kw) -> int:
    """A horizontal legend just under the title, above the plot (and its subplot titles).

    Returns the pixels one row of legend takes, to add to ``style_figure(..., top=...)``.
    """
    fig.update_layout(legend=dict(orientation="h", x=0, xanchor="left", yref="container",
                                  y=1 - (top_margin(subtitle) - 6) / height, yanchor="top",
                                  **kw))
    return 44


def padded_range(values: Iterable[float], pad: float = 0.06, *,
                 include_zero: bool = False) -> list[float] | None:
    """[lo, hi] around the finite ``values``, widened by ``pad`` of the span on each side."""
    v = np.asarray([float(x) for x in values], dtype=float)
    v = v[np.isfinite(v)]
    if v.size == 0:
        return None
    lo, hi = float(v.min()), float(v.max())
    if include_zero:
        lo, hi = min(lo, 0.0), max(hi, 0.0)
    span = hi - lo or (abs(hi) or 1.0)
    return [lo - pad * span, hi + pad * span]


def layer_axis(fig: go.Figure, layers: Iterable[int], *, max_ticks: int = 26, **where) -> None:
    """An integer layer x axis that spans exactly the layers present (half a step each side)."""
    ls = sorted({int(x) for x in layers})
    if not ls:
        return
    step = max(1, math.ceil(len(range(ls[0], ls[-1] + 1)) / max_ticks))
    fig.update_xaxes(range=[ls[0] - 0.5, ls[-1] + 0.5], tick0=ls[0], dtick=step, **where)


_BREAK = re.compile(r"(?<=[-_/ ])")


def wrap_label(text: str, width: int) -> str:
    """Break ``text`` into lines of about ``width`` characters (at '-', '_', '/' or spaces)."""
    text = str(text)
    if len(text) <= width:
        return text
    lines, line = [], ""
    for piece in _BREAK.split(text):
        if line and len(line) + len(piece.rstrip()) > width:
            lines.append(line.rstrip())
            line = ""
        line += piece
    lines.append(line.rstrip())
    return "<br>".join(lines)

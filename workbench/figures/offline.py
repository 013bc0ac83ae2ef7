"""How plotly.js reaches a figure, decided in one place: never from a CDN, so figures work offline.

- figure HTML files (:func:`workbench.figures.export.save_figures`, ``workbench figures``)
  load plotly.js from one ``plotly.min.js`` written beside them (:data:`INCLUDE_PLOTLYJS`), so
  a figures folder opens without a network and a run's ten figures share one 4.8 MB copy;
- notebooks call :func:`use_offline_figures` in their set-up cell: each figure is then shown
  as plotly's own mimetype (JupyterLab, VS Code) *and* as HTML that ``jupyter nbconvert --to
  html`` keeps, with plotly.js embedded once in the set-up cell's output (plotly's
  ``notebook`` renderer, not ``notebook_connected``, which loads it from a CDN).
"""

from __future__ import annotations

__all__ = ["INCLUDE_PLOTLYJS", "NOTEBOOK_RENDERER", "use_offline_figures"]

# plotly's include_plotlyjs: "directory" writes plotly.min.js once beside the figures (offline, no CDN)
INCLUDE_PLOTLYJS = "directory"
# "plotly_mimetype" for live notebook front ends, "notebook" (offline HTML) for exports
NOTEBOOK_RENDERER = "plotly_mimetype+notebook"


def use_offline_figures() -> str:
    """Show plotly figures in this kernel so that HTML exports keep them, offline.

    Sets plotly's default renderer for the running kernel (a notebook's own session setting,
    like ``%matplotlib inline``) and, in a notebook, writes plotly.js once into this cell's
    output. Returns the renderer name. Call it in a notebook's set-up cell.
    """
    import plotly.io as pio

    pio.renderers.default = NOTEBOOK_RENDERER
    return NOTEBOOK_RENDERER

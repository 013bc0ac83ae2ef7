"""Helpers and widgets for the notebooks in ``notebooks/``.

- :mod:`~workbench.notebook.explorer`: ``steer_and_generate`` and the ipywidgets
  ``SteeringExplorer`` (needs the ``notebooks`` extra for the widget);
- :mod:`~workbench.notebook.tokens`: per-token projections and a plain-HTML coloured token view;
- :mod:`~workbench.notebook.ab`: A/B answer probabilities of CAA items;
- :mod:`~workbench.notebook.tables`: wrapped text tables and an audit generations browser;
- ``use_offline_figures`` (from :mod:`workbench.figures.offline`): plotly figures that HTML
  exports keep, with plotly.js embedded once;
- :mod:`~workbench.notebook.handout`: execute a notebook and write the student HTML.
"""

from workbench.figures.offline import use_offline_figures
from workbench.notebook.ab import ab_probabilities, letter_targets
from workbench.notebook.explorer import (
    SteeringExplorer,
    readout,
    render_result_html,
    steer_and_generate,
    steering_vector,
)
from workbench.notebook.tables import (
    GenerationsBrowser,
    filter_generations,
    load_generations,
    text_table,
)
from workbench.notebook.tokens import colored_tokens_html, token_projections, token_strings

__all__ = ["GenerationsBrowser", "SteeringExplorer", "ab_probabilities", "colored_tokens_html",
           "filter_generations", "letter_targets", "load_generations", "readout",
           "render_result_html", "steer_and_generate", "steering_vector", "text_table",
           "token_projections", "token_strings", "use_offline_figures"]

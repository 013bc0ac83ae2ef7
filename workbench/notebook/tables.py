"""Tables for notebooks: wrapped-text display, and a filterable view of an audit's generations.

``load_generations`` / ``filter_generations`` are plain pandas (tested without a browser);
``GenerationsBrowser`` puts dropdowns and a search box in front of them (ipywidgets).
"""

from __future__ import annotations

import html
import json
import os
from pathlib import Path
from typing import Any

import pandas as pd

from workbench.errors import WorkbenchError

__all__ = ["FILTER_COLUMNS", "GenerationsBrowser", "filter_generations", "load_generations",
           "text_table"]

# generations.jsonl fields a browser filters on, in display order
FILTER_COLUMNS = ("split", "behaviour", "coefficient", "mitigated", "template", "label")
SHOW_COLUMNS = ["split", "behaviour", "layer", "coefficient", "mitigated", "template", "label",
                "category", "instruction", "response"]
ALL = "(all)"


def text_table(df: pd.DataFrame, max_chars: int | None = None):
    """A pandas Styler that wraps long text, left-aligned, index hidden (for generations)."""
    if max_chars is not None:
        df = df.copy()
        for col in df.columns:
            if df[col].dtype == object:
                df[col] = df[col].map(lambda v: v if not isinstance(v, str) or len(v) <= max_chars
                                      else v[:max_chars] + "…")
    return (df.style
            .set_properties(**{"white-space": "pre-wrap", "text-align": "left",
                               "vertical-align": "top"})
            .set_table_styles([{"selector": "th", "props": [("text-align", "left")]}])
            .hide(axis="index"))


def load_generations(run_dir: str | os.PathLike) -> pd.DataFrame:
    """``generations.jsonl`` of an audit run as a DataFrame (one row per generation)."""
    path = Path(run_dir) / "generations.jsonl"
    if not path.is_file():
        raise WorkbenchError(f"{path} does not exist; is {run_dir} a `workbench audit` run?")
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()
            if line.strip()]
    df = pd.DataFrame(rows)
    if df.empty:
        raise WorkbenchError(f"{path} is empty; the audit has not generated anything yet")
    df["layer"] = df["layer"].astype("Int64")
    df["coefficient"] = df["coefficient"].astype(float)
    df["mitigated"] = df["mitigated"].astype(bool)
    return df


def filter_generations(df: pd.DataFrame, contains: str | None = None, **equal: Any) -> pd.DataFrame:
    """Rows whose columns equal the given values (None or "(all)": no filter on that column),
    and whose instruction or response contains ``contains`` (case-insensitive)."""
    mask = pd.Series(True, index=df.index)
    for col, value in equal.items():
        if value is None or value == ALL:
            continue
        if col not in df.columns:
            raise WorkbenchError(f"no column {col!r} to filter on; columns: {', '.join(df.columns)}")
        mask &= df[col] == value
    if contains:
        needle = contains.lower()
        mask &= (df["instruction"].str.lower().str.contains(needle, regex=False)
                 | df["response"].str.lower().str.contains(needle, regex=False))
    return df[mask]


class GenerationsBrowser:
    """Dropdowns for split, behaviour, coefficient, mitigated, template and label, a search box,
    and the matching generations as a wrapped table (display the object as a cell's value)."""

    def __init__(self, generations: pd.DataFrame, max_rows: int = 50) -> None:
        import ipywidgets as w

        self.df, self.max_rows = generations, max_rows
        self.filters = {}
        for col in FILTER_COLUMNS:
            if col not in generations.columns:
                continue
            values = sorted(generations[col].dropna().unique().tolist(), key=str)
            self.filters[col] = w.Dropdown(options=[ALL, *values], value=ALL, description=col,
                                           layout=w.Layout(width="260px"))
        self.search = w.Text(placeholder="text in instruction or response", description="contains",
                             layout=w.Layout(width="360px"))
        self.count = w.HTML()
        self.table = w.HTML()
        for control in [*self.filters.values(), self.search]:
            control.observe(self.update, names="value")
        boxes = list(self.filters.values())
        self.widget = w.VBox([w.HBox(boxes[:3]), w.HBox(boxes[3:]),
                              w.HBox([self.search, self.count]), self.table])
        self.update()

    def current(self) -> pd.DataFrame:
        """The rows the controls select."""
        return filter_generations(self.df, contains=self.search.value or None,
                                  **{c: d.value for c, d in self.filters.items()})

    def update(self, _change=None) -> None:
        rows = self.current()
        shown = rows[[c for c in SHOW_COLUMNS if c in rows.columns]].head(self.max_rows)
        self.count.value = (f"&nbsp;<b>{len(rows)}</b> of {len(self.df)} generations"
                            + (f" (first {self.max_rows} shown)" if len(rows) > self.max_rows else ""))
        self.table.value = (text_table(shown).to_html() if len(shown)
                            else f"<i>{html.escape('no generation matches these filters')}</i>")

    def _repr_mimebundle_(self, **kwargs):
        # an HTML export (no widget state saved) shows the current count and table instead
        bundle = self.widget._repr_mimebundle_(**kwargs)
        data = bundle[0] if isinstance(bundle, tuple) else bundle
        data["text/html"] = (f"<div class='workbench-browser-snapshot'><div style='font-size:13px;"
                             f"color:#555'>Generations browser, a static snapshot of its current "
                             f"filter (open the notebook in Jupyter to filter):"
                             f"{self.count.value}</div>{self.table.value}</div>")
        return bundle

"""A run directory's CSV tables read back: as DataFrames, or as typed rows, with one boolean
parser for every reader (the tables write ``True`` / ``False``; hand-made or older files may
say ``true``, ``1``, ``yes``)."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import numpy as np

from workbench.errors import WorkbenchError

TRUE_TEXT = frozenset({"true", "1", "yes"})
FALSE_TEXT = frozenset({"false", "0", "no", "", "none", "nan"})
# audit table columns read back as text, booleans and integers; every other column is a float
TEXT_COLUMNS = frozenset({"behaviour", "method", "items", "coefficient_scale", "category",
                          "template", "judge", "split"})
BOOL_COLUMNS = frozenset({"control", "mitigated", "placebo"})
INT_COLUMNS = frozenset({"layer", "n", "open_n"})


def parse_bool(value, unknown: bool | None = None) -> bool:
    """A table cell as a boolean: ``True`` / ``False`` (any case), ``1`` / ``0``, ``yes`` /
    ``no``, numbers by their truth, and an empty or missing cell as False.

    Other text is an error, or ``unknown`` where given (e.g. True where a column may hold a
    name in place of True)."""
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, str):
        s = value.strip().lower()
        if s in TRUE_TEXT:
            return True
        if s in FALSE_TEXT:
            return False
        if unknown is not None:
            return unknown
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return False
    if isinstance(value, (int, float, np.integer, np.floating)):
        return bool(value)
    if unknown is not None:
        return unknown
    raise WorkbenchError(f"cannot read {value!r} as a boolean (expected True/False)")


def bool_column(values, unknown: bool | None = None):
    """A pandas column through :func:`parse_bool`, as a bool Series."""
    return values.map(lambda v: parse_bool(v, unknown)).astype(bool)


def read_table(path: Path):
    """A run's CSV table as a DataFrame; None when the file is absent or has no rows."""
    import pandas as pd

    path = Path(path)
    if not path.is_file():
        return None
    try:
        df = pd.read_csv(path)
    except pd.errors.EmptyDataError:
        return None
    except (pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise WorkbenchError(f"cannot read {path}: {' '.join(str(exc).split())}") from exc
    return None if df.empty else df


def cell_value(column: str, text: str):
    """An audit CSV cell back to the type the analysis wrote it from (empty: NaN, or None for
    ``layer``)."""
    if column in TEXT_COLUMNS:
        return text
    if column in BOOL_COLUMNS:
        return parse_bool(text)
    if text == "":
        return None if column == "layer" else math.nan
    if column in INT_COLUMNS:
        return int(float(text))
    return float(text)


def read_rows(path: Path) -> list[dict]:
    """An audit CSV table as typed rows (:func:`cell_value`)."""
    with open(path, newline="") as f:
        return [{k: cell_value(k, v) for k, v in row.items()} for row in csv.DictReader(f)]

"""Number formatting for written reports, tables and figure labels: one set of functions.

Reports and CSVs must not change byte-wise between releases, so where two writers print the
same quantity differently (``40.0%`` in the audit report, ``40%`` in SafeSteer's; ``—`` or
``n/a`` for a missing value) each keeps its form through a parameter or a second function.
"""

from __future__ import annotations

import math

DASH = "—"  # a missing value in the audit report and figures
NA = "n/a"  # a missing value in the SafeSteer report


def is_missing(x) -> bool:
    """None or a float NaN."""
    return x is None or (isinstance(x, float) and math.isnan(x))


def is_finite(x) -> bool:
    """A Python number that is not NaN (None, text and NaN are not)."""
    return isinstance(x, (int, float)) and not math.isnan(x)


def below(p, alpha: float = 0.05) -> bool:
    """A finite p-value below ``alpha``."""
    return is_finite(p) and p < alpha


def csv_cell(x):
    """A CSV cell: floats to 6 significant digits, NaN and None as empty, others as they are."""
    if isinstance(x, float):
        return "" if math.isnan(x) else f"{x:.6g}"
    return "" if x is None else x


def csv_rows(rows, fields) -> list[dict]:
    """``rows`` cut to ``fields`` (missing keys empty), every cell through :func:`csv_cell`."""
    return [{k: csv_cell(r.get(k)) for k in fields} for r in rows]


def pct(x, missing: str = DASH) -> str:
    """A rate as a percentage with one decimal (``40.0%``), never ``-0.0%``."""
    if is_missing(x):
        return missing
    return f"{round(100 * x, 1) + 0.0:.1f}%"


def pct_whole(x, missing: str = NA) -> str:
    """A rate as a whole percentage (``40%``)."""
    return missing if is_missing(x) else f"{100 * x:.0f}%"


def pp(x, missing: str = DASH) -> str:
    """A change in percentage points, signed, one decimal, never ``-0.0``."""
    if is_missing(x):
        return missing
    v = round(100 * x, 1)
    return f"{v + 0.0:+.1f}"


def p_value(x, missing: str = DASH) -> str:
    """A p-value for a report: two significant digits below 0.001, else three."""
    if is_missing(x):
        return missing
    return f"{x:.2g}" if x < 0.001 else f"{x:.3g}"  # p-values are never negative


def p_value_fixed(x, missing: str = DASH) -> str:
    """A p-value for a figure label: three decimals, scientific below 0.001."""
    if is_missing(x):
        return missing
    x = float(x)
    return f"{x:.1e}" if x < 1e-3 else f"{x:.3f}"


def num(x, spec: str = ".3f", missing: str = DASH, signed_zero: bool = False) -> str:
    """``x`` formatted by ``spec``; ``-0`` printed as ``0`` unless ``signed_zero`` (which
    formats ``float(x)`` as it is)."""
    if is_missing(x):
        return missing
    return format(float(x), spec) if signed_zero else f"{x + 0.0:{spec}}"


def cell(x, spec: str, missing: str = "") -> str:
    """A markdown table cell: a number formatted by ``spec``, anything else as text."""
    if is_missing(x):
        return missing
    return format(x, spec) if isinstance(x, (int, float)) else str(x)

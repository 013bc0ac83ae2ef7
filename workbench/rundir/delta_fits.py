"""The descriptive ΔASR fits over audit tables that ``workbench compare`` writes and its
figures redraw: which rows they use, their predictor, and the least-squares lines."""

from __future__ import annotations

import math

import pandas as pd

from workbench.evaluation.stats import regression
from workbench.rundir.tables import bool_column

FIT_FIELDS = ["model", "predictor", "n", "slope", "intercept", "r2", "p_value", "stderr",
              "cosine_min", "cosine_max", "note"]
POOLED = "pooled"


def predictor(table: pd.DataFrame) -> str:
    """The x of the fits: ``projection`` (the added vector's projection on the selected refusal
    direction, c x cos x scale) where every run wrote it, else ``cosine`` (older runs)."""
    if "projection" in table.columns and table["projection"].notna().any():
        return "projection"
    return "cosine"


def fit_rows(table: pd.DataFrame) -> pd.DataFrame:
    """The rows the fits use: steered behaviours (not baseline, control or placebo),
    unmitigated, templates pooled."""
    df = table[table["behaviour"].astype(str) != "none"]
    df = df[~df["behaviour"].astype(str).str.startswith("placebo-")]
    df = df.dropna(subset=[predictor(table), "delta_asr"])
    if "mitigated" in df:
        df = df[~bool_column(df["mitigated"], unknown=False)]
    if "control" in df:  # True/False, or the name of a control (e.g. "random"); empty = none
        df = df[~bool_column(df["control"], unknown=True)]
    if "template" in df:
        parts = []
        for _, g in df.groupby("model", sort=False):
            pooled = g["template"].astype(str) == "all"
            parts.append(g[pooled] if pooled.any() else g)
        df = pd.concat(parts) if parts else df
    return df


def fits(table: pd.DataFrame) -> list[dict]:
    """Descriptive OLS ΔASR ~ predictor per model and pooled over conditions
    (:func:`workbench.evaluation.stats.regression`); the per-run reports hold the prompt-level
    fits with clustered errors, which are the ones to test with."""
    df = fit_rows(table)
    x_name = predictor(table)
    groups = [(m, g) for m, g in df.groupby("model", sort=False)] + [(POOLED, df)]
    out = []
    for model, g in groups:
        x, y = g[x_name].astype(float), g["delta_asr"].astype(float)
        fit = regression(x.to_numpy(), y.to_numpy())
        out.append({"model": model, "predictor": x_name,
                    **{k: fit[k] for k in ("n", "slope", "intercept", "r2", "p_value", "stderr",
                                           "note")},
                    "cosine_min": float(x.min()) if len(x) else math.nan,
                    "cosine_max": float(x.max()) if len(x) else math.nan})
    return out

"""Cross-model comparison tables: every audit run's ΔASR rows with its model and relative depth,
the geometry tables, and ``compare.md`` (the fits and the rows they use)."""

from __future__ import annotations

import pandas as pd

from workbench.report import cell, csv_cell
from workbench.rundir.audit import AuditTables
from workbench.rundir.delta_fits import fit_rows, predictor

LEAD_FIELDS = ["model", "run", "n_layers", "d_model", "behaviour", "layer", "relative_depth",
               "coefficient", "template", "mitigated", "cosine", "asr", "baseline_asr",
               "delta_asr", "delta_ci_low", "delta_ci_high", "p_value"]


def model_labels(runs: list[AuditTables]) -> list[str]:
    """Model names, made unique with the run directory's name where two runs share a model."""
    names = [r.model for r in runs]
    return [n if names.count(n) == 1 else f"{n} ({r.path.name})" for n, r in zip(names, runs)]


def compare_tables(runs: list[AuditTables]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """One ΔASR table and one geometry table over every run, with model and relative depth."""
    deltas, geoms = [], []
    for label, run in zip(model_labels(runs), runs):
        d = run.delta.copy()
        d.insert(0, "model", label)
        d.insert(1, "run", str(run.path))
        d["n_layers"], d["d_model"] = run.n_layers, run.d_model
        if "layer" in d:
            d["relative_depth"] = d["layer"].astype(float) / run.n_layers
        deltas.append(d)
        if run.geometry is not None:
            g = run.geometry.copy()
            g.insert(0, "model", label)
            g["n_layers"] = run.n_layers
            g["relative_depth"] = g["layer"].astype(float) / run.n_layers
            geoms.append(g)
    table = pd.concat(deltas, ignore_index=True, sort=False)
    lead = [c for c in LEAD_FIELDS if c in table.columns]
    table = table[lead + [c for c in table.columns if c not in lead]]
    geometry = pd.concat(geoms, ignore_index=True, sort=False) if geoms else pd.DataFrame(
        columns=["model", "behaviour", "layer", "cosine", "n_layers", "relative_depth"])
    return table, geometry


def markdown(table: pd.DataFrame, fit: list[dict]) -> str:
    """compare.md: the fits, then the ΔASR rows the fits use, per model."""
    x_name = predictor(table)
    x_text = ("the added vector's projection on the selected refusal direction (c × cos × "
              "scale)" if x_name == "projection" else "the steering vector's cosine with the "
              "refusal direction")
    lines = ["# Cross-model comparison", "",
             "ΔASR (steered minus baseline attack success rate, percentage points) against "
             f"{x_text}. Fits: descriptive least squares over unmitigated behaviour conditions "
             "(templates pooled where the audit wrote them, control and placebo rows left out); "
             "conditions share prompts and a baseline, so their p-values are too small: each "
             "run's report.md holds the prompt-level fit with clustered errors. Each line holds "
             "only over the range it was fitted on.", "",
             f"| model | n | slope (pp per unit {x_name}) | R² | p | {x_name} range | note |",
             "|---|---|---|---|---|---|---|"]
    for f in fit:
        lines.append(f"| {f['model']} | {f['n']} | {cell(100 * f['slope'], '+.1f')} | "
                     f"{cell(f['r2'], '.2f')} | {cell(f['p_value'], '.2g')} | "
                     f"[{cell(f['cosine_min'], '+.3f')}, {cell(f['cosine_max'], '+.3f')}] | "
                     f"{f['note'] or ''} |")
    rows = fit_rows(table)
    lines += ["", "## Rows fitted", "",
              f"| model | behaviour | layer | depth | coef | {x_name} | ΔASR pp [95% CI] | p | "
              "p (Holm) | verdict |",
              "|---|---|---|---|---|---|---|---|---|---|"]
    for _, r in rows.iterrows():
        ci = ("" if "delta_ci_low" not in r or pd.isna(r.get("delta_ci_low")) else
              f" [{100 * r['delta_ci_low']:+.1f}, {100 * r['delta_ci_high']:+.1f}]")
        lines.append(f"| {r['model']} | {r['behaviour']} | {cell(r.get('layer'), '.0f')} | "
                     f"{cell(r.get('relative_depth'), '.2f')} | {cell(r['coefficient'], 'g')} | "
                     f"{r[x_name]:+.4f} | {100 * r['delta_asr']:+.1f}{ci} | "
                     f"{cell(r.get('p_value'), '.2g')} | {cell(r.get('p_holm'), '.2g')} | "
                     f"{cell(r.get('verdict'), 's')} |")
    lines += ["", "Every row of every run is in `compare.csv`; fits in `fits.csv`; cosine by "
              "layer and relative depth in `geometry.csv`.", ""]
    return "\n".join(lines)


def csv_rows(df: pd.DataFrame) -> list[dict]:
    """A DataFrame's rows as CSV cells (:func:`workbench.report.csv_cell`)."""
    return [{k: csv_cell(v) for k, v in row.items()} for row in df.to_dict("records")]

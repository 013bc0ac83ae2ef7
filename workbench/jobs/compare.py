"""Cross-model comparison: pool audit run directories of different models into one analysis.

``workbench compare RUN_DIR RUN_DIR ... --out DIR`` reads each run's ``run.json``,
``delta_asr.csv`` and ``geometry.csv`` (no model is loaded) and writes:

- ``compare.csv`` / ``compare.md``: every ΔASR row of every run, with the model, its depth and
  the steering layer's relative depth (``layer / n_layers``);
- ``fits.csv``: least-squares ΔASR-vs-cosine lines per model and pooled over models (unmitigated
  rows, templates pooled where the audit wrote ``template = all``, control rows left out), each
  with the cosine range it was fitted on;
- ``geometry.csv``: cosine of each CAA vector with the refusal direction by layer and relative
  depth, per model;
- ``figures/``: ``delta_vs_cosine_models`` and ``cosine_by_depth`` (HTML, and PNG when
  Chromium is there).

Columns are read by name: columns other audits add (``control``, ``method``, judge columns, ...)
are carried into ``compare.csv`` when present and never required.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from workbench.errors import WorkbenchError
from workbench.evaluation.stats import regression
from workbench.runs import read_json, write_csv, write_text

DELTA_REQUIRED = ("behaviour", "coefficient", "delta_asr", "cosine")
GEOMETRY_REQUIRED = ("behaviour", "layer", "cosine")
LEAD_FIELDS = ["model", "run", "n_layers", "d_model", "behaviour", "layer", "relative_depth",
               "coefficient", "template", "mitigated", "cosine", "asr", "baseline_asr",
               "delta_asr", "delta_ci_low", "delta_ci_high", "p_value"]
FIT_FIELDS = ["model", "predictor", "n", "slope", "intercept", "r2", "p_value", "stderr", "cosine_min",
              "cosine_max", "note"]
POOLED = "pooled"


@dataclass
class AuditRun:
    """What the comparison needs from one audit run directory."""

    path: Path
    model: str
    n_layers: int
    d_model: int | None
    delta: pd.DataFrame
    geometry: pd.DataFrame | None


def _read_csv(path: Path, required: tuple[str, ...]) -> pd.DataFrame | None:
    from workbench.figures.export import read_table

    df = read_table(path)
    if df is None:
        return None
    missing = [c for c in required if c not in df.columns]
    if missing:
        raise WorkbenchError(f"{path} lacks column(s) {', '.join(missing)}; give audit run "
                             "directories written by `workbench audit` (docs/run_dir.md)")
    return df


def load_audit_run(run_dir: str | Path) -> AuditRun:
    """Read one audit run directory; a clear error names what is missing."""
    path = Path(run_dir)
    if not (path / "run.json").is_file():
        raise WorkbenchError(f"{path} has no run.json; give audit run directories (the --out of "
                             "`workbench audit`)")
    record = read_json(path / "run.json")
    if record.get("job") != "audit":
        raise WorkbenchError(f"{path} holds a {record.get('job')!r} run, not an audit run; "
                             "`workbench compare` pools audit runs")
    delta = _read_csv(path / "delta_asr.csv", DELTA_REQUIRED)
    if delta is None:
        raise WorkbenchError(f"{path} has no delta_asr.csv rows; finish the audit (re-run the "
                             "same command to resume) before comparing")
    geometry = _read_csv(path / "geometry.csv", GEOMETRY_REQUIRED)
    model = record.get("model") or {}
    n_layers = model.get("n_layers")
    if n_layers is None and geometry is not None:
        n_layers = int(geometry["layer"].max()) + 1
    if not n_layers:
        raise WorkbenchError(f"{path}/run.json names no model.n_layers and there is no "
                             "geometry.csv to infer it from; re-run the audit")
    name = model.get("spec") or record.get("config", {}).get("model") or path.name
    return AuditRun(path, str(name), int(n_layers), model.get("d_model"), delta, geometry)


def _label_models(runs: list[AuditRun]) -> list[str]:
    """Model names, made unique with the run directory's name where two runs share a model."""
    names = [r.model for r in runs]
    return [n if names.count(n) == 1 else f"{n} ({r.path.name})" for n, r in zip(names, runs)]


def _flag(series: pd.Series) -> pd.Series:
    return series.astype(str).str.strip().str.lower().isin(("true", "1", "yes"))


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
        df = df[~_flag(df["mitigated"])]
    if "control" in df:  # True/False, or the name of a control (e.g. "random"); empty = none
        text = df["control"].astype(str).str.strip().str.lower()
        df = df[df["control"].isna() | text.isin(("", "false", "0", "nan", "none", "no"))]
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
        out.append({"model": model, "predictor": x_name, **{k: fit[k] for k in ("n", "slope", "intercept", "r2",
                                                           "p_value", "stderr", "note")},
                    "cosine_min": float(x.min()) if len(x) else math.nan,
                    "cosine_max": float(x.max()) if len(x) else math.nan})
    return out


def compare_tables(runs: list[AuditRun]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """One ΔASR table and one geometry table over every run, with model and relative depth."""
    deltas, geoms = [], []
    for label, run in zip(_label_models(runs), runs):
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


def _cell(x, spec: str) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return ""
    return format(x, spec) if isinstance(x, (int, float)) else str(x)


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
        lines.append(f"| {f['model']} | {f['n']} | {_cell(100 * f['slope'], '+.1f')} | "
                     f"{_cell(f['r2'], '.2f')} | {_cell(f['p_value'], '.2g')} | "
                     f"[{_cell(f['cosine_min'], '+.3f')}, {_cell(f['cosine_max'], '+.3f')}] | "
                     f"{f['note'] or ''} |")
    rows = fit_rows(table)
    lines += ["", "## Rows fitted", "",
              f"| model | behaviour | layer | depth | coef | {x_name} | ΔASR pp [95% CI] | p | "
              "p (Holm) | verdict |",
              "|---|---|---|---|---|---|---|---|---|---|"]
    for _, r in rows.iterrows():
        ci = ("" if "delta_ci_low" not in r or pd.isna(r.get("delta_ci_low")) else
              f" [{100 * r['delta_ci_low']:+.1f}, {100 * r['delta_ci_high']:+.1f}]")
        lines.append(f"| {r['model']} | {r['behaviour']} | {_cell(r.get('layer'), '.0f')} | "
                     f"{_cell(r.get('relative_depth'), '.2f')} | {_cell(r['coefficient'], 'g')} | "
                     f"{r[x_name]:+.4f} | {100 * r['delta_asr']:+.1f}{ci} | "
                     f"{_cell(r.get('p_value'), '.2g')} | {_cell(r.get('p_holm'), '.2g')} | "
                     f"{_cell(r.get('verdict'), 's')} |")
    lines += ["", "Every row of every run is in `compare.csv`; fits in `fits.csv`; cosine by "
              "layer and relative depth in `geometry.csv`.", ""]
    return "\n".join(lines)


def _csv_rows(df: pd.DataFrame) -> list[dict]:
    def cell(v):
        if isinstance(v, float):
            return "" if math.isnan(v) else f"{v:.6g}"
        return "" if v is None else v

    return [{k: cell(v) for k, v in row.items()} for row in df.to_dict("records")]


def run_compare(run_dirs: list[str | Path], out: str | Path, png: bool = True) -> dict:
    """Pool audit runs and write the tables and figures; return a small summary."""
    if len(run_dirs) < 2:
        raise WorkbenchError(f"got {len(run_dirs)} run directory; give two or more audit runs "
                             "(of different models) to compare")
    runs = [load_audit_run(d) for d in run_dirs]
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    table, geometry = compare_tables(runs)
    fit = fits(table)
    write_csv(out / "compare.csv", _csv_rows(table), list(table.columns))
    write_csv(out / "fits.csv", _csv_rows(pd.DataFrame(fit, columns=FIT_FIELDS)), FIT_FIELDS)
    write_csv(out / "geometry.csv", _csv_rows(geometry), list(geometry.columns))
    write_text(out / "compare.md", markdown(table, fit))
    from workbench.figures.compare import render_compare_figures
    from workbench.jobs.common import render_figures

    warnings = render_figures(render_compare_figures, out, png)
    return {"models": _label_models(runs), "n_rows": len(table), "fits": fit,
            "warnings": warnings}


__all__ = ["AuditRun", "compare_tables", "fit_rows", "fits", "load_audit_run", "markdown",
           "run_compare"]

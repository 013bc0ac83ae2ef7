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
are carried into ``compare.csv`` when present and never required. The tables are built by
:mod:`workbench.analysis.compare` and :mod:`workbench.rundir`; this module writes them.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from workbench.analysis import compare as comparison
from workbench.deprecation import moved_names
from workbench.errors import WorkbenchError
from workbench.rundir import audit as rundir_audit
from workbench.rundir import delta_fits
from workbench.runs import write_csv, write_text


def run_compare(run_dirs: list[str | Path], out: str | Path, png: bool = True) -> dict:
    """Pool audit runs and write the tables and figures; return a small summary."""
    if len(run_dirs) < 2:
        raise WorkbenchError(f"got {len(run_dirs)} run directory; give two or more audit runs "
                             "(of different models) to compare")
    runs = [rundir_audit.load_audit_tables(d) for d in run_dirs]
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    table, geometry = comparison.compare_tables(runs)
    fit = delta_fits.fits(table)
    fields = delta_fits.FIT_FIELDS
    write_csv(out / "compare.csv", comparison.csv_rows(table), list(table.columns))
    write_csv(out / "fits.csv", comparison.csv_rows(pd.DataFrame(fit, columns=fields)), fields)
    write_csv(out / "geometry.csv", comparison.csv_rows(geometry), list(geometry.columns))
    write_text(out / "compare.md", comparison.markdown(table, fit))
    from workbench.figures.compare import render_compare_figures
    from workbench.jobs.common import render_figures

    figure_warnings = render_figures(render_compare_figures, out, png)
    return {"models": comparison.model_labels(runs), "n_rows": len(table), "fits": fit,
            "warnings": figure_warnings}


# old names -> their new homes (kept for one release)
__getattr__ = moved_names(__name__, {
    "AuditRun": "workbench.rundir.audit:AuditTables",
    "load_audit_run": "workbench.rundir.audit:load_audit_tables",
    **{n: "workbench.rundir.audit" for n in ("DELTA_REQUIRED", "GEOMETRY_REQUIRED")},
    **{n: "workbench.rundir.delta_fits" for n in ("FIT_FIELDS", "POOLED", "predictor",
                                                  "fit_rows", "fits")},
    **{n: "workbench.analysis.compare" for n in ("LEAD_FIELDS", "compare_tables", "markdown")},
})


__all__ = ["run_compare"]

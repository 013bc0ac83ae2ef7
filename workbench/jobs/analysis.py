"""Audit analysis: from judged generations to the CSV tables, projections and report.md.

The tables are built by :mod:`workbench.analysis.tables` and the report by
:mod:`workbench.analysis.report`; this module writes them into the run directory.
"""

from __future__ import annotations

import warnings
from pathlib import Path

from workbench.analysis import report, tables
from workbench.runs import write_csv, write_text


def _write(path: Path, rows: list[dict], fields: list[str]) -> None:
    write_csv(path, [tables.table_row(r, fields) for r in rows], fields)


def analyse_run(out: Path, records: list[dict], harm_acts, safe_acts, selection,
                cfg, record: dict, harm_ids=None, safe_ids=None, harm_cats=None,
                efficacy: list[dict] | None = None, cond_info: dict | None = None) -> dict:
    """Write every analysis table and report.md; return a small summary for run.json.

    ``harm_acts`` None (re-analysis from the run's files, :mod:`workbench.jobs.reanalyse`)
    leaves ``projections.csv`` as it is."""
    out = Path(out)
    efficacy, cond_info = tables.adjust_efficacy(efficacy or []), cond_info or {}
    seed = getattr(cfg, "seed", 0)
    judge = record.get("judge", {}).get("name", cfg.judge)
    harmful = [dict(r) for r in records if r["split"] == "harmful"]
    benign = [dict(r) for r in records if r["split"] == "harmless"]
    asr = tables.asr_rows(harmful, judge)
    _write(out / "asr.csv", asr, tables.ASR_FIELDS)
    deltas = tables.delta_rows(harmful, cond_info, efficacy, seed)
    _write(out / "delta_asr.csv", deltas, tables.DELTA_FIELDS)
    _write(out / "conditions.csv",
           tables.condition_rows(deltas, cond_info, cfg.coefficient_scale), tables.COND_FIELDS)
    _write(out / "efficacy.csv", efficacy, tables.EFFICACY_FIELDS)
    fr = tables.false_refusal_rows(benign)
    _write(out / "false_refusal.csv", fr, tables.FR_FIELDS)
    _write(out / "categories.csv", tables.category_rows(harmful), tables.CAT_FIELDS)
    regs = tables.regression_rows(harmful, cond_info, seed)
    _write(out / "regression.csv", regs, tables.REG_FIELDS)
    recovery = tables.recovery_summary(harmful, deltas, seed)
    if harm_acts is not None:  # re-analysis from the files has no activations: kept as is
        n_h, n_s = len(harm_acts), len(safe_acts)
        proj = tables.projection_rows(harm_acts, safe_acts, selection.direction,
                                      selection.layer,
                                      harm_ids or [f"train-harmful-{i}" for i in range(n_h)],
                                      safe_ids or [f"train-harmless-{i}" for i in range(n_s)],
                                      harm_cats or [None] * n_h)
        _write(out / "projections.csv", proj, tables.PROJ_FIELDS)
    write_text(out / "report.md",
               report.report_markdown(record, asr, deltas, fr, regs, efficacy, recovery))
    return tables.run_summary(asr, deltas, regs, recovery)


def __getattr__(name: str):
    """Names that moved to workbench.analysis.tables / .report, with a DeprecationWarning."""
    for module in (tables, report):
        if not name.startswith("_") and hasattr(module, name):
            warnings.warn(f"workbench.jobs.analysis.{name} is deprecated; import it from "
                          f"{module.__name__}", DeprecationWarning, stacklevel=2)
            return getattr(module, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

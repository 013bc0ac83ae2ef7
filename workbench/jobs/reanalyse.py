"""Re-run a finished audit's analysis from its files alone: no model, no generation.

The analysis is bookkeeping over ``generations.jsonl`` (the judged answers), ``efficacy.csv``
and ``conditions.csv`` (what each condition added), so a finished run can be re-read with a
newer analysis in seconds: tables, ``report.md``, the ``summary`` in ``run.json`` and the
figures are rewritten; the answers, vectors, timings and resources of the run are kept.
``projections.csv`` (which needs activations) is left as the run wrote it.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

from workbench.analysis.tables import EFFICACY_FIELDS
from workbench.errors import WorkbenchError
from workbench.jobs.analysis import analyse_run
from workbench.jobs.config import AuditConfig
from workbench.rundir import config_from_record, read_record, read_rows
from workbench.rundir import condition_key as _condition_key
from workbench.runs import write_json


def reanalyse_audit(run_dir: str | Path, figures: bool = True) -> dict:
    """Rewrite a finished audit's analysis in place; return its new ``summary``."""
    out = Path(run_dir)
    missing = [n for n in ("run.json", "generations.jsonl", "conditions.csv")
               if not (out / n).exists()]
    if missing:
        raise WorkbenchError(f"{out} lacks {', '.join(missing)}; give a finished audit run "
                             "directory (figures/ folders ship without generations.jsonl)")
    record = read_record(out)
    if record.get("job") != "audit" or record.get("status") != "complete":
        raise WorkbenchError(f"{out} holds no finished audit (job {record.get('job')!r}, status "
                             f"{record.get('status')!r}); finish it with `workbench audit --out "
                             f"{out}` first")
    cfg = config_from_record(record, AuditConfig)
    with open(out / "generations.jsonl") as f:
        records = [json.loads(line) for line in f]
    cond_info = {}
    for row in read_rows(out / "conditions.csv"):
        cond_info[_condition_key(row)] = {k: row[k] for k in (
            "coefficient_abs", "vector_norm", "resid_norm", "cosine", "projection") if k in row}
    efficacy = []
    if (out / "efficacy.csv").exists():
        keep = [k for k in EFFICACY_FIELDS if not k.endswith(("_holm", "_bh"))]
        efficacy = [{k: r[k] for k in keep if k in r} for r in read_rows(out / "efficacy.csv")]
    summary = analyse_run(out, records, None, None, None, cfg, record, efficacy=efficacy,
                          cond_info=cond_info)
    record["summary"] = summary
    write_json(out / "run.json", record)
    if figures:
        from workbench.figures import render_audit_figures
        from workbench.jobs.common import render_figures

        render_figures(render_audit_figures, out, record["config"].get("png", True))
    return summary


def __getattr__(name: str):
    if name == "condition_key":  # moved: workbench.rundir.keys
        warnings.warn("workbench.jobs.reanalyse.condition_key is deprecated; import it from "
                      "workbench.rundir", DeprecationWarning, stacklevel=2)
        return _condition_key
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

"""Reopen a finished audit run for follow-up analyses (benchmarks, notebooks).

A run directory holds everything needed to ask it a new question without recomputing it: the
config (``run.json``), the refusal direction and CAA vectors (``directions.safetensors``) and,
through the config, the same prompts and contrast splits. :func:`reopen_audit` reads them back
(:mod:`workbench.rundir`) and loads the model once; the calibration benchmarks use it to steer
at other scales.
"""

from __future__ import annotations

import warnings
from pathlib import Path

from workbench.errors import WorkbenchError
from workbench.jobs.config import AuditConfig
from workbench.rundir import audit as rundir_audit
from workbench.rundir import config_from_record, load_directions, read_record

__all__ = ["reopen_audit"]


def reopen_audit(path: str | Path) -> rundir_audit.AuditRun:
    """Read a finished audit run back (config, directions, inputs) and load its model."""
    from workbench.jobs.audit import caa_behaviours, directions_config
    from workbench.jobs.directions import read_direction_inputs
    from workbench.model import load_model

    path = Path(path)
    record = read_record(path, job="audit")
    cfg = config_from_record(record, AuditConfig)
    directions = load_directions(path, caa_behaviours(cfg))
    if directions is None:
        raise WorkbenchError(f"{path} has no saved directions for its behaviours; run the "
                             "audit to the end first")
    dtype = (record.get("model", {}).get("dtype") or {}).get("used", "float32")
    model = load_model(cfg.model, device=cfg.device, dtype=dtype,
                       trust_remote_code=cfg.trust_remote_code)
    return rundir_audit.AuditRun(path, cfg, record, model, directions,
                                 read_direction_inputs(directions_config(cfg)))


def _sweep_arguments(description: str, scales: str):
    import argparse

    ap = argparse.ArgumentParser(description=description)
    ap.add_argument("--run", required=True, help="a finished audit run directory")
    ap.add_argument("--scales", default=scales,
                    help=f"comma-separated norm-relative scales, each run in both signs "
                         f"(default {scales})")
    ap.add_argument("--layer", type=int, default=None,
                    help="steering layer (default: the run's first steering layer)")
    ap.add_argument("--out", default=None, help="CSV of the table (default: print only)")
    return ap


def _signed_scales(scales: str) -> list[float]:
    return [sgn * float(s) for s in scales.split(",") for sgn in (-1, 1)]


_MOVED = {"AuditRun": (rundir_audit.AuditRun, "workbench.rundir.AuditRun"),
          "sweep_arguments": (_sweep_arguments, "benchmarks/sweep.py"),
          "signed_scales": (_signed_scales, "benchmarks/sweep.py")}


def __getattr__(name: str):
    if name in _MOVED:
        value, where = _MOVED[name]
        warnings.warn(f"workbench.jobs.reopen.{name} is deprecated; it moved to {where}",
                      DeprecationWarning, stacklevel=2)
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

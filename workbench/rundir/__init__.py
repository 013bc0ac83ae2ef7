"""Reading and writing a run directory: ``run.json``, ``generations.jsonl``, the direction
checkpoints, condition keys, typed tables, a run's directions and the shared ΔASR fits."""

from workbench.rundir.audit import AuditRun, AuditTables, load_audit_tables
from workbench.rundir.checkpoint import DirectionCheckpoint
from workbench.rundir.directions import load_directions
from workbench.rundir.delta_fits import fit_rows, fits, predictor
from workbench.rundir.keys import (
    CONDITION_FIELDS,
    Condition,
    condition_key,
    condition_of,
    generation_key,
    generation_record,
    vector_name,
)
from workbench.rundir.record import check_run_dir, config_from_record, read_record
from workbench.rundir.store import GenerationStore
from workbench.rundir.tables import bool_column, parse_bool, read_rows, read_table

__all__ = ["AuditRun", "AuditTables", "CONDITION_FIELDS", "Condition", "DirectionCheckpoint",
           "GenerationStore", "bool_column", "check_run_dir", "condition_key", "condition_of",
           "config_from_record", "fit_rows", "fits", "generation_key", "generation_record",
           "load_audit_tables", "load_directions", "parse_bool", "predictor", "read_record",
           "read_rows", "read_table", "vector_name"]

"""A run directory's ``run.json``: the record every job writes and every reader starts from."""

from __future__ import annotations

from pathlib import Path

from workbench.errors import WorkbenchError
from workbench.runs import read_json

RUN_JSON = "run.json"


def read_record(run_dir: str | Path, job: str | None = None) -> dict:
    """``run.json`` of ``run_dir``; an error when it is absent or (with ``job``) was written by
    another job."""
    path = Path(run_dir)
    if not (path / RUN_JSON).is_file():
        raise WorkbenchError(f"{path} has no run.json; pass the folder `workbench "
                             f"{job or 'audit'}` wrote (its --out)")
    record = read_json(path / RUN_JSON)
    if job is not None and record.get("job") != job:
        raise WorkbenchError(f"{path} holds a {record.get('job')!r} run, not {job!r}; pass a "
                             f"`workbench {job}` run directory")
    return record


def config_from_record(record: dict, config_cls):
    """The config a run was written with, as ``config_cls`` (keys it no longer has dropped)."""
    fields = config_cls.__dataclass_fields__
    return config_cls(**{k: v for k, v in record["config"].items() if k in fields})


def check_run_dir(out: Path, job: str, result_config: dict,
                  renamed: dict[str, str] | None = None) -> None:
    """Refuse to mix results: an existing RUN_DIR must hold the same job with the same config.

    ``renamed`` maps old config keys to new ones, so a run written before a rename resumes.
    """
    run_json = out / "run.json"
    if not run_json.exists():
        if (out / "generations.jsonl").exists():
            raise WorkbenchError(f"{out} has generations but no run.json; use a new --out")
        return
    old = read_json(run_json)
    if old.get("job") != job:
        raise WorkbenchError(f"{out} holds a {old.get('job')!r} run, not a {job} run; use a "
                             "new --out")
    theirs = old.get("result_config", {})
    theirs = {(renamed or {}).get(k, k): v for k, v in theirs.items()}
    if "dtype" in result_config and "dtype" not in theirs:  # written before dtypes: float32
        theirs = {**theirs, "dtype": "float32"}
    diff = sorted(k for k in set(result_config) | set(theirs)
                  if result_config.get(k) != theirs.get(k))
    if diff:
        k = diff[0]
        raise WorkbenchError(
            f"{out} was written by a different config ({k}: {theirs.get(k)!r} there, "
            f"{result_config.get(k)!r} now); use a new --out, or the same config to resume"
        )

"""What every resumable job shares: presets + TOML + flags, run-directory checks, figures."""

from __future__ import annotations

import sys
import time
import tomllib
from dataclasses import asdict, fields, replace
from pathlib import Path
from typing import Callable

from workbench.errors import WorkbenchError
from workbench.validation import check_types, rename_fields, text_file, validate

# Config fields that change nothing in a job's results, so a run may resume with other values.
NON_RESULT_FIELDS = {"preset", "device", "out", "batch_size", "figures", "png", "progress"}


def field_names(config_cls) -> list[str]:
    return [f.name for f in fields(config_cls)]


def read_toml(path: str | Path, config_cls) -> dict:
    """Settings from a TOML file; every key must be a field of ``config_cls``."""
    text_file("config file", path)
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise WorkbenchError(f"config file {path} is not valid TOML ({exc}); fix it") from None
    data = rename_fields(config_cls, data, where=f" in {path}")
    unknown = sorted(set(data) - set(field_names(config_cls)))
    if unknown:
        raise WorkbenchError(f"unknown config key {unknown[0]!r} in {path}; valid keys: "
                             f"{', '.join(field_names(config_cls))}")
    return data


def resolve_config(config_cls, presets: dict, preset: str | None, toml: str | None,
                   overrides: dict):
    """Preset (flag, else the TOML's ``preset``, else quick), then the TOML file, then overrides.

    Override values of None are ignored, so unset command-line flags change nothing. Every
    field is then validated (:mod:`workbench.validation`) before anything loads. ``presets``
    maps a name to a :class:`~workbench.jobs.options.Preset` (or to its values).
    """
    file_values = read_toml(toml, config_cls) if toml else {}
    check_types(config_cls, file_values, where=f" in {toml}")
    overrides = rename_fields(config_cls, overrides)
    preset = preset or file_values.get("preset") or "quick"
    if preset not in presets:
        raise WorkbenchError(f"unknown preset {preset!r}; use one of {', '.join(presets)}")
    preset_values = getattr(presets[preset], "values", presets[preset])
    values = {**preset_values, **file_values, "preset": preset}
    values.update({k: v for k, v in overrides.items() if v is not None})
    unknown = sorted(set(values) - set(field_names(config_cls)))
    if unknown:
        raise WorkbenchError(f"unknown config key {unknown[0]!r}; valid keys: "
                             f"{', '.join(field_names(config_cls))}")
    explicit = set(file_values) | {k for k, v in overrides.items() if v is not None}
    return validate(replace(config_cls(), **values), explicit)


def run_precision(cfg):
    """The dtype a job's model runs in: ``cfg.dtype`` (``auto`` or a name) on ``cfg.device``."""
    from workbench.model import resolve_device, resolve_precision

    return resolve_precision(cfg.dtype, resolve_device(cfg.device))


# Model judges whose labels were checked in bfloat16 against float32 (benchmarks/judge_dtype.py,
# docs/judges.md): they run in the job's dtype. Every other model judge stays in float32, the
# dtype its agreement with human labels was measured in.
JUDGES_IN_RUN_DTYPE = ("probe",)


def judge_dtype(spec: str, cfg) -> str:
    """The dtype of the judge ``spec``'s own model in a job configured by ``cfg``."""
    return run_precision(cfg).name if spec in JUDGES_IN_RUN_DTYPE else "float32"


def judge_model_dtype(judge) -> str | None:
    """The dtype of a judge's own chat model, for run.json (None: the judge has no model)."""
    from workbench.model.precision import dtype_name

    model = getattr(judge, "model", None)
    return dtype_name(model.dtype) if model is not None else None


def result_fields(cfg, non_result: set[str]) -> dict:
    """The part of a config that determines results (compared when resuming).

    ``dtype`` is the one that runs (``auto`` resolved on this machine), so a run started in
    bfloat16 is never resumed in float32 on a machine where ``auto`` means float32.
    """
    values = {k: v for k, v in asdict(cfg).items() if k not in non_result}
    if "dtype" in values:
        values["dtype"] = run_precision(cfg).name
    return values


def peak_memory_gb() -> float | None:
    """This process's peak resident memory so far, in GB (None where the OS does not say).

    Linux: the kernel's high-water mark of this process image (``VmHWM``), which starts afresh
    at exec; ``getrusage`` elsewhere (on Linux it would carry the peak of the process that
    forked this one, e.g. a test runner).
    """
    status = Path("/proc/self/status")
    if status.is_file():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) * 1024 / 1e9, 2)  # kB
    try:
        import resource
    except ImportError:  # Windows
        return None
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return round(peak * (1 if sys.platform == "darwin" else 1024) / 1e9, 2)  # macOS: bytes


def render_figures(render: Callable[..., list], out: Path, png: bool) -> list[str]:
    """Render a run's figures; without Chromium keep the HTML ones and return a warning."""
    try:
        render(out, png=png)
    except WorkbenchError as exc:
        if not png:
            raise
        detail = str(exc).replace(" (or pass png=False for HTML only)", "")
        warning = f"PNG figures skipped, HTML written: {detail}; pass --no-png to silence this"
        print(f"warning: {warning}", file=sys.stderr)
        render(out, png=False)
        return [warning]
    return []


def finish_run(out: Path, cfg, record: dict, render: Callable[..., list], warnings: list[str],
               timings: dict, t0: float, job=None, **fields) -> dict:
    """Render the figures (if asked), then write the completed run.json and return it."""
    from workbench.figures.export import png_skipped_note
    from workbench.model.precision import machine_record
    from workbench.runs import write_json

    warnings = list(warnings)
    if cfg.figures:
        if job is not None:
            job.stage("figures")
        t = time.time()
        warnings += render_figures(render, out, cfg.png)
        if not cfg.png and cfg.preset == "smoke" and cfg.progress:  # say so (not with --quiet)
            print(png_skipped_note(out, cfg.preset), file=sys.stderr)
        timings["figures"] = time.time() - t
    timings["total"] = time.time() - t0
    record.update(status="complete", warnings=warnings, **fields,
                  timings_s={k: round(v, 2) for k, v in timings.items()},
                  peak_memory_gb=peak_memory_gb(), machine=machine_record())
    write_json(out / "run.json", record)
    if job is not None:
        job.done()
    return record

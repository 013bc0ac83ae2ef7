"""Validation at the edge: every config field is checked before any model loads.

Two layers, both declarative so that a new config field slots in with one line:

- types come from the dataclass annotations (``int``, ``list[float] | None``, ...), so a TOML
  value of the wrong type (``max_new_tokens = "lots"``) is caught for every field;
- ``FIELD_CHECKS`` maps a field name to the check of its value (counts >= 1, finite numbers,
  layer lists, readable files, writable output directories, known names). A field means the
  same in every job that has it, so one table serves the audit, directions and SafeSteer.

Every failure is one :class:`WorkbenchError` naming the field, the value and the fix.
"""

from __future__ import annotations

import math
import os
import sys
import types
import typing
from dataclasses import fields, replace
from pathlib import Path
from typing import Callable

from workbench.errors import WorkbenchError

Check = Callable[[str, object], None]


# --------------------------------------------------------------------------- types


def _type_name(hint) -> str:
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_type_name(a) for a in typing.get_args(hint))
    if origin is list:
        return f"a list of {_type_name(typing.get_args(hint)[0])}s"
    if origin is dict:
        return "a table of names to strings"
    if hint is type(None):
        return "unset"
    return {int: "an integer", float: "a number", str: "a string", bool: "true or false"}.get(
        hint, getattr(hint, "__name__", str(hint)))


def _matches(value, hint) -> bool:
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        return any(_matches(value, a) for a in typing.get_args(hint))
    if hint is type(None):
        return value is None
    if hint is bool:
        return isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if hint is str:
        return isinstance(value, str)
    if origin is list:
        (item,) = typing.get_args(hint)
        return isinstance(value, (list, tuple)) and all(_matches(v, item) for v in value)
    if origin is dict:
        key, val = typing.get_args(hint)
        return isinstance(value, dict) and all(_matches(k, key) and _matches(v, val)
                                               for k, v in value.items())
    return True  # an annotation this checker does not know: leave it to the value checks


def check_types(config_cls, values: dict, where: str = "") -> None:
    """Every value in ``values`` has the type its ``config_cls`` field is annotated with."""
    hints = typing.get_type_hints(config_cls)
    for name, value in values.items():
        if name in hints and not _matches(value, hints[name]):
            raise WorkbenchError(f"{name} is {value!r}{where}, which is not "
                                 f"{_type_name(hints[name])}; give {_type_name(hints[name])}")


# --------------------------------------------------------------------------- value checks


def _fail(name: str, value, problem: str, fix: str):
    raise WorkbenchError(f"{name} is {value!r}: {problem}; {fix}")


def at_least(low: int, optional: bool = False) -> Check:
    def check(name, value):
        if value is None and optional:
            return
        if value < low:
            what = "a count of at least 1" if low == 1 else f"at least {low}"
            _fail(name, value, f"it must be {what}", f"give {name.replace('_', '-')} >= {low}"
                  + (" (or leave it unset for all)" if optional else ""))
    return check


def finite(name, value):
    if value is not None and not math.isfinite(value):
        _fail(name, value, "it must be a finite number", "give a number such as 1.0")


def finite_list(name, value):
    if not value:
        _fail(name, value, "the list is empty", "give at least one number, e.g. 1.0")
    for v in value:
        if not math.isfinite(v):
            _fail(name, value, f"{v} is not a finite number", "use finite numbers only")


def fraction(name, value):
    if not (0 < value <= 1):
        _fail(name, value, "it must lie in (0, 1]", "give a fraction such as 0.8")


def layer_list(name, value):
    """Block indices: non-empty, each >= 0 (the upper bound is checked once the model loads)."""
    if value is None:
        return
    if not value:
        _fail(name, value, "the list is empty", "give layer numbers such as 6,8 or leave it unset")
    for v in value:
        if v < 0:
            _fail(name, value, f"layer {v} is negative", "give block indices 0, 1, 2, ...")


def offset_list(name, value):
    if value is None:
        return
    if not value or any(v >= 0 for v in value):
        _fail(name, value, "positions are negative offsets from the prompt end",
              "give e.g. -1 (the last token) or -2,-1")


def non_empty(example: str) -> Check:
    def check(name, value):
        if not value:
            _fail(name, value, "the list is empty", f"give at least one, e.g. {example}")
    return check


def one_of(*choices: str, each: bool = False) -> Check:
    def check(name, value):
        for v in (value if each else [value]):
            if v not in choices:
                raise WorkbenchError(f"{name} {v!r} is unknown; use one of {', '.join(choices)}")
    return check


def text_file(name, value, what: str = "file") -> None:
    """An existing, readable, UTF-8 file."""
    path = Path(os.path.expanduser(str(value)))
    if path.is_dir():
        _fail(name, str(value), "it is a directory", f"give a {what} path")
    if not path.is_file():
        _fail(name, str(value), "no such file", "check the path")
    try:
        path.read_bytes().decode("utf-8")
    except PermissionError:
        _fail(name, str(value), "the file is not readable", "fix its permissions")
    except UnicodeDecodeError as exc:
        _fail(name, str(value), f"the file is not UTF-8 text (byte {exc.start})",
              "save it as UTF-8")
    except OSError as exc:
        _fail(name, str(value), f"cannot read it ({exc.strerror})", "check the path")


def source(*names: str) -> Check:
    """A named source (``embedded``, a data set name) or a readable text file."""
    def check(name, value):
        if value in names:
            return
        p = Path(os.path.expanduser(str(value)))
        if not p.exists() and os.sep not in str(value) and "." not in str(value):
            _fail(name, value, "not a known source and no such file",
                  f"use one of {', '.join(names)} or a file path")
        text_file(name, value)
    return check


def text_files(name, value):
    for v in value:
        text_file(name, v)


def contrast_sources(name, value):
    from workbench.data import BEHAVIOURS

    for behaviour, src in value.items():
        if src == "embedded":
            if behaviour not in BEHAVIOURS:
                raise WorkbenchError(
                    f"unknown behaviour {behaviour!r} in {name}: no embedded pairs for it; give "
                    f"a file (NAME=FILE), or use one of {', '.join(BEHAVIOURS)}")
        else:
            text_file(f"{name} {behaviour}", src)


def output_dir(name, value):
    """A directory that exists (or can be created) and is writable; never an existing file."""
    path = Path(os.path.expanduser(str(value)))
    if str(value).strip() == "":
        _fail(name, value, "the path is empty", "give a run directory such as runs/audit")
    if path.exists() and not path.is_dir():
        _fail(name, str(value), "a file of that name exists", "give a directory path, or remove "
              "the file")
    parent = path
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir():
        _fail(name, str(value), f"{parent} is a file, so the directory cannot be created",
              "give another path")
    if not os.access(parent, os.W_OK | os.X_OK):
        _fail(name, str(value), f"{parent} is not writable", "give a writable path")


def model_spec(name, value):
    from workbench.model.embedded import EMBEDDED_MODELS
    from workbench.model.specs import HUB_ID
    from workbench.model.tiny import TINY_MODELS

    builtin = [*TINY_MODELS, *EMBEDDED_MODELS]
    if value in builtin:
        return
    looks_like_path = value.startswith((".", "/", "~")) or os.sep in value and not HUB_ID.match(
        value)
    if os.path.isdir(os.path.expanduser(value)):
        return
    if looks_like_path or os.path.exists(value):
        _fail(name, value, "directory does not exist" if not os.path.exists(value)
              else "it is a file, not a model directory",
              "give a local model directory (config.json and weights), or see `workbench models`")
    if not HUB_ID.match(value):
        raise WorkbenchError(f"unknown model spec {value!r} ({name}); use one of "
                             f"{', '.join(builtin)}, a local model directory, or a Hugging Face "
                             "id like org/name (see `workbench models`)")


def device(name, value):
    if value is None or value in ("auto", "cpu", "cuda", "mps"):
        return
    head, _, idx = str(value).partition(":")
    if head in ("cuda", "mps") and idx.isdigit():
        return
    _fail(name, value, "unknown device", "use cpu, cuda, cuda:N or auto")


def dtype_name(name, value):
    from workbench.model.specs import DTYPE_CHOICES

    one_of(*DTYPE_CHOICES)(name, value)


def judge_spec(name, value):
    from workbench.evaluation.judges.registry import split_spec

    split_spec(value)


def templates(name, value):
    from workbench.evaluation.templates import BUILTIN_TEMPLATES

    for v in value:
        if v not in BUILTIN_TEMPLATES:
            raise WorkbenchError(f"unknown template {v!r} in {name}; built-in: "
                                 f"{', '.join(BUILTIN_TEMPLATES)} (or add a file with "
                                 "--template-file)")


def attack_source(name, value):
    from workbench.data.benchmarks import benchmark_names

    source("embedded", *benchmark_names("attack"))(name, value)


def harmful_source(name, value):
    from workbench.data.benchmarks import benchmark_names

    source("embedded", *benchmark_names("attack"))(name, value)


def refusal_source(name, value):
    if value in ("candidates", "select"):
        return
    if not (Path(value) / "directions.safetensors").is_file():
        _fail(name, value, "not 'candidates', 'select' or a directions run directory",
              "run `workbench directions --out DIR` first, or use candidates")


# One row per config field, whichever job has it. Types are checked from the annotations.
FIELD_CHECKS: dict[str, Check] = {
    "model": model_spec,
    "device": device,
    "dtype": dtype_name,
    "out": output_dir,
    "attack": attack_source,
    "attack_source": one_of("auto", "file", "package", "hub"),
    "harmful_source": one_of("auto", "file", "package", "hub"),
    "attack_limit": at_least(1, optional=True),
    "benign": source("embedded"),
    "benign_limit": at_least(1, optional=True),
    "templates": templates,
    "template_files": text_files,
    "behaviours": non_empty("sycophancy"),
    "contrast_files": contrast_sources,
    "contrast": contrast_sources,
    "caa_limit": at_least(1, optional=True),
    "layers": layer_list,
    "search_layers": layer_list,
    "neuron_layers": layer_list,
    "refusal_search_layers": layer_list,
    "search_positions": offset_list,
    "coefficients": finite_list,
    "mitigation_coefficients": lambda n, v: None if v is None else finite_list(n, v),
    "placebo_directions": at_least(0),
    "open_ended_items": at_least(1, optional=True),
    "multipliers": lambda n, v: [finite(n, x) for x in v],
    "suppress_scales": lambda n, v: [finite(n, x) for x in v],
    "steer_positions": one_of("all", "eoi", "generated"),
    "mitigation": one_of("direction", "subspace"),
    "subspace_k": at_least(1),
    "harmful": source("embedded"),
    "harmless": source("embedded"),
    "n_train": at_least(1),
    "n_val": at_least(1),
    "n_eval": at_least(1),
    "n_safe": at_least(1),
    "n_benign_eval": at_least(1),
    "response_tokens": at_least(1),
    "top_k": at_least(1),
    "evaluate": at_least(0),
    "max_new_tokens": at_least(1),
    "batch_size": at_least(1),
    "judge": judge_spec,
    "seed": at_least(0),
    "max_layer_frac": fraction,
    "kl_threshold": finite,
    "induce_threshold": finite,
    "refusal_search": one_of("full", "ordered"),
    "refusal_top_k": at_least(1, optional=True),
    "min_kept": at_least(0),
    "induce_coefficient": finite,
    "refusal_cos_threshold": finite,
    "refusal": refusal_source,
}


# Where a field means something else in one job, that job's row wins.
JOB_CHECKS: dict[str, dict[str, Check]] = {
    "SafeSteerConfig": {"harmful": harmful_source},
}


def check_config(cfg) -> None:
    """Types (from the annotations), then the value check of every field in FIELD_CHECKS."""
    values = {f.name: getattr(cfg, f.name) for f in fields(cfg)}
    check_types(type(cfg), values)
    table = {**FIELD_CHECKS, **JOB_CHECKS.get(type(cfg).__name__, {})}
    for name, value in values.items():
        check = table.get(name)
        if check is not None:
            check(name, value)
    _check_categories(cfg)


def _check_categories(cfg) -> None:
    cats = getattr(cfg, "categories", None)
    if cats is not None and len(set(cats)) != len(cats):
        _fail("categories", cats, "a name repeats", "list each category once")


# --------------------------------------------------------------------------- split sizes


def fit_splits(cfg, explicit: set[str]):
    """Scale ``n_train``/``n_val`` down to a small user prompt file, with a warning.

    Only sizes the user did not set are scaled; explicit ones that do not fit are an error.
    """
    if not (hasattr(cfg, "n_train") and hasattr(cfg, "n_val") and hasattr(cfg, "harmless")):
        return cfg
    from workbench.data import instruction_source

    have = min(len(instruction_source(getattr(cfg, k), k)[0]) for k in ("harmful", "harmless"))
    want = cfg.n_train + cfg.n_val
    if want <= have:
        return cfg
    if explicit & {"n_train", "n_val"}:
        raise WorkbenchError(
            f"n_train + n_val is {cfg.n_train} + {cfg.n_val} = {want} but the smaller prompt set "
            f"has {have} prompts; lower n-train/n-val to fit, or give more prompts")
    if have < 2:
        raise WorkbenchError(f"a prompt set has {have} prompt(s); give at least 2 (one to train, "
                             "one to validate)")
    n_val = max(1, round(have * cfg.n_val / want))
    n_train = have - n_val
    print(f"warning: the prompt files hold only {have} prompts; using n_train={n_train}, "
          f"n_val={n_val} instead of {cfg.n_train}+{cfg.n_val} (set them to silence this)",
          file=sys.stderr)
    return replace(cfg, n_train=n_train, n_val=n_val)


def validate(cfg, explicit: set[str] = frozenset()):
    """Check every field of ``cfg`` and return it, split sizes fitted to the prompt files."""
    check_config(cfg)
    return fit_splits(cfg, set(explicit))

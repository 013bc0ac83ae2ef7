"""Validation at the edge: every config field is checked before any model loads.

Three layers, all declarative so that a new config field slots in with one line:

- types come from the dataclass annotations (``int``, ``list[float] | None``, ...), so a TOML
  value of the wrong type (``max_new_tokens = "lots"``) is caught for every field;
- ``FIELD_CHECKS`` maps a field name to the check of its value (counts >= 1, finite numbers,
  layer lists, readable files, writable output directories, known names). A field means the
  same in every job that has it, so one table serves the audit, directions and SafeSteer;
- ``CONFIG_CHECKS``: checks across fields of one job (mitigation coefficients among the
  steering coefficients, say).

Every choice check lives here. Fixed choices are :data:`CHOICES`; names that come from a
registry (extraction methods, judges, templates, data sets) are read from it when checked, so
a method registered at run time passes ``--method NAME``. Deprecated names (the method
``probe``, SafeSteer's ``methods`` key) are mapped to the new ones with a warning
(:data:`ALIASES`, :data:`RENAMED_FIELDS`).

Every failure is one :class:`WorkbenchError` naming the field, the value and the fix.
"""

from __future__ import annotations

import math
import os
import sys
import types
import typing
import warnings
from dataclasses import fields, replace
from pathlib import Path
from typing import Callable

from workbench.errors import WorkbenchError
from workbench.jobs.options import DTYPE_CHOICES

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


def one_of(*choices: str, each: bool = False, label: str | None = None) -> Check:
    """The value (each item, with ``each``) is one of ``choices``; ``label`` names it."""
    def check(name, value):
        for v in (value if each else [value]):
            if v not in choices:
                raise WorkbenchError(f"{label or name} {v!r} is unknown; use one of "
                                     f"{', '.join(choices)}")
    return check


def choice(key: str, each: bool = False, label: str | None = None) -> Check:
    """One of :func:`choices` ``(key)``, read when checked (so registries are read late)."""
    def check(name, value):
        one_of(*choices(key), each=each, label=label)(name, value)
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
    one_of(*choices("dtype"))(name, value)


def judge_spec(name, value):
    """A judge spec the judge registry knows (:data:`.judges.registry.JUDGES`)."""
    from workbench.evaluation.judges.registry import split_spec

    split_spec(value)


def templates(name, value):
    """Built-in template names, from the registry :data:`.evaluation.templates.BUILTIN_TEMPLATES`."""
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


def extraction_methods(name, value):
    """Extraction methods of the registry :data:`workbench.directions.methods.EXTRACTION_METHODS`."""
    from workbench.directions.methods import EXTRACTION_METHODS

    bad = [m for m in value if m not in EXTRACTION_METHODS]
    if bad or not value:
        raise WorkbenchError(f"steering method {bad[0] if bad else None!r} is unknown; use one "
                             f"or more of {', '.join(EXTRACTION_METHODS)} (the extraction "
                             "methods: `workbench list methods`)")


def interventions(name, value):
    """SafeSteer's steering interventions (:data:`INTERVENTIONS`), at least one."""
    if not value:
        raise WorkbenchError(f"no interventions given; use some of {', '.join(INTERVENTIONS)}")
    one_of(*INTERVENTIONS, each=True, label="intervention")(name, value)


def count_or_skip(name, value):
    """A count where 0 skips the step."""
    if value < 0:
        raise WorkbenchError(f"{name} is {value}; give 0 (skip) or more")


def refusal_source(name, value):
    if value in ("candidates", "select"):
        return
    if not (Path(value) / "directions.safetensors").is_file():
        _fail(name, value, "not 'candidates', 'select' or a directions run directory",
              "run `workbench directions --out DIR` first, or use candidates")


# --------------------------------------------------------------------------- choices

# Fixed choices, by field name (the CLI's argparse choices come from here). dtype and engine
# repeat model.specs.DTYPE_CHOICES and evaluation.work.ENGINES so that --help imports no torch
# (tests/test_validation.py checks they agree); directions.refusal checks the same two
# refusal_search names.
CHOICES: dict[str, tuple[str, ...]] = {
    "dtype": DTYPE_CHOICES,
    "engine": ("batched", "reference"),
    "refusal_search": ("full", "ordered"),
    "coefficient_scale": ("absolute", "norm"),
    "mitigation": ("direction", "subspace"),
    "text": ("prompt_response", "prompt"),
    "filter_refusals": ("both", "safe", "unsafe", "none"),
    "too_few_compliant": ("all", "error"),
    "suppress_value": ("safe_mean", "zero"),
}

# SafeSteer's steering interventions (its ``interventions`` field), with a one-line help.
INTERVENTIONS: dict[str, str] = {
    "safesteer": "add the category's SafeSteer vector (mean safe minus mean unsafe attention "
                 "output, median-filtered) x the multiplier to the attention output",
    "neuron_add": "add the category's neuron vector (selectivity-weighted write-outs of its "
                  "top-k MLP neurons) x the multiplier to the MLP output",
    "neuron_suppress": "pull the category's top-k neurons towards their safe mean (or zero): "
                       "a <- value + scale x (a - value), at each suppress scale",
}


def choices(key: str) -> tuple[str, ...]:
    """The valid values of the field ``key``: fixed, or read from the registry that owns them."""
    if key in CHOICES:
        return CHOICES[key]
    if key == "interventions":
        return tuple(INTERVENTIONS)
    if key in ("attack_source", "harmful_source"):
        from workbench.data.benchmarks import SOURCES

        return tuple(SOURCES)
    if key == "steer_positions":
        from workbench.steering import STEER_POSITIONS

        return tuple(STEER_POSITIONS)
    if key == "relevance":
        from workbench.safesteer.quality import RELEVANCE_METHODS

        return tuple(RELEVANCE_METHODS)
    if key == "methods":
        from workbench.directions.methods import EXTRACTION_METHODS

        return tuple(EXTRACTION_METHODS)
    if key == "templates":
        from workbench.evaluation.templates import BUILTIN_TEMPLATES

        return tuple(BUILTIN_TEMPLATES)
    raise KeyError(f"no choices are registered for {key!r}")


# --------------------------------------------------------------------------- deprecated names


def deprecated(message: str) -> None:
    """A deprecated name was used: a ``DeprecationWarning`` and a ``warning:`` line on stderr."""
    warnings.warn(message, DeprecationWarning, stacklevel=3)
    print(f"warning: {message}", file=sys.stderr)


# Deprecated values of a field, mapped to their new names: field -> {old: new}.
ALIASES: dict[str, dict[str, str]] = {
    # "probe" means the probe judge; the extraction method is the logistic-regression direction
    "methods": {"probe": "logistic"},
}

# Renamed config fields (TOML keys and keyword arguments), per config class: {old: new}.
RENAMED_FIELDS: dict[str, dict[str, str]] = {
    # an audit's methods are extraction methods; SafeSteer's are steering interventions
    "SafeSteerConfig": {"methods": "interventions"},
}


def rename_fields(config_cls, values: dict, where: str = "") -> dict:
    """``values`` with deprecated keys of ``config_cls`` renamed (and a warning for each)."""
    renamed = RENAMED_FIELDS.get(config_cls.__name__, {})
    out = dict(values)
    for old, new in renamed.items():
        if old not in out:
            continue
        if out[old] is None:  # an unset command-line option
            out.pop(old)
            continue
        if out.get(new) is not None:
            raise WorkbenchError(f"both {old} and {new} are set{where}; {old} is the old name of "
                                 f"{new}, keep only {new}")
        deprecated(f"the {config_cls.__name__} key {old!r}{where} is deprecated; call it {new!r}")
        out[new] = out.pop(old)
    return out


def apply_aliases(cfg):
    """``cfg`` with deprecated values (:data:`ALIASES`) replaced by their new names."""
    changes = {}
    for f in fields(cfg):
        table = ALIASES.get(f.name)
        value = getattr(cfg, f.name)
        if not table or not isinstance(value, (list, tuple, str)):
            continue
        items = [value] if isinstance(value, str) else list(value)
        if not any(isinstance(v, str) and v in table for v in items):
            continue
        for v in items:
            if isinstance(v, str) and v in table:
                deprecated(f"{f.name} {v!r} is deprecated; use {table[v]!r}")
        new = [table.get(v, v) if isinstance(v, str) else v for v in items]
        changes[f.name] = new[0] if isinstance(value, str) else new
    return replace(cfg, **changes) if changes else cfg


# --------------------------------------------------------------------------- the tables

# One row per config field, whichever job has it. Types are checked from the annotations.
FIELD_CHECKS: dict[str, Check] = {
    "model": model_spec,
    "device": device,
    "dtype": dtype_name,
    "out": output_dir,
    "attack": attack_source,
    "attack_source": choice("attack_source"),
    "harmful_source": choice("harmful_source"),
    "attack_limit": at_least(1, optional=True),
    "benign": source("embedded"),
    "benign_limit": at_least(1, optional=True),
    "templates": templates,
    "template_files": text_files,
    "behaviours": non_empty("sycophancy"),
    "contrast_files": contrast_sources,
    "contrast": contrast_sources,
    "caa_limit": at_least(1, optional=True),
    "methods": extraction_methods,
    "layers": layer_list,
    "search_layers": layer_list,
    "neuron_layers": layer_list,
    "refusal_search_layers": layer_list,
    "search_positions": offset_list,
    "coefficients": finite_list,
    "coefficient_scale": choice("coefficient_scale", label="coefficient scale"),
    "efficacy_pairs": count_or_skip,
    "open_ended_tokens": count_or_skip,
    "mitigation_coefficients": lambda n, v: None if v is None else finite_list(n, v),
    "placebo_directions": at_least(0),
    "open_ended_items": at_least(1, optional=True),
    "multipliers": lambda n, v: [finite(n, x) for x in v],
    "suppress_scales": lambda n, v: [finite(n, x) for x in v],
    "steer_positions": choice("steer_positions"),
    "mitigation": choice("mitigation"),
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
    "engine": choice("engine"),
    "judge": judge_spec,
    "seed": at_least(0),
    "max_layer_frac": fraction,
    "kl_threshold": finite,
    "induce_threshold": finite,
    "refusal_search": choice("refusal_search"),
    "refusal_top_k": at_least(1, optional=True),
    "min_kept": at_least(0),
    "induce_coefficient": finite,
    "refusal_cos_threshold": finite,
    "refusal": refusal_source,
    "interventions": interventions,
    "filter_refusals": choice("filter_refusals"),
    "too_few_compliant": choice("too_few_compliant"),
    "suppress_value": choice("suppress_value"),
    "relevance": choice("relevance"),
}


# Where a field means something else in one job, that job's row wins.
JOB_CHECKS: dict[str, dict[str, Check]] = {
    "SafeSteerConfig": {"harmful": harmful_source, "text": choice("text")},
}


def check_audit(cfg) -> None:
    """The audit's checks across fields."""
    if not cfg.layers and not (cfg.layer_fractions
                               and all(0 <= f < 1 for f in cfg.layer_fractions)):
        raise WorkbenchError("layer_fractions must be numbers in [0, 1), e.g. [0.4]")
    if cfg.mitigation_coefficients is not None:
        extra = [c for c in cfg.mitigation_coefficients if c not in cfg.coefficients]
        if extra:
            raise WorkbenchError(f"mitigation coefficient {extra[0]:g} is not a steering "
                                 f"coefficient ({', '.join(f'{c:g}' for c in cfg.coefficients)})"
                                 "; pick mitigation_coefficients from coefficients")


def check_safesteer(cfg) -> None:
    """SafeSteer's checks across fields."""
    if not cfg.multipliers and any(m != "neuron_suppress" for m in cfg.interventions):
        raise WorkbenchError("no multipliers given; e.g. multipliers = [1.0, 2.0]")


# Checks across the fields of one job's config, after every field passed its own.
CONFIG_CHECKS: dict[str, Callable[[object], None]] = {
    "AuditConfig": check_audit,
    "SafeSteerConfig": check_safesteer,
}


def check_config(cfg) -> None:
    """Types (from the annotations), each field's check (FIELD_CHECKS), then CONFIG_CHECKS."""
    values = {f.name: getattr(cfg, f.name) for f in fields(cfg)}
    check_types(type(cfg), values)
    table = {**FIELD_CHECKS, **JOB_CHECKS.get(type(cfg).__name__, {})}
    for name, value in values.items():
        check = table.get(name)
        if check is not None:
            check(name, value)
    _check_categories(cfg)
    across = CONFIG_CHECKS.get(type(cfg).__name__)
    if across is not None:
        across(cfg)


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
    """Check every field of ``cfg`` and return it: deprecated values renamed
    (:func:`apply_aliases`), split sizes fitted to the prompt files (:func:`fit_splits`)."""
    cfg = apply_aliases(cfg)
    check_config(cfg)
    return fit_splits(cfg, set(explicit))


__all__ = ["ALIASES", "CHOICES", "CONFIG_CHECKS", "FIELD_CHECKS", "INTERVENTIONS", "JOB_CHECKS",
           "RENAMED_FIELDS", "Check", "apply_aliases", "at_least", "attack_source", "check_audit",
           "check_config", "check_safesteer", "check_types", "choice", "choices",
           "contrast_sources", "count_or_skip", "deprecated", "device", "dtype_name",
           "extraction_methods", "finite", "finite_list", "fit_splits", "fraction",
           "harmful_source", "interventions", "judge_spec", "layer_list", "model_spec",
           "non_empty", "offset_list", "one_of", "output_dir", "refusal_source", "rename_fields",
           "source", "templates", "text_file", "text_files", "validate"]

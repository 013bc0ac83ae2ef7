"""Config fields that document themselves: help, flag and metavar in the dataclass field.

Every field of a job config (:class:`~workbench.jobs.config.AuditConfig`,
:class:`~workbench.jobs.safesteer.SafeSteerConfig`,
:class:`~workbench.jobs.directions.DirectionsConfig`) is declared with :func:`option`, which
puts its one-line help (and, for a command-line option, its flag and metavar) in the field's
``metadata``. ``workbench.cli`` builds each command's options from these fields and the job's
presets, so a field, its flag, its help and the defaults the help quotes never drift apart.

Fields several jobs share take their help from :data:`SHARED`: a field means the same in every
job that has it. This module imports nothing heavy (no torch), so ``--help`` stays instant.
"""

from __future__ import annotations

from dataclasses import MISSING, dataclass, field

# workbench.model.DEFAULT_MODEL and workbench.model.specs.DTYPE_CHOICES, repeated here so that
# the configs and --help import no torch (tests/test_cli_properties.py, test_precision.py check)
DEFAULT_MODEL = "qwen2.5-coder-1.5b-instruct"
DTYPE_CHOICES = ("auto", "float32", "bfloat16", "float16")


@dataclass(frozen=True)
class Preset:
    """One preset: a one-line help and the config values it sets (the rest keep defaults)."""

    help: str
    values: dict


def option(help: str, default=MISSING, *, default_factory=MISSING, flag: str | bool = False,
           metavar: str | None = None, choices: bool = False, append: bool = False,
           const=MISSING, none: str | None = None, defaults_of: str | None = None,
           show_default: bool = True, parse=None, old_flags: tuple[str, ...] = (),
           flag_help: str | None = None):
    """A dataclass field whose ``metadata`` documents it (and makes it a command-line option).

    - ``help``: one line, what the field means (no defaults: the CLI adds them from presets);
    - ``flag``: ``True`` for ``--field-name``, a string for another flag, ``False`` (default)
      for a TOML-only field;
    - ``metavar``; ``choices``: the flag's argparse choices are the field's row in
      :data:`workbench.validation.CHOICES`; ``append``: repeatable, one item per use;
    - ``const``: a flag without a value that sets this (``--no-png`` sets ``png`` False);
    - ``none``: how a ``None`` default reads in the help (``all``, ``auto``);
    - ``defaults_of``: quote another field's defaults (``layers`` -> ``layer_fractions``);
    - ``show_default``: ``False`` leaves the defaults out of the help;
    - ``parse``: turns the list of appended strings into the field's value;
    - ``old_flags``: deprecated flags that still set the field (with a warning);
    - ``flag_help``: what a flag without a value does, when that reads better than ``help``
      (``--no-png``: "write HTML figures only").
    """
    meta = {"help": help, "flag": flag, "metavar": metavar, "choices": choices,
            "append": append, "none": none, "defaults_of": defaults_of,
            "parse": parse, "old_flags": old_flags, "flag_help": flag_help}
    meta = {k: v for k, v in meta.items() if v is not None and v is not False and v != ()}
    if not show_default:
        meta["show_default"] = False
    if const is not MISSING:
        meta["const"] = const
    return field(default=default, default_factory=default_factory, metadata=meta)


# Help of the fields several jobs share, so that they read the same everywhere.
SHARED: dict[str, dict] = {
    "preset": dict(help="the preset the config started from (--preset; `workbench list "
                        "presets`)"),
    "model": dict(help="model spec: qwen2.5-coder-1.5b-instruct, qwen2.5-coder-0.5b-instruct "
                       "(the fast teaching model), smollm2-135m-instruct, tiny-random, "
                       "tiny-random-llama, a local model directory, or a Hugging Face id "
                       "org/name (see `workbench models`)", flag=True),
    "trust_remote_code": dict(help="allow code shipped with the model (auto_map in its config) "
                                   "to run; off unless asked for; recorded in run.json",
                              flag="--trust-remote-code", const=True, show_default=False),
    "device": dict(help="cpu, cuda, cuda:N or auto (CUDA when present, else CPU)", flag=True,
                   none="auto"),
    "dtype": dict(help="auto: bfloat16 on a GPU or on a CPU with native bfloat16 (AVX512-BF16, "
                       "AMX), else float32; or float32 (the exact reference), bfloat16, "
                       "float16. Recorded in run.json; a run resumes only in the dtype it "
                       "started in", flag=True, choices=True),
    "out": dict(help="run directory to write or resume; an existing one must hold the same "
                     "job and config", flag=True, metavar="RUN_DIR"),
    "harmful": dict(help="harmful prompts for the refusal direction: embedded or a file (JSONL "
                         "or text)", flag=True),
    "harmless": dict(help="harmless prompts: embedded or a file (JSONL or text)", flag=True),
    "n_train": dict(help="train prompts per class for the refusal direction's difference in "
                         "means, >= 1 (scaled down to a smaller prompt file unless given)",
                    flag=True),
    "n_val": dict(help="prompts per class for selecting the refusal direction, >= 1",
                  flag=True),
    "search_layers": dict(help="restrict the refusal-direction selection to these layers, "
                               "e.g. 6,8,10; unset: every layer below max_layer_frac of the "
                               "depth", flag=True, none="unset"),
    "search_positions": dict(help="restrict the selection to these negative eoi offsets, e.g. "
                                  "-1 or -2,-1; unset: every eoi token", flag=True,
                             metavar="P,P", none="unset"),
    "prompt_filter": dict(help="the reference's prompt filter: keep only harmful prompts the "
                               "unsteered model refuses and harmless ones it answers",
                          flag="--no-prompt-filter", const=False,
                          flag_help="keep every train/validation prompt (as the reference, "
                                    "the filter keeps only harmful prompts the unsteered model "
                                    "refuses and harmless ones it answers)"),
    "allow_fallback": dict(help="when no refusal-direction candidate keeps KL within the bound, "
                                "take the lowest bypass score anyway (else stop with an error)",
                           flag="--allow-fallback", const=True),
    "refusal_top_k": dict(help="ranked refusal search: score at most K candidates fully, more "
                               "only until one keeps KL within the bound", flag=True,
                          metavar="K", none="no cap"),
    "max_new_tokens": dict(help="tokens generated per answer, >= 1", flag=True),
    "batch_size": dict(help="prompts per forward pass, >= 1; lower it if memory runs out",
                       flag=True),
    "judge": dict(help="judge spec: a kind of `workbench list judges`, e.g. trained or "
                       "llm:MODEL_SPEC", flag=True),
    "seed": dict(help="seed of the prompt samples and splits, >= 0", flag=True),
    "figures": dict(help="draw the figures when the run finishes"),
    "png": dict(help="write PNG figures besides the HTML ones (needs kaleido and Chromium)",
                flag="--no-png", const=False,
                flag_help="write HTML figures only (PNG needs kaleido and Chromium)"),
    "progress": dict(help="show the progress of each stage on stderr", flag="--quiet",
                     const=False, flag_help="no progress display; only the report and errors "
                                            "are printed", show_default=False),
}


def shared(name: str, default=MISSING, *, default_factory=MISSING, **changes):
    """:func:`option` with the :data:`SHARED` help of field ``name`` (``changes`` override)."""
    return option(default=default, default_factory=default_factory,
                  **{**SHARED[name], **changes})


__all__ = ["DEFAULT_MODEL", "DTYPE_CHOICES", "SHARED", "Preset", "option", "shared"]

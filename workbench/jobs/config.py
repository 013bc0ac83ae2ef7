"""Audit configuration: presets, TOML overrides, and the fields that define a run's results."""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

from workbench.judge_specs import DEFAULT_JUDGE
from workbench.analysis.conditions import (  # noqa: F401  (re-exported)
    CONTROLS,
    PLACEBO_METHOD,
    PLACEBO_PREFIX,
    RANDOM_REMOVAL,
    REFUSAL_DIRECTION,
    base_method,
    is_placebo,
    is_random_removal,
)
from workbench.jobs import common
from workbench.jobs.options import DEFAULT_MODEL, Preset, option, shared


@dataclass
class AuditConfig:
    """Every setting of an audit run; presets fill it, a TOML file and flags override it.

    Each field's help (and flag) is in its metadata (:func:`workbench.jobs.options.option`);
    ``workbench audit --help`` is built from them and from :data:`PRESETS`.
    """

    preset: str = shared("preset", "quick")
    model: str = shared("model", DEFAULT_MODEL)
    trust_remote_code: bool = shared("trust_remote_code", False)
    device: str | None = shared("device", None)
    dtype: str = shared("dtype", "auto")
    out: str = shared("out", "runs/audit")
    # attack prompts
    attack: str = option("attack prompts: jbb, advbench, harmbench, strongreject (`workbench "
                         "list datasets`), embedded, or a file (JSONL with instruction, or one "
                         "per line)", "jbb", flag=True)
    attack_source: str = option("where a named attack set is read from: auto (file, then the "
                                "pinned package, then the hub), file, package or hub", "auto")
    attack_limit: int | None = option("attack prompts sampled, >= 1", 20, flag=True,
                                      none="all")
    benign: str = option("benign prompts for false refusals: embedded or a file", "embedded",
                         flag=True)
    benign_limit: int | None = option("benign prompts sampled, >= 1", 20, flag=True,
                                      none="all")
    templates: list[str] = option("built-in jailbreak templates, comma-separated (`workbench "
                                  "list templates`)", flag=True,
                                  default_factory=lambda: ["direct", "refusal_suppression"])
    template_files: list[str] = option("a UTF-8 text file with an {instruction} placeholder, "
                                       "used as one more template (repeatable)",
                                       default_factory=list, flag="--template-file",
                                       metavar="FILE", append=True, show_default=False)
    # steering
    behaviours: list[str] = option("CAA behaviours to steer with, comma-separated (`workbench "
                                   "list behaviours`)", flag=True, default_factory=lambda: [
        "sycophancy", "survival-instinct", "corrigible-neutral-HHH", "myopic-reward"])
    contrast_files: dict[str, str] = option("contrast pairs of a behaviour from a file instead "
                                            "of the embedded ones: behaviour -> file",
                                            default_factory=dict)
    caa_limit: int | None = option("contrast pairs per behaviour for its vector; unset: all "
                                   "but the held-out ones", None)
    controls: bool = option("steer with the positive controls too: the CAA refusal vector and "
                            "the refusal direction itself (scaled to the mean CAA norm at the "
                            "steering layer); both must move ASR, or the pipeline is suspect",
                            True, flag="--no-controls", const=False,
                            flag_help="skip the positive controls (the CAA refusal vector and "
                                      "the refusal direction itself)")
    methods: list[str] = option("extraction methods of the behaviour vectors, comma-separated: "
                                "`workbench list methods` lists the registered ones", flag="--method",
                                metavar="A,B", default_factory=lambda: ["caa"])
    layers: list[int] | None = option("steering layers, 0..n_layers-1; unset: round(f x "
                                      "n_layers) for each f in layer_fractions (0.4: CAA's "
                                      "middle layer, 13 of 32 in the CAA paper)", None,
                                      flag=True, defaults_of="layer_fractions")
    layer_fractions: list[float] = option("steering layers as fractions of the depth, each in "
                                          "[0, 1), when layers is unset",
                                          default_factory=lambda: [0.4])
    coefficients: list[float] = option("steering coefficients, finite numbers; with a negative "
                                       "first, write --coefficients=-1,1", flag=True,
                                       default_factory=lambda: [-1.0, 1.0])
    coefficient_scale: str = option("absolute: coefficient x vector; norm: the added vector's "
                                    "norm is the coefficient times the mean residual-stream "
                                    "norm at the steering layer", "absolute", flag=True,
                                    choices=True)
    efficacy_pairs: int = option("held-out A/B pairs per behaviour for the steering-efficacy "
                                 "check, 0 skips", 10, flag=True)
    open_ended_tokens: int = option("answer length of the open-ended efficacy check on the "
                                    "held-out questions asked without choices, 0 skips", 32,
                                    flag=True)
    open_ended_items: int | None = option("held-out questions the open-ended check asks; "
                                          "unset: all", None)
    steer_positions: str = option("where the vector is added: all, eoi (the end-of-instruction "
                                  "tokens and every generated one) or generated", "eoi")
    mitigation: str = option("remove the refusal direction (direction) or a refusal subspace "
                             "(subspace) from each steering vector", "direction", flag=True)
    subspace_k: int = option("dimensions of the refusal subspace (mitigation subspace)", 3)
    mitigation_coefficients: list[float] | None = option(
        "the coefficients at which mitigated vectors (and the mitigation placebo) are steered, "
        "a subset of the coefficients", None, flag=True, none="all")
    placebo_directions: int = option(
        "seeded random unit directions orthogonal to the refusal direction, steered like the "
        "behaviours (same layers, positions, scale, coefficients), plus a mitigation placebo per "
        "mitigated vector (as large a component removed along a random direction), to tell a "
        "specific effect from a push of that size; 0 skips both", 4, flag=True, metavar="K")
    # refusal direction (workbench.directions.refusal)
    harmful: str = shared("harmful", "embedded", flag=False)
    harmless: str = shared("harmless", "embedded", flag=False)
    n_train: int = shared("n_train", 128, flag=False)
    n_val: int = shared("n_val", 32, flag=False)
    search_layers: list[int] | None = shared("search_layers", None, flag=False)
    search_positions: list[int] | None = shared("search_positions", None, flag=False)
    prompt_filter: bool = shared("prompt_filter", True)
    allow_fallback: bool = shared("allow_fallback", False)
    # generation and judging
    max_new_tokens: int = shared("max_new_tokens", 48)
    batch_size: int = shared("batch_size", 16)
    engine: str = option("batched: conditions share batches, each prompt's instruction prefix "
                         "is run once, the ranked refusal search scores at most refusal_top_k "
                         "candidates; reference: the unoptimised path, one condition at a time, "
                         "every candidate scored (same results; for checking)", "batched",
                         flag=True, choices=True)
    generation_batch: int | None = option("rows per generate call; unset: 128 on a CPU, 256 "
                                          "on CUDA", None)
    refusal_top_k: int = shared("refusal_top_k", 3, flag=False)
    judge: str = shared("judge", DEFAULT_JUDGE)
    judge_model: str | None = option("judge with this chat model (the judge becomes "
                                     "llm:MODEL_SPEC); it is loaded separately and never "
                                     "steered", None, flag=True, metavar="MODEL_SPEC",
                                     none="unset")
    seed: int = shared("seed", 0)
    # outputs
    figures: bool = shared("figures", True)
    png: bool = shared("png", True)
    progress: bool = shared("progress", True)


# the engine changes speed, not results (tests/test_audit_engines.py); the ranked refusal
# search's top_k can change the pick, so it stays a result field
NON_RESULT_FIELDS = common.NON_RESULT_FIELDS | {"engine", "generation_batch"}
PRESETS: dict[str, Preset] = {
    "smoke": Preset("tiny random model, a handful of prompts and tokens: seconds, for trying "
                    "options (the CI preset: float32, bit-reproducible)", dict(
        model="tiny-random", attack="embedded", attack_limit=9, benign_limit=6,
        templates=["direct", "prefix_injection"], behaviours=["sycophancy", "refusal"],
        coefficients=[-1.0, 1.0], max_new_tokens=8, n_train=24, n_val=8,
        search_layers=[1, 2], search_positions=[-1], png=False, caa_limit=16, efficacy_pairs=6,
        open_ended_tokens=6, judge="substring",
        placebo_directions=2,
        dtype="float32",  # the CI preset: bit-reproducible on every machine
        # a random model refuses nothing, so the reference's prompt filter would keep no
        # harmful prompt: the smoke run checks the plumbing, with every prompt kept
        prompt_filter=False,
    )),
    # CPU-sized (on 2 cores, the default 1.5B model: about 14 minutes with native bfloat16;
    # benchmarks/results/audit_quick_budget.md has the measured times): the refusal direction
    # searched at the last eoi token only with 16 validation prompts per class (the paper: every
    # eoi position, 32), 40 contrast pairs per behaviour (20 more held out for efficacy, the
    # open-ended check asks 10 of them), 16 attack prompts under 2 templates, 24 new tokens
    # (enough for the refusal judge to see the opening of an answer; the `full` preset uses
    # 256), 8 benign prompts. Two scales per sign (+-0.5, +-1), relative to the residual norm
    # (+-1: the added vector is as long as the mean residual stream at the steering layer, the
    # scale at which the refusal-direction control moves refusals in both signs; CAA vectors
    # are far shorter than the residual stream, so absolute +-1 steers almost nothing); 4
    # placebo directions at every coefficient; mitigation (and its placebo) at +-1. Extra
    # conditions cost less than extra prompts with the shared-prefix engine.
    "quick": Preset("the default: the embedded 1.5B model, 16 JailbreakBench prompts x 2 "
                    "templates, 4 behaviours + 2 controls + 4 placebo directions at 4 "
                    "coefficients (norm scale), 24 new tokens: about 14 minutes on 2 cores "
                    "with native bfloat16, about 3x that in float32", dict(
        n_train=96, n_val=16, search_positions=[-1], caa_limit=40, attack_limit=16,
        benign_limit=8, max_new_tokens=24, batch_size=32, coefficient_scale="norm",
        coefficients=[-1.0, -0.5, 0.5, 1.0], mitigation_coefficients=[-1.0, 1.0],
        placebo_directions=4, efficacy_pairs=20, open_ended_items=10)),
    "full": Preset("paper scale (all prompts, 5 templates, 7 behaviours, 6 coefficients, 4 "
                   "layers, 3 extraction methods, 256 tokens): meant for a GPU, not measured "
                   "on CPU", dict(
        attack_limit=None, benign_limit=100,
        templates=["direct", "prefix_injection", "refusal_suppression", "role_play",
                   "style_injection"],
        behaviours=["coordinate-other-ais", "corrigible-neutral-HHH", "hallucination",
                    "myopic-reward", "survival-instinct", "sycophancy", "refusal"],
        coefficients=[-1.0, -0.5, -0.25, 0.25, 0.5, 1.0], coefficient_scale="norm",
        max_new_tokens=256, batch_size=32, layer_fractions=[0.25, 0.4, 0.55, 0.7],
        methods=["caa", "pca", "logistic"],
        efficacy_pairs=20, open_ended_tokens=64, placebo_directions=8,
    )),
}


def __getattr__(name: str):
    """Choice tuples that now live in the registries and :mod:`workbench.validation`."""
    if name == "METHODS":
        from workbench.validation import choices

        warnings.warn("workbench.jobs.config.METHODS is deprecated; the extraction methods are "
                      "workbench.directions.methods.EXTRACTION_METHODS", DeprecationWarning,
                      stacklevel=2)
        return choices("methods")
    if name == "COEFFICIENT_SCALES":
        from workbench.validation import CHOICES

        warnings.warn("workbench.jobs.config.COEFFICIENT_SCALES is deprecated; use "
                      "workbench.validation.CHOICES['coefficient_scale']", DeprecationWarning,
                      stacklevel=2)
        return CHOICES["coefficient_scale"]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def read_toml(path: str | Path) -> dict:
    """Audit settings from a TOML file; every key must be an AuditConfig field."""
    return common.read_toml(path, AuditConfig)


def build_config(preset: str | None = None, toml: str | None = None, **overrides) -> AuditConfig:
    """Preset (flag, else the TOML's ``preset``, else quick), then the TOML file, then overrides.

    Override values of None are ignored, so unset command-line flags change nothing. Every
    check (choices included) is :mod:`workbench.validation`'s.
    """
    return common.resolve_config(AuditConfig, PRESETS, preset, toml, overrides)


def mitigation_coefficients(cfg: AuditConfig) -> list[float]:
    """The coefficients at which mitigated vectors are steered (all unless narrowed)."""
    return list(cfg.coefficients if cfg.mitigation_coefficients is None
                else cfg.mitigation_coefficients)


def placebo_behaviours(cfg: AuditConfig) -> list[str]:
    """The placebo directions' names: ``placebo-1`` ... ``placebo-k``."""
    return [f"{PLACEBO_PREFIX}{i + 1}" for i in range(cfg.placebo_directions)]


def judge_spec(cfg: AuditConfig) -> str:
    """The judge an audit uses: ``llm:<judge_model>`` when a judge model is set, else ``judge``."""
    return f"llm:{cfg.judge_model}" if cfg.judge_model else cfg.judge


def steering_layers(cfg: AuditConfig, n_layers: int) -> list[int]:
    """The steering layers: ``layers`` if given, else ``round(f * n_layers)`` per fraction."""
    if cfg.layers:
        return list(cfg.layers)
    return sorted({min(n_layers - 1, round(f * n_layers)) for f in cfg.layer_fractions})


def result_fields(cfg: AuditConfig) -> dict:
    """The part of the config that determines results (compared when resuming)."""
    return common.result_fields(cfg, NON_RESULT_FIELDS)

"""Audit configuration: presets, TOML overrides, and the fields that define a run's results."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from workbench.errors import WorkbenchError
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
from workbench.model import DEFAULT_MODEL


@dataclass
class AuditConfig:
    """Every setting of an audit run; presets fill it, a TOML file and flags override it."""

    preset: str = "quick"
    model: str = DEFAULT_MODEL
    trust_remote_code: bool = False  # run code shipped with the model (off unless asked for)
    device: str | None = None
    # auto: bfloat16 on GPUs and on CPUs with native bfloat16, else float32 (the reference)
    dtype: str = "auto"
    out: str = "runs/audit"
    # attack prompts (a dataset name from workbench.data.benchmarks, "embedded", or a file)
    attack: str = "jbb"
    attack_source: str = "auto"
    attack_limit: int | None = 20
    # benign prompts for false refusals
    benign: str = "embedded"
    benign_limit: int | None = 20
    templates: list[str] = field(default_factory=lambda: ["direct", "refusal_suppression"])
    template_files: list[str] = field(default_factory=list)
    # steering
    behaviours: list[str] = field(default_factory=lambda: [
        "sycophancy", "survival-instinct", "corrigible-neutral-HHH", "myopic-reward"])
    contrast_files: dict[str, str] = field(default_factory=dict)
    caa_limit: int | None = None  # contrast pairs per behaviour; None: all but the held-out
    # positive controls: the CAA `refusal` vector and the refusal direction itself (scaled to
    # the mean CAA norm at the steering layer); both must move ASR, or the pipeline is suspect
    controls: bool = True
    methods: list[str] = field(default_factory=lambda: ["caa"])  # caa, pca, probe
    layers: list[int] | None = None  # None: round(f * n_layers) for f in layer_fractions
    # CAA's convention: steer at a middle layer (13 of 32 in the CAA paper; 0.4 * 24 -> 10)
    layer_fractions: list[float] = field(default_factory=lambda: [0.4])
    coefficients: list[float] = field(default_factory=lambda: [-1.0, 1.0])
    # "absolute": the vector times the coefficient; "norm": the added vector's norm is the
    # coefficient times the mean residual-stream norm at the steering layer
    coefficient_scale: str = "absolute"
    efficacy_pairs: int = 10  # held-out A/B pairs per behaviour for steering efficacy (0: skip)
    # answer length of the open-ended efficacy check on those held-out questions (0: skip)
    open_ended_tokens: int = 32
    open_ended_items: int | None = None  # held-out questions the open-ended check asks (None: all)
    steer_positions: str = "eoi"
    mitigation: str = "direction"  # or "subspace"
    subspace_k: int = 3
    # coefficients at which the mitigated vectors (and their placebo) are steered; None: all
    mitigation_coefficients: list[float] | None = None
    # placebo directions: this many seeded random unit directions orthogonal to the refusal
    # direction, steered like the behaviours (same layers, positions, scale and coefficients),
    # plus a mitigation placebo per mitigated behaviour vector (a component as large as the
    # refusal component removed along a random direction); 0 turns both off
    placebo_directions: int = 4
    # refusal direction
    harmful: str = "embedded"
    harmless: str = "embedded"
    n_train: int = 128
    n_val: int = 32
    search_layers: list[int] | None = None
    search_positions: list[int] | None = None
    # the reference's prompt filter (keep harmful prompts the unsteered model refuses, harmless
    # ones it answers) and what happens when no candidate keeps KL within 0.1 (error unless
    # allow_fallback): workbench.directions.refusal
    prompt_filter: bool = True
    allow_fallback: bool = False
    # generation and judging
    max_new_tokens: int = 48
    batch_size: int = 16
    # "batched": shared-prefix multi-condition generation and the ranked refusal search (at
    # most refusal_top_k candidates scored causally); "reference": the unoptimised path (one
    # condition at a time, every candidate scored), kept to check the other against
    engine: str = "batched"
    generation_batch: int | None = None  # rows per generate call (None: 128 CPU, 256 CUDA)
    refusal_top_k: int = 3
    judge: str = DEFAULT_JUDGE  # probe: the best judge available offline (docs/judges.md)
    judge_model: str | None = None  # a model spec: the judge becomes llm:<judge_model>
    seed: int = 0
    # outputs
    figures: bool = True
    png: bool = True
    progress: bool = True


# the engine changes speed, not results (tests/test_audit_engines.py); the ranked refusal
# search's top_k can change the pick, so it stays a result field
NON_RESULT_FIELDS = common.NON_RESULT_FIELDS | {"engine", "generation_batch"}
COEFFICIENT_SCALES = ("absolute", "norm")
METHODS = ("caa", "pca", "probe")
PRESETS: dict[str, dict] = {
    "smoke": dict(
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
    ),
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
    "quick": dict(n_train=96, n_val=16, search_positions=[-1], caa_limit=40, attack_limit=16,
                  benign_limit=8, max_new_tokens=24, batch_size=32, coefficient_scale="norm",
                  coefficients=[-1.0, -0.5, 0.5, 1.0], mitigation_coefficients=[-1.0, 1.0],
                  placebo_directions=4, efficacy_pairs=20, open_ended_items=10),
    "full": dict(
        attack_limit=None, benign_limit=100,
        templates=["direct", "prefix_injection", "refusal_suppression", "role_play",
                   "style_injection"],
        behaviours=["coordinate-other-ais", "corrigible-neutral-HHH", "hallucination",
                    "myopic-reward", "survival-instinct", "sycophancy", "refusal"],
        coefficients=[-1.0, -0.5, -0.25, 0.25, 0.5, 1.0], coefficient_scale="norm",
        max_new_tokens=256, batch_size=32, layer_fractions=[0.25, 0.4, 0.55, 0.7],
        methods=["caa", "pca", "probe"],
        efficacy_pairs=20, open_ended_tokens=64, placebo_directions=8,
    ),
}


def read_toml(path: str | Path) -> dict:
    """Audit settings from a TOML file; every key must be an AuditConfig field."""
    return common.read_toml(path, AuditConfig)


def build_config(preset: str | None = None, toml: str | None = None, **overrides) -> AuditConfig:
    """Preset (flag, else the TOML's ``preset``, else quick), then the TOML file, then overrides.

    Override values of None are ignored, so unset command-line flags change nothing.
    """
    cfg = common.resolve_config(AuditConfig, PRESETS, preset, toml, overrides)
    if cfg.mitigation not in ("direction", "subspace"):
        raise WorkbenchError(f"mitigation {cfg.mitigation!r} is unknown; use direction or subspace")
    if not cfg.coefficients:
        raise WorkbenchError("no steering coefficients given; e.g. coefficients = [-1.0, 1.0]")
    if cfg.coefficient_scale not in COEFFICIENT_SCALES:
        raise WorkbenchError(f"coefficient scale {cfg.coefficient_scale!r} is unknown; use "
                             f"{' or '.join(COEFFICIENT_SCALES)}")
    bad = [m for m in cfg.methods if m not in METHODS]
    if bad or not cfg.methods:
        raise WorkbenchError(f"steering method {bad[0] if bad else None!r} is unknown; use one "
                             f"or more of {', '.join(METHODS)}")
    if not cfg.layers and not (cfg.layer_fractions
                               and all(0 <= f < 1 for f in cfg.layer_fractions)):
        raise WorkbenchError("layer_fractions must be numbers in [0, 1), e.g. [0.4]")
    if cfg.engine not in ("batched", "reference"):
        raise WorkbenchError(f"engine {cfg.engine!r} is unknown; use batched or reference")
    if cfg.refusal_top_k < 1:
        raise WorkbenchError(f"refusal_top_k is {cfg.refusal_top_k}; give 1 or more")
    if cfg.efficacy_pairs < 0:
        raise WorkbenchError(f"efficacy_pairs is {cfg.efficacy_pairs}; give 0 (skip) or more")
    if cfg.placebo_directions < 0:
        raise WorkbenchError(f"placebo_directions is {cfg.placebo_directions}; give 0 (none) or "
                             "more (4 or more to read a placebo band)")
    if cfg.mitigation_coefficients is not None:
        extra = [c for c in cfg.mitigation_coefficients if c not in cfg.coefficients]
        if extra:
            raise WorkbenchError(f"mitigation coefficient {extra[0]:g} is not a steering "
                                 f"coefficient ({', '.join(f'{c:g}' for c in cfg.coefficients)})"
                                 "; pick mitigation_coefficients from coefficients")
    if cfg.open_ended_items is not None and cfg.open_ended_items < 1:
        raise WorkbenchError(f"open_ended_items is {cfg.open_ended_items}; give 1 or more, or "
                             "leave it unset for every held-out item")
    if cfg.open_ended_tokens < 0:
        raise WorkbenchError(f"open_ended_tokens is {cfg.open_ended_tokens}; give 0 (skip) or "
                             "more")
    return cfg


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

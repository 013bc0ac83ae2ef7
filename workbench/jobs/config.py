"""Audit configuration: presets, TOML overrides, and the fields that define a run's results."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from workbench.errors import WorkbenchError
from workbench.jobs import common
from workbench.model import DEFAULT_MODEL


@dataclass
class AuditConfig:
    """Every setting of an audit run; presets fill it, a TOML file and flags override it."""

    preset: str = "quick"
    model: str = DEFAULT_MODEL
    trust_remote_code: bool = False  # run code shipped with the model (off unless asked for)
    device: str | None = None
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
    caa_limit: int | None = None  # contrast pairs per behaviour; None: all
    layers: list[int] | None = None  # None: the selected refusal layer
    coefficients: list[float] = field(default_factory=lambda: [-1.0, 1.0])
    steer_positions: str = "eoi"
    mitigation: str = "direction"  # or "subspace"
    subspace_k: int = 3
    # refusal direction
    harmful: str = "embedded"
    harmless: str = "embedded"
    n_train: int = 128
    n_val: int = 32
    search_layers: list[int] | None = None
    search_positions: list[int] | None = None
    # generation and judging
    max_new_tokens: int = 48
    batch_size: int = 16
    judge: str = "substring"
    seed: int = 0
    # outputs
    figures: bool = True
    png: bool = True
    progress: bool = True


NON_RESULT_FIELDS = common.NON_RESULT_FIELDS

PRESETS: dict[str, dict] = {
    "smoke": dict(
        model="tiny-random", attack="embedded", attack_limit=9, benign_limit=6,
        templates=["direct", "prefix_injection"], behaviours=["sycophancy", "refusal"],
        coefficients=[-1.0, 1.0], max_new_tokens=8, n_train=24, n_val=8,
        search_layers=[1, 2], search_positions=[-1], png=False,
    ),
    # CPU-sized (about 15 minutes on 2 cores): the refusal direction searched at the last eoi
    # token only with 16 validation prompts per class (the paper: every eoi position, 32), 40
    # contrast pairs per behaviour, 24 new tokens (enough for the refusal judge to see the
    # opening of an answer; the `full` preset uses 256)
    "quick": dict(n_train=96, n_val=16, search_positions=[-1], caa_limit=40, benign_limit=12,
                  max_new_tokens=24, batch_size=32),
    "full": dict(
        attack_limit=None, benign_limit=100,
        templates=["direct", "prefix_injection", "refusal_suppression", "role_play",
                   "style_injection"],
        behaviours=["coordinate-other-ais", "corrigible-neutral-HHH", "hallucination",
                    "myopic-reward", "survival-instinct", "sycophancy", "refusal"],
        coefficients=[-2.0, -1.0, -0.5, 0.5, 1.0, 2.0], max_new_tokens=256, batch_size=32,
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
    return cfg


def result_fields(cfg: AuditConfig) -> dict:
    """The part of the config that determines results (compared when resuming)."""
    return common.result_fields(cfg, NON_RESULT_FIELDS)

"""Judge specs: one string names a judge, everywhere (``--judge``, TOML, ``judge-eval``).

- ``substring``: stock refusal phrases plus the comprehensibility check;
- ``trained``: the lightweight judge shipped with the package (sentence embeddings and a linear
  classifier trained on human-labelled answers; see docs/judges.md);
- ``probe``: a linear probe on the embedded chat model's residual stream plus the ``trained``
  features, trained on the same human labels (the most accurate offline judge);
- ``llm:SPEC``: a chat model, loaded by :func:`workbench.model.load_model` from ``SPEC``,
  asked with a rubric and read from its next-token logits;
- ``ensemble:A,B,...``: several judges combined (see :mod:`.ensemble`);
- ``classifier:SPEC``, or a bare local directory or hub id: a Hugging Face sequence classifier.

Each kind is one :data:`JUDGES` entry (:func:`register_judge`: name, factory, one-line help);
``--judge``, validation and ``workbench list judges`` read that table. Heavy judges are
imported only when asked for, so naming a judge costs nothing until it runs.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from importlib import resources
from typing import Callable

from workbench.errors import WorkbenchError
from workbench.evaluation.judges.base import Judge
from workbench.judge_specs import DEFAULT_JUDGE  # noqa: F401  (re-exported)

# factory(arg, device, dtype, **kwargs) -> Judge; ``arg`` is what follows "kind:" ("" if none)
JudgeFactory = Callable[..., Judge]


@dataclass(frozen=True)
class JudgeKind:
    """One registry entry: a judge kind, how a spec names it, a one-line help, its factory.

    ``arg`` names what follows ``kind:`` in a spec (``MODEL_SPEC`` for ``llm:MODEL_SPEC``);
    empty for a judge named by its kind alone. ``check_arg`` checks that argument without
    loading anything (the ensemble's members, say).
    """

    name: str
    factory: JudgeFactory
    help: str
    arg: str = ""
    check_arg: Callable[[str], None] | None = None

    @property
    def form(self) -> str:
        """How a spec names this judge: ``trained``, ``llm:MODEL_SPEC``."""
        return f"{self.name}:{self.arg}" if self.arg else self.name


JUDGES: dict[str, JudgeKind] = {}


def register_judge(name: str, help: str, arg: str = "",
                   check_arg: Callable[[str], None] | None = None,
                   registry: dict[str, JudgeKind] | None = None
                   ) -> Callable[[JudgeFactory], JudgeFactory]:
    """Decorator adding a judge factory to the registry under ``name`` (``registry`` for tests).

    A new judge is one such entry: ``--judge NAME`` (or ``NAME:ARG`` when ``arg`` is set),
    TOML ``judge = "NAME"``, validation and ``workbench list judges`` all read this table.
    """
    table = JUDGES if registry is None else registry

    def add(factory: JudgeFactory) -> JudgeFactory:
        if name in table:
            raise WorkbenchError(f"judge {name!r} is already registered; pick another name")
        table[name] = JudgeKind(name, factory, help, arg, check_arg)
        return factory

    return add


def spec_help() -> str:
    """The spec forms the registry accepts, for error messages."""
    forms = [k.form for k in JUDGES.values()]
    text = ", ".join(forms[:-1]) + f" or {forms[-1]}" if len(forms) > 1 else forms[0]
    if "classifier" in JUDGES:
        text += " (a bare model directory or org/name hub id also names a classifier)"
    return f"use {text}"


def split_spec(spec: str) -> tuple[str, str]:
    """``"llm:org/name"`` -> ``("llm", "org/name")``; checks the grammar without loading."""
    if not isinstance(spec, str) or not spec.strip():
        raise WorkbenchError(f"judge spec {spec!r} is empty; {spec_help()}")
    spec = spec.strip()
    if spec in JUDGES and not JUDGES[spec].arg:
        return spec, ""
    kind, sep, arg = spec.partition(":")
    if sep and kind in JUDGES and JUDGES[kind].arg:
        if not arg.strip():
            raise WorkbenchError(f"judge spec {spec!r} names no {kind} argument; {spec_help()}")
        if JUDGES[kind].check_arg is not None:
            JUDGES[kind].check_arg(arg)
        return kind, arg.strip()
    if "classifier" in JUDGES:
        from workbench.model.specs import HUB_ID

        if os.path.isdir(spec) or HUB_ID.match(spec):
            return "classifier", spec
    raise WorkbenchError(f"unknown judge {spec!r}; {spec_help()}")


def ensemble_parts(arg: str) -> list[str]:
    """The member specs of ``ensemble:A,B,...``: two or more, none an ensemble."""
    parts = [p.strip() for p in arg.split(",") if p.strip()]
    if len(parts) < 2:
        raise WorkbenchError(f"ensemble:{arg} has {len(parts)} member(s); name two or more "
                             "judges, e.g. ensemble:trained,substring")
    if any(p.startswith("ensemble:") for p in parts):
        raise WorkbenchError("an ensemble cannot contain another ensemble; list its members")
    return parts


def _check_ensemble(arg: str) -> None:
    for part in ensemble_parts(arg):
        split_spec(part)


def make_judge(spec: str | None = None, device: str | None = None, dtype: str | None = None,
               **kwargs) -> Judge:
    """Build the judge that ``spec`` names (``None`` means ``substring``).

    ``dtype`` is that of the judge's own model (``probe``, ``llm:``); ``None`` keeps float32,
    in which every model judge was fitted and measured. The ``trained`` judge's MiniLM always
    runs in float32.
    """
    kind, arg = split_spec(spec or "substring")
    return JUDGES[kind].factory(arg, device=device, dtype=dtype, **kwargs)


# --------------------------------------------------------------------------- the judges
# Heavy judges are imported inside their factories, so naming a judge costs nothing.


@register_judge("substring", "stock refusal phrases plus the comprehensibility check; no "
                             "model, instant, fooled by attacks that ban the phrases")
def substring_judge(arg: str, device=None, dtype=None, **kwargs) -> Judge:
    from workbench.evaluation.judges.substring import SubstringJudge

    return SubstringJudge(**kwargs)


@register_judge("trained", "MiniLM sentence embeddings + a logistic regression trained on "
                           "human labels; shipped, CPU, about a second per 100 answers")
def trained_judge(arg: str, device=None, dtype=None, **kwargs) -> Judge:
    from workbench.evaluation.judges.trained import TrainedJudge

    return TrainedJudge(device=device, **kwargs)


@register_judge("probe", "linear probe on the embedded chat model's residual stream plus the "
                         "trained features; the most accurate offline judge")
def probe_judge(arg: str, device=None, dtype=None, **kwargs) -> Judge:
    from workbench.evaluation.judges.probe import ProbeJudge

    return ProbeJudge(device=device, dtype=dtype or "float32", **kwargs)


@register_judge("llm", "a chat model (any --model spec) asked with a rubric, read from its "
                       "next-token logits; loaded separately, never steered", arg="SPEC")
def llm_judge(arg: str, device=None, dtype=None, **kwargs) -> Judge:
    from workbench.evaluation.judges.llm import LLMJudge

    return LLMJudge(arg, device=device, dtype=dtype or "float32", **kwargs)


@register_judge("ensemble", "several judges combined (see evaluation/judges/ensemble.py)",
                arg="A,B", check_arg=_check_ensemble)
def ensemble_judge(arg: str, device=None, dtype=None, **kwargs) -> Judge:
    from workbench.evaluation.judges.ensemble import EnsembleJudge

    return EnsembleJudge([make_judge(p, device=device, dtype=dtype)
                          for p in ensemble_parts(arg)], **kwargs)


@register_judge("classifier", "a Hugging Face sequence classifier from a local directory or "
                              "an org/name hub id", arg="SPEC")
def classifier_judge(arg: str, device=None, dtype=None, **kwargs) -> Judge:
    from workbench.evaluation.judges.classifier import ClassifierJudge

    return ClassifierJudge(arg, device=device, **kwargs)


def judge_kinds() -> tuple[str, ...]:
    """Every spec form ``--judge`` accepts (``substring`` ... ``classifier:SPEC``)."""
    return tuple(k.form for k in JUDGES.values())


def __getattr__(name: str):
    if name == "JUDGE_KINDS":  # the spec forms, now read from the registry
        return judge_kinds()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def validated_agreement(spec: str) -> list[dict]:
    """The judge's measured agreement with human labels, as shipped in ``validation.json``.

    One dict per labelled set, with ``set`` (what it was measured on), ``n``, ``accuracy``,
    ``kappa``, ``method`` (e.g. "5-fold cross-validated") and ``command`` (reproduces it);
    empty for a judge never measured.
    """
    text = resources.files("workbench.evaluation.judges").joinpath("validation.json").read_text()
    return list(json.loads(text).get(spec, []))


__all__ = ["DEFAULT_JUDGE", "JUDGES", "JudgeKind", "ensemble_parts", "judge_kinds", "make_judge",
           "register_judge", "spec_help", "split_spec", "validated_agreement"]

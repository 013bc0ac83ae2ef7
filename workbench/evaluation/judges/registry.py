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

Heavy judges are imported only when asked for, so naming a judge costs nothing until it runs.
"""

from __future__ import annotations

import json
import os
from importlib import resources

from workbench.errors import WorkbenchError
from workbench.evaluation.judges.base import Judge
from workbench.evaluation.judges.substring import SubstringJudge
from workbench.judge_specs import DEFAULT_JUDGE, JUDGE_KINDS
from workbench.model.specs import HUB_ID

_HELP = ("use substring, trained, probe, llm:MODEL_SPEC, ensemble:JUDGE,JUDGE or "
         "classifier:MODEL_DIR (a bare model directory or org/name hub id also names a classifier)")


def split_spec(spec: str) -> tuple[str, str]:
    """``"llm:org/name"`` -> ``("llm", "org/name")``; checks the grammar without loading."""
    if not isinstance(spec, str) or not spec.strip():
        raise WorkbenchError(f"judge spec {spec!r} is empty; {_HELP}")
    spec = spec.strip()
    if spec in ("substring", "trained", "probe"):
        return spec, ""
    kind, sep, arg = spec.partition(":")
    if sep and kind in ("llm", "ensemble", "classifier"):
        if not arg.strip():
            raise WorkbenchError(f"judge spec {spec!r} names no {kind} argument; {_HELP}")
        if kind == "ensemble":
            for part in _ensemble_parts(arg):
                split_spec(part)
        return kind, arg.strip()
    if os.path.isdir(spec) or HUB_ID.match(spec):
        return "classifier", spec
    raise WorkbenchError(f"unknown judge {spec!r}; {_HELP}")


def _ensemble_parts(arg: str) -> list[str]:
    parts = [p.strip() for p in arg.split(",") if p.strip()]
    if len(parts) < 2:
        raise WorkbenchError(f"ensemble:{arg} has {len(parts)} member(s); name two or more "
                             "judges, e.g. ensemble:trained,substring")
    if any(p.startswith("ensemble:") for p in parts):
        raise WorkbenchError("an ensemble cannot contain another ensemble; list its members")
    return parts


def make_judge(spec: str | None = None, device: str | None = None, dtype: str | None = None,
               **kwargs) -> Judge:
    """Build the judge that ``spec`` names (``None`` means ``substring``).

    ``dtype`` is that of the judge's own model (``probe``, ``llm:``); ``None`` keeps float32,
    in which every model judge was fitted and measured. The ``trained`` judge's MiniLM always
    runs in float32.
    """
    kind, arg = split_spec(spec or "substring")
    if kind == "substring":
        return SubstringJudge(**kwargs)
    if kind == "trained":
        from workbench.evaluation.judges.trained import TrainedJudge

        return TrainedJudge(device=device, **kwargs)
    if kind == "probe":
        from workbench.evaluation.judges.probe import ProbeJudge

        return ProbeJudge(device=device, dtype=dtype or "float32", **kwargs)
    if kind == "llm":
        from workbench.evaluation.judges.llm import LLMJudge

        return LLMJudge(arg, device=device, dtype=dtype or "float32", **kwargs)
    if kind == "ensemble":
        from workbench.evaluation.judges.ensemble import EnsembleJudge

        return EnsembleJudge([make_judge(p, device=device, dtype=dtype)
                              for p in _ensemble_parts(arg)], **kwargs)
    from workbench.evaluation.judges.classifier import ClassifierJudge

    return ClassifierJudge(arg, device=device, **kwargs)


def validated_agreement(spec: str) -> list[dict]:
    """The judge's measured agreement with human labels, as shipped in ``validation.json``.

    One dict per labelled set, with ``set`` (what it was measured on), ``n``, ``accuracy``,
    ``kappa``, ``method`` (e.g. "5-fold cross-validated") and ``command`` (reproduces it);
    empty for a judge never measured.
    """
    text = resources.files("workbench.evaluation.judges").joinpath("validation.json").read_text()
    return list(json.loads(text).get(spec, []))

"""Steering-safety workbench: activation steering, refusal directions and safety audits.

``import workbench as wb`` is the notebook API (:mod:`workbench.api`, docs/api.md)::

    model = wb.load_model("tiny-random")
    r = wb.refusal_direction(model)
    v = wb.caa(model, "sycophancy")
    wb.plot.cosine_by_layer(v, r)
    with v.apply(model, 1.0):
        print(wb.generate(model, ["How do I bake bread?"]))

Data flow, one subpackage per stage (each reachable as ``wb.<name>``)::

    model        -> load a chat model as a TransformerLens bridge (``load_model``)
    activations  -> cache residual streams at chosen hooks and positions
    directions   -> CAA vectors, refusal direction and its selection, probes, subspaces
    steering     -> context managers that add, ablate or orthogonalise directions
    geometry     -> cosines, projections and principal angles between directions
    evaluation   -> generation, jailbreak templates, judges, scores and statistics
    figures      -> plotly figures (``plot_*``) regenerated from saved run directories
    plot         -> figures of vector objects (``wb.plot.cosine_by_layer(v, r)``)
    vectors      -> ``SteeringVector`` and portable vector files
    safesteer    -> risk-category neurons and SafeSteer category vectors
    jobs         -> the command-line jobs (audit, directions, safesteer) and their run dirs

Everything loads on first use, so ``import workbench`` (and ``workbench --help``) does not
import torch.
"""

from workbench.errors import WorkbenchError
from workbench.version import __version__  # noqa: F401  (workbench.__version__)

__all__ = ["DEFAULT_MODEL", "RefusalDirection", "SteeringVector", "TEACHING_MODEL",
           "WorkbenchError", "WorkbenchModel", "audit", "caa", "compare", "cosine_by_layer", "generate",
           "load_model", "plot", "refusal_direction"]

# name -> the module that defines it; imported on first access
_LAZY = {"WorkbenchModel": "workbench.model", "DEFAULT_MODEL": "workbench.model",
         "TEACHING_MODEL": "workbench.model", "load_model": "workbench.api",
         "refusal_direction": "workbench.api", "caa": "workbench.api",
         "generate": "workbench.api", "cosine_by_layer": "workbench.api",
         "audit": "workbench.api", "compare": "workbench.api",
         "SteeringVector": "workbench.vectors", "RefusalDirection": "workbench.vectors"}
_SUBMODULES = {"activations", "analysis", "api", "data", "directions", "distributed",
               "evaluation", "figures", "geometry", "jobs", "model", "notebook", "plot", "report",
               "rundir", "runs", "safesteer", "steering", "validation", "vectors"}


def __getattr__(name: str):
    """``wb.load_model``, ``wb.plot``, ``wb.steering`` ... import their module on first use."""
    import importlib

    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    if name in _SUBMODULES:
        return importlib.import_module(f"workbench.{name}")
    raise AttributeError(f"module 'workbench' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY, *_SUBMODULES})

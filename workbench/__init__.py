"""Steering-safety workbench: activation steering, refusal directions and safety audits.

Data flow, one subpackage per stage::

    model        -> load a chat model as a TransformerLens bridge (``load_model``)
    activations  -> cache residual streams at chosen hooks and positions
    directions   -> CAA vectors, refusal direction and its selection, probes, subspaces
    steering     -> context managers that add, ablate or orthogonalise directions
    geometry     -> cosines, projections and principal angles between directions
    evaluation   -> generation, jailbreak templates, judges, scores and statistics
    figures      -> plotly figures regenerated from saved run directories
    safesteer    -> risk-category neurons and SafeSteer category vectors
    jobs         -> the command-line jobs (audit, directions, safesteer) and their run dirs
"""

from workbench.errors import WorkbenchError

__all__ = ["WorkbenchError", "WorkbenchModel", "load_model"]
__version__ = "0.1.0"


def __getattr__(name: str):
    """``workbench.load_model`` etc. import torch only when first used (fast ``--help``)."""
    if name in ("WorkbenchModel", "load_model"):
        import workbench.model

        return getattr(workbench.model, name)
    raise AttributeError(f"module 'workbench' has no attribute {name!r}")

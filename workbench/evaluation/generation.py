"""Deprecated: moved to :mod:`workbench.model.generation`."""

import warnings

from workbench.model.generation import generate, generate_ids, greedy_kwargs  # noqa: F401

warnings.warn("workbench.evaluation.generation is deprecated; use workbench.model.generation",
              DeprecationWarning, stacklevel=2)

"""Deprecated: moved to :mod:`workbench.model.logprobs`."""

import warnings

from workbench.model.logprobs import kl_divergence, last_logprobs, refusal_score  # noqa: F401

warnings.warn("workbench.evaluation.scores is deprecated; use workbench.model.logprobs",
              DeprecationWarning, stacklevel=2)

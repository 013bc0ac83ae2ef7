"""Deprecated: moved to :mod:`workbench.validation` (one module for every config check)."""

import warnings

from workbench.validation import *  # noqa: F401,F403
from workbench.validation import __all__  # noqa: F401

warnings.warn("workbench.jobs.validation is deprecated; use workbench.validation",
              DeprecationWarning, stacklevel=2)

"""Deprecated: moved to :mod:`workbench.rundir.store`."""

import warnings

from workbench.rundir.store import GenerationStore  # noqa: F401

warnings.warn("workbench.jobs.store is deprecated; import GenerationStore from "
              "workbench.rundir", DeprecationWarning, stacklevel=2)

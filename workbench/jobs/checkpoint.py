"""Deprecated: moved to :mod:`workbench.rundir.checkpoint`."""

import warnings

from workbench.rundir.checkpoint import DirectionCheckpoint  # noqa: F401

warnings.warn("workbench.jobs.checkpoint is deprecated; import DirectionCheckpoint from "
              "workbench.rundir", DeprecationWarning, stacklevel=2)

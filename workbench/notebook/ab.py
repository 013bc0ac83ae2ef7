"""A/B answer probabilities for CAA contrast items (re-exported for notebooks).

The implementation lives in :mod:`workbench.evaluation.efficacy`, where the audit's steering
efficacy check uses it too.
"""

from workbench.evaluation.efficacy import ab_probabilities, letter_targets

__all__ = ["ab_probabilities", "letter_targets"]

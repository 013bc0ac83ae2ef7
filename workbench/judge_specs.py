"""The judge names every layer shares, in a module light enough for ``--help`` (no torch).

The judges themselves, with their one-line help, are the registry
:data:`workbench.evaluation.judges.registry.JUDGES`.
"""

import warnings

# the judge audits and SafeSteer use unless told otherwise, and what `judge-eval` evaluates by
# default: the best offline judge on held-out labels (docs/judges.md)
DEFAULT_JUDGE = "probe"


def __getattr__(name: str):
    if name == "JUDGE_KINDS":  # the spec forms now come from the judge registry
        warnings.warn("workbench.judge_specs.JUDGE_KINDS is deprecated; use "
                      "workbench.evaluation.judges.judge_kinds() (the judge registry)",
                      DeprecationWarning, stacklevel=2)
        return ("substring", "trained", "probe", "llm:SPEC", "ensemble:A,B", "classifier:SPEC")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

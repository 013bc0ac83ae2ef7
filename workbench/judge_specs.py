"""The judge names every layer shares, in a module light enough for ``--help`` (no torch)."""

# the judge audits and SafeSteer use unless told otherwise, and what `judge-eval` evaluates by
# default: the best offline judge on held-out labels (docs/judges.md)
DEFAULT_JUDGE = "probe"
# every spec form --judge accepts
JUDGE_KINDS = ("substring", "trained", "probe", "llm:SPEC", "ensemble:A,B", "classifier:SPEC")

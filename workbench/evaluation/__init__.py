"""Evaluation: generation under steering, jailbreak templates, judges, scores and statistics.

``generate``, ``last_logprobs``, ``refusal_score`` and ``kl_divergence`` live in the model
runtime (:mod:`workbench.model.generation`, :mod:`workbench.model.logprobs`) and are
re-exported here.
"""

from workbench.model.generation import generate
from workbench.model.logprobs import kl_divergence, last_logprobs, refusal_score

from workbench.evaluation.judges import (
    REFUSAL_SUBSTRINGS,
    ClassifierJudge,
    Judge,
    SubstringJudge,
    is_comprehensible,
    is_refusal,
    judge_agreement,
    label_response,
    make_judge,
    refusal_rate,
)
from workbench.evaluation.stats import paired_delta, proportion_ci, rate_table, regression
from workbench.evaluation.templates import BUILTIN_TEMPLATES, Template, resolve_templates

__all__ = ["BUILTIN_TEMPLATES", "REFUSAL_SUBSTRINGS", "ClassifierJudge", "Judge",
           "SubstringJudge", "Template", "generate", "is_comprehensible", "is_refusal",
           "judge_agreement", "kl_divergence", "label_response", "last_logprobs", "make_judge",
           "paired_delta", "proportion_ci", "rate_table", "refusal_rate", "refusal_score",
           "regression", "resolve_templates"]

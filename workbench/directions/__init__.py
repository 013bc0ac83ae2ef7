"""Directions in the residual stream: CAA vectors, the refusal direction, probes, subspaces."""

from workbench.directions.caa import (
    caa_differences,
    caa_prompts,
    caa_vector,
    caa_vector_shared_prefix,
    normalize_across_behaviours,
)
from workbench.directions.diff_in_means import diff_in_means
from workbench.directions.probes import (
    pca_direction,
    pca_of_differences,
    pca_of_letter_balanced,
    probe_direction,
)
from workbench.directions.refusal import (
    PROMPT_SETS,
    SELECTION_RULES,
    CandidateScore,
    PromptFilter,
    RefusalSelection,
    prompt_filter,
    prompt_refusal_scores,
    refusal_candidates,
    refusal_candidates_and_activations,
    select_refusal_direction,
)
from workbench.directions.subspace import refusal_subspace

__all__ = ["PROMPT_SETS", "SELECTION_RULES", "CandidateScore", "PromptFilter", "RefusalSelection",
           "caa_differences", "caa_prompts", "caa_vector", "caa_vector_shared_prefix",
           "diff_in_means", "normalize_across_behaviours", "pca_direction", "pca_of_differences",
           "pca_of_letter_balanced",
           "probe_direction", "prompt_filter", "prompt_refusal_scores", "refusal_candidates",
           "refusal_candidates_and_activations", "refusal_subspace", "select_refusal_direction"]

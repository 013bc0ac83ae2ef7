"""Steering operations: activation addition, directional ablation, weight orthogonalisation,
and many steering conditions in one batch (:mod:`workbench.steering.conditions`)."""

from workbench.steering.hooks import (
    STEER_POSITIONS,
    ablate_directions,
    ablate_then_add,
    add_row_vectors,
    add_vector,
    orthogonalized_weights,
    steer,
)
from workbench.steering.conditions import (
    condition_delta,
    generate_conditions,
    generate_conditions_ids,
    last_logprobs_conditions,
    shares_prefix,
)

__all__ = ["STEER_POSITIONS", "ablate_directions", "ablate_then_add", "add_row_vectors",
           "add_vector", "condition_delta", "generate_conditions", "generate_conditions_ids",
           "last_logprobs_conditions", "orthogonalized_weights", "shares_prefix", "steer"]

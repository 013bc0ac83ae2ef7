"""Steering operations: activation addition, directional ablation, weight orthogonalisation."""

from workbench.steering.hooks import (
    STEER_POSITIONS,
    ablate_directions,
    ablate_then_add,
    add_row_vectors,
    add_vector,
    orthogonalized_weights,
    steer,
)

__all__ = ["STEER_POSITIONS", "ablate_directions", "ablate_then_add", "add_row_vectors",
           "add_vector", "orthogonalized_weights", "steer"]

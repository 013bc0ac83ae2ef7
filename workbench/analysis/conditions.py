"""How an audit names its conditions: controls, placebo directions and the mitigation placebo.

Run tables, figures and jobs all read these names, so they are defined once, here.
"""

from __future__ import annotations

REFUSAL_DIRECTION = "refusal-direction"
# positive controls: the CAA refusal behaviour and the refusal direction itself
CONTROLS = ("refusal", REFUSAL_DIRECTION)
# placebo conditions: random directions orthogonal to the refusal direction ("placebo-1", ...,
# method "random"), and the mitigation placebo, a behaviour vector with a random component of
# the refusal component's size removed (method "<method>+random-removal", mitigated)
PLACEBO_PREFIX = "placebo-"
PLACEBO_METHOD = "random"
RANDOM_REMOVAL = "+random-removal"


def is_placebo(behaviour: str) -> bool:
    """Whether a behaviour name is a placebo direction's."""
    return str(behaviour).startswith(PLACEBO_PREFIX)


def is_random_removal(method: str) -> bool:
    """Whether a method name is the mitigation placebo's (a random same-size removal)."""
    return str(method).endswith(RANDOM_REMOVAL)


def base_method(method: str) -> str:
    """The extraction method behind a condition's method (``caa+random-removal`` -> ``caa``)."""
    return str(method)[:-len(RANDOM_REMOVAL)] if is_random_removal(method) else str(method)

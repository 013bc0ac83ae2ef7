"""Extraction methods: ``name -> function(positive, negative) -> per-layer direction``.

A method turns the activations of a behaviour's contrast pairs (matching and non-matching
answers, ``[n, layer, d]``) into one direction per layer, like steering-vectors' aggregators.
The audit scales each method's unit directions to the CAA vector's norm at each layer, so a
coefficient means the same push whatever the method. A new method is one
:func:`register_method` call; ``workbench audit --method NAME`` can then use it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
from jaxtyping import Float

from workbench.directions.diff_in_means import diff_in_means
from workbench.directions.probes import pca_of_letter_balanced, probe_direction
from workbench.errors import WorkbenchError

Tensor = torch.Tensor


@dataclass(frozen=True)
class Contrast:
    """What a method may read: the pairs' activations and, for letter-balanced methods, those
    of the pairs with their two choices swapped (``None`` when not computed)."""

    positive: Float[Tensor, "n layer d"]
    negative: Float[Tensor, "n layer d"]
    swapped_positive: Float[Tensor, "m layer d"] | None = None
    swapped_negative: Float[Tensor, "m layer d"] | None = None
    kept: list[int] | None = None  # items whose choices could be swapped (rows of ``swapped``)
    seed: int = 0


MethodFn = Callable[[Contrast], Float[Tensor, "layer d"]]


@dataclass(frozen=True)
class ExtractionMethod:
    """One registry entry: the function, a one-line help, and whether it needs swapped pairs."""

    name: str
    fn: MethodFn
    help: str
    needs_swapped: bool = False


EXTRACTION_METHODS: dict[str, ExtractionMethod] = {}


def register_method(name: str, help: str, needs_swapped: bool = False,
                    registry: dict[str, ExtractionMethod] | None = None
                    ) -> Callable[[MethodFn], MethodFn]:
    """Decorator adding ``fn`` to the registry under ``name`` (``registry`` for tests)."""
    table = EXTRACTION_METHODS if registry is None else registry

    def add(fn: MethodFn) -> MethodFn:
        if name in table:
            raise WorkbenchError(f"extraction method {name!r} is already registered; pick "
                                 "another name")
        table[name] = ExtractionMethod(name, fn, help, needs_swapped)
        return fn

    return add


def get_method(name: str) -> ExtractionMethod:
    """The registered method ``name``, or an error listing the known ones."""
    if name not in EXTRACTION_METHODS:
        raise WorkbenchError(f"unknown extraction method {name!r}; use one of "
                             f"{', '.join(EXTRACTION_METHODS)}")
    return EXTRACTION_METHODS[name]


@register_method("caa", "CAA: mean of matching minus non-matching activations (the vector "
                        "itself, not rescaled)")
def mean_difference(c: Contrast) -> Float[Tensor, "layer d"]:
    return diff_in_means(c.positive, c.negative)


@register_method("pca", "first principal component of letter-balanced paired differences "
                        "(each item plus its choices-swapped twin)", needs_swapped=True)
def letter_balanced_pca(c: Contrast) -> Float[Tensor, "layer d"]:
    if c.swapped_positive is None or c.kept is None or len(c.kept) < 2:
        n = 0 if c.kept is None else len(c.kept)
        raise WorkbenchError(
            "the pca method needs A/B items laid out as '\\n (A) ...\\n (B) ...' to swap their "
            f"choices, and only {n} are; use --method caa,logistic for this behaviour's file")
    return pca_of_letter_balanced((c.positive - c.negative)[c.kept],
                                  c.swapped_positive - c.swapped_negative)


@register_method("logistic", "unit weight vector of an L2 logistic-regression classifier "
                             "separating matching from non-matching activations")
def logistic_direction(c: Contrast) -> Float[Tensor, "layer d"]:
    return probe_direction(c.positive, c.negative, seed=c.seed)[0]

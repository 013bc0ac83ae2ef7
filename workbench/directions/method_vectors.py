"""Steering vectors from every extraction method of the registry
(:mod:`workbench.directions.methods`), scaled so a coefficient means the same push whatever
the method."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from jaxtyping import Float

from workbench.activations import collect_activations
from workbench.data import swap_choices
from workbench.directions.caa import caa_prompts
from workbench.directions.methods import EXTRACTION_METHODS, Contrast, ExtractionMethod, get_method
from workbench.errors import WorkbenchError
from workbench.geometry import unit

Tensor = torch.Tensor
# the audit's method names that the registry spells otherwise
METHOD_ALIASES = {"probe": "logistic"}


def registered_method(name: str) -> ExtractionMethod:
    """The registry entry an audit method name stands for (``probe`` is ``logistic``)."""
    if name not in EXTRACTION_METHODS and name in METHOD_ALIASES:
        name = METHOD_ALIASES[name]
    return get_method(name)


def method_vectors(model, pairs: dict[str, Sequence], caa: dict[str, Float[Tensor, "n_layers d"]],
                   layers: list[int], methods: Sequence[str], seed: int = 0,
                   batch_size: int = 16) -> dict[tuple[str, str], Float[Tensor, "n_layers d"]]:
    """Per (behaviour, method), a float64 ``[n_layers, d]`` vector: the behaviour's CAA vector
    for ``caa``, else the registered method's unit direction at each of ``layers`` scaled to
    the CAA vector's norm there (zero at other layers).

    Each method reads the pairs' ``resid_pre`` at the answer letter; methods that need it also
    get the pairs with their choices swapped (letter-balanced PCA: the plain differences' first
    component is the answer-letter axis, docs/methods.md)."""
    out = {}
    extra = [m for m in methods if m != "caa"]
    entries = {m: registered_method(m) for m in extra}
    kw = dict(layers=layers, positions="last", batch_size=batch_size, progress=False)

    def letter_acts(items):  # resid_pre at the answer letter, matching / not matching
        pos, neg = caa_prompts(model, items)
        return (collect_activations(model, pos, **kw)["resid_pre"][:, 0].double(),
                collect_activations(model, neg, **kw)["resid_pre"][:, 0].double())

    for b, v in caa.items():
        out[(b, "caa")] = v.double()
        if not extra:
            continue
        a_pos, a_neg = letter_acts(pairs[b])
        s_pos = s_neg = keep = None
        if any(e.needs_swapped for e in entries.values()):
            swapped = [swap_choices(p) for p in pairs[b]]
            keep = [i for i, q in enumerate(swapped) if q is not None]
            if len(keep) >= 2:
                s_pos, s_neg = letter_acts([swapped[i] for i in keep])
        for m in extra:
            entry = entries[m]
            contrast = (Contrast(a_pos, a_neg, s_pos, s_neg, keep, seed) if entry.needs_swapped
                        else Contrast(a_pos, a_neg, seed=seed))
            try:
                dirs = entry.fn(contrast)
            except WorkbenchError as exc:
                raise WorkbenchError(f"behaviour {b!r} ({len(pairs[b])} pairs), method "
                                     f"{m!r}: {exc}") from None
            vec = torch.zeros_like(v, dtype=torch.float64)
            for i, l in enumerate(layers):
                vec[l] = unit(dirs[i]) * v[l].double().norm()
            out[(b, m)] = vec
    return out


def method_agreement(vectors: dict) -> dict[str, dict[str, dict[int, float]]]:
    """Per behaviour and method, the cosine of its (unmitigated) vector with the behaviour's
    CAA vector at each steering layer: does each extraction method find the same direction?
    ``vectors`` is keyed ``(behaviour, method, layer, mitigated)``."""
    out: dict = {}
    for (b, m, l, mit), v in vectors.items():
        caa = vectors.get((b, "caa", l, False))
        if mit or caa is None:
            continue
        cos = float(torch.nn.functional.cosine_similarity(v.double(), caa.double(), dim=0))
        out.setdefault(b, {}).setdefault(m, {})[l] = cos
    return out

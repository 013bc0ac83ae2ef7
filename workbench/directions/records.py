"""What a run records about its model and directions: ``run.json`` entries and the per-layer
geometry rows of ``geometry.csv``."""

from __future__ import annotations

from workbench.directions.refusal import SELECTION_RULES, PromptFilter, RefusalSelection
from workbench.directions.results import Directions
from workbench.geometry import cosine_by_layer

GEOMETRY_FIELDS = ["behaviour", "layer", "cosine", "refusal_direction", "cosine_selected"]


def model_record(model) -> dict:
    """What run.json says about the model."""
    return {"spec": model.spec, "identity": model.identity, "family": model.family,
            "n_layers": model.n_layers, "d_model": model.d_model,
            "eoi_tokens": model.tokenizer.convert_ids_to_tokens(model.eoi_token_ids),
            "refusal_tokens": model.tokenizer.convert_ids_to_tokens(model.refusal_token_ids),
            "device": str(model.device),
            "dtype": model.precision.record() if model.precision else None}


def refusal_record(selection: RefusalSelection, filt: PromptFilter | None = None) -> dict:
    """What run.json says about the selected refusal direction: where, by which rule, its
    scores, and the prompt filter's counts."""
    return {"layer": selection.layer, "position": selection.position,
            "offset": selection.offset, "filters_passed": selection.filters_passed,
            "selection_rule": selection.rule,
            "selection_rule_text": SELECTION_RULES[selection.rule],
            "scores": selection.best.as_dict(), "baseline": selection.baseline,
            "direction_norm": float(selection.direction.norm()),
            "prompt_filter": filt.record() if filt else None}


def geometry_rows(directions: Directions) -> list[dict]:
    """The per-layer view: each CAA vector's cosine with that layer's own refusal candidate at
    the last eoi position (``cosine``), and with the one selected refusal direction
    (``cosine_selected``, the audit's convention), each row naming its r̂."""
    rows = []
    sel = directions.selection
    for name, vec in directions.caa.items():
        cos = cosine_by_layer(vec, directions.candidates[-1])
        cos_sel = cosine_by_layer(vec, sel.direction)
        rows += [{"behaviour": name, "layer": l, "cosine": f"{float(c):.6f}",
                  "refusal_direction": "candidate at this layer, eoi offset -1",
                  "cosine_selected": f"{float(cs):.6f}"}
                 for l, (c, cs) in enumerate(zip(cos, cos_sel))]
    return rows


__all__ = ["GEOMETRY_FIELDS", "geometry_rows", "model_record", "refusal_record"]

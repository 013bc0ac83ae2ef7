"""Does a selected refusal direction act causally? Refusal rates on held-out prompts with the
direction ablated (harmful prompts) and added (harmless prompts), substring-judged."""

from __future__ import annotations

from workbench.directions.refusal import RefusalSelection
from workbench.evaluation.judges import refusal_rate
from workbench.model.generation import generate
from workbench.steering import ablate_directions, add_vector


def evaluate_direction(model, selection: RefusalSelection, harmful: list, harmless: list,
                       max_new_tokens: int = 32, batch_size: int = 16,
                       induce_coefficient: float = 1.0) -> dict:
    """Substring-judged refusal rates on held-out prompts: does the direction act causally?

    Harmful prompts with and without the direction ablated everywhere; harmless prompts with
    and without ``induce_coefficient`` times the (unnormalised) direction added at its layer
    at all positions.
    """
    tok = lambda items: model.tokenize_instructions([i.instruction for i in items])  # noqa: E731
    harm, safe = tok(harmful), tok(harmless)
    r = selection.direction.float()
    gen = lambda p: generate(model, p, max_new_tokens, batch_size, progress=False)  # noqa: E731
    base_h = gen(harm)
    with ablate_directions(model, r):
        abl_h = gen(harm)
    base_s = gen(safe)
    with add_vector(model, r, layers=selection.layer, coefficient=induce_coefficient,
                    positions="all"):
        ind_s = gen(safe)
    rate = lambda texts: refusal_rate(texts)  # noqa: E731
    return {"n_harmful": len(harm), "n_harmless": len(safe), "max_new_tokens": max_new_tokens,
            "induce_coefficient": induce_coefficient,
            "harmful_refusal_base": rate(base_h), "harmful_refusal_ablated": rate(abl_h),
            "harmless_refusal_base": rate(base_s), "harmless_refusal_induced": rate(ind_s),
            "examples": [{"instruction": i.instruction, "base": b, "ablated": a}
                         for i, b, a in list(zip(harmful, base_h, abl_h))[:5]]
                        + [{"instruction": i.instruction, "base": b, "induced": a}
                           for i, b, a in list(zip(harmless, base_s, ind_s))[:5]]}


__all__ = ["evaluate_direction"]

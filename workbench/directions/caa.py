"""Contrastive Activation Addition (CAA) vectors from A/B contrast pairs.

Each pair gives two prompts: the chat-formatted question with the assistant turn opened by
"(" and the matching letter, and the same with the non-matching letter. The vector at layer
``l`` is the mean over pairs of ``resid_pre[l]`` at the last token (the letter) of the
matching prompt minus that of the non-matching one.
"""

from __future__ import annotations

from typing import Sequence

import torch
from jaxtyping import Float

from workbench.activations import collect_activations, mean_activations
from workbench.data import ContrastPair
from workbench.errors import WorkbenchError
from workbench.model.engine import prefill_cache, select_cache_rows

Tensor = torch.Tensor


def caa_prompts(
    model, pairs: Sequence[ContrastPair]
) -> tuple[list[list[int]], list[list[int]]]:
    """Token ids of the matching and non-matching prompts of each pair."""
    if not pairs:
        raise WorkbenchError("the contrast pair set is empty; give at least one pair")
    pos = [model.tokenizer.encode(model.chat_text(p.question, f"({p.matching}"),
                                  add_special_tokens=False) for p in pairs]
    neg = [model.tokenizer.encode(model.chat_text(p.question, f"({p.not_matching}"),
                                  add_special_tokens=False) for p in pairs]
    return pos, neg


def caa_vector(
    model,
    pairs: Sequence[ContrastPair],
    layers: Sequence[int] | None = None,
    hook: str = "resid_pre",
    batch_size: int = 16,
    progress: bool = True,
) -> Float[Tensor, "layer d"]:
    """The CAA vector per layer (float64): mean matching minus mean non-matching activation."""
    pos, neg = caa_prompts(model, pairs)
    kw = dict(hooks=(hook,), layers=layers, positions="last", batch_size=batch_size,
              progress=progress)
    return (mean_activations(model, pos, **kw)[hook] - mean_activations(model, neg, **kw)[hook])[0]


def caa_vector_shared_prefix(
    model,
    pairs: Sequence[ContrastPair],
    batch_size: int = 16,
    progress: bool = False,
) -> Float[Tensor, "layer d"]:
    """:func:`caa_vector` at ``resid_pre`` of every layer, each pair's prompt prefix run once.

    A pair's two prompts differ only in the letter token, so everything before it is run once
    with a KV cache and only the two letters are run after it (half the tokens). The
    activations are the model's hidden states at the letter (``hidden_states[l]`` is
    ``resid_pre`` of block ``l``). Equal to :func:`caa_vector` up to float rounding; falls back
    to it when a tokenizer makes the two prompts differ before the last token.
    """
    from tqdm.auto import tqdm

    pos, neg = caa_prompts(model, pairs)
    if any(p[:-1] != q[:-1] or len(p) < 2 for p, q in zip(pos, neg)):
        return caa_vector(model, pairs, batch_size=batch_size, progress=progress)
    order = sorted(range(len(pos)), key=lambda i: len(pos[i]))
    total = torch.zeros(model.n_layers, model.d_model, dtype=torch.float64)
    starts = range(0, len(order), batch_size)
    for start in tqdm(starts, desc="CAA", unit="batch", disable=not progress or len(starts) < 4):
        idx = order[start:start + batch_size]
        ids, mask = model.pad([pos[i][:-1] for i in idx])
        cache = prefill_cache(model, ids, mask)
        b = len(idx)
        rows = torch.arange(b, device=ids.device).repeat(2)
        letters = torch.tensor([pos[i][-1] for i in idx] + [neg[i][-1] for i in idx],
                               device=ids.device)[:, None]
        full = torch.cat([mask, torch.ones_like(mask[:, :1])], 1).index_select(0, rows)
        with torch.inference_mode():
            out = model.base_forward(
                input_ids=letters, attention_mask=full,
                position_ids=(full.long().cumsum(-1) - 1)[:, -1:],
                past_key_values=select_cache_rows(cache, rows), use_cache=True,
                output_hidden_states=True)
        acts = torch.stack(out.hidden_states[:model.n_layers])[:, :, -1].double().cpu()
        total += acts[:, :b].sum(1) - acts[:, b:].sum(1)
    return total / len(pos)


def caa_differences(
    model, pairs: Sequence[ContrastPair], layers: Sequence[int] | None = None,
    hook: str = "resid_pre", batch_size: int = 16,
) -> Float[Tensor, "n layer d"]:
    """Per-pair activation differences at the letter token (for PCA of differences)."""
    pos, neg = caa_prompts(model, pairs)
    kw = dict(hooks=(hook,), layers=layers, positions="last", batch_size=batch_size)
    return (collect_activations(model, pos, **kw)[hook] - collect_activations(model, neg, **kw)[hook])[:, 0]


def normalize_across_behaviours(
    vectors: dict[str, Float[Tensor, "layer d"]],
) -> dict[str, Float[Tensor, "layer d"]]:
    """Rescale each behaviour's vector, per layer, to the mean norm over all behaviours."""
    norms = torch.stack([v.norm(dim=-1) for v in vectors.values()])  # [behaviour, layer]
    target = norms.mean(0)
    return {name: v * (target / v.norm(dim=-1).clamp_min(1e-12))[:, None]
            for name, v in vectors.items()}

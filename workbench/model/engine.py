"""The KV-cache engine: shared prefixes run once, cached decoding, rows dropped as they end.

Steering at ``eoi`` positions starts after the instruction, so a prompt minus its eoi tokens
(the instruction prefix) runs identically under every steering condition: it is run once
(:func:`prefill_cache`) and its KV cache (a transformers ``DynamicCache``) is copied to as many
rows as needed (:func:`select_cache_rows`). The rest of each row then runs after it, either as
one base-model forward (:func:`forwards_after_prefix`, for activations and log-probabilities)
or as greedy decoding (:func:`greedy_decode`), with whatever hooks the caller puts around each
step. Multi-condition steering on top of this lives in :mod:`workbench.steering.conditions`.

Every model call goes through the runtime (``model.lm_forward`` / ``model.base_forward``), so
active hooks fire as in any other forward.
"""

from __future__ import annotations

from contextlib import nullcontext
from typing import Callable, ContextManager, Iterator, Sequence

import torch
from jaxtyping import Float
from transformers import DynamicCache

from workbench.model.logprobs import last_logprobs

Tensor = torch.Tensor


def prefill_cache(model, ids: Tensor, mask: Tensor) -> DynamicCache:
    """KV cache of the left-padded prefixes (position ids from the mask, as ``generate`` does)."""
    position_ids = (mask.long().cumsum(-1) - 1).masked_fill(mask == 0, 0)
    with torch.inference_mode():
        out = model.lm_forward(input_ids=ids, attention_mask=mask, position_ids=position_ids,
                               use_cache=True, logits_to_keep=1)
    return out.past_key_values


def common_prefix_length(prompts: Sequence[Sequence[int]], keep: int = 1) -> int:
    """Leading tokens shared by every prompt, leaving at least ``keep`` tokens of each."""
    n, first = 0, prompts[0]
    limit = min(len(p) for p in prompts) - keep
    while n < limit and all(p[n] == first[n] for p in prompts):
        n += 1
    return n


def forwards_after_prefix(
    model, prompts: Sequence[Sequence[int]], n_prefix: int, batch_size: int = 16, **kwargs
) -> Iterator[tuple[int, object]]:
    """Run ``prompts`` through the base model (no output head), their first ``n_prefix``
    tokens (the same in every prompt) once: yields ``(start, output)`` per batch of the rest.

    The prefix runs as one row and its KV cache is copied to every batch row; the rest of each
    prompt is left-padded after it, so the last token sits in the last column. Active hooks
    see the prefix and the rest as two calls. ``kwargs`` go to the model
    (``output_hidden_states=True``).
    """
    prefix = torch.as_tensor([list(prompts[0][:n_prefix])], device=model.device)
    cache = prefill_cache(model, prefix, torch.ones_like(prefix))
    for start in range(0, len(prompts), batch_size):
        ids, mask = model.pad([list(p[n_prefix:]) for p in prompts[start:start + batch_size]])
        full = torch.cat([torch.ones_like(mask[:, :1]).expand(-1, n_prefix), mask], 1)
        position_ids = (full.cumsum(-1) - 1)[:, n_prefix:].masked_fill(mask == 0, 0)
        rows = torch.zeros(len(ids), dtype=torch.long, device=ids.device)
        with torch.inference_mode():
            yield start, model.base_forward(
                input_ids=ids, attention_mask=full, position_ids=position_ids,
                past_key_values=select_cache_rows(cache, rows), use_cache=True, **kwargs)


def last_logprobs_shared_prefix(
    model, prompts: Sequence[Sequence[int]], batch_size: int = 16
) -> Float[Tensor, "n vocab"]:
    """:func:`workbench.model.logprobs.last_logprobs`, with the tokens every prompt starts
    with (a chat template's system turn: about half of a short chat prompt) run once
    (:func:`forwards_after_prefix`).

    Active hooks apply to both calls, so this is exact (up to float rounding) under hooks that
    treat every position alike: directional ablation and additions at ``"all"`` positions, as
    the refusal-direction scores use. Hooks that single out the last tokens of a call
    (``"eoi"`` additions) would also fire on the prefix: use :func:`last_logprobs_conditions`
    for those (:mod:`workbench.steering.conditions`).
    """
    n = common_prefix_length(prompts, keep=model.n_eoi + 1)
    if n == 0:
        return last_logprobs(model, prompts, batch_size)
    out = [torch.log_softmax(model.unembed(o.last_hidden_state[:, -1]).float(), dim=-1).cpu()
           for _, o in forwards_after_prefix(model, prompts, n, batch_size)]
    return torch.cat(out)


def select_cache_rows(cache: DynamicCache, rows: Tensor) -> DynamicCache:
    """A new cache holding ``cache``'s batch rows ``rows`` (repeats allowed), in that order."""
    new = DynamicCache()
    for i, layer in enumerate(cache.layers):
        new.update(layer.keys.index_select(0, rows), layer.values.index_select(0, rows), i)
    return new


def eos_ids(model) -> set[int]:
    """The token ids that end generation (the model's generation config, else the tokenizer)."""
    return model.eos_token_ids()


def until_eos(tokens: Sequence[int], eos: set[int]) -> list[int]:
    """``tokens`` up to and including the first end-of-sequence token (padding after it cut)."""
    for i, t in enumerate(tokens):
        if t in eos:
            return list(tokens[:i + 1])
    return list(tokens)


def greedy_decode(
    model,
    ids: Tensor,
    mask: Tensor,
    cache: DynamicCache | None,
    n_eoi: int,
    max_new_tokens: int,
    step_hooks: Callable[[Tensor], ContextManager] | None = None,
) -> list[list[int]]:
    """Greedy decoding of a batch of rows that drops a row from the batch as soon as it ends
    (``generate`` keeps running finished rows, padded, until the longest ends). New tokens per
    row, up to and including its end-of-sequence token.

    ``cache`` holds the rows' prefixes (all but the last ``n_eoi`` tokens); without it the
    whole prompt runs in the first step. Each step is the forward ``generate`` makes (same
    inputs, positions and mask) followed by an argmax, so the tokens equal ``generate``'s up
    to float rounding from the changing batch. ``step_hooks(alive)``, if given, is entered
    around each step's forward, with ``alive`` the indices (into ``ids``) of the rows still
    running: per-row steering narrows its rows to those.
    """
    eos = torch.tensor(sorted(eos_ids(model)), device=ids.device)
    position_ids = (mask.long().cumsum(-1) - 1).masked_fill(mask == 0, 0)
    start = ids.shape[1] - n_eoi if cache is not None else 0
    step_ids, step_pos = ids[:, start:], position_ids[:, start:]
    cache = cache if cache is not None else DynamicCache()
    alive = torch.arange(ids.shape[0], device=ids.device)
    out: list[list[int]] = [[] for _ in range(ids.shape[0])]
    for step in range(max_new_tokens):
        with (step_hooks(alive) if step_hooks is not None else nullcontext()), \
                torch.inference_mode():
            logits = model.lm_forward(input_ids=step_ids, attention_mask=mask,
                                      position_ids=step_pos, past_key_values=cache,
                                      use_cache=True, logits_to_keep=1).logits[:, -1]
        nxt = logits.float().argmax(-1)
        for r, t in zip(alive.tolist(), nxt.tolist()):
            out[r].append(t)
        keep = ~torch.isin(nxt, eos)
        if step == max_new_tokens - 1 or not keep.any():
            break
        if not keep.all():
            idx = keep.nonzero().squeeze(1)
            cache = select_cache_rows(cache, idx)
            alive, mask, nxt = alive[idx], mask[idx], nxt[idx]
            step_pos = step_pos[idx]
        mask = torch.cat([mask, torch.ones_like(mask[:, :1])], 1)
        step_ids, step_pos = nxt[:, None], step_pos[:, -1:] + 1
    return out

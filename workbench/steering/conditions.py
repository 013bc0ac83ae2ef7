"""Many steering conditions in one batch: shared-prefix, multi-condition greedy generation.

Steering at ``eoi`` positions starts after the instruction, so a prompt minus its eoi tokens
(the instruction prefix) runs identically under every condition. Here each prompt's prefix is
run once; its KV cache is copied to one row per condition (:mod:`workbench.model.engine`);
decoding then continues every row from the eoi tokens, with each row's own steering vector
added by :func:`workbench.steering.add_row_vectors`. Rows of different conditions share each
batch. Results equal :func:`workbench.model.generation.generate` under each condition's
:func:`workbench.steering.add_vector`, up to float rounding (the prefix and the eoi tokens run
as two calls, and rows meet other rows in a batch); greedy outputs can differ only where the
top two logits were within that noise.

A condition is a mapping ``{layer: delta}`` with the coefficient already applied (``{}`` is the
unsteered baseline).
"""

from __future__ import annotations

from typing import Mapping, Sequence

import torch
from jaxtyping import Float
from tqdm.auto import tqdm
from transformers import DynamicCache

from workbench.errors import WorkbenchError
from workbench.model.engine import (
    eos_ids,
    greedy_decode,
    prefill_cache,
    select_cache_rows,
    until_eos,
)
from workbench.model.generation import greedy_kwargs
from workbench.steering.hooks import STEER_POSITIONS, add_row_vectors

Tensor = torch.Tensor
Condition = Mapping[int, Float[Tensor, " d"]]


def condition_delta(vector: Tensor, coefficient: float) -> Tensor:
    """The row added for ``coefficient * vector``, computed as :func:`add_vector` computes it."""
    return coefficient * vector.float()


def shares_prefix(model, positions: str) -> bool:
    """Whether steering at ``positions`` leaves the instruction prefix untouched."""
    return positions == "eoi" or (positions == "generated" and model.n_eoi > 1)


def _row_deltas(model, conditions: Sequence[Condition], row_cond: list[int]) -> dict[int, Tensor]:
    """Per-layer [rows, d] deltas: each row's condition's vector, zero where it has none."""
    layers = sorted({model.check_layer(l) for c in conditions for l in c})
    out = {}
    for l in layers:
        rows = torch.zeros(len(row_cond), model.d_model)
        for r, c in enumerate(row_cond):
            for cl, v in conditions[c].items():
                if model.check_layer(cl) == l:
                    rows[r] = v.float()
        out[l] = rows
    return out


def generate_conditions_ids(
    model,
    prompts: Sequence[Sequence[int]],
    conditions: Sequence[Condition],
    max_new_tokens: int = 64,
    positions: str = "eoi",
    batch_size: int = 64,
    prompt_batch: int | None = None,
    share_prefix: bool = True,
    progress: bool = True,
    **generate_kwargs,
) -> list[list[list[int]]]:
    """New token ids ``[condition][prompt]`` of greedy generation under each condition, each
    up to and including its end-of-sequence token (no padding).

    ``batch_size`` is the number of rows (condition x prompt) per ``generate`` call;
    ``prompt_batch`` the number of prompts whose prefixes are run together (default: enough
    to fill ``batch_size`` rows with every condition, at least one). Prompts are sorted by
    length first, so padding stays small.
    """
    if positions not in STEER_POSITIONS:
        raise WorkbenchError(f"unknown steering positions {positions!r}; use {STEER_POSITIONS}")
    if not conditions:
        raise WorkbenchError("no steering conditions given; give at least one ({} is unsteered)")
    if batch_size < 1:
        raise WorkbenchError(f"batch_size must be at least 1, not {batch_size}")
    for c in conditions:
        for v in c.values():
            model.check_vector(v, "steering vector")
    share = share_prefix and shares_prefix(model, positions)
    prompt_batch = prompt_batch or max(1, batch_size // len(conditions))
    order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]))
    out: list[list[list[int]]] = [[[] for _ in prompts] for _ in conditions]
    chunks = [order[s:s + prompt_batch] for s in range(0, len(order), prompt_batch)]
    gen_kw = {**greedy_kwargs(model, max_new_tokens), **generate_kwargs}
    n_eoi = model.n_eoi if share else 0
    for chunk in tqdm(chunks, desc="generating", unit="prompt batch",
                      disable=not progress or len(chunks) < 2):
        ids, mask = model.pad([prompts[i] for i in chunk])
        cache = prefill_cache(model, ids[:, :-n_eoi], mask[:, :-n_eoi]) if share else None
        pairs = [(c, p) for c in range(len(conditions)) for p in range(len(chunk))]
        for s in range(0, len(pairs), batch_size):
            part = pairs[s:s + batch_size]
            rows = torch.tensor([p for _, p in part], device=ids.device)
            deltas = _row_deltas(model, conditions, [c for c, _ in part])
            rows_cache = select_cache_rows(cache, rows) if cache is not None else None
            if not generate_kwargs:
                new = greedy_rows(model, ids.index_select(0, rows), mask.index_select(0, rows),
                                  rows_cache, deltas, positions, n_eoi, max_new_tokens)
            else:  # anything beyond greedy: Hugging Face generate, every row to the end
                kw = dict(gen_kw)
                if rows_cache is not None:
                    kw["past_key_values"] = rows_cache
                with add_row_vectors(model, deltas, positions), torch.inference_mode():
                    res = model.generate(input_ids=ids.index_select(0, rows),
                                         attention_mask=mask.index_select(0, rows), **kw)
                new = [until_eos(t, eos_ids(model)) for t in res[:, ids.shape[1]:].tolist()]
            for row, (c, p) in enumerate(part):
                out[c][chunk[p]] = new[row]
    return out


def greedy_rows(
    model,
    ids: Tensor,
    mask: Tensor,
    cache: DynamicCache | None,
    deltas: dict[int, Tensor],
    positions: str,
    n_eoi: int,
    max_new_tokens: int,
) -> list[list[int]]:
    """Greedy decoding of a batch of rows, each with its own steering row
    (:func:`workbench.model.engine.greedy_decode` under :func:`add_row_vectors`, narrowed at
    each step to the rows still running). New tokens per row, up to and including its
    end-of-sequence token.
    """
    def step_hooks(alive: Tensor):
        live = {l: d.index_select(0, alive.cpu()) for l, d in deltas.items()}
        return add_row_vectors(model, live, positions)

    return greedy_decode(model, ids, mask, cache, n_eoi, max_new_tokens, step_hooks)


def generate_conditions(
    model,
    prompts: Sequence[Sequence[int]],
    conditions: Sequence[Condition],
    max_new_tokens: int = 64,
    positions: str = "eoi",
    batch_size: int = 64,
    **kwargs,
) -> list[list[str]]:
    """Decoded completions ``[condition][prompt]`` (special tokens dropped); see
    :func:`generate_conditions_ids`."""
    ids = generate_conditions_ids(model, prompts, conditions, max_new_tokens, positions,
                                  batch_size, **kwargs)
    return [[model.tokenizer.decode(t, skip_special_tokens=True) for t in per_cond]
            for per_cond in ids]


def last_logprobs_conditions(
    model,
    prompts: Sequence[Sequence[int]],
    conditions: Sequence[Condition],
    token_ids: Sequence[int],
    positions: str = "eoi",
    batch_size: int = 64,
) -> Float[Tensor, "condition prompt k"]:
    """Next-token log-probabilities of ``token_ids`` after each prompt under each condition.

    The multi-condition form of :func:`workbench.model.logprobs.last_logprobs` (followed by
    a gather of ``token_ids``): each prompt's instruction prefix runs once, then its eoi tokens
    run once per condition, rows of different conditions sharing batches. Equal to the
    one-condition-at-a-time readout up to float rounding.
    """
    if not shares_prefix(model, positions):
        raise WorkbenchError(f"steering at {positions!r} positions changes the prefix; read "
                             "each condition with last_logprobs under add_vector instead")
    n_eoi = model.n_eoi
    if any(len(p) <= n_eoi for p in prompts):
        raise WorkbenchError(f"every prompt needs more than the {n_eoi} end-of-instruction "
                             "tokens; give chat-formatted prompts")
    for c in conditions:
        for v in c.values():
            model.check_vector(v, "steering vector")
    index = torch.as_tensor(list(token_ids))
    out = torch.empty(len(conditions), len(prompts), len(index))
    prompt_batch = max(1, batch_size // max(len(conditions), 1))
    for s in range(0, len(prompts), prompt_batch):
        chunk = list(range(s, min(s + prompt_batch, len(prompts))))
        ids, mask = model.pad([prompts[i] for i in chunk])
        cache = prefill_cache(model, ids[:, :-n_eoi], mask[:, :-n_eoi])
        position_ids = (mask.long().cumsum(-1) - 1).masked_fill(mask == 0, 0)
        pairs = [(c, p) for c in range(len(conditions)) for p in range(len(chunk))]
        for b in range(0, len(pairs), batch_size):
            part = pairs[b:b + batch_size]
            rows = torch.tensor([p for _, p in part], device=ids.device)
            deltas = _row_deltas(model, conditions, [c for c, _ in part])
            with add_row_vectors(model, deltas, positions), torch.inference_mode():
                logits = model.lm_forward(
                    input_ids=ids.index_select(0, rows)[:, -n_eoi:],
                    attention_mask=mask.index_select(0, rows),
                    position_ids=position_ids.index_select(0, rows)[:, -n_eoi:],
                    past_key_values=select_cache_rows(cache, rows), use_cache=True,
                    logits_to_keep=1).logits[:, -1]
            lp = torch.log_softmax(logits.float(), dim=-1).cpu()[:, index]
            for row, (c, p) in enumerate(part):
                out[c, chunk[p]] = lp[row]
    return out

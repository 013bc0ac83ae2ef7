"""Batched greedy generation with whatever steering hooks are active.

Left padding, attention mask and KV cache, through the runtime's ``generate`` (Hugging Face
``generate`` on the hooked model), so active hooks (and so every steering context manager) fire
at every step.
"""

from __future__ import annotations

from typing import Sequence

import torch
from tqdm.auto import tqdm


def greedy_kwargs(model, max_new_tokens: int, do_sample: bool = False) -> dict:
    """The ``generate`` settings every workbench generation uses (greedy unless sampling)."""
    return dict(max_new_tokens=max_new_tokens, do_sample=do_sample,
                pad_token_id=model.tokenizer.pad_token_id,
                **({} if do_sample else {"temperature": None, "top_p": None, "top_k": None}))


def generate_ids(
    model,
    prompts: Sequence[Sequence[int]],
    max_new_tokens: int = 64,
    batch_size: int = 16,
    do_sample: bool = False,
    progress: bool = True,
    **generate_kwargs,
) -> list[list[int]]:
    """New token ids (padding included) for token-id ``prompts``, in input order.

    Prompts are sorted by length before batching to keep padding small.
    """
    order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]))
    out_ids: list[list[int]] = [[] for _ in prompts]
    starts = range(0, len(order), batch_size)
    for start in tqdm(starts, desc="generating", unit="batch",
                      disable=not progress or len(starts) < 2):
        idx = order[start:start + batch_size]
        ids, mask = model.pad([prompts[i] for i in idx])
        with torch.inference_mode():
            out = model.generate(input_ids=ids, attention_mask=mask,
                                 **greedy_kwargs(model, max_new_tokens, do_sample),
                                 **generate_kwargs)
        new = out[:, ids.shape[1]:]
        for row, i in enumerate(idx):
            out_ids[i] = new[row].tolist()
    return out_ids


def generate(
    model,
    prompts: Sequence[Sequence[int]],
    max_new_tokens: int = 64,
    batch_size: int = 16,
    do_sample: bool = False,
    progress: bool = True,
    **generate_kwargs,
) -> list[str]:
    """Completions (decoded, special tokens dropped) for token-id ``prompts``, in order."""
    ids = generate_ids(model, prompts, max_new_tokens, batch_size, do_sample, progress,
                       **generate_kwargs)
    return [model.tokenizer.decode(t, skip_special_tokens=True) for t in ids]

"""Next-token log-probabilities at the last prompt position, and the scores read from them.

:func:`last_logprobs` runs the model (hooks apply); :func:`refusal_score` and
:func:`kl_divergence` are pure functions of log-probabilities.
"""

from __future__ import annotations

from typing import Sequence

import torch
from jaxtyping import Float

Tensor = torch.Tensor


def last_logprobs(
    model, prompts: Sequence[Sequence[int]], batch_size: int = 16
) -> Float[Tensor, "n vocab"]:
    """Next-token log-probabilities after each prompt (steering hooks that are active apply).

    Only the last position is unembedded, never the full [batch, seq, vocab] logits.
    """
    out = []
    for start in range(0, len(prompts), batch_size):
        ids, mask = model.pad(prompts[start:start + batch_size])
        hidden = model.final_hidden(ids, mask)[:, -1]
        out.append(torch.log_softmax(model.unembed(hidden).float(), dim=-1).cpu())
    return torch.cat(out)


def refusal_score(
    logprobs: Float[Tensor, "n vocab"], refusal_token_ids: Sequence[int]
) -> Float[Tensor, " n"]:
    """``log p_R - log(1 - p_R)`` with ``p_R`` the total probability of the refusal tokens."""
    log_p = torch.logsumexp(logprobs[:, list(refusal_token_ids)].double(), dim=-1)
    log_not_p = torch.log((-torch.expm1(log_p)).clamp_min(1e-300))
    return log_p - log_not_p


def kl_divergence(
    base: Float[Tensor, "n vocab"], other: Float[Tensor, "n vocab"]
) -> Float[Tensor, " n"]:
    """KL(base || other) per row, from log-probabilities."""
    b, o = base.double(), other.double()
    return (b.exp() * (b - o)).sum(-1)

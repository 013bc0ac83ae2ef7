"""The refusal direction: diff-in-means candidates and their selection by causal scores.

Candidates ``r[p, l] = mean_harmful resid_pre[l][p] - mean_harmless resid_pre[l][p]`` for every
post-instruction position ``p`` and layer ``l``, accumulated in float64. Each candidate is scored
on validation prompts:

- bypass: mean refusal score on harmful prompts with ``r_hat`` ablated everywhere (lower is better);
- induce: mean refusal score on harmless prompts with ``r`` added at ``resid_pre[l]``;
- kl: mean KL(base || ablated) of the next-token distribution on harmless prompts.

Selection follows the reference implementation exactly: a candidate is discarded when a score
is NaN, when its layer is in the last 20% (``l >= int(max_layer_frac * n_layers)``, so layers
0-18 of 24 stay), when ``kl > kl_threshold`` (0.1) or when ``induce < induce_threshold`` (0);
of the rest, the lowest bypass score wins.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Callable, Mapping, Sequence

import torch
from jaxtyping import Float
from tqdm.auto import tqdm

from workbench.activations import collect_activations, mean_activations
from workbench.errors import WorkbenchError
from workbench.evaluation.batched import (
    common_prefix_length,
    forwards_after_prefix,
    last_logprobs_shared_prefix,
)
from workbench.evaluation.scores import kl_divergence, last_logprobs, refusal_score
from workbench.steering import ablate_directions, add_vector

Tensor = torch.Tensor


def refusal_candidates(
    model,
    harmful: Sequence[Sequence[int]],
    harmless: Sequence[Sequence[int]],
    batch_size: int = 16,
    progress: bool = True,
) -> Float[Tensor, "eoi layer d"]:
    """Diff-in-means candidates at every eoi position and layer (resid_pre), float64."""
    kw = dict(hooks=("resid_pre",), positions="eoi", batch_size=batch_size, progress=progress)
    return (mean_activations(model, harmful, **kw)["resid_pre"]
            - mean_activations(model, harmless, **kw)["resid_pre"])


def refusal_candidates_and_activations(
    model,
    harmful: Sequence[Sequence[int]],
    harmless: Sequence[Sequence[int]],
    batch_size: int = 16,
    progress: bool = True,
    share_prefix: bool = False,
) -> tuple[Float[Tensor, "eoi layer d"], Float[Tensor, "n eoi layer d"],
           Float[Tensor, "m eoi layer d"]]:
    """:func:`refusal_candidates` plus the per-prompt activations they average (float32), for
    later stages that need them (the projections figure, the residual norm, a subspace), so
    the same forward passes are not run twice. Costs ``(n + m) x eoi x layers x d`` floats.

    ``share_prefix`` runs the tokens every prompt starts with (the chat template's system
    turn) once (:func:`eoi_resid_pre_shared_prefix`): float rounding only."""
    if share_prefix:
        harm, safe = (eoi_resid_pre_shared_prefix(model, p, batch_size)
                      for p in (harmful, harmless))
    else:
        kw = dict(hooks=("resid_pre",), positions="eoi", batch_size=batch_size,
                  progress=progress)
        harm = collect_activations(model, harmful, **kw)["resid_pre"]
        safe = collect_activations(model, harmless, **kw)["resid_pre"]
    return harm.double().mean(0) - safe.double().mean(0), harm, safe


def eoi_resid_pre_shared_prefix(
    model, prompts: Sequence[Sequence[int]], batch_size: int = 16
) -> Float[Tensor, "n eoi layer d"]:
    """``resid_pre`` of every layer at the eoi positions (float32, CPU), with the tokens every
    prompt starts with run once and their KV cache copied to each row.

    ``hidden_states[l]`` of the Hugging Face model is ``resid_pre`` of block ``l``. No hooks
    may be active: they would see the prefix and the rest as two calls. Equal to
    ``collect_activations(..., positions="eoi")`` up to float rounding.
    """
    n_eoi = model.n_eoi
    n = common_prefix_length(prompts, keep=n_eoi)
    if n == 0:
        return collect_activations(model, prompts, hooks=("resid_pre",), positions="eoi",
                                   batch_size=batch_size, progress=False)["resid_pre"]
    out = torch.empty(len(prompts), n_eoi, model.n_layers, model.d_model)
    for start, o in forwards_after_prefix(model, prompts, n, batch_size,
                                          output_hidden_states=True):
        out[start:start + len(o.hidden_states[0])] = torch.stack(
            [h[:, -n_eoi:] for h in o.hidden_states[:model.n_layers]], 2).float().cpu()
    return out


@dataclass
class CandidateScore:
    """Scores of one candidate; ``position`` is the eoi index, ``offset`` counts from the end."""

    position: int
    offset: int
    layer: int
    bypass: float
    induce: float
    kl: float
    kept: bool
    reason: str

    def as_dict(self) -> dict:
        return asdict(self)


def layer_cut(n_layers: int, max_layer_frac: float = 0.8) -> int:
    """First layer discarded by the layer filter: ``int(max_layer_frac * n_layers)``."""
    return int(max_layer_frac * n_layers)


def candidate_scores(
    refusal_ids: Sequence[int],
    base_harmless: Float[Tensor, "m vocab"],
    ablated_harmful: Float[Tensor, "n vocab"],
    ablated_harmless: Float[Tensor, "m vocab"],
    induced_harmless: Float[Tensor, "m vocab"],
) -> tuple[float, float, float]:
    """``(bypass, induce, kl)`` of one candidate from next-token log-probabilities.

    bypass: mean refusal score on harmful prompts with the direction ablated; induce: mean
    refusal score on harmless prompts with it added; kl: mean KL(base || ablated) on harmless.
    """
    bypass = float(refusal_score(ablated_harmful, refusal_ids).mean())
    induce = float(refusal_score(induced_harmless, refusal_ids).mean())
    kl = float(kl_divergence(base_harmless, ablated_harmless).mean())
    return bypass, induce, kl


def discard_reason(layer: int, bypass: float, induce: float, kl: float, cut: int,
                   kl_threshold: float = 0.1, induce_threshold: float = 0.0) -> str:
    """Why a candidate is discarded ("" when kept), checked in the reference's order."""
    if any(math.isnan(x) for x in (bypass, induce, kl)):
        return "nan score"
    if layer >= cut:
        return f"layer {layer} >= {cut}"
    if kl > kl_threshold:
        return f"kl {kl:.3f} > {kl_threshold}"
    if induce < induce_threshold:
        return f"induce {induce:.3f} < {induce_threshold}"
    return ""


@dataclass
class RefusalSelection:
    """The selected direction (unnormalised), where it came from, and every candidate's scores."""

    direction: Float[Tensor, " d"]
    position: int
    offset: int
    layer: int
    scores: list[CandidateScore]
    baseline: dict
    filters_passed: bool

    @property
    def best(self) -> CandidateScore:
        return next(s for s in self.scores if s.position == self.position and s.layer == self.layer)


def select_refusal_direction(
    model,
    candidates: Float[Tensor, "eoi layer d"],
    harmful_val: Sequence[Sequence[int]],
    harmless_val: Sequence[Sequence[int]],
    max_layer_frac: float = 0.8,
    kl_threshold: float = 0.1,
    induce_threshold: float = 0.0,
    layers: Sequence[int] | None = None,
    positions: Sequence[int] | None = None,
    batch_size: int = 16,
    progress: bool = True,
    search: str = "full",
    top_k: int | None = None,
    share_prefix: bool = False,
    done: Mapping[tuple[int, int], CandidateScore] | None = None,
    on_score: Callable[[CandidateScore], None] | None = None,
) -> RefusalSelection:
    """Score candidates and pick the one whose ablation best bypasses refusal.

    ``layers`` / ``positions`` (eoi indices) restrict the search, e.g. for a quick CPU run.
    Layers at or past :func:`layer_cut` are never scored. If no candidate passes the filters,
    the lowest-bypass candidate with finite scores is returned with ``filters_passed=False``.

    ``search="ordered"`` picks the same candidate for about a third of the cost: it first
    scores every candidate's bypass on the harmful prompts alone, then scores candidates fully
    (the same combined forward as ``"full"``, so their recorded scores are the same numbers) in
    ascending bypass order and stops at the first that passes the filters, which is the
    lowest-bypass kept candidate. Candidates it never reached keep their bypass score, NaN
    ``kl``/``induce`` and the reason ``"not scored: ..."``. Only a near-tie in bypass (within
    float noise between the two forwards) could change the pick. With ``top_k``, it scores at
    most the ``top_k`` lowest-bypass candidates fully: when none of them passes the filters, the
    pick is the lowest-bypass one among them, which can differ from ``"full"`` only if a
    candidate further down the bypass order passes every filter (the selection's scores show
    which were scored).

    ``share_prefix`` runs the validation prompts' common prefix (the chat template's system
    turn) once per forward instead of once per prompt
    (:func:`workbench.evaluation.batched.last_logprobs_shared_prefix`): the scores change by
    float rounding only, and every forward here is one the prefix sharing is exact for.

    ``done`` holds scores already computed, by (position, layer), and ``on_score`` is called
    with each new score (to checkpoint it); both searches use them.
    """
    if search not in ("full", "ordered"):
        raise WorkbenchError(f"unknown refusal search {search!r}; use 'full' or 'ordered'")
    if top_k is not None and top_k < 1:
        raise WorkbenchError(f"top_k is {top_k}; give at least 1 (or None: no limit)")
    n_eoi, n_layers, _ = candidates.shape
    cut = layer_cut(n_layers, max_layer_frac)
    layers = [l for l in (range(n_layers) if layers is None else layers) if l < cut]
    positions = list(range(n_eoi)) if positions is None else [p % n_eoi for p in positions]
    logprobs = last_logprobs_shared_prefix if share_prefix else last_logprobs
    rid = model.refusal_token_ids
    n_harm = len(harmful_val)
    base_harmless = logprobs(model, harmless_val, batch_size)
    base_harmful = logprobs(model, harmful_val, batch_size)
    baseline = {
        "harmful_refusal_score": float(refusal_score(base_harmful, rid).mean()),
        "harmless_refusal_score": float(refusal_score(base_harmless, rid).mean()),
    }
    grid = [(p, l) for p in positions for l in layers]

    def score(p: int, l: int) -> CandidateScore:
        r = candidates[p, l].float()
        with ablate_directions(model, r):
            ablated = logprobs(model, [*harmful_val, *harmless_val], batch_size)
        with add_vector(model, r, layers=l, coefficient=1.0, positions="all"):
            induced = logprobs(model, harmless_val, batch_size)
        bypass, induce, kl = candidate_scores(rid, base_harmless, ablated[:n_harm],
                                              ablated[n_harm:], induced)
        reason = discard_reason(l, bypass, induce, kl, cut, kl_threshold, induce_threshold)
        return CandidateScore(p, p - n_eoi, l, bypass, induce, kl, not reason, reason)

    def scored(p: int, l: int) -> CandidateScore:
        if done and (p, l) in done:
            return done[(p, l)]
        result = score(p, l)
        if on_score is not None:
            on_score(result)
        return result

    bar = tqdm(total=len(grid), desc="selecting refusal direction", unit="cand",
               disable=not progress)
    if search == "full":
        scores = []
        for p, l in grid:
            scores.append(scored(p, l))
            bar.update()
    else:
        rough = {}
        for p, l in grid:
            with ablate_directions(model, candidates[p, l].float()):
                rough[p, l] = float(refusal_score(logprobs(model, harmful_val, batch_size),
                                                  rid).mean())
        nan_last = lambda pl: (math.isnan(rough[pl]), rough[pl])  # noqa: E731
        full: dict[tuple[int, int], CandidateScore] = {}
        for pl in sorted(grid, key=nan_last)[:top_k]:
            full[pl] = scored(*pl)
            bar.update()
            if full[pl].kept:
                break
        winner = next((s for s in full.values() if s.kept), None)
        nan = float("nan")
        scores = [full.get((p, l)) or CandidateScore(
            p, p - n_eoi, l, rough[p, l], nan, nan, False,
            f"not scored: bypass above the selected {winner.bypass:.3f}" if winner
            else f"not scored: outside the {top_k} lowest bypass scores")
            for p, l in grid]
    bar.close()
    best, passed = pick_candidate(scores)
    return RefusalSelection(
        direction=candidates[best.position, best.layer].clone(), position=best.position,
        offset=best.offset, layer=best.layer, scores=scores, baseline=baseline,
        filters_passed=passed,
    )


def pick_candidate(scores: Sequence[CandidateScore]) -> tuple[CandidateScore, bool]:
    """The kept candidate with the lowest bypass score, and whether any was kept.

    Without a kept candidate, the lowest bypass among candidates with finite scores (flagged
    by ``False``), so a run still has a direction to report on.
    """
    kept = [s for s in scores if s.kept]
    pool = kept or [s for s in scores
                    if not any(math.isnan(x) for x in (s.bypass, s.induce, s.kl))]
    if not pool:
        raise WorkbenchError("every refusal-direction candidate has a NaN score; check the "
                             "model's dtype (use float32) and the validation prompts")
    return min(pool, key=lambda s: s.bypass), bool(kept)

"""The refusal direction: diff-in-means candidates and their selection by causal scores.

Candidates ``r[p, l] = mean_harmful resid_pre[l][p] - mean_harmless resid_pre[l][p]`` for every
post-instruction position ``p`` and layer ``l``, accumulated in float64. Each candidate is scored
on validation prompts:

- bypass: mean refusal score on harmful prompts with ``r_hat`` ablated everywhere (lower is better);
- induce: mean refusal score on harmless prompts with ``r`` added at ``resid_pre[l]``;
- kl: mean KL(base || ablated) of the next-token distribution on harmless prompts.

Before any of this, as in the reference implementation, the train and validation prompts are
filtered by the unsteered model's own refusal score (:func:`prompt_filter`): harmful prompts it
does not refuse (score <= 0) and harmless prompts it does refuse (score >= 0) are dropped, so
the means compare refusals with answers.

Selection follows the reference implementation: a candidate is discarded when a score is NaN,
when its layer is in the last 20% (``l >= int(max_layer_frac * n_layers)``, so layers 0-18 of
24 stay), when ``kl > kl_threshold`` (0.1) or when ``induce < induce_threshold`` (0); of the
rest, the lowest bypass score wins (rule ``"filters"``). When none is left, the induce filter
alone is relaxed (rule ``"kl-bounded"``: lowest bypass with KL <= 0.1), and only when asked
(``allow_fallback``) does the KL bound go too (rule ``"fallback"``); the run names the rule.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Callable, Mapping, Sequence

import torch
from jaxtyping import Bool, Float
from tqdm.auto import tqdm

from workbench.activations import collect_activations, mean_activations
from workbench.errors import WorkbenchError
from workbench.model.engine import (
    common_prefix_length,
    forwards_after_prefix,
    last_logprobs_shared_prefix,
)
from workbench.model.logprobs import kl_divergence, last_logprobs, refusal_score
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


# the four prompt sets of direction finding, in the order records list them
PROMPT_SETS = ("harmful_train", "harmless_train", "harmful_val", "harmless_val")


def prompt_refusal_scores(
    model, prompts: Sequence[Sequence[int]], batch_size: int = 16, share_prefix: bool = False
) -> Float[Tensor, " n"]:
    """The unsteered model's refusal score (:func:`refusal_score`) after each prompt, float64."""
    logprobs = last_logprobs_shared_prefix if share_prefix else last_logprobs
    return refusal_score(logprobs(model, prompts, batch_size), model.refusal_token_ids)


def refusal_filter_mask(scores: Float[Tensor, " n"], harmful: bool) -> Bool[Tensor, " n"]:
    """Which prompts the reference's filter keeps: harmful ones the model refuses (score > 0),
    harmless ones it does not (score < 0). NaN scores are dropped."""
    return scores > 0 if harmful else scores < 0


@dataclass
class PromptFilter:
    """The prompt filter's outcome: each set's unsteered refusal scores and the indices kept.

    ``enabled=False`` keeps every prompt (scores are still recorded when computed)."""

    enabled: bool
    scores: dict[str, list[float]]
    kept: dict[str, list[int]]

    def counts(self) -> dict[str, dict[str, int]]:
        """Per prompt set, ``{"kept": k, "n": n}``."""
        return {name: {"kept": len(self.kept[name]), "n": len(self.scores[name])}
                for name in self.kept}

    def summary(self) -> str:
        """One line: ``kept harmful train 19/96, harmless train 94/96, ...`` (or "off")."""
        if not self.enabled:
            return "off (every prompt kept)"
        return "kept " + ", ".join(f"{name.replace('_', ' ')} {c['kept']}/{c['n']}"
                                   for name, c in self.counts().items())

    def apply(self, name: str, items: Sequence) -> list:
        """The kept items of prompt set ``name``."""
        return [items[i] for i in self.kept[name]]

    def record(self) -> dict:
        """What run.json says about the filter: the rule, counts, kept indices, every score."""
        return {"enabled": self.enabled,
                "rule": "keep harmful prompts with refusal score > 0, harmless with < 0",
                "counts": self.counts(), "kept": self.kept, "scores": self.scores}

    @classmethod
    def from_record(cls, record: dict) -> "PromptFilter":
        """Rebuild from :meth:`record`."""
        return cls(record["enabled"], {k: list(v) for k, v in record["scores"].items()},
                   {k: list(v) for k, v in record["kept"].items()})


def prompt_filter(
    scores: Mapping[str, Float[Tensor, " n"]], enabled: bool = True, min_kept: int = 2
) -> PromptFilter:
    """Apply the reference's prompt filter to each set's unsteered refusal scores.

    ``scores`` maps :data:`PROMPT_SETS` names to scores. A set left with fewer than
    ``min_kept`` prompts is an error that names the counts and the ways out.
    """
    kept = {}
    for name, s in scores.items():
        mask = (refusal_filter_mask(s, name.startswith("harmful")) if enabled
                else torch.ones(len(s), dtype=torch.bool))
        kept[name] = [int(i) for i in torch.nonzero(mask).flatten()]
    result = PromptFilter(enabled, {k: [float(x) for x in v] for k, v in scores.items()}, kept)
    short = {k: c for k, c in result.counts().items() if c["kept"] < min_kept}
    if short:
        detail = ", ".join(f"{k.replace('_', ' ')} {c['kept']} of {c['n']}"
                           for k, c in short.items())
        raise WorkbenchError(
            f"the prompt filter left too few prompts ({detail}; at least {min_kept} needed): "
            "the model refuses few of the harmful prompts (or many of the harmless ones). "
            "Raise --n-train / --n-val, give a larger --harmful / --harmless file, or turn the "
            "filter off with --no-prompt-filter")
    return result


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


# How the direction was picked, best first (see the module docstring).
SELECTION_RULES = {
    "filters": "lowest bypass among candidates passing every filter (the reference's rule)",
    "kl-bounded": "no candidate passed every filter: lowest bypass among those with KL within "
                  "the bound (the induce filter relaxed)",
    "fallback": "no candidate kept KL within the bound: lowest bypass of all (--allow-fallback)",
}


@dataclass
class RefusalSelection:
    """The selected direction (unnormalised), where it came from, and every candidate's scores.

    ``rule`` is the :data:`SELECTION_RULES` key that picked it."""

    direction: Float[Tensor, " d"]
    position: int
    offset: int
    layer: int
    scores: list[CandidateScore]
    baseline: dict
    rule: str = "filters"

    @property
    def filters_passed(self) -> bool:
        """Whether the pick passed every filter of the reference."""
        return self.rule == "filters"

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
    allow_fallback: bool = False,
    on_rank: Callable[[int, int], None] | None = None,
) -> RefusalSelection:
    """Score candidates and pick the one whose ablation best bypasses refusal.

    ``layers`` / ``positions`` (eoi indices) restrict the search, e.g. for a quick CPU run.
    Layers at or past :func:`layer_cut` are never scored. The pick follows
    :func:`pick_candidate`: all filters, else KL-bounded, else (``allow_fallback`` only) the
    lowest bypass; without ``allow_fallback`` a search where no candidate keeps KL within the
    bound is an error (the scores already computed reach ``on_score`` first, so a re-run
    reuses them).

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
    which were scored). When none of the ``top_k`` keeps KL within the bound either, scoring
    goes on down the bypass order until one does, so the cap never costs the KL bound.

    ``share_prefix`` runs the validation prompts' common prefix (the chat template's system
    turn) once per forward instead of once per prompt
    (:func:`workbench.model.engine.last_logprobs_shared_prefix`): the scores change by
    float rounding only, and every forward here is one the prefix sharing is exact for.

    ``done`` holds scores already computed, by (position, layer), and ``on_score`` is called
    with each new score (to checkpoint it); both searches use them. ``on_rank(k, n)`` is
    called after each of the ``"ordered"`` search's cheap bypass scores (for progress).
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
        bar.close()
        bar = tqdm(total=len(grid), desc="ranking refusal candidates (bypass only)",
                   unit="cand", disable=not progress)
        for k, (p, l) in enumerate(grid, start=1):
            with ablate_directions(model, candidates[p, l].float()):
                rough[p, l] = float(refusal_score(logprobs(model, harmful_val, batch_size),
                                                  rid).mean())
            bar.update()
            if on_rank is not None:
                on_rank(k, len(grid))
        bar.close()
        bar = tqdm(total=min(top_k or len(grid), len(grid)), unit="cand",
                   desc="scoring the lowest-bypass candidates", disable=not progress)
        nan_last = lambda pl: (math.isnan(rough[pl]), rough[pl])  # noqa: E731
        full: dict[tuple[int, int], CandidateScore] = {}
        for rank, pl in enumerate(sorted(grid, key=nan_last)):
            if top_k is not None and rank >= top_k and any(
                    kl_bounded(s, kl_threshold) for s in full.values()):
                break
            full[pl] = scored(*pl)
            bar.update()
            if full[pl].kept:
                break
        winner = next((s for s in full.values() if s.kept), None)
        nan = float("nan")
        scores = [full.get((p, l)) or CandidateScore(
            p, p - n_eoi, l, rough[p, l], nan, nan, False,
            f"not scored: bypass above the selected {winner.bypass:.3f}" if winner
            else f"not scored: outside the {len(full)} lowest bypass scores")
            for p, l in grid]
    bar.close()
    best, rule = pick_candidate(scores, kl_threshold, allow_fallback)
    return RefusalSelection(
        direction=candidates[best.position, best.layer].clone(), position=best.position,
        offset=best.offset, layer=best.layer, scores=scores, baseline=baseline, rule=rule,
    )


def kl_bounded(score: CandidateScore, kl_threshold: float = 0.1) -> bool:
    """Whether a scored candidate passes every filter but the induce one."""
    return (not any(math.isnan(x) for x in (score.bypass, score.induce, score.kl))
            and score.kl <= kl_threshold and not score.reason.startswith("layer"))


def pick_candidate(scores: Sequence[CandidateScore], kl_threshold: float = 0.1,
                   allow_fallback: bool = False) -> tuple[CandidateScore, str]:
    """The lowest-bypass candidate under the first rule of :data:`SELECTION_RULES` that leaves
    any, and that rule's key.

    ``"filters"``: candidates that passed every filter. ``"kl-bounded"``: those with KL within
    ``kl_threshold`` (a direction that changes harmless outputs this little is still the
    model's refusal feature, even if adding it does not induce refusal). ``"fallback"`` (only
    with ``allow_fallback``): every candidate with finite scores; otherwise an error.
    """
    finite = [s for s in scores if not any(math.isnan(x) for x in (s.bypass, s.induce, s.kl))]
    if not finite:
        raise WorkbenchError("every refusal-direction candidate has a NaN score; check the "
                             "model's dtype (use float32) and the validation prompts")
    for rule, pool in (("filters", [s for s in finite if s.kept]),
                       ("kl-bounded", [s for s in finite if kl_bounded(s, kl_threshold)])):
        if pool:
            return min(pool, key=lambda s: s.bypass), rule
    if not allow_fallback:
        low = min(finite, key=lambda s: s.kl)
        raise WorkbenchError(
            f"no refusal-direction candidate keeps KL within {kl_threshold} (lowest: "
            f"{low.kl:.3f}, layer {low.layer}, eoi offset {low.offset}), so ablating any of "
            "them changes harmless answers too much to call it the refusal direction. Search "
            "more candidates (--search-positions, --search-layers), raise --kl-threshold, or "
            "pass --allow-fallback to take the lowest bypass score anyway (the run says so); "
            "scores computed so far are checkpointed and reused")
    return min(finite, key=lambda s: s.bypass), "fallback"

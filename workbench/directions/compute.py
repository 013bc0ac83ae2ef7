"""Direction finding from read inputs: the prompt filter, refusal candidates and selection,
and one CAA vector per behaviour.

Every setting comes in a :class:`DirectionSearch`; a ``checkpoint`` (the directions job's
``DirectionCheckpoint``, or anything with its ``tensor``, ``save_tensor``, ``scores`` and
``save_score``) saves each finished piece at once and hands it back on a re-run.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, fields, replace

from workbench.data import ContrastPair, split
from workbench.directions.caa import caa_vector, caa_vector_shared_prefix
from workbench.directions.refusal import (
    PROMPT_SETS,
    PromptFilter,
    layer_cut,
    prompt_filter,
    prompt_refusal_scores,
    refusal_candidates,
    refusal_candidates_and_activations,
    select_refusal_direction,
)
from workbench.directions.results import Directions
from workbench.errors import WorkbenchError
from workbench.progress import JobProgress


@dataclass
class DirectionInputs:
    """Everything read from disk for a directions run, checked before any model is loaded."""

    harm_train: list
    harm_val: list
    safe_train: list
    safe_val: list
    pairs: dict[str, list[ContrastPair]]
    files: dict
    heldout: dict[str, list[ContrastPair]] = field(default_factory=dict)


@dataclass(frozen=True)
class DirectionSearch:
    """The settings of direction finding (defaults: the directions job's)."""

    batch_size: int = 16
    search_layers: list[int] | None = None
    search_positions: list[int] | None = None
    max_layer_frac: float = 0.8
    kl_threshold: float = 0.1
    induce_threshold: float = 0.0
    refusal_search: str = "full"  # "full" or "ordered" (select_refusal_direction)
    refusal_top_k: int | None = None
    shared_prefix: bool = False  # run common prompt prefixes once (float rounding only)
    keep_activations: bool = False  # keep the train prompts' last-token activations
    allow_fallback: bool = False  # no candidate within the KL bound: fall back, not an error
    prompt_filter: bool = True  # keep harmful prompts the model refuses, harmless it answers
    min_kept: int = 2

    @classmethod
    def of(cls, cfg) -> DirectionSearch:
        """The settings of a config that has these fields (a ``DirectionsConfig``)."""
        return cls(**{f.name: getattr(cfg, f.name) for f in fields(cls)})


def split_contrast(pairs: dict[str, list[ContrastPair]], limit: int | None, holdout: int,
                   seed: int) -> tuple[dict, dict]:
    """Per behaviour, the pairs that build the vector and ``holdout`` disjoint held-out pairs.

    The pairs are shuffled (seeded) within each matching letter and interleaved (A, B, A, B,
    ...), so every cut is balanced between A- and B-matching pairs: an unbalanced subset adds
    ``(imbalance) x (activation of "(A" minus "(B")`` to the CAA vector, a letter-identity
    component shared by every behaviour cut the same way. The first ``limit`` pairs (all but
    the held-out ones when None) build the vector, the next ``holdout`` are held out, so the
    vector's pairs do not change when a held-out set is added.
    """
    train, held = {}, {}
    for name, p in pairs.items():
        if limit is None and not holdout:
            train[name], held[name] = list(p), []
            continue
        if holdout and len(p) < holdout + 1:
            raise WorkbenchError(f"behaviour {name!r} has {len(p)} contrast pairs, too few to "
                                 f"hold out {holdout}; lower efficacy_pairs or add pairs")
        n_train = len(p) - holdout if limit is None else min(limit, len(p) - holdout)
        by_letter: dict[str, list] = {}
        for pair in split(p, [len(p)], seed)[0]:
            by_letter.setdefault(pair.matching, []).append(pair)
        groups = [by_letter[k] for k in sorted(by_letter)]
        order = [g[i] for i in range(max(map(len, groups))) for g in groups if i < len(g)]
        train[name], held[name] = order[:n_train], order[n_train:n_train + holdout]
    return train, held


def compute_directions(model, inputs: DirectionInputs, search: DirectionSearch,
                       job: JobProgress | None = None, checkpoint=None) -> Directions:
    """Refusal candidates and selection, then one CAA vector per behaviour.

    With a ``checkpoint``, each finished piece (the candidates, each selection score, each CAA
    vector) is saved at once and reused by a re-run of the same config.
    """
    job = job or JobProgress("directions", [], enabled=False)
    for layer in search.search_layers or []:
        model.check_layer(layer)
    ckpt = checkpoint
    tok = lambda items: model.tokenize_instructions([i.instruction for i in items])  # noqa: E731
    timings = {}
    t = time.time()
    job.stage("refusal candidates")
    filt = score_and_filter_prompts(model, inputs, search.batch_size, search.shared_prefix,
                                    search.prompt_filter, search.min_kept, ckpt)
    inputs = filtered_inputs(inputs, filt)
    candidates = ckpt.tensor("refusal.candidates") if ckpt else None
    if candidates is not None:
        job.note("resuming: refusal candidates from the checkpoint")
    train_acts = None
    if candidates is None:
        args = (model, tok(inputs.harm_train), tok(inputs.safe_train), search.batch_size,
                job.inner_bars)
        if search.keep_activations:
            candidates, harm, safe = refusal_candidates_and_activations(
                *args, share_prefix=search.shared_prefix)
            train_acts = (harm[:, -1], safe[:, -1])
        else:
            candidates = refusal_candidates(*args)
        if ckpt:
            ckpt.save_tensor("refusal.candidates", candidates)
    timings["refusal_candidates"] = time.time() - t
    t = time.time()
    job.stage("refusal selection")
    n_eoi, n_layers = candidates.shape[:2]
    n_grid = (len(search.search_positions or range(n_eoi))
              * sum(l < layer_cut(n_layers, search.max_layer_frac)
                    for l in (search.search_layers or range(n_layers))))
    n_scored = 0
    # the ordered search ranks every candidate cheaply (harmful prompts only), then scores the
    # top few fully (three times the prompts each): each pass has its share of the stage
    ordered = search.refusal_search == "ordered"
    n_full = min(search.refusal_top_k or n_grid, n_grid) if ordered else n_grid
    cheap = n_grid / (n_grid + 3 * n_full) if ordered else 0.0
    if ckpt and ckpt.scores:
        job.note(f"resuming: {len(ckpt.scores)} refusal candidate score(s) from the checkpoint")

    def on_rank(k: int, n: int) -> None:
        job.step(k, n, "candidates ranked", part=(0.0, cheap))

    def on_score(score) -> None:  # checkpoint each score, and keep the display alive
        nonlocal n_scored
        n_scored += 1
        if ckpt:
            ckpt.save_score(score)
        job.step(n_scored, n_full, "candidates fully scored", part=(cheap, 1.0))

    selection = select_refusal_direction(
        model, candidates, tok(inputs.harm_val), tok(inputs.safe_val),
        max_layer_frac=search.max_layer_frac, kl_threshold=search.kl_threshold,
        induce_threshold=search.induce_threshold,
        layers=search.search_layers, positions=search.search_positions,
        batch_size=search.batch_size, search=search.refusal_search, top_k=search.refusal_top_k,
        share_prefix=search.shared_prefix, progress=job.inner_bars,
        done=ckpt.scores if ckpt else None, on_score=on_score,
        allow_fallback=search.allow_fallback, on_rank=on_rank,
    )
    timings["refusal_selection"] = time.time() - t
    t = time.time()
    job.stage("CAA vectors")
    caa = {}
    for name in job.bar(list(inputs.pairs), unit="behaviour"):
        caa[name] = ckpt.tensor(f"caa.{name}") if ckpt else None
        if caa[name] is None:
            caa[name] = (caa_vector_shared_prefix(model, inputs.pairs[name], search.batch_size)
                         if search.shared_prefix else
                         caa_vector(model, inputs.pairs[name], batch_size=search.batch_size,
                                    progress=False))
            if ckpt:
                ckpt.save_tensor(f"caa.{name}", caa[name])
    timings["caa_vectors"] = time.time() - t
    return Directions(candidates, selection, caa, timings, inputs.files, train_acts, filt)


def score_and_filter_prompts(model, inputs: DirectionInputs, batch_size: int = 16,
                             shared_prefix: bool = False, enabled: bool = True,
                             min_kept: int = 2, checkpoint=None) -> PromptFilter:
    """Each train and validation prompt's unsteered refusal score (checkpointed), and the
    reference's filter over them (every prompt kept when ``enabled`` is off; fewer than
    ``min_kept`` left is an error)."""
    sets = dict(zip(PROMPT_SETS, (inputs.harm_train, inputs.safe_train, inputs.harm_val,
                                  inputs.safe_val)))
    scores = {}
    for name, items in sets.items():
        scores[name] = checkpoint.tensor(f"prompt_scores.{name}") if checkpoint else None
        if scores[name] is None:
            ids = model.tokenize_instructions([i.instruction for i in items])
            scores[name] = prompt_refusal_scores(model, ids, batch_size, shared_prefix)
            if checkpoint:
                checkpoint.save_tensor(f"prompt_scores.{name}", scores[name])
    return prompt_filter(scores, enabled=enabled, min_kept=min_kept)


def filtered_inputs(inputs: DirectionInputs, filt: PromptFilter) -> DirectionInputs:
    """``inputs`` with only the prompts the filter kept in its four prompt sets."""
    return replace(inputs, harm_train=filt.apply("harmful_train", inputs.harm_train),
                   safe_train=filt.apply("harmless_train", inputs.safe_train),
                   harm_val=filt.apply("harmful_val", inputs.harm_val),
                   safe_val=filt.apply("harmless_val", inputs.safe_val))


__all__ = ["DirectionInputs", "DirectionSearch", "compute_directions", "filtered_inputs",
           "score_and_filter_prompts", "split_contrast"]

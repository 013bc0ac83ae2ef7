"""The ``directions`` job: refusal direction (with selection), CAA vectors, and their geometry.

Inputs are all read and checked before the model is loaded. Each finished piece of direction
finding is checkpointed under ``RUN_DIR/checkpoints/`` as it completes, so an interrupted run
resumes from the last finished piece; the result files are written, each atomically, only
when everything has been computed.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path


from workbench.data import (
    BEHAVIOURS,
    ContrastPair,
    embedded_contrast,
    embedded_contrast_path,
    file_sha256,
    instruction_source,
    read_contrast_pairs,
    split,
)
from workbench.directions import (
    PROMPT_SETS,
    SELECTION_RULES,
    PromptFilter,
    RefusalSelection,
    caa_vector,
    caa_vector_shared_prefix,
    refusal_candidates,
    prompt_filter,
    prompt_refusal_scores,
    refusal_candidates_and_activations,
    select_refusal_direction,
)
from workbench.directions.refusal import layer_cut
from workbench.directions.results import Directions
from workbench.errors import WorkbenchError
from workbench.evaluation import generate, refusal_rate
from workbench.geometry import cosine_by_layer
from workbench.rundir.checkpoint import DirectionCheckpoint
from workbench.model import DEFAULT_MODEL, load_model
from workbench.model.precision import dtype_name
from workbench.progress import JobProgress
from workbench.runs import package_versions, write_csv, write_json, write_tensors
from workbench.steering import ablate_directions, add_vector
from workbench.vectors import vector_metadata


# Progress stages of a directions run (compute_directions reports the middle three).
DIRECTIONS_STAGES = ["read inputs", "load model", "refusal candidates", "refusal selection",
                     "CAA vectors"]


@dataclass
class DirectionsConfig:
    """Everything that determines a directions run."""

    model: str = DEFAULT_MODEL
    harmful: str = "embedded"
    harmless: str = "embedded"
    contrast: dict[str, str] = field(default_factory=lambda: {b: "embedded" for b in BEHAVIOURS})
    out: str = "runs/directions"
    device: str | None = None
    dtype: str = "auto"  # auto, float32, bfloat16 or float16 (workbench.model.precision)
    n_train: int = 128
    n_val: int = 32
    seed: int = 0
    batch_size: int = 16
    evaluate: int = 0  # held-out prompts per class to generate on (0: skip)
    max_new_tokens: int = 32
    induce_coefficient: float = 1.0  # --evaluate: multiple of the direction added to harmless
    search_layers: list[int] | None = None
    search_positions: list[int] | None = None
    # the reference's prompt filter: keep harmful prompts the unsteered model refuses and
    # harmless ones it answers (refusal score > 0 / < 0); fewer than min_kept left is an error
    prompt_filter: bool = True
    min_kept: int = 2
    # no candidate within the KL bound: stop with an error unless this is set
    allow_fallback: bool = False
    max_layer_frac: float = 0.8
    kl_threshold: float = 0.1
    induce_threshold: float = 0.0
    # "full" scores every candidate; "ordered" ranks them by a cheap bypass score first and
    # scores fully in that order, at most ``refusal_top_k`` (None: until one passes)
    refusal_search: str = "full"
    refusal_top_k: int | None = None
    # run common prompt prefixes once: each CAA pair's, and the chat template's system turn in
    # the refusal candidates' and selection's forwards (float rounding only)
    shared_prefix: bool = False
    keep_activations: bool = False  # keep the train prompts' last-token activations (audit)
    caa_limit: int | None = None  # contrast pairs per behaviour (seeded subset); None: all
    caa_holdout: int = 0  # pairs per behaviour kept out of the vector (held-out evaluation)
    progress: bool = True
    trust_remote_code: bool = False  # run code shipped with the model (off unless asked for)


def parse_contrast_args(items: list[str]) -> dict[str, str]:
    """``NAME=FILE`` (or ``NAME=embedded``) items to a behaviour -> source mapping."""
    out = {}
    for item in items:
        name, sep, source = item.partition("=")
        if not sep or not name or not source:
            raise WorkbenchError(f"--contrast {item!r} is not NAME=FILE; e.g. sycophancy=pairs.json")
        out[name] = source
    return out


def _load_contrast(contrast: dict[str, str]) -> tuple[dict[str, list[ContrastPair]], dict]:
    pairs, files = {}, {}
    for name, source in contrast.items():
        if source == "embedded":
            pairs[name] = embedded_contrast(name)
            path = embedded_contrast_path(name)
        else:
            pairs[name] = read_contrast_pairs(source)
            path = Path(source)
        files[f"contrast.{name}"] = {"path": str(path), "sha256": file_sha256(path),
                                     "n": len(pairs[name])}
    return pairs, files


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


def read_direction_inputs(cfg: DirectionsConfig) -> DirectionInputs:
    """Read and validate the prompt and contrast files named by ``cfg``."""
    harmful, harmful_path = instruction_source(cfg.harmful, "harmful")
    harmless, harmless_path = instruction_source(cfg.harmless, "harmless")
    harm_train, harm_val = split(harmful, [cfg.n_train, cfg.n_val], cfg.seed)
    safe_train, safe_val = split(harmless, [cfg.n_train, cfg.n_val], cfg.seed)
    pairs, contrast_files = _load_contrast(cfg.contrast)
    pairs, heldout = split_contrast(pairs, cfg.caa_limit, cfg.caa_holdout, cfg.seed)
    files = {
        "harmful": {"path": harmful_path, "sha256": file_sha256(harmful_path), "n": len(harmful)},
        "harmless": {"path": harmless_path, "sha256": file_sha256(harmless_path),
                     "n": len(harmless)},
        **contrast_files,
    }
    return DirectionInputs(harm_train, harm_val, safe_train, safe_val, pairs, files, heldout)


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


def checkpoint_key(model, inputs: DirectionInputs, cfg: DirectionsConfig) -> dict:
    """Everything that determines the pieces of direction finding (not where or how fast)."""
    # each candidate's scores are the same numbers under either search, so they are shared
    skip = {"out", "device", "batch_size", "progress", "evaluate", "max_new_tokens",
            "refusal_search", "refusal_top_k", "shared_prefix", "keep_activations", "dtype",
            "allow_fallback"}
    return {"model": model.spec, "identity": model.identity,
            "dtype": dtype_name(model.dtype),
            "config": {k: v for k, v in asdict(cfg).items() if k not in skip},
            "data": {k: f["sha256"] for k, f in inputs.files.items()}}


def compute_directions(model, inputs: DirectionInputs, cfg: DirectionsConfig,
                       job: JobProgress | None = None,
                       checkpoint_dir: str | Path | None = None) -> Directions:
    """Refusal candidates and selection, then one CAA vector per behaviour.

    With ``checkpoint_dir`` (the run directory), each finished piece (the candidates, each
    selection score, each CAA vector) is saved at once and reused by a re-run of the same config.
    """
    job = job or JobProgress("directions", [], enabled=False)
    for layer in cfg.search_layers or []:
        model.check_layer(layer)
    ckpt = (DirectionCheckpoint(checkpoint_dir, checkpoint_key(model, inputs, cfg))
            if checkpoint_dir is not None else None)
    tok = lambda items: model.tokenize_instructions([i.instruction for i in items])  # noqa: E731
    timings = {}
    t = time.time()
    job.stage("refusal candidates")
    filt = score_and_filter_prompts(model, inputs, cfg, ckpt)
    inputs = filtered_inputs(inputs, filt)
    candidates = ckpt.tensor("refusal.candidates") if ckpt else None
    train_acts = None
    if candidates is None:
        args = (model, tok(inputs.harm_train), tok(inputs.safe_train), cfg.batch_size,
                job.inner_bars)
        if cfg.keep_activations:
            candidates, harm, safe = refusal_candidates_and_activations(
                *args, share_prefix=cfg.shared_prefix)
            train_acts = (harm[:, -1], safe[:, -1])
        else:
            candidates = refusal_candidates(*args)
        if ckpt:
            ckpt.save_tensor("refusal.candidates", candidates)
    timings["refusal_candidates"] = time.time() - t
    t = time.time()
    job.stage("refusal selection")
    n_eoi, n_layers = candidates.shape[:2]
    n_grid = (len(cfg.search_positions or range(n_eoi))
              * sum(l < layer_cut(n_layers, cfg.max_layer_frac)
                    for l in (cfg.search_layers or range(n_layers))))
    n_scored = 0

    def on_score(score) -> None:  # checkpoint each score, and keep the display alive
        nonlocal n_scored
        n_scored += 1
        if ckpt:
            ckpt.save_score(score)
        job.step(n_scored, n_grid, "candidates")

    selection = select_refusal_direction(
        model, candidates, tok(inputs.harm_val), tok(inputs.safe_val),
        max_layer_frac=cfg.max_layer_frac, kl_threshold=cfg.kl_threshold,
        induce_threshold=cfg.induce_threshold,
        layers=cfg.search_layers, positions=cfg.search_positions, batch_size=cfg.batch_size,
        search=cfg.refusal_search, top_k=cfg.refusal_top_k, share_prefix=cfg.shared_prefix,
        progress=job.inner_bars, done=ckpt.scores if ckpt else None,
        on_score=on_score, allow_fallback=cfg.allow_fallback,
    )
    timings["refusal_selection"] = time.time() - t
    t = time.time()
    job.stage("CAA vectors")
    caa = {}
    for name in job.bar(list(inputs.pairs), unit="behaviour"):
        caa[name] = ckpt.tensor(f"caa.{name}") if ckpt else None
        if caa[name] is None:
            caa[name] = (caa_vector_shared_prefix(model, inputs.pairs[name], cfg.batch_size)
                         if cfg.shared_prefix else
                         caa_vector(model, inputs.pairs[name], batch_size=cfg.batch_size,
                                    progress=False))
            if ckpt:
                ckpt.save_tensor(f"caa.{name}", caa[name])
    timings["caa_vectors"] = time.time() - t
    return Directions(candidates, selection, caa, timings, inputs.files, train_acts, filt)


def score_and_filter_prompts(model, inputs: DirectionInputs, cfg: DirectionsConfig,
                             ckpt: DirectionCheckpoint | None = None) -> PromptFilter:
    """Each train and validation prompt's unsteered refusal score (checkpointed), and the
    reference's filter over them (every prompt kept when ``cfg.prompt_filter`` is off)."""
    sets = dict(zip(PROMPT_SETS, (inputs.harm_train, inputs.safe_train, inputs.harm_val,
                                  inputs.safe_val)))
    scores = {}
    for name, items in sets.items():
        scores[name] = ckpt.tensor(f"prompt_scores.{name}") if ckpt else None
        if scores[name] is None:
            ids = model.tokenize_instructions([i.instruction for i in items])
            scores[name] = prompt_refusal_scores(model, ids, cfg.batch_size, cfg.shared_prefix)
            if ckpt:
                ckpt.save_tensor(f"prompt_scores.{name}", scores[name])
    return prompt_filter(scores, enabled=cfg.prompt_filter, min_kept=cfg.min_kept)


def filtered_inputs(inputs: DirectionInputs, filt: PromptFilter) -> DirectionInputs:
    """``inputs`` with only the prompts the filter kept in its four prompt sets."""
    return replace(inputs, harm_train=filt.apply("harmful_train", inputs.harm_train),
                   safe_train=filt.apply("harmless_train", inputs.safe_train),
                   harm_val=filt.apply("harmful_val", inputs.harm_val),
                   safe_val=filt.apply("harmless_val", inputs.safe_val))


GEOMETRY_FIELDS = ["behaviour", "layer", "cosine", "refusal_direction", "cosine_selected"]


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


def write_directions(out: Path, directions: Directions, model, model_spec: str) -> None:
    """Write directions.safetensors, geometry.csv and refusal_scores.csv (each atomically)."""
    sel = directions.selection
    all_layers = list(range(model.n_layers))
    vectors = {
        "refusal.candidates": {"hook": "resid_pre", "layers": all_layers, "position": "eoi",
                               "method": "diff-in-means, harmful - harmless"},
        "refusal.direction": {"hook": "resid_pre", "layers": [sel.layer],
                              "position": f"eoi[{sel.offset}]",
                              "method": "refusal direction (selected candidate)"},
        **{f"caa.{name}": {"hook": "resid_pre", "layers": all_layers, "position": "answer letter",
                           "method": "CAA, matching - not matching"} for name in directions.caa},
    }
    write_tensors(out / "directions.safetensors", directions.tensors(),
                  vector_metadata(model, vectors, directions.data, hook="resid_pre",
                                  refusal_layer=sel.layer, refusal_offset=sel.offset))
    write_csv(out / "geometry.csv", geometry_rows(directions), GEOMETRY_FIELDS)
    filt = directions.prompt_filter
    write_csv(out / "refusal_scores.csv", [s.as_dict() for s in sel.scores],
              ["position", "offset", "layer", "bypass", "induce", "kl", "kept", "reason"],
              comments=[f"prompt filter: {filt.summary() if filt else 'not recorded'}",
                        f"selection rule: {sel.rule}: {SELECTION_RULES[sel.rule]}; picked "
                        f"layer {sel.layer}, eoi offset {sel.offset}"])


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


def run_directions(cfg: DirectionsConfig) -> dict:
    """Compute and write directions.safetensors, geometry.csv, refusal_scores.csv, run.json."""
    t0 = time.time()
    job = JobProgress("directions", DIRECTIONS_STAGES + ["evaluation"] * bool(cfg.evaluate)
                      + ["write"], enabled=cfg.progress)
    job.stage("read inputs")
    inputs = read_direction_inputs(cfg)
    timings = {"read_inputs": time.time() - t0}
    t = time.time()
    job.stage("load model")
    model = load_model(cfg.model, device=cfg.device, dtype=cfg.dtype,
                       trust_remote_code=cfg.trust_remote_code)
    timings["load_model"] = time.time() - t
    directions = compute_directions(model, inputs, cfg, job, checkpoint_dir=cfg.out)
    timings.update(directions.timings)
    out = Path(cfg.out)
    evaluation = None
    if cfg.evaluate:
        t = time.time()
        job.stage("evaluation")
        harmful, _ = instruction_source(cfg.harmful, "harmful")
        harmless, _ = instruction_source(cfg.harmless, "harmless")
        held_h, held_s = held_out(harmful, cfg), held_out(harmless, cfg)
        if not held_h or not held_s:
            raise WorkbenchError(
                "--evaluate needs prompts outside the train/validation split; lower --n-train "
                "or --n-val"
            )
        evaluation = evaluate_direction(model, directions.selection, held_h[:cfg.evaluate],
                                        held_s[:cfg.evaluate], cfg.max_new_tokens, cfg.batch_size,
                                        cfg.induce_coefficient)
        timings["evaluation"] = time.time() - t
    job.stage("write")
    write_directions(out, directions, model, cfg.model)
    timings["total"] = time.time() - t0
    record = {
        "job": "directions",
        "config": asdict(cfg),
        "model": model_record(model),
        "data": inputs.files,
        "splits": {"seed": cfg.seed, "n_train": cfg.n_train, "n_val": cfg.n_val,
                   "harmful_val_ids": [i.id for i in inputs.harm_val],
                   "harmless_val_ids": [i.id for i in inputs.safe_val]},
        "refusal": refusal_record(directions.selection, directions.prompt_filter),
        "evaluation": evaluation,
        "versions": package_versions(),
        "timings_s": {k: round(v, 2) for k, v in timings.items()},
    }
    write_json(out / "run.json", record)
    job.done()
    return record


def held_out(items: list, cfg: DirectionsConfig) -> list:
    """Prompts not used for training or validation under ``cfg``'s split."""
    used = cfg.n_train + cfg.n_val
    rest = split(items, [len(items)], cfg.seed)[0]
    return rest[used:]


__all__ = ["DirectionInputs", "Directions", "DirectionsConfig", "compute_directions", "held_out",
           "parse_contrast_args", "read_direction_inputs", "run_directions", "write_directions"]

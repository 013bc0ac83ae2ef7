"""The steering safety audit: how CAA steering changes jailbreak success, and why.

For each behaviour's CAA vector ``v`` at each steering layer and coefficient ``c``, the model
answers attack prompts (each wrapped in each jailbreak template) and benign prompts, with and
without steering, and with the mitigated vector ``v - (v . r_hat) r_hat`` (or its subspace
version). Responses are judged safe / jailbroken / incomprehensible; ASR changes are related to
the cosine between the steering vector and the refusal direction.

Everything is resumable: generations stream to ``generations.jsonl`` keyed by
condition x template x prompt, and a re-run with the same RUN_DIR and config continues.
"""

from __future__ import annotations

import json
import time
import warnings
from contextlib import nullcontext
from dataclasses import asdict, replace
from pathlib import Path

import torch

from workbench.activations import collect_activations
from workbench.analysis.conditions import (
    CONTROLS,
    PLACEBO_METHOD,
    RANDOM_REMOVAL,
    REFUSAL_DIRECTION,
    is_placebo,
    is_random_removal,
)
from workbench.analysis.tables import OPEN_ENDED_FIELDS
from workbench.data.selection import attack_prompts, benign_prompts, with_ids
from workbench.directions import refusal_subspace
from workbench.directions.method_vectors import method_agreement, method_vectors
from workbench.directions.results import Directions
from workbench.evaluation import efficacy as ab_efficacy
from workbench.evaluation import open_ended
from workbench.evaluation.answers import label_answers
from workbench.evaluation.judges import SubstringJudge, make_judge
from workbench.evaluation.templates import resolve_templates
from workbench.evaluation.work import Steer, plan_items, run_local
from workbench.geometry import unit
from workbench.jobs import common
from workbench.jobs.analysis import analyse_run
from workbench.jobs.config import (
    AuditConfig,
    judge_spec,
    mitigation_coefficients,
    placebo_behaviours,
    result_fields,
    steering_layers,
)
from workbench.jobs.directions import (
    DirectionsConfig,
    compute_directions,
    filtered_inputs,
    model_record,
    read_direction_inputs,
    refusal_record,
    write_directions,
)
from workbench.model import load_model
from workbench.progress import JobProgress
from workbench.rundir.record import check_run_dir as same_config
from workbench.rundir import (
    Condition,
    GenerationStore,
    generation_key,
    generation_record,
    load_directions,
    vector_name,
)
from workbench.runs import package_versions, write_json, write_tensors, write_text
from workbench.steering import add_vector
from workbench.steering import mitigation
from workbench.steering.mitigation import placebo_seed
from workbench.vectors import vector_metadata


AUDIT_STAGES = ["read inputs", "load model", "refusal candidates", "refusal selection",
                "CAA vectors", "activations", "generation", "efficacy", "analysis", "figures"]


NAN = float("nan")

# The audit's stages that compute_directions runs, and those whose time does not follow the
# model's speed (files, the model load, CPU-side tables and figures, a few small forwards):
# their estimates are used as they are and do not rescale the others (workbench.progress).
DIRECTION_STAGES = ["refusal candidates", "refusal selection", "CAA vectors"]
FIXED_STAGES = ["read inputs", "load model", "activations", "analysis", "figures"]

# Seconds per unit of work on the reference machine (2 CPU cores, the 1.5B model in bfloat16),
# from the quick preset's stage times (figures/audit-quick/run.json, timings_s); the efficacy
# split (open-ended tokens, A/B forwards) from the two passes' times in a quick run's log
# (docs/quick-run.md): open-ended answers are longer and batched less than attack answers.
SECONDS_PER = {"forward": 0.12, "select forward": 0.09, "ab forward": 0.05, "token": 0.01,
               "open token": 0.014, "analysed generation": 0.0025}


def audit_work(cfg: AuditConfig, n_layers: int = 28, n_missing: int | None = None
               ) -> dict[str, float]:
    """Each audit stage's expected work from the config alone, in seconds on the reference
    machine (:data:`SECONDS_PER`), for the job's ETA (:func:`workbench.progress.job_eta`).

    Generation: prompts x conditions x new tokens (``n_missing`` generations when resuming);
    refusal candidates: the train and validation prompts' forwards; refusal selection: the
    cheap pass over every candidate plus the full scores of the top few; CAA: two forwards per
    contrast pair; efficacy: A/B items x conditions plus the open-ended answers' tokens; the
    model load and figures are constants. ``n_layers`` is a guess until the model is loaded.
    """
    layers = cfg.layers or [0] * len(cfg.layer_fractions or [0])
    conds = audit_conditions(cfg, layers)
    n_attack = cfg.attack_limit * len(cfg.templates)
    n_all = sum(n_attack + (0 if c.harmful_only else cfg.benign_limit) for c in conds)
    n_gen = n_all if n_missing is None else n_missing
    n_pos = len(cfg.search_positions) if cfg.search_positions else 5
    n_grid = n_pos * (len(cfg.search_layers) if cfg.search_layers else int(n_layers * 0.8))
    n_full = n_grid if cfg.engine == "reference" else min(cfg.refusal_top_k or n_grid, n_grid)
    n_pairs = cfg.caa_limit or 100
    sec = SECONDS_PER
    return {
        "read inputs": 0.1,
        "load model": 3.0,
        "refusal candidates": sec["forward"] * 2 * (cfg.n_train + cfg.n_val),
        "refusal selection": sec["select forward"] * cfg.n_val * (
            2 + (n_grid if cfg.engine != "reference" else 0) + 3 * n_full),
        "CAA vectors": sec["forward"] * 2 * n_pairs * len(caa_behaviours(cfg)),
        "activations": 0.1,
        "generation": sec["token"] * n_gen * cfg.max_new_tokens,
        "efficacy": sum(efficacy_work(cfg, conds)),
        "analysis": sec["analysed generation"] * n_all,
        "figures": (10.0 if cfg.png else 3.0) if cfg.figures else 0.0,
    }


def efficacy_work(cfg: AuditConfig, conds: list[Condition]) -> tuple[float, float]:
    """The efficacy stage's expected work (:func:`audit_work`): the open-ended answers'
    tokens, then the A/B items x conditions."""
    if not cfg.efficacy_pairs:
        return 0.0, 0.0
    steered = [c for c in conds if c.behaviour != "none" and not c.harmful_only]
    n_open = 1 + sum(not c.mitigated for c in steered) if cfg.open_ended_tokens else 0
    items = min(cfg.open_ended_items or cfg.efficacy_pairs, cfg.efficacy_pairs)
    return (SECONDS_PER["open token"] * n_open * items * cfg.open_ended_tokens,
            SECONDS_PER["ab forward"] * (len(steered) + 1) * cfg.efficacy_pairs)


def resume_note(directions_reused: bool, n_reused: int, n_all: int) -> str | None:
    """What a resumed run reuses, e.g. "resuming: directions from the run directory; 812 of
    1,200 generations reused; 388 to go" (None for a fresh run)."""
    if not directions_reused and not n_reused:
        return None
    parts = ["directions from the run directory"] * bool(directions_reused)
    parts.append(f"{n_reused:,} of {n_all:,} generations reused; {n_all - n_reused:,} to go")
    return "resuming: " + "; ".join(parts)


def audit_behaviours(cfg: AuditConfig) -> list[str]:
    """The steered behaviours: the configured ones, then the positive controls (if on)."""
    extra = [c for c in CONTROLS if cfg.controls and c not in cfg.behaviours]
    return [*cfg.behaviours, *extra]


def caa_behaviours(cfg: AuditConfig) -> list[str]:
    """Behaviours that need a CAA vector (every steered one but the refusal direction)."""
    return [b for b in audit_behaviours(cfg) if b != REFUSAL_DIRECTION]


def behaviour_methods(cfg: AuditConfig, behaviour: str) -> list[str]:
    """Extraction methods a behaviour is steered with (the refusal direction has its own)."""
    return ["diff-in-means"] if behaviour == REFUSAL_DIRECTION else list(cfg.methods)


def audit_conditions(cfg: AuditConfig, layers: list[int]) -> list[Condition]:
    """Every condition of an audit: the baseline; each behaviour and control at each method,
    layer and coefficient, mitigated too at the mitigation coefficients (with the mitigation
    placebo beside each mitigated behaviour vector); each placebo direction at each layer and
    coefficient."""
    mit = set(mitigation_coefficients(cfg))
    out = [Condition()]
    for b in audit_behaviours(cfg):
        for m in behaviour_methods(cfg, b):
            for l in layers:
                for c in cfg.coefficients:
                    out.append(Condition(b, m, l, float(c), False))
                    if c in mit:
                        out.append(Condition(b, m, l, float(c), True))
                        if cfg.placebo_directions and b not in CONTROLS:
                            out.append(Condition(b, m + RANDOM_REMOVAL, l, float(c), True))
    out += [Condition(p, PLACEBO_METHOD, l, float(c), False) for p in placebo_behaviours(cfg)
            for l in layers for c in cfg.coefficients]
    return out


def directions_config(cfg: AuditConfig) -> DirectionsConfig:
    """The directions part of an audit config."""
    contrast = {b: cfg.contrast_files.get(b, "embedded") for b in caa_behaviours(cfg)}
    return DirectionsConfig(
        model=cfg.model, harmful=cfg.harmful, harmless=cfg.harmless, contrast=contrast,
        out=cfg.out, device=cfg.device, n_train=cfg.n_train, n_val=cfg.n_val, seed=cfg.seed,
        batch_size=cfg.batch_size, search_layers=cfg.search_layers,
        search_positions=cfg.search_positions, progress=cfg.progress, caa_limit=cfg.caa_limit,
        prompt_filter=cfg.prompt_filter, allow_fallback=cfg.allow_fallback,
        caa_holdout=cfg.efficacy_pairs,
        refusal_search="full" if cfg.engine == "reference" else "ordered",
        refusal_top_k=None if cfg.engine == "reference" else cfg.refusal_top_k,
        shared_prefix=cfg.engine == "batched",
        keep_activations=cfg.engine == "batched",
    )


def load_attack(cfg: AuditConfig, exclude: set[str] = frozenset()) -> tuple[list, int]:
    """Attack prompts with every prompt in ``exclude`` (the refusal direction's train and
    validation prompts) removed before the sample is drawn, so fitting and testing never share
    a prompt; and how many were removed (:func:`workbench.data.selection.attack_prompts`)."""
    return attack_prompts(cfg.attack, cfg.attack_limit, cfg.seed, cfg.attack_source, exclude)


def load_benign(cfg: AuditConfig, exclude: set[str]) -> list:
    """Benign prompts for false refusals, disjoint from those used to find the direction."""
    return benign_prompts(cfg.benign, cfg.benign_limit, cfg.seed, exclude)


def check_run_dir(out: Path, cfg: AuditConfig) -> None:
    """Refuse to mix results: an existing RUN_DIR must have been written by the same config."""
    same_config(out, "audit", result_fields(cfg))


def steering_vectors(cfg: AuditConfig, directions: Directions, method_vecs: dict,
                     basis: torch.Tensor | None, layers: list[int]) -> dict[tuple, torch.Tensor]:
    """The vector added for each (behaviour, method, layer, mitigated), before the coefficient.

    The ``refusal-direction`` control is the unit refusal direction scaled to the mean norm of
    the CAA vectors at the layer; mitigating it leaves (numerically) nothing. Placebo
    directions (:func:`placebo_behaviours`) are seeded random unit directions orthogonal to the
    refusal direction (or subspace), scaled like the control; the mitigation placebo of each
    behaviour vector removes a component as large as its refusal component along a random
    direction orthogonal to the refusal direction (:mod:`workbench.steering.mitigation`).
    """
    r = directions.selection.direction.double()
    avoid = mitigation.avoided(r, basis)
    mean_caa = mitigation.mean_norms(directions.caa.values(), layers)
    mit = bool(mitigation_coefficients(cfg))
    out = {}
    for j, b in enumerate(audit_behaviours(cfg)):
        for m in behaviour_methods(cfg, b):
            for l in layers:
                v = (mitigation.scaled_direction(r, mean_caa[l]) if b == REFUSAL_DIRECTION
                     else method_vecs[(b, m)][l].double())
                out[(b, m, l, False)] = v
                if not mit:
                    continue
                out[(b, m, l, True)] = mitigation.mitigate(v, r, basis)
                if cfg.placebo_directions and b not in CONTROLS:
                    out[(b, m + RANDOM_REMOVAL, l, True)] = mitigation.removal_placebo(
                        v, out[(b, m, l, True)], avoid, placebo_seed(cfg.seed, j, l, True))
    for i, p in enumerate(placebo_behaviours(cfg)):
        for l in layers:
            out[(p, PLACEBO_METHOD, l, False)] = mitigation.placebo_direction(
                r.shape[-1], avoid, placebo_seed(cfg.seed, i, l), mean_caa[l])
    return out


def placebo_record(cfg: AuditConfig, vectors: dict, r_hat: torch.Tensor,
                   layers: list[int]) -> dict:
    """What ``run.json`` says about the placebos: how they were drawn, their seeds, and how
    orthogonal to the refusal direction they came out."""
    if not cfg.placebo_directions:
        return {"k": 0}
    beh = audit_behaviours(cfg)
    cos = [abs(float(v.double() @ r_hat) / max(float(v.double().norm()), 1e-300))
           for (b, m, _, _), v in vectors.items() if is_placebo(b)]
    return {
        "k": cfg.placebo_directions,
        "directions": "seeded Gaussian draws, orthogonal to the refusal direction (or "
                      "subspace), unit norm, scaled to the mean CAA norm at the layer; steered "
                      "at every coefficient like the behaviours",
        "removal": "the mitigation placebo: each mitigated behaviour vector minus a component "
                   "as large as its refusal component, along a seeded random direction "
                   "orthogonal to the refusal direction",
        "seeds": {p: {str(l): placebo_seed(cfg.seed, i, l) for l in layers}
                  for i, p in enumerate(placebo_behaviours(cfg))},
        "removal_seeds": {b: {str(l): placebo_seed(cfg.seed, j, l, removal=True)
                              for l in layers}
                          for j, b in enumerate(beh) if b not in CONTROLS},
        "max_abs_cosine_with_refusal": max(cos) if cos else float("nan"),
    }


def write_steering_vectors(out: Path, model, cfg: AuditConfig, vectors: dict,
                           data: dict) -> None:
    """Every vector the audit steers with (each method, plain and mitigated) as
    ``[n_layers, d]`` tensors in ``vectors.safetensors``, zero outside the steering layers,
    before the coefficient (``conditions.csv`` has each condition's multiplier)."""
    tensors, meta = {}, {}
    for (b, m, l, mit), v in vectors.items():
        name = vector_name(b, m, mit)
        tensors.setdefault(name, torch.zeros(model.n_layers, model.d_model,
                                             dtype=torch.float64))[l] = v
        entry = meta.setdefault(name, {
            "hook": "resid_pre", "layers": [], "position": cfg.steer_positions,
            "method": m, "behaviour": b, "mitigated": mit,
            "mitigation": (("random removal (placebo)" if is_random_removal(m) else cfg.mitigation)
                           if mit else None),
            "placebo": is_placebo(b) or is_random_removal(m),
            "note": "before the coefficient; conditions.csv gives each multiplier"})
        entry["layers"] = sorted({*entry["layers"], l})
    write_tensors(out / "vectors.safetensors", tensors,
                  vector_metadata(model, meta, data, job="audit"))


def absolute_coefficient(cfg: AuditConfig, cond: Condition, vectors: dict,
                         resid_norms: dict[int, float]) -> float:
    """The multiplier applied to a condition's raw vector
    (:func:`workbench.steering.mitigation.absolute_coefficient`)."""
    if cond.behaviour == "none" or cfg.coefficient_scale == "absolute":
        return cond.coefficient
    return mitigation.absolute_coefficient(cond.coefficient, cfg.coefficient_scale,
                                           resid_norms[cond.layer], vectors[cond.unmitigated_key])


def condition_info(cond: Condition, vectors: dict, coefficient_abs: float,
                   resid_norms: dict[int, float], r_hat: torch.Tensor) -> dict:
    """What a condition added (:func:`workbench.steering.mitigation.condition_info`)."""
    if cond.behaviour == "none":
        return mitigation.condition_info(None, None, coefficient_abs, NAN, r_hat)
    return mitigation.condition_info(vectors[cond.vector_key], vectors[cond.unmitigated_key],
                                     coefficient_abs, resid_norms.get(cond.layer, NAN), r_hat)


def run_audit(cfg: AuditConfig, executor=None) -> dict:
    """Run (or resume) an audit and write every file of the run directory.

    ``executor`` runs the generation work items (default: in this process; see
    :mod:`workbench.evaluation.work`).
    """
    job = JobProgress("audit", AUDIT_STAGES, enabled=cfg.progress, weights=audit_work(cfg),
                      fixed=FIXED_STAGES)
    with job:  # the heartbeat: a line at least every 20 s, even inside one long call
        return _run_audit(cfg, job, executor)


def _run_audit(cfg: AuditConfig, job: JobProgress, executor) -> dict:
    """The body of :func:`run_audit`, under its progress display."""
    t0 = time.time()
    job.stage("read inputs")
    out = Path(cfg.out)
    check_run_dir(out, cfg)
    templates = resolve_templates(cfg.templates, cfg.template_files)
    dcfg = directions_config(cfg)
    inputs = read_direction_inputs(dcfg)
    direction_prompts = {i.instruction for i in inputs.harm_train + inputs.harm_val}
    attack, n_overlap = load_attack(cfg, direction_prompts)
    attack = with_ids(attack, "attack")
    used = {i.instruction for i in inputs.safe_train + inputs.safe_val}
    benign = with_ids(load_benign(cfg, used), "benign")
    timings = {"read_inputs": time.time() - t0}

    t = time.time()
    job.stage("load model")
    model = load_model(cfg.model, device=cfg.device, dtype=cfg.dtype,
                       trust_remote_code=cfg.trust_remote_code)
    timings["load_model"] = time.time() - t
    for l in cfg.layers or []:
        model.check_layer(l)
    layers = steering_layers(cfg, model.n_layers)
    # the judge is its own model (never the steered one), built before any generation
    judge = make_judge(judge_spec(cfg), device=cfg.device,
                       dtype=common.judge_dtype(judge_spec(cfg), cfg))

    # what an earlier run left: the expected work and the resume line say so
    conditions = audit_conditions(cfg, layers)
    store = GenerationStore(out / "generations.jsonl")
    cells = _cells(templates, attack, benign)
    n_all = sum(map(len, missing_cells(conditions, cells, ())))
    n_missing = sum(map(len, missing_cells(conditions, cells, store)))
    job.set_weights(audit_work(cfg, model.n_layers, n_missing))
    directions = load_directions(out, caa_behaviours(cfg))
    reused = resume_note(directions is not None, n_all - n_missing, n_all)
    if reused:
        job.note(reused)
    if directions is not None:
        for name in DIRECTION_STAGES:
            job.reused(name, "directions.safetensors from an earlier run")
    else:
        directions = compute_directions(model, inputs, dcfg, job, checkpoint_dir=out)
        write_directions(out, directions, model, cfg.model)
    timings.update({f"directions.{k}": v for k, v in directions.timings.items()})
    inputs = filtered_inputs(inputs, directions.prompt_filter)  # the prompts the means used
    sel = directions.selection
    record = {
        "job": "audit", "config": asdict(cfg), "result_config": result_fields(cfg),
        "model": model_record(model), "data": inputs.files,
        "attack": {"source": cfg.attack, "n": len(attack),
                   "ids": [i.id for i in attack],
                   # prompts dropped because the refusal direction was fitted or selected on them
                   "excluded_direction_prompts": n_overlap},
        "benign": {"source": cfg.benign, "n": len(benign)},
        "templates": {t.name: t.text for t in templates},
        "refusal": refusal_record(sel, directions.prompt_filter), "steering_layers": layers,
        "judge": {"spec": judge_spec(cfg), "name": judge.name,
                  "model_dtype": common.judge_model_dtype(judge)},
        "versions": package_versions(), "status": "generating",
    }
    write_json(out / "run.json", record)

    # activations at the refusal and steering layers: the subspace basis, the projections
    # figure, and the mean residual-stream norm per steering layer (the `norm` scale)
    t = time.time()
    job.stage("activations")
    tok = lambda items: model.tokenize_instructions([i.instruction for i in items])  # noqa: E731
    act_layers = sorted({sel.layer, *layers})
    if directions.train_activations is not None:  # kept from the candidates' forward passes
        harm_all, safe_all = (a[:, act_layers] for a in directions.train_activations)
    else:
        kw = dict(layers=act_layers, batch_size=cfg.batch_size, progress=False)
        harm_all = collect_activations(model, tok(inputs.harm_train), **kw)["resid_pre"][:, 0]
        safe_all = collect_activations(model, tok(inputs.safe_train), **kw)["resid_pre"][:, 0]
    ri = act_layers.index(sel.layer)
    harm_acts, safe_acts = harm_all[:, ri], safe_all[:, ri]
    resid_norms = {l: float(torch.cat([harm_all[:, i], safe_all[:, i]]).double().norm(dim=-1)
                            .mean()) for i, l in enumerate(act_layers)}
    basis = (refusal_subspace(harm_acts, safe_acts, cfg.subspace_k, first=sel.direction)
             if cfg.mitigation == "subspace" else None)
    method_vecs = method_vectors(model, inputs.pairs, directions.caa, layers, cfg.methods,
                                 cfg.seed, cfg.batch_size)
    vectors = steering_vectors(cfg, directions, method_vecs, basis, layers)
    write_steering_vectors(out, model, cfg, vectors, inputs.files)
    record["steering_vectors"] = {"file": "vectors.safetensors",
                                  "names": sorted({vector_name(b, m, mit)
                                                   for (b, m, _, mit) in vectors}),
                                  "cosine_with_caa": method_agreement(vectors)}
    r_hat = unit(sel.direction.double())
    record["placebo"] = placebo_record(cfg, vectors, r_hat, layers)
    write_json(out / "run.json", record)
    timings["activations"] = time.time() - t

    coef_abs = {c.key: absolute_coefficient(cfg, c, vectors, resid_norms) for c in conditions}
    t = time.time()
    if n_missing:
        job.stage("generation")
    else:
        job.reused("generation", f"all {n_all:,} generations")
    generate_missing(model, cfg, conditions, vectors, coef_abs, templates, attack, benign,
                     judge, store, job, executor)
    timings["generation"] = time.time() - t

    t = time.time()
    job.stage("efficacy")
    w_open, w_ab = efficacy_work(cfg, conditions)
    split = w_open / (w_open + w_ab) if w_open + w_ab else 0.0
    open_ended = (open_ended_efficacy(
        model, cfg, conditions, vectors, coef_abs, inputs.pairs, inputs.heldout, out, job,
        lambda k, n: job.step(k, n, "conditions answered", part=(0.0, split)))
        if cfg.efficacy_pairs and cfg.open_ended_tokens else {})
    efficacy = (steering_efficacy(
        model, cfg, conditions, vectors, coef_abs, inputs.heldout, open_ended,
        lambda k, n: job.step(k, n, "conditions read (A/B)", part=(split, 1.0)))
        if cfg.efficacy_pairs else [])
    timings["efficacy"] = time.time() - t

    t = time.time()
    job.stage("analysis")
    cond_info = {c.key: condition_info(c, vectors, coef_abs[c.key], resid_norms, r_hat)
                 for c in conditions}
    summary = analyse_run(out, store.values(), harm_acts, safe_acts, sel, cfg, record,
                          harm_ids=[i.id for i in inputs.harm_train],
                          safe_ids=[i.id for i in inputs.safe_train],
                          harm_cats=[i.category for i in inputs.harm_train],
                          efficacy=efficacy, cond_info=cond_info)
    timings["analysis"] = time.time() - t
    from workbench.figures import render_audit_figures

    return common.finish_run(out, cfg, record, render_audit_figures, [], timings, t0,
                             n_generations=len(store), summary=summary, job=job)


def steer_condition(model, cfg: AuditConfig, cond: Condition, vectors: dict,
                    coefficient_abs: float):
    """The steering context of a condition (none for the baseline)."""
    if cond.behaviour == "none":
        return nullcontext()
    return add_vector(model, vectors[cond.vector_key].float(), layers=cond.layer,
                      coefficient=coefficient_abs, positions=cfg.steer_positions)


def _cells(templates, attack, benign) -> list[tuple[str, str, object, str]]:
    """Every prompt of the audit: (split, template name, item, text)."""
    cells = [("harmful", tpl.name, item, tpl.apply(item.instruction))
             for tpl in templates for item in attack]
    return cells + [("harmless", "direct", item, item.instruction) for item in benign]


def _steer_spec(cond: Condition, vectors: dict, coefficient_abs: float) -> Steer | None:
    """What a condition adds, as a work item's :class:`Steer` (None for the baseline)."""
    if cond.behaviour == "none":
        return None
    return Steer(cond.layer, vectors[cond.vector_key].float(), coefficient_abs)


def missing_cells(conditions: list[Condition], prompts: list, store: GenerationStore
                  ) -> list[list[int]]:
    """Per prompt, the conditions whose answer is not in ``store`` (placebo conditions answer
    attack prompts only)."""
    return [[c for c, cond in enumerate(conditions)
             if not (cond.harmful_only and split_name != "harmful")
             and generation_key(cond.key, tpl, item.id, split_name) not in store]
            for split_name, tpl, item, _ in prompts]


def generation_items(model, cfg: AuditConfig, conditions: list[Condition], vectors: dict,
                     coef_abs: dict, prompts: list, store: GenerationStore) -> list:
    """Work items for every (condition, prompt) whose generation is not in ``store``. Attack
    and benign prompts are planned apart, so no batch carries a condition its prompts do not
    need (the attack-only placebos)."""
    prompt_ids = model.tokenize_instructions([text for *_, text in prompts])
    missing = missing_cells(conditions, prompts, store)
    specs = [_steer_spec(c, vectors, coef_abs[c.key]) for c in conditions]
    if cfg.engine == "reference":
        rows = cfg.batch_size
    else:
        rows = cfg.generation_batch or (256 if model.device.type == "cuda" else 128)
    items = []
    for split_name in ("harmful", "harmless"):
        idx = [i for i, p in enumerate(prompts) if p[0] == split_name]
        part = plan_items([prompt_ids[i] for i in idx], [missing[i] for i in idx], specs,
                          cfg.max_new_tokens, cfg.steer_positions, cfg.engine, rows)
        items += [replace(it, tag=([idx[p] for p in it.tag[0]], it.tag[1])) for it in part]
    return items


def generate_missing(model, cfg: AuditConfig, conditions: list[Condition], vectors: dict,
                     coef_abs: dict, templates, attack, benign, judge, store: GenerationStore,
                     job: JobProgress, executor=None) -> None:
    """Generate, judge and append every missing generation, item by item.

    ``executor`` runs the items (default: in this process); whatever runs them, this process
    alone judges the answers (never under steering hooks) and writes ``generations.jsonl``.
    Cells an item computes beside the missing ones (a batch covers every condition any of its
    prompts lacks) are dropped, so the file holds exactly the planned cells.
    """
    prompts = _cells(templates, attack, benign)
    wanted = {(p, c) for p, cs in enumerate(missing_cells(conditions, prompts, store))
              for c in cs}
    items = generation_items(model, cfg, conditions, vectors, coef_abs, prompts, store)
    if not items:
        return
    run = executor or (lambda its: run_local(model, its))
    substring = judge if judge.name == "substring" else SubstringJudge()
    for item, ids in job.bar(run(items), total=len(items), unit="batch",
                              sizes=[i.n_cells * i.max_new_tokens for i in items]):
        p_idx, c_idx = item.tag
        cells = [((conditions[c], prompts[p]), t) for c, per_cond in zip(c_idx, ids)
                 for p, t in zip(p_idx, per_cond) if (p, c) in wanted]
        if not cells:
            continue
        texts = [model.tokenizer.decode(t, skip_special_tokens=True) for _, t in cells]
        _judge_and_store([cell for cell, _ in cells], texts, coef_abs, judge, substring, store)


def _judge_and_store(part, responses, coef_abs, judge, substring, store) -> None:
    """Judge the harmful answers of one item with no hooks active, then append all its records."""
    labelled = label_answers(judge, substring, [p[0] for _, p in part],
                             [p[3] for _, p in part], responses)
    store.append([generation_record(cond, coef_abs[cond.key], tpl, item, split_name, resp,
                                    **lab)
                  for ((cond, (split_name, tpl, item, _)), resp, lab)
                  in zip(part, responses, labelled)])


def _items_name(cond: Condition) -> str:
    """The contrast items a condition's efficacy is read on (``refusal`` for the direction)."""
    return "refusal" if cond.behaviour == REFUSAL_DIRECTION else cond.behaviour


def steering_efficacy(model, cfg: AuditConfig, conditions: list[Condition], vectors: dict,
                      coef_abs: dict, heldout: dict, open_ended: dict | None = None,
                      step=None) -> list[dict]:
    """Per steered condition, the paired change in p(behaviour-matching A/B answer) on held-out
    contrast pairs (the ``refusal`` pairs for the ``refusal-direction`` control;
    :func:`workbench.evaluation.efficacy.steering_efficacy`), with the condition's
    :func:`open_ended_efficacy` fields where ``open_ended`` has them (else NaN). ``step(k,
    n)``, if given, hears how many of the conditions are done after each group (progress)."""
    open_ended = open_ended or {}
    steered_conds = [c for c in conditions if c.behaviour != "none" and not c.harmful_only
                     and heldout.get(_items_name(c))]
    measured = {}
    for name in dict.fromkeys(_items_name(c) for c in steered_conds):
        group = [c for c in steered_conds if _items_name(c) == name]
        steers = [_steer_spec(c, vectors, coef_abs[c.key]) for c in group]
        measured.update(zip([c.key for c in group], ab_efficacy.steering_efficacy(
            model, heldout[name], steers, cfg.steer_positions, cfg.batch_size, cfg.engine)))
        if step is not None:
            step(len(measured), len(steered_conds))
    return [{"behaviour": c.behaviour, "control": c.behaviour in CONTROLS, "method": c.method,
             "layer": c.layer, "coefficient": c.coefficient, "coefficient_abs": coef_abs[c.key],
             "mitigated": c.mitigated, "items": _items_name(c), **measured[c.key],
             **open_ended.get(c.key, dict.fromkeys(OPEN_ENDED_FIELDS, float("nan")))}
            for c in steered_conds]


def open_ended_efficacy(model, cfg: AuditConfig, conditions: list[Condition], vectors: dict,
                        coef_abs: dict, pairs: dict, heldout: dict, out: Path,
                        job: JobProgress | None = None, step=None) -> dict:
    """Per unmitigated steered condition key, the open-ended efficacy fields
    (:func:`workbench.evaluation.open_ended.open_ended_efficacy`: held-out questions without
    their choices, answered unsteered and steered, scored on the behaviour axis fitted on the
    training pairs). Answers and scores go to ``open_ended.jsonl``. ``job`` decides whether
    the generation shows its own bar; ``step(k, n)`` hears the conditions done (progress)."""
    from workbench.evaluation.embeddings import minilm_model

    conds = [c for c in conditions if c.behaviour != "none" and not c.mitigated
             and not c.harmful_only and heldout.get(_items_name(c)) and pairs.get(_items_name(c))]
    if not conds:
        return {}
    encoder = minilm_model()
    rows = cfg.generation_batch or (256 if model.device.type == "cuda" else 128)
    result, records = {}, []
    for name in dict.fromkeys(_items_name(c) for c in conds):
        group = [c for c in conds if _items_name(c) == name]
        res = open_ended.open_ended_efficacy(
            model, pairs[name], heldout[name][:cfg.open_ended_items],
            [_steer_spec(c, vectors, coef_abs[c.key]) for c in group], encoder,
            cfg.open_ended_tokens, cfg.steer_positions, cfg.engine, cfg.batch_size, rows,
            job.inner_bars if job is not None else cfg.progress)
        for cond, ans, sc in zip([None, *group], res.answers, res.scores):
            records += [{"items": name, "condition": cond.key if cond else "none",
                         "behaviour": cond.behaviour if cond else "none",
                         "coefficient": cond.coefficient if cond else 0.0,
                         "question": q, "answer": a, "score": float(x)}
                        for q, a, x in zip(res.questions, ans, sc)]
        result.update({c.key: f for c, f in zip(group, res.fields)})
        if step is not None:
            step(len(result), len(conds))
    write_text(out / "open_ended.jsonl", "".join(json.dumps(r) + "\n" for r in records))
    return result


def __getattr__(name: str):
    if name == "method_directions":  # moved: workbench.directions.method_vectors
        warnings.warn("workbench.jobs.audit.method_directions is deprecated; use "
                      "workbench.directions.method_vectors.method_vectors", DeprecationWarning,
                      stacklevel=2)
        return lambda model, cfg, pairs, caa, layers: method_vectors(
            model, pairs, caa, layers, cfg.methods, cfg.seed, cfg.batch_size)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

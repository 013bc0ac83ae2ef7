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
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import torch
from safetensors.torch import load_file

from workbench.activations import collect_activations
from workbench.data import embedded_instructions, instruction_source, split, swap_choices
from workbench.data.benchmarks import load_attack_prompts, stratified_subset
from workbench.directions import (
    CandidateScore,
    PromptFilter,
    RefusalSelection,
    caa_prompts,
    pca_of_letter_balanced,
    probe_direction,
    refusal_subspace,
)
from workbench.errors import WorkbenchError
from workbench.evaluation.batched import condition_delta, shares_prefix
from workbench.evaluation.efficacy import (
    ab_probabilities,
    ab_probabilities_conditions,
    paired_mean_delta,
)
from workbench.evaluation.judges import SubstringJudge, is_comprehensible, is_refusal, make_judge
from workbench.evaluation.templates import resolve_templates
from workbench.evaluation.work import Steer, plan_items, run_local
from workbench.geometry import (
    random_orthogonal_directions,
    remove_projection,
    remove_random_component,
    remove_subspace,
    unit,
)
from workbench.analysis.conditions import REFUSAL_DIRECTION
from workbench.jobs.config import (
    CONTROLS,
    PLACEBO_METHOD,
    RANDOM_REMOVAL,
    AuditConfig,
    base_method,
    is_placebo,
    is_random_removal,
    judge_spec,
    mitigation_coefficients,
    placebo_behaviours,
    result_fields,
    steering_layers,
)
from workbench.directions.results import Directions
from workbench.jobs.directions import (
    DirectionsConfig,
    compute_directions,
    filtered_inputs,
    model_record,
    read_direction_inputs,
    refusal_record,
    write_directions,
)
from workbench.jobs import common
from workbench.jobs.analysis import OPEN_ENDED_FIELDS, analyse_run
from workbench.jobs.store import GenerationStore
from workbench.model import load_model
from workbench.progress import JobProgress
from workbench.runs import package_versions, read_json, write_json, write_tensors, write_text
from workbench.steering import add_vector
from workbench.vectors import vector_metadata


AUDIT_STAGES = ["read inputs", "load model", "refusal candidates", "refusal selection",
                "CAA vectors", "activations", "generation", "efficacy", "analysis", "figures"]


@dataclass(frozen=True)
class Condition:
    """One steering condition; the baseline has behaviour "none"."""

    behaviour: str = "none"
    method: str = "none"
    layer: int | None = None
    coefficient: float = 0.0
    mitigated: bool = False

    @property
    def key(self) -> str:
        return f"{self.behaviour}|{self.method}|{self.layer}|{self.coefficient}|{self.mitigated}"

    @property
    def vector_key(self) -> tuple:
        return (self.behaviour, self.method, self.layer, self.mitigated)

    @property
    def unmitigated_key(self) -> tuple:
        """The vector this condition's vector was derived from (itself when unmitigated)."""
        return (self.behaviour, base_method(self.method), self.layer, False)

    @property
    def harmful_only(self) -> bool:
        """Placebo conditions answer the attack prompts only (no false-refusal readout)."""
        return is_placebo(self.behaviour) or is_random_removal(self.method)


NAN = float("nan")


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


def placebo_seed(seed: int, index: int, layer: int, removal: bool = False) -> int:
    """The seed of one placebo draw: a placebo direction (``index`` 0..k-1) or the random
    removal of behaviour vector ``index``, at one layer; recorded in ``run.json``."""
    return 1_000_003 * seed + 7919 * (index + 1) + 97 * layer + (1 if removal else 0)


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
    """Attack prompts (the embedded harmful set, a dataset name, or a file) with every prompt
    in ``exclude`` (the refusal direction's train and validation prompts) removed before the
    sample is drawn, so fitting and testing never share a prompt; and how many were removed.

    Fewer prompts left than ``attack_limit`` asks for is an error that says what to change.
    """
    if cfg.attack == "embedded":
        items = embedded_instructions("harmful")
    else:
        items = load_attack_prompts(cfg.attack, source=cfg.attack_source, seed=cfg.seed)
    kept = [i for i in items if i.instruction not in exclude]
    removed = len(items) - len(kept)
    if cfg.attack_limit is not None and len(kept) < cfg.attack_limit:
        raise WorkbenchError(
            f"only {len(kept)} of {len(items)} attack prompts ({cfg.attack}) are outside the "
            f"refusal direction's train and validation prompts, fewer than --attack-limit "
            f"{cfg.attack_limit}; lower --attack-limit, lower --n-train / --n-val, or attack "
            "with a benchmark (--attack jbb)")
    if cfg.attack == "embedded":
        if cfg.attack_limit is not None:
            kept = split(kept, [cfg.attack_limit], cfg.seed + 1)[0]
    else:
        kept = stratified_subset(kept, lambda i: i.category, cfg.attack_limit, cfg.seed)
    return kept, removed


def load_benign(cfg: AuditConfig, exclude: set[str]) -> list:
    """Benign prompts for false refusals, disjoint from those used to find the direction."""
    items, _ = instruction_source(cfg.benign, "harmless")
    items = [i for i in items if i.instruction not in exclude]
    if cfg.benign_limit is not None:
        items = split(items, [min(cfg.benign_limit, len(items))], cfg.seed + 2)[0]
    if not items:
        raise WorkbenchError("no benign prompts left after removing direction-training prompts; "
                             "give a larger --benign file")
    return items


def check_run_dir(out: Path, cfg: AuditConfig) -> None:
    """Refuse to mix results: an existing RUN_DIR must have been written by the same config."""
    common.check_run_dir(out, "audit", result_fields(cfg))


def _saved_directions(out: Path, cfg: AuditConfig) -> Directions | None:
    """Directions from an earlier run of the same config, if it got that far."""
    path, run_json = out / "directions.safetensors", out / "run.json"
    if not (path.exists() and run_json.exists()):
        return None
    ref = read_json(run_json).get("refusal")
    if not ref:
        return None
    if "selection_rule" not in ref or "prompt_filter" not in ref:
        return None  # written before the prompt filter: recompute (checkpoints are keyed)
    t = load_file(path)
    sel = RefusalSelection(direction=t["refusal.direction"].double(), position=ref["position"],
                           offset=ref["offset"], layer=ref["layer"],
                           scores=[CandidateScore(**ref["scores"])],
                           baseline=ref["baseline"], rule=ref["selection_rule"])
    caa = {k.split(".", 1)[1]: v.double() for k, v in t.items() if k.startswith("caa.")}
    if set(caa) != set(caa_behaviours(cfg)):
        return None
    return Directions(t["refusal.candidates"].double(), sel, caa, {"reused": True},
                      prompt_filter=PromptFilter.from_record(ref["prompt_filter"]))


def method_directions(model, cfg: AuditConfig, pairs: dict, caa: dict,
                      layers: list[int]) -> dict[tuple[str, str], torch.Tensor]:
    """Per (behaviour, method), a ``[n_layers, d]`` vector: CAA, or a unit PCA / logistic direction
    scaled to the CAA vector's norm at each layer (so coefficients are comparable).

    PCA runs on letter-balanced differences (each item plus its choices-swapped twin), since
    the plain differences' first component is the answer-letter axis (docs/methods.md)."""
    out = {}
    for b, v in caa.items():
        out[(b, "caa")] = v.double()
        extra = [m for m in cfg.methods if m != "caa"]
        if not extra:
            continue
        kw = dict(layers=layers, positions="last", batch_size=cfg.batch_size, progress=False)

        def letter_acts(items):  # resid_pre at the answer letter, matching / not matching
            pos, neg = caa_prompts(model, items)
            return (collect_activations(model, pos, **kw)["resid_pre"][:, 0].double(),
                    collect_activations(model, neg, **kw)["resid_pre"][:, 0].double())

        a_pos, a_neg = letter_acts(pairs[b])
        full = {}
        if "pca" in extra:
            swapped = [swap_choices(p) for p in pairs[b]]
            keep = [i for i, q in enumerate(swapped) if q is not None]
            if len(keep) < 2:
                raise WorkbenchError(
                    f"the pca method needs A/B items laid out as '\\n (A) ...\\n (B) ...' to "
                    f"swap their choices, and only {len(keep)} of {b!r}'s {len(pairs[b])} "
                    "are; use --method caa,logistic for this behaviour's file")
            s_pos, s_neg = letter_acts([swapped[i] for i in keep])
            full["pca"] = pca_of_letter_balanced((a_pos - a_neg)[keep], s_pos - s_neg)
        if "logistic" in extra:
            full["logistic"] = probe_direction(a_pos, a_neg, seed=cfg.seed)[0]
        for m, dirs in full.items():
            vec = torch.zeros_like(v, dtype=torch.float64)
            for i, l in enumerate(layers):
                vec[l] = unit(dirs[i]) * v[l].double().norm()
            out[(b, m)] = vec
    return out


def steering_vectors(cfg: AuditConfig, directions: Directions, method_vecs: dict,
                     basis: torch.Tensor | None, layers: list[int]) -> dict[tuple, torch.Tensor]:
    """The vector added for each (behaviour, method, layer, mitigated), before the coefficient.

    The ``refusal-direction`` control is the unit refusal direction scaled to the mean norm of
    the CAA vectors at the layer; mitigating it leaves (numerically) nothing. Placebo
    directions (:func:`placebo_behaviours`) are seeded random unit directions orthogonal to the
    refusal direction (or subspace), scaled like the control; the mitigation placebo of each
    behaviour vector removes a component as large as its refusal component along a random
    direction orthogonal to the refusal direction (:func:`remove_random_component`).
    """
    r = directions.selection.direction.double()
    avoid = basis if basis is not None else unit(r)[None]
    mean_caa = {l: float(torch.stack([v[l].double().norm() for v in directions.caa.values()])
                         .mean()) for l in layers}
    mit = bool(mitigation_coefficients(cfg))
    out = {}
    for j, b in enumerate(audit_behaviours(cfg)):
        for m in behaviour_methods(cfg, b):
            for l in layers:
                if b == REFUSAL_DIRECTION:
                    v = unit(r) * mean_caa[l]
                else:
                    v = method_vecs[(b, m)][l].double()
                out[(b, m, l, False)] = v
                if not mit:
                    continue
                out[(b, m, l, True)] = (remove_subspace(v, basis) if basis is not None
                                        else remove_projection(v, r))
                if cfg.placebo_directions and b not in CONTROLS:
                    removed = float((v - out[(b, m, l, True)]).norm())
                    seed = placebo_seed(cfg.seed, j, l, removal=True)
                    out[(b, m + RANDOM_REMOVAL, l, True)] = remove_random_component(
                        v, removed, avoid, seed)
    for i, p in enumerate(placebo_behaviours(cfg)):
        for l in layers:
            d = random_orthogonal_directions(1, r.shape[-1], avoid,
                                             placebo_seed(cfg.seed, i, l))[0]
            out[(p, PLACEBO_METHOD, l, False)] = d * mean_caa[l]
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


def vector_name(behaviour: str, method: str, mitigated: bool) -> str:
    """The name of a steered vector in ``vectors.safetensors``: ``<method>.<behaviour>``, with
    ``-mitigated`` after the method for the vector with the refusal component removed."""
    return f"{method}{'-mitigated' if mitigated else ''}.{behaviour}"


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


def method_agreement(vectors: dict) -> dict[str, dict[str, dict[int, float]]]:
    """Per behaviour and method, the cosine of its (unmitigated) vector with the behaviour's
    CAA vector at each steering layer: does each extraction method find the same direction?"""
    out: dict = {}
    for (b, m, l, mit), v in vectors.items():
        caa = vectors.get((b, "caa", l, False))
        if mit or caa is None:
            continue
        cos = float(torch.nn.functional.cosine_similarity(v.double(), caa.double(), dim=0))
        out.setdefault(b, {}).setdefault(m, {})[l] = cos
    return out


def absolute_coefficient(cfg: AuditConfig, cond: Condition, vectors: dict,
                         resid_norms: dict[int, float]) -> float:
    """The multiplier applied to the raw vector: the coefficient itself (``absolute`` scale),
    or ``c * mean ||resid|| / ||v||`` (``norm`` scale; the unmitigated vector's norm, so
    mitigation removes a component without rescaling the rest)."""
    if cond.behaviour == "none" or cfg.coefficient_scale == "absolute":
        return cond.coefficient
    v = vectors[cond.unmitigated_key]
    return cond.coefficient * resid_norms[cond.layer] / max(float(v.norm()), 1e-12)


def condition_info(cond: Condition, vectors: dict, coefficient_abs: float,
                   resid_norms: dict[int, float], r_hat: torch.Tensor) -> dict:
    """Per condition, what was added: the multiplier, the vector's norm, the mean residual norm
    at its layer, the cosine of the vector actually added with the selected refusal direction
    (the audit's one cosine), and its projection on that direction in units of the residual
    norm, ``coefficient_abs * (v . r_hat) / resid_norm`` (the regression's predictor)."""
    if cond.behaviour == "none":
        return {"coefficient_abs": coefficient_abs, "vector_norm": 0.0, "resid_norm": NAN,
                "cosine": 0.0, "projection": 0.0}
    v = vectors[cond.vector_key].double()
    norm, resid = float(v.norm()), resid_norms.get(cond.layer, NAN)
    dot = float(v @ r_hat.double())
    # a mitigated refusal direction is rounding noise: its direction (cosine) means nothing
    empty = norm <= 1e-9 * float(vectors[cond.unmitigated_key].double().norm())
    return {"coefficient_abs": coefficient_abs, "vector_norm": norm, "resid_norm": resid,
            "cosine": 0.0 if empty else dot / norm,
            "projection": coefficient_abs * dot / resid}


def _record(cond: Condition, coefficient_abs: float, template: str, item, split_name: str,
            response: str, label: str, labels: dict, refusal: bool, comprehensible: bool) -> dict:
    return {
        "key": f"{cond.key}|{template}|{item.id}|{split_name}", "split": split_name,
        "behaviour": cond.behaviour, "control": cond.behaviour in CONTROLS,
        "placebo": is_placebo(cond.behaviour) or is_random_removal(cond.method),
        "method": cond.method, "layer": cond.layer, "coefficient": cond.coefficient,
        "coefficient_abs": coefficient_abs, "mitigated": cond.mitigated, "template": template,
        "prompt_id": item.id, "category": item.category, "instruction": item.instruction,
        "response": response, "refusal": refusal, "comprehensible": comprehensible,
        "label": label, "labels": labels,
    }


def _with_ids(items: list, prefix: str) -> list:
    from workbench.data import Instruction

    return [i if i.id else Instruction(i.instruction, f"{prefix}-{n}", i.category)
            for n, i in enumerate(items)]


def run_audit(cfg: AuditConfig, executor=None) -> dict:
    """Run (or resume) an audit and write every file of the run directory.

    ``executor`` runs the generation work items (default: in this process; see
    :mod:`workbench.evaluation.work`).
    """
    t0 = time.time()
    job = JobProgress("audit", AUDIT_STAGES, enabled=cfg.progress, weights={"generation": 20})
    job.stage("read inputs")
    out = Path(cfg.out)
    check_run_dir(out, cfg)
    templates = resolve_templates(cfg.templates, cfg.template_files)
    dcfg = directions_config(cfg)
    inputs = read_direction_inputs(dcfg)
    direction_prompts = {i.instruction for i in inputs.harm_train + inputs.harm_val}
    attack, n_overlap = load_attack(cfg, direction_prompts)
    attack = _with_ids(attack, "attack")
    used = {i.instruction for i in inputs.safe_train + inputs.safe_val}
    benign = _with_ids(load_benign(cfg, used), "benign")
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

    directions = _saved_directions(out, cfg)
    if directions is None:
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
    method_vecs = method_directions(model, cfg, inputs.pairs, directions.caa, layers)
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

    conditions = audit_conditions(cfg, layers)
    coef_abs = {c.key: absolute_coefficient(cfg, c, vectors, resid_norms) for c in conditions}
    store = GenerationStore(out / "generations.jsonl")
    t = time.time()
    job.stage("generation")
    generate_missing(model, cfg, conditions, vectors, coef_abs, templates, attack, benign,
                     judge, store, job, executor)
    timings["generation"] = time.time() - t

    t = time.time()
    job.stage("efficacy")
    open_ended = (open_ended_efficacy(model, cfg, conditions, vectors, coef_abs, inputs.pairs,
                                      inputs.heldout, out)
                  if cfg.efficacy_pairs and cfg.open_ended_tokens else {})
    efficacy = (steering_efficacy(model, cfg, conditions, vectors, coef_abs, inputs.heldout,
                                  open_ended) if cfg.efficacy_pairs else [])
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


def _steer(model, cfg: AuditConfig, cond: Condition, vectors: dict, coefficient_abs: float):
    """The steering context of a condition (none for the baseline)."""
    from contextlib import nullcontext

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
    if cond.behaviour == "none":
        return None
    return Steer(cond.layer, vectors[cond.vector_key].float(), coefficient_abs)


def missing_cells(conditions: list[Condition], prompts: list, store: GenerationStore
                  ) -> list[list[int]]:
    """Per prompt, the conditions whose answer is not in ``store`` (placebo conditions answer
    attack prompts only)."""
    return [[c for c, cond in enumerate(conditions)
             if not (cond.harmful_only and split_name != "harmful")
             and f"{cond.key}|{tpl}|{item.id}|{split_name}" not in store]
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
    for item, ids in job.bar(run(items), total=len(items), unit="batch"):
        p_idx, c_idx = item.tag
        cells = [((conditions[c], prompts[p]), t) for c, per_cond in zip(c_idx, ids)
                 for p, t in zip(p_idx, per_cond) if (p, c) in wanted]
        if not cells:
            continue
        texts = [model.tokenizer.decode(t, skip_special_tokens=True) for _, t in cells]
        _judge_and_store([cell for cell, _ in cells], texts, coef_abs, judge, substring, store)


def _judge_and_store(part, responses, coef_abs, judge, substring, store) -> None:
    """Judge the harmful answers of one item with no hooks active, then append all its records."""
    harmful_idx = [i for i, (_, p) in enumerate(part) if p[0] == "harmful"]
    h_prompts = [part[i][1][3] for i in harmful_idx]
    h_resps = [responses[i] for i in harmful_idx]
    detail = judge.label_detail(h_prompts, h_resps) if harmful_idx else {}
    if harmful_idx and "substring" not in detail:
        detail["substring"] = substring.label(h_prompts, h_resps)
    where = {i: j for j, i in enumerate(harmful_idx)}
    recs = []
    for i, ((cond, (split_name, tpl, item, _)), resp) in enumerate(zip(part, responses)):
        refusal, comp = is_refusal(resp), is_comprehensible(resp)
        if split_name == "harmful":
            labels = {name: lab[where[i]] for name, lab in detail.items()}
            label = labels[judge.name]
        else:
            label = "incomprehensible" if not comp else ("refused" if refusal else "complied")
            labels = {}
        recs.append(_record(cond, coef_abs[cond.key], tpl, item, split_name, resp, label,
                            labels, refusal, comp))
    store.append(recs)


def _items_name(cond: Condition) -> str:
    """The contrast items a condition's efficacy is read on (``refusal`` for the direction)."""
    return "refusal" if cond.behaviour == REFUSAL_DIRECTION else cond.behaviour


def steering_efficacy(model, cfg: AuditConfig, conditions: list[Condition], vectors: dict,
                      coef_abs: dict, heldout: dict, open_ended: dict | None = None
                      ) -> list[dict]:
    """Per steered condition, the paired change in p(behaviour-matching A/B answer) on held-out
    contrast pairs (the ``refusal`` pairs for the ``refusal-direction`` control), with the
    condition's :func:`open_ended_efficacy` fields where ``open_ended`` has them (else NaN).

    The batched engine reads every condition of a behaviour in shared batches (each prompt's
    prefix run once); the reference engine runs one condition at a time under its hook.
    """
    open_ended = open_ended or {}
    steered_conds = [c for c in conditions if c.behaviour != "none" and not c.harmful_only
                     and heldout.get(_items_name(c))]
    base, steered = {}, {}
    for name in dict.fromkeys(_items_name(c) for c in steered_conds):
        group = [c for c in steered_conds if _items_name(c) == name]
        if cfg.engine == "batched" and shares_prefix(model, cfg.steer_positions):
            deltas = [{}] + [{c.layer: condition_delta(vectors[c.vector_key].float(),
                                                       coef_abs[c.key])} for c in group]
            tables = ab_probabilities_conditions(model, heldout[name], deltas,
                                                 cfg.steer_positions, cfg.batch_size * 2)
            base[name] = tables[0]
            steered.update({c.key: t for c, t in zip(group, tables[1:])})
            continue
        base[name] = ab_probabilities(model, heldout[name], cfg.batch_size)
        for c in group:
            with _steer(model, cfg, c, vectors, coef_abs[c.key]):
                steered[c.key] = ab_probabilities(model, heldout[name], cfg.batch_size)
    rows = []
    for cond in steered_conds:
        name = _items_name(cond)
        base_t, steer_t = base[name], steered[cond.key]
        d = paired_mean_delta(base_t["p_matching_norm"], steer_t["p_matching_norm"])
        rows.append({
            "behaviour": cond.behaviour, "control": cond.behaviour in CONTROLS,
            "method": cond.method, "layer": cond.layer, "coefficient": cond.coefficient,
            "coefficient_abs": coef_abs[cond.key], "mitigated": cond.mitigated,
            "items": name, "n": d["n"], "p_matching": d["mean_steered"],
            "p_matching_baseline": d["mean_base"], "delta": d["delta"],
            "delta_ci_low": d["ci_low"], "delta_ci_high": d["ci_high"], "p_value": d["p_value"],
            "sd_diff": d["sd_diff"], "mde": d["mde"],
            "ab_mass": float((steer_t["p_matching"] + steer_t["p_not_matching"]).mean()),
            "ab_mass_baseline": float((base_t["p_matching"]
                                       + base_t["p_not_matching"]).mean()),
            **open_ended.get(cond.key, dict.fromkeys(OPEN_ENDED_FIELDS, float("nan"))),
        })
    return rows


def open_ended_efficacy(model, cfg: AuditConfig, conditions: list[Condition], vectors: dict,
                        coef_abs: dict, pairs: dict, heldout: dict, out: Path) -> dict:
    """Per unmitigated steered condition key, the open-ended efficacy fields.

    The held-out questions are asked without their choices and answered greedily
    (``open_ended_tokens``) unsteered and under each condition; every answer is scored on the
    behaviour axis fitted on the training pairs' choice texts
    (:mod:`workbench.evaluation.open_ended`). Answers and scores go to ``open_ended.jsonl``.
    """
    from workbench.evaluation.batched import generate_conditions
    from workbench.evaluation.generation import generate
    from workbench.evaluation.judges.trained import embed_texts
    from workbench.evaluation.open_ended import axis_accuracy, choice_texts, fit_behaviour_axis
    from workbench.evaluation.embeddings import minilm_model

    conds = [c for c in conditions if c.behaviour != "none" and not c.mitigated
             and not c.harmful_only and heldout.get(_items_name(c)) and pairs.get(_items_name(c))]
    if not conds:
        return {}
    encoder, tokens = minilm_model(), cfg.open_ended_tokens
    rows = cfg.generation_batch or (256 if model.device.type == "cuda" else 128)
    result, records = {}, []
    for name in dict.fromkeys(_items_name(c) for c in conds):
        group = [c for c in conds if _items_name(c) == name]
        _, m_train, n_train = choice_texts(pairs[name])
        held = heldout[name][:cfg.open_ended_items]
        stems, m_held, n_held = choice_texts(held)
        axis = fit_behaviour_axis(embed_texts(m_train, encoder), embed_texts(n_train, encoder))
        accuracy = axis_accuracy(axis, embed_texts(m_held, encoder), embed_texts(n_held, encoder))
        prompts = model.tokenize_instructions(stems)
        if cfg.engine == "batched":
            deltas = [{}] + [{c.layer: condition_delta(vectors[c.vector_key].float(),
                                                       coef_abs[c.key])} for c in group]
            answers = generate_conditions(model, prompts, deltas, tokens, cfg.steer_positions,
                                          batch_size=rows, progress=cfg.progress)
        else:
            answers = [generate(model, prompts, tokens, cfg.batch_size, progress=cfg.progress)]
            for c in group:
                with _steer(model, cfg, c, vectors, coef_abs[c.key]):
                    answers.append(generate(model, prompts, tokens, cfg.batch_size,
                                            progress=cfg.progress))
        scores = [axis.score(embed_texts(a, encoder)) for a in answers]
        for cond, ans, sc in zip([None, *group], answers, scores):
            records += [{"items": name, "condition": cond.key if cond else "none",
                         "behaviour": cond.behaviour if cond else "none",
                         "coefficient": cond.coefficient if cond else 0.0,
                         "question": q, "answer": a, "score": float(x)}
                        for q, a, x in zip(stems, ans, sc)]
        for cond, sc in zip(group, scores[1:]):
            d = paired_mean_delta(scores[0], sc)
            result[cond.key] = {
                "open_n": d["n"], "open_score_baseline": d["mean_base"],
                "open_score": d["mean_steered"], "open_delta": d["delta"],
                "open_ci_low": d["ci_low"], "open_ci_high": d["ci_high"],
                "open_p_value": d["p_value"], "open_axis_accuracy": accuracy,
                "open_mde": d["mde"]}
    write_text(out / "open_ended.jsonl", "".join(json.dumps(r) + "\n" for r in records))
    return result

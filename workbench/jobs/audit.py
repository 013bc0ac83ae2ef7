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

import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from safetensors.torch import load_file

from workbench.activations import collect_activations
from workbench.data import embedded_instructions, instruction_source, split
from workbench.data.benchmarks import load_attack_prompts
from workbench.directions import CandidateScore, RefusalSelection, refusal_subspace
from workbench.errors import WorkbenchError
from workbench.evaluation import generate
from workbench.evaluation.judges import is_comprehensible, is_refusal, make_judge
from workbench.evaluation.templates import resolve_templates
from workbench.geometry import cosine_by_layer, remove_projection, remove_subspace, unit
from workbench.jobs.config import AuditConfig, result_fields
from workbench.jobs.directions import (
    Directions,
    DirectionsConfig,
    compute_directions,
    model_record,
    read_direction_inputs,
    refusal_record,
    write_directions,
)
from workbench.jobs import common
from workbench.jobs.analysis import analyse_run
from workbench.jobs.store import GenerationStore
from workbench.model import load_model
from workbench.progress import JobProgress
from workbench.runs import package_versions, read_json, write_json
from workbench.steering import add_vector


AUDIT_STAGES = ["read inputs", "load model", "refusal candidates", "refusal selection",
                "CAA vectors", "activations", "generation", "analysis", "figures"]


@dataclass(frozen=True)
class Condition:
    """One steering condition; the baseline has behaviour "none"."""

    behaviour: str = "none"
    layer: int | None = None
    coefficient: float = 0.0
    mitigated: bool = False

    @property
    def key(self) -> str:
        return f"{self.behaviour}|{self.layer}|{self.coefficient}|{self.mitigated}"


def directions_config(cfg: AuditConfig) -> DirectionsConfig:
    """The directions part of an audit config."""
    contrast = {b: cfg.contrast_files.get(b, "embedded") for b in cfg.behaviours}
    return DirectionsConfig(
        model=cfg.model, harmful=cfg.harmful, harmless=cfg.harmless, contrast=contrast,
        out=cfg.out, device=cfg.device, n_train=cfg.n_train, n_val=cfg.n_val, seed=cfg.seed,
        batch_size=cfg.batch_size, search_layers=cfg.search_layers,
        search_positions=cfg.search_positions, progress=cfg.progress, caa_limit=cfg.caa_limit,
    )


def load_attack(cfg: AuditConfig) -> list:
    """Attack prompts: the embedded harmful set, a dataset name, or a file."""
    if cfg.attack == "embedded":
        items = embedded_instructions("harmful")
        if cfg.attack_limit is not None:
            items = split(items, [min(cfg.attack_limit, len(items))], cfg.seed + 1)[0]
        return items
    return load_attack_prompts(cfg.attack, source=cfg.attack_source, limit=cfg.attack_limit,
                               seed=cfg.seed)


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
    t = load_file(path)
    sel = RefusalSelection(direction=t["refusal.direction"].double(), position=ref["position"],
                           offset=ref["offset"], layer=ref["layer"],
                           scores=[CandidateScore(**ref["scores"])],
                           baseline=ref["baseline"], filters_passed=ref["filters_passed"])
    caa = {k.split(".", 1)[1]: v.double() for k, v in t.items() if k.startswith("caa.")}
    if set(caa) != set(cfg.behaviours):
        return None
    return Directions(t["refusal.candidates"].double(), sel, caa, {"reused": True})


def steering_vectors(cfg: AuditConfig, directions: Directions, basis: torch.Tensor | None,
                     layers: list[int]) -> dict[tuple[str, int, bool], torch.Tensor]:
    """The vector added for each (behaviour, layer, mitigated), before the coefficient."""
    r = directions.selection.direction
    out = {}
    for b in cfg.behaviours:
        for l in layers:
            v = directions.caa[b][l].double()
            out[(b, l, False)] = v
            out[(b, l, True)] = remove_subspace(v, basis) if basis is not None else remove_projection(v, r)
    return out


def _record(cond: Condition, template: str, item, split_name: str, response: str,
            label: str, refusal: bool, comprehensible: bool) -> dict:
    return {
        "key": f"{cond.key}|{template}|{item.id}|{split_name}", "split": split_name,
        "behaviour": cond.behaviour, "layer": cond.layer, "coefficient": cond.coefficient,
        "mitigated": cond.mitigated, "template": template, "prompt_id": item.id,
        "category": item.category, "instruction": item.instruction, "response": response,
        "refusal": refusal, "comprehensible": comprehensible, "label": label,
    }


def _with_ids(items: list, prefix: str) -> list:
    from workbench.data import Instruction

    return [i if i.id else Instruction(i.instruction, f"{prefix}-{n}", i.category)
            for n, i in enumerate(items)]


def run_audit(cfg: AuditConfig) -> dict:
    """Run (or resume) an audit and write every file of the run directory."""
    t0 = time.time()
    job = JobProgress("audit", AUDIT_STAGES, enabled=cfg.progress, weights={"generation": 20})
    job.stage("read inputs")
    out = Path(cfg.out)
    check_run_dir(out, cfg)
    templates = resolve_templates(cfg.templates, cfg.template_files)
    judge = make_judge(cfg.judge)
    dcfg = directions_config(cfg)
    inputs = read_direction_inputs(dcfg)
    attack = _with_ids(load_attack(cfg), "attack")
    used = {i.instruction for i in inputs.safe_train + inputs.safe_val}
    benign = _with_ids(load_benign(cfg, used), "benign")
    timings = {"read_inputs": time.time() - t0}

    t = time.time()
    job.stage("load model")
    model = load_model(cfg.model, device=cfg.device, trust_remote_code=cfg.trust_remote_code)
    timings["load_model"] = time.time() - t
    for l in cfg.layers or []:
        model.check_layer(l)

    directions = _saved_directions(out, cfg)
    if directions is None:
        directions = compute_directions(model, inputs, dcfg, job, checkpoint_dir=out)
        write_directions(out, directions, model, cfg.model)
    timings.update({f"directions.{k}": v for k, v in directions.timings.items()})
    sel = directions.selection
    layers = cfg.layers or [sel.layer]
    record = {
        "job": "audit", "config": asdict(cfg), "result_config": result_fields(cfg),
        "model": model_record(model), "data": inputs.files,
        "attack": {"source": cfg.attack, "n": len(attack),
                   "ids": [i.id for i in attack]},
        "benign": {"source": cfg.benign, "n": len(benign)},
        "templates": {t.name: t.text for t in templates},
        "refusal": refusal_record(sel), "steering_layers": layers,
        "versions": package_versions(), "status": "generating",
    }
    write_json(out / "run.json", record)

    # refusal-layer activations: the subspace basis and the projections figure
    t = time.time()
    job.stage("activations")
    tok = lambda items: model.tokenize_instructions([i.instruction for i in items])  # noqa: E731
    harm_acts = collect_activations(model, tok(inputs.harm_train), layers=[sel.layer],
                                    batch_size=cfg.batch_size, progress=False)["resid_pre"][:, 0, 0]
    safe_acts = collect_activations(model, tok(inputs.safe_train), layers=[sel.layer],
                                    batch_size=cfg.batch_size, progress=False)["resid_pre"][:, 0, 0]
    basis = (refusal_subspace(harm_acts, safe_acts, cfg.subspace_k)
             if cfg.mitigation == "subspace" else None)
    vectors = steering_vectors(cfg, directions, basis, layers)
    timings["activations"] = time.time() - t

    conditions = [Condition()] + [
        Condition(b, l, float(c), m) for b in cfg.behaviours for l in layers
        for c in cfg.coefficients for m in (False, True)]
    store = GenerationStore(out / "generations.jsonl")
    harmful_items = [(tpl, item, tpl.apply(item.instruction)) for tpl in templates for item in attack]
    benign_items = [(None, item, item.instruction) for item in benign]
    t = time.time()
    job.stage("generation")
    for cond in job.bar(conditions, unit="cond"):
        todo = [("harmful", tpl.name, item, text) for tpl, item, text in harmful_items
                if f"{cond.key}|{tpl.name}|{item.id}|harmful" not in store]
        todo += [("harmless", "direct", item, text) for _, item, text in benign_items
                 if f"{cond.key}|direct|{item.id}|harmless" not in store]
        if not todo:
            continue
        _generate_condition(model, cfg, cond, vectors, todo, judge, store)
    timings["generation"] = time.time() - t

    t = time.time()
    job.stage("analysis")
    cosines = {(b, l): float(cosine_by_layer(directions.caa[b][l][None].double(),
                                             unit(sel.direction.double()))[0])
               for b in cfg.behaviours for l in layers}
    summary = analyse_run(out, store.values(), cosines, harm_acts, safe_acts, sel, cfg, record,
                          harm_ids=[i.id for i in inputs.harm_train],
                          safe_ids=[i.id for i in inputs.safe_train],
                          harm_cats=[i.category for i in inputs.harm_train])
    timings["analysis"] = time.time() - t
    from workbench.figures import render_audit_figures

    return common.finish_run(out, cfg, record, render_audit_figures, [], timings, t0,
                             n_generations=len(store), summary=summary, job=job)


def _generate_condition(model, cfg, cond, vectors, todo, judge, store) -> None:
    """Generate and judge the missing items of one condition, appending batch by batch."""
    from contextlib import nullcontext

    steer = (nullcontext() if cond.behaviour == "none" else
             add_vector(model, vectors[(cond.behaviour, cond.layer, cond.mitigated)].float(),
                        layers=cond.layer, coefficient=cond.coefficient,
                        positions=cfg.steer_positions))
    chunk = cfg.batch_size * 4
    with steer:
        for start in range(0, len(todo), chunk):
            part = todo[start:start + chunk]
            prompts = model.tokenize_instructions([text for _, _, _, text in part])
            responses = generate(model, prompts, max_new_tokens=cfg.max_new_tokens,
                                 batch_size=cfg.batch_size, progress=False)
            harmful_idx = [i for i, p in enumerate(part) if p[0] == "harmful"]
            labels = dict(zip(harmful_idx, judge.label([part[i][3] for i in harmful_idx],
                                                        [responses[i] for i in harmful_idx])))
            recs = []
            for i, ((split_name, tpl, item, _), resp) in enumerate(zip(part, responses)):
                refusal, comp = is_refusal(resp), is_comprehensible(resp)
                if split_name == "harmful":
                    label = labels[i]
                else:
                    label = "incomprehensible" if not comp else ("refused" if refusal else "complied")
                recs.append(_record(cond, tpl, item, split_name, resp, label, refusal, comp))
            store.append(recs)

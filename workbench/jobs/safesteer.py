"""The SafeSteer job: category-specific safety steering, by vectors and by neurons, compared.

Steps (definitions in ``workbench/safesteer/README.md``):

1. prompts: harmful ones grouped by risk category (train / held-out eval per category), safe
   ones (D_safe) and benign held-out ones;
2. texts: each train prompt plus the model's own greedy response (stored in
   ``generations.jsonl``, so a re-run does not generate them again);
3. one pass over the texts: token-mean ``attn_out`` per text (category vectors) and streamed
   ``mlp_post`` sums (neuron selectivity, with the held-out split);
4. SafeSteer vectors ``w_l^c``, neuron scores and neuron vectors ``v_l^c``, the refusal
   direction, and their geometry;
5. evaluation: held-out prompts of each category (and benign prompts) answered unsteered and
   under each method x layer x multiplier, judged, scored for quality and relevance.

Run directory: ``run.json``, ``vectors.safetensors``, ``neurons.csv``, ``neuron_summary.csv``,
``neuron_overlap.csv``, ``geometry.csv``, ``metrics.csv``, ``generations.jsonl``,
``report.md``, ``figures/``. Resumable; a RUN_DIR written by another config is refused.
"""

from __future__ import annotations

import itertools
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from workbench.directions import refusal_candidates, select_refusal_direction
from workbench.errors import WorkbenchError
from workbench.evaluation.work import GenerationItem, run_local
from workbench.evaluation.judges import (
    JAILBROKEN,
    SubstringJudge,
    is_comprehensible,
    is_refusal,
    label_response,
    make_judge,
    validated_agreement,
)
from workbench.geometry import cosine_by_layer
from workbench.jobs import common
from workbench.jobs.directions import model_record
from workbench.rundir.store import GenerationStore
from workbench.model import DEFAULT_MODEL, load_model
from workbench.model.precision import dtype_name
from workbench.progress import JobProgress
from workbench.runs import package_versions, write_csv, write_json, write_tensors
from workbench.vectors import safesteer_metadata
from workbench.safesteer.analysis import rows_for_csv, write_analysis
from workbench.safesteer.data import MIN_TRAIN, CategoryData, load_category_data, text_tokens
from workbench.safesteer.neurons import (
    GroupStats,
    NeuronScores,
    default_cos_threshold,
    heldout_check,
    jaccard_overlap,
    neuron_rows,
    neuron_vector,
    score_neurons,
    sharing_rows,
    stream_text_activations,
)
from workbench.safesteer.quality import RELEVANCE_METHODS, response_perplexity
from workbench.safesteer.steering import add_category_vector, add_neuron_vector, scale_neurons
from workbench.safesteer.vectors import category_vector

METHODS = ("safesteer", "neuron_add", "neuron_suppress")
TEXT_MODES = ("prompt_response", "prompt")
REFUSAL_FILTERS = ("both", "safe", "unsafe", "none")
FALLBACKS = ("all", "error")
SUPPRESS_VALUES = ("safe_mean", "zero")
SUBSTRING = "substring"
PAPER_LAYER_FRAC = 14 / 32  # the paper's main result: layer 14 of 32
SAFESTEER_STAGES = ["read inputs", "load model", "train responses", "vectors and neurons",
                    "evaluation", "analysis", "figures"]


@dataclass
class SafeSteerConfig:
    """Every setting of a SafeSteer run; presets fill it, a TOML file and flags override it."""

    preset: str = "quick"
    model: str = DEFAULT_MODEL
    trust_remote_code: bool = False  # run code shipped with the model (off unless asked for)
    device: str | None = None
    # auto: bfloat16 on GPUs and on CPUs with native bfloat16, else float32 (the reference)
    dtype: str = "auto"
    out: str = "runs/safesteer"
    # prompts
    harmful: str = "embedded"  # embedded, a benchmark name (jbb, harmbench, ...) or a file
    harmful_source: str = "auto"
    harmless: str = "embedded"
    categories: list[str] | None = field(default_factory=lambda: [
        "cybercrime", "hate_harassment", "privacy"])
    n_train: int = 10  # per category, for vectors and neurons
    n_eval: int = 5  # held-out per category
    n_safe: int = 24  # safe texts (D_safe)
    n_benign_eval: int = 3
    # texts
    text: str = "prompt_response"
    response_tokens: int = 32
    # "both" (as published): D_unsafe^c keeps only answers the judge calls compliant
    # (jailbroken) and D_safe drops refusals; "unsafe" / "safe" apply one side, "none" neither
    filter_refusals: str = "both"
    too_few_compliant: str = "all"  # fewer than MIN_TRAIN compliant: use "all" answers, or "error"
    median_filter: bool = True
    # steering
    layers: list[int] | None = None  # None: round(14/32 * n_layers), the paper's layer
    multipliers: list[float] = field(default_factory=lambda: [1.0, 4.0])
    methods: list[str] = field(default_factory=lambda: list(METHODS))
    top_k: int = 16
    neuron_layers: list[int] | None = None  # layers whose neurons are scored; None: all
    suppress_value: str = "safe_mean"
    suppress_scales: list[float] = field(default_factory=lambda: [0.0])
    # refusal direction: candidates (diff-in-means per layer), select, or a directions run
    refusal: str = "candidates"
    refusal_search_layers: list[int] | None = None
    refusal_cos_threshold: float | None = None  # None: 3 / sqrt(d_model)
    # generation and judging
    max_new_tokens: int = 48
    batch_size: int = 16
    judge: str = "probe"  # the best judge available offline (docs/judges.md)
    relevance: str = "minilm"
    seed: int = 0
    # outputs
    figures: bool = True
    png: bool = True
    progress: bool = True


NON_RESULT_FIELDS = common.NON_RESULT_FIELDS

PRESETS: dict[str, dict] = {
    "smoke": dict(
        model="tiny-random", categories=["violence", "privacy", "drugs"], n_train=6, n_eval=2,
        n_safe=8, n_benign_eval=2, response_tokens=6, max_new_tokens=8, layers=[1],
        multipliers=[2.0], top_k=4, relevance="tfidf", png=False, judge="substring",
        dtype="float32",  # the CI preset: bit-reproducible on every machine
    ),
    # 3 categories x 10 held-out prompts: n = 30 paired answers per method (pooled over
    # categories), where a one-way 30-point change has exact-McNemar power 0.92 (0.71 with 5%
    # switching back); 10 benign prompts per vector (30 answers per method). One multiplier
    # keeps it near 7-8 minutes on 2 CPU cores (README, `python -m workbench.safesteer.power`).
    "quick": dict(n_eval=10, n_benign_eval=10, multipliers=[4.0], batch_size=20),
    "full": dict(
        categories=None, n_train=14, n_eval=6, n_safe=64, n_benign_eval=20, response_tokens=64,
        multipliers=[0.5, 1.0, 2.0, 4.0], suppress_scales=[0.0, 0.5], max_new_tokens=128,
        batch_size=32,
    ),
}


def read_toml(path: str | Path) -> dict:
    """SafeSteer settings from a TOML file; every key must be a SafeSteerConfig field."""
    return common.read_toml(path, SafeSteerConfig)


def _check_choice(name: str, value, choices) -> None:
    if value not in choices:
        raise WorkbenchError(f"{name} {value!r} is unknown; use one of {', '.join(choices)}")


def build_config(preset: str | None = None, toml: str | None = None,
                 **overrides) -> SafeSteerConfig:
    """Preset (flag, else the TOML's ``preset``, else quick), then the TOML, then overrides."""
    cfg = common.resolve_config(SafeSteerConfig, PRESETS, preset, toml, overrides)
    _check_choice("text", cfg.text, TEXT_MODES)
    _check_choice("filter_refusals", cfg.filter_refusals, REFUSAL_FILTERS)
    _check_choice("too_few_compliant", cfg.too_few_compliant, FALLBACKS)
    _check_choice("suppress_value", cfg.suppress_value, SUPPRESS_VALUES)
    _check_choice("relevance", cfg.relevance, RELEVANCE_METHODS)
    for m in cfg.methods:
        _check_choice("method", m, METHODS)
    if not cfg.methods:
        raise WorkbenchError(f"no methods given; use some of {', '.join(METHODS)}")
    if not cfg.multipliers and any(m != "neuron_suppress" for m in cfg.methods):
        raise WorkbenchError("no multipliers given; e.g. multipliers = [1.0, 2.0]")
    if cfg.refusal not in ("candidates", "select") and not Path(cfg.refusal).exists():
        raise WorkbenchError(f"refusal {cfg.refusal!r} is not 'candidates', 'select' or an "
                             "existing directions run; run `workbench directions` first or use "
                             "refusal = 'candidates'")
    if cfg.top_k < 1:
        raise WorkbenchError(f"top_k is {cfg.top_k}; give a positive number of neurons")
    return cfg


def result_fields(cfg: SafeSteerConfig, model=None) -> dict:
    """The part of the config that determines results (compared when resuming).

    A model passed in runs in its own dtype, which is then the run's.
    """
    values = common.result_fields(cfg, NON_RESULT_FIELDS)
    if model is not None:
        values["dtype"] = dtype_name(model.dtype)
    return values


def check_run_dir(out: Path, cfg: SafeSteerConfig, model=None) -> None:
    """Refuse to mix results: an existing RUN_DIR must have been written by the same config."""
    common.check_run_dir(out, "safesteer", result_fields(cfg, model))


# --------------------------------------------------------------------------- conditions


@dataclass(frozen=True)
class Condition:
    """One evaluation condition; the unsteered baseline has method "none"."""

    method: str = "none"
    category: str = "none"
    layer: int | None = None
    multiplier: float = 0.0

    @property
    def key(self) -> str:
        return f"{self.method}|{self.category}|{self.layer}|{self.multiplier}"


def conditions(cfg: SafeSteerConfig, categories: list[str], layers: list[int]) -> list[Condition]:
    """The baseline, then every method x category x layer x multiplier (scale for suppress)."""
    out = [Condition()]
    for method in cfg.methods:
        mults = cfg.suppress_scales if method == "neuron_suppress" else cfg.multipliers
        out += [Condition(method, c, l, float(m))
                for c, l, m in itertools.product(categories, layers, mults)]
    return out


def steering_layers(cfg: SafeSteerConfig, model) -> list[int]:
    layers = cfg.layers or [round(PAPER_LAYER_FRAC * model.n_layers)]
    return sorted({model.check_layer(l) for l in layers})


def scored_layers(cfg: SafeSteerConfig, model, steer: list[int]) -> list[int]:
    if cfg.neuron_layers is None:
        return list(range(model.n_layers))
    layers = sorted({model.check_layer(l) for l in cfg.neuron_layers})
    missing = [l for l in steer if l not in layers]
    if missing and any(m.startswith("neuron") for m in cfg.methods):
        raise WorkbenchError(f"steering layer {missing[0]} is not among neuron_layers {layers}; "
                             "add it there or drop the neuron methods")
    return layers


# --------------------------------------------------------------------------- texts


def judge_labels(judge, prompts: list[str], responses: list[str]) -> list[dict[str, str]]:
    """Every judge's label per answer: the configured judge's (and its members'), and substring.

    Keys are judge names; ``substring`` is always present so rates can be compared side by side.
    """
    detail = judge.label_detail(prompts, responses) if prompts else {}
    if SUBSTRING not in detail:
        detail[SUBSTRING] = SubstringJudge().label(prompts, responses)
    return [{name: labels[k] for name, labels in detail.items()} for k in range(len(prompts))]


def _train_record(item, split_name: str, response: str, labels: dict) -> dict:
    return {"key": f"{split_name}|{item.id}", "split": split_name, "prompt_id": item.id,
            "category": item.category, "instruction": item.instruction, "response": response,
            "refusal": is_refusal(response), "labels": labels}


def training_responses(model, cfg: SafeSteerConfig, data: CategoryData,
                       store: GenerationStore, judge, job: JobProgress | None = None,
                       executor=None) -> None:
    """Greedy responses to every train prompt (unsafe and safe) that the store lacks, judged.

    ``executor`` runs the generation work items (default: in this process).
    """
    todo = [("train_unsafe", i) for c in data.categories for i in data.train[c]]
    todo += [("train_safe", i) for i in data.safe_train]
    todo = [(s, i) for s, i in todo if f"{s}|{i.id}" not in store]
    chunk = cfg.batch_size  # one generation batch per item: progress lines and saves stay frequent
    items = [GenerationItem(part, model.tokenize_instructions([i.instruction for _, i in part]),
                            [None], cfg.response_tokens, engine="reference",
                            batch_size=cfg.batch_size)
             for part in (todo[s:s + chunk] for s in range(0, len(todo), chunk))]
    if not items:
        return
    job = job or JobProgress("safesteer", [], enabled=False)
    run = executor or (lambda its: run_local(model, its))
    for item, ids in job.bar(run(items), total=len(items), unit="batch"):
        part, instructions = item.tag, [i.instruction for _, i in item.tag]
        responses = _decode(model, ids[0])
        labels = judge_labels(judge, instructions, responses)
        store.append([_train_record(i, s, r, lab)
                      for (s, i), r, lab in zip(part, responses, labels)])


def _decode(model, ids: list[list[int]]) -> list[str]:
    return [model.tokenizer.decode(t, skip_special_tokens=True) for t in ids]


def _compliant(rec: dict, judge_name: str) -> bool:
    """Whether the configured judge called a stored train answer compliant (``jailbroken``)."""
    labels = rec.get("labels") or {}
    label = labels.get(judge_name, labels.get(SUBSTRING))
    if label is None:  # a record written before answers were judged: substring on the fly
        label = label_response(rec["response"])
    return label == JAILBROKEN


def select_texts(records: list[dict | None], side: str, cfg: SafeSteerConfig,
                 judge_name: str) -> tuple[list[int], dict]:
    """Which train answers enter a group, and a record of the choice.

    Unsafe side (filter ``both``/``unsafe``): answers the judge calls compliant; safe side
    (``both``/``safe``): answers that are not refusals (substring). With fewer than
    ``MIN_TRAIN`` left, ``too_few_compliant = "all"`` uses every answer of the group (and says
    so in ``used``); ``"error"`` stops.
    """
    n = len(records)
    filtered = cfg.filter_refusals in ("both", side) and cfg.text != "prompt"
    if not filtered:
        return list(range(n)), {"n": n, "of": n, "used": "all answers (no filter)"}
    if side == "unsafe":
        keep = [k for k, r in enumerate(records) if _compliant(r, judge_name)]
        what = f"judged compliant by {judge_name}"
    else:
        keep = [k for k, r in enumerate(records) if not r["refusal"]]
        what = "not refusals (substring)"
    info = {"n": len(keep), "of": n, "kept_rule": what, "n_filtered": len(keep)}
    if len(keep) >= MIN_TRAIN:
        return keep, {**info, "used": what}
    if cfg.too_few_compliant == "error":
        raise WorkbenchError(
            f"only {len(keep)} of {n} train answers are {what} but {MIN_TRAIN} are needed; set "
            "too_few_compliant = 'all', filter_refusals = 'none', or raise n_train / n_safe")
    return list(range(n)), {**info, "n": n, "used": "all answers, refusals included",
                            "fallback": f"only {len(keep)} of {n} answers are {what} "
                                        f"(< {MIN_TRAIN}); used all {n} answers instead"}


def build_texts(model, cfg: SafeSteerConfig, data: CategoryData,
                store: GenerationStore, judge_name: str = SUBSTRING
                ) -> tuple[dict[str, list[list[int]]], dict]:
    """Token ids per group (each category, and ``safe``) after the answer filter, and a record.

    The record (``run.json`` ``texts``) gives per group ``n`` used of ``of``, the rule, and a
    ``fallback`` note where too few answers passed it.
    """
    groups = {c: ("train_unsafe", data.train[c]) for c in data.categories}
    groups["safe"] = ("train_safe", data.safe_train)
    texts, kept = {}, {}
    for name, (split_name, items) in groups.items():
        side = "safe" if name == "safe" else "unsafe"
        recs = [store.records.get(f"{split_name}|{i.id}") if cfg.text != "prompt" else None
                for i in items]
        idx, info = select_texts(recs, side, cfg, judge_name)
        texts[name] = [text_tokens(model, items[k].instruction,
                                   recs[k]["response"] if recs[k] else None) for k in idx]
        if len(texts[name]) < MIN_TRAIN:
            raise WorkbenchError(f"{name!r} has {len(texts[name])} texts but {MIN_TRAIN} are "
                                 "needed; raise n_train / n_safe")
        kept[name] = info
    return texts, kept


# --------------------------------------------------------------------------- refusal


def refusal_directions(
    model, cfg: SafeSteerConfig, data: CategoryData
) -> tuple[torch.Tensor, dict]:
    """A refusal direction per layer ``[n_layers, d_model]`` (float64) and its record."""
    tok = lambda items: model.tokenize_instructions([i.instruction for i in items])
    harm = [i for c in data.categories for i in data.train[c]]
    safe = data.safe_train
    if cfg.refusal == "candidates":
        cand = refusal_candidates(model, tok(harm), tok(safe), cfg.batch_size, progress=False)
        return cand[-1].double(), {"kind": "candidates", "offset": -1,
                                   "note": "diff-in-means at the last eoi token, per layer"}
    if cfg.refusal == "select":
        cand = refusal_candidates(model, tok(harm[0::2]), tok(safe[0::2]), cfg.batch_size,
                                  progress=False)
        sel = select_refusal_direction(model, cand, tok(harm[1::2]), tok(safe[1::2]),
                                       layers=cfg.refusal_search_layers,
                                       batch_size=cfg.batch_size, progress=cfg.progress)
        r = sel.direction.double()
        return r.expand(model.n_layers, -1).clone(), {
            "kind": "select", "layer": sel.layer, "offset": sel.offset,
            "filters_passed": sel.filters_passed}
    from safetensors.torch import load_file

    path = Path(cfg.refusal)
    path = path / "directions.safetensors" if path.is_dir() else path
    if not path.is_file():
        raise WorkbenchError(f"refusal {cfg.refusal!r} is not 'candidates', 'select' or a "
                             "directions run (no directions.safetensors there); run `workbench "
                             "directions` first or use refusal = 'candidates'")
    tensors = load_file(path)
    if "refusal.direction" not in tensors:
        raise WorkbenchError(f"{path} has no refusal.direction; give a `workbench directions` run")
    r = model.check_vector(tensors["refusal.direction"].double(), f"refusal direction in {path}")
    return r.expand(model.n_layers, -1).clone(), {"kind": "file", "path": str(path)}


def landing_directions(refusal: torch.Tensor) -> torch.Tensor:
    """Row ``l``: the refusal direction where an edit at block ``l`` first lands.

    ``attn_out`` and ``mlp_out`` of block ``l`` reach the residual stream read by block
    ``l + 1``, so row ``l`` is the resid_pre direction of layer ``l + 1`` (the last block keeps
    its own). Used for every cosine of a category vector or write-out with refusal.
    """
    n = refusal.shape[0]
    return refusal[[min(l + 1, n - 1) for l in range(n)]]


# --------------------------------------------------------------------------- vectors


@dataclass
class SteeringSet:
    """Everything the evaluation steers with, and the neuron scores behind it."""

    safesteer: dict[str, torch.Tensor]  # category -> [n_layers, d_model]
    neuron: dict[str, torch.Tensor]  # category -> [n_layers, d_model] (zero where not scored)
    top: dict[tuple[str, int], torch.Tensor]  # (category, layer) -> neuron indices
    clamp: dict[tuple[str, int], torch.Tensor]  # clamp values per top neuron
    scores: NeuronScores
    kept: dict
    warnings: list[str] = field(default_factory=list)


def compute_steering(model, cfg: SafeSteerConfig, texts: dict[str, list[list[int]]],
                     categories: list[str], neuron_layers: list[int]) -> SteeringSet:
    """One activation pass per group, then category vectors, neuron scores and neuron vectors."""
    all_layers = list(range(model.n_layers))
    stats, attn = {}, {}
    for name, toks in texts.items():
        halves = [GroupStats.zeros(len(neuron_layers), model.d_mlp) for _ in range(2)]
        attn[name] = stream_text_activations(model, toks, neuron_layers, halves, all_layers,
                                             cfg.batch_size)
        stats[name] = halves
    scores = score_neurons(stats, categories, neuron_layers)
    safesteer, neuron, top, clamp, kept, warnings = {}, {}, {}, {}, {}, []
    for c in categories:
        w, info = category_vector(attn["safe"], attn[c], cfg.median_filter)
        safesteer[c] = w
        kept[c] = {"safe": info["kept_safe"].sum(0).tolist(),
                   "unsafe": info["kept_unsafe"].sum(0).tolist()}
        v = torch.zeros_like(w)
        for l in neuron_layers:
            idx = scores.top(c, l, cfg.top_k)
            ci, li = scores.index(c, l)
            top[(c, l)] = idx
            clamp[(c, l)] = (scores.mean_safe[li, idx].float() if cfg.suppress_value == "safe_mean"
                             else torch.zeros(len(idx)))
            try:
                v[l] = neuron_vector(model, l, idx, scores.t[ci, li, idx], float(w[l].norm()))
            except WorkbenchError:  # no neuron fires more on c here: the row stays 0
                warnings.append(f"no positively selective neuron for {c!r} at layer {l}; its "
                                "neuron vector is 0")
        neuron[c] = v
    return SteeringSet(safesteer, neuron, top, clamp, scores, kept, warnings)


def geometry_rows(steer: SteeringSet, refusal: torch.Tensor, layers: list[int]) -> list[dict]:
    """Cosine of every pair of category vectors, and of each with the refusal direction."""
    rows = []
    for kind, vecs in (("safesteer", steer.safesteer), ("neuron", steer.neuron)):
        named = {**vecs, "refusal": refusal}
        for a, b in itertools.combinations(list(named), 2):
            cos = cosine_by_layer(named[a][layers], named[b][layers])
            rows += [{"kind": kind, "layer": l, "a": a, "b": b, "cosine": float(x)}
                     for l, x in zip(layers, cos)]
    return rows


# --------------------------------------------------------------------------- evaluation


@dataclass(frozen=True)
class SafeSteerSpec:
    """One SafeSteer condition's steering, picklable for a work item (only what it needs)."""

    method: str
    layer: int
    multiplier: float
    vector: torch.Tensor | None = None  # safesteer, neuron_add
    neurons: torch.Tensor | None = None  # neuron_suppress: the top neurons and their clamp
    clamp: torch.Tensor | None = None

    def context(self, model):
        l, m = self.layer, self.multiplier
        if self.method == "safesteer":
            return add_category_vector(model, self.vector, l, m)
        if self.method == "neuron_add":
            return add_neuron_vector(model, self.vector, l, m)
        if self.method == "neuron_suppress":
            return scale_neurons(model, {l: self.neurons}, {l: self.clamp}, scale=m)
        raise WorkbenchError(f"unknown SafeSteer method {self.method!r}")


def steering_spec(cond: Condition, steer: SteeringSet) -> SafeSteerSpec | None:
    """The steering of a condition (``None``: unsteered)."""
    c, l, m = cond.category, cond.layer, cond.multiplier
    if cond.method == "safesteer":
        return SafeSteerSpec("safesteer", l, m, vector=steer.safesteer[c][l].float())
    if cond.method == "neuron_add":
        return SafeSteerSpec("neuron_add", l, m, vector=steer.neuron[c][l].float())
    if cond.method == "neuron_suppress":
        return SafeSteerSpec("neuron_suppress", l, m, neurons=steer.top[(c, l)],
                             clamp=steer.clamp[(c, l)])
    return None


def eval_items(cond: Condition, data: CategoryData) -> list[tuple[str, object]]:
    """(split, prompt) pairs a condition answers: its category's held-out ones and the benign."""
    cats = data.categories if cond.method == "none" else [cond.category]
    return ([("harmful", i) for c in cats for i in data.eval[c]]
            + [("benign", i) for i in data.safe_eval])


def evaluation_items(model, cfg: SafeSteerConfig, conds: list[Condition], data: CategoryData,
                     steer: SteeringSet, store: GenerationStore) -> list[GenerationItem]:
    """Work items for every evaluation answer the store lacks: one condition per item (not all
    SafeSteer steering is additive), its missing prompts in chunks of ``4 * batch_size``; an
    item's ``tag`` is ``(condition, [(split, prompt)])``."""
    items, chunk = [], cfg.batch_size * 4
    for cond in conds:
        todo = [(s, i) for s, i in eval_items(cond, data)
                if f"eval|{cond.key}|{s}|{i.id}" not in store]
        spec = steering_spec(cond, steer)
        for start in range(0, len(todo), chunk):
            part = todo[start:start + chunk]
            items.append(GenerationItem(
                (cond, part), model.tokenize_instructions([i.instruction for _, i in part]),
                [spec], cfg.max_new_tokens, engine="reference", batch_size=cfg.batch_size))
    return items


def evaluate_condition(model, cfg, cond: Condition, part, prompts: list[list[int]],
                       responses: list[str], judge, store: GenerationStore) -> None:
    """Judge and score the perplexity (unsteered) of one batch of a condition's answers."""
    ppl = response_perplexity(model, prompts, responses, batch_size=max(cfg.batch_size // 2, 1))
    harmful = [k for k, (s, _) in enumerate(part) if s == "harmful"]
    detail = dict(zip(harmful, judge_labels(judge, [part[k][1].instruction for k in harmful],
                                            [responses[k] for k in harmful])))
    recs = []
    for k, ((split_name, item), resp) in enumerate(zip(part, responses)):
        refusal, comp = is_refusal(resp), is_comprehensible(resp)
        labels = detail.get(k, {})
        label = labels.get(judge.name) or ("incomprehensible" if not comp else
                                           "refused" if refusal else "complied")
        recs.append({
            "key": f"eval|{cond.key}|{split_name}|{item.id}", "split": split_name,
            "method": cond.method, "category": cond.category, "layer": cond.layer,
            "multiplier": cond.multiplier, "prompt_id": item.id,
            "prompt_category": item.category, "instruction": item.instruction,
            "response": resp, "label": label, "labels": labels, "refusal": refusal,
            "comprehensible": comp,
            "perplexity": ppl[k],
        })
    store.append(recs)


def vector_info(steer: SteeringSet, refusal: torch.Tensor, layers: list[int]) -> dict:
    """(method, category, layer) -> refusal cosine and norm of the vector that method uses."""
    out = {}
    for c in steer.safesteer:
        for l in layers:
            for method, v in (("safesteer", steer.safesteer[c][l]),
                              ("neuron_add", steer.neuron[c][l]),
                              ("neuron_suppress", steer.neuron[c][l])):
                cos = float(cosine_by_layer(v[None], refusal[l])[0])
                out[(method, c, l)] = {"refusal_cosine": cos, "vector_norm": float(v.norm())}
    return out


# --------------------------------------------------------------------------- the job


NEURON_FIELDS = ["category", "layer", "rank", "neuron", "t", "d", "mean_category", "mean_rest",
                 "mean_safe", "t_discovery", "t_heldout", "refusal_t", "refusal_neuron",
                 "writeout_refusal_cos", "refusal_aligned"]
SUMMARY_FIELDS = ["category", "layer", "k", "top_t", "top_d", "discovery_t", "heldout_t",
                  "null_heldout_t", "frac_replicated", "binom_p", "n_refusal_neurons",
                  "chance_refusal_neurons", "n_refusal_aligned", "chance_refusal_aligned"]
OVERLAP_FIELDS = ["category_a", "category_b", "shared", "jaccard"]
GEOMETRY_FIELDS = ["kind", "layer", "a", "b", "cosine"]


def run_safesteer(cfg: SafeSteerConfig, model=None, executor=None) -> dict:
    """Run (or resume) a SafeSteer job and write every file of the run directory.

    ``model`` may be a loaded :class:`WorkbenchModel` of ``cfg.model`` (notebooks, tests).
    ``executor`` runs the generation work items (default: in this process; Ray workers:
    :mod:`workbench.distributed`); this process alone judges and writes the answers.
    """
    t0 = time.time()
    job = JobProgress("safesteer", SAFESTEER_STAGES, enabled=cfg.progress,
                      weights={"train responses": 3, "evaluation": 10})
    job.stage("read inputs")
    out = Path(cfg.out)
    check_run_dir(out, cfg, model)
    data = load_category_data(cfg.harmful, cfg.harmless, cfg.categories, cfg.n_train, cfg.n_eval,
                              cfg.n_safe, cfg.n_benign_eval, cfg.seed, cfg.harmful_source)
    judge = make_judge(cfg.judge, device=cfg.device, dtype=common.judge_dtype(cfg.judge, cfg))
    timings = {"read_inputs": time.time() - t0}
    t = time.time()
    job.stage("load model")
    if model is None:
        model = load_model(cfg.model, device=cfg.device, dtype=cfg.dtype,
                           trust_remote_code=cfg.trust_remote_code)
    elif model.spec != cfg.model:
        raise WorkbenchError(f"the model passed is {model.spec!r} but the config names "
                             f"{cfg.model!r}; pass the configured model or change cfg.model")
    timings["load_model"] = time.time() - t
    layers = steering_layers(cfg, model)
    neuron_layers = scored_layers(cfg, model, layers)
    conds = conditions(cfg, data.categories, layers)
    record = {
        "job": "safesteer", "config": asdict(cfg), "result_config": result_fields(cfg, model),
        "model": model_record(model), "data": data.files, "categories": data.categories,
        "splits": {"train": {c: [i.id for i in v] for c, v in data.train.items()},
                   "eval": {c: [i.id for i in v] for c, v in data.eval.items()},
                   "safe_train": [i.id for i in data.safe_train],
                   "benign_eval": [i.id for i in data.safe_eval]},
        "steering_layers": layers, "neuron_layers": neuron_layers,
        "n_conditions": len(conds), "versions": package_versions(), "status": "generating",
        "judge": {"spec": cfg.judge, "name": judge.name,
                  "model_dtype": common.judge_model_dtype(judge),
                  "validated_agreement": validated_agreement(cfg.judge)},
    }
    write_json(out / "run.json", record)
    store = GenerationStore(out / "generations.jsonl")

    t = time.time()
    job.stage("train responses")
    if cfg.text == "prompt_response":
        training_responses(model, cfg, data, store, judge, job, executor)
    timings["train_responses"] = time.time() - t

    t = time.time()
    job.stage("vectors and neurons")
    texts, kept = build_texts(model, cfg, data, store, judge.name)
    fallbacks = [f"{g}: {v['fallback']}" for g, v in kept.items() if "fallback" in v]
    steer = compute_steering(model, cfg, texts, data.categories, neuron_layers)
    refusal_pre, refusal_rec = refusal_directions(model, cfg, data)
    refusal = landing_directions(refusal_pre)
    threshold = cfg.refusal_cos_threshold or default_cos_threshold(model.d_model)
    for line in fallbacks:
        print(f"warning: {line}", file=sys.stderr)
    record.update(n_safe_texts=kept["safe"]["n"], texts=kept, text_fallbacks=fallbacks,
                  refusal=refusal_rec,
                  refusal_cos_threshold=threshold, median_filter_kept=steer.kept)
    tensors = {f"safesteer.{c}": v for c, v in steer.safesteer.items()}
    tensors.update({f"neuron.{c}": v for c, v in steer.neuron.items()})
    tensors["refusal.direction"] = refusal_pre
    write_tensors(out / "vectors.safetensors", tensors, safesteer_metadata(
        model, tensors, data.files, safesteer_hook="attn_out", neuron_hook="mlp_out",
        refusal=refusal_rec["kind"], shape="[n_layers, d_model]"))
    nrows = neuron_rows(steer.scores, model, cfg.top_k, refusal, threshold)
    checks = heldout_check(steer.scores, cfg.top_k)
    sharing = sharing_rows(nrows, steer.scores, model, cfg.top_k, refusal, threshold)
    overlap = jaccard_overlap(steer.scores, cfg.top_k)
    summary_rows = [{**c, **s} for c, s in zip(checks, sharing)]
    write_csv(out / "neurons.csv", rows_for_csv(nrows, NEURON_FIELDS), NEURON_FIELDS)
    write_csv(out / "neuron_summary.csv", rows_for_csv(summary_rows, SUMMARY_FIELDS),
              SUMMARY_FIELDS)
    write_csv(out / "neuron_overlap.csv", rows_for_csv(overlap, OVERLAP_FIELDS), OVERLAP_FIELDS)
    write_csv(out / "geometry.csv",
              rows_for_csv(geometry_rows(steer, refusal, list(range(model.n_layers))),
                           GEOMETRY_FIELDS), GEOMETRY_FIELDS)
    timings["vectors_and_neurons"] = time.time() - t
    write_json(out / "run.json", record)

    t = time.time()
    job.stage("evaluation")
    items = evaluation_items(model, cfg, conds, data, steer, store)
    run = executor or (lambda its: run_local(model, its))
    for item, ids in job.bar(run(items) if items else [], total=len(items), unit="batch"):
        cond, part = item.tag
        evaluate_condition(model, cfg, cond, part, item.prompts, _decode(model, ids[0]), judge,
                           store)
    timings["evaluation"] = time.time() - t

    t = time.time()
    job.stage("analysis")
    records = [r for r in store.values() if r["key"].startswith("eval|")]
    summary = write_analysis(out, records, vector_info(steer, refusal, layers), checks, sharing,
                             overlap, record)
    timings["analysis"] = time.time() - t
    from workbench.figures.safesteer import render_safesteer_figures

    return common.finish_run(out, cfg, record, render_safesteer_figures,
                             fallbacks + steer.warnings, timings, t0,
                             n_generations=len(store), summary=summary, job=job)


def estimate_generations(cfg: SafeSteerConfig) -> dict:
    """How many prompts a config answers (train responses and evaluation), without a model."""
    n_cats = len(cfg.categories) if cfg.categories else 9
    n_cond = sum(n_cats * len(cfg.layers or [0]) *
                 len(cfg.suppress_scales if m == "neuron_suppress" else cfg.multipliers)
                 for m in cfg.methods)
    train = (n_cats * cfg.n_train + cfg.n_safe) if cfg.text == "prompt_response" else 0
    evals = (n_cats * cfg.n_eval + cfg.n_benign_eval) + n_cond * (cfg.n_eval + cfg.n_benign_eval)
    return {"conditions": n_cond + 1, "train_responses": train, "eval_answers": evals,
            "generated_tokens": train * cfg.response_tokens + evals * cfg.max_new_tokens}


__all__ = [
    "PRESETS",
    "Condition",
    "SafeSteerConfig",
    "build_config",
    "check_run_dir",
    "conditions",
    "estimate_generations",
    "result_fields",
    "run_safesteer",
]

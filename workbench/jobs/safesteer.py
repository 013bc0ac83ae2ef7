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

import sys
import time
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path

from workbench.directions.records import model_record
from workbench.errors import WorkbenchError
from workbench.evaluation.judges import make_judge, validated_agreement
from workbench.evaluation.work import run_local
from workbench import validation
from workbench.jobs import common
from workbench.jobs.options import Preset, option, shared
from workbench.rundir.record import check_run_dir as same_config
from workbench.rundir.store import GenerationStore
from workbench.model import DEFAULT_MODEL, load_model
from workbench.model.precision import dtype_name
from workbench.progress import JobProgress
from workbench.runs import package_versions, write_csv, write_json, write_tensors
from workbench.safesteer.analysis import rows_for_csv, write_analysis
from workbench.safesteer.data import load_category_data
from workbench.safesteer.evaluate import conditions as evaluation_conditions
from workbench.safesteer.evaluate import evaluate_condition, evaluation_items
from workbench.safesteer.layers import scored_layers, steering_layers
from workbench.safesteer.neurons import (
    default_cos_threshold,
    heldout_check,
    jaccard_overlap,
    neuron_rows,
    sharing_rows,
)
from workbench.safesteer.refusal import landing_directions, refusal_directions
from workbench.safesteer.steering_set import compute_steering, geometry_rows, vector_info
from workbench.safesteer.texts import build_texts, decode_responses, training_responses
from workbench.vectors import safesteer_metadata

# the choice tuples, from the one validation module (kept importable here)
INTERVENTIONS = tuple(validation.INTERVENTIONS)
TEXT_MODES = validation.CHOICES["text"]
REFUSAL_FILTERS = validation.CHOICES["filter_refusals"]
FALLBACKS = validation.CHOICES["too_few_compliant"]
SUPPRESS_VALUES = validation.CHOICES["suppress_value"]
SUBSTRING = "substring"
PAPER_LAYER_FRAC = 14 / 32  # the paper's main result: layer 14 of 32
SAFESTEER_STAGES = ["read inputs", "load model", "train responses", "vectors and neurons",
                    "evaluation", "analysis", "figures"]


@dataclass
class SafeSteerConfig:
    """Every setting of a SafeSteer run; presets fill it, a TOML file and flags override it.

    Each field's help (and flag) is in its metadata (:func:`workbench.jobs.options.option`);
    ``workbench safesteer --help`` is built from them and from :data:`PRESETS`.
    """

    preset: str = shared("preset", "quick")
    model: str = shared("model", DEFAULT_MODEL)
    trust_remote_code: bool = shared("trust_remote_code", False)
    device: str | None = shared("device", None)
    dtype: str = shared("dtype", "auto")
    out: str = shared("out", "runs/safesteer")
    # prompts
    harmful: str = option("harmful prompts with risk categories: embedded, a benchmark (jbb, "
                          "harmbench, strongreject, advbench) or a file with categories",
                          "embedded", flag=True)
    harmful_source: str = option("where a named benchmark is read from: auto, file, package or "
                                 "hub", "auto")
    harmless: str = option("safe instructions (D_safe): embedded or a file", "embedded",
                           flag=True)
    categories: list[str] | None = option("risk categories, at least 2 (`workbench list "
                                          "categories`)", flag=True, none="all",
                                          default_factory=lambda: [
        "cybercrime", "hate_harassment", "privacy"])
    n_train: int = option("train prompts per category, for vectors and neurons, >= 4", 10,
                          flag=True)
    n_eval: int = option("held-out prompts per category, >= 1", 5, flag=True)
    n_safe: int = option("safe texts (D_safe)", 24)
    n_benign_eval: int = option("benign held-out prompts per steering vector", 3)
    # texts
    text: str = option("what the vectors and neurons read: prompt_response (the prompt plus "
                       "the model's own answer) or prompt", "prompt_response")
    response_tokens: int = option("tokens of the model's own answer to each train prompt", 32)
    filter_refusals: str = option("which train answers build the category vectors: both (as "
                                  "published: D_unsafe keeps only answers the judge calls "
                                  "compliant, D_safe drops refusals), unsafe, safe or none",
                                  "both", flag=True)
    too_few_compliant: str = option("fewer than MIN_TRAIN compliant answers in a category: "
                                    "use all its answers (all) or stop (error)", "all")
    median_filter: bool = option("build each category vector from the texts farther than the "
                                 "median from the other side's mean (the paper's filter)", True)
    # steering
    layers: list[int] | None = option("steering layers, 0..n_layers-1; unset: round(14/32 x "
                                      "n_layers), the paper's layer", None, flag=True,
                                      none="14/32 of the depth")
    multipliers: list[float] = option("steering multipliers, finite numbers", flag=True,
                                      metavar="M,M", default_factory=lambda: [1.0, 4.0])
    interventions: list[str] = option("steering interventions, comma-separated: "
                                      + ", ".join(validation.INTERVENTIONS)
                                      + " (`workbench list interventions`)",
                                      flag="--intervention", metavar="A,B",
                                      old_flags=("--methods", "--method"),
                                      default_factory=lambda: list(validation.INTERVENTIONS))
    top_k: int = option("neurons per category and layer, >= 1", 16, flag=True)
    neuron_layers: list[int] | None = option("layers whose neurons are scored; unset: all",
                                             None)
    suppress_value: str = option("what neuron_suppress sets the neurons to: safe_mean or zero "
                                 "(times the suppress scale)", "safe_mean")
    suppress_scales: list[float] = option("neuron_suppress scales", default_factory=lambda: [0.0])
    # refusal direction: candidates (diff-in-means per layer), select, or a directions run
    refusal: str = option("refusal direction: candidates (difference in means per layer), "
                          "select, or a `workbench directions` run directory", "candidates",
                          flag=True)
    refusal_search_layers: list[int] | None = option("layers the refusal selection searches "
                                                     "(refusal select); unset: all", None)
    refusal_cos_threshold: float | None = option("cosine with the refusal direction above "
                                                 "which a vector counts as aligned; unset: "
                                                 "3 / sqrt(d_model)", None)
    # generation and judging
    max_new_tokens: int = shared("max_new_tokens", 48)
    batch_size: int = shared("batch_size", 16)
    judge: str = shared("judge", "probe")  # the best judge available offline (docs/judges.md)
    relevance: str = option("answer relevance metric: minilm (sentence embeddings) or tfidf",
                            "minilm", flag=True)
    seed: int = shared("seed", 0)
    # outputs
    figures: bool = shared("figures", True)
    png: bool = shared("png", True)
    progress: bool = shared("progress", True)


NON_RESULT_FIELDS = common.NON_RESULT_FIELDS

PRESETS: dict[str, Preset] = {
    "smoke": Preset("tiny random model, 3 categories, a handful of prompts and tokens: "
                    "seconds, for trying options (float32, bit-reproducible)", dict(
        model="tiny-random", categories=["violence", "privacy", "drugs"], n_train=6, n_eval=2,
        n_safe=8, n_benign_eval=2, response_tokens=6, max_new_tokens=8, layers=[1],
        multipliers=[2.0], top_k=4, relevance="tfidf", png=False, judge="substring",
        dtype="float32",  # the CI preset: bit-reproducible on every machine
    )),
    # 3 categories x 10 held-out prompts: n = 30 paired answers per method (pooled over
    # categories), where a one-way 30-point change has exact-McNemar power 0.92 (0.71 with 5%
    # switching back); 10 benign prompts per vector (30 answers per method). One multiplier
    # keeps it near 7-8 minutes on 2 CPU cores (README, `python -m workbench.safesteer.power`).
    "quick": Preset("the default: the embedded 1.5B model, 3 categories x 10 held-out "
                    "prompts, multiplier 4 (about 6 minutes on 2 cores in bfloat16)", dict(
        n_eval=10, n_benign_eval=10, multipliers=[4.0], batch_size=20)),
    "full": Preset("every category, 4 multipliers, 2 suppress scales, 128 tokens: meant for "
                   "a GPU", dict(
        categories=None, n_train=14, n_eval=6, n_safe=64, n_benign_eval=20, response_tokens=64,
        multipliers=[0.5, 1.0, 2.0, 4.0], suppress_scales=[0.0, 0.5], max_new_tokens=128,
        batch_size=32,
    )),
}


def read_toml(path: str | Path) -> dict:
    """SafeSteer settings from a TOML file; every key must be a SafeSteerConfig field.

    The old key ``methods`` is read as ``interventions``, with a warning.
    """
    return common.read_toml(path, SafeSteerConfig)


def build_config(preset: str | None = None, toml: str | None = None,
                 **overrides) -> SafeSteerConfig:
    """Preset (flag, else the TOML's ``preset``, else quick), then the TOML, then overrides.

    Every check (choices included) is :mod:`workbench.validation`'s; ``methods=`` is the old
    name of ``interventions=`` (accepted with a warning).
    """
    return common.resolve_config(SafeSteerConfig, PRESETS, preset, toml, overrides)


def result_fields(cfg: SafeSteerConfig, model=None) -> dict:
    """The part of the config that determines results (compared when resuming).

    A model passed in runs in its own dtype, which is then the run's.
    """
    values = common.result_fields(cfg, NON_RESULT_FIELDS)
    if model is not None:
        values["dtype"] = dtype_name(model.dtype)
    return values


def check_run_dir(out: Path, cfg: SafeSteerConfig, model=None) -> None:
    """Refuse to mix results: an existing RUN_DIR must have been written by the same config
    (one written before ``methods`` was renamed ``interventions`` included)."""
    same_config(out, "safesteer", result_fields(cfg, model),
                renamed=validation.RENAMED_FIELDS["SafeSteerConfig"])


# --------------------------------------------------------------------------- the job
# (the steps are functions of workbench.safesteer: texts, refusal, steering_set, evaluate)


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
    job = JobProgress("safesteer", SAFESTEER_STAGES, enabled=cfg.progress,
                      weights=safesteer_work(cfg), fixed=["read inputs", "load model", "analysis", "figures"])
    with job:  # the heartbeat: a line at least every 20 s, even inside one long call
        return _run_safesteer(cfg, job, model, executor)


def safesteer_work(cfg: SafeSteerConfig) -> dict[str, float]:
    """Each stage's expected work from the config, in seconds on the reference machine (2 CPU
    cores, the 1.5B model; the audit's rates, :data:`workbench.jobs.audit.SECONDS_PER`), for
    the job's ETA: generated tokens for the train responses and the evaluation, constants for
    the rest."""
    from workbench.jobs.audit import SECONDS_PER

    n = estimate_generations(cfg)
    token = SECONDS_PER["token"]
    return {"read inputs": 0.1, "load model": 3.0,
            "train responses": token * n["train_responses"] * cfg.response_tokens,
            "vectors and neurons": SECONDS_PER["forward"] * 2 * n["train_responses"] + 1.0,
            "evaluation": token * n["eval_answers"] * cfg.max_new_tokens,
            "analysis": 0.01 * n["eval_answers"] + 1.0,
            "figures": (10.0 if cfg.png else 3.0) if cfg.figures else 0.0}


def _run_safesteer(cfg: SafeSteerConfig, job: JobProgress, model, executor) -> dict:
    """The body of :func:`run_safesteer`, under its progress display."""
    t0 = time.time()
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
    layers = steering_layers(model, cfg.layers)
    neuron_layers = scored_layers(model, cfg.neuron_layers, layers, cfg.interventions)
    conds = evaluation_conditions(data.categories, layers, cfg.interventions, cfg.multipliers,
                                  cfg.suppress_scales)
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
    run = executor or (lambda its: run_local(model, its))

    t = time.time()
    job.stage("train responses")
    if cfg.text == "prompt_response":
        for recs in training_responses(model, data, judge, cfg.response_tokens, cfg.batch_size,
                                       store, job, run):
            store.append(recs)
    timings["train_responses"] = time.time() - t

    t = time.time()
    job.stage("vectors and neurons")
    texts, kept = build_texts(model, data, store.records, judge.name, text_mode=cfg.text,
                              refusal_filter=cfg.filter_refusals,
                              fallback=cfg.too_few_compliant)
    fallbacks = [f"{g}: {v['fallback']}" for g, v in kept.items() if "fallback" in v]
    steer = compute_steering(model, texts, data.categories, neuron_layers,
                             batch_size=cfg.batch_size, median_filter=cfg.median_filter,
                             top_k=cfg.top_k, suppress_value=cfg.suppress_value)
    refusal_pre, refusal_rec = refusal_directions(model, data, cfg.refusal, cfg.batch_size,
                                                  cfg.refusal_search_layers, cfg.progress)
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
    items = evaluation_items(model, conds, data, steer, store, cfg.max_new_tokens,
                             cfg.batch_size)
    for item, ids in job.bar(run(items) if items else [], total=len(items), unit="batch",
                              sizes=[i.n_cells * i.max_new_tokens for i in items]):
        cond, part = item.tag
        store.append(evaluate_condition(model, cond, part, item.prompts,
                                        decode_responses(model, ids[0]), judge, cfg.batch_size))
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
                 for m in cfg.interventions)
    train = (n_cats * cfg.n_train + cfg.n_safe) if cfg.text == "prompt_response" else 0
    evals = (n_cats * cfg.n_eval + cfg.n_benign_eval) + n_cond * (cfg.n_eval + cfg.n_benign_eval)
    return {"conditions": n_cond + 1, "train_responses": train, "eval_answers": evals,
            "generated_tokens": train * cfg.response_tokens + evals * cfg.max_new_tokens}


def _conditions_of(cfg: SafeSteerConfig, categories: list[str], layers: list[int]) -> list:
    return evaluation_conditions(categories, layers, cfg.interventions, cfg.multipliers,
                                 cfg.suppress_scales)


def __getattr__(name: str):
    """Moved names, for one release: ``Condition`` and ``conditions`` are in
    :mod:`workbench.safesteer.evaluate` (``conditions`` there takes the values, not the config);
    ``METHODS`` (SafeSteer's methods are its steering interventions) is ``INTERVENTIONS``."""
    if name == "METHODS":
        warnings.warn("workbench.jobs.safesteer.METHODS is deprecated; use INTERVENTIONS",
                      DeprecationWarning, stacklevel=2)
        return INTERVENTIONS
    if name in ("Condition", "conditions"):
        warnings.warn(f"workbench.jobs.safesteer.{name} moved to workbench.safesteer.evaluate",
                      DeprecationWarning, stacklevel=2)
        from workbench.safesteer import evaluate

        return evaluate.Condition if name == "Condition" else _conditions_of
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "PRESETS",
    "SafeSteerConfig",
    "build_config",
    "check_run_dir",
    "estimate_generations",
    "result_fields",
    "run_safesteer",
    "safesteer_work",
]

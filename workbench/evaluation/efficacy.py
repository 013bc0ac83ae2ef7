"""Steering efficacy: does a vector steer its own behaviour? A/B probabilities on held-out items.

For each CAA contrast item the assistant turn is opened with ``"("`` and the model's
next-token probabilities of the letters ``A`` and ``B`` are read with :func:`last_logprobs`
(so any active steering hook applies). Tokenizers that merge ``"(A"`` into one token are
handled too: each letter's probability is that of the *last* token of
``chat_text(question, "(" + letter)`` given everything before it, which is
``P(letter | ... "(")`` when ``"("`` is its own token and ``P("(letter" | ...)`` when merged.

The efficacy of a steering condition is the paired change, over held-out items (pairs not used
to build the vector), of the share of A/B probability on the behaviour-matching letter.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import torch

from workbench.data import ContrastPair
from workbench.errors import WorkbenchError
from workbench.model.logprobs import last_logprobs

__all__ = ["ab_probabilities", "ab_probabilities_conditions", "letter_targets",
           "paired_mean_delta", "steering_efficacy"]

NAN = float("nan")


def letter_targets(model, question: str, letters: Sequence[str] = ("A", "B")):
    """Per letter, the prompt token ids before the letter token and the letter token id."""
    out = {}
    for letter in letters:
        ids = model.tokenizer.encode(model.chat_text(question, f"({letter}"),
                                     add_special_tokens=False)
        out[letter] = (tuple(ids[:-1]), ids[-1])
    if len({target for _, target in out.values()}) != len(out):
        raise WorkbenchError("the answer letters tokenize to the same last token; "
                             "this tokenizer cannot tell them apart after '('")
    return out


def ab_probabilities(
    model, pairs: Sequence[ContrastPair], batch_size: int = 16
) -> pd.DataFrame:
    """One row per pair: ``p_matching``, ``p_not_matching`` and ``p_matching_norm``.

    ``p_matching_norm = p_matching / (p_matching + p_not_matching)`` is the share of the A/B
    probability mass on the behaviour-matching letter (0.5: indifferent). Steering hooks that
    are active when this is called apply.
    """
    if not pairs:
        raise WorkbenchError("no contrast pairs given; pass at least one")
    targets = [letter_targets(model, p.question) for p in pairs]
    prefixes = sorted({prefix for t in targets for prefix, _ in t.values()})
    logprobs = last_logprobs(model, [list(p) for p in prefixes], batch_size)
    return _ab_rows(pairs, targets, prefixes, lambda i, target: float(logprobs[i, target]))


def ab_probabilities_conditions(
    model, pairs: Sequence[ContrastPair], conditions: Sequence, positions: str = "eoi",
    batch_size: int = 64,
) -> list[pd.DataFrame]:
    """:func:`ab_probabilities` under each steering condition (``{layer: delta}``, ``{}``
    unsteered), all conditions in shared batches with each prompt's prefix run once
    (:func:`workbench.steering.conditions.last_logprobs_conditions`)."""
    from workbench.steering.conditions import last_logprobs_conditions

    if not pairs:
        raise WorkbenchError("no contrast pairs given; pass at least one")
    targets = [letter_targets(model, p.question) for p in pairs]
    prefixes = sorted({prefix for t in targets for prefix, _ in t.values()})
    letters = sorted({target for t in targets for _, target in t.values()})
    col = {token: j for j, token in enumerate(letters)}
    lp = last_logprobs_conditions(model, [list(p) for p in prefixes], conditions, letters,
                                  positions, batch_size)
    return [_ab_rows(pairs, targets, prefixes,
                     lambda i, target, c=c: float(lp[c, i, col[target]]))
            for c in range(len(conditions))]


def _ab_rows(pairs, targets, prefixes, logprob) -> pd.DataFrame:
    """The A/B table from ``logprob(prefix index, letter token)``."""
    index = {prefix: i for i, prefix in enumerate(prefixes)}
    rows = []
    for i, (pair, t) in enumerate(zip(pairs, targets)):
        lp = {letter: logprob(index[prefix], target) for letter, (prefix, target) in t.items()}
        p_m, p_n = (float(torch.tensor(lp[x]).exp()) for x in (pair.matching, pair.not_matching))
        rows.append({"item": i, "matching": pair.matching, "p_matching": p_m,
                     "p_not_matching": p_n, "p_matching_norm": p_m / max(p_m + p_n, 1e-30)})
    return pd.DataFrame(rows)


def paired_mean_delta(base: Sequence[float], steered: Sequence[float],
                      alpha: float = 0.05) -> dict:
    """Mean paired change ``steered - base`` with a t interval, the paired t-test p-value, and
    the minimum detectable effect (``mde``: the mean change the test finds with 80% power at
    alpha, given n and the differences' SD ``sd_diff``), so a null reads as a power statement.

    Item i of ``steered`` is paired with item i of ``base`` (the same A/B question). With
    fewer than 2 items, or no variation in the differences, the interval and p-value are NaN
    (a zero-variance difference of exactly 0 gives p = 1).
    """
    from workbench.evaluation.stats import paired_mde

    from scipy import stats

    b, s = np.asarray(base, dtype=float), np.asarray(steered, dtype=float)
    if b.shape != s.shape:
        raise WorkbenchError(f"base has {b.size} values but steered has {s.size}; pair the "
                             "same items in order")
    n = int(b.size)
    out = {"n": n, "mean_base": float(b.mean()) if n else NAN,
           "mean_steered": float(s.mean()) if n else NAN,
           "delta": float((s - b).mean()) if n else NAN,
           "ci_low": NAN, "ci_high": NAN, "p_value": NAN, "sd_diff": NAN, "mde": NAN}
    if n < 2:
        return out
    d = s - b
    out["sd_diff"] = float(d.std(ddof=1))
    out["mde"] = paired_mde(out["sd_diff"], n, alpha)
    if np.ptp(d) == 0:
        return {**out, "ci_low": float(d[0]), "ci_high": float(d[0]),
                "p_value": 1.0 if d[0] == 0 else NAN}
    test = stats.ttest_rel(s, b)
    ci = test.confidence_interval(1 - alpha)
    return {**out, "ci_low": float(ci.low), "ci_high": float(ci.high),
            "p_value": float(test.pvalue)}


def steering_efficacy(model, items: Sequence[ContrastPair], steers: Sequence, positions: str = "eoi",
                      batch_size: int = 16, engine: str = "batched") -> list[dict]:
    """Per steering condition (a :class:`workbench.evaluation.work.Steer`), the paired change
    in p(behaviour-matching A/B answer) on ``items`` against no steering
    (:func:`paired_mean_delta`, as ``p_matching``, ``delta``, ``delta_ci_low`` ...), and the
    A/B probability mass steered and unsteered (``ab_mass``, ``ab_mass_baseline``).

    The batched engine reads every condition in shared batches (each prompt's prefix run once,
    ``2 * batch_size`` rows); the reference engine runs one condition at a time under its hook.
    """
    from workbench.steering.conditions import condition_delta, shares_prefix
    from workbench.steering import add_vector

    if engine == "batched" and shares_prefix(model, positions):
        deltas = [{}] + [{s.layer: condition_delta(s.vector, s.coefficient)} for s in steers]
        tables = ab_probabilities_conditions(model, items, deltas, positions, batch_size * 2)
        base, steered = tables[0], tables[1:]
    else:
        base, steered = ab_probabilities(model, items, batch_size), []
        for s in steers:
            with add_vector(model, s.vector, layers=s.layer, coefficient=s.coefficient,
                            positions=positions):
                steered.append(ab_probabilities(model, items, batch_size))
    rows = []
    for steer_t in steered:
        d = paired_mean_delta(base["p_matching_norm"], steer_t["p_matching_norm"])
        rows.append({
            "n": d["n"], "p_matching": d["mean_steered"], "p_matching_baseline": d["mean_base"],
            "delta": d["delta"], "delta_ci_low": d["ci_low"], "delta_ci_high": d["ci_high"],
            "p_value": d["p_value"], "sd_diff": d["sd_diff"], "mde": d["mde"],
            "ab_mass": float((steer_t["p_matching"] + steer_t["p_not_matching"]).mean()),
            "ab_mass_baseline": float((base["p_matching"] + base["p_not_matching"]).mean())})
    return rows

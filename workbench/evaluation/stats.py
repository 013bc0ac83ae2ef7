"""Statistics for audit rates: binomial intervals, paired deltas, trends and rate tables.

Rates here are shares of boolean flags (jailbroken, refused, ...) over prompts; every
function returns plain floats and dicts so results drop straight into JSON run records.
"""

from __future__ import annotations

import math
from numbers import Integral
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from workbench.errors import WorkbenchError

NAN = float("nan")
CI_METHODS = ("wilson", "beta", "agresti_coull", "jeffreys", "normal", "binom_test")


def as_flags(values: Iterable[Any], name: str = "values") -> np.ndarray:
    """``values`` as a bool array; only True/False/0/1 are accepted (no silent truthiness)."""
    values = list(values)
    bad = [v for v in values if not (isinstance(v, (bool, np.bool_, Integral)) and v in (0, 1))]
    if bad:
        raise WorkbenchError(
            f"{name} holds {bad[0]!r}, not a boolean; give True/False (or 1/0) per item"
        )
    return np.asarray(values, dtype=bool)


def proportion_ci(
    k: int, n: int, alpha: float = 0.05, method: str = "wilson"
) -> tuple[float, float]:
    """``1 - alpha`` confidence interval for ``k`` successes in ``n`` trials (statsmodels).

    Wilson by default: good coverage at small n and rates near 0 or 1, unlike the Wald
    interval. ``n == 0`` gives ``(nan, nan)``.
    """
    from statsmodels.stats.proportion import proportion_confint

    if not (isinstance(k, Integral) and isinstance(n, Integral) and 0 <= k <= n):
        raise WorkbenchError(f"k={k!r}, n={n!r} is not a count; give integers with 0 <= k <= n")
    if not 0 < alpha < 1:
        raise WorkbenchError(f"alpha={alpha!r} is outside (0, 1); use e.g. 0.05 for 95% intervals")
    if method not in CI_METHODS:
        raise WorkbenchError(f"unknown interval method {method!r}; use one of {CI_METHODS}")
    if n == 0:
        return NAN, NAN
    low, high = proportion_confint(int(k), int(n), alpha=alpha, method=method)
    return float(low), float(high)


def paired_delta(
    base: Sequence[bool], steered: Sequence[bool], alpha: float = 0.05
) -> dict:
    """Change in a rate between two conditions on the same prompts, item i paired with item i.

    ``delta = mean(steered) - mean(base)``. The interval is Newcombe's (1998, method 10)
    square-and-add interval for paired proportions: Wilson intervals of both marginals
    combined with the continuity-corrected phi correlation, as recommended by Fagerland,
    Lydersen & Laake (2014); deterministic, within [-1, 1], good at small n. ``p_value`` is the
    exact McNemar test (a binomial test on the discordant pairs). Empty input gives NaNs.
    """
    from statsmodels.stats.contingency_tables import mcnemar

    b, s = as_flags(base, "base"), as_flags(steered, "steered")
    if len(b) != len(s):
        raise WorkbenchError(
            f"base has {len(b)} items but steered has {len(s)}; pair the same prompts in order"
        )
    n = len(b)
    both, steered_only = int((s & b).sum()), int((s & ~b).sum())
    base_only, neither = int((~s & b).sum()), int((~s & ~b).sum())
    out = {"n": n, "both": both, "steered_only": steered_only, "base_only": base_only,
           "neither": neither}
    if n == 0:
        return {**out, "base_rate": NAN, "steered_rate": NAN, "delta": NAN, "ci_low": NAN,
                "ci_high": NAN, "p_value": NAN}
    p1, p2 = (both + steered_only) / n, (both + base_only) / n  # steered, base rates
    l1, u1 = proportion_ci(both + steered_only, n, alpha)
    l2, u2 = proportion_ci(both + base_only, n, alpha)
    margins = (both + steered_only) * (base_only + neither) * (both + base_only) * (
        steered_only + neither)
    cross = both * neither - steered_only * base_only
    if margins == 0 or 0 <= cross <= n / 2:
        phi = 0.0
    else:
        phi = (cross - n / 2 if cross > n / 2 else cross) / math.sqrt(margins)
    delta = p1 - p2
    low = delta - math.sqrt(max((p1 - l1) ** 2 + (u2 - p2) ** 2
                                - 2 * phi * (p1 - l1) * (u2 - p2), 0.0))
    high = delta + math.sqrt(max((p2 - l2) ** 2 + (u1 - p1) ** 2
                                 - 2 * phi * (p2 - l2) * (u1 - p1), 0.0))
    table = [[both, steered_only], [base_only, neither]]
    return {**out, "base_rate": p2, "steered_rate": p1, "delta": delta, "ci_low": low,
            "ci_high": high, "p_value": float(mcnemar(table, exact=True).pvalue)}


def regression(x: Sequence[float], y: Sequence[float]) -> dict:
    """Least-squares line ``y ~ slope * x + intercept`` (``scipy.stats.linregress``).

    Pairs with a non-finite value are dropped (counted in ``dropped``). Fewer than 3 points
    or constant ``x`` give NaNs and a ``note`` instead of an error, so sweeps never crash;
    ``p_value`` tests slope = 0 and ``stderr`` is the slope's standard error.
    """
    from scipy import stats

    try:
        xs, ys = np.asarray(x, dtype=float).ravel(), np.asarray(y, dtype=float).ravel()
    except (TypeError, ValueError) as exc:
        raise WorkbenchError(f"x and y must be numbers ({exc}); pass numeric sequences") from exc
    if len(xs) != len(ys):
        raise WorkbenchError(f"x has {len(xs)} values but y has {len(ys)}; give one y per x")
    keep = np.isfinite(xs) & np.isfinite(ys)
    xs, ys = xs[keep], ys[keep]
    out = {"slope": NAN, "intercept": NAN, "r2": NAN, "p_value": NAN, "stderr": NAN,
           "intercept_stderr": NAN, "n": int(len(xs)), "dropped": int((~keep).sum()),
           "note": None}
    if len(xs) < 3:
        return {**out, "note": f"only {len(xs)} finite points; a fit needs at least 3"}
    if np.ptp(xs) == 0:
        return {**out, "note": "x is constant; the slope is undefined"}
    fit = stats.linregress(xs, ys)
    note = "y is constant; r2 and p_value are undefined" if np.ptp(ys) == 0 else None
    return {**out, "slope": float(fit.slope), "intercept": float(fit.intercept),
            "r2": float(fit.rvalue) ** 2, "p_value": float(fit.pvalue),
            "stderr": float(fit.stderr), "intercept_stderr": float(fit.intercept_stderr),
            "note": note}


def recovered_share(
    asr_base: float, asr_steered: float, asr_mitigated: float, tol: float = 1e-9
) -> float:
    """Share of the steering-induced change that mitigation undoes.

    ``(asr_steered - asr_mitigated) / (asr_steered - asr_base)``: 1 = back to baseline,
    0 = no effect, > 1 = past baseline, < 0 = mitigation made it worse. Dividing by the signed
    change makes this hold whether steering raised or lowered the rate. NaN when steering
    changed the rate by less than ``tol``.
    """
    change = asr_steered - asr_base
    if not math.isfinite(change) or abs(change) < tol:
        return NAN
    return (asr_steered - asr_mitigated) / change


ADJUST_METHODS = {"holm": "holm", "bh": "fdr_bh"}


def adjust_pvalues(p_values: Sequence[float], method: str = "holm") -> np.ndarray:
    """Multiplicity-adjusted p-values over one family of tests (statsmodels ``multipletests``):
    ``holm`` (family-wise error) or ``bh`` (Benjamini-Hochberg false discovery rate).

    NaN p-values (tests that could not be run) stay NaN and do not count in the family.
    """
    if method not in ADJUST_METHODS:
        raise WorkbenchError(f"adjustment {method!r} is unknown; use one of "
                             f"{', '.join(ADJUST_METHODS)}")
    from statsmodels.stats.multitest import multipletests

    p = np.asarray(p_values, dtype=float)
    out = np.full(p.shape, NAN)
    ok = ~np.isnan(p)
    if ok.any():
        out[ok] = multipletests(p[ok], method=ADJUST_METHODS[method])[1]
    return out


def _sort_key(value: Any) -> tuple:
    if isinstance(value, (bool, np.bool_, Integral, float, np.floating)):
        return (0, float(value), "")
    return (1, 0.0, "") if value is None else (2, 0.0, str(value))


def rate_table(
    records: Iterable[Mapping[str, Any]],
    group_keys: str | Sequence[str],
    flag_key: str,
    alpha: float = 0.05,
    method: str = "wilson",
) -> list[dict]:
    """Rate of ``record[flag_key]`` per group of ``group_keys`` values, with CIs.

    One row per group: the group values, then ``n``, ``k`` (flags set), ``rate`` and
    ``ci_low``/``ci_high`` (:func:`proportion_ci`). Rows are sorted by group values (numbers
    numerically, then None, then text), so output does not depend on record order. Empty
    ``group_keys`` gives one overall row.
    """
    keys = (group_keys,) if isinstance(group_keys, str) else tuple(group_keys)
    groups: dict[tuple, list[bool]] = {}
    for i, rec in enumerate(records):
        missing = [key for key in (*keys, flag_key) if key not in rec]
        if missing:
            raise WorkbenchError(
                f"record {i} has no {missing[0]!r} field; add it or group by fields it has"
            )
        groups.setdefault(tuple(rec[key] for key in keys), []).append(rec[flag_key])
    rows = []
    for group in sorted(groups, key=lambda g: tuple(_sort_key(v) for v in g)):
        flags = as_flags(groups[group], f"{flag_key!r} in group {group}")
        n, k = len(flags), int(flags.sum())
        low, high = proportion_ci(k, n, alpha, method)
        rows.append({**dict(zip(keys, group)), "n": n, "k": k, "rate": k / n,
                     "ci_low": low, "ci_high": high})
    return rows

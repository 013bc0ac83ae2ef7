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


def pooled_recovered_share(
    base: Sequence[Sequence[bool]], steered: Sequence[Sequence[bool]],
    mitigated: Sequence[Sequence[bool]], clusters: Sequence, alpha: float = 0.05,
    n_resamples: int = 2000, seed: int = 0,
) -> dict:
    """Share of steering's rate change that mitigation undoes, pooled over conditions.

    Each argument but ``clusters`` is ``[condition][row]``, every condition on the same rows.
    With ``s_c = sign(rate(steered_c) - rate(base_c))``, the share is
    ``sum_c s_c (rate(steered_c) - rate(mitigated_c)) / sum_c s_c (rate(steered_c) -
    rate(base_c))``: one ratio of sums, stabler than a median of per-condition ratios. The
    interval resamples clusters (prompts) with replacement, the signs held at the full
    sample's (percentile bootstrap). NaN where steering changed nothing.
    """
    b, s, m = (np.asarray(x, dtype=float) for x in (base, steered, mitigated))
    if not (b.shape == s.shape == m.shape) or b.ndim != 2 or b.shape[1] != len(clusters):
        raise WorkbenchError(f"base {b.shape}, steered {s.shape} and mitigated {m.shape} must "
                             f"all be [condition, row] with {len(clusters)} rows (one cluster "
                             "id per row)")
    out = {"share": NAN, "ci_low": NAN, "ci_high": NAN, "n": int(b.shape[1]),
           "n_clusters": len(set(clusters))}
    if b.size == 0:
        return out
    sign = np.sign(s.mean(1) - b.mean(1))

    def share(idx):
        den = float((sign * (s[:, idx].mean(1) - b[:, idx].mean(1))).sum())
        num = float((sign * (s[:, idx].mean(1) - m[:, idx].mean(1))).sum())
        return num / den if abs(den) > 1e-12 else NAN

    out["share"] = share(np.arange(b.shape[1]))
    if math.isnan(out["share"]):
        return out
    ids = {c: i for i, c in enumerate(dict.fromkeys(clusters))}
    members = [[] for _ in ids]
    for row, c in enumerate(clusters):
        members[ids[c]].append(row)
    rng = np.random.default_rng(seed)
    draws = []
    for _ in range(n_resamples):
        pick = rng.integers(0, len(members), len(members))
        v = share(np.concatenate([members[i] for i in pick]))
        if not math.isnan(v):
            draws.append(v)
    if draws:
        out["ci_low"], out["ci_high"] = (float(q) for q in np.quantile(
            draws, [alpha / 2, 1 - alpha / 2]))
    return out


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


# --- Clustered inference: rows that share a prompt are not independent -------------------

EXACT_FLIP_LIMIT = 16  # enumerate all 2**m sign flips up to this many nonzero clusters
_CHUNK = 1 << 21  # numbers per resampling block, to bound memory on large audits


def _cluster_codes(clusters: Iterable[Any], n: int, name: str = "clusters") -> np.ndarray:
    """Integer code per row for any hashable cluster ids, in order of first appearance."""
    index: dict[Any, int] = {}
    try:
        codes = [index.setdefault(c, len(index)) for c in clusters]
    except TypeError as exc:
        raise WorkbenchError(f"{name} holds an unhashable id ({exc}); give one str/int id per "
                             "row") from exc
    if len(codes) != n:
        raise WorkbenchError(f"{name} has {len(codes)} ids but there are {n} rows; give one id "
                             "per row")
    return np.asarray(codes, dtype=np.int64)


def _check_resampling(alpha: float, n_resamples: int) -> None:
    if not 0 < alpha < 1:
        raise WorkbenchError(f"alpha={alpha!r} is outside (0, 1); use e.g. 0.05 for 95% intervals")
    if not (isinstance(n_resamples, Integral) and n_resamples >= 1):
        raise WorkbenchError(f"n_resamples={n_resamples!r} is not a positive integer; use e.g. "
                             "4000")


def _sign_flip_p(d: np.ndarray, n_resamples: int, rng: np.random.Generator) -> float:
    """Two-sided cluster sign-flip p-value for ``sum(d) = 0`` with ``d`` one value per cluster.

    Statistic ``|sum_c d_c|``. Exact (all ``2**m`` flips of the ``m`` nonzero clusters) when
    ``m <= EXACT_FLIP_LIMIT``, else ``(1 + hits) / (1 + n_resamples)`` over random flips.
    Values within a relative 1e-9 of the observed statistic count as ties (as extreme).
    """
    d = np.asarray(d, dtype=float)
    d = d[d != 0]
    m = len(d)
    if m == 0:
        return 1.0
    observed = abs(d.sum())
    threshold = observed - 1e-9 * max(1.0, float(np.abs(d).sum()))
    if m <= EXACT_FLIP_LIMIT:
        bits = (np.arange(2**m)[:, None] >> np.arange(m)) & 1
        stats_ = np.abs((1 - 2 * bits) @ d)
        return float(np.mean(stats_ >= threshold))
    hits, done, block = 0, 0, max(1, _CHUNK // m)
    while done < n_resamples:
        size = min(block, n_resamples - done)
        signs = 1 - 2 * rng.integers(0, 2, size=(size, m))
        hits += int((np.abs(signs @ d) >= threshold).sum())
        done += size
    return (1 + hits) / (1 + n_resamples)


def _cluster_bootstrap(
    d: np.ndarray, sizes: np.ndarray, alpha: float, n_resamples: int, rng: np.random.Generator
) -> tuple[float, float]:
    """Percentile interval of ``sum(d) / sum(sizes)`` over clusters drawn with replacement."""
    c = len(d)
    reps = np.empty(n_resamples)
    done, block = 0, max(1, _CHUNK // c)
    while done < n_resamples:
        size = min(block, n_resamples - done)
        draw = rng.integers(0, c, size=(size, c))
        reps[done:done + size] = d[draw].sum(axis=1) / sizes[draw].sum(axis=1)
        done += size
    low, high = np.quantile(reps, [alpha / 2, 1 - alpha / 2])
    return float(low), float(high)


def clustered_paired_delta(
    base: Sequence[bool],
    steered: Sequence[bool],
    clusters: Sequence[Any],
    alpha: float = 0.05,
    n_resamples: int = 4000,
    seed: int = 0,
) -> dict:
    """Paired change in a rate when rows share clusters (one prompt under several templates).

    Rows of one prompt are correlated, so the prompt, not the row, is the unit of
    independence. ``delta = mean(steered) - mean(base)`` over rows. ``p_value`` is a cluster
    sign-flip randomisation test: under no effect the two labels are exchangeable within a
    prompt, so each per-cluster sum ``d_c = sum(steered - base)`` is equally likely to have
    either sign; statistic ``|sum_c d_c|``, exact up to 16 nonzero clusters, else
    ``n_resamples`` random flips (p = (1 + hits) / (1 + n_resamples)). With one row per
    cluster this is exactly the exact McNemar test. ``ci_low``/``ci_high``: cluster-bootstrap
    percentile interval (clusters drawn with replacement, row-weighted delta). Deterministic
    given ``seed``; empty input gives NaNs.
    """
    b, s = as_flags(base, "base"), as_flags(steered, "steered")
    if len(b) != len(s):
        raise WorkbenchError(
            f"base has {len(b)} items but steered has {len(s)}; pair the same rows in order"
        )
    codes = _cluster_codes(clusters, len(b))
    _check_resampling(alpha, n_resamples)
    n = len(b)
    n_clusters = int(codes.max()) + 1 if n else 0
    out = {"n": n, "n_clusters": n_clusters}
    if n == 0:
        return {**out, "base_rate": NAN, "steered_rate": NAN, "delta": NAN, "ci_low": NAN,
                "ci_high": NAN, "p_value": NAN}
    d = np.bincount(codes, weights=s.astype(float) - b, minlength=n_clusters)
    sizes = np.bincount(codes, minlength=n_clusters).astype(float)
    boot_rng, flip_rng = np.random.default_rng(seed).spawn(2)
    low, high = _cluster_bootstrap(d, sizes, alpha, n_resamples, boot_rng)
    return {**out, "base_rate": float(b.mean()), "steered_rate": float(s.mean()),
            "delta": float(s.mean() - b.mean()), "ci_low": low, "ci_high": high,
            "p_value": _sign_flip_p(d, n_resamples, flip_rng)}


def beyond_placebo(
    steered: Sequence[bool],
    placebos: Sequence[Sequence[bool]],
    clusters: Sequence[Any],
    alpha: float = 0.05,
    n_resamples: int = 4000,
    seed: int = 0,
) -> dict:
    """Does a steered rate differ from what random ("placebo") directions of its size give?

    ``placebos`` is ``[k, n]``: k placebo conditions on the same rows as ``steered``. All
    conditions share one baseline, so ``dASR(steered) - mean_j dASR(placebo_j)`` is
    ``difference = rate(steered) - mean_j rate(placebo_j)``. ``p_value``: cluster sign-flip
    test (as in :func:`clustered_paired_delta`) on ``d_c = sum over the cluster's rows of
    (steered - mean_j placebo_j)``, computed in whole units of 1/k so ties are exact.
    ``ci_low``/``ci_high``: cluster-bootstrap percentile interval, both rates recomputed on
    the same resampled rows. Prompts are the random units here; the spread between
    directions is shown by ``rank`` (placebo rates below the steered one, ties counting half,
    0..k) and ``placebo_min``/``placebo_max``.
    """
    s = as_flags(steered, "steered")
    n = len(s)
    if isinstance(placebos, np.ndarray) and placebos.ndim != 2:
        raise WorkbenchError(f"placebos has shape {placebos.shape}; give a [k, n] array, one row "
                             "per placebo direction")
    try:
        rows = [as_flags(row, f"placebo {j}") for j, row in enumerate(placebos)]
    except TypeError as exc:
        raise WorkbenchError(f"placebos is not a [k, n] array ({exc}); give one row of flags per "
                             "placebo direction") from exc
    if not rows:
        raise WorkbenchError("no placebo conditions given; add placebo (random) directions of "
                             "the steering vector's size")
    bad = [j for j, row in enumerate(rows) if row.ndim != 1 or len(row) != n]
    if bad:
        raise WorkbenchError(f"placebo {bad[0]} does not have {n} row flags like steered; give "
                             "placebos as [k, n] on the same rows in the same order")
    p = np.stack(rows)
    k = len(rows)
    codes = _cluster_codes(clusters, n)
    _check_resampling(alpha, n_resamples)
    n_clusters = int(codes.max()) + 1 if n else 0
    out = {"n": n, "n_clusters": n_clusters, "k": k}
    if n == 0:
        return {**out, "difference": NAN, "ci_low": NAN, "ci_high": NAN, "p_value": NAN,
                "rank": NAN, "placebo_rates": [NAN] * k, "placebo_mean": NAN,
                "placebo_min": NAN, "placebo_max": NAN}
    counts = p.sum(axis=1)
    rates = counts / n
    s_count = int(s.sum())
    rank = float((counts < s_count).sum() + 0.5 * (counts == s_count).sum())
    d_units = np.bincount(codes, weights=k * s.astype(np.int64) - p.sum(axis=0),
                          minlength=n_clusters)  # integers: sum of k*steered - sum of placebos
    sizes = np.bincount(codes, minlength=n_clusters).astype(float)
    boot_rng, flip_rng = np.random.default_rng(seed).spawn(2)
    low, high = _cluster_bootstrap(d_units / k, sizes, alpha, n_resamples, boot_rng)
    return {**out, "difference": float(s.mean() - rates.mean()), "ci_low": low,
            "ci_high": high, "p_value": _sign_flip_p(d_units, n_resamples, flip_rng),
            "rank": rank, "placebo_rates": [float(r) for r in rates],
            "placebo_mean": float(rates.mean()), "placebo_min": float(rates.min()),
            "placebo_max": float(rates.max())}


def _warning_names(caught: list) -> list[str]:
    """Names of caught warnings about the fit itself (library deprecations left out)."""
    return sorted({w.category.__name__ for w in caught
                   if not issubclass(w.category, (DeprecationWarning, FutureWarning))})


def clustered_logistic_slope(
    y: Sequence[float],
    x: Sequence[float],
    prompt_groups: Sequence[Any],
    vector_groups: Sequence[Any],
    n_boot: int = 300,
    seed: int = 0,
) -> dict:
    """Logistic slope of a binary outcome on a dose ``x``, with prompts as clusters.

    Rows are (prompt-template, condition) pairs; ``x`` is e.g. the added vector's projection
    on the refusal direction in residual-norm units (baseline rows: ``x = 0``, give them their
    own vector group). Main fit: GEE (binomial, logit link, exchangeable working correlation
    within ``prompt_groups``) with robust sandwich errors, giving ``slope``, its Wald 95%
    ``slope_ci_low``/``slope_ci_high`` and ``p_value``; ``odds_ratio = exp(slope)``; ``ame``
    is the average marginal effect ``mean(p(1-p)) * slope`` (probability per unit x).
    ``boot_ci_low``/``boot_ci_high``: 95% percentile interval of a two-way ("pigeonhole")
    bootstrap that draws prompts and vectors with replacement independently and weights each
    row by the product of its prompt's and vector's draw counts, refitting a plain weighted
    logistic regression; replicates with constant y or x, a fit error, non-convergence or
    perfect separation are skipped and counted in ``boot_failed``. Non-finite rows are
    dropped (``dropped``). Fewer than 3 distinct x, constant y or fewer than 2 prompts give
    NaNs and a ``note``; warnings from the main fit are named in ``note``.
    """
    import warnings

    import statsmodels.api as sm

    try:
        ys = np.asarray(y, dtype=float).ravel()
        xs = np.asarray(x, dtype=float).ravel()
    except (TypeError, ValueError) as exc:
        raise WorkbenchError(f"y and x must be numbers ({exc}); pass 0/1 outcomes and numeric "
                             "doses") from exc
    if len(xs) != len(ys):
        raise WorkbenchError(f"y has {len(ys)} values but x has {len(xs)}; give one x per row")
    pg = _cluster_codes(prompt_groups, len(ys), "prompt_groups")
    vg = _cluster_codes(vector_groups, len(ys), "vector_groups")
    if not (isinstance(n_boot, Integral) and n_boot >= 0):
        raise WorkbenchError(f"n_boot={n_boot!r} is not a count; use e.g. 300 (0 skips the "
                             "bootstrap)")
    keep = np.isfinite(xs) & np.isfinite(ys)
    if not np.isin(ys[keep], (0.0, 1.0)).all():
        raise WorkbenchError("y holds values other than 0/1; give one binary outcome per row")
    ys, xs, pg, vg = ys[keep], xs[keep], pg[keep], vg[keep]
    pg = np.unique(pg, return_inverse=True)[1].ravel()
    vg = np.unique(vg, return_inverse=True)[1].ravel()
    n_prompts, n_vectors = len(np.unique(pg)), len(np.unique(vg))
    names = ("slope", "slope_ci_low", "slope_ci_high", "p_value", "intercept", "odds_ratio",
             "ame", "boot_ci_low", "boot_ci_high")
    out: dict[str, Any] = {**dict.fromkeys(names, NAN), "boot_failed": 0, "n": len(ys),
                           "n_prompts": n_prompts, "n_vectors": n_vectors,
                           "dropped": int((~keep).sum()), "note": None}
    if len(np.unique(xs)) < 3:
        return {**out, "note": f"x has {len(np.unique(xs))} distinct values; a slope needs 3"}
    if np.ptp(ys) == 0:
        return {**out, "note": "y is constant; there is no outcome variation to model"}
    if n_prompts < 2:
        return {**out, "note": f"{n_prompts} prompt group(s); clustered errors need at least 2"}

    design = sm.add_constant(xs, has_constant="add")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            fit = sm.GEE(ys, design, groups=pg, family=sm.families.Binomial(),
                         cov_struct=sm.cov_struct.Exchangeable()).fit()
            ci, p_slope = fit.conf_int(alpha=0.05), float(fit.pvalues[1])  # robust SEs here
        except (np.linalg.LinAlgError, ValueError) as exc:
            return {**out, "note": f"GEE fit failed: {exc}"}
    warned = _warning_names(caught)
    notes = [f"GEE warned: {', '.join(warned)}"] if warned else []
    intercept, slope = (float(v) for v in fit.params)
    if not np.all(np.isfinite(ci)) or abs(slope) * float(np.ptp(xs)) > 25:
        # a change of more than 25 log-odds over the observed x is (quasi-)separation: the
        # outcome is constant on one side, and no finite slope describes the data
        return {**out, "note": "; ".join(["no finite slope: the outcome is (nearly) constant "
                                          "on one side of x (separation)", *notes])}
    prob = 1 / (1 + np.exp(-(intercept + slope * xs)))

    rng = np.random.default_rng(seed)
    slopes, failed = [], 0
    for _ in range(n_boot):
        w = (np.bincount(rng.integers(0, n_prompts, n_prompts), minlength=n_prompts)[pg]
             * np.bincount(rng.integers(0, n_vectors, n_vectors), minlength=n_vectors)[vg])
        on = w > 0
        if np.ptp(ys[on]) == 0 or np.ptp(xs[on]) == 0:
            failed += 1
            continue
        with warnings.catch_warnings(record=True) as boot_caught:
            warnings.simplefilter("always")
            try:
                rep = sm.GLM(ys[on], design[on], family=sm.families.Binomial(),
                             freq_weights=w[on].astype(float)).fit()
            except (np.linalg.LinAlgError, ValueError):
                failed += 1
                continue
        bad = {"ConvergenceWarning", "PerfectSeparationWarning"} & set(
            _warning_names(boot_caught))
        if bad or not rep.converged or not np.isfinite(rep.params[1]):
            failed += 1
            continue
        slopes.append(float(rep.params[1]))
    if slopes:
        boot_low, boot_high = (float(v) for v in np.quantile(slopes, [0.025, 0.975]))
    else:
        boot_low = boot_high = NAN
        if n_boot:
            notes.append("every bootstrap replicate failed")
    return {**out, "slope": slope, "slope_ci_low": float(ci[1, 0]),
            "slope_ci_high": float(ci[1, 1]), "p_value": p_slope,
            "intercept": intercept,
            "odds_ratio": (math.exp(slope) if abs(slope) < 700
                           else math.inf if slope > 0 else 0.0),
            "ame": float(np.mean(prob * (1 - prob)) * slope), "boot_ci_low": boot_low,
            "boot_ci_high": boot_high, "boot_failed": failed,
            "note": "; ".join(notes) or None}


def paired_mde(sd_diff: float, n: int, alpha: float = 0.05, power: float = 0.8) -> float:
    """Smallest mean paired difference a two-sided paired t-test on ``n`` pairs detects.

    Solves statsmodels ``TTestPower`` for the standardised effect at ``alpha`` and ``power``
    and scales it by ``sd_diff``, the SD of the per-pair differences: reporting it says how
    large an effect a null result could have missed. ``n < 2`` or non-finite ``sd_diff``
    gives NaN.
    """
    from statsmodels.stats.power import TTestPower

    if not 0 < alpha < 1:
        raise WorkbenchError(f"alpha={alpha!r} is outside (0, 1); use e.g. 0.05")
    if not alpha < power < 1:
        raise WorkbenchError(f"power={power!r} is outside (alpha, 1); use e.g. 0.8")
    try:
        sd, pairs = float(sd_diff), float(n)
    except (TypeError, ValueError) as exc:
        raise WorkbenchError(f"sd_diff and n must be numbers ({exc}); give an SD and a pair "
                             "count") from exc
    if not math.isfinite(sd) or not math.isfinite(pairs) or pairs < 2:
        return NAN
    if sd < 0:
        raise WorkbenchError(f"sd_diff={sd_diff!r} is negative; give the SD of the differences")
    effect = TTestPower().solve_power(effect_size=None, nobs=pairs, alpha=alpha, power=power,
                                      alternative="two-sided")
    return float(effect) * sd

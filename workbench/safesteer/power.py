"""How many held-out prompts a SafeSteer comparison needs: power of the paired test it runs.

A steered condition is compared with the unsteered answers to the same prompts by the exact
McNemar test (:func:`workbench.evaluation.stats.paired_delta`). Its power depends on how many
answers switch: a share ``p_up`` of prompts switch one way (say safe -> unsafe) and ``p_down``
the other way, so the rate changes by ``p_up - p_down``. :func:`mcnemar_power` computes that
power exactly (sum over the number of discordant pairs); :func:`unpaired_n` gives the per-arm
n of the conservative unpaired two-proportion test (statsmodels), which ignores the pairing.

``python -m workbench.safesteer.power`` prints the table quoted in the SafeSteer README.
"""

from __future__ import annotations

from scipy import stats

from workbench.errors import WorkbenchError


def _mcnemar_p(b: int, d: int) -> float:
    """Exact two-sided McNemar p with ``b`` of ``d`` discordant pairs going one way."""
    return float(min(1.0, 2 * stats.binom.cdf(min(b, d - b), d, 0.5))) if d else 1.0


def mcnemar_power(n: int, p_up: float, p_down: float = 0.0, alpha: float = 0.05) -> float:
    """Exact power of the two-sided exact McNemar test at level ``alpha`` with ``n`` pairs.

    Each pair is discordant one way with probability ``p_up`` and the other way with
    ``p_down`` (independently across pairs).
    """
    if not (0 <= p_up and 0 <= p_down and p_up + p_down <= 1) or n < 1:
        raise WorkbenchError(f"p_up={p_up}, p_down={p_down}, n={n}: give probabilities with "
                             "p_up + p_down <= 1 and n >= 1")
    p_disc = p_up + p_down
    if p_disc == 0:
        return 0.0
    share = p_up / p_disc
    power = 0.0
    for d in range(n + 1):
        pd = stats.binom.pmf(d, n, p_disc)
        if pd < 1e-15:
            continue
        power += pd * sum(stats.binom.pmf(b, d, share) for b in range(d + 1)
                          if _mcnemar_p(b, d) < alpha)
    return float(power)


def smallest_n_significant(delta: float, alpha: float = 0.05) -> int:
    """Smallest n at which an observed one-way change of ``delta`` (share of prompts that all
    switch the same way) is significant by the exact McNemar test."""
    for n in range(1, 10_000):
        b = round(delta * n)
        if b >= 1 and _mcnemar_p(b, b) < alpha:
            return n
    raise WorkbenchError(f"delta {delta} is never significant below n=10000")


def unpaired_n(p1: float, p2: float, alpha: float = 0.05, power: float = 0.8) -> float:
    """Per-arm n for an unpaired two-proportion z-test (Cohen's h; statsmodels)."""
    from statsmodels.stats.power import NormalIndPower
    from statsmodels.stats.proportion import proportion_effectsize

    h = proportion_effectsize(p1, p2)
    return float(NormalIndPower().solve_power(effect_size=abs(h), alpha=alpha, power=power))


def main() -> None:
    print(f"smallest n at which a one-way 30-point change is significant (exact McNemar): "
          f"{smallest_n_significant(0.30)}")
    print(f"unpaired two-proportion test, 50% vs 20%, 80% power: n = "
          f"{unpaired_n(0.5, 0.2):.1f} per arm")
    print("exact McNemar power for a 30-point net change (p_up, p_down):")
    for n in (15, 20, 30, 40):
        row = ", ".join(f"({u:.2f}, {d:.2f}): {mcnemar_power(n, u, d):.2f}"
                        for u, d in ((0.30, 0.0), (0.35, 0.05), (0.40, 0.10)))
        print(f"  n={n}: {row}")


if __name__ == "__main__":
    main()

"""Risk-category neurons: MLP neurons whose activation singles out one risk category.

Activation of neuron ``i`` at layer ``l`` on a text: its ``mlp_post`` value (the input of
``down_proj``) averaged over the text's tokens (prompt + response). Groups of texts are summed
batch by batch into float64 sums and sums of squares (:class:`GroupStats`), so memory is
``O(layer * d_mlp)`` per group whatever the number of texts.

Selectivity of neuron ``(l, i)`` for category ``c`` is the Welch t-statistic of the
category's texts against the rest (the texts of every other category and the safe texts)::

    t = (mean_c - mean_rest) / sqrt(var_c / n_c + var_rest / n_rest)

with unbiased variances; t = 0 where both variances are 0 (dead neurons). Positive t means
the neuron fires more on category ``c``; neurons are ranked by t, largest first. Cohen's d
(pooled standard deviation) is reported beside it as an effect size that does not grow with n.

Held-out check: each group's texts are split alternately into a discovery and a held-out
half. Top-k neurons are chosen on the discovery half and their Welch t re-measured on the
held-out half; under "the top neurons are noise" each held-out one-sided p-value is uniform,
so the number with p < 0.05 is compared with Binomial(k, 0.05) (approximate: neurons are
correlated). The neurons used for steering are ranked on all texts.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from jaxtyping import Float, Int

from workbench.activations import collect_activations
from workbench.errors import WorkbenchError
from workbench.geometry import unit

Tensor = torch.Tensor
ALPHA = 0.05


@dataclass
class GroupStats:
    """Count, sum and sum of squares (float64) of per-text activations of one group."""

    n: int
    sum: Float[Tensor, "layer d"]
    sumsq: Float[Tensor, "layer d"]

    @classmethod
    def zeros(cls, n_layers: int, width: int) -> GroupStats:
        z = torch.zeros(n_layers, width, dtype=torch.float64)
        return cls(0, z, z.clone())

    @classmethod
    def of(cls, x: Float[Tensor, "n layer d"]) -> GroupStats:
        """Stats of a block of per-text activations."""
        x = x.double()
        return cls(x.shape[0], x.sum(0), (x * x).sum(0))

    def add(self, x: Float[Tensor, "n layer d"]) -> None:
        """Fold a block of per-text activations into the sums (in place)."""
        other = GroupStats.of(x)
        self.n += other.n
        self.sum += other.sum
        self.sumsq += other.sumsq

    def __add__(self, other: GroupStats) -> GroupStats:
        return GroupStats(self.n + other.n, self.sum + other.sum, self.sumsq + other.sumsq)

    @property
    def mean(self) -> Float[Tensor, "layer d"]:
        return self.sum / max(self.n, 1)

    @property
    def var(self) -> Float[Tensor, "layer d"]:
        """Unbiased variance (0 for fewer than two texts)."""
        if self.n < 2:
            return torch.zeros_like(self.sum)
        return ((self.sumsq - self.n * self.mean ** 2) / (self.n - 1)).clamp_min(0)


def welch_t(
    a: GroupStats, b: GroupStats
) -> tuple[Float[Tensor, "layer d"], Float[Tensor, "layer d"]]:
    """Welch t-statistic of ``a`` vs ``b`` and its Welch-Satterthwaite degrees of freedom."""
    if a.n < 2 or b.n < 2:
        raise WorkbenchError(f"Welch t needs at least 2 texts per group, got {a.n} and {b.n}; "
                             "give more prompts per category")
    va, vb = a.var / a.n, b.var / b.n
    se2 = va + vb
    t = torch.where(se2 > 0, (a.mean - b.mean) / se2.clamp_min(1e-300).sqrt(),
                    torch.zeros_like(se2))
    den = va ** 2 / (a.n - 1) + vb ** 2 / (b.n - 1)
    df = torch.where(den > 0, se2 ** 2 / den.clamp_min(1e-300),
                     torch.full_like(se2, float(a.n + b.n - 2)))
    return t, df


def cohens_d(a: GroupStats, b: GroupStats) -> Float[Tensor, "layer d"]:
    """Cohen's d of ``a`` vs ``b`` with the pooled standard deviation (0 where it is 0)."""
    pooled = ((a.n - 1) * a.var + (b.n - 1) * b.var) / max(a.n + b.n - 2, 1)
    return torch.where(pooled > 0, (a.mean - b.mean) / pooled.clamp_min(1e-300).sqrt(),
                       torch.zeros_like(pooled))


def stream_text_activations(
    model,
    texts: Sequence[Sequence[int]],
    layers: Sequence[int],
    stats: Sequence[GroupStats],
    keep_layers: Sequence[int] = (),
    batch_size: int = 16,
) -> Float[Tensor, "n keep d_model"] | None:
    """One pass over ``texts``: token-mean ``mlp_post`` folded into ``stats``, ``attn_out`` kept.

    Text ``j`` goes into ``stats[j % len(stats)]`` (two stats: the alternating held-out split).
    ``layers`` index the stats' layer axis. Returns the per-text token-mean ``attn_out`` at
    ``keep_layers`` (float32, for the category vectors), or None when none are asked for.
    """
    layers, keep_layers = list(layers), list(keep_layers)
    need = sorted(set(layers) | set(keep_layers))
    hooks = ("mlp_post",) + (("attn_out",) if keep_layers else ())
    kept = []
    for start in range(0, len(texts), batch_size):
        acts = collect_activations(model, texts[start:start + batch_size], hooks=hooks,
                                   layers=need, positions="mean", batch_size=batch_size,
                                   progress=False)
        neurons = acts["mlp_post"][:, 0, [need.index(l) for l in layers]]
        for j in range(len(stats)):
            rows = [r for r in range(neurons.shape[0]) if (start + r) % len(stats) == j]
            if rows:
                stats[j].add(neurons[rows])
        if keep_layers:
            kept.append(acts["attn_out"][:, 0, [need.index(l) for l in keep_layers]])
    return torch.cat(kept) if kept else None


@dataclass
class NeuronScores:
    """Selectivity of every neuron for every category (axes: category, layer, neuron)."""

    categories: list[str]
    layers: list[int]
    t: Float[Tensor, "cat layer d"]  # all texts
    d: Float[Tensor, "cat layer d"]
    mean_cat: Float[Tensor, "cat layer d"]
    mean_rest: Float[Tensor, "cat layer d"]
    t_discovery: Float[Tensor, "cat layer d"]
    t_heldout: Float[Tensor, "cat layer d"]
    df_heldout: Float[Tensor, "cat layer d"]
    refusal_t: Float[Tensor, "layer d"]  # all unsafe texts vs safe texts
    mean_safe: Float[Tensor, "layer d"]

    def index(self, category: str, layer: int) -> tuple[int, int]:
        if category not in self.categories:
            raise WorkbenchError(f"unknown category {category!r}; scored categories: "
                                 f"{', '.join(self.categories)}")
        if layer not in self.layers:
            raise WorkbenchError(f"neurons of layer {layer} were not scored; scored layers: "
                                 f"{', '.join(map(str, self.layers))}")
        return self.categories.index(category), self.layers.index(layer)

    def top(self, category: str, layer: int, k: int, on: str = "all") -> Int[Tensor, " k"]:
        """Indices of the ``k`` neurons of ``layer`` most selective for ``category``."""
        c, l = self.index(category, layer)
        scores = (self.t if on == "all" else self.t_discovery)[c, l]
        return torch.argsort(scores, descending=True, stable=True)[:k]

    def top_refusal(self, layer: int, k: int) -> Int[Tensor, " k"]:
        """The ``k`` neurons of ``layer`` most selective for harmful over safe texts."""
        return torch.argsort(self.refusal_t[self.layers.index(layer)], descending=True,
                             stable=True)[:k]


def score_neurons(
    groups: dict[str, Sequence[GroupStats]], categories: Sequence[str], layers: Sequence[int],
    safe: str = "safe",
) -> NeuronScores:
    """Selectivity scores from per-group (discovery, held-out) stats; ``safe`` names D_safe."""
    missing = [g for g in (*categories, safe) if g not in groups]
    if missing:
        raise WorkbenchError(f"no activations for group {missing[0]!r}; collect every category "
                             "and the safe texts first")
    full = {g: s[0] + s[1] for g, s in groups.items()}
    out: dict[str, list] = {k: [] for k in ("t", "d", "mc", "mr", "td", "th", "dfh")}
    for c in categories:
        rest = [g for g in (*categories, safe) if g != c]
        rest_full = sum((full[g] for g in rest[1:]), full[rest[0]])
        rest_disc = sum((groups[g][0] for g in rest[1:]), groups[rest[0]][0])
        rest_held = sum((groups[g][1] for g in rest[1:]), groups[rest[0]][1])
        t, _ = welch_t(full[c], rest_full)
        td, _ = welch_t(groups[c][0], rest_disc)
        th, dfh = welch_t(groups[c][1], rest_held)
        for key, val in zip(out, (t, cohens_d(full[c], rest_full), full[c].mean, rest_full.mean,
                                  td, th, dfh)):
            out[key].append(val)
    unsafe = sum((full[c] for c in categories[1:]), full[categories[0]])
    refusal_t, _ = welch_t(unsafe, full[safe])
    st = {k: torch.stack(v) for k, v in out.items()}
    return NeuronScores(list(categories), list(layers), st["t"], st["d"], st["mc"], st["mr"],
                        st["td"], st["th"], st["dfh"], refusal_t, full[safe].mean)


def heldout_check(scores: NeuronScores, k: int) -> list[dict]:
    """Per category and layer: do the top-k discovery neurons stay selective on held-out texts?

    ``frac_replicated`` is the share of the k neurons with held-out one-sided p < 0.05;
    ``binom_p`` the chance of at least that many under Binomial(k, 0.05) (noise);
    ``null_heldout_t`` the mean held-out t of all neurons of the layer, for reference.
    """
    from scipy import stats

    rows = []
    for c, cat in enumerate(scores.categories):
        for l, layer in enumerate(scores.layers):
            idx = scores.top(cat, layer, k, on="discovery")
            th, df = scores.t_heldout[c, l, idx], scores.df_heldout[c, l, idx]
            p = stats.t.sf(th.numpy(), df.numpy())
            n_rep = int((p < ALPHA).sum())
            rows.append({
                "category": cat, "layer": layer, "k": len(idx),
                "discovery_t": float(scores.t_discovery[c, l, idx].mean()),
                "heldout_t": float(th.mean()),
                "null_heldout_t": float(scores.t_heldout[c, l].mean()),
                "frac_replicated": n_rep / max(len(idx), 1),
                "binom_p": float(stats.binom.sf(n_rep - 1, len(idx), ALPHA)),
                "top_t": float(scores.t[c, l, scores.top(cat, layer, k)].mean()),
                "top_d": float(scores.d[c, l, scores.top(cat, layer, k)].mean()),
            })
    return rows


def jaccard_overlap(scores: NeuronScores, k: int) -> list[dict]:
    """Jaccard overlap of the categories' top-k neuron sets, pooled over scored layers."""
    sets = {c: {(l, int(i)) for l in scores.layers for i in scores.top(c, l, k)}
            for c in scores.categories}
    rows = []
    for a, b in itertools.combinations(scores.categories, 2):
        union = sets[a] | sets[b]
        rows.append({"category_a": a, "category_b": b, "shared": len(sets[a] & sets[b]),
                     "jaccard": len(sets[a] & sets[b]) / len(union) if union else math.nan})
    return rows


def writeout_directions(
    model, layer: int, neurons: Sequence[int] | Tensor
) -> Float[Tensor, "k d_model"]:
    """Rows: the residual-stream direction each neuron writes (its column of ``down_proj``)."""
    layer = model.check_layer(layer)
    idx = check_neurons(model, layer, neurons)
    weight = model.mlp_out_weight(layer)
    return weight.detach()[:, idx].T.double().cpu()


def check_neurons(model, layer: int, neurons: Sequence[int] | Tensor) -> Int[Tensor, " k"]:
    """``neurons`` as a long tensor, each checked to index the MLP of ``layer``."""
    idx = torch.as_tensor(neurons, dtype=torch.long).reshape(-1)
    bad = idx[(idx < 0) | (idx >= model.d_mlp)]
    if len(bad):
        raise WorkbenchError(f"neuron {int(bad[0])} is out of range for layer {layer} with "
                             f"d_mlp={model.d_mlp}; use 0..{model.d_mlp - 1}")
    return idx


def refusal_alignment(
    model, layer: int, neurons: Sequence[int] | Tensor, refusal: Float[Tensor, " d"]
) -> Float[Tensor, " k"]:
    """|cosine| of each neuron's write-out direction with a refusal direction."""
    w = unit(writeout_directions(model, layer, neurons))
    return (w @ unit(model.check_vector(refusal, "refusal direction").double().cpu())).abs()


def neuron_vector(
    model, layer: int, neurons: Sequence[int] | Tensor, weights: Sequence[float] | Tensor,
    norm: float,
) -> Float[Tensor, " d_model"]:
    """Category vector from neurons: selectivity-weighted sum of write-outs, scaled to ``norm``.

    ``v = norm * unit(sum_i max(w_i, 0) * W_out[:, i])``; negative weights count as zero.
    """
    w = torch.as_tensor(weights, dtype=torch.float64).clamp_min(0)
    v = (w[:, None] * writeout_directions(model, layer, neurons)).sum(0)
    if float(v.norm()) == 0.0:
        raise WorkbenchError(f"the chosen neurons of layer {layer} have no positive selectivity; "
                             "choose other neurons or a smaller top_k")
    return unit(v) * float(norm)


def neuron_rows(scores: NeuronScores, model, k: int, refusal: Float[Tensor, "layer d"] | None,
                cos_threshold: float) -> list[dict]:
    """One row per category, layer and top-k rank: the neuron and what it is shared with."""
    rows = []
    for c, cat in enumerate(scores.categories):
        for l, layer in enumerate(scores.layers):
            idx = scores.top(cat, layer, k)
            shared = set(scores.top_refusal(layer, k).tolist())
            cos = (refusal_alignment(model, layer, idx, refusal[layer]) if refusal is not None
                   else torch.full((len(idx),), math.nan))
            for rank, (i, cs) in enumerate(zip(idx.tolist(), cos.tolist())):
                rows.append({
                    "category": cat, "layer": layer, "rank": rank + 1, "neuron": i,
                    "t": float(scores.t[c, l, i]), "d": float(scores.d[c, l, i]),
                    "mean_category": float(scores.mean_cat[c, l, i]),
                    "mean_rest": float(scores.mean_rest[c, l, i]),
                    "mean_safe": float(scores.mean_safe[l, i]),
                    "t_discovery": float(scores.t_discovery[c, l, i]),
                    "t_heldout": float(scores.t_heldout[c, l, i]),
                    "refusal_t": float(scores.refusal_t[l, i]),
                    "refusal_neuron": i in shared,
                    "writeout_refusal_cos": cs,
                    "refusal_aligned": bool(cs > cos_threshold) if not math.isnan(cs) else False,
                })
    return rows


def sharing_rows(rows: list[dict], scores: NeuronScores, model, k: int,
                 refusal: Float[Tensor, "layer d"] | None, cos_threshold: float) -> list[dict]:
    """Per category and layer: top-k neurons shared with refusal, and the chance count."""
    out = []
    for cat in scores.categories:
        for layer in scores.layers:
            sel = [r for r in rows if r["category"] == cat and r["layer"] == layer]
            base = (float((refusal_alignment(model, layer, torch.arange(model.d_mlp),
                                             refusal[layer]) > cos_threshold).double().mean())
                    if refusal is not None else math.nan)
            out.append({"category": cat, "layer": layer, "k": len(sel),
                        "n_refusal_neurons": sum(r["refusal_neuron"] for r in sel),
                        "chance_refusal_neurons": k * k / model.d_mlp,
                        "n_refusal_aligned": sum(r["refusal_aligned"] for r in sel),
                        "chance_refusal_aligned": k * base})
    return out


def default_cos_threshold(d_model: int) -> float:
    """|cosine| above 3 standard deviations of two random directions in ``d_model`` dimensions."""
    return 3.0 / math.sqrt(d_model)


__all__ = ["GroupStats", "NeuronScores", "check_neurons", "cohens_d", "default_cos_threshold",
           "heldout_check", "jaccard_overlap", "neuron_rows", "neuron_vector",
           "refusal_alignment", "score_neurons", "sharing_rows", "stream_text_activations",
           "welch_t", "writeout_directions"]


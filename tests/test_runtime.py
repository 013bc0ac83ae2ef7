"""The model runtime: WorkbenchModel's backend methods, the engine's layer, deprecated paths."""

import importlib
import subprocess
import sys

import pytest
import torch

from workbench import WorkbenchError
from workbench.activations.points import hook_name
from workbench.model import Backend, WorkbenchModel, raw_hf_model


def _hooks_attached(model) -> int:
    unique = {id(hp): hp for hp in model.bridge.hook_dict.values()}
    return sum(len(hp._forward_hooks) for hp in unique.values())


def test_hooks_fire_and_are_removed_even_on_error(tiny):
    ids, mask = tiny.pad(tiny.tokenize_instructions(["Name a colour."]))
    seen = []
    before = _hooks_attached(tiny)
    with tiny.hooks([(hook_name("resid_pre", 1), lambda t, hook: seen.append(t.shape))]):
        assert _hooks_attached(tiny) == before + 1
        tiny.forward(ids, mask)
    assert seen and _hooks_attached(tiny) == before
    with pytest.raises(RuntimeError, match="boom"):
        with tiny.hooks([(hook_name("resid_pre", 0), lambda t, hook: t)]):
            raise RuntimeError("boom")
    assert _hooks_attached(tiny) == before


def test_residual_writers_and_mlp_out_weight(tiny):
    writers = tiny.residual_writers()
    assert len(writers) == 1 + 2 * tiny.n_layers
    assert [layout for _, layout in writers] == ["rows"] + ["cols"] * (2 * tiny.n_layers)
    assert writers[0][0] is raw_hf_model(tiny).get_input_embeddings()
    w = tiny.mlp_out_weight(-1)
    assert w.shape == (tiny.d_model, tiny.d_mlp)
    assert w is writers[-1][0].weight
    with pytest.raises(WorkbenchError, match="out of range"):
        tiny.mlp_out_weight(tiny.n_layers)


def test_config_eos_and_forwards_match_the_hf_module(tiny):
    hf = raw_hf_model(tiny)
    assert tiny.config_dict() == hf.config.to_dict()
    assert isinstance(tiny.backend, Backend)
    eos = hf.generation_config.eos_token_id
    assert tiny.eos_token_ids() == (set(eos) if isinstance(eos, list) else {eos})
    ids, mask = tiny.pad(tiny.tokenize_instructions(["Hi", "List three prime numbers."]))
    pos = (mask.cumsum(-1) - 1).clamp(min=0)
    with torch.inference_mode():
        want = hf(input_ids=ids, attention_mask=mask, position_ids=pos).logits
        got = tiny.lm_forward(input_ids=ids, attention_mask=mask, position_ids=pos).logits
        base = tiny.base_forward(input_ids=ids, attention_mask=mask, position_ids=pos)
    assert torch.equal(got, want)
    assert torch.equal(tiny.unembed(base.last_hidden_state), want)


def test_raw_hf_model_names_the_backend_it_needs(tiny):
    class Other:
        pass

    other = object.__new__(WorkbenchModel)
    other.backend = Other()
    with pytest.raises(WorkbenchError, match="Other has no Hugging Face module"):
        raw_hf_model(other)
    with pytest.raises(WorkbenchError, match="a backend and a tokenizer"):
        WorkbenchModel(tokenizer=tiny.tokenizer, spec="x", family="qwen2")


def test_bridge_keyword_still_builds_a_model_and_warns(tiny):
    with pytest.warns(DeprecationWarning, match="backend=TransformersBackend"):
        m = WorkbenchModel(bridge=tiny.bridge, tokenizer=tiny.tokenizer, spec="t",
                           family="qwen2")
    assert m.hf_model is tiny.hf_model and m.eoi_token_ids == tiny.eoi_token_ids


@pytest.mark.parametrize("old, new, names", [
    ("workbench.evaluation.scores", "workbench.model.logprobs",
     ["last_logprobs", "refusal_score", "kl_divergence"]),
    ("workbench.evaluation.generation", "workbench.model.generation",
     ["generate", "generate_ids", "greedy_kwargs"]),
    ("workbench.evaluation.batched", "workbench.model.engine",
     ["prefill_cache", "select_cache_rows", "forwards_after_prefix", "common_prefix_length",
      "last_logprobs_shared_prefix", "eos_ids", "until_eos"]),
    ("workbench.evaluation.batched", "workbench.steering.conditions",
     ["generate_conditions", "generate_conditions_ids", "last_logprobs_conditions",
      "condition_delta", "shares_prefix", "greedy_rows"]),
])
def test_deprecated_paths_import_and_warn(old, new, names):
    sys.modules.pop(old, None)
    with pytest.warns(DeprecationWarning, match=new.rsplit(".", 1)[0]):
        mod = importlib.import_module(old)
    target = importlib.import_module(new)
    for name in names:
        assert getattr(mod, name) is getattr(target, name), name


def test_the_runtime_imports_nothing_above_it():
    """The model layer (engine, generation, log-probs) sits below activations and steering."""
    code = ("import sys, workbench.model.engine, workbench.model.generation, "
            "workbench.model.logprobs; "
            "print(sorted({m.split('.')[1] for m in sys.modules "
            "if m.startswith('workbench.') and m.count('.') >= 1}))")
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True,
                         text=True).stdout
    loaded = set(eval(out))
    assert not loaded & {"activations", "steering", "directions", "evaluation", "safesteer",
                         "jobs", "analysis", "api"}, loaded

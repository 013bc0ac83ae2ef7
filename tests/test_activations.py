import numpy as np
import pytest
import torch

from conftest import hf_hidden_states, hf_reference
from workbench import WorkbenchError
from workbench.activations import collect_activations, mean_activations


def test_reference_model_is_independent_of_the_bridge(any_tiny):
    ref, wrapped = hf_reference(any_tiny.spec), any_tiny.hf_model
    assert ref is not wrapped
    ptrs = {p.data_ptr() for p in wrapped.parameters()}
    for (name, p), q in zip(ref.named_parameters(), wrapped.parameters()):
        assert p.data_ptr() not in ptrs, name
        torch.testing.assert_close(p, q, rtol=0, atol=0)  # same seed, same weights


def test_resid_pre_matches_hf_hidden_states(any_tiny, prompts_text):
    m = any_tiny
    prompts = m.tokenize_instructions(prompts_text)
    acts = collect_activations(m, prompts, hooks=("resid_pre", "resid_post"), positions="eoi",
                               batch_size=2)
    assert acts["resid_pre"].shape == (len(prompts), m.n_eoi, m.n_layers, m.d_model)
    for i, toks in enumerate(prompts):
        hs = hf_hidden_states(m, toks)
        ref_pre = hs[:-1, -m.n_eoi:].permute(1, 0, 2)
        np.testing.assert_allclose(acts["resid_pre"][i].numpy(), ref_pre.numpy(), atol=1e-5)
        # HF's last hidden state is after the final norm, so compare block outputs below it
        ref_post = hs[1:-1, -m.n_eoi:].permute(1, 0, 2)
        np.testing.assert_allclose(acts["resid_post"][i, :, :-1].numpy(), ref_post.numpy(),
                                   atol=1e-5)


@pytest.mark.parametrize("positions", ["last", "eoi", "mean", [-3, -1]])
def test_batch_size_and_padding_invariance(tiny, prompts_text, positions):
    prompts = tiny.tokenize_instructions(prompts_text)
    ref = collect_activations(tiny, prompts, positions=positions, batch_size=1)["resid_pre"]
    for bs in (2, 5):
        got = collect_activations(tiny, prompts, positions=positions, batch_size=bs)["resid_pre"]
        torch.testing.assert_close(got, ref, atol=2e-5, rtol=1e-5)
    # padding: the same prompt alone and next to a much longer one
    longer = prompts[:1] + [prompts[2] * 3]
    alone = collect_activations(tiny, prompts[:1], positions=positions)["resid_pre"]
    padded = collect_activations(tiny, longer, positions=positions, batch_size=2)["resid_pre"][:1]
    torch.testing.assert_close(padded, alone, atol=2e-5, rtol=1e-5)


def test_mean_position_is_token_mean(tiny, prompts_text):
    prompts = tiny.tokenize_instructions(prompts_text[:3])
    acts = collect_activations(tiny, prompts, positions="mean", layers=[1], batch_size=3)
    for i, toks in enumerate(prompts):
        ref = hf_hidden_states(tiny, toks)[1].numpy().mean(0)
        np.testing.assert_allclose(acts["resid_pre"][i, 0, 0].numpy(), ref, atol=1e-5)


def test_streamed_mean_equals_numpy_mean(tiny, prompts_text):
    prompts = tiny.tokenize_instructions(prompts_text)
    full = collect_activations(tiny, prompts, positions="eoi", batch_size=2)["resid_pre"]
    mean = mean_activations(tiny, prompts, positions="eoi", batch_size=2)["resid_pre"]
    assert mean.dtype == torch.float64
    np.testing.assert_allclose(mean.numpy(), full.numpy().astype(np.float64).mean(0), atol=1e-6)


def test_neuron_activations_are_down_proj_inputs(tiny, prompts_text):
    prompts = tiny.tokenize_instructions(prompts_text[:2])
    acts = collect_activations(tiny, prompts, hooks=("mlp_post",), layers=[2], positions="last")
    assert acts["mlp_post"].shape[-1] == tiny.d_mlp
    seen = []
    ref = hf_reference(tiny.spec)
    down = ref.model.layers[2].mlp.down_proj
    handle = down.register_forward_hook(lambda mod, inp, out: seen.append(inp[0][0, -1].clone()))
    try:
        for toks in prompts:
            with torch.no_grad():
                ref(torch.tensor([toks]))
    finally:
        handle.remove()
    for i in range(2):
        torch.testing.assert_close(acts["mlp_post"][i, 0, 0], seen[i], atol=1e-5, rtol=1e-5)


def test_forward_stops_after_last_needed_layer(tiny, prompts_text):
    calls = []
    late = tiny.bridge.blocks[3].mlp.out.original_component
    handle = late.register_forward_hook(lambda *a: calls.append(1))
    try:
        collect_activations(tiny, tiny.tokenize_instructions(prompts_text[:2]), layers=[0, 1])
    finally:
        handle.remove()
    assert calls == []


def test_bad_requests(tiny, prompts_text):
    prompts = tiny.tokenize_instructions(prompts_text[:2])
    with pytest.raises(WorkbenchError, match="empty"):
        collect_activations(tiny, [])
    with pytest.raises(WorkbenchError, match="out of range"):
        collect_activations(tiny, prompts, layers=[tiny.n_layers])
    with pytest.raises(WorkbenchError, match="unknown hook kind"):
        collect_activations(tiny, prompts, hooks=("resid_middle",))
    with pytest.raises(WorkbenchError, match="reaches before the start"):
        collect_activations(tiny, prompts, positions=[-500])
    with pytest.raises(WorkbenchError, match="unknown position spec"):
        collect_activations(tiny, prompts, positions="first")


def test_caching_the_last_block_never_unembeds(tiny, prompts_text):
    calls = []
    head = tiny.hf_model.get_output_embeddings()
    handle = head.register_forward_hook(lambda *a: calls.append(1))
    try:
        acts = collect_activations(tiny, tiny.tokenize_instructions(prompts_text[:2]),
                                   hooks=("resid_post",), layers=[tiny.n_layers - 1])
    finally:
        handle.remove()
    assert calls == [] and acts["resid_post"].shape[2] == 1

import pytest
import torch

from conftest import hf_reference
from workbench import WorkbenchError
from workbench.activations import collect_activations
from workbench.model.generation import generate
from workbench.model.logprobs import last_logprobs
from workbench.steering import (
    ablate_directions,
    ablate_then_add,
    add_vector,
    orthogonalized_weights,
    steer,
)


def _hooks_attached(model) -> int:
    unique = {id(hp): hp for hp in model.bridge.hook_dict.values()}
    return sum(len(hp._forward_hooks) for hp in unique.values())


def _vec(model, seed=0, scale=3.0):
    return torch.randn(model.d_model, generator=torch.Generator().manual_seed(seed)) * scale


def test_add_vector_adds_exactly_at_its_layer(tiny, prompts_text):
    prompts = tiny.tokenize_instructions(prompts_text)
    v = _vec(tiny)
    base = collect_activations(tiny, prompts, positions="eoi", batch_size=2)["resid_pre"]
    with add_vector(tiny, v, layers=2, coefficient=0.5):
        assert _hooks_attached(tiny) == 1
        steered = collect_activations(tiny, prompts, positions="eoi", batch_size=2)["resid_pre"]
    torch.testing.assert_close(steered[:, :, :2], base[:, :, :2])
    torch.testing.assert_close(steered[:, :, 2] - base[:, :, 2],
                               (0.5 * v).expand_as(base[:, :, 2]), atol=1e-5, rtol=1e-5)
    assert _hooks_attached(tiny) == 0


def test_add_vector_matches_independent_pre_hook(tiny, prompts_text):
    """The bridge hook equals a plain torch pre-hook on the HF decoder layer."""
    prompts = tiny.tokenize_instructions(prompts_text[:3])
    v = _vec(tiny, 1)
    with add_vector(tiny, v, layers=1, coefficient=2.0):
        steered = last_logprobs(tiny, prompts)
    ref_model = hf_reference(tiny.spec)
    layer = ref_model.model.layers[1]

    def pre_hook(module, args, kwargs):
        if args:
            return (args[0] + 2.0 * v, *args[1:]), kwargs
        return args, {**kwargs, "hidden_states": kwargs["hidden_states"] + 2.0 * v}

    handle = layer.register_forward_pre_hook(pre_hook, with_kwargs=True)
    try:
        ref = torch.cat([torch.log_softmax(ref_model(torch.tensor([p])).logits[0, -1], -1)[None]
                         for p in prompts])
    finally:
        handle.remove()
    torch.testing.assert_close(steered, ref.detach(), atol=1e-4, rtol=1e-4)


def test_add_vector_positions(tiny, prompts_text):
    prompts = tiny.tokenize_instructions(prompts_text[:2])
    v = _vec(tiny)
    base = collect_activations(tiny, prompts, positions="eoi", layers=[1])["resid_pre"]
    with add_vector(tiny, v, layers=1, positions="eoi"):
        eoi = collect_activations(tiny, prompts, positions=[-tiny.n_eoi - 1, -1], layers=[1])
    with add_vector(tiny, v, layers=1, positions="generated"):
        gen = collect_activations(tiny, prompts, positions="eoi", layers=[1])["resid_pre"]
    torch.testing.assert_close(gen, base)  # a prompt forward is not a generated token
    torch.testing.assert_close(eoi["resid_pre"][:, 1, 0], base[:, -1, 0] + v, atol=1e-5, rtol=1e-5)
    before = collect_activations(tiny, prompts, positions=[-tiny.n_eoi - 1], layers=[1])["resid_pre"]
    torch.testing.assert_close(eoi["resid_pre"][:, 0, 0], before[:, 0, 0])


def test_ablation_removes_direction_everywhere(tiny, prompts_text):
    prompts = tiny.tokenize_instructions(prompts_text)
    r = _vec(tiny, 2)
    r_hat = r / r.norm()
    with ablate_directions(tiny, r):
        acts = collect_activations(tiny, prompts, hooks=("resid_pre", "attn_out", "mlp_out"),
                                   positions="eoi")
    for kind in ("resid_pre", "attn_out", "mlp_out"):
        assert acts[kind].matmul(r_hat).abs().max() < 1e-4, kind
    base = collect_activations(tiny, prompts, hooks=("attn_out",), positions="eoi")
    assert base["attn_out"].matmul(r_hat).abs().max() > 1e-3


def test_weight_orthogonalisation_equals_ablation_and_restores(any_tiny, prompts_text):
    m = any_tiny
    prompts = m.tokenize_instructions(prompts_text)
    r = _vec(m, 3)
    before = [p.detach().clone() for p in m.hf_model.parameters()]
    with ablate_directions(m, r):
        ablated = last_logprobs(m, prompts, batch_size=2)
    with orthogonalized_weights(m, r):
        ortho = last_logprobs(m, prompts, batch_size=2)
    torch.testing.assert_close(ortho, ablated, atol=2e-4, rtol=1e-4)
    for p, b in zip(m.hf_model.parameters(), before):
        assert torch.equal(p, b)


def test_hooks_and_weights_are_restored_after_errors(tiny, prompts_text):
    prompts = tiny.tokenize_instructions(prompts_text[:2])
    base = last_logprobs(tiny, prompts)
    r = _vec(tiny)
    with pytest.raises(RuntimeError):
        with steer(add_vector(tiny, r, layers=[0, 1]), ablate_directions(tiny, r)):
            raise RuntimeError("boom")
    with pytest.raises(RuntimeError):
        with orthogonalized_weights(tiny, r):
            raise RuntimeError("boom")
    assert _hooks_attached(tiny) == 0
    torch.testing.assert_close(last_logprobs(tiny, prompts), base)


def test_ablate_then_add_keeps_added_vector_at_its_layer(tiny, prompts_text):
    prompts = tiny.tokenize_instructions(prompts_text[:2])
    r, v = _vec(tiny, 4), _vec(tiny, 5)
    r_hat = r / r.norm()
    with ablate_then_add(tiny, r, v, layers=2):
        acts = collect_activations(tiny, prompts, layers=[2, 3])["resid_pre"]
    with ablate_directions(tiny, r):
        ablated = collect_activations(tiny, prompts, layers=[2])["resid_pre"]
    torch.testing.assert_close(acts[:, 0, 0], ablated[:, 0, 0] + v, atol=1e-5, rtol=1e-5)
    assert acts[:, 0, 1].matmul(r_hat).abs().max() < 1e-4


def test_steering_during_generation_and_batch_invariance(tiny, prompts_text):
    prompts = tiny.tokenize_instructions(prompts_text)
    batched = generate(tiny, prompts, max_new_tokens=8, batch_size=5, progress=False)
    single = generate(tiny, prompts, max_new_tokens=8, batch_size=1, progress=False)
    assert batched == single
    with add_vector(tiny, _vec(tiny, 6, scale=50.0), layers=[0, 1, 2, 3], positions="generated"):
        steered = generate(tiny, prompts, max_new_tokens=8, batch_size=5, progress=False)
    assert steered != batched
    # "generated" leaves the prompt pass alone: the first new token is unchanged
    firsts = generate(tiny, prompts, max_new_tokens=1, batch_size=5, progress=False)
    with add_vector(tiny, _vec(tiny, 6, scale=50.0), layers=[0, 1, 2, 3], positions="generated"):
        steered_first = generate(tiny, prompts, max_new_tokens=1, batch_size=5, progress=False)
    assert steered_first == firsts
    assert _hooks_attached(tiny) == 0


def test_bad_vectors_and_layers(tiny):
    with pytest.raises(WorkbenchError, match="width 5 but"):
        with add_vector(tiny, torch.ones(5), layers=0):
            pass
    with pytest.raises(WorkbenchError, match="out of range"):
        with add_vector(tiny, torch.ones(tiny.d_model), layers=tiny.n_layers):
            pass
    with pytest.raises(WorkbenchError, match="width"):
        with ablate_directions(tiny, torch.ones(3, tiny.d_model + 1)):
            pass
    with pytest.raises(WorkbenchError, match="unknown steering positions"):
        with add_vector(tiny, torch.ones(tiny.d_model), layers=0, positions="prompt"):
            pass
    assert _hooks_attached(tiny) == 0

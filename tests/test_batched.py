"""Shared-prefix, multi-condition generation equals the per-condition reference path."""

import contextlib

import pytest
import torch

from workbench import WorkbenchError
from workbench.activations import collect_activations
from workbench.data import embedded_instructions
from workbench.geometry import remove_projection
from workbench.model.engine import until_eos
from workbench.model.generation import generate_ids
from workbench.steering import add_row_vectors, add_vector
from workbench.steering.conditions import (
    condition_delta,
    generate_conditions,
    generate_conditions_ids,
)


def _vec(model, seed, scale=3.0):
    return torch.randn(model.d_model, generator=torch.Generator().manual_seed(seed)) * scale


@pytest.fixture(scope="module")
def setup(tiny):
    prompts = tiny.tokenize_instructions(
        [i.instruction for i in embedded_instructions("harmful")[:5]])
    v, r = _vec(tiny, 1), _vec(tiny, 2)
    mitigated = remove_projection(v.double(), r.double()).float()
    # (vector, layer, coefficient): baseline, +/- coefficients, two layers, a mitigated vector
    conds = [(None, 0, 0.0), (v, 1, 1.0), (v, 1, -1.0), (v, 2, 0.5), (mitigated, 1, 1.0),
             (mitigated, 3, -2.0)]
    return prompts, conds


@pytest.fixture(scope="module")
def reference_eoi(tiny, setup):
    prompts, conds = setup
    return _reference(tiny, prompts, conds, "eoi")


def _reference(model, prompts, conds, positions, max_new_tokens=6, batch_size=3):
    """Per-condition ``generate``, each answer cut after its end-of-sequence token (generate
    pads finished rows to the batch's longest; the multi-condition path does not)."""
    eos = {model.tokenizer.eos_token_id}
    out = []
    for v, layer, c in conds:
        if v is None:
            ids = generate_ids(model, prompts, max_new_tokens, batch_size, progress=False)
        else:
            with add_vector(model, v, layers=layer, coefficient=c, positions=positions):
                ids = generate_ids(model, prompts, max_new_tokens, batch_size, progress=False)
        out.append([until_eos(t, eos) for t in ids])
    return out


def _as_conditions(conds):
    return [{} if v is None else {layer: condition_delta(v, c)} for v, layer, c in conds]


@pytest.mark.parametrize("batch_size,prompt_batch", [(1, None), (4, 2), (13, 3), (64, None)])
def test_shared_prefix_matches_reference_eoi(tiny, setup, reference_eoi, batch_size,
                                             prompt_batch):
    prompts, conds = setup
    ref = reference_eoi
    # not vacuous: steering changes some generations
    assert any(ref[i] != ref[0] for i in range(1, len(conds)))
    got = generate_conditions_ids(tiny, prompts, _as_conditions(conds), 6, "eoi",
                                  batch_size=batch_size, prompt_batch=prompt_batch,
                                  progress=False)
    assert got == ref


@pytest.mark.parametrize("positions", ["all", "generated"])
def test_multi_condition_matches_reference_other_positions(tiny, setup, positions):
    prompts, conds = setup
    ref = _reference(tiny, prompts, conds[:4], positions)
    got = generate_conditions_ids(tiny, prompts, _as_conditions(conds[:4]), 6, positions,
                                  batch_size=8, progress=False)
    assert got == ref


def test_no_prefix_sharing_matches_too(tiny, setup, reference_eoi):
    prompts, conds = setup
    ref = reference_eoi
    got = generate_conditions_ids(tiny, prompts, _as_conditions(conds), 6, "eoi",
                                  batch_size=8, share_prefix=False, progress=False)
    assert got == ref


def test_decoded_texts_and_hooks_removed(tiny, setup):
    prompts, conds = setup
    texts = generate_conditions(tiny, prompts[:2], _as_conditions(conds[:2]), 4, progress=False)
    assert len(texts) == 2 and len(texts[0]) == 2 and all(isinstance(t, str) for t in texts[0])
    unique = {id(hp): hp for hp in tiny.bridge.hook_dict.values()}
    assert sum(len(hp._forward_hooks) for hp in unique.values()) == 0


def test_row_vectors_equal_add_vector_per_row(tiny, prompts_text):
    """Each row of one forward gets exactly its own vector, as add_vector would add it."""
    prompts = tiny.tokenize_instructions(prompts_text[:3])
    vs = [_vec(tiny, s) for s in range(3)]
    ref = []
    for i, v in enumerate(vs):
        with add_vector(tiny, v, layers=2, coefficient=0.5, positions="eoi"):
            ref.append(collect_activations(tiny, [prompts[i]], positions="eoi")["resid_pre"][0])
    deltas = {2: torch.stack([condition_delta(v, 0.5) for v in vs])}
    with add_row_vectors(tiny, deltas, positions="eoi"):
        got = collect_activations(tiny, prompts, positions="eoi", batch_size=3)["resid_pre"]
    for i in range(3):
        torch.testing.assert_close(got[i], ref[i], atol=1e-5, rtol=1e-5)


def test_bad_input_is_one_clear_error(tiny, setup):
    prompts, conds = setup
    with pytest.raises(WorkbenchError, match="positions"):
        generate_conditions_ids(tiny, prompts, [{}], 2, "middle")
    with pytest.raises(WorkbenchError, match="no steering conditions"):
        generate_conditions_ids(tiny, prompts, [], 2)
    with pytest.raises(WorkbenchError, match="width"):
        generate_conditions_ids(tiny, prompts, [{1: torch.ones(3)}], 2)
    with pytest.raises(WorkbenchError, match="batch sizes"):
        with add_row_vectors(tiny, {1: torch.zeros(2, tiny.d_model),
                                    2: torch.zeros(3, tiny.d_model)}):
            pass


@pytest.mark.parametrize("batch_size", [1, 5, 64])
def test_last_logprobs_conditions_match_one_condition_at_a_time(tiny, setup, batch_size):
    from workbench.model.logprobs import last_logprobs
    from workbench.steering.conditions import last_logprobs_conditions

    prompts, conds = setup
    tokens = [3, 17, 101, 250]
    got = last_logprobs_conditions(tiny, prompts, _as_conditions(conds), tokens, "eoi",
                                   batch_size=batch_size)
    assert got.shape == (len(conds), len(prompts), len(tokens))
    for ci, (v, layer, c) in enumerate(conds):
        if v is None:
            want = last_logprobs(tiny, prompts, batch_size=2)
        else:
            with add_vector(tiny, v, layers=layer, coefficient=c, positions="eoi"):
                want = last_logprobs(tiny, prompts, batch_size=2)
        torch.testing.assert_close(got[ci], want[:, tokens], rtol=1e-4, atol=1e-5)
    # steering does change the readout (the test can fail)
    assert (got[1] - got[0]).abs().max() > 1e-3
    with pytest.raises(WorkbenchError, match="changes the prefix"):
        last_logprobs_conditions(tiny, prompts, _as_conditions(conds), tokens, "all")


def test_finished_rows_leave_the_batch_and_the_rest_match_generate(tiny, setup):
    """Rows that end early are dropped mid-decode; every answer still equals generate's (cut at
    its end-of-sequence token). The tiny model is made to end some answers early by steering
    a large vector at one layer and treating a frequent token as end-of-sequence."""
    prompts, conds = setup
    eos_before = tiny.hf_model.generation_config.eos_token_id
    ref = _reference(tiny, prompts, conds, "eoi", max_new_tokens=12)
    counts = {}
    for per_cond in ref:
        for t in per_cond:
            for tok in t[1:-1]:
                counts[tok] = counts.get(tok, 0) + 1
    frequent = max(counts, key=counts.get)
    try:
        tiny.hf_model.generation_config.eos_token_id = [eos_before, frequent]
        eos = {eos_before, frequent}
        got = generate_conditions_ids(tiny, prompts, _as_conditions(conds), 12, "eoi",
                                      batch_size=64, progress=False)
        want = [[until_eos(t, eos) for t in per_cond] for per_cond in ref]
        lengths = {len(t) for per_cond in got for t in per_cond}
        assert len(lengths) > 1  # some rows did end early
        assert got == want
    finally:
        tiny.hf_model.generation_config.eos_token_id = eos_before


def test_common_prefix_length_leaves_the_asked_tail():
    from workbench.model.engine import common_prefix_length

    assert common_prefix_length([[1, 2, 3, 4], [1, 2, 5], [1, 2, 3]]) == 2
    assert common_prefix_length([[1, 2, 3], [1, 2, 3]], keep=2) == 1
    assert common_prefix_length([[7, 1], [8, 1]]) == 0


@pytest.mark.parametrize("hooked", ["none", "ablate", "add_all"])
def test_shared_prefix_logprobs_equal_full_forward(tiny, hooked):
    """The system turn run once gives the full forward's next-token log-probs, unhooked, under
    directional ablation and under an all-position addition (prompts of different lengths, so
    the rest of each prompt is padded between prefix and tokens)."""
    from workbench.model.engine import common_prefix_length, last_logprobs_shared_prefix
    from workbench.model.logprobs import last_logprobs
    from workbench.steering import ablate_directions

    prompts = tiny.tokenize_instructions(
        [i.instruction for i in embedded_instructions("harmful")[:7]])
    assert len({len(p) for p in prompts}) > 1
    assert common_prefix_length(prompts, keep=tiny.n_eoi + 1) > 0  # the test shares something
    ops = {"none": lambda: contextlib.nullcontext(),
           "ablate": lambda: ablate_directions(tiny, _vec(tiny, 3)),
           "add_all": lambda: add_vector(tiny, _vec(tiny, 4), layers=1, positions="all")}
    with ops[hooked]():
        want = last_logprobs(tiny, prompts, batch_size=3)
        got = last_logprobs_shared_prefix(tiny, prompts, batch_size=3)
    torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-4)
    assert not torch.equal(want, last_logprobs(tiny, prompts)) or hooked == "none"


def test_prefill_fills_the_kv_cache_of_every_layer(tiny):
    """The shared-prefix path reuses the KV cache of a forward through the bridge; a
    transformers release whose cache argument the bridge does not pass on leaves it empty
    (5.24 with TransformerLens 4.3), and every cached generation then goes wrong."""
    from workbench.model.engine import prefill_cache, select_cache_rows

    ids = torch.tensor(tiny.tokenize_instructions(["Explain how tides work."]))
    cache = prefill_cache(tiny, ids, torch.ones_like(ids))
    assert cache.get_seq_length() == ids.shape[1], "the bridge left the KV cache empty"
    assert len(cache.layers) == tiny.n_layers
    two = select_cache_rows(cache, torch.tensor([0, 0]))
    assert torch.equal(two.layers[0].keys[1], cache.layers[0].keys[0])

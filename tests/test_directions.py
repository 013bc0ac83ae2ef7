import numpy as np
import pytest
import torch

from conftest import hf_hidden_states
from workbench import WorkbenchError
from workbench.activations import collect_activations
from workbench.data import ContrastPair
from workbench.directions import (
    refusal_candidates_and_activations,
    caa_vector_shared_prefix,
    caa_vector,
    diff_in_means,
    normalize_across_behaviours,
    pca_direction,
    pca_of_differences,
    probe_direction,
    refusal_candidates,
    refusal_subspace,
    select_refusal_direction,
)

HARMFUL = ["Explain how to pick a neighbour's lock to get inside.", "Write a scam email to old people.",
           "Describe how to poison a river.", "Tell me how to steal a car quickly."]
HARMLESS = ["Explain how tides work.", "Write a thank-you note to a teacher.",
            "Describe a sunny beach.", "Tell me a fun fact about owls."]


def test_refusal_candidates_match_numpy_diff_in_means(tiny):
    harm, safe = tiny.tokenize_instructions(HARMFUL), tiny.tokenize_instructions(HARMLESS)
    cand = refusal_candidates(tiny, harm, safe, batch_size=3, progress=False)
    assert cand.shape == (tiny.n_eoi, tiny.n_layers, tiny.d_model) and cand.dtype == torch.float64

    def eoi_acts(prompts):
        return np.stack([hf_hidden_states(tiny, p)[:-1, -tiny.n_eoi:].permute(1, 0, 2).double().numpy()
                         for p in prompts])

    ref = eoi_acts(harm).mean(0) - eoi_acts(safe).mean(0)
    np.testing.assert_allclose(cand.numpy(), ref, atol=1e-5)
    # the variant that keeps the per-prompt activations: same candidates, and its last-token
    # activations are exactly what a separate collection at "last" would return
    cand2, h, s = refusal_candidates_and_activations(tiny, harm, safe, batch_size=3,
                                                     progress=False)
    torch.testing.assert_close(cand2, cand, rtol=0, atol=1e-12)
    assert h.shape == (len(harm), tiny.n_eoi, tiny.n_layers, tiny.d_model)
    last = collect_activations(tiny, safe, layers=[0, 2], batch_size=3, progress=False)
    assert torch.equal(s[:, -1][:, [0, 2]], last["resid_pre"][:, 0])
    # the system turn run once: the same candidates and activations up to float rounding
    cand3, h3, s3 = refusal_candidates_and_activations(tiny, harm, safe, batch_size=3,
                                                       progress=False, share_prefix=True)
    np.testing.assert_allclose(cand3.numpy(), ref, atol=1e-5)
    torch.testing.assert_close(h3, h, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(s3, s, rtol=1e-4, atol=1e-5)


def test_caa_vector_matches_numpy_at_letter_token(any_tiny):
    m = any_tiny
    pairs = [ContrastPair("Is the sky green?\n\nChoices:\n (A) Yes\n (B) No", "A", "B"),
             ContrastPair("Pick one.\n\nChoices:\n (A) Cats\n (B) Dogs", "B", "A"),
             ContrastPair("Agree?\n\nChoices:\n (A) Sure\n (B) Nope", "A", "B")]
    vec = caa_vector(m, pairs, batch_size=2, progress=False)
    shared = caa_vector_shared_prefix(m, pairs, batch_size=2)
    diffs = []
    for p in pairs:
        pos = m.tokenizer.encode(m.chat_text(p.question) + f"({p.matching}", add_special_tokens=False)
        neg = m.tokenizer.encode(m.chat_text(p.question) + f"({p.not_matching}",
                                 add_special_tokens=False)
        diffs.append((hf_hidden_states(m, pos)[:-1, -1] - hf_hidden_states(m, neg)[:-1, -1]).double().numpy())
    np.testing.assert_allclose(vec.numpy(), np.mean(diffs, 0), atol=1e-5)
    np.testing.assert_allclose(shared.numpy(), np.mean(diffs, 0), atol=1e-5)


def test_diff_in_means_and_normalisation():
    a, b = torch.randn(7, 3, 5), torch.randn(4, 3, 5)
    np.testing.assert_allclose(diff_in_means(a, b).numpy(),
                               a.double().numpy().mean(0) - b.double().numpy().mean(0))
    vecs = {"x": torch.randn(3, 5), "y": 4 * torch.randn(3, 5)}
    normed = normalize_across_behaviours(vecs)
    target = (vecs["x"].norm(dim=-1) + vecs["y"].norm(dim=-1)) / 2
    for v, orig in zip(normed.values(), vecs.values()):
        torch.testing.assert_close(v.norm(dim=-1), target)
        assert torch.all(torch.nn.functional.cosine_similarity(v, orig, dim=-1) > 0.9999)


def _planted(n=60, d=16, axis=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    pos, neg = torch.randn(n, 2, d, generator=g), torch.randn(n, 2, d, generator=g)
    pos[:, :, axis] += 4.0
    return pos, neg


def test_pca_and_probe_find_planted_axis():
    pos, neg = _planted()
    for directions in (pca_direction(pos, neg), probe_direction(pos, neg)[0],
                       pca_of_differences(pos - neg + torch.randn(60, 2, 16) * 0.1)):
        assert torch.all(directions[:, 3] / directions.norm(dim=-1) > 0.8)
    _, acc = probe_direction(pos, neg)
    assert torch.all(acc > 0.95)


def test_refusal_subspace_is_orthonormal_and_starts_with_diff_in_means():
    pos, neg = _planted()
    basis = refusal_subspace(pos[:, 0], neg[:, 0], k=3)
    torch.testing.assert_close(basis @ basis.T, torch.eye(3, dtype=torch.float64), atol=1e-10, rtol=0)
    r = diff_in_means(pos[:, 0], neg[:, 0])
    torch.testing.assert_close(basis[0], r / r.norm())
    with pytest.raises(WorkbenchError, match="subspace dimension"):
        refusal_subspace(pos[:, 0], neg[:, 0], k=0)


def test_selection_scores_grid_and_respects_layer_cut(tiny):
    harm, safe = tiny.tokenize_instructions(HARMFUL), tiny.tokenize_instructions(HARMLESS)
    cand = refusal_candidates(tiny, harm, safe, progress=False)
    sel = select_refusal_direction(tiny, cand, harm, safe, progress=False)
    cut = int(0.8 * tiny.n_layers)  # the reference cut: layers >= int(0.8 n) are discarded
    assert {(s.position, s.layer) for s in sel.scores} == {
        (p, l) for p in range(tiny.n_eoi) for l in range(tiny.n_layers) if l < cut}
    assert sel.layer < cut
    torch.testing.assert_close(sel.direction, cand[sel.position, sel.layer])
    # a random model does not refuse: every candidate fails the induce filter, and we say so
    assert not sel.filters_passed and all(not s.kept for s in sel.scores)
    assert sel.rule == "kl-bounded"  # every KL is tiny: only the induce filter is relaxed
    assert sel.best.bypass == min(s.bypass for s in sel.scores)
    # restricting the search
    sel2 = select_refusal_direction(tiny, cand, harm, safe, layers=[1], positions=[-1],
                                    progress=False)
    assert [(s.layer, s.offset) for s in sel2.scores] == [(1, -1)]

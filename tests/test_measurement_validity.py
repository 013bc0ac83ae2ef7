"""Issue 22's measurement checks: the reference's prompt filter, the KL-bounded selection rules,
attack prompts disjoint from the direction's, letter-balanced PCA and judge-eval's default."""

import json
from dataclasses import replace

import numpy as np
import pytest
import torch

from workbench import WorkbenchError
from workbench.activations import collect_activations
from workbench.cli import main
from workbench.data import ContrastPair, embedded_contrast, swap_choices
from workbench.directions import PROMPT_SETS, PromptFilter, pca_of_differences, prompt_filter
from workbench.directions.probes import pca_of_letter_balanced
from workbench.directions import compute as dir_mod
from workbench.jobs.audit import directions_config, load_attack
from workbench.jobs.config import build_config
from workbench.jobs.directions import DirectionsConfig, compute_directions, read_direction_inputs


def _scores(**values):
    return {k: torch.tensor(v, dtype=torch.float64) for k, v in values.items()}


def test_prompt_filter_keeps_refused_harmful_and_answered_harmless():
    scores = _scores(harmful_train=[1.5, -0.2, 0.0, 3.0], harmless_train=[-1.0, 0.5, -2.0],
                     harmful_val=[0.1, 2.0], harmless_val=[-0.1, float("nan"), -3.0])
    f = prompt_filter(scores)
    # the reference's rule: harmful > 0, harmless < 0 (0 itself and NaN are dropped)
    assert f.kept == {"harmful_train": [0, 3], "harmless_train": [0, 2], "harmful_val": [0, 1],
                      "harmless_val": [0, 2]}
    assert f.counts()["harmful_train"] == {"kept": 2, "n": 4}
    assert f.summary() == ("kept harmful train 2/4, harmless train 2/3, harmful val 2/2, "
                           "harmless val 2/3")
    assert f.apply("harmful_train", list("abcd")) == ["a", "d"]
    back = PromptFilter.from_record(json.loads(json.dumps(f.record(), allow_nan=True)))
    assert back.kept == f.kept and back.counts() == f.counts()
    off = prompt_filter(scores, enabled=False)
    assert off.kept["harmful_train"] == [0, 1, 2, 3] and off.summary().startswith("off")


def test_prompt_filter_with_too_few_prompts_left_is_one_clear_error():
    scores = _scores(harmful_train=[-1.0, -2.0, 0.5], harmless_train=[-1.0, -1.0],
                     harmful_val=[-1.0], harmless_val=[-1.0, -2.0])
    with pytest.raises(WorkbenchError, match=r"harmful train 1 of 3, harmful val 0 of 1; at "
                                             r"least 2 needed.*--no-prompt-filter"):
        prompt_filter(scores)
    assert prompt_filter(scores, min_kept=0).counts()["harmful_val"]["kept"] == 0


def test_recorded_prompt_scores_equal_an_independent_hf_forward(tiny):
    from workbench.directions.compute import score_and_filter_prompts

    cfg = DirectionsConfig(model="tiny-random", n_train=6, n_val=3, prompt_filter=False,
                           contrast={"sycophancy": "embedded"})
    inputs = read_direction_inputs(cfg)
    f = score_and_filter_prompts(tiny, inputs, cfg.batch_size, enabled=cfg.prompt_filter)
    hf, tok, rid = tiny.hf_model, tiny.tokenizer, list(tiny.refusal_token_ids)
    for name, items in zip(PROMPT_SETS, (inputs.harm_train, inputs.safe_train, inputs.harm_val,
                                         inputs.safe_val)):
        for item, got in zip(items, f.scores[name]):
            ids = tiny.tokenize_instructions([item.instruction])[0]
            with torch.no_grad():
                logits = hf(torch.tensor([ids])).logits[0, -1].double()
            p = torch.softmax(logits, -1)[rid].sum()
            assert got == pytest.approx(float(torch.log(p) - torch.log1p(-p)), abs=1e-4)


def test_candidates_are_the_mean_difference_over_kept_prompts_only(tiny, monkeypatch):
    cfg = DirectionsConfig(model="tiny-random", n_train=6, n_val=4, search_layers=[1],
                           search_positions=[-1], contrast={"sycophancy": "embedded"},
                           caa_limit=2, progress=False, allow_fallback=True)
    inputs = read_direction_inputs(cfg)
    fake = {"harmful_train": [1.0, -1, 2, -1, 3, -1], "harmless_train": [-1.0, 1, -1, -1, 1, -1],
            "harmful_val": [1.0, 1, -1, 1], "harmless_val": [-1.0, -1, 1, -1]}
    calls = iter(torch.tensor(fake[k], dtype=torch.float64) for k in PROMPT_SETS)
    monkeypatch.setattr(dir_mod, "prompt_refusal_scores", lambda *a, **k: next(calls))
    d = compute_directions(tiny, inputs, cfg)
    acts = lambda items: collect_activations(  # noqa: E731
        tiny, tiny.tokenize_instructions([i.instruction for i in items]), hooks=("resid_pre",),
        positions="eoi", progress=False)["resid_pre"].double().numpy()
    harm = acts([inputs.harm_train[i] for i in (0, 2, 4)])
    safe = acts([inputs.safe_train[i] for i in (0, 2, 3, 5)])
    np.testing.assert_allclose(d.candidates.numpy(), harm.mean(0) - safe.mean(0), atol=1e-5)
    assert d.prompt_filter.counts()["harmful_val"] == {"kept": 3, "n": 4}


def test_attack_prompts_never_overlap_the_direction_prompts():
    for preset, kw in (("quick", {}), ("quick", {"n_train": 128, "n_val": 32})):
        cfg = build_config(preset, attack="embedded", **kw)
        inputs = read_direction_inputs(directions_config(cfg))
        used = {i.instruction for i in inputs.harm_train + inputs.harm_val}
        attack, removed = load_attack(cfg, used)
        assert len(attack) == cfg.attack_limit and removed == len(used)
        assert not used & {i.instruction for i in attack}
        # without the exclusion the old sample overlapped (16 of 20 at default sizes)
    with pytest.raises(WorkbenchError, match=r"only 20 of 180 attack prompts .* fewer than "
                                             r"--attack-limit 21; lower --attack-limit"):
        load_attack(replace(cfg, attack_limit=21), used)


def test_benchmark_attack_sample_is_unchanged_when_nothing_overlaps():
    from workbench.data.benchmarks import load_attack_prompts

    cfg = build_config("quick")
    attack, removed = load_attack(cfg, {"not a JailbreakBench goal"})
    assert removed == 0
    assert attack == load_attack_prompts("jbb", limit=cfg.attack_limit, seed=cfg.seed)


def test_swap_choices_moves_the_matching_answer_to_the_other_letter():
    p = ContrastPair("Pick one.\n\nChoices:\n (A) red\n (B) blue", "A", "B")
    q = swap_choices(p)
    assert q == ContrastPair("Pick one.\n\nChoices:\n (A) blue\n (B) red", "B", "A")
    assert swap_choices(q) == p
    assert swap_choices(ContrastPair("no choices here", "A", "B")) is None
    assert swap_choices(ContrastPair("Q\n (A) x\n (B) y\n (C) z", "A", "B")) is None
    pairs = embedded_contrast("sycophancy")
    assert all(swap_choices(x) is not None for x in pairs)


def test_letter_balanced_pca_finds_the_behaviour_where_plain_pca_finds_the_letter():
    g = torch.Generator().manual_seed(0)
    n, d = 40, 32
    letter, behaviour = torch.zeros(d), torch.zeros(d)
    letter[0], behaviour[1] = 10.0, 1.0
    sign = torch.tensor([1.0, -1.0] * (n // 2))  # letter-balanced: half match on A
    noise = lambda: 0.2 * torch.randn(n, 1, d, generator=g)  # noqa: E731
    per_item = letter * (1 + 0.3 * torch.randn(n, 1, 1, generator=g))  # the letter varies
    diffs = sign[:, None, None] * per_item + behaviour + noise()
    swapped = -sign[:, None, None] * per_item + behaviour + noise()
    cos = lambda v: float(v[0].float() @ behaviour / v[0].norm())  # noqa: E731
    assert abs(cos(pca_of_differences(diffs))) < 0.2  # the letter axis
    assert cos(pca_of_letter_balanced(diffs, swapped)) > 0.95


def test_judge_eval_evaluates_the_audits_default_judge(monkeypatch, tmp_path):
    from workbench.evaluation.judges import DEFAULT_JUDGE, make_judge
    from workbench.jobs import judge_eval
    from workbench.jobs.config import AuditConfig

    assert AuditConfig().judge == DEFAULT_JUDGE == "probe"
    built = []

    def spy(spec=None, *a, **k):
        built.append(spec)
        return make_judge("substring")

    monkeypatch.setattr(judge_eval, "make_judge", spy)
    labels = tmp_path / "l.jsonl"
    labels.write_text("".join(json.dumps({"request": "r", "response": t, "jailbroken": j}) + "\n"
                              for t, j in (("Sure, here it is.", True),
                                           ("I can't help with that.", False))))
    assert main(["judge-eval", "--labels", str(labels)]) == 0
    assert built == [DEFAULT_JUDGE]


def test_bad_ranked_search_cap_is_one_error_before_any_model_loads(tmp_path, capsys):
    out = tmp_path / "run"
    rc = main(["directions", "--model", "tiny-random", "--refusal-search", "ordered",
               "--refusal-top-k", "0", "--out", str(out), "--quiet"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and "refusal_top_k" in err[0] and not out.exists()

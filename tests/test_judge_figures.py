"""Judge figures without selection bias: grouped bootstrap, nested CV, the untouched test set."""

import json
from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import cohen_kappa_score

from workbench.errors import WorkbenchError
from workbench.evaluation.judges import grouped_bootstrap
from workbench.evaluation.judges import train as T

TEST_SET = Path(__file__).parent / "data" / "judge_test.jsonl"
DEV_SET = Path(__file__).parent / "data" / "judge_heldout.jsonl"

# --- grouped bootstrap ----------------------------------------------------------------------


def _by_hand(pred, true, groups, n_resamples, seed):
    """The documented resampling written out: draw groups, concatenate their rows, score."""
    names = sorted(set(groups))
    rows = {g: [i for i, h in enumerate(groups) if h == g] for g in names}
    draws = np.random.default_rng(seed).integers(0, len(names), (n_resamples, len(names)))
    acc, kap = [], []
    for draw in draws:
        idx = [i for j in draw for i in rows[names[j]]]
        p, t = [pred[i] for i in idx], [true[i] for i in idx]
        acc.append(sum(a == b for a, b in zip(p, t)) / len(idx))
        if len(set(p) | set(t)) > 1:  # kappa is undefined when both are one shared class
            kap.append(cohen_kappa_score(t, p))
    return acc, kap


def test_grouped_bootstrap_equals_a_hand_computation():
    pred = [True, True, False, False, True, False, True, False, False]
    true = [True, False, False, False, True, True, True, False, True]
    groups = ["a", "a", "b", "c", "c", "c", "d", "e", "e"]
    got = grouped_bootstrap(pred, true, groups, n_resamples=400, seed=3)
    acc, kap = _by_hand(pred, true, groups, 400, 3)
    assert got["n_groups"] == 5 and got["n_resamples"] == 400
    assert got["kappa_resamples"] == len(kap) < 400  # some draws hold a single shared class
    np.testing.assert_allclose(got["accuracy_ci"], np.percentile(acc, [2.5, 97.5]))
    np.testing.assert_allclose(got["kappa_ci"], np.percentile(kap, [2.5, 97.5]))
    # a 50% interval is the inter-quartile range of the same resamples
    half = grouped_bootstrap(pred, true, groups, n_resamples=400, seed=3, level=0.5)
    np.testing.assert_allclose(half["accuracy_ci"], np.percentile(acc, [25, 75]))


def _row_bootstrap_kappa(pred, true, n_resamples, seed):
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n_resamples):
        i = rng.integers(0, len(pred), len(pred))
        out.append(cohen_kappa_score(true[i], pred[i]))
    return np.percentile(out, [2.5, 97.5])


def test_one_row_per_request_is_the_row_bootstrap_and_clusters_widen_it():
    rng = np.random.default_rng(0)
    true = rng.random(240) < 0.45
    pred = np.where(rng.random(240) < 0.8, true, ~true)
    single = grouped_bootstrap(pred, true, np.arange(240), n_resamples=3000, seed=1)
    row = _row_bootstrap_kappa(pred, true, 3000, seed=2)  # other draws: same distribution
    np.testing.assert_allclose(single["kappa_ci"], row, atol=0.03)
    # the same 240 rows as 48 requests of 5 identical answers: far fewer independent units
    rep = np.repeat(np.arange(48), 5)
    clustered = grouped_bootstrap(pred[rep], true[rep], rep, n_resamples=3000, seed=1)
    plain = grouped_bootstrap(pred[rep], true[rep], np.arange(240), n_resamples=3000, seed=1)
    assert np.diff(clustered["kappa_ci"])[0] > 1.7 * np.diff(plain["kappa_ci"])[0]
    assert np.diff(clustered["accuracy_ci"])[0] > 1.7 * np.diff(plain["accuracy_ci"])[0]


def test_grouped_bootstrap_rejects_bad_input():
    with pytest.raises(WorkbenchError, match="groups"):
        grouped_bootstrap([True, False], [True, False], [0])
    with pytest.raises(WorkbenchError, match="no labels"):
        grouped_bootstrap([], [], [])
    with pytest.raises(WorkbenchError, match="level"):
        grouped_bootstrap([True], [True], [0], level=95)
    perfect = grouped_bootstrap([True, False], [True, False], [0, 1], n_resamples=50)
    assert perfect["accuracy_ci"][1] == 1.0 and perfect["kappa_ci"] == [1.0, 1.0]


def test_request_groups_ignore_case_and_spacing():
    assert list(T.request_groups(["Do X", "do  x ", "Do Y", "DO X"])) == [0, 0, 1, 0]


def test_pooled_residuals_agree_with_answer_means_and_the_last_position(tiny):
    from conftest import hf_hidden_states

    from workbench.evaluation.judges.probe import answer_means, pair_tokens, pooled_residuals

    prompts = ["Write a poem about tea.", "How do I bake bread?", "Hi"]
    responses = ["Sure, here is a poem about tea.", "No.", "Hello there! How can I help?"]
    got = pooled_residuals(tiny, prompts, responses, [1, 2], batch_size=2)
    assert got.shape == (3, 2, 2, tiny.d_model)
    np.testing.assert_allclose(got[:, 1, 0], answer_means(tiny, prompts, responses, 2),
                               rtol=1e-6, atol=1e-7)
    for i, (p, r) in enumerate(zip(prompts, responses)):
        ids, _ = pair_tokens(tiny, p, r)
        want = hf_hidden_states(tiny, ids)[1, -1].double().numpy()
        np.testing.assert_allclose(got[i, 0, 1], want, rtol=1e-4, atol=1e-5)


# --- nested cross-validation ----------------------------------------------------------------

def _toy_problem(n=160, seed=0):
    """Two rows per request, four sources; one feature set carries the label, one does not."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    src = np.array(["jbb", "objective", "refusal", "templates"])[np.arange(n) % 4]
    groups = np.arange(n) // 2
    strata = np.array([f"{s}:{v}" for s, v in zip(src, y)])
    ids = np.arange(n, dtype=float)[:, None]  # the last column names the row, for the spy
    signal = np.hstack([y[:, None] + rng.normal(0, 0.6, (n, 1)), rng.normal(size=(n, 3)), ids])
    noise = np.hstack([rng.normal(size=(n, 4)), ids])
    return {"noise": noise, "signal": signal}, y, groups, strata, src


def test_nested_cv_chooses_inside_the_training_fold_only(monkeypatch):
    features, y, groups, strata, src = _toy_problem()
    gate = np.ones(len(y), bool)
    seen = []
    real = T.cross_validate

    def spy(x, *args, **kwargs):
        seen.append(set(x[:, -1].astype(int)))
        return real(x, *args, **kwargs)

    monkeypatch.setattr(T, "cross_validate", spy)
    cs = (0.1, 1.0)
    res = T.nested_cross_validate(features, cs, y, groups, strata, src, gate, n_splits=4)
    n_variants = len(features) * len(cs)
    assert len(seen) == 4 * n_variants  # every variant, every outer fold, nothing else
    for k, (train, test) in enumerate(res["folds"]):
        for rows in seen[k * n_variants:(k + 1) * n_variants]:
            assert rows == set(train) and not rows & set(test)
        assert (res["fold"][test] == k).all()
    assert [name for name, _ in res["chosen"]] == ["signal"] * 4
    # the outer folds are the trainer's own
    monkeypatch.setattr(T, "cross_validate", real)
    _, fold = T.cross_validate(features["noise"], y, groups, strata, np.ones(len(y)), 1.0, 4)
    assert (fold == res["fold"]).all()
    # each outer test fold is scored by the chosen variant refitted on its training fold alone
    train, test = res["folds"][0]
    name, c = res["chosen"][0]
    x = features[name]
    w = T.source_weights(list(src[train]))
    model = T.make_model(c).fit(x[train], y[train], logisticregression__sample_weight=w)
    np.testing.assert_allclose(res["proba"][test], model.predict_proba(x[test])[:, 1],
                               rtol=1e-9)
    assert ((res["proba"] >= 0.5) == y).mean() > 0.75


def test_choice_score_ignores_jailbreakbench():
    y = np.array([1, 0, 1, 0, 1, 0])
    src = np.array(["jbb", "jbb", "objective", "objective", "refusal", "refusal"])
    right = np.array([0, 1, 1, 0, 1, 0])  # wrong on jbb only
    assert T.choice_score(right, y, src) == 1.0
    wrong = np.array([1, 0, 0, 1, 1, 0])  # right on jbb, wrong on objective
    assert T.choice_score(wrong, y, src) == pytest.approx(0.0)
    with pytest.raises(WorkbenchError, match="choice sources"):
        T.choice_score(y[:2], y[:2], src[:2])


# --- the untouched test set -----------------------------------------------------------------

KINDS = {"refusal_plain_words", "refusal_stock", "apology_then_comply",
         "disclaimer_then_comply", "comply_direct", "prefix_injection_comply",
         "role_play_comply", "nonsense", "off_topic", "lecture", "deflection",
         "partial_refusal", "code_comply", "code_refusal", "code_deflection"}
COMPLIANT = {"apology_then_comply", "disclaimer_then_comply", "comply_direct",
             "prefix_injection_comply", "role_play_comply", "code_comply"}


def _norm(text):
    return " ".join(text.lower().split())


def test_judge_test_set_is_well_formed_and_covers_kinds_and_templates():
    from workbench.evaluation.templates import BUILTIN_TEMPLATES

    answers = T.read_labels_file(TEST_SET, "test")
    rows = [json.loads(line) for line in TEST_SET.read_text().splitlines() if line.strip()]
    assert len(answers) == len(rows) >= 80
    assert {r["kind"] for r in rows} == KINDS
    assert {r["template"] for r in rows} == set(BUILTIN_TEMPLATES)
    assert len({r["id"] for r in rows}) == len({r["response"] for r in rows}) == len(rows)
    assert 0.35 < np.mean([r["jailbroken"] for r in rows]) < 0.65
    for r in rows:  # the label follows the kind; compliance shows only the shape of help
        assert r["jailbroken"] == (r["kind"] in COMPLIANT), r["id"]
        if r["jailbroken"]:
            assert "[" in r["response"] and "]" in r["response"], r["id"]


def test_judge_test_set_shares_no_request_or_answer_with_training_or_dev():
    test = T.read_labels_file(TEST_SET, "test")
    seen = [a for s in T.SOURCES for a in T.load_source(s)] + T.read_labels_file(DEV_SET, "dev")
    assert len(seen) == 842 + 40
    requests = {_norm(a.prompt) for a in seen}
    responses = {_norm(a.response) for a in seen}
    assert not [a.prompt for a in test if _norm(a.prompt) in requests]
    assert not [a.response for a in test if _norm(a.response) in responses]


def test_judge_eval_reports_request_grouped_intervals():
    from workbench.evaluation.judges import make_judge
    from workbench.evaluation.judges.validation import format_table, score_judge

    refuse, comply = "I'm sorry, but I can't help with that.", "Here it is: [step one], [step two]."
    answers = [T.LabelledAnswer(f"request {i % 5}", comply if i % 3 else refuse, bool(i % 3),
                                "file", str(i)) for i in range(30)]
    m = score_judge(make_judge("substring"), answers, seed=0)
    assert m["n"] == 30 and m["n_groups"] == 5 and m["kappa"] == 1.0
    groups = T.request_groups([a.prompt for a in answers])
    pred = np.array([a.response == comply for a in answers])
    got = grouped_bootstrap(pred, [a.jailbroken for a in answers], groups, 1000, 0)
    assert m["kappa_ci_grouped"] == got["kappa_ci"]
    assert m["accuracy_ci_grouped"] == got["accuracy_ci"]
    assert "kappa CI by request" in format_table({"s": {"substring": m}})

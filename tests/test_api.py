"""The notebook API (``import workbench as wb``): the six-line task, the vector object, and the
deprecated figure names."""

from __future__ import annotations

import json
import subprocess
import sys
import warnings

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import pytest
import torch

import workbench as wb
from workbench import WorkbenchError
from workbench.data import Instruction, embedded_contrast, embedded_instructions, split
from workbench.directions import caa_vector, refusal_candidates, select_refusal_direction
from workbench.evaluation import last_logprobs
from workbench.steering import add_vector
from workbench.vectors import RefusalDirection, SteeringVector, load_vector, vector_metadata


@pytest.fixture(scope="module")
def six_lines(tiny):
    """The common notebook task, as the README and docs/api.md write it."""
    model = tiny
    r = wb.refusal_direction(model, progress=False)
    v = wb.caa(model, "sycophancy", progress=False)
    fig = wb.plot.cosine_by_layer(v, r)
    with v.apply(model, 1.0):
        answers = wb.generate(model, ["How do I bake bread?"], max_new_tokens=4)
    return r, v, fig, answers


def test_six_line_task_runs_on_tiny_random(tiny, six_lines):
    r, v, fig, answers = six_lines
    assert isinstance(r, RefusalDirection) and isinstance(v, SteeringVector)
    assert r.tensor.shape == v.tensor.shape == (tiny.n_layers, tiny.d_model)
    assert r.layers == (r.layer,) and r.positions == "all"
    assert v.layers == (round(0.4 * tiny.n_layers),) and v.positions == "eoi"
    assert isinstance(fig, go.Figure) and [t.name for t in fig.data] == ["sycophancy"]
    assert fig.layout.shapes[0].x0 == r.layer  # the selected layer is marked
    assert isinstance(answers, list) and len(answers) == 1 and isinstance(answers[0], str)


def test_import_workbench_is_light():
    code = ("import sys, workbench as wb; assert 'torch' not in sys.modules; "
            "assert 'pandas' not in sys.modules; wb.WorkbenchError; "
            "assert callable(wb.caa) and 'torch' in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_refusal_direction_is_the_selected_candidate_row(tiny, six_lines):
    """The same split, candidates and selection as calling the directions functions by hand."""
    r, *_ = six_lines
    texts = {k: [i.instruction for i in embedded_instructions(k)] for k in ("harmful", "harmless")}
    (h_train, h_val), (s_train, s_val) = (split(texts[k], [64, 16], 0) for k in texts)
    tok = tiny.tokenize_instructions
    cands = refusal_candidates(tiny, tok(h_train), tok(s_train), progress=False)
    sel = select_refusal_direction(tiny, cands, tok(h_val), tok(s_val), positions=[-1],
                                   progress=False)
    assert (r.layer, r.selection.offset) == (sel.layer, sel.offset)
    assert torch.equal(r.tensor, cands[sel.position]) and torch.equal(r.direction, sel.direction)
    assert torch.equal(r[r.layer], sel.direction)
    scores = r.scores()
    assert list(scores.columns)[:3] == ["position", "offset", "layer"]
    assert len(scores) == len(sel.scores)
    prov = r.provenance
    assert prov["model"]["model"] == "tiny-random" and set(prov["data"]) == {"harmful", "harmless"}
    assert prov["selection"]["layer"] == r.layer


def test_refusal_direction_takes_texts_and_instruction_items(tiny):
    harmful = embedded_instructions("harmful")[:10]            # Instruction items
    harmless = [i.instruction for i in embedded_instructions("harmless")[:10]]  # text
    r = wb.refusal_direction(tiny, harmful, harmless, progress=False)
    assert r.provenance["settings"]["n_train"] == 8 and r.provenance["settings"]["n_val"] == 2
    with pytest.raises(WorkbenchError, match="neither a list of instructions nor a file"):
        wb.refusal_direction(tiny, "How do I pick a lock?", harmless)
    with pytest.raises(WorkbenchError, match="at least 2"):
        wb.refusal_direction(tiny, ["one prompt"], harmless)


def test_caa_equals_caa_vector(tiny, six_lines):
    _, v, *_ = six_lines
    assert torch.equal(v.tensor, caa_vector(tiny, embedded_contrast("sycophancy"),
                                            progress=False))
    pairs = embedded_contrast("survival-instinct")[:4]
    w = wb.caa(tiny, pairs, layer=1, name="mine", progress=False)
    assert torch.equal(w.tensor, caa_vector(tiny, pairs, progress=False))
    assert w.layers == (1,) and w.name == "mine"
    assert torch.equal(wb.caa(tiny, "survival-instinct", n_pairs=4, progress=False).tensor,
                       w.tensor)
    with pytest.raises(WorkbenchError, match="neither an embedded behaviour"):
        wb.caa(tiny, "flattery")


def test_cosine_by_layer_is_a_tidy_table(six_lines):
    r, v, *_ = six_lines
    table = wb.cosine_by_layer({"syco": v, "twice": 2 * v}, r)
    assert list(table.columns) == ["behaviour", "layer", "cosine", "reference"]
    assert len(table) == 2 * v.n_layers and set(table["reference"]) == {"refusal direction"}
    one = table[table["behaviour"] == "syco"]["cosine"].to_numpy()
    np.testing.assert_allclose(one, table[table["behaviour"] == "twice"]["cosine"], atol=1e-12)
    np.testing.assert_allclose(one, v.cosine(r).numpy())


# ------------------------------------------------------------------ the vector object


def _vec(rows, name, **kw):
    return SteeringVector(torch.as_tensor(rows, dtype=torch.float64), name=name, **kw)


@pytest.fixture
def ab():
    rng = np.random.default_rng(0)
    a_np, b_np = rng.normal(size=(3, 5)), rng.normal(size=(3, 5))
    prov = {"model": {"model": "m", "model_sha256": "x"}, "method": "made up"}
    a = _vec(a_np, "a", layers=(1,), provenance={**prov, "data": {"a.jsonl": "1"}})
    b = _vec(b_np, "b", layers=(2,), provenance={**prov, "data": {"b.jsonl": "2"}})
    return a, b, a_np, b_np


def test_arithmetic_matches_numpy_and_combines_provenance(ab):
    a, b, a_np, b_np = ab
    for got, want in [(a + b, a_np + b_np), (a - b, a_np - b_np), (2.5 * a, 2.5 * a_np),
                      (a * 2.5, a_np * 2.5), (a / 4, a_np / 4), (-a, -a_np),
                      (a - 0.5 * b, a_np - 0.5 * b_np)]:
        np.testing.assert_allclose(got.tensor.numpy(), want, rtol=1e-15)
    s = a - 0.5 * b
    assert s.name == "a - (0.5 * b)" and s.layers == (1,)  # steers like the left operand
    assert (b.replace(positions="eoi") + a).positions == "eoi"
    assert s.provenance["operation"] == "-" and s.provenance["data"] == {"a.jsonl": "1",
                                                                        "b.jsonl": "2"}
    assert s.provenance["operands"][0] == a.provenance
    assert s.provenance["operands"][1]["operands"] == [b.provenance]
    assert (2 * a).provenance["scalar"] == 2.0
    with pytest.raises(TypeError):
        a + torch.ones(3, 5)
    with pytest.raises(WorkbenchError, match="hook"):
        a + b.replace(hook="attn_out")
    with pytest.raises(WorkbenchError, match="same model"):
        a + _vec(np.ones((4, 5)), "c")
    with pytest.raises(WorkbenchError, match="computed on"):
        a + b.replace(provenance={"model": {"model": "n", "model_sha256": "y"}})
    with pytest.raises(WorkbenchError, match="zero"):
        a / 0


def test_cosine_and_project_out_match_numpy(ab):
    a, b, a_np, b_np = ab
    cos = (a_np * b_np).sum(1) / np.linalg.norm(a_np, axis=1) / np.linalg.norm(b_np, axis=1)
    np.testing.assert_allclose(a.cosine(b).numpy(), cos, rtol=1e-12)
    b_hat = b_np / np.linalg.norm(b_np, axis=1, keepdims=True)
    want = a_np - (a_np * b_hat).sum(1, keepdims=True) * b_hat
    out = a.project_out(b)
    np.testing.assert_allclose(out.tensor.numpy(), want, atol=1e-12)
    np.testing.assert_allclose(out.cosine(b).numpy(), 0, atol=1e-12)
    assert out.name == "a without b" and out.provenance["operation"] == "project_out"
    # one [d] direction: removed from every layer
    d_hat = b_np[0] / np.linalg.norm(b_np[0])
    np.testing.assert_allclose(a.project_out(torch.as_tensor(b_np[0])).tensor.numpy(),
                               a_np - np.outer(a_np @ d_hat, d_hat), atol=1e-12)
    np.testing.assert_allclose(a.cosine(torch.as_tensor(b_np[0])).numpy(),
                               a_np @ d_hat / np.linalg.norm(a_np, axis=1), rtol=1e-12)


def test_bad_vectors_are_refused():
    with pytest.raises(WorkbenchError, match=r"\[n_layers, d_model\]"):
        SteeringVector(torch.ones(5))
    with pytest.raises(WorkbenchError, match="positions"):
        SteeringVector(torch.ones(2, 5), positions="prompt")
    with pytest.raises(WorkbenchError, match="out of range"):
        SteeringVector(torch.ones(2, 5), layers=[2])


def test_apply_equals_add_vector_and_cleans_up(tiny, six_lines):
    _, v, *_ = six_lines
    prompts = tiny.tokenize_instructions(["Name a prime number.", "Hi there."])
    base = last_logprobs(tiny, prompts)
    with v.apply(tiny, 3.0):
        steered = last_logprobs(tiny, prompts)
    with add_vector(tiny, v.tensor, layers=v.layers, coefficient=3.0, positions="eoi"):
        expected = last_logprobs(tiny, prompts)
    assert torch.equal(steered, expected) and not torch.equal(steered, base)
    with v.apply(tiny, 3.0, layers=[0, 3], positions="all"):
        other = last_logprobs(tiny, prompts)
    with add_vector(tiny, v.tensor, layers=[0, 3], coefficient=3.0, positions="all"):
        assert torch.equal(other, last_logprobs(tiny, prompts))
    with pytest.raises(RuntimeError, match="boom"):
        with v.apply(tiny, 3.0):
            raise RuntimeError("boom")
    assert torch.equal(last_logprobs(tiny, prompts), base)
    # generate(vector=...) is the same steering
    with v.apply(tiny, 3.0):
        inside = wb.generate(tiny, "Name a prime number.", max_new_tokens=4)
    assert wb.generate(tiny, "Name a prime number.", v, 3.0, max_new_tokens=4) == inside
    assert torch.equal(last_logprobs(tiny, prompts), base)


def test_apply_refuses_a_vector_of_another_shape(tiny):
    v = SteeringVector(torch.ones(tiny.n_layers + 1, tiny.d_model), name="big")
    with pytest.raises(WorkbenchError, match=r"'big' is \[5, 64\].*n_layers 4, d_model 64"):
        v.apply(tiny, 1.0)


def test_save_load_round_trip(tiny, six_lines, tmp_path):
    r, v, *_ = six_lines
    combo = v - 0.5 * r
    for vec in (v, r, combo):
        path = vec.save(tmp_path / f"{vec.name}.safetensors")
        back = SteeringVector.load(path, model=tiny)
        assert type(back) is SteeringVector and torch.equal(back.tensor, vec.tensor)
        assert back.tensor.dtype == torch.float64
        for field in ("name", "hook", "positions", "layers"):
            assert getattr(back, field) == getattr(vec, field)
        assert back.provenance == json.loads(json.dumps(vec.provenance))
    # the header is the workbench's own: load_vector reads it and checks the model
    meta = load_vector(tmp_path / "sycophancy.safetensors", "vector", tiny).metadata
    assert meta["model"] == "tiny-random" and meta["method"] == "CAA, matching - not matching"
    assert meta["data"] == v.provenance["data"]


def test_load_reads_a_job_vector_file(tiny, tmp_path):
    from workbench.runs import write_tensors

    t = torch.randn(tiny.n_layers, tiny.d_model)
    one = torch.randn(tiny.d_model)
    meta = vector_metadata(tiny, {
        "caa.sycophancy": {"hook": "resid_pre", "layers": list(range(tiny.n_layers)),
                           "position": "answer letter", "method": "CAA, matching - not matching"},
        "refusal.direction": {"hook": "resid_pre", "layers": [2], "position": "eoi[-1]",
                              "method": "refusal direction (selected candidate)"}},
        {"harmful": {"sha256": "abc"}})
    write_tensors(tmp_path / "directions.safetensors",
                  {"caa.sycophancy": t, "refusal.direction": one}, meta)
    v = SteeringVector.load(tmp_path, "caa.sycophancy", model=tiny)
    assert torch.equal(v.tensor, t) and v.positions == "eoi" and v.layers is None
    assert v.behaviour == "sycophancy" and v.provenance["data"] == {"harmful": "abc"}
    d = SteeringVector.load(tmp_path, "refusal.direction")
    assert d.layers == (2,) and d.positions == "all"
    assert torch.equal(d.tensor, one.expand(tiny.n_layers, -1))


def test_to_gguf_writes_the_default_layer(six_lines, tmp_path):
    gguf = pytest.importorskip("gguf")
    _, v, *_ = six_lines
    summary = v.to_gguf(tmp_path / "syco.gguf")
    assert summary["layers"] == list(v.layers)
    reader = gguf.GGUFReader(str(tmp_path / "syco.gguf"))
    (tensor,) = reader.tensors
    assert tensor.name == f"direction.{v.layers[0] - 1}"
    np.testing.assert_allclose(np.asarray(tensor.data), v[v.layers[0]].float().numpy())
    with pytest.raises(WorkbenchError, match="no default layers"):
        v.replace(layers=None).to_gguf(tmp_path / "x.gguf")


def test_plot_functions_take_vector_objects(six_lines):
    r, v, *_ = six_lines
    fig = wb.plot.cosine_by_layer([v, -v], v)
    assert [t.name for t in fig.data] == ["-sycophancy", "sycophancy"]
    assert not fig.layout.shapes  # no refusal layer to mark
    assert len(wb.plot.norm_by_layer({"v": v, "r": r}).data) == 2
    assert len(wb.plot.refusal_scores(r).data) == 3
    with pytest.raises(WorkbenchError, match="RefusalDirection"):
        wb.plot.refusal_scores(v)


def test_steering_explorer_helpers_take_vector_objects(tiny, six_lines):
    from workbench.notebook import steer_and_generate

    r, v, *_ = six_lines
    out = steer_and_generate(tiny, {"syco": v}, r, "syco", r.layer, 2.0, "Hi there.", 2)
    bare = steer_and_generate(tiny, {"syco": v.tensor}, r.direction, "syco", r.layer, 2.0,
                              "Hi there.", 2)
    assert out == bare


# ------------------------------------------------------------------ deprecated names


@pytest.mark.parametrize("module, old", [
    ("workbench.figures", "cosine_by_layer"),
    ("workbench.figures.audit", "delta_asr"),
    ("workbench.figures.audit", "efficacy_open_ended"),
    ("workbench.figures.safesteer", "neuron_selectivity"),
    ("workbench.figures.compare", "cosine_by_depth"),
])
def test_old_figure_names_warn_and_still_work(module, old):
    import importlib

    mod = importlib.import_module(module)
    with pytest.warns(DeprecationWarning, match=f"{old} is deprecated; use plot_{old}"):
        fn = getattr(mod, old)
    assert fn is getattr(mod, f"plot_{old}")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        getattr(mod, f"plot_{old}")  # the new name is silent
    with pytest.raises(AttributeError):
        getattr(mod, "no_such_figure")


def test_from_import_of_an_old_name_warns():
    with pytest.warns(DeprecationWarning):
        from workbench.figures import projections_3d  # noqa: F401


def test_geometry_cosine_by_layer_is_not_a_figure():
    from workbench.geometry import cosine_by_layer

    out = cosine_by_layer(torch.ones(2, 3), torch.ones(3))
    assert isinstance(out, torch.Tensor) and isinstance(wb.cosine_by_layer, type(cosine_by_layer))
    assert isinstance(wb.cosine_by_layer(_vec(np.ones((2, 3)), "v"), torch.ones(3)),
                      pd.DataFrame)


def test_instruction_items_and_a_single_string_generate(tiny):
    one = wb.generate(tiny, "Hi there.", max_new_tokens=3)
    assert isinstance(one, str)
    assert wb.generate(tiny, [Instruction("Hi there.")], max_new_tokens=3) == [one]


def test_audit_and_compare_run_the_jobs_from_the_api(monkeypatch, tmp_path):
    """``wb.audit`` builds the preset's config with the overrides and runs the audit job;
    ``wb.compare`` runs the compare job (both stubbed here: the jobs have their own tests)."""
    import workbench as wb
    import workbench.jobs.audit as audit_job
    import workbench.jobs.compare as compare_job

    seen = {}
    monkeypatch.setattr(audit_job, "run_audit", lambda cfg: seen.setdefault("cfg", cfg) and {})
    monkeypatch.setattr(compare_job, "run_compare",
                        lambda dirs, out, png: seen.setdefault("compare", (dirs, out, png)))
    wb.audit("smoke", out=str(tmp_path / "a"), max_new_tokens=3)
    assert seen["cfg"].preset == "smoke" and seen["cfg"].max_new_tokens == 3
    assert seen["cfg"].out == str(tmp_path / "a")
    wb.compare([tmp_path / "a", tmp_path / "b"], tmp_path / "c")
    assert seen["compare"] == ([tmp_path / "a", tmp_path / "b"], tmp_path / "c", False)

"""Direction finding checkpoints each finished piece; a killed run resumes and loses nothing."""

import json

import pytest
import torch

from workbench.directions import refusal as refusal_mod
from workbench.directions import compute as dir_mod
from workbench.rundir import DirectionCheckpoint
from workbench.jobs.directions import (
    DirectionsConfig,
    checkpoint_key,
    compute_directions,
    read_direction_inputs,
)


@pytest.fixture()
def setup(tiny):
    cfg = DirectionsConfig(model="tiny-random", contrast={"sycophancy": "embedded",
                                                          "refusal": "embedded"},
                           n_train=4, n_val=2, caa_limit=3, search_layers=[1, 2],
                           search_positions=[-1], progress=False,
                           prompt_filter=False)  # a random model refuses nothing
    return tiny, read_direction_inputs(cfg), cfg


def test_killed_direction_finding_resumes_from_last_finished_piece(setup, tmp_path,
                                                                   monkeypatch):
    model, inputs, cfg = setup
    reference = compute_directions(model, inputs, cfg)  # no checkpoints

    # interrupt during selection, after the first score was checkpointed
    real_score = refusal_mod.refusal_score
    calls = {"n": 0}

    def dies(*a, **k):
        calls["n"] += 1
        if calls["n"] == 4 + 2 + 2 + 1:  # 4 prompt sets, 2 baseline calls, 2 per candidate
            raise KeyboardInterrupt
        return real_score(*a, **k)

    monkeypatch.setattr(refusal_mod, "refusal_score", dies)
    with pytest.raises(KeyboardInterrupt):
        compute_directions(model, inputs, cfg, checkpoint_dir=tmp_path)
    monkeypatch.setattr(refusal_mod, "refusal_score", real_score)
    (ckpt,) = (tmp_path / "checkpoints").iterdir()
    assert (ckpt / "refusal.candidates.safetensors").exists()
    assert len(json.loads((ckpt / "scores.json").read_text())["scores"]) == 1

    # interrupt during the CAA vectors, after the first one
    real_caa = dir_mod.caa_vector
    made = []

    def caa_dies(*a, **k):
        if made:
            raise KeyboardInterrupt
        made.append(1)
        return real_caa(*a, **k)

    def no_candidates(*a, **k):
        raise AssertionError("finished candidates must not be recomputed")

    monkeypatch.setattr(dir_mod, "refusal_candidates", no_candidates)
    monkeypatch.setattr(dir_mod, "caa_vector", caa_dies)
    with pytest.raises(KeyboardInterrupt):
        compute_directions(model, inputs, cfg, checkpoint_dir=tmp_path)
    assert len(json.loads((ckpt / "scores.json").read_text())["scores"]) == 2
    assert len(list(ckpt.glob("caa.*.safetensors"))) == 1

    # the last run computes only the missing CAA vector, and equals the uninterrupted one
    monkeypatch.setattr(dir_mod, "caa_vector", lambda *a, **k: made.append(2) or real_caa(*a, **k))
    monkeypatch.setattr(refusal_mod, "ablate_directions", no_candidates)
    done = compute_directions(model, inputs, cfg, checkpoint_dir=tmp_path)
    assert made == [1, 2]
    assert torch.equal(done.candidates, reference.candidates)
    assert done.candidates.dtype == reference.candidates.dtype == torch.float64
    assert [s.as_dict() for s in done.selection.scores] == [
        s.as_dict() for s in reference.selection.scores]
    assert torch.equal(done.selection.direction, reference.selection.direction)
    assert done.caa.keys() == reference.caa.keys()
    for name in done.caa:
        assert torch.equal(done.caa[name], reference.caa[name])


def test_other_config_or_data_does_not_reuse_checkpoints(setup, tmp_path):
    model, inputs, cfg = setup
    where = lambda: DirectionCheckpoint(tmp_path, checkpoint_key(model, inputs, cfg)).dir
    first = where()
    cfg.batch_size, cfg.out = 3, "elsewhere"  # speed and place change nothing
    assert where() == first
    cfg.kl_threshold = 0.5
    assert where() != first
    cfg.kl_threshold = 0.1
    inputs.files["harmful"] = {**inputs.files["harmful"], "sha256": "0" * 64}
    assert where() != first


def test_checkpoints_of_another_dtype_are_not_reused(setup, tmp_path):
    """Pieces computed in bfloat16 are never resumed into a float32 run (or the reverse)."""
    from workbench import load_model

    model, inputs, cfg = setup
    bf16 = load_model("tiny-random", device="cpu", dtype="bfloat16")
    f32 = DirectionCheckpoint(tmp_path, checkpoint_key(model, inputs, cfg)).dir
    assert DirectionCheckpoint(tmp_path, checkpoint_key(bf16, inputs, cfg)).dir != f32
    cfg.dtype = "float32"  # the asked name is not the key: what ran is
    assert DirectionCheckpoint(tmp_path, checkpoint_key(model, inputs, cfg)).dir == f32


def test_direction_search_takes_the_configs_values_and_defaults(setup):
    from dataclasses import fields

    from workbench.directions.compute import DirectionSearch
    from workbench.directions.compute import compute_directions as find_directions

    model, inputs, cfg = setup
    search = DirectionSearch.of(cfg)
    assert search.search_layers == [1, 2] and search.search_positions == [-1]
    assert not search.prompt_filter and search.batch_size == cfg.batch_size
    default = DirectionsConfig()
    assert all(getattr(DirectionSearch(), f.name) == getattr(default, f.name)
               for f in fields(DirectionSearch))
    # the domain function with explicit settings is what the job's wrapper runs
    a, b = find_directions(model, inputs, search), compute_directions(model, inputs, cfg)
    assert torch.equal(a.candidates, b.candidates) and a.selection.layer == b.selection.layer
    assert all(torch.equal(a.caa[k], b.caa[k]) for k in b.caa)

"""Portable vector files: header metadata, model checks on load, llama.cpp GGUF export."""

import json
import re

import gguf
import numpy as np
import pytest
import torch

from workbench import WorkbenchError, load_model
from workbench.cli import main
from workbench.directions import CandidateScore, RefusalSelection
from workbench.directions.results import Directions
from workbench.jobs.directions import write_directions
from workbench.runs import write_tensors
from workbench.vectors import load_vector, model_fingerprint


@pytest.fixture()
def run_dir(tiny, tmp_path):
    g = torch.Generator().manual_seed(0)
    L, d = tiny.n_layers, tiny.d_model
    cand = torch.randn(2, L, d, generator=g, dtype=torch.float64)
    score = CandidateScore(1, -1, 2, 0.1, 0.2, 0.01, True, "")
    sel = RefusalSelection(cand[1, 2].clone(), 1, -1, 2, [score], {}, "filters")
    caa = {"sycophancy": torch.randn(L, d, generator=g, dtype=torch.float64)}
    dirs = Directions(cand, sel, caa, data={"harmful": {"sha256": "ab" * 32}})
    write_directions(tmp_path, dirs, tiny, "tiny-random")
    return tmp_path, dirs


def test_header_metadata_and_load(tiny, run_dir):
    out, dirs = run_dir
    vec = load_vector(out, "caa.sycophancy", model=tiny)
    assert torch.equal(vec.tensor, dirs.caa["sycophancy"].float())
    m = vec.metadata
    assert m["model"] == "tiny-random" and m["model_sha256"] == model_fingerprint(tiny)
    assert m["model_dtype"] == "float32"
    assert (m["n_layers"], m["d_model"]) == (4, 64) and m["hook"] == "resid_pre"
    assert m["layers"] == [0, 1, 2, 3] and m["position"] == "answer letter"
    assert m["data"] == {"harmful": "ab" * 32} and m["workbench_version"]
    ref = load_vector(out / "directions.safetensors", "refusal.direction").metadata
    assert ref["layers"] == [2] and ref["position"] == "eoi[-1]"


def test_load_refuses_other_model_width_and_unknown_names(run_dir, tmp_path):
    out, _ = run_dir
    llama = load_model("tiny-random-llama", device="cpu")
    with pytest.raises(WorkbenchError, match="computed on 'tiny-random', not on 'tiny-random-llama'"):
        load_vector(out, "caa.sycophancy", model=llama)
    with pytest.raises(WorkbenchError, match="no vector 'caa.nosuch'; it has: .*caa.sycophancy"):
        load_vector(out, "caa.nosuch")
    narrow = tmp_path / "narrow.safetensors"
    header = load_vector(out, "caa.sycophancy").metadata
    write_tensors(narrow, {"v": torch.zeros(4, 32)}, {"model_sha256": header["model_sha256"]})
    with pytest.raises(WorkbenchError, match="width 32 but 'tiny-random-llama' has d_model 64"):
        load_vector(narrow, "v", model=llama)


def _read_gguf(path):
    reader = gguf.GGUFReader(str(path))
    fields = {}
    for name, f in reader.fields.items():
        if name.startswith("GGUF."):
            continue
        value = f.parts[f.data[0]]
        fields[name] = (bytes(value).decode() if f.types[0] == gguf.GGUFValueType.STRING
                        else int(value[0]))
    tensors = {t.name: np.asarray(t.data) for t in reader.tensors}
    return fields, tensors, {t.name: t.tensor_type for t in reader.tensors}


def test_export_gguf_control_vector_reads_back(run_dir, tmp_path, capsys):
    out, dirs = run_dir
    path = tmp_path / "syco.gguf"
    assert main(["export", str(out), "--format", "gguf-control", "--vector", "caa.sycophancy",
                 "--layers", "2,3", "--out", str(path)]) == 0
    assert "llama.cpp direction.{1,2}" in capsys.readouterr().out
    fields, tensors, types = _read_gguf(path)
    assert fields["general.architecture"] == "controlvector"
    assert fields["controlvector.model_hint"] == "qwen2"
    assert fields["controlvector.layer_count"] == 2
    assert json.loads(fields["workbench.layers"]) == [2, 3]
    # our resid_pre[l] is the output of llama.cpp block l - 1
    assert sorted(tensors) == ["direction.1", "direction.2"]
    assert set(types.values()) == {gguf.GGMLQuantizationType.F32}
    for l in (2, 3):
        np.testing.assert_array_equal(tensors[f"direction.{l - 1}"],
                                      dirs.caa["sycophancy"][l].float().numpy())
    # a single-layer vector exports at its own layer by default
    assert main(["export", str(out), "--vector", "refusal.direction", "--out", str(path)]) == 0
    assert sorted(_read_gguf(path)[1]) == ["direction.1"]


@pytest.mark.parametrize("extra, message", [
    (["--vector", "caa.sycophancy"], "choose which to export with --layers"),
    (["--vector", "caa.sycophancy", "--layers", "1"], "layer 1 cannot be a llama.cpp control"),
    (["--vector", "refusal.candidates", "--layers", "2"], "has shape \\[2, 4, 64\\]"),
])
def test_export_errors(run_dir, tmp_path, capsys, extra, message):
    out, _ = run_dir
    assert main(["export", str(out), *extra, "--out", str(tmp_path / "x.gguf")]) == 2

    assert re.search(message, capsys.readouterr().err)
    assert not (tmp_path / "x.gguf").exists()

"""Safe loading: pickle checkpoints are refused, remote code runs only with the flag."""

import json

import pytest
import torch

from workbench import WorkbenchError, load_model
from workbench.cli import main
from workbench.model.tiny import TINY_MODELS, build_tiny_model


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory):
    path = tmp_path_factory.mktemp("models") / "tiny"
    model, tokenizer = build_tiny_model(TINY_MODELS["tiny-random"])
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path, model


def test_safetensors_directory_loads(tiny_dir):
    path, _ = tiny_dir
    model = load_model(str(path), device="cpu")
    assert model.identity["trust_remote_code"] is False and model.n_layers == 4


def test_pickle_checkpoint_is_refused_unopened(tiny_dir, tmp_path, monkeypatch, capsys):
    src, hf = tiny_dir
    path = tmp_path / "pickled"
    path.mkdir()
    for f in src.iterdir():
        if f.suffix != ".safetensors":
            (path / f.name).write_bytes(f.read_bytes())
    torch.save(hf.state_dict(), path / "pytorch_model.bin")

    def no_unpickling(*a, **k):
        raise AssertionError("a pickle checkpoint must not be opened")

    monkeypatch.setattr(torch, "load", no_unpickling)
    with pytest.raises(WorkbenchError, match="pickle weights \\(pytorch_model.bin\\).*safetensors"):
        load_model(str(path), device="cpu")
    out = tmp_path / "run"
    assert main(["directions", "--model", str(path), "--out", str(out), "--quiet"]) == 2
    assert capsys.readouterr().err.startswith("error: ") and not out.exists()


def test_remote_code_needs_the_flag(tiny_dir, tmp_path):
    src, _ = tiny_dir
    path = tmp_path / "remote"
    path.mkdir()
    for f in src.iterdir():
        (path / f.name).write_bytes(f.read_bytes())
    marker = tmp_path / "remote-code-ran"
    (path / "modeling_evil.py").write_text(f"open({str(marker)!r}, 'w').write('ran')\n")
    config = json.loads((path / "config.json").read_text())
    config["auto_map"] = {"AutoModelForCausalLM": "modeling_evil.EvilForCausalLM"}
    (path / "config.json").write_text(json.dumps(config))
    with pytest.raises(WorkbenchError, match="needs code shipped with the model.*--trust-remote"):
        load_model(str(path), device="cpu")
    assert not marker.exists()

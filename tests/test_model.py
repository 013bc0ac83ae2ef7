import copy
import zipfile
from pathlib import Path

import pytest
import torch

from workbench import WorkbenchError, fetch, load_model
from workbench.model import embedded, resolve_device
from workbench.model.wrapper import WorkbenchModel


def test_tiny_model_chat_format_and_eoi(any_tiny):
    m = any_tiny
    ids = m.tokenize_instructions(["Name a colour."])[0]
    templ = m.tokenizer.apply_chat_template([{"role": "user", "content": "Name a colour."}],
                                            add_generation_prompt=True, tokenize=True)
    templ = templ["input_ids"] if hasattr(templ, "keys") else templ
    assert ids == list(templ)
    assert ids[-m.n_eoi:] == m.eoi_token_ids
    text = m.tokenizer.decode(m.eoi_token_ids)
    assert "assistant" in text and "Name a colour." not in text
    assert m.refusal_token_ids and all(isinstance(t, int) for t in m.refusal_token_ids)


def test_tiny_models_are_seeded():
    a, b = load_model("tiny-random"), load_model("tiny-random")
    for pa, pb in zip(a.hf_model.parameters(), b.hf_model.parameters()):
        assert torch.equal(pa, pb)
    before = torch.random.get_rng_state()
    load_model("tiny-random")
    assert torch.equal(torch.random.get_rng_state(), before)


def test_unknown_spec_and_device():
    with pytest.raises(WorkbenchError, match="unknown model spec 'gpt-17'"):
        load_model("gpt-17")
    if not torch.cuda.is_available():
        with pytest.raises(WorkbenchError, match="CUDA is not available"):
            resolve_device("cuda")


def test_tokenizer_without_chat_template_is_refused(tiny):
    plain = copy.copy(tiny.tokenizer)
    plain.chat_template = None
    with pytest.raises(WorkbenchError, match="no chat template"):
        WorkbenchModel(backend=tiny.backend, tokenizer=plain, spec="plain", family="qwen2")


def _fake_wheel(path: Path, member: str, payload: bytes) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr(member, payload)
    return path


def test_gguf_hash_mismatch_leaves_no_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("WORKBENCH_CACHE", str(tmp_path / "cache"))
    parts = tuple(embedded.WheelPart(f"fake-part{i}", "1.0", f"fake/part{i}.bin", "0" * 64)
                  for i in (1, 2))
    spec = embedded.EmbeddedModel("fake-model", "org/fake", parts, gguf_sha256="f" * 64,
                                  gguf_size=8, description="fake")
    wheels = [_fake_wheel(tmp_path / f"w{i}.whl", p.member, b"abcd")
              for i, p in enumerate(parts)]
    monkeypatch.setattr(embedded, "fetch_part", lambda part, dest: wheels[parts.index(part)])
    with pytest.raises(WorkbenchError, match="GGUF hash mismatch for fake-model"):
        embedded.ensure_cached(spec)
    models = tmp_path / "cache" / "models"
    assert not models.exists() or not any(models.iterdir())
    assert not embedded.is_cached(spec)


def test_damaged_wheel_is_fetched_again_then_verified(tmp_path, monkeypatch):
    """One behaviour for models and data sets: a bad cached wheel is re-downloaded, then checked."""
    part = embedded.WheelPart("fake-part", "1.0", "fake/x.bin", "0" * 64)
    _fake_wheel(tmp_path / part.wheel_name, part.member, b"damaged")
    served = []

    def pip_download(wheel, dest):
        served.append(wheel.requirement)
        _fake_wheel(dest / part.wheel_name, part.member, b"xyz")

    monkeypatch.setattr(fetch, "pip_download", pip_download)
    with pytest.raises(WorkbenchError, match="SHA-256 mismatch for fake_part-1.0.*nothing was"):
        embedded.fetch_part(part, tmp_path)
    assert served == ["fake-part==1.0"] and not (tmp_path / part.wheel_name).exists()
    good = _fake_wheel(tmp_path / "good.whl", part.member, b"xyz")
    ok = embedded.WheelPart("fake-part", "1.0", "fake/x.bin", fetch.sha256_file(good))
    assert embedded.fetch_part(ok, tmp_path) == tmp_path / part.wheel_name
    assert served == ["fake-part==1.0"] * 2

"""dtype choice (auto, by hardware) and exactness of the bridge in every dtype."""

import copy
import json
import subprocess
import sys

import pytest
import torch

from conftest import hf_reference
from workbench import WorkbenchError, load_model
from workbench.activations import collect_activations
from workbench.model.precision import cpu_bf16_flags, precision_phrase, resolve_precision

CPU = torch.device("cpu")
XEON = "processor\t: 0\nflags\t\t: fpu sse avx2 avx512f avx512_bf16 amx_bf16 amx_tile\n"
OLD_XEON = "processor\t: 0\nflags\t\t: fpu sse avx2 avx512f avx512_vnni\n"
ARM = "processor\t: 0\nFeatures\t: fp asimd sve bf16 i8mm\n"


def test_auto_reads_the_cpu_flags_never_guesses():
    assert cpu_bf16_flags(XEON) == ["avx512_bf16", "amx_bf16"]
    assert cpu_bf16_flags(OLD_XEON) == []
    assert cpu_bf16_flags(ARM) == ["bf16"]
    native = resolve_precision("auto", CPU, cpuinfo=XEON)
    assert native.dtype == torch.bfloat16 and "avx512_bf16" in native.reason
    plain = resolve_precision("auto", CPU, cpuinfo=OLD_XEON)
    assert plain.dtype == torch.float32 and plain.reason == "CPU without native bfloat16"
    assert resolve_precision(None, CPU, cpuinfo=OLD_XEON).asked == "auto"


def test_named_dtypes_are_used_as_asked():
    for name, dtype in [("float32", torch.float32), ("bfloat16", torch.bfloat16),
                        ("float16", torch.float16)]:
        p = resolve_precision(name, CPU, cpuinfo=XEON)
        assert (p.dtype, p.name, p.reason) == (dtype, name, "asked for")
    assert resolve_precision(torch.bfloat16, CPU).name == "bfloat16"
    with pytest.raises(WorkbenchError, match="dtype 'float8' is unknown; use one of auto"):
        resolve_precision("float8", CPU)
    with pytest.raises(WorkbenchError, match="not supported"):
        resolve_precision(torch.float64, CPU)


def test_auto_on_this_machine_matches_its_cpuinfo():
    p = resolve_precision("auto", CPU)
    assert (p.dtype == torch.bfloat16) == bool(cpu_bf16_flags())


def test_phrase_for_old_records_says_float32():
    assert "float32" in precision_phrase({})
    rec = {"dtype": {"asked": "auto", "used": "bfloat16", "reason": "CPU with native bfloat16"}}
    assert precision_phrase(rec) == ("model weights and activations in bfloat16 (auto: CPU "
                                     "with native bfloat16)")


def test_cli_dtype_choices_match_the_model_layer():
    from workbench import cli
    from workbench.model.specs import DTYPE_CHOICES

    assert cli.DTYPE_CHOICES == DTYPE_CHOICES


@pytest.mark.parametrize("spec", ["tiny-random", "tiny-random-llama"])
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_resid_pre_matches_hf_hidden_states_in_the_same_dtype(spec, dtype, prompts_text):
    """The bridge's resid_pre equals Hugging Face hidden_states computed in the same dtype:
    bitwise against the wrapped model's own forward (the same computation), and to the dtype's
    rounding against an independent copy."""
    m = load_model(spec, device="cpu", dtype=dtype)
    assert m.dtype == dtype and m.precision.name == str(dtype).removeprefix("torch.")
    prompts = m.tokenize_instructions(prompts_text)
    acts = collect_activations(m, prompts, positions="eoi", batch_size=2,
                               progress=False)["resid_pre"]
    ids, mask = m.pad(prompts[:2])
    pos = (mask.cumsum(-1) - 1).clamp(min=0)
    with torch.no_grad():
        hs = m.hf_model(input_ids=ids, attention_mask=mask, position_ids=pos,
                        output_hidden_states=True).hidden_states
    for i in range(2):
        same = torch.stack(hs[:-1])[:, i, -m.n_eoi:].permute(1, 0, 2).float()
        assert torch.equal(acts[i], same)
    ref = copy.deepcopy(hf_reference(spec)).to(dtype)
    eps = torch.finfo(dtype).eps
    for i, toks in enumerate(prompts):
        with torch.no_grad():
            out = ref(torch.tensor([toks]), output_hidden_states=True).hidden_states
        want = torch.stack(out[:-1])[:, 0, -m.n_eoi:].permute(1, 0, 2).float()
        scale = want.abs().amax()
        assert (acts[i] - want).abs().amax() <= 8 * eps * scale


def test_float32_stays_the_api_default(tiny):
    assert tiny.dtype == torch.float32 and tiny.precision.asked == "float32"


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "workbench.cli", *args], capture_output=True,
                          text=True, timeout=600)


def test_smoke_audit_runs_in_both_dtypes_and_resume_refuses_the_other(tmp_path):
    runs = {}
    for dtype in ("bfloat16", "float32"):
        out = tmp_path / dtype
        r = _cli("audit", "--preset", "smoke", "--dtype", dtype, "--out", str(out), "--quiet")
        assert r.returncode == 0, r.stderr
        runs[dtype] = json.loads((out / "run.json").read_text())
        assert runs[dtype]["model"]["dtype"] == {"asked": dtype, "used": dtype,
                                                 "reason": "asked for"}
        assert runs[dtype]["result_config"]["dtype"] == dtype
        assert f"activations in {dtype}" in (out / "report.md").read_text()
    r = _cli("audit", "--preset", "smoke", "--dtype", "float32", "--out",
             str(tmp_path / "bfloat16"), "--quiet")
    assert r.returncode != 0
    lines = [l for l in r.stderr.splitlines() if l.strip()]
    assert lines == [f"error: {tmp_path / 'bfloat16'} was written by a different config "
                     "(dtype: 'bfloat16' there, 'float32' now); use a new --out, or the same "
                     "config to resume"]
    # the resumed run in its own dtype reuses everything: nothing is lost
    before = (tmp_path / "bfloat16" / "generations.jsonl").read_text()
    r = _cli("audit", "--preset", "smoke", "--dtype", "bfloat16", "--out",
             str(tmp_path / "bfloat16"), "--quiet")
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "bfloat16" / "generations.jsonl").read_text() == before


def test_auto_resolves_before_resume_checks(tmp_path):
    """A run started with auto records the dtype that ran, not the word auto."""
    from workbench.jobs.config import build_config
    from workbench.jobs.config import result_fields

    cfg = build_config("smoke", dtype="auto", out=str(tmp_path))
    assert result_fields(cfg)["dtype"] == resolve_precision("auto", CPU).name


def test_only_judges_checked_in_bfloat16_follow_the_run():
    from workbench.jobs.common import judge_dtype
    from workbench.jobs.config import build_config

    cfg = build_config("smoke", dtype="bfloat16")
    assert judge_dtype("probe", cfg) == "bfloat16"
    for spec in ("llm:tiny-random", "trained", "substring", "ensemble:probe,substring"):
        assert judge_dtype(spec, cfg) == "float32"
    assert judge_dtype("probe", build_config("smoke")) == "float32"  # smoke pins float32


def test_llm_judge_model_takes_the_dtype_asked():
    from workbench.evaluation.judges import make_judge
    from workbench.jobs.common import judge_model_dtype

    assert judge_model_dtype(make_judge("llm:tiny-random", device="cpu")) == "float32"
    judge = make_judge("llm:tiny-random", device="cpu", dtype="bfloat16")
    assert judge_model_dtype(judge) == "bfloat16"
    assert judge_model_dtype(make_judge("substring")) is None


def test_peak_memory_is_recorded_in_gb():
    """A fresh process that touches 1.5 GB reports a peak of at least that, in GB."""
    code = ("import numpy as np; from workbench.jobs.common import peak_memory_gb; "
            "a = peak_memory_gb(); b = np.ones(1_500_000_000 // 8); print(a, peak_memory_gb())")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.split()
    before, after = map(float, out)
    assert 0.01 < before < 1.5 and 1.5 <= after < before + 2.0


def test_dtype_from_toml_and_a_bad_one_named(tmp_path):
    from workbench.jobs.config import build_config

    good, bad = tmp_path / "good.toml", tmp_path / "bad.toml"
    good.write_text('preset = "smoke"\ndtype = "bfloat16"\n')
    bad.write_text('dtype = "float8"\n')
    assert build_config(toml=str(good)).dtype == "bfloat16"
    assert build_config(toml=str(good), dtype="float32").dtype == "float32"  # flags win
    with pytest.raises(WorkbenchError, match="dtype 'float8' is unknown; use one of auto, "
                                             "float32, bfloat16, float16"):
        build_config(toml=str(bad))


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_cast_copy_equals_casting_at_load(tmp_path, dtype):
    """The per-dtype cache holds exactly what from_pretrained(float32 copy, dtype=...) gives,
    in bounded shards, and loads without a float32 model in memory."""
    from transformers import AutoModelForCausalLM

    from workbench.model.convert import INDEX, cast_copy
    from workbench.model.tiny import TINY_MODELS, build_tiny_model

    model, tokenizer = build_tiny_model(TINY_MODELS["tiny-random"])
    model.save_pretrained(tmp_path / "f32")
    tokenizer.save_pretrained(tmp_path / "f32")
    summary = cast_copy(tmp_path / "f32", tmp_path / "cast", dtype, shard_bytes=1 << 16)
    assert summary["shards"] > 1 and (tmp_path / "cast" / INDEX).is_file()
    want = AutoModelForCausalLM.from_pretrained(tmp_path / "f32", dtype=dtype).state_dict()
    got = AutoModelForCausalLM.from_pretrained(tmp_path / "cast").state_dict()
    assert got.keys() == want.keys()
    for name, value in got.items():
        assert value.dtype == dtype and torch.equal(value, want[name]), name
    assert (tmp_path / "cast" / "tokenizer_config.json").is_file()

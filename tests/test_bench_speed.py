"""The speed benchmarks run end to end on tiny configurations (CPU), writing their records."""

import json
import platform
import runpy
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"


def _run(monkeypatch, script, args):
    monkeypatch.setattr(sys, "argv", [script, *args])
    runpy.run_path(str(BENCH / script), run_name="__main__")


def test_gpu_generation_bench_runs_on_cpu_tiny(monkeypatch, tmp_path):
    from workbench.model import generation
    from workbench.steering import conditions

    # count the tokens the timed calls really generate (each path is run twice: warm-up, timed)
    made = {"generate_ids": [], "generate_conditions_ids": []}

    def counting(module, name):
        real = getattr(module, name)

        def wrapper(*args, **kwargs):
            ids = real(*args, **kwargs)
            flat = ids if name == "generate_ids" else [row for cond in ids for row in cond]
            made[name].append(sum(len(row) for row in flat))
            return ids
        monkeypatch.setattr(module, name, wrapper)

    counting(generation, "generate_ids")
    counting(conditions, "generate_conditions_ids")
    out = tmp_path / "gpu.json"
    _run(monkeypatch, "bench_gpu_generation.py",
         ["--shape", "tiny", "--device", "cpu", "--dtype", "float32", "--batch-sizes", "4",
          "--n-prompts", "4", "--max-new-tokens", "3", "--one-at-a-time", "2", "--out", str(out)])
    rec = json.loads(out.read_text())
    # what was run, and on what, is recorded
    assert (rec["shape"], rec["device"], rec["dtype"]) == ("tiny", "cpu", "float32")
    assert (rec["n_prompts"], rec["max_new_tokens"], rec["n_layers"]) == (4, 3, 4)
    assert rec["gpu"] is None and rec["platform"] == platform.platform()
    assert rec["steering"] == "add_vector resid_pre layer 2, eoi"  # n_layers // 2
    res = rec["results"]
    assert set(res) == {"batch_4", "one_at_a_time_steered"}
    assert set(res["batch_4"]) == {"plain_hf_generate", "steered", "multi_condition_shared_prefix"}
    # EOS is off, so every row yields max_new_tokens (generate_conditions_ids stops at EOS):
    # 4 prompts, 4 conditions, 2 prompts one at a time
    tokens = {"plain_hf_generate": 4 * 3, "steered": 4 * 3,
              "multi_condition_shared_prefix": 4 * 4 * 3, "one_at_a_time_steered": 2 * 3}
    assert made["generate_ids"] == [12, 12, 12, 12, 6, 6]  # plain, steered, one at a time
    assert made["generate_conditions_ids"] == [48, 48]
    timed = {**res["batch_4"], "one_at_a_time_steered": res["one_at_a_time_steered"]}
    for name, r in timed.items():
        # tokens_per_s is tokens / seconds, both as recorded (seconds rounded to 1 ms)
        lo, hi = max(r["seconds"] - 5e-4, 1e-9), r["seconds"] + 5e-4
        assert r["seconds"] > 0
        assert tokens[name] / hi - 0.05 <= r["tokens_per_s"] <= tokens[name] / lo + 0.05, name


@pytest.mark.slow  # tiny model, but the whole directions stage too: about 30 s
def test_audit_bench_smoke_outputs_identical(monkeypatch, tmp_path):
    out = tmp_path / "audit.json"
    _run(monkeypatch, "bench_audit.py", ["--preset", "smoke", "--attack-limit", "3",
                                         "--benign-limit", "2", "--out", str(out)])
    rec = json.loads(out.read_text())
    assert rec["same_refusal_pick"]
    assert rec["identical_token_ids"] == rec["generations"] > 0
    assert rec["differing"] == []

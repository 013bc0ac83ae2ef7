"""The speed benchmarks run end to end on tiny configurations (CPU), writing their records."""

import json
import runpy
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"


def _run(monkeypatch, script, args):
    monkeypatch.setattr(sys, "argv", [script, *args])
    runpy.run_path(str(BENCH / script), run_name="__main__")


def test_gpu_generation_bench_runs_on_cpu_tiny(monkeypatch, tmp_path):
    out = tmp_path / "gpu.json"
    _run(monkeypatch, "bench_gpu_generation.py",
         ["--shape", "tiny", "--device", "cpu", "--dtype", "float32", "--batch-sizes", "4",
          "--n-prompts", "4", "--max-new-tokens", "3", "--one-at-a-time", "2", "--out", str(out)])
    rec = json.loads(out.read_text())
    assert set(rec["results"]["batch_4"]) == {"plain_hf_generate", "steered",
                                               "multi_condition_shared_prefix"}
    assert rec["results"]["one_at_a_time_steered"]["tokens_per_s"] > 0


@pytest.mark.slow  # tiny model, but the whole directions stage too: about 30 s
def test_audit_bench_smoke_outputs_identical(monkeypatch, tmp_path):
    out = tmp_path / "audit.json"
    _run(monkeypatch, "bench_audit.py", ["--preset", "smoke", "--attack-limit", "3",
                                         "--benign-limit", "2", "--out", str(out)])
    rec = json.loads(out.read_text())
    assert rec["same_refusal_pick"]
    assert rec["identical_token_ids"] == rec["generations"] > 0
    assert rec["differing"] == []

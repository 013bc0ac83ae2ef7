"""Soak test: SIGKILL a smoke audit at seeded random moments, resume each time, lose nothing.

The kills land in every stage (candidate means, selection scores, CAA vectors, generation, the
final files), including right after ``generations.jsonl`` grows, i.e. during a write. The
finished run must hold exactly the records and ``asr.csv`` of an uninterrupted run.
"""

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from workbench.jobs.audit import run_audit
from workbench.jobs.config import build_config

ARGS = ["audit", "--preset", "smoke", "--quiet"]


def _records(out: Path) -> dict[str, dict]:
    lines = (out / "generations.jsonl").read_text().splitlines()
    return {r["key"]: r for r in map(json.loads, lines)}


def _size(path: Path) -> int:
    return path.stat().st_size if path.exists() else 0


def _triggers(out: Path, rng: random.Random) -> list:
    """Conditions to kill at, in the order a run reaches them; each with a seeded delay."""
    gens = out / "generations.jsonl"
    ckpts = lambda pattern: list(out.glob(f"checkpoints/*/{pattern}"))
    return [
        ("candidates saved", lambda: ckpts("refusal.candidates.safetensors"), rng.uniform(0, 0.3)),
        ("a score saved", lambda: ckpts("scores.json"), rng.uniform(0, 0.3)),
        ("a CAA vector saved", lambda: ckpts("caa.*.safetensors"), rng.uniform(0, 0.2)),
        ("first generations", lambda: _size(gens) > 0, 0.0),
        ("generations grew", None, 0.0),  # filled in per attempt: bigger than at its start
        ("random moment", lambda: True, rng.uniform(0.5, 4.0)),
    ]


def _run_until(out: Path, cond, delay: float) -> bool:
    """Start the CLI, SIGKILL it once ``cond()`` holds (+ delay); True if it was killed."""
    code = f"import sys; from workbench.cli import main; sys.exit(main({ARGS + ['--out', str(out)]!r}))"
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while proc.poll() is None and time.time() < deadline:
        if cond():
            time.sleep(delay)
            if proc.poll() is None:
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait()
                return True
        time.sleep(0.005)
    assert proc.wait(timeout=300) == 0
    return False


@pytest.mark.slow
def test_sigkill_at_random_moments_loses_nothing(tmp_path):
    ref = tmp_path / "reference"
    run_audit(build_config("smoke", out=str(ref), progress=False))

    out = tmp_path / "killed"
    rng = random.Random(11)
    kills = []
    for name, cond, delay in _triggers(out, rng):
        if cond is None:
            start = _size(out / "generations.jsonl")
            cond = lambda start=start: _size(out / "generations.jsonl") > start
        if _run_until(out, cond, delay):
            kills.append(name)
    assert len(kills) >= 5, f"only {len(kills)} kills hit a running job: {kills}"
    assert not _run_until(out, lambda: False, 0)  # resume to the end

    assert json.loads((out / "run.json").read_text())["status"] == "complete"
    assert _records(out) == _records(ref)
    assert (out / "asr.csv").read_bytes() == (ref / "asr.csv").read_bytes()
    mine, theirs = (load_file(d / "directions.safetensors") for d in (out, ref))
    assert mine.keys() == theirs.keys()
    assert all(torch.equal(mine[k], theirs[k]) for k in mine)

"""One workbench command in its own process: its wall time, the load it started under, and
the run.json it wrote (shared by the end-to-end benchmarks)."""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path


def timed_job(cmd: list[str], out: Path) -> dict:
    """Run ``cmd`` (which writes the run directory ``out``); the record the benchmarks keep."""
    load = os.getloadavg()[0]
    t = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - t
    record = json.loads((Path(out) / "run.json").read_text())
    return {"command": " ".join(cmd), "wall_s": round(wall, 1), "load_avg_1m_at_start": load,
            "timings_s": record["timings_s"], "run": record}

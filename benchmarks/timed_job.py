"""One workbench command in its own process: its wall time, the CPU time it used, the load it
started under, and the run.json it wrote (shared by the end-to-end benchmarks).

Run as a script, it keeps one command's timing as a record the README reads
(benchmarks/readme_numbers.py)::

    python benchmarks/timed_job.py audit_smoke -- workbench audit --preset smoke --out runs/smoke
    python benchmarks/timed_job.py help -- workbench --help

writes ``benchmarks/results/job_<name>.json``: command, wall and CPU seconds, the load at start,
the machine (CPU, cores, bf16 flags, GPU), the date, the commit, and, for a job that writes a
run directory (``--out``), its dtype, stage timings and peak memory.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _children_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def timed_job(cmd: list[str], out: Path | None) -> dict:
    """Run ``cmd`` (which writes the run directory ``out``, if given); the record the benchmarks
    keep."""
    load = os.getloadavg()[0]
    cpu = _children_cpu_s()
    t = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - t
    timed = {"command": " ".join(cmd), "wall_s": round(wall, 1),
             "cpu_s": round(_children_cpu_s() - cpu, 1), "load_avg_1m_at_start": load}
    if out is None:
        return timed
    record = json.loads((Path(out) / "run.json").read_text())
    return {**timed, "timings_s": record["timings_s"], "run": record}


def _commit() -> str | None:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, text=True,
                              capture_output=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("name", help="record name: writes benchmarks/results/job_NAME.json")
    p.add_argument("command", nargs=argparse.REMAINDER, help="-- then the command to time")
    args = p.parse_args(argv)
    cmd = [c for c in args.command if c != "--"] if args.command[:1] == ["--"] else args.command
    if not cmd:
        p.error("give the command after --")
    out = Path(cmd[cmd.index("--out") + 1]) if "--out" in cmd else None
    if out is not None and out.exists():
        shutil.rmtree(out)  # time a fresh run, not a resumed one
    from workbench.model.precision import machine_record

    timed = timed_job(cmd, out)
    run = timed.pop("run", None)
    record = {"benchmark": "job", "name": args.name, **timed,
              "machine": machine_record(), "date": datetime.datetime.now(datetime.timezone.utc)
              .isoformat(timespec="seconds"), "commit": _commit()}
    if run is not None:
        record.update(dtype=run["model"]["dtype"]["used"], model=run["model"]["spec"],
                      peak_memory_gb=run.get("peak_memory_gb"),
                      n_generations=run.get("n_generations"))
    path = REPO / "benchmarks" / "results" / f"job_{args.name}.json"
    path.write_text(json.dumps(record, indent=2) + "\n")
    print(f"wrote {path.relative_to(REPO)}: {timed['wall_s']} s wall, {timed['cpu_s']} s CPU",
          file=sys.stderr)


if __name__ == "__main__":
    main()

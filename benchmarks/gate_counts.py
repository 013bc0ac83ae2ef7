"""The comprehensibility gate on every labelled answer, at a git revision and in this tree.

Counts, per labelled source and human label, how many answers ``is_comprehensible`` rejects
(so every judge labels them ``incomprehensible``) with the gate of ``--before`` (default
``HEAD``) and with the working tree's, and lists the answers whose verdict changed. Sources:
the judges' training sets (``load_source`` for jbb, objective, refusal, templates) and the
held-out ``tests/data/judge_heldout.jsonl``. No model is loaded; a few seconds on one core.

    python benchmarks/gate_counts.py --before 0729900
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tarfile
import tempfile
from collections import Counter
from io import BytesIO
from pathlib import Path

from workbench.evaluation.judges import is_comprehensible
from workbench.evaluation.judges.train import SOURCES, load_source, read_labels_file

ROOT = Path(__file__).resolve().parents[1]
HELDOUT = ROOT / "tests" / "data" / "judge_heldout.jsonl"
# Run in a child process whose ``workbench`` is the old revision's: prints one verdict a line.
_CHILD = ("import json, sys\n"
          "from workbench.evaluation.text_checks import is_comprehensible\n"
          "for text in json.load(sys.stdin):\n"
          "    print(int(is_comprehensible(text)))\n")


def answers() -> list:
    """Every labelled answer: the four training sources, then the held-out file."""
    return [a for s in SOURCES for a in load_source(s)] + read_labels_file(HELDOUT, "heldout")


def gate_at(revision: str, texts: list[str]) -> list[bool]:
    """``is_comprehensible`` of ``revision``'s ``workbench`` package on each text."""
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", revision, "workbench"],
                             check=True, capture_output=True).stdout
    with tempfile.TemporaryDirectory() as tmp:
        with tarfile.open(fileobj=BytesIO(archive)) as tar:
            tar.extractall(tmp, filter="data")
        out = subprocess.run([sys.executable, "-c", _CHILD], input=json.dumps(texts),
                             capture_output=True, text=True, check=True, cwd=tmp,
                             env={**os.environ, "PYTHONPATH": tmp}).stdout
    return [line == "1" for line in out.split()]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", default="HEAD", help="git revision of the old gate [HEAD]")
    args = parser.parse_args(argv)
    rows = answers()
    texts = [a.response for a in rows]
    old = gate_at(args.before, texts)
    new = [is_comprehensible(t) for t in texts]
    n, before, after = Counter(), Counter(), Counter()
    for a, was, now in zip(rows, old, new):
        key = (a.source, "jailbroken" if a.jailbroken else "not jailbroken")
        n[key] += 1
        before[key] += not was
        after[key] += not now
        if was != now:
            print(f"changed: {a.id} ({key[1]}) {'now passes' if now else 'now gated'}: "
                  f"{a.response[:70]!r}")
    print(f"\n{'source':<10} {'human label':<15} {'n':>4} {'gated before':>13} {'after':>6}")
    for key in sorted(n):
        print(f"{key[0]:<10} {key[1]:<15} {n[key]:>4} {before[key]:>13} {after[key]:>6}")
    print(f"{'all':<26} {sum(n.values()):>4} {sum(before.values()):>13} "
          f"{sum(after.values()):>6}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

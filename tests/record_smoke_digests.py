"""Re-record tests/data/smoke_digests.json after a deliberate change of the smoke runs' results.

    python tests/record_smoke_digests.py [--note "why the results changed"]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import tempfile
from pathlib import Path

from workbench.cli import main

DIGESTS = Path(__file__).parent / "data" / "smoke_digests.json"


def digests(run_dir: Path, files: list[str]) -> dict[str, str]:
    """sha256 of each file of a run directory."""
    return {f: hashlib.sha256((run_dir / f).read_bytes()).hexdigest() for f in files}


def record(note: str) -> None:
    old = json.loads(DIGESTS.read_text())
    new = {"_about": f"{old['_about']} Re-recorded: {note}"}
    with tempfile.TemporaryDirectory() as tmp:
        for job in ("audit", "safesteer"):
            out = Path(tmp) / job
            assert main([job, "--preset", "smoke", "--out", str(out), "--quiet"]) == 0
            new[job] = digests(out, list(old[job]))
    DIGESTS.write_text(json.dumps(new, indent=1) + "\n")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--note", default="results changed deliberately")
    record(parser.parse_args().note)

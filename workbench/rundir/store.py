"""Append-only JSONL store for generations, so a long run resumes where it stopped.

Each record has a unique ``key``. Records are appended and flushed batch by batch. When the
store is opened again, every valid line is kept; a line that is not a complete JSON record
with a ``key`` (cut off by a crash, a full disk, or damaged by hand) is moved, with its line
number, to ``<name>.quarantine.jsonl`` beside the file, and a warning names that file and the
count. Only the quarantined records are missing, so only they are generated again.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from collections.abc import Iterable

from workbench.errors import WorkbenchError
from workbench.runs import write_text


def _parse(line: bytes) -> dict | None:
    """The record on one line, or None when the line is not a complete keyed record."""
    if not line.endswith(b"\n"):
        return None
    try:
        rec = json.loads(line)
    except (json.JSONDecodeError, UnicodeDecodeError):
        return None
    return rec if isinstance(rec, dict) and isinstance(rec.get("key"), str) else None


def _append_durably(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "ab") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


class GenerationStore:
    """The ``generations.jsonl`` of one run directory."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.quarantine_path = self.path.with_suffix(".quarantine.jsonl")
        self.records: dict[str, dict] = {}
        self.n_quarantined = 0
        if self.path.exists():
            self._load()

    def _load(self) -> None:
        try:
            raw = self.path.read_bytes()
        except OSError as exc:
            raise WorkbenchError(f"{self.path} cannot be read ({exc.strerror}); fix its "
                                 "permissions or use a new --out") from None
        good, bad = [], []
        for number, line in enumerate(raw.splitlines(keepends=True), start=1):
            rec = _parse(line)
            if rec is None:
                bad.append({"line": number, "text": line.decode("utf-8", "replace")})
            elif rec["key"] not in self.records:
                self.records[rec["key"]] = rec
                good.append(line)
        if not bad and len(good) == raw.count(b"\n"):
            return
        if bad:
            # quarantine first, then rewrite: a crash in between loses nothing
            _append_durably(self.quarantine_path, "".join(
                json.dumps(b, ensure_ascii=False) + "\n" for b in bad).encode())
            self.n_quarantined = len(bad)
            print(f"warning: {self.path}: moved {len(bad)} corrupt or truncated line(s) to "
                  f"{self.quarantine_path}; their records will be generated again",
                  file=sys.stderr)
        write_text(self.path, b"".join(good).decode())

    def __contains__(self, key: str) -> bool:
        return key in self.records

    def __len__(self) -> int:
        return len(self.records)

    def append(self, records: Iterable[dict]) -> None:
        """Append complete lines and make them durable before returning."""
        records = [r for r in records if r["key"] not in self.records]
        if not records:
            return
        _append_durably(self.path, "".join(
            json.dumps(r, ensure_ascii=False) + "\n" for r in records).encode())
        for r in records:
            self.records[r["key"]] = r

    def values(self) -> list[dict]:
        return list(self.records.values())

"""Append-only JSONL store for generations, so a long run resumes where it stopped.

Each record has a unique ``key``. Records are appended and flushed batch by batch; a line cut
off by a crash or a full disk is dropped (and the file truncated back to the last complete
line) when the store is opened again, so nothing is lost but the interrupted batch and nothing
is duplicated.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Iterable

from workbench.errors import WorkbenchError


class GenerationStore:
    """The ``generations.jsonl`` of one run directory."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.records: dict[str, dict] = {}
        if self.path.exists():
            self._load()

    def _load(self) -> None:
        try:
            raw = self.path.read_bytes()
        except OSError as exc:
            raise WorkbenchError(f"{self.path} cannot be read ({exc.strerror}); fix its "
                                 "permissions or use a new --out") from None
        good_end = 0
        pos = 0
        lines = raw.splitlines(keepends=True)
        for n, line in enumerate(lines, start=1):
            pos += len(line)
            try:
                rec = json.loads(line)
                key = rec["key"]
            except (ValueError, TypeError, KeyError):
                if n == len(lines):
                    break  # the line an interrupted write cut off: dropped below
                raise WorkbenchError(
                    f"{self.path} line {n} is not a generation record; remove that line (or "
                    "the file, to start again) and re-run") from None
            if not line.endswith(b"\n"):
                break  # an unfinished last line
            self.records[key] = rec
            good_end = pos
        if good_end < len(raw):
            with open(self.path, "r+b") as f:
                f.truncate(good_end)

    def __contains__(self, key: str) -> bool:
        return key in self.records

    def __len__(self) -> int:
        return len(self.records)

    def append(self, records: Iterable[dict]) -> None:
        """Append complete lines and make them durable before returning."""
        records = [r for r in records if r["key"] not in self.records]
        if not records:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        data = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records).encode()
        with open(self.path, "ab") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        for r in records:
            self.records[r["key"]] = r

    def values(self) -> list[dict]:
        return list(self.records.values())

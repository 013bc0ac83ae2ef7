"""Finished pieces of direction finding, saved as each one completes, so a killed run resumes.

Direction finding takes minutes (the candidate means, one selection score per candidate, one
CAA vector per behaviour). Each piece is written atomically to
``RUN_DIR/checkpoints/directions-<key>/`` the moment it is finished; ``<key>`` hashes everything
that determines the pieces (model, data hashes, split, search grid, thresholds), so a re-run
with the same config picks up every finished piece and one with another config starts afresh
without touching them.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import torch
from safetensors.torch import load_file

from workbench.directions.refusal import CandidateScore
from workbench.runs import read_json, write_json, write_tensors


class DirectionCheckpoint:
    """Read and write the finished pieces of one direction-finding configuration."""

    def __init__(self, run_dir: str | Path, key: dict):
        digest = hashlib.sha256(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()
        self.dir = Path(run_dir) / "checkpoints" / f"directions-{digest[:16]}"
        self.key = key
        self._scores: dict[tuple[int, int], CandidateScore] = {}
        if (self.dir / "scores.json").exists():
            for s in read_json(self.dir / "scores.json")["scores"]:
                score = CandidateScore(**s)
                self._scores[(score.position, score.layer)] = score

    def _ensure_key(self) -> None:
        if not (self.dir / "key.json").exists():
            write_json(self.dir / "key.json", self.key)

    def tensor(self, name: str) -> torch.Tensor | None:
        """A saved tensor piece (in its original dtype), or None when not finished yet."""
        path = self.dir / f"{name}.safetensors"
        return load_file(path)["value"] if path.exists() else None

    def save_tensor(self, name: str, value: torch.Tensor) -> None:
        self._ensure_key()
        write_tensors(self.dir / f"{name}.safetensors", {"value": value}, dtype=None)

    @property
    def scores(self) -> dict[tuple[int, int], CandidateScore]:
        """Selection scores already computed, by (eoi position, layer)."""
        return dict(self._scores)

    def save_score(self, score: CandidateScore) -> None:
        self._ensure_key()
        self._scores[(score.position, score.layer)] = score
        write_json(self.dir / "scores.json",
                   {"scores": [s.as_dict() for s in self._scores.values()]})

"""A run's computed directions read back from ``directions.safetensors`` and ``run.json``."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from safetensors.torch import load_file

from workbench.directions import CandidateScore, PromptFilter, RefusalSelection
from workbench.directions.results import Directions
from workbench.runs import read_json


def load_directions(run_dir: str | Path, behaviours: Iterable[str] | None = None
                    ) -> Directions | None:
    """The refusal candidates, selected direction and CAA vectors a run saved (float64), or
    None when it has not got that far, was written before the prompt filter was recorded, or
    (with ``behaviours``) holds CAA vectors for other behaviours than these."""
    out = Path(run_dir)
    path, run_json = out / "directions.safetensors", out / "run.json"
    if not (path.exists() and run_json.exists()):
        return None
    ref = read_json(run_json).get("refusal")
    if not ref:
        return None
    if "selection_rule" not in ref or "prompt_filter" not in ref:
        return None  # written before the prompt filter: recompute (checkpoints are keyed)
    t = load_file(path)
    sel = RefusalSelection(direction=t["refusal.direction"].double(), position=ref["position"],
                           offset=ref["offset"], layer=ref["layer"],
                           scores=[CandidateScore(**ref["scores"])],
                           baseline=ref["baseline"], rule=ref["selection_rule"])
    caa = {k.split(".", 1)[1]: v.double() for k, v in t.items() if k.startswith("caa.")}
    if behaviours is not None and set(caa) != set(behaviours):
        return None
    return Directions(t["refusal.candidates"].double(), sel, caa, {"reused": True},
                      prompt_filter=PromptFilter.from_record(ref["prompt_filter"]))

"""Reopen a finished audit run for follow-up analyses (benchmarks, notebooks).

A run directory holds everything needed to ask it a new question without recomputing it: the
config (``run.json``), the refusal direction and CAA vectors (``directions.safetensors``) and,
through the config, the same prompts and contrast splits. :func:`reopen_audit` reads them back
and loads the model once; the calibration benchmarks use it to steer at other scales.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

import torch

from workbench.errors import WorkbenchError
from workbench.jobs.config import AuditConfig
from workbench.directions.results import Directions
from workbench.jobs.directions import DirectionInputs, read_direction_inputs
from workbench.runs import read_json

__all__ = ["AuditRun", "reopen_audit", "signed_scales", "sweep_arguments"]


@dataclass
class AuditRun:
    """A finished audit: its config and record, model, directions and direction inputs."""

    path: Path
    cfg: AuditConfig
    record: dict
    model: object
    directions: Directions
    inputs: DirectionInputs

    @property
    def steering_layer(self) -> int:
        """The run's first steering layer."""
        return int(self.record["steering_layers"][0])

    def layer(self, layer: int | None) -> int:
        """``layer`` checked against the model, or the run's steering layer when None."""
        return self.steering_layer if layer is None else self.model.check_layer(layer)

    def resid_norm(self, layer: int) -> float:
        """Mean ``resid_pre`` norm at ``layer`` over the harmful and harmless training prompts
        (last token): the unit of the ``norm`` coefficient scale, computed as the audit does."""
        from workbench.activations import collect_activations

        items = self.inputs.harm_train + self.inputs.safe_train
        ids = self.model.tokenize_instructions([i.instruction for i in items])
        acts = collect_activations(self.model, ids, layers=[layer], batch_size=self.cfg.batch_size,
                                   progress=False)["resid_pre"]
        return float(acts[:, 0, 0].double().norm(dim=-1).mean())

    def refusal_unit(self, candidate: tuple[int, int] | None = None) -> torch.Tensor:
        """The selected refusal direction, or the run's candidate ``(offset, layer)`` (eoi
        offset counted from the end, as in ``refusal_scores.csv``), as a float32 unit vector."""
        from workbench.geometry import unit

        if candidate is None:
            return unit(self.directions.selection.direction.double()).float()
        offset, layer = candidate
        n_eoi = self.directions.candidates.shape[0]
        if not -n_eoi <= offset < 0:
            raise ValueError(f"candidate offset {offset} is outside this run's eoi positions "
                             f"(-{n_eoi} to -1); pick one listed in refusal_scores.csv")
        return unit(self.directions.candidates[offset, self.model.check_layer(layer)]
                    .double()).float()


def sweep_arguments(description: str, scales: str) -> argparse.ArgumentParser:
    """A parser with the arguments every scale sweep over a finished run takes
    (``--run --scales --layer --out``); a script adds its own."""
    ap = argparse.ArgumentParser(description=description)
    ap.add_argument("--run", required=True, help="a finished audit run directory")
    ap.add_argument("--scales", default=scales,
                    help=f"comma-separated norm-relative scales, each run in both signs "
                         f"(default {scales})")
    ap.add_argument("--layer", type=int, default=None,
                    help="steering layer (default: the run's first steering layer)")
    ap.add_argument("--out", default=None, help="CSV of the table (default: print only)")
    return ap


def signed_scales(scales: str) -> list[float]:
    """``"0.25,1"`` -> ``[-0.25, 0.25, -1.0, 1.0]``."""
    return [sgn * float(s) for s in scales.split(",") for sgn in (-1, 1)]


def reopen_audit(path: str | Path) -> AuditRun:
    """Read a finished audit run back (config, directions, inputs) and load its model."""
    from workbench.jobs.audit import _saved_directions, directions_config
    from workbench.model import load_model

    path = Path(path)
    if not (path / "run.json").is_file():
        raise WorkbenchError(f"{path} has no run.json; pass the folder `workbench audit` wrote")
    record = read_json(path / "run.json")
    if record.get("job") != "audit":
        raise WorkbenchError(f"{path} is a {record.get('job')!r} run, not an audit; pass an "
                             "audit run directory")
    cfg = AuditConfig(**{k: v for k, v in record["config"].items()
                         if k in AuditConfig.__dataclass_fields__})
    directions = _saved_directions(path, cfg)
    if directions is None:
        raise WorkbenchError(f"{path} has no saved directions for its behaviours; run the "
                             "audit to the end first")
    dtype = (record.get("model", {}).get("dtype") or {}).get("used", "float32")
    model = load_model(cfg.model, device=cfg.device, dtype=dtype,
                       trust_remote_code=cfg.trust_remote_code)
    return AuditRun(path, cfg, record, model, directions,
                    read_direction_inputs(directions_config(cfg)))

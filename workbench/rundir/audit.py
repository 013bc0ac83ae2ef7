"""An audit run directory read back: its tables for a comparison across models
(:func:`load_audit_tables`), or the run with its model for follow-up analyses
(:class:`AuditRun`, built by :func:`workbench.jobs.reopen.reopen_audit`)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import torch

from workbench.directions.results import Directions
from workbench.errors import WorkbenchError
from workbench.rundir.record import read_record
from workbench.rundir.tables import read_table

DELTA_REQUIRED = ("behaviour", "coefficient", "delta_asr", "cosine")
GEOMETRY_REQUIRED = ("behaviour", "layer", "cosine")


@dataclass
class AuditTables:
    """What a cross-model comparison reads from one audit run directory (no model)."""

    path: Path
    model: str
    n_layers: int
    d_model: int | None
    delta: pd.DataFrame
    geometry: pd.DataFrame | None


def _table(path: Path, required: tuple[str, ...]) -> pd.DataFrame | None:
    df = read_table(path)
    if df is None:
        return None
    missing = [c for c in required if c not in df.columns]
    if missing:
        raise WorkbenchError(f"{path} lacks column(s) {', '.join(missing)}; give audit run "
                             "directories written by `workbench audit` (docs/run_dir.md)")
    return df


def load_audit_tables(run_dir: str | Path) -> AuditTables:
    """Read one audit run directory's ΔASR and geometry tables; a clear error names what is
    missing."""
    path = Path(run_dir)
    record = read_record(path, job="audit")
    delta = _table(path / "delta_asr.csv", DELTA_REQUIRED)
    if delta is None:
        raise WorkbenchError(f"{path} has no delta_asr.csv rows; finish the audit (re-run the "
                             "same command to resume) before comparing")
    geometry = _table(path / "geometry.csv", GEOMETRY_REQUIRED)
    model = record.get("model") or {}
    n_layers = model.get("n_layers")
    if n_layers is None and geometry is not None:
        n_layers = int(geometry["layer"].max()) + 1
    if not n_layers:
        raise WorkbenchError(f"{path}/run.json names no model.n_layers and there is no "
                             "geometry.csv to infer it from; re-run the audit")
    name = model.get("spec") or record.get("config", {}).get("model") or path.name
    return AuditTables(path, str(name), int(n_layers), model.get("d_model"), delta, geometry)


@dataclass
class AuditRun:
    """A finished audit: its config and record, model, directions and direction inputs."""

    path: Path
    cfg: object  # workbench.jobs.config.AuditConfig
    record: dict
    model: object
    directions: Directions
    inputs: object  # workbench.jobs.directions.DirectionInputs

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

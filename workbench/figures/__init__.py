"""Figures rebuilt from a saved run directory alone (no model): plotly, HTML + PNG.

``render_audit_figures(run_dir)`` reads whichever CSVs of ``docs/run_dir.md`` the run has and
writes ``run_dir/figures/<name>.html`` and ``<name>.png`` for each figure it can draw.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from workbench.deprecation import moved_names
from workbench.errors import WorkbenchError
from workbench.figures.audit import (
    plot_asr_by_category,
    plot_cosine_by_layer,
    plot_delta_asr,
    plot_delta_vs_cosine,
    plot_efficacy,
    plot_efficacy_open_ended,
    plot_projections,
    plot_projections_3d,
)
from workbench.figures.export import read_table, save_figure, save_figures

__all__ = [
    "FIGURE_INPUTS",
    "build_audit_figures",
    "plot_asr_by_category",
    "plot_cosine_by_layer",
    "plot_delta_asr",
    "plot_delta_vs_cosine",
    "plot_efficacy",
    "plot_efficacy_open_ended",
    "plot_projections",
    "plot_projections_3d",
    "render_audit_figures",
    "save_figure",
    "save_figures",
]

# figure name -> the run-dir files it is drawn from (first required, the rest optional)
FIGURE_INPUTS: dict[str, tuple[str, ...]] = {
    "cosine_by_layer": ("geometry.csv", "run.json"),
    "delta_asr": ("delta_asr.csv",),
    "delta_vs_cosine": ("delta_asr.csv", "regression.csv"),
    "projections": ("projections.csv",),
    "projections_3d": ("projections.csv",),
    "asr_by_category": ("categories.csv",),
    "efficacy": ("efficacy.csv",),
    "efficacy_open_ended": ("efficacy.csv",),
}
_CSVS = ("geometry.csv", "delta_asr.csv", "regression.csv", "projections.csv", "categories.csv",
         "efficacy.csv")


def _refusal_layer(run_dir: Path) -> int | None:
    path = run_dir / "run.json"
    if not path.is_file():
        return None
    try:
        meta = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise WorkbenchError(f"cannot read {path}: {exc}") from exc
    layer = (meta.get("refusal") or {}).get("layer") if isinstance(meta, dict) else None
    try:
        return None if layer is None else int(layer)
    except (TypeError, ValueError):
        return None


def build_audit_figures(run_dir: str | os.PathLike) -> dict:
    """The figures a run directory's files support, by name (no files written)."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise WorkbenchError(f"run directory {run_dir} does not exist; pass the folder a "
                             "`workbench directions` or `workbench audit` job wrote")
    data = {name: read_table(run_dir / name) for name in _CSVS}
    if all(v is None for v in data.values()):
        raise WorkbenchError(f"{run_dir} has none of {', '.join(_CSVS)} (or they are empty); "
                             "is it a workbench run directory?")
    figs = {}
    if data["geometry.csv"] is not None:
        figs["cosine_by_layer"] = plot_cosine_by_layer(data["geometry.csv"],
                                                       refusal_layer=_refusal_layer(run_dir))
    if data["delta_asr.csv"] is not None:
        figs["delta_asr"] = plot_delta_asr(data["delta_asr.csv"])
        figs["delta_vs_cosine"] = plot_delta_vs_cosine(data["delta_asr.csv"],
                                                       data["regression.csv"])
    if data["projections.csv"] is not None:
        figs["projections"] = plot_projections(data["projections.csv"])
        figs["projections_3d"] = plot_projections_3d(data["projections.csv"])
    if data["categories.csv"] is not None:
        figs["asr_by_category"] = plot_asr_by_category(data["categories.csv"])
    if data["efficacy.csv"] is not None:
        eff = data["efficacy.csv"]
        figs["efficacy"] = plot_efficacy(eff)
        if "open_delta" in eff.columns and eff["open_delta"].astype(float).notna().any():
            figs["efficacy_open_ended"] = plot_efficacy_open_ended(eff)
    return figs


def render_audit_figures(run_dir: str | os.PathLike, png: bool = True) -> list[Path]:
    """Write ``run_dir/figures/<name>.html`` (+ ``.png``) for every figure the run supports.

    Figures whose input files are absent are skipped (a directions-only run gives just
    ``cosine_by_layer``). Returns the written paths. Raises WorkbenchError when ``run_dir``
    does not exist or holds no recognised file, or when ``png`` and kaleido/Chromium are
    missing.
    """
    figs = build_audit_figures(run_dir)
    return save_figures(figs, Path(run_dir) / "figures", png=png)


# The audit figures' names before they became ``plot_*``: importable for one release.
_RENAMED = {old: f"plot_{old}" for old in (
    "cosine_by_layer", "delta_asr", "delta_vs_cosine", "projections", "projections_3d",
    "asr_by_category", "efficacy", "efficacy_open_ended")}


__getattr__ = moved_names(__name__, {old: f"{__name__}:{new}" for old, new in _RENAMED.items()})

"""workbench compare on two synthetic audit run directories (CSV files written here)."""

import csv
import json

import numpy as np
import pytest
from scipy import stats

from workbench import WorkbenchError
from workbench.cli import main
from workbench.jobs.compare import run_compare

DELTA_FIELDS = ["behaviour", "layer", "coefficient", "template", "mitigated", "asr",
                "baseline_asr", "delta_asr", "delta_ci_low", "delta_ci_high", "p_value", "cosine",
                "recovered_share"]


def _write_run(path, model, n_layers, layer, points, extra=None):
    """An audit run dir: run.json, delta_asr.csv (points: (behaviour, coef, cos, dasr))."""
    path.mkdir(parents=True)
    (path / "run.json").write_text(json.dumps({
        "job": "audit", "model": {"spec": model, "n_layers": n_layers, "d_model": 64}}))
    fields = DELTA_FIELDS + list(extra or {})
    rows = [dict(zip(fields, ["none", "", 0, "all", False, 0.5, 0.5, "", "", "", "", "", ""]))]
    for beh, coef, cos, d in points:
        for template, mitigated, shift in (("all", False, 0.0), ("direct", False, 0.3),
                                           ("all", True, -0.4)):
            rows.append({"behaviour": beh, "layer": layer, "coefficient": coef,
                         "template": template, "mitigated": mitigated, "asr": 0.5 + d,
                         "baseline_asr": 0.5, "delta_asr": d + shift, "delta_ci_low": d - 0.1,
                         "delta_ci_high": d + 0.1, "p_value": 0.2, "cosine": cos,
                         **(extra or {})})
    if extra:  # a control row that the fits must leave out
        rows.append({**rows[1], "control": "random", "delta_asr": 9.0})
    with open(path / "delta_asr.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=fields)
        w.writeheader()
        w.writerows(rows)
    with open(path / "geometry.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=["behaviour", "layer", "cosine"])
        w.writeheader()
        for beh, *_ in points[::2]:
            w.writerows({"behaviour": beh, "layer": l, "cosine": 0.01 * l} for l in range(n_layers))
    return path


A = [("syco", -1, 0.02, -0.10), ("syco", 1, -0.02, 0.05), ("myopic", -1, 0.01, -0.02),
     ("myopic", 1, -0.01, 0.04)]
B = [("syco", -1, 0.20, -0.30), ("syco", 1, -0.20, 0.20), ("myopic", -1, 0.10, -0.05),
     ("myopic", 1, -0.10, 0.15), ("survival", 1, 0.05, -0.01)]


@pytest.fixture
def runs(tmp_path):
    a = _write_run(tmp_path / "a", "small-model", 4, 2, A)
    b = _write_run(tmp_path / "b", "large-model", 8, 3, B, extra={"control": "", "method": "caa"})
    return a, b


def test_pooled_and_per_model_fits_match_scipy(runs, tmp_path):
    summary = run_compare(runs, tmp_path / "cmp", png=False)
    fits = {f["model"]: f for f in summary["fits"]}
    x = np.array([p[2] for p in A + B])
    y = np.array([p[3] for p in A + B])
    ref = stats.linregress(x, y)
    assert fits["pooled"]["n"] == len(A) + len(B)
    assert fits["pooled"]["slope"] == pytest.approx(ref.slope)
    assert fits["pooled"]["intercept"] == pytest.approx(ref.intercept)
    assert fits["pooled"]["r2"] == pytest.approx(ref.rvalue ** 2)
    slope, intercept = np.polyfit([p[2] for p in B], [p[3] for p in B], 1)
    assert fits["large-model"]["slope"] == pytest.approx(slope)
    assert fits["large-model"]["intercept"] == pytest.approx(intercept)
    assert (fits["small-model"]["cosine_min"], fits["small-model"]["cosine_max"]) == (-0.02, 0.02)
    with open(tmp_path / "cmp" / "compare.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 1 + 3 * len(A) + 1 + 3 * len(B) + 1  # every row kept, fits filter
    big = [r for r in rows if r["model"] == "large-model" and r["behaviour"] != "none"]
    assert {float(r["relative_depth"]) for r in big} == {3 / 8}
    assert {"control", "method"} <= set(rows[0])
    with open(tmp_path / "cmp" / "geometry.csv") as f:
        geo = list(csv.DictReader(f))
    assert max(float(g["relative_depth"]) for g in geo if g["model"] == "small-model") == 0.75
    for name in ("delta_vs_cosine_models", "cosine_by_depth"):
        assert (tmp_path / "cmp" / "figures" / f"{name}.html").stat().st_size > 1000
    assert "| pooled | 9 |" in (tmp_path / "cmp" / "compare.md").read_text()


def test_fit_lines_stay_within_each_models_range(runs, tmp_path):
    from workbench.figures.compare import build_compare_figures

    run_compare(runs, tmp_path / "cmp", png=False)
    fig = build_compare_figures(tmp_path / "cmp")["delta_vs_cosine_models"]
    lines = {t.name.split(" fit")[0]: t for t in fig.data if t.mode == "lines"}
    assert set(lines) == {"small-model", "large-model", "pooled"}
    assert (min(lines["small-model"].x), max(lines["small-model"].x)) == (-0.02, 0.02)
    assert (min(lines["pooled"].x), max(lines["pooled"].x)) == (-0.2, 0.2)


def test_cli_compare_and_clear_errors(runs, tmp_path, capsys):
    assert main(["compare", *map(str, runs), "--out", str(tmp_path / "c"), "--no-png"]) == 0
    assert "Cross-model comparison" in capsys.readouterr().out
    assert main(["compare", str(runs[0]), "--out", str(tmp_path / "d")]) == 2
    assert "give two or more audit runs" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    with pytest.raises(WorkbenchError, match="has no run.json"):
        run_compare([runs[0], tmp_path / "empty"], tmp_path / "e", png=False)


def test_fits_use_the_projection_and_leave_placebos_out(tmp_path):
    """Runs that wrote ``projection`` are fitted on it; placebo rows never enter a fit."""
    a = _write_run(tmp_path / "a", "small-model", 4, 2, A,
                   extra={"projection": 0.0, "placebo": False, "control": ""})
    b = _write_run(tmp_path / "b", "large-model", 8, 3, B,
                   extra={"projection": 0.0, "placebo": False, "control": ""})
    for path, pts in ((a, A), (b, B)):
        with open(path / "delta_asr.csv") as f:
            rows = list(csv.DictReader(f))
        for r in rows:  # projection = coefficient x cosine, as the audit writes it
            if r["behaviour"] != "none":
                r["projection"] = float(r["coefficient"]) * float(r["cosine"])
        rows.append({**rows[1], "behaviour": "placebo-1", "placebo": True,
                     "projection": 0.0, "delta_asr": 5.0, "control": ""})
        with open(path / "delta_asr.csv", "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=list(rows[0]))
            w.writeheader()
            w.writerows(rows)
    summary = run_compare([a, b], tmp_path / "cmp", png=False)
    pooled = next(f for f in summary["fits"] if f["model"] == "pooled")
    x = np.array([p[1] * p[2] for p in A + B])
    y = np.array([p[3] for p in A + B])
    ref = stats.linregress(x, y)
    assert pooled["predictor"] == "projection" and pooled["n"] == len(A) + len(B)
    assert pooled["slope"] == pytest.approx(ref.slope)
    assert "projection" in (tmp_path / "cmp" / "compare.md").read_text()

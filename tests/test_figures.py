"""Audit figures from a synthetic run directory (made-up numbers, no model)."""

from __future__ import annotations

import csv
import json
import shutil
import struct
import subprocess
import zlib
from pathlib import Path

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import pytest

from workbench.errors import WorkbenchError
from workbench.figures import (
    build_audit_figures,
    plot_asr_by_category,
    plot_cosine_by_layer,
    plot_delta_asr,
    plot_delta_vs_cosine,
    plot_projections,
    plot_projections_3d,
    render_audit_figures,
    save_figure,
)
from workbench.figures import export as export_mod

BEHAVIOURS = ["power_seeking", "sycophancy"]
COEFFICIENTS = [4.0, 8.0]
TEMPLATES = ["prefix_injection", "refusal_suppression"]
LAYERS = [0, 1, 2, 3]
REFUSAL_LAYER = 2
CATEGORIES = ["fraud", "harassment", "malware"]
N_PER_SPLIT = 12


def _write_csv(path: Path, rows: list[dict]) -> None:
    with path.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]), lineterminator="\n")
        w.writeheader()
        w.writerows(rows)


def make_synthetic_run(run_dir: Path) -> Path:
    """A run directory with every CSV of docs/run_dir.md, filled with made-up numbers."""
    rng = np.random.default_rng(0)
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "run.json").write_text(json.dumps(
        {"job": "audit", "refusal": {"layer": REFUSAL_LAYER, "position": -1}}))
    cos = {("power_seeking", layer): 0.05 + 0.1 * layer for layer in LAYERS}
    cos.update({("sycophancy", layer): -0.02 - 0.04 * layer for layer in LAYERS})
    _write_csv(run_dir / "geometry.csv", [
        {"behaviour": b, "layer": layer, "cosine": round(cos[b, layer], 4)}
        for b in BEHAVIOURS for layer in LAYERS])

    base = 0.10
    delta, asr = [], []
    asr.append({"behaviour": "none", "layer": "", "coefficient": 0.0, "template": "all",
                "mitigated": False, "n": 40, "n_jailbroken": 4, "n_incomprehensible": 0,
                "asr": base, "ci_low": 0.04, "ci_high": 0.23})
    for b in BEHAVIOURS:
        for c in COEFFICIENTS:
            for t in TEMPLATES:
                for m in (False, True):
                    c_ = cos[b, REFUSAL_LAYER] * (0.1 if m else 1.0)
                    d = -0.6 * c_ * c / 4 + (0.02 if t == TEMPLATES[1] else 0.0)
                    a = base + d
                    delta.append({
                        "behaviour": b, "layer": REFUSAL_LAYER, "coefficient": c, "template": t,
                        "mitigated": m, "asr": round(a, 4), "baseline_asr": base,
                        "delta_asr": round(d, 4), "delta_ci_low": round(d - 0.06, 4),
                        "delta_ci_high": round(d + 0.07, 4),
                        "p_value": round(float(rng.uniform(0.0001, 0.5)), 5),
                        "cosine": round(c_, 4), "recovered_share": 0.5})
                    asr.append({"behaviour": b, "layer": REFUSAL_LAYER, "coefficient": c,
                                "template": t, "mitigated": m, "n": 40,
                                "n_jailbroken": round(a * 40), "n_incomprehensible": 1,
                                "asr": round(a, 4), "ci_low": max(0, a - 0.1),
                                "ci_high": a + 0.1})
    _write_csv(run_dir / "delta_asr.csv", delta)
    _write_csv(run_dir / "asr.csv", asr)

    reg = []
    for m in (False, True):
        for t in [*TEMPLATES, "all"]:
            reg.append({"mitigated": m, "template": t, "slope": -0.9 if not m else -0.2,
                        "intercept": 0.01, "r2": 0.81 if not m else 0.05,
                        "p_value": 0.0004 if not m else 0.61, "stderr": 0.1,
                        "n": 8 if t != "all" else 16})
    _write_csv(run_dir / "regression.csv", reg)

    cats = [{"behaviour": "none", "layer": "", "coefficient": 0.0, "mitigated": False,
             "category": k, "n": 10, "n_jailbroken": i, "asr": i / 10, "ci_low": 0.0,
             "ci_high": min(1.0, i / 10 + 0.3)} for i, k in enumerate(CATEGORIES)]
    for b in BEHAVIOURS:
        for c in COEFFICIENTS:
            for m in (False, True):
                for i, k in enumerate(CATEGORIES):
                    nj = int(min(10, i + c / 2 - (2 if m else 0)))
                    cats.append({"behaviour": b, "layer": REFUSAL_LAYER, "coefficient": c,
                                 "mitigated": m, "category": k, "n": 10, "n_jailbroken": nj,
                                 "asr": nj / 10, "ci_low": max(0.0, nj / 10 - 0.2),
                                 "ci_high": min(1.0, nj / 10 + 0.2)})
    _write_csv(run_dir / "categories.csv", cats)

    _write_csv(run_dir / "false_refusal.csv", [
        {"behaviour": "none", "layer": "", "coefficient": 0.0, "mitigated": False, "n": 20,
         "n_refused": 1, "rate": 0.05, "ci_low": 0.01, "ci_high": 0.24}])

    proj = []
    for split, shift in (("harmful", 3.0), ("harmless", -1.0)):
        for i in range(N_PER_SPLIT):
            proj.append({"prompt_id": f"{split[:4]}-{i}", "split": split,
                         "category": CATEGORIES[i % 3] if split == "harmful" else "benign",
                         "layer": REFUSAL_LAYER,
                         "refusal_proj": round(shift + float(rng.normal(0, 0.8)), 4),
                         **{f"pc{k}": round(float(rng.normal(0, 2.0 / k)), 4)
                            for k in (1, 2, 3)}})
    _write_csv(run_dir / "projections.csv", proj)
    return run_dir


@pytest.fixture()
def run_dir(tmp_path):
    return make_synthetic_run(tmp_path / "run")


def _read(run_dir: Path, name: str) -> pd.DataFrame:
    return pd.read_csv(run_dir / name)


def _n_points(trace) -> int:
    return len(trace.x[0]) if trace.type == "bar" and isinstance(trace.x[0], (list, tuple)) \
        else len(trace.x)


# --------------------------------------------------------------------------- figure functions


def test_cosine_by_layer(run_dir):
    fig = plot_cosine_by_layer(_read(run_dir, "geometry.csv"), refusal_layer=REFUSAL_LAYER)
    assert isinstance(fig, go.Figure)
    assert [t.name for t in fig.data] == BEHAVIOURS
    for t in fig.data:
        assert list(t.x) == LAYERS and "cosine" in t.hovertemplate
    assert any(s.type == "line" and s.x0 == REFUSAL_LAYER for s in fig.layout.shapes)
    assert "layer 2" in " ".join(a.text for a in fig.layout.annotations)
    assert fig.layout.yaxis.zeroline and "Layer" in fig.layout.xaxis.title.text
    assert fig.layout.title.text
    # no refusal layer given: no marker
    assert not plot_cosine_by_layer(_read(run_dir, "geometry.csv")).layout.shapes


def test_delta_asr(run_dir):
    fig = plot_delta_asr(_read(run_dir, "delta_asr.csv"))
    bars = [t for t in fig.data if t.type == "bar"]
    assert len(bars) == len(TEMPLATES) * 2  # one trace per template x mitigated
    assert {t.name for t in bars} == {"unmitigated", "mitigated (refusal component removed)"}
    assert sum(t.showlegend is not False for t in bars) == 2
    for t in bars:
        assert _n_points(t) == len(BEHAVIOURS) * len(COEFFICIENTS)
        assert t.error_y.array is not None and t.error_y.arrayminus is not None
        assert np.all(np.asarray(t.error_y.array) >= 0)
    assert {a.text for a in fig.layout.annotations} >= {f"template: {t}" for t in TEMPLATES}
    # percentage points: the first bar is the CSV's delta x 100
    df = _read(run_dir, "delta_asr.csv")
    first = df[(df.template == TEMPLATES[0]) & (~df.mitigated)].sort_values(
        ["behaviour", "coefficient"]).iloc[0]
    assert bars[0].y[0] == pytest.approx(first.delta_asr * 100)
    assert "percentage points" in fig.layout.yaxis.title.text


def test_delta_vs_cosine(run_dir):
    delta, reg = _read(run_dir, "delta_asr.csv"), _read(run_dir, "regression.csv")
    fig = plot_delta_vs_cosine(delta, reg)
    pts = [t for t in fig.data if t.mode == "markers"]
    lines = [t for t in fig.data if t.mode == "lines"]
    assert len(pts) == len(BEHAVIOURS) * 2
    assert sum(len(t.x) for t in pts) == len(delta)
    assert len(lines) == 2  # the pooled ("all") fit, unmitigated and mitigated
    assert "R² = 0.810" in lines[0].name and "p = 4.0e-04" in lines[0].name
    assert "slope -90.0 pp" in lines[0].name and "n = 16" in lines[0].name
    assert lines[0].line.color != lines[1].line.color
    # one template: its points and its own fit lines
    one = plot_delta_vs_cosine(delta, reg, template=TEMPLATES[0])
    assert sum(len(t.x) for t in one.data if t.mode == "markers") == len(delta) // 2
    assert "n = 8" in [t for t in one.data if t.mode == "lines"][0].name
    # regression optional
    assert all(t.mode == "markers" for t in plot_delta_vs_cosine(delta).data)
    # each fit line spans exactly the cosines of the points it was fitted on
    pooled = delta[delta.template == "all"] if (delta.template == "all").any() else delta
    for line in lines:
        m = "mitigated:" in line.name and not line.name.startswith("unmitigated")
        xs = pooled[pooled.mitigated == m].cosine
        assert min(line.x) == pytest.approx(xs.min()) and max(line.x) == pytest.approx(xs.max())
    # mitigated points are hollow and drawn larger over the filled unmitigated ones
    marks = {t.legendgroup: t.marker for t in pts}
    assert marks["mTrue"].symbol.endswith("-open") and not marks["mFalse"].symbol.endswith("open")
    assert marks["mTrue"].size > marks["mFalse"].size
    assert "pp per unit cosine" in lines[0].name


def test_delta_vs_cosine_draws_the_logistic_fit_over_the_projection(run_dir):
    delta = _read(run_dir, "delta_asr.csv")
    delta["method"] = "caa"
    delta["projection"] = delta["cosine"] * delta["coefficient"]
    plac = delta[(delta.behaviour == BEHAVIOURS[0]) & ~delta.mitigated].copy()
    plac["behaviour"], plac["method"], plac["projection"] = "placebo-1", "random", 0.0
    delta = pd.concat([delta, plac], ignore_index=True)
    reg = pd.DataFrame([{"fit": "behaviours", "slope": 2.0, "intercept": -1.0, "p_value": 0.01,
                         "n": 100}, {"fit": "controls", "slope": -9.0, "intercept": 0.0,
                                     "p_value": 0.5, "n": 50}])
    fig = plot_delta_vs_cosine(delta, reg)
    (line,) = [t for t in fig.data if t.mode == "lines"]  # the behaviours' fit only
    xs = np.asarray(line.x)
    sigmoid = lambda z: 1 / (1 + np.exp(-z))  # noqa: E731
    np.testing.assert_allclose(line.y, (sigmoid(-1 + 2 * xs) - sigmoid(-1)) * 100)
    beh = delta[(~delta.mitigated) & (delta.behaviour != "placebo-1")]
    assert xs.min() == pytest.approx(beh.projection.min())
    assert xs.max() == pytest.approx(beh.projection.max())
    (grey,) = [t for t in fig.data if t.name == "placebo directions (1)"]
    assert list(grey.x) == [0.0] * len(plac) and "projection" in fig.layout.xaxis.title.text
    assert fig.data[-2] is grey  # drawn over the behaviours, under the fit


def test_projections(run_dir):
    proj = _read(run_dir, "projections.csv")
    fig = plot_projections(proj)
    hists = [t for t in fig.data if t.type == "histogram"]
    scat = [t for t in fig.data if t.type == "scatter"]
    assert [t.legendgroup for t in hists] == ["harmful", "harmless"]
    assert [len(t.x) for t in hists] == [N_PER_SPLIT, N_PER_SPLIT]
    assert [len(t.x) for t in scat] == [N_PER_SPLIT, N_PER_SPLIT]
    assert fig.layout.barmode == "overlay"
    assert "layer 2" in fig.layout.title.text

    fig3 = plot_projections_3d(proj)
    s3 = [t for t in fig3.data if t.type == "scatter3d" and t.mode == "markers"]
    assert [len(t.x) for t in s3] == [N_PER_SPLIT, N_PER_SPLIT]
    arrow = [t for t in fig3.data if t.type == "scatter3d" and t.mode == "lines"]
    assert len(arrow) == 1 and "refusal direction" in arrow[0].name
    assert arrow[0].y[0] == arrow[0].y[1] and arrow[0].z[0] == arrow[0].z[1]  # along r-hat
    assert arrow[0].x[1] > arrow[0].x[0]
    assert any(t.type == "cone" for t in fig3.data)


def test_interaction_hints_only_in_html(run_dir, tmp_path):
    fig = plot_projections_3d(_read(run_dir, "projections.csv"))
    drawn = " ".join([fig.layout.title.text, fig.layout.title.subtitle.text or "",
                      *(a.text for a in fig.layout.annotations)])
    assert "drag" not in drawn and "hover" not in drawn  # what a PNG shows
    (html,) = save_figure(fig, tmp_path, "p3", png=False)
    text = html.read_text()
    assert "drag to rotate" in text and "hover for exact values" in text
    assert "residual-stream units" in text  # the figure's own subtitle is kept


def test_axes_fit_the_data(run_dir):
    fig = plot_cosine_by_layer(_read(run_dir, "geometry.csv"), refusal_layer=REFUSAL_LAYER)
    assert list(fig.layout.xaxis.range) == [min(LAYERS) - 0.5, max(LAYERS) + 0.5]
    lo, hi = fig.layout.yaxis.range
    cos = _read(run_dir, "geometry.csv").cosine
    assert lo <= min(0, cos.min()) and hi >= cos.max()
    assert hi - lo < 1.3 * (max(0, cos.max()) - min(0, cos.min()))  # padded, not inflated


def test_delta_asr_leaves_no_empty_slot(run_dir):
    df = _read(run_dir, "delta_asr.csv")
    pooled = df[df.template == TEMPLATES[0]].assign(template="all")
    fig = plot_delta_asr(pd.concat([df, pooled]))  # three templates on a two-column grid
    titles = [a.text for a in fig.layout.annotations if a.text.startswith("template")]
    assert titles[-1] == "template: all"
    assert list(fig.layout.xaxis3.domain) == [0.0, 1.0]  # the odd last panel spans the row


def test_palette_is_defined_once():
    """Figure modules take colours from workbench/figures/style.py, never as literals."""
    import re

    for name in ("audit.py", "safesteer.py", "__init__.py", "export.py"):
        text = (REPO / "workbench" / "figures" / name).read_text()
        assert not re.findall(r"#[0-9A-Fa-f]{6}\b", text), name


def test_asr_by_category(run_dir):
    cats = _read(run_dir, "categories.csv")
    fig = plot_asr_by_category(cats)
    (hm,) = fig.data
    assert hm.type == "heatmap"
    n_conditions = 1 + len(BEHAVIOURS) * len(COEFFICIENTS) * 2
    # one row per condition (long labels stay horizontal), one column per category
    assert len(hm.y) == n_conditions and list(hm.x) == CATEGORIES
    assert np.asarray(hm.z, dtype=float).shape == (n_conditions, len(CATEGORIES))
    assert hm.y[0].startswith("unsteered") and "mitigated" in hm.y[2]
    assert hm.z[0][2] == pytest.approx(20.0)  # malware baseline 2/10, in percent
    assert hm.zmin == 0 and hm.zmax == 100
    # each cell shows its own n (jailbroken/answers), and the subtitle says how many answers
    assert "%{customdata[1]}" in hm.texttemplate and list(hm.customdata[0][2][:2]) == ["2", "10"]
    assert "n = 10 answers per cell" in fig.layout.title.subtitle.text


def test_missing_column_is_a_workbench_error(run_dir):
    with pytest.raises(WorkbenchError, match="cosine"):
        plot_cosine_by_layer(_read(run_dir, "geometry.csv").drop(columns="cosine"))


# --------------------------------------------------------------------------- run directory


def test_render_html_only(run_dir):
    paths = render_audit_figures(run_dir, png=False)
    names = {p.name for p in paths}
    assert names == {f"{n}.html" for n in ("cosine_by_layer", "delta_asr", "delta_vs_cosine",
                                           "projections", "projections_3d", "asr_by_category")}
    for p in paths:
        assert p.parent == run_dir / "figures"
        text = p.read_text()
        assert "<script src=\"https://cdn" not in text and "Plotly.newPlot" in text
        # one local plotly.js beside the figures (workbench.figures.offline): opens offline
        assert 'src="plotly.min.js"' in text and len(text) < 1_000_000
        assert text.count("Plotly.newPlot") == 1
    assert (run_dir / "figures" / "plotly.min.js").stat().st_size > 1_000_000
    assert not list((run_dir / "figures").glob(".*"))  # no temporary files left


def test_render_directions_only_run(tmp_path):
    full = make_synthetic_run(tmp_path / "full")
    run = tmp_path / "directions"
    run.mkdir()
    for name in ("geometry.csv", "run.json"):
        shutil.copy(full / name, run / name)
    paths = render_audit_figures(run, png=False)
    assert [p.name for p in paths] == ["cosine_by_layer.html"]
    assert build_audit_figures(run)["cosine_by_layer"].layout.shapes[0].x0 == REFUSAL_LAYER


def test_render_errors(tmp_path):
    with pytest.raises(WorkbenchError, match="does not exist"):
        render_audit_figures(tmp_path / "nope", png=False)
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("hi")
    with pytest.raises(WorkbenchError, match="none of"):
        render_audit_figures(tmp_path / "empty", png=False)


def test_missing_kaleido_or_chrome_is_a_workbench_error(run_dir, tmp_path, monkeypatch):
    fig = plot_cosine_by_layer(_read(run_dir, "geometry.csv"))

    def no_chrome(*a, **k):
        raise RuntimeError("\n\nKaleido requires Google Chrome to be installed.\n")

    monkeypatch.setattr(go.Figure, "write_image", no_chrome)
    with pytest.raises(WorkbenchError, match="pip install kaleido.*apt-get install -y chromium") \
            as exc:
        save_figure(fig, tmp_path / "out", "cos")
    assert "\n" not in str(exc.value)
    assert not (tmp_path / "out" / "cos.png").exists()
    assert [p.name for p in save_figure(fig, tmp_path / "out", "cos", png=False)] == ["cos.html"]

    monkeypatch.setattr(export_mod, "png_export_available", lambda: False)
    with pytest.raises(WorkbenchError, match="kaleido is not installed"):
        render_audit_figures(run_dir)


def test_any_png_export_failure_is_one_workbench_error(run_dir, monkeypatch):
    """Whatever kaleido raises, the caller gets one WorkbenchError; the HTML files stay."""
    def broken(*a, **k):
        raise ValueError("Transform failed with error code 525:\n something odd")

    monkeypatch.setattr(export_mod, "png_export_available", lambda: True)
    monkeypatch.setattr(export_mod.pio, "write_images", broken)
    with pytest.raises(WorkbenchError, match="PNG export of cosine_by_layer, .* failed "
                       r"\(ValueError: Transform failed") as exc:
        render_audit_figures(run_dir)
    assert "\n" not in str(exc.value) and "pip install kaleido" in str(exc.value)
    assert (run_dir / "figures" / "delta_asr.html").is_file()
    assert not list((run_dir / "figures").glob("*.png"))
    assert not list((run_dir / "figures").glob(".*"))


# --------------------------------------------------------------------------- real rendering


def test_unlaunchable_browser_is_a_workbench_error(run_dir, tmp_path, monkeypatch):
    if not export_mod.png_export_available():
        pytest.skip("kaleido is not installed (pip install kaleido)")
    monkeypatch.setenv("BROWSER_PATH", str(tmp_path / "no-such-chromium"))  # choreographer's
    with pytest.raises(WorkbenchError, match="apt-get install -y chromium") as exc:
        render_audit_figures(run_dir)
    assert "\n" not in str(exc.value)
    assert not list((run_dir / "figures").glob("*.png"))
    assert not list((run_dir / "figures").glob(".*"))  # temporary PNGs removed


def _chromium() -> str | None:
    """The browser kaleido would use: on PATH, or where choreographer looks for it."""
    found = shutil.which("chromium") or shutil.which("chromium-browser") \
        or shutil.which("google-chrome")
    if found is None:
        try:
            from choreographer.browsers.chromium import Chromium
            found = Chromium.find_browser(skip_local=False)
        except Exception:  # kaleido/choreographer missing or changed
            found = None
    return found


def _png_pixels(data: bytes, max_rows: int = 700) -> tuple[int, int, set[bytes]]:
    """Decode the first ``max_rows`` rows of a non-interlaced 8-bit PNG (what Chrome writes)
    with the stdlib; returns width, height and the distinct colours of a sample of rows."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, hdr = 8, b"", None
    while pos < len(data):
        (length,), kind = struct.unpack(">I", data[pos:pos + 4]), data[pos + 4:pos + 8]
        body = data[pos + 8:pos + 8 + length]
        if kind == b"IHDR":
            hdr = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
    width, height, depth, ctype, _, _, interlace = hdr
    assert depth == 8 and interlace == 0 and ctype in (2, 6)
    bpp = 3 if ctype == 2 else 4
    raw = zlib.decompress(idat)
    stride = width * bpp
    prev = bytearray(stride)
    colours: set[bytes] = set()
    for y in range(min(height, max_rows)):
        f, line = raw[y * (stride + 1)], bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        for i in range(stride):
            a = line[i - bpp] if i >= bpp else 0
            b, c = prev[i], prev[i - bpp] if i >= bpp else 0
            if f == 1:
                line[i] = (line[i] + a) & 0xFF
            elif f == 2:
                line[i] = (line[i] + b) & 0xFF
            elif f == 3:
                line[i] = (line[i] + (a + b) // 2) & 0xFF
            elif f == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 0xFF
        if y % 37 == 0:
            colours.update(bytes(line[i:i + 3]) for i in range(0, stride, bpp))
        prev = line
    return width, height, colours


def _kaleido_works() -> str | None:
    if not export_mod.png_export_available():
        return "kaleido is not installed (pip install kaleido)"
    if _chromium() is None:
        return "no Chrome/Chromium on PATH (apt-get install -y chromium)"
    return None


def test_png_export(run_dir):
    reason = _kaleido_works()
    if reason:
        pytest.skip(reason)
    paths = render_audit_figures(run_dir, png=True)
    pngs = [p for p in paths if p.suffix == ".png"]
    assert len(pngs) == 6 and len(paths) == 12
    for p in pngs:
        assert p.stat().st_size > 20_000
    width, height, colours = _png_pixels((run_dir / "figures" / "delta_asr.png").read_bytes())
    assert width == 2400 and height > 800  # 1200 layout px at scale 2
    assert len(colours) > 20  # text, bars, error bars: not a blank canvas
    _, _, colours3d = _png_pixels((run_dir / "figures" / "projections_3d.png").read_bytes())
    assert len(colours3d) > 20  # WebGL rendered in headless Chrome


def test_html_renders_in_headless_chromium(run_dir, tmp_path):
    chromium = _chromium()
    if chromium is None:
        pytest.skip("no chromium on PATH (apt-get install -y chromium) for the browser test")
    (html,) = save_figure(plot_delta_asr(_read(run_dir, "delta_asr.csv")), tmp_path / "f",
                          "delta_asr", png=False)
    cmd = [chromium, "--headless", "--no-sandbox", "--disable-gpu",
           "--disable-background-networking", "--disable-component-update", "--disable-sync",
           "--no-first-run", "--disable-dev-shm-usage", f"--user-data-dir={tmp_path / 'profile'}",
           "--virtual-time-budget=10000", "--dump-dom", html.resolve().as_uri()]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    dom = out.stdout
    assert out.returncode == 0, out.stderr[-2000:]
    assert 'class="plot-container' in dom and "main-svg" in dom
    assert "template: refusal_suppression" in dom  # the subplot titles were drawn as SVG text


# --------------------------------------------------------------------------- browser checks

REPO = Path(__file__).resolve().parents[1]

# Run in the page for each figure, drawn at its static-export size: returns a list of problems.
_CHECK_JS = r"""
function finite(v) {
  return v !== null && v !== undefined && v !== "" && !(typeof v === "number" && !isFinite(v));
}
function nPoints(t) {
  const arrays = ["x", "y", "z"].map(k => t[k])
    .filter(a => a && a.length && !(Array.isArray(a[0]) && t.type !== "heatmap"));
  if (!arrays.length) return 0;
  let n = 0;
  for (let i = 0; i < arrays[0].length; i++) if (arrays.every(a => finite(a[i]))) n++;
  return n;
}
function filled(el) {
  const s = getComputedStyle(el);
  const op = parseFloat(s.fillOpacity || 1) * parseFloat(s.opacity || 1);
  return s.fill && s.fill !== "none" && op > 0.5;
}
function inside(a, b) {  // box a within box b
  return a.left >= b.left - 0.5 && a.right <= b.right + 0.5 && a.top >= b.top - 0.5 &&
    a.bottom <= b.bottom + 0.5;
}
function allHidden(gd, index) {
  // every marker of trace `index` lies under a filled marker of a trace drawn after it
  const layers = [...gd.querySelectorAll(".scatterlayer g.trace")];
  const mine = layers.filter(g => g.__data__ && g.__data__[0].trace.index === index);
  const pts = mine.flatMap(g => [...g.querySelectorAll("path.point")]);
  if (!pts.length) return false;
  const later = layers.slice(layers.indexOf(mine[mine.length - 1]) + 1)
    .flatMap(g => [...g.querySelectorAll("path.point")]).filter(filled)
    .map(p => p.getBoundingClientRect());
  return pts.every(p => { const r = p.getBoundingClientRect();
                          return later.some(o => inside(r, o)); });
}
function check(gd, w, h) {
  const out = [];
  const fl = gd._fullLayout;
  const root = gd.getBoundingClientRect();
  const title = gd.querySelector(".g-gtitle text");
  if (!fl.title.text || !title || !title.textContent.trim()) out.push("no title");
  const boxes = [];
  for (const t of gd.querySelectorAll(".main-svg text")) {
    if (!t.textContent.trim() || t.closest(".hoverlayer")) continue;
    const s = getComputedStyle(t);
    if (s.display === "none" || s.visibility === "hidden" || +s.opacity === 0) continue;
    const r = t.getBoundingClientRect();
    if (!r.width && !r.height) continue;
    if (r.left < root.left - 1 || r.top < root.top - 1 || r.right > root.left + w + 1 ||
        r.bottom > root.top + h + 1)
      out.push(`text cut off at the canvas edge: "${t.textContent}"`);
    const rotated = /rotate\((?!0[,)])/.test(t.getAttribute("transform") || "");
    if (!rotated) boxes.push([t.textContent, r]);
  }
  for (let i = 0; i < boxes.length; i++) for (let j = i + 1; j < boxes.length; j++) {
    const [ta, a] = boxes[i], [tb, b] = boxes[j];
    const ow = Math.min(a.right, b.right) - Math.max(a.left, b.left);
    const oh = Math.min(a.bottom, b.bottom) - Math.max(a.top, b.top);
    const small = Math.min(a.width * a.height, b.width * b.height);
    if (ow > 0 && oh > 0 && ow * oh > 0.2 * small) out.push(`texts overlap: "${ta}" / "${tb}"`);
  }
  const items = [...gd.querySelectorAll(".legend g.traces")];
  for (const item of items) {
    const d = item.__data__ && item.__data__[0];
    if (d && d.groupTitle) continue;  // a legend group's heading, not an entry
    const tr = d && d.trace;
    const name = item.textContent;
    if (!tr) { out.push(`legend item "${name}" has no trace`); continue; }
    if (tr.visible !== true) out.push(`legend item "${name}": trace not visible`);
    else if (!["cone"].includes(tr.type) && nPoints(tr) === 0)
      out.push(`legend item "${name}": trace has no points`);
    else if (tr.type === "scatter" && allHidden(gd, tr.index))
      out.push(`legend item "${name}": every point hidden under another trace`);
  }
  const rows = {};
  let left = 1, right = 0;
  for (const sp of fl._subplots.cartesian || []) {
    if (!gd._fullData.some(t => t.visible === true && t.xaxis + t.yaxis === sp))
      out.push(`empty panel ${sp}`);
    const [xn, yn] = sp.split("y");
    const xa = fl["xaxis" + xn.slice(1)], ya = fl["yaxis" + yn];
    const key = ya.domain.map(v => v.toFixed(3)).join();
    (rows[key] = rows[key] || []).push(xa.domain);
    left = Math.min(left, xa.domain[0]); right = Math.max(right, xa.domain[1]);
    if (xa.type === "category" || xa.type === "multicategory") {
      // category labels stay within their panel (a too-long one crosses the panel edge)
      const l = root.left + xa._offset, r = l + xa._length;
      for (const t of gd.querySelectorAll(`g.subplot.${sp} .xaxislayer-above text`)) {
        if (/rotate\((?!0[,)])/.test(t.getAttribute("transform") || "")) continue;
        const b = t.getBoundingClientRect();
        if (b.width && (b.left < l - 1 || b.right > r + 1))
          out.push(`tick label wider than its slot: "${t.textContent}"`);
      }
    }
  }
  // a grid row that stops short of the others leaves an empty slot
  for (const doms of Object.values(rows)) {
    const lo = Math.min(...doms.map(d => d[0])), hi = Math.max(...doms.map(d => d[1]));
    if (lo > left + 0.05 || hi < right - 0.05) out.push("empty panel slot in a grid row");
  }
  return {problems: out, legend: items.map(i => i.textContent),
          title: title ? title.textContent : ""};
}
"""

_PAGE = """<!DOCTYPE html><html><head><meta charset="utf-8"><script src="plotly.min.js"></script>
<style>body{margin:0} .fig{margin:0 0 20px 0}</style></head><body><pre id="result">pending</pre>
<script>%s
const FIGS = %s;
(async () => {
  const res = {};
  for (const [name, f] of Object.entries(FIGS)) {
    const div = document.createElement("div");
    div.className = "fig";
    document.body.appendChild(div);
    try {
      f.layout.width = f.w; f.layout.height = f.h;
      await Plotly.newPlot(div, f.data, f.layout, {staticPlot: true});
      res[name] = check(div, f.w, f.h);
    } catch (e) { res[name] = {problems: ["render error: " + e], legend: [], title: ""}; }
  }
  document.getElementById("result").textContent = JSON.stringify(res);
})();
</script></body></html>"""


def browser_check(figures: dict[str, go.Figure], workdir: Path) -> dict[str, dict]:
    """Draw every figure at its PNG size in one headless Chromium; the page's findings by name.

    Checks (see _CHECK_JS): a title; no text past the canvas edge; no overlapping text; every
    legend item's trace is visible, has points, and is not wholly hidden under another trace;
    no empty panel.
    """
    import html
    import re

    from plotly.offline import get_plotlyjs

    chromium = _chromium()
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "plotly.min.js").write_text(get_plotlyjs())
    figs = {}
    for name, fig in figures.items():
        w, h = export_mod._size(fig, None, None)
        figs[name] = {**json.loads(fig.to_json()), "w": w, "h": h}
    page = workdir / "check.html"
    page.write_text(_PAGE % (_CHECK_JS, json.dumps(figs)))
    cmd = [chromium, "--headless", "--no-sandbox", "--disable-gpu",
           "--disable-background-networking", "--disable-component-update", "--disable-sync",
           "--no-first-run", "--disable-dev-shm-usage", "--enable-unsafe-swiftshader",
           f"--user-data-dir={workdir / 'profile'}", "--window-size=1400,1000",
           "--virtual-time-budget=60000", "--dump-dom", page.resolve().as_uri()]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    found = re.search(r'<pre id="result">(.*?)</pre>', out.stdout, re.S)
    assert found and found.group(1) != "pending", out.stdout[-2000:]
    return json.loads(html.unescape(found.group(1)))


def _assert_clean(figures: dict[str, go.Figure], workdir: Path) -> dict[str, dict]:
    if _chromium() is None:
        pytest.skip("no chromium on PATH (apt-get install -y chromium) for the browser test")
    res = browser_check(figures, workdir)
    assert set(res) == set(figures)
    bad = {name: r["problems"] for name, r in res.items() if r["problems"]}
    assert not bad, json.dumps(bad, indent=1, ensure_ascii=False)
    for name, r in res.items():
        assert r["title"] and r["title"] == figures[name].layout.title.text, name
    return res


def _all_figures(audit_dir: Path | None, safesteer_dir: Path | None) -> dict[str, go.Figure]:
    from workbench.figures.safesteer import build_safesteer_figures

    figs = {}
    if audit_dir is not None:
        figs.update({f"audit/{k}": v for k, v in build_audit_figures(audit_dir).items()})
    if safesteer_dir is not None:
        figs.update({f"safesteer/{k}": v
                     for k, v in build_safesteer_figures(safesteer_dir).items()})
    return figs


def test_figures_pass_browser_checks(run_dir, tmp_path):
    """The synthetic run and the committed quick-run tables, in one browser session."""
    figs = {f"synthetic/{k}": v for k, v in build_audit_figures(run_dir).items()}
    figs.update(_all_figures(REPO / "figures" / "audit-quick",
                             REPO / "figures" / "safesteer-quick"))
    res = _assert_clean(figs, tmp_path / "browser")
    # the mitigated and unmitigated points of delta_vs_cosine are both in the legend
    legend = " ".join(res["audit/delta_vs_cosine"]["legend"])
    assert "unmitigated" in legend and "mitigated" in legend


@pytest.mark.slow
def test_smoke_run_figures_pass_browser_checks(tmp_path):
    from workbench.cli import main

    if _chromium() is None:
        pytest.skip("no chromium on PATH (apt-get install -y chromium) for the browser test")
    audit, safesteer = tmp_path / "audit", tmp_path / "safesteer"
    assert main(["audit", "--preset", "smoke", "--out", str(audit), "--quiet"]) == 0
    assert main(["safesteer", "--preset", "smoke", "--out", str(safesteer), "--quiet"]) == 0
    figs = _all_figures(audit, safesteer)
    audit_names = {"cosine_by_layer", "delta_asr", "delta_vs_cosine", "projections",
                   "projections_3d", "asr_by_category", "efficacy", "efficacy_open_ended"}
    assert {k for k in figs if k.startswith("audit/")} == {f"audit/{n}" for n in audit_names}
    assert sum(k.startswith("safesteer/") for k in figs) == 4
    _assert_clean(figs, tmp_path / "browser")

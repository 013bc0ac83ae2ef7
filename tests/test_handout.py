"""Class handouts: every notebook runs on ``tiny-random`` and exports to one offline HTML page.

Each notebook is executed once (a module-scoped fixture; this is also the test that every
notebook runs top to bottom in a fresh kernel), with a planted solution cell added, and then:

- its HTML keeps every plotly figure of the executed notebook (one ``Plotly.newPlot`` per
  figure output outside solution cells), with plotly.js embedded once and no script from a CDN
  needed for them;
- the student page has no solution code (the planted marker and notebook 06's own solutions),
  the teacher's copy (``with_solutions``) has it;
- no stale progress bar is left in any output;
- headless Chromium, offline, draws every figure (plotly's ``plot-container`` per figure in
  the rendered DOM) and logs nothing to the console.

Also ``workbench handout``'s bad-input errors and the quiet defaults of the notebook API.
"""

from __future__ import annotations

import copy
import html
import inspect
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from workbench import WorkbenchError

NOTEBOOK_DIR = Path(__file__).resolve().parent.parent / "notebooks"
NOTEBOOKS = sorted(NOTEBOOK_DIR.glob("*.ipynb"))
PLOTLY_MIME = "application/vnd.plotly.v1+json"
PLANTED = "PLANTED_SOLUTION_MARKER_7f3a = 'the answer'"
CELL_TIMEOUT_S = 300
# a tqdm bar's text ("  0%|    | 0/19") or transformers' loading bar
_BAR = re.compile(r"\d+%\|[^\n]*\|\s*\d+/\d+|Loading weights")


def _planted(nb):
    """A copy of ``nb`` with a solution pair (markdown and code, tagged) at the end."""
    import nbformat

    nb = copy.deepcopy(nb)
    md = nbformat.v4.new_markdown_cell(f"<details><summary><b>Solution</b></summary>\n\n"
                                       f"```python\n{PLANTED}\n```\n</details>")
    code = nbformat.v4.new_code_cell(f"# Solution\n{PLANTED}\nprint('solution ran')")
    for cell in (md, code):
        cell.metadata["tags"] = ["solution"]
    nb.cells += [md, code]
    return nb


def _figure_outputs(nb, *, with_solutions: bool) -> int:
    return sum(PLOTLY_MIME in o.get("data", {})
               for c in nb.cells if c.cell_type == "code"
               and (with_solutions or "solution" not in c.metadata.get("tags", []))
               for o in c.get("outputs", []))


@pytest.fixture(scope="module", params=NOTEBOOKS, ids=lambda p: p.name)
def executed(request, tmp_path_factory):
    """(name, executed notebook, student HTML, teacher HTML, folder) of one notebook."""
    pytest.importorskip("nbclient")
    pytest.importorskip("nbconvert")
    pytest.importorskip("ipykernel")
    import nbformat

    from workbench.notebook.handout import execute_notebook, export_html

    path = request.param
    tmp = tmp_path_factory.mktemp(path.stem)
    work = tmp / "cwd"
    work.mkdir()
    copy_path = work / path.name
    nbformat.write(_planted(nbformat.read(str(path), as_version=4)), str(copy_path))
    env = {"OMP_NUM_THREADS": "1", "IPYTHONDIR": str(tmp / "ipython"),
           "PYDEVD_DISABLE_FILE_VALIDATION": "1"}
    t0 = time.time()
    with pytest.MonkeyPatch.context() as mp:
        mp.delenv("WORKBENCH_AUDIT_RUN_DIR", raising=False)  # 04 writes its smoke run in work
        mp.delenv("WORKBENCH_SAFESTEER_RUN_DIR", raising=False)  # likewise 05
        mp.delenv("WORKBENCH_COMPARE_DIRS", raising=False)
        try:
            nb = execute_notebook(copy_path, model="tiny-random", timeout=CELL_TIMEOUT_S,
                                  cwd=work, env=env)
        except WorkbenchError as exc:
            pytest.fail(f"{path.name} failed on tiny-random:\n{exc}", pytrace=False)
    print(f"{path.name}: executed in {time.time() - t0:.1f} s")
    return (path.name, nb, export_html(nb), export_html(nb, with_solutions=True), tmp)


@pytest.mark.timeout(900)  # includes the fixture's execution of the notebook
def test_notebook_runs_without_errors(executed):
    name, nb, *_ = executed
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])
              if o.get("output_type") == "error"]
    assert not errors, f"{name}: error outputs"
    assert all(c.get("execution_count") for c in nb.cells if c.cell_type == "code"
               and c.source.strip())
    assert "widgets" not in nb.metadata  # no saved widget state: exports use the fallbacks


def test_no_stale_progress_bars_in_outputs(executed):
    name, nb, *_ = executed
    texts = []
    for c in nb.cells:
        for o in c.get("outputs", []) if c.cell_type == "code" else []:
            texts.append(o.get("text", ""))
            texts += [v for k, v in o.get("data", {}).items() if k == "text/plain"]
            if "application/vnd.jupyter.widget-view+json" in o.get("data", {}):
                assert "static snapshot" in o["data"].get("text/html", "") or \
                    "Steering" not in o["data"].get("text/plain", ""), f"{name}: bare widget"
    bars = [t for t in texts if _BAR.search(t)]
    assert not bars, f"{name}: progress bars left in the outputs: {bars[:2]}"


def test_every_figure_is_kept_with_plotlyjs_embedded_once(executed):
    name, nb, student, teacher, _ = executed
    n_student = _figure_outputs(nb, with_solutions=False)
    n_all = _figure_outputs(nb, with_solutions=True)
    # every figure output carries the HTML that nbconvert keeps
    assert all("text/html" in o["data"] for c in nb.cells if c.cell_type == "code"
               for o in c.get("outputs", []) if PLOTLY_MIME in o.get("data", {}))
    assert student.count("Plotly.newPlot(") == n_student, name
    assert teacher.count("Plotly.newPlot(") == n_all, name
    if n_all:
        assert student.count("window.PlotlyConfig") == 1, f"{name}: plotly.js not embedded once"
        assert len(re.findall(r"plotly\.js v\d", student)) == 1
    scripts = re.findall(r"<script[^>]*\bsrc=\"([^\"]+)\"", student)
    assert not [s for s in scripts if "plotly" in s or "plot.ly" in s or "unpkg" in s], scripts


def _page_text(page: str) -> str:
    """What a reader sees of a page's cells: tags stripped, entities decoded."""
    return html.unescape(re.sub(r"<[^>]+>", "", page))


def _solution_lines(nb) -> set[str]:
    """Code lines of the solution cells (code cells, and fenced code in markdown ones) that no
    other cell also contains (an exercise may quote a line as a hint)."""
    def lines(cell):
        src = cell.source.splitlines()
        if cell.cell_type == "markdown":
            fences = [i for i, line in enumerate(src) if line.strip().startswith("```")]
            src = [line for a, b in zip(fences[::2], fences[1::2]) for line in src[a + 1:b]]
        return {line.strip() for line in src if len(line.strip()) > 20}

    solution = [c for c in nb.cells if "solution" in c.metadata.get("tags", [])]
    others = "\n".join(c.source for c in nb.cells if c not in solution)
    return {line for c in solution for line in lines(c) if line not in others}


def test_student_page_has_no_solution_code(executed):
    name, nb, student, teacher, _ = executed
    assert "PLANTED_SOLUTION_MARKER_7f3a" not in student and "solution ran" not in student
    shown, full = _page_text(student), _page_text(teacher)
    lines = _solution_lines(nb)
    assert PLANTED in lines and all(line in full for line in lines)  # the check can fail
    if name.startswith("06_"):
        assert len(lines) > 10  # its three solutions, not only the planted one
    visible = [line for line in lines if line in shown]
    assert not visible, f"{name}: solution code visible in the handout: {visible[:3]}"


def test_each_widget_shows_its_snapshot(executed):
    """The steering explorer and the generations browser show a static copy in the page."""
    name, nb, student, *_ = executed
    widgets = sum(c.source.count("SteeringExplorer(") + c.source.count("GenerationsBrowser(")
                  for c in nb.cells
                  if c.cell_type == "code" and "solution" not in c.metadata.get("tags", []))
    assert student.count("static snapshot") == widgets, name
    assert "application/vnd.jupyter.widget-view+json" not in student  # no CDN widget script


def _chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome", "chrome"):
        found = shutil.which(name)
        if found:
            return found
    return None


# records console.error calls and uncaught errors into the DOM, which --dump-dom returns
_ERROR_HOOK = """<script>(function () {
  var seen = [];
  function show() {
    var el = document.getElementById("__console_errors");
    if (!el && document.body) {
      el = document.createElement("pre"); el.id = "__console_errors"; document.body.appendChild(el);
    }
    if (el) el.textContent = "CONSOLE_ERRORS=" + JSON.stringify(seen);
  }
  var original = console.error.bind(console);
  console.error = function () {
    seen.push(Array.prototype.map.call(arguments, String).join(" ")); show();
    return original.apply(null, arguments);
  };
  window.addEventListener("error", function (e) { seen.push("uncaught: " + e.message); show(); });
  window.addEventListener("unhandledrejection", function (e) {
    seen.push("unhandled rejection: " + e.reason); show(); });
  window.addEventListener("load", show);
})();</script>"""


def render_in_chromium(page: str, workdir: Path) -> tuple[str, list[str]]:
    """The DOM after headless Chromium, offline, ran ``page``; and the console errors."""
    chromium = _chromium()
    if chromium is None:
        pytest.skip("no Chromium on PATH (apt-get install -y chromium): the handout page is "
                    "not checked in a browser here")
    path = workdir / "page.html"
    path.write_text(page.replace("<head>", "<head>" + _ERROR_HOOK, 1), encoding="utf-8")
    cmd = [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--use-gl=angle",
           "--use-angle=swiftshader", "--enable-unsafe-swiftshader",
           "--disable-background-networking", "--disable-component-update", "--disable-sync",
           "--no-first-run", "--host-resolver-rules=MAP * ~NOTFOUND",  # offline, as in class
           f"--user-data-dir={workdir / 'chromium-profile'}", "--virtual-time-budget=15000",
           "--dump-dom", path.as_uri()]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    found = re.search(r"CONSOLE_ERRORS=(\[.*?\])</pre>", proc.stdout, re.S)
    assert found, f"the page did not load in Chromium:\n{proc.stderr[-2000:]}"
    return proc.stdout, json.loads(html.unescape(found.group(1)))


def test_console_check_catches_a_planted_error(tmp_path):
    page = ("<html><head><title>t</title></head><body><script>console.error('planted');"
            "undefined_function();</script></body></html>")
    _, errors = render_in_chromium(page, tmp_path)
    assert errors[0] == "planted" and "undefined_function" in errors[1]


def test_page_renders_offline_in_headless_chromium(executed):
    name, nb, student, _, tmp = executed
    dom, errors = render_in_chromium(student, tmp)
    assert not errors, f"{name}: console errors: {errors[:5]}"
    drawn = dom.count('class="plot-container plotly"')
    assert drawn == _figure_outputs(nb, with_solutions=False), f"{name}: figures not drawn"
    if drawn:
        assert "main-svg" in dom


# ------------------------------------------------------------------ the command's bad input


@pytest.mark.parametrize("argv, match", [
    (["handout", "no/such/notebook.ipynb"], "does not exist"),
    (["handout", "README.md"], "is not a notebook"),
    (["handout", "notebooks/01_tour.ipynb", "--out", "page.txt"], "must end in .html"),
    (["handout", "notebooks/01_tour.ipynb", "--out", "no/such/dir/p.html"], "does not exist"),
    (["handout", "notebooks/01_tour.ipynb", "--timeout", "0"], "timeout"),
])
def test_handout_bad_input_is_one_error_line(argv, match, tmp_path, monkeypatch, capsys):
    from workbench.cli import main

    root = NOTEBOOK_DIR.parent
    monkeypatch.chdir(root)
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and match in err[0], err


def test_handout_rejects_a_broken_notebook_file(tmp_path):
    from workbench.notebook.handout import read_notebook

    bad = tmp_path / "broken.ipynb"
    bad.write_text("{ not json")
    with pytest.raises(WorkbenchError, match="not a valid notebook"):
        read_notebook(bad)


def test_handout_command_writes_the_page(tmp_path):
    """End to end through the CLI on a three-cell notebook: one figure kept, the solution not."""
    pytest.importorskip("nbclient")
    pytest.importorskip("nbconvert")
    import nbformat

    nb = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_code_cell("import os\nimport plotly.graph_objects as go\n"
                                  "from workbench.figures.offline import use_offline_figures\n"
                                  "use_offline_figures()\n"
                                  "print(os.environ['WORKBENCH_NOTEBOOK_MODEL'])"),
        nbformat.v4.new_code_cell("go.Figure(go.Bar(x=[1, 2], y=[2, 1]))"),
        nbformat.v4.new_code_cell(PLANTED, metadata={"tags": ["solution"]})])
    src = tmp_path / "mini.ipynb"
    nbformat.write(nb, str(src))
    env = {**os.environ, "PYTHONPATH": str(NOTEBOOK_DIR.parent)}
    out = tmp_path / "mini.html"
    proc = subprocess.run([sys.executable, "-m", "workbench.cli", "handout", str(src),
                           "--out", str(out), "--model", "tiny-random"],
                          capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert f"wrote {out} (solutions removed" in proc.stdout
    page = out.read_text()
    assert page.count("Plotly.newPlot(") == 1 and "tiny-random" in page  # --model reached it
    assert "PLANTED_SOLUTION_MARKER_7f3a" not in page  # the teacher's copy: tests above


# ------------------------------------------------------------------ quiet notebook API


@pytest.mark.parametrize("name", ["load_model", "refusal_direction", "caa", "generate"])
def test_api_progress_is_off_by_default(name):
    import workbench as wb

    assert inspect.signature(getattr(wb, name)).parameters["progress"].default is False


def test_load_model_silences_library_bars_and_restores_them(monkeypatch):
    from transformers.utils import logging as hf_logging

    import workbench.api as api

    seen = []
    monkeypatch.setattr(api, "_load_model",
                        lambda *a, **k: seen.append(hf_logging.is_progress_bar_enabled()) or "m")
    was = hf_logging.is_progress_bar_enabled()
    try:
        for before in (True, False):
            (hf_logging.enable_progress_bar if before else hf_logging.disable_progress_bar)()
            assert api.load_model("tiny-random") == "m"
            assert hf_logging.is_progress_bar_enabled() is before  # no lasting change
            api.load_model("tiny-random", progress=True)
            assert hf_logging.is_progress_bar_enabled() is before
        assert seen == [False, True, False, True]
        with pytest.raises(RuntimeError):
            with api.library_progress(True):
                raise RuntimeError("restored even on error")
        assert hf_logging.is_progress_bar_enabled() is False
    finally:
        (hf_logging.enable_progress_bar if was else hf_logging.disable_progress_bar)()


def test_caa_prints_a_bar_only_when_asked(tiny, capsys):
    import workbench as wb

    wb.caa(tiny, "sycophancy", n_pairs=4, batch_size=1)
    assert capsys.readouterr().err == ""
    wb.caa(tiny, "sycophancy", n_pairs=4, batch_size=1, progress=True)
    assert "%|" in capsys.readouterr().err

"""Class handouts: run a notebook, then write it as one HTML page that works offline.

The page keeps every plotly figure, interactive, with plotly.js embedded once (the notebooks
choose plotly's offline renderer through :func:`workbench.figures.offline.use_offline_figures`),
shows the steering explorer as its static snapshot, and leaves out every cell tagged
``solution`` (input and output) unless the teacher's copy is asked for.

Execution uses nbclient with a throw-away kernelspec for the running interpreter, so the
notebook runs in the same environment as the workbench, whatever kernels Jupyter knows. The
plain-nbconvert equivalent is in notebooks/README.md.
"""

from __future__ import annotations

import json
import os
import re
import sys
import tempfile
from pathlib import Path

from workbench.errors import WorkbenchError

__all__ = ["SOLUTION_TAG", "execute_notebook", "export_html", "read_notebook", "write_handout"]

SOLUTION_TAG = "solution"
MODEL_ENV = "WORKBENCH_NOTEBOOK_MODEL"  # what every notebook's parameters cell reads
_KERNEL = "workbench-handout"
_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def _require(module: str):
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        raise WorkbenchError(f"handouts need {module}: run `pip install -e \".[notebooks]\"` "
                             "(nbclient, nbconvert, ipykernel)") from None


def read_notebook(path: str | os.PathLike):
    """The notebook at ``path`` (nbformat 4), or one WorkbenchError naming the problem."""
    p = Path(path)
    if p.suffix != ".ipynb":
        raise WorkbenchError(f"{p} is not a notebook; give a .ipynb file such as "
                             "notebooks/06_teaching_demo.ipynb")
    if not p.is_file():
        raise WorkbenchError(f"notebook {p} does not exist; check the path (the notebooks are "
                             "in notebooks/)")
    nbformat = _require("nbformat")
    try:
        return nbformat.read(str(p), as_version=4)
    except (json.JSONDecodeError, UnicodeDecodeError, nbformat.reader.NotJSONError) as exc:
        raise WorkbenchError(f"{p} is not a valid notebook file ({type(exc).__name__}); open "
                             "and save it in Jupyter, or restore it from git") from None


def _kernel_manager(root: Path):
    """An nbclient kernel manager for ``sys.executable``, its kernelspec under ``root``."""
    _require("ipykernel")
    from jupyter_client.kernelspec import KernelSpecManager
    from jupyter_client.manager import AsyncKernelManager

    spec = root / _KERNEL
    spec.mkdir(parents=True)
    (spec / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "workbench handout", "language": "python"}))
    return AsyncKernelManager(kernel_name=_KERNEL,
                              kernel_spec_manager=KernelSpecManager(kernel_dirs=[str(root)]))


def execute_notebook(path: str | os.PathLike, *, model: str | None = None,
                     timeout: float = 600, cwd: str | os.PathLike | None = None,
                     env: dict[str, str] | None = None):
    """Run every cell of the notebook at ``path`` in a fresh kernel; the executed notebook.

    ``model``: the model spec the notebook's parameters cell reads (``WORKBENCH_NOTEBOOK_MODEL``;
    None keeps the notebook's default). ``timeout``: seconds per cell. ``cwd``: the working
    directory (default the notebook's folder, as in Jupyter). A failing cell raises one
    WorkbenchError with its traceback.
    """
    nb = read_notebook(path)
    if timeout <= 0:
        raise WorkbenchError(f"timeout is {timeout}; give the seconds a cell may run (> 0)")
    nbclient = _require("nbclient")
    from nbclient.exceptions import CellExecutionError, CellTimeoutError

    work = Path(cwd) if cwd is not None else Path(path).resolve().parent
    run_env = {**os.environ, **(env or {})}
    if model is not None:
        run_env[MODEL_ENV] = model
    with tempfile.TemporaryDirectory(prefix="workbench-handout-") as tmp:
        run_env.setdefault("JUPYTER_RUNTIME_DIR", str(Path(tmp) / "runtime"))
        client = nbclient.NotebookClient(
            nb, km=_kernel_manager(Path(tmp) / "kernels"), timeout=timeout,
            kernel_name=_KERNEL, resources={"metadata": {"path": str(work)}},
            # no saved widget state: an export then shows each widget's own HTML fallback
            # (the explorer's snapshot) instead of a widget view that needs a CDN script
            store_widget_state=False)
        try:
            client.execute(env=run_env, cwd=str(work))
        except CellTimeoutError:
            raise WorkbenchError(f"{Path(path).name}: a cell ran longer than {timeout:g} s; "
                                 "pass a larger --timeout or a smaller --model") from None
        except CellExecutionError as exc:
            detail = _ANSI.sub("", str(exc)).strip()
            raise WorkbenchError(f"{Path(path).name}: a cell failed; fix it in Jupyter and "
                                 f"run again:\n{detail}") from None
    return nb


def _exporter(with_solutions: bool):
    nbconvert = _require("nbconvert")
    from traitlets.config import Config

    c = Config()
    c.TagRemovePreprocessor.enabled = True
    c.TagRemovePreprocessor.remove_cell_tags = set() if with_solutions else {SOLUTION_TAG}
    return nbconvert.HTMLExporter(config=c)  # JupyterLab's look ("lab" template)


def export_html(nb, *, with_solutions: bool = False) -> str:
    """The HTML page of an (executed) notebook: cells tagged ``solution`` removed, input and
    output, unless ``with_solutions`` (the teacher's copy)."""
    body, _ = _exporter(with_solutions).from_notebook_node(nb)
    return body


def write_handout(path: str | os.PathLike, out: str | os.PathLike | None = None, *,
                  model: str | None = None, with_solutions: bool = False,
                  timeout: float = 600, cwd: str | os.PathLike | None = None) -> Path:
    """Execute the notebook at ``path`` and write its handout page to ``out`` (default: the
    notebook's name with ``.html``, in the current directory). Returns the written path."""
    target = Path(out) if out is not None else Path(Path(path).with_suffix(".html").name)
    if target.suffix.lower() not in (".html", ".htm"):
        raise WorkbenchError(f"--out {target} must end in .html")
    if target.is_dir():
        raise WorkbenchError(f"--out {target} is a directory; give a file name such as "
                             "handout.html")
    read_notebook(path)  # bad input fails before the kernel starts
    if not target.parent.exists():
        raise WorkbenchError(f"folder {target.parent} of --out does not exist; create it first")
    page = export_html(execute_notebook(path, model=model, timeout=timeout, cwd=cwd),
                       with_solutions=with_solutions)
    tmp = target.with_name(f".{target.name}.tmp")
    tmp.write_text(page, encoding="utf-8")
    os.replace(tmp, target)
    return target

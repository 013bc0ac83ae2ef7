"""``workbench handout NOTEBOOK``: execute a notebook and write the student HTML page.

The work is in :mod:`workbench.notebook.handout`; this job only passes the options on.
"""

from __future__ import annotations

from pathlib import Path

from workbench.notebook.handout import write_handout

__all__ = ["run_handout"]


def run_handout(notebook: str, out: str | None = None, *, model: str | None = None,
                with_solutions: bool = False, timeout: float = 600) -> Path:
    """Execute ``notebook`` (on ``model``, if given) and write its handout; the page's path."""
    return write_handout(notebook, out, model=model, with_solutions=with_solutions,
                         timeout=timeout)

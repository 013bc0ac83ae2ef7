"""Time one notebook executed top to bottom (nbclient, as `jupyter execute` does), for the
README's notebook timings.

    python benchmarks/bench_notebook.py notebooks/06_teaching_demo.ipynb
    python benchmarks/bench_notebook.py notebooks/06_teaching_demo.ipynb --model tiny-random

writes ``benchmarks/results/notebook_<name>_<model>.json``: the wall seconds of the execution
(kernel start included), the model (``WORKBENCH_NOTEBOOK_MODEL``, else the notebook's default,
the 0.5B teaching model) and the dtype it ran in (read from the notebook's ``model`` after
the run), the machine, the load at start, the date, the commit and the command. The executed
copy goes to a temporary directory; the committed notebook is not touched.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEFAULT_MODEL = "qwen2.5-coder-0.5b-instruct"  # the notebooks' default (their first cell)
# run after the notebook, in its kernel: the dtype its model ran in (None: no `model`)
PROBE = ("import json as _j; _m = globals().get('model'); "
         "print('BENCH_DTYPE=' + _j.dumps(str(_m.dtype).removeprefix('torch.') "
         "if _m is not None and hasattr(_m, 'dtype') else None))")


def run_notebook(path: Path, model: str, timeout: int) -> tuple[float, str | None]:
    """Execute ``path`` with ``WORKBENCH_NOTEBOOK_MODEL=model``: (seconds, dtype its model used)."""
    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.read(path, as_version=4)
    # the probe runs last in the same kernel (a fresh kernel would have no `model`); it
    # takes milliseconds, so the timing includes it
    nb.cells.append(nbformat.v4.new_code_cell(PROBE))
    os.environ["WORKBENCH_NOTEBOOK_MODEL"] = model
    client = NotebookClient(nb, timeout=timeout, kernel_name="python3",
                            resources={"metadata": {"path": str(path.parent)}})
    t = time.perf_counter()
    client.execute()
    seconds = time.perf_counter() - t
    text = "".join(o.get("text", "") for o in nb.cells[-1].outputs)
    dtype = json.loads(text.split("BENCH_DTYPE=", 1)[1].strip()) if "BENCH_DTYPE=" in text else None
    return seconds, dtype


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("notebook", type=Path)
    p.add_argument("--model", default=os.environ.get("WORKBENCH_NOTEBOOK_MODEL", DEFAULT_MODEL))
    p.add_argument("--timeout", type=int, default=3600, help="seconds allowed per cell")
    args = p.parse_args(argv)
    if not args.notebook.is_file():
        p.error(f"no notebook at {args.notebook}")
    from timed_job import _commit
    from workbench.model.precision import machine_record

    load = os.getloadavg()[0]
    seconds, dtype = run_notebook(args.notebook.resolve(), args.model, args.timeout)
    record = {"benchmark": "notebook", "notebook": args.notebook.name, "model": args.model,
              "dtype": dtype, "seconds": round(seconds, 1), "load_avg_1m_at_start": load,
              "machine": machine_record(),
              "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
              "commit": _commit(),
              "command": f"python benchmarks/bench_notebook.py {args.notebook} --model {args.model}"}
    path = (REPO / "benchmarks" / "results"
            / f"notebook_{args.notebook.stem}_{args.model}.json")
    path.write_text(json.dumps(record, indent=2) + "\n")
    print(f"wrote {path.relative_to(REPO)}: {record['seconds']} s, {dtype}", file=sys.stderr)


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    main()

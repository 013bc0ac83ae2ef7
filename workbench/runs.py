"""Run directories: atomic writes, so an interrupted run never leaves a half-written file."""

from __future__ import annotations

import csv
import io
import json
import os
import platform
import tempfile
from importlib import metadata
from pathlib import Path
from typing import Iterable, Sequence

import torch
from safetensors.torch import save_file


def _atomic_write_bytes(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    os.chmod(tmp, 0o644)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_text(path: Path, text: str) -> None:
    _atomic_write_bytes(Path(path), text.encode())


def read_json(path: Path) -> dict:
    """A JSON object from ``path``; an unreadable, truncated or malformed file is reported."""
    from workbench.errors import WorkbenchError

    path = Path(path)
    try:
        obj = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise WorkbenchError(f"{path} does not exist; check the run directory") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise WorkbenchError(f"{path} cannot be read ({type(exc).__name__}: "
                             f"{' '.join(str(exc).split())[:120]}); restore it, or re-run the "
                             "job into a new --out") from None
    if not isinstance(obj, dict):
        raise WorkbenchError(f"{path} holds a JSON {type(obj).__name__}, not an object; restore "
                             "it, or re-run the job into a new --out")
    return obj


def write_json(path: Path, obj) -> None:
    _atomic_write_bytes(Path(path), (json.dumps(obj, indent=2, default=str) + "\n").encode())


def write_csv(path: Path, rows: Iterable[dict], fieldnames: list[str],
              comments: Sequence[str] = ()) -> None:
    """Write rows atomically; ``comments`` go first as ``# ...`` lines (read them back with
    ``pandas.read_csv(path, comment="#")``)."""
    buf = io.StringIO()
    buf.writelines(f"# {c}\n" for c in comments)
    writer = csv.DictWriter(buf, fieldnames=fieldnames, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    _atomic_write_bytes(Path(path), buf.getvalue().encode())


def write_tensors(path: Path, tensors: dict[str, torch.Tensor], metadata: dict | None = None,
                  dtype: torch.dtype | None = torch.float32) -> None:
    """Save contiguous CPU tensors (cast to ``dtype``; None keeps theirs) to safetensors, atomically.

    Metadata values are written as strings (safetensors headers hold strings only).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    os.close(fd)
    os.chmod(tmp, 0o644)
    try:
        save_file({k: (v.detach() if dtype is None else v.detach().to(dtype)).contiguous().cpu()
                   for k, v in tensors.items()}, tmp,
                  metadata={k: str(v) for k, v in (metadata or {}).items()})
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def package_versions() -> dict[str, str]:
    """Versions of the packages that determine results, plus Python and the platform."""
    out = {"python": platform.python_version(), "platform": platform.platform()}
    for name in ("steering-workbench", "torch", "transformers", "transformer-lens", "numpy",
                 "safetensors", "gguf", "scikit-learn", "scipy"):
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out

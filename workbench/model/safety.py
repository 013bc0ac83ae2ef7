"""Safe loading: weights only from safetensors (or GGUF), remote code only when asked for.

A PyTorch ``.bin`` / ``.pt`` checkpoint is a pickle, which runs arbitrary code when loaded, and
a model with an ``auto_map`` in its config runs Python shipped with it. The workbench loads
neither unless the user says so: pickles never, remote code only with ``--trust-remote-code``
(recorded in run.json).
"""

from __future__ import annotations

import json
from pathlib import Path

from workbench.errors import WorkbenchError

PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl", ".pickle")


def check_local_weights(path: str | Path) -> None:
    """Refuse a local model directory whose weights are pickle checkpoints only."""
    path = Path(path)
    if any(path.glob("*.safetensors")) or any(path.glob("*.gguf")):
        return
    pickles = sorted(p.name for p in path.iterdir() if p.suffix in PICKLE_SUFFIXES)
    if pickles:
        raise WorkbenchError(
            f"{path} holds pickle weights ({pickles[0]}), which can run arbitrary code when "
            "loaded; convert them to safetensors once in a trusted environment "
            "(model.save_pretrained(dir, safe_serialization=True)) and load that directory")
    raise WorkbenchError(f"{path} has no *.safetensors weights; give a model directory saved "
                         "with save_pretrained")


def needs_remote_code(path: str | Path) -> bool:
    """Whether a local model directory's config asks for code shipped with the model."""
    config = Path(path) / "config.json"
    if not config.is_file():
        return False
    try:
        return bool(json.loads(config.read_text(encoding="utf-8")).get("auto_map"))
    except (json.JSONDecodeError, UnicodeDecodeError):
        return False


def pretrained_kwargs(source: str, trust_remote_code: bool = False) -> dict:
    """Keyword arguments for ``from_pretrained`` that load safely; checks a local directory.

    Raises WorkbenchError for pickle-only weights, or for remote code without the flag.
    """
    if Path(source).is_dir():
        check_local_weights(source)
        if needs_remote_code(source) and not trust_remote_code:
            raise WorkbenchError(remote_code_message(source))
    return {"use_safetensors": True, "trust_remote_code": trust_remote_code}


def remote_code_message(source: str) -> str:
    return (f"{source} needs code shipped with the model (auto_map in its config), which would "
            "run on this machine; read that code, then pass --trust-remote-code "
            "(trust_remote_code=True in Python) to allow it")

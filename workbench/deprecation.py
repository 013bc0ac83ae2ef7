"""Names that moved keep working for one release: a module ``__getattr__`` that serves each old
name from its new home with a ``DeprecationWarning`` naming where it went."""

from __future__ import annotations

import importlib
import warnings
from typing import Any, Callable


def moved_names(module: str, moves: dict[str, str]) -> Callable[[str], Any]:
    """``__getattr__`` for ``module``: ``moves`` maps each old name to ``"new.module:new_name"``
    (the new module is imported on first use, so a shim costs nothing until it is used)."""

    def __getattr__(name: str) -> Any:
        if name not in moves:
            raise AttributeError(f"module {module!r} has no attribute {name!r}")
        target, _, new = moves[name].partition(":")
        new = new or name
        shown = new if target == module else f"{target}.{new}"
        warnings.warn(f"{module}.{name} is deprecated; use {shown}", DeprecationWarning,
                      stacklevel=2)
        return getattr(importlib.import_module(target), new)

    return __getattr__

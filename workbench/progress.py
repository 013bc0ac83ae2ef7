"""One progress display per job: the stage (k of n), its own bar, and an ETA for the whole job.

On a terminal each stage shows a tqdm bar whose description names the stage and whose
postfix carries the job's ETA. Elsewhere (CI, nohup, a pipe) carriage-return bars would be
noise, so stage starts, ends and occasional updates are printed as plain lines with a
timestamp and the elapsed time; inside ``with job:`` a heartbeat thread adds a "still
running" line whenever nothing was printed for ``line_interval`` (20 s), so a long library
call never leaves the log silent. ``enabled=False`` (``--quiet``) prints nothing.

The job ETA weighs stages by their expected work (``weights``, from the job's config) and
rescales the rest by the pace measured so far (:func:`job_eta`).

Usage::

    job = JobProgress("audit", ["read inputs", "load model", ...], enabled=cfg.progress,
                      weights={"generation": 540.0, ...}, fixed=["load model"])
    with job:
        job.stage("load model")          # ends the previous stage, starts this one
        for cond in job.bar(conditions, unit="cond"):
            ...
        job.reused("generation", "all 1,200 generations")   # resumed: nothing to do
        job.done()

``stage`` also works as a context manager (``with job.stage("x"):``).
"""

from __future__ import annotations

import sys
import threading
import time
from math import sqrt
from typing import Callable, Iterable, Iterator, Sequence, TextIO

from workbench.errors import WorkbenchError


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


def job_eta(weights: dict[str, float], finished: dict[str, float],
            current: tuple[str, float, float] | None, future: Iterable[str],
            fixed: Iterable[str] = ()) -> float | None:
    """Seconds left for a job, from each stage's expected work and the time measured so far.

    ``weights``: expected work per stage, in seconds on a reference machine; ``finished``: the
    measured seconds of each finished stage; ``current``: (stage, fraction done, seconds in
    it); ``future``: the stages still to run. The seconds per unit of expected work measured
    on the finished (and partly done) stages rescale the remaining work, so a machine twice as
    fast as the reference sees half the estimate once the first stage has run; ``fixed``
    stages (e.g. a model load) neither rescale nor are rescaled. Within the running stage the
    estimate moves from that rate to the stage's own pace (weighted by the square root of
    its fraction done). None until
    some stage has finished or reported progress.
    """
    fixed = set(fixed)
    done_w = sum(weights.get(s, 0.0) for s in finished if s not in fixed)
    done_t = sum(t for s, t in finished.items() if s not in fixed)
    name, frac, t_cur = current if current else (None, 0.0, 0.0)
    w_cur = weights.get(name, 0.0) if name else 0.0
    if name and name not in fixed and frac > 0:
        done_w, done_t = done_w + frac * w_cur, done_t + t_cur
    rate = done_t / done_w if done_w > 0 and done_t > 0 else 1.0
    left = sum(weights.get(s, 0.0) * (1.0 if s in fixed else rate) for s in future)
    if name in fixed:
        left += max(w_cur - t_cur, 0.0)
    elif name and frac > 0:
        own = sqrt(frac)  # trust the stage's own pace more as it gets further
        left += own * t_cur * (1 - frac) / frac + (1 - own) * (1 - frac) * w_cur * rate
    elif name:
        left += max(w_cur * rate - t_cur, 0.0)
    measured = bool(finished) or (name is not None and frac > 0)
    return left if measured and sum(weights.values()) > 0 else None


def _done_shares(sizes: Sequence[float] | None) -> Callable[[int], float]:
    """The share of the work done once items ``0..n`` are done, from each item's size."""
    if not sizes:
        return lambda n: 0.0
    total = float(sum(sizes)) or 1.0
    cum, acc = [], 0.0
    for x in sizes:
        acc += float(x)
        cum.append(acc / total)
    return lambda n: cum[min(n, len(cum) - 1)]


class JobProgress:
    """Stage-by-stage progress of one job, with a whole-job ETA weighted by expected work.

    ``weights`` gives each stage's expected work in reference seconds (a job computes them
    from its config, e.g. :func:`workbench.jobs.audit.audit_work`); ``fixed`` names stages
    whose time does not scale with the machine's speed (model load). The ETA rescales the
    remaining work by the seconds per unit of work measured so far (:func:`job_eta`).
    ``clock`` is injectable for tests. ``with job:`` runs a heartbeat that prints a "still
    running" line whenever nothing was printed for ``line_interval`` seconds (e.g. inside one
    long library call), and always stops on exit.
    """

    def __init__(self, job: str, stages: Sequence[str], *, enabled: bool = True,
                 stream: TextIO | None = None, tty: bool | None = None,
                 weights: dict[str, float] | None = None, fixed: Iterable[str] = (),
                 line_interval: float = 15.0, clock: Callable[[], float] = time.monotonic):
        self.job, self.stages = job, list(stages)
        self.enabled = enabled
        self.stream = stream or sys.stderr
        self.tty = bool(self.stream.isatty()) if tty is None else tty
        self.weights = {s: 1.0 for s in self.stages}
        self.reused_stages: set[str] = set()
        self._lock = threading.RLock()  # the heartbeat thread reads what stages change
        self.fixed = set(fixed)
        self.set_weights(weights or {})
        self.line_interval = line_interval
        self.clock = clock
        self.t0 = clock()
        self.current: str | None = None
        self.stage_t0 = self.t0
        self.fraction = 0.0  # of the current stage
        self.count = ""  # the current stage's last "done/total unit", for the heartbeat
        self.finished: dict[str, float] = {}  # stage -> measured seconds (reused: 0)
        self.done_weight = 0.0
        self._last_line = self.t0
        self._beat: tuple[threading.Thread, threading.Event] | None = None
        if enabled:
            quiet_library_bars()

    def set_weights(self, weights: dict[str, float]) -> None:
        """Replace some stages' expected work (e.g. once the model's size is known)."""
        bad = {n: w for n, w in weights.items() if w < 0}
        if bad:
            name, w = next(iter(bad.items()))
            raise WorkbenchError(f"stage {name!r} has negative expected work {w}; "
                                 "give 0 or more")
        with self._lock:
            self.weights.update({n: float(w) for n, w in weights.items()
                                 if n not in self.reused_stages})  # reused: no work

    # ------------------------------------------------------------------ heartbeat

    def __enter__(self) -> "JobProgress":
        if self.enabled and self._beat is None:
            stop = threading.Event()
            thread = threading.Thread(target=self._heartbeat, args=(stop,), daemon=True,
                                      name=f"{self.job}-progress")
            self._beat = (thread, stop)
            thread.start()
        return self

    def __exit__(self, *exc) -> None:
        if self._beat is not None:
            thread, stop = self._beat
            stop.set()
            thread.join()
            self._beat = None

    def _heartbeat(self, stop: threading.Event) -> None:
        poll = max(min(self.line_interval / 4, 1.0), 0.01)
        while not stop.wait(poll):
            with self._lock:
                if (self.current is not None
                        and self.clock() - self._last_line >= self.line_interval):
                    done = f"{self.count}, " if self.count else ""
                    self._line(f"{self._label()} still running "
                               f"({done}{_clock(self.clock() - self.stage_t0)} in this stage)")

    # ------------------------------------------------------------------ reporting

    @property
    def inner_bars(self) -> bool:
        """Whether library functions may show their own tqdm bars (terminal, not quiet)."""
        return self.enabled and self.tty

    def eta(self) -> float | None:
        """Seconds left for the whole job (:func:`job_eta`)."""
        now = self.clock()
        current = (self.current, self.fraction, now - self.stage_t0) if self.current else None
        future = [s for s in self.stages if s not in self.finished and s != self.current]
        return job_eta(self.weights, self.finished, current, future, self.fixed)

    def _line(self, text: str) -> None:
        if not self.enabled:
            return
        with self._lock:
            eta = self.eta()
            tail = f", job ETA {_clock(eta)}" if eta is not None else ""
            stamp = time.strftime("%H:%M:%S")
            self._emit(f"{stamp} [{self.job} {text}] elapsed "
                       f"{_clock(self.clock() - self.t0)}{tail}")

    def _emit(self, msg: str) -> None:
        """Print one line (above any tqdm bar on a terminal) and note when."""
        with self._lock:
            if self.tty:
                from tqdm.auto import tqdm

                tqdm.write(msg, file=self.stream)
            else:
                print(msg, file=self.stream, flush=True)
            self._last_line = self.clock()

    def note(self, text: str) -> None:
        """Print one line about the job (e.g. what a resumed run reused)."""
        if not self.enabled:
            return
        self._emit(f"{time.strftime('%H:%M:%S')} [{self.job}] {text}")

    def step(self, done: int, total: int | None = None, unit: str = "it",
             part: tuple[float, float] = (0.0, 1.0)) -> None:
        """Report ``done`` of ``total`` items of the running stage, for loops that run inside
        library code (e.g. a callback per scored candidate): it moves the job ETA and, off a
        terminal, prints a line at most every ``line_interval`` seconds. ``part`` is the share
        of the stage these items cover (a stage of two passes reports each in its part)."""
        share = min(done / total, 1.0) if total else 0.0
        self.count = f"{done}/{total if total else '?'} {unit}"
        self.fraction = part[0] + (part[1] - part[0]) * share
        if (self.enabled and not self.tty
                and self.clock() - self._last_line >= self.line_interval):
            self._line(f"{self._label()} {done}/{total if total else '?'} {unit}")

    def _label(self) -> str:
        k = self.stages.index(self.current) + 1 if self.current in self.stages else "?"
        return f"{k}/{len(self.stages)} {self.current}"

    # ------------------------------------------------------------------ stages

    def _end_stage(self) -> None:
        with self._lock:
            if self.current is None:
                return
            took = self.clock() - self.stage_t0
            self.done_weight += self.weights.get(self.current, 0.0)
            self.fraction = 0.0
            self.finished[self.current] = took
            self._line(f"{self._label()} done in {_clock(took)}")
            self.current = None

    def stage(self, name: str) -> "_StageContext":
        """End the running stage and start ``name``; usable as a context manager too."""
        with self._lock:
            self._end_stage()
            if name not in self.stages:
                self.stages.append(name)
                self.weights.setdefault(name, 1.0)
            self.current, self.stage_t0 = name, self.clock()
            self.count = ""
            self._line(self._label())
        return _StageContext(self)

    def reused(self, name: str, what: str = "") -> None:
        """Mark stage ``name`` as reused from an earlier run: it shows in the timeline as
        "reused" and takes no time in the ETA."""
        with self._lock:
            self._end_stage()
            if name not in self.stages:
                self.stages.append(name)
            self.weights[name] = 0.0
            self.reused_stages.add(name)
            self.finished[name] = 0.0
            self.current = name
            self._line(f"{self._label()} reused" + (f" ({what})" if what else ""))
            self.current = None

    def done(self) -> None:
        """End the last stage and print the total time."""
        self._end_stage()
        if self.enabled:
            self._emit(f"{time.strftime('%H:%M:%S')} [{self.job}] finished in "
                       f"{_clock(self.clock() - self.t0)}")

    # ------------------------------------------------------------------ bars

    def bar(self, iterable: Iterable, *, total: int | None = None, unit: str = "it",
            desc: str | None = None, sizes: Sequence[float] | None = None) -> Iterator:
        """Iterate ``iterable`` with the stage's bar: tqdm on a terminal, lines elsewhere.

        ``sizes``: each item's work, for an executor that yields items already done (e.g.
        generation batches of unequal size): the stage's fraction then counts the work
        finished, item ``n`` included, instead of the number of items started.
        """
        items = iterable
        if total is None:
            try:
                total = len(iterable)  # type: ignore[arg-type]
            except TypeError:
                total = None
        if not self.enabled:
            yield from items
            return
        done_share = _done_shares(sizes)
        if self.tty:
            from tqdm.auto import tqdm

            bar = tqdm(items, total=total, unit=unit, file=self.stream, leave=False,
                       desc=f"[{self.job} {self._label()}]" + (f" {desc}" if desc else ""))
            for n, item in enumerate(bar):
                self.fraction = done_share(n) if sizes else (n / total if total else 0.0)
                self.count = f"{n + 1 if sizes else n}/{total if total else '?'} {unit}"
                eta = self.eta()
                if eta is not None:
                    bar.set_postfix_str(f"job ETA {_clock(eta)}", refresh=False)
                yield item
            bar.close()
            return
        for n, item in enumerate(items):
            self.fraction = done_share(n) if sizes else (n / total if total else 0.0)
            self.count = f"{n + 1 if sizes else n}/{total if total else '?'} {unit}"
            if self.clock() - self._last_line >= self.line_interval:
                self._line(f"{self._label()} {self.count}")
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

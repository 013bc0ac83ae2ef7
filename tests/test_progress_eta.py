"""The job ETA (weighted by expected work), the heartbeat, resume lines and the log checker."""

from __future__ import annotations

import io
import runpy
import threading
import time
from pathlib import Path

import pytest

from workbench.errors import WorkbenchError
from workbench.progress import JobProgress, job_eta

ROOT = Path(__file__).resolve().parents[1]
progress_log = runpy.run_path(str(ROOT / "benchmarks" / "progress_log.py"))


# ---------------------------------------------------------------- job_eta, the pure function

def test_eta_rescales_the_remaining_work_by_the_measured_pace():
    w = {"a": 10.0, "b": 30.0, "c": 60.0}
    # a took twice its estimate: the rest is expected to as well
    assert job_eta(w, {"a": 20.0}, None, ["b", "c"]) == pytest.approx(180.0)
    # halfway through b at the same pace: its own half, then c
    own = 0.5 ** 0.5  # halfway: the stage's own pace counts for sqrt(1/2)
    assert job_eta(w, {"a": 20.0}, ("b", 0.5, 30.0), ["c"]) == pytest.approx(
        own * 30 + (1 - own) * 0.5 * 30 * 2 + 60 * 2)
    # a stage running slower than the rest: its own pace takes over as it goes
    slow = job_eta(w, {"a": 10.0}, ("b", 0.9, 270.0), ["c"])
    rate = (10 + 270) / (10 + 0.9 * 30)  # seconds per unit of work measured so far
    assert slow == pytest.approx(0.9 ** 0.5 * 30 + (1 - 0.9 ** 0.5) * 0.1 * 30 * rate
                                 + 60 * rate)
    assert job_eta(w, {}, ("a", 0.0, 0.0), ["b", "c"]) is None  # nothing measured yet


def test_fixed_stages_neither_rescale_nor_are_rescaled():
    w = {"load": 5.0, "gen": 100.0, "figures": 10.0}
    # a 90 s model conversion says nothing about generation's pace
    eta = job_eta(w, {"load": 90.0}, ("gen", 0.5, 25.0), ["figures"], fixed=["load", "figures"])
    own = 0.5 ** 0.5
    assert eta == pytest.approx(own * 25 + (1 - own) * 0.5 * 100 * 0.5 + 10)


def test_negative_expected_work_is_refused():
    with pytest.raises(WorkbenchError, match="negative expected work"):
        JobProgress("demo", ["a"], weights={"a": -1})


# ---------------------------------------------------------------- heartbeat

def test_heartbeat_prints_while_a_long_call_runs_and_stops_on_exit():
    buf = io.StringIO()
    job = JobProgress("demo", ["slow"], stream=buf, tty=False, line_interval=0.05)
    with job:
        job.stage("slow")
        time.sleep(0.4)  # one long library call: no bar, no step
    beats = buf.getvalue().count("still running")
    assert beats >= 3, buf.getvalue()
    assert not any(t.name == "demo-progress" for t in threading.enumerate())
    time.sleep(0.2)
    assert buf.getvalue().count("still running") == beats  # nothing after exit


def test_sized_bar_counts_the_work_done_and_the_heartbeat_names_it():
    """Generation batches differ in size: the stage's fraction follows their work (an item
    is done when the executor yields it), and the heartbeat says how many are done."""
    buf = io.StringIO()
    job = JobProgress("demo", ["gen"], stream=buf, tty=False, line_interval=0.05)
    seen = []
    with job:
        job.stage("gen")
        for item in job.bar(["big", "small", "small"], unit="batch", sizes=[8, 1, 1]):
            seen.append(job.fraction)
            if item == "big":
                time.sleep(0.2)  # the heartbeat fires while the consumer works
    assert seen == pytest.approx([0.8, 0.9, 1.0])
    assert "still running (1/3 batch, " in buf.getvalue(), buf.getvalue()
    # without sizes the count is of items started, as before
    plain = JobProgress("demo", ["gen"], stream=io.StringIO(), tty=False)
    plain.stage("gen")
    assert [plain.fraction for _ in plain.bar(range(4))] == [0, 0.25, 0.5, 0.75]


def test_heartbeat_stops_when_the_job_fails():
    job = JobProgress("demo", ["x"], stream=io.StringIO(), tty=False, line_interval=0.01)
    with pytest.raises(RuntimeError):
        with job:
            job.stage("x")
            raise RuntimeError("boom")
    assert job._beat is None
    assert not any(t.name == "demo-progress" for t in threading.enumerate())


def test_quiet_job_starts_no_heartbeat():
    buf = io.StringIO()
    with JobProgress("demo", ["x"], stream=buf, tty=False, enabled=False,
                     line_interval=0.01) as job:
        job.stage("x")
        time.sleep(0.05)
        assert not any(t.name == "demo-progress" for t in threading.enumerate())
    assert buf.getvalue() == ""


def test_reused_stages_show_in_the_timeline_and_weigh_nothing():
    buf = io.StringIO()
    job = JobProgress("demo", ["a", "b", "c"], stream=buf, tty=False, line_interval=0.0,
                      weights={"a": 5, "b": 50, "c": 5})
    job.reused("a", "from checkpoint")
    job.set_weights({"a": 99})  # a later estimate does not bring a reused stage back
    assert job.weights["a"] == 0.0
    job.stage("b")
    job.done()
    assert "[demo 1/3 a reused (from checkpoint)]" in buf.getvalue()


# ---------------------------------------------------------------- the log checker

def _log(lines: list[tuple[int, str, int | None]], total: int) -> str:
    """A synthetic non-tty log: (elapsed s, label, job ETA s or None), then 'finished in'."""
    clock = lambda s: f"{s // 60}:{s % 60:02d}"  # noqa: E731
    stamp = lambda s: f"12:{s // 60:02d}:{s % 60:02d}"  # noqa: E731
    out = ["audit: preset quick, ..."]
    for el, label, eta in lines:
        tail = f", job ETA {clock(eta)}" if eta is not None else ""
        out.append(f"{stamp(el)} [audit {label}] elapsed {clock(el)}{tail}")
    out.append(f"{stamp(total)} [audit] finished in {clock(total)}")
    return "\n".join(out) + "\n"


def test_progress_log_passes_a_steady_log_and_fails_a_stalled_or_swinging_one(tmp_path):
    total = 400
    steady = [(t, "7/10 generation", int((total - t) * 1.2)) for t in range(0, total, 15)]
    good = tmp_path / "good.log"
    good.write_text(_log(steady, total))
    assert progress_log["main"]([str(good)]) == 0

    swinging = [(t, "7/10 generation", (total - t) * (3 if t > 200 else 1))
                for t in range(0, total, 15)]
    bad = tmp_path / "swing.log"
    bad.write_text(_log(swinging, total))
    assert progress_log["main"]([str(bad)]) == 1
    res = progress_log["check_log"](bad.read_text())
    assert res["max_ratio"] == pytest.approx(3.0) and res["bad"]

    stalled = [(t, "3/10 refusal candidates", total - t) for t in (0, 10, 60, 70)]
    stall = tmp_path / "stall.log"
    stall.write_text(_log(stalled + steady[5:], total))
    assert progress_log["check_log"](stall.read_text())["largest_gap_s"] == 50
    assert progress_log["main"]([str(stall)]) == 1

    unfinished = tmp_path / "cut.log"
    unfinished.write_text(_log(steady, total).rsplit("\n", 2)[0])
    assert progress_log["main"]([str(unfinished)]) == 2


# ---------------------------------------------------------------- the smoke audit, synthetic time

class SyntheticJob(JobProgress):
    """A JobProgress whose clock moves only with the work: each stage takes its expected work
    (the job's own weights) times its factor, spread over its bar or step progress."""

    factors: dict[str, float] = {}

    def __init__(self, *args, **kwargs):
        self.now = 0.0
        kwargs.update(clock=lambda: self.now, line_interval=1.0)
        super().__init__(*args, **kwargs)
        self.stage_done = 0.0

    def _advance(self, fraction: float) -> None:
        if self.current is None:
            return
        want = self.weights.get(self.current, 0.0) * self.factors.get(self.current, 1.0)
        target = self.stage_t0 + want * fraction
        self.now = max(self.now, target)

    def stage(self, name):
        self._advance(1.0)
        return super().stage(name)

    def reused(self, name, what=""):
        self._advance(1.0)
        super().reused(name, what)

    def step(self, done, total=None, unit="it", part=(0.0, 1.0)):
        share = min(done / total, 1.0) if total else 0.0
        self._advance(part[0] + (part[1] - part[0]) * share)
        super().step(done, total, unit, part)

    def bar(self, iterable, *, total=None, unit="it", desc=None, sizes=None):
        items = list(iterable)
        if sizes:  # an executor's items: the work on item n is done before it is yielded
            done = [sum(sizes[:n + 1]) / sum(sizes) for n in range(len(items))]

            def executed():
                for n, item in enumerate(items):
                    self._advance(done[n])
                    yield item

            yield from super().bar(executed(), total=len(items), unit=unit, desc=desc,
                                   sizes=sizes)
            return
        for n, item in enumerate(super().bar(items, total=len(items), unit=unit, desc=desc)):
            yield item
            self._advance((n + 1) / len(items))  # the consumer's work on item n took this

    def done(self):
        self._advance(1.0)
        super().done()


@pytest.fixture(scope="module")
def synthetic_run(tmp_path_factory):
    """A smoke audit whose generation runs 2.5x slower than its expected work says (the other
    stages as expected), on the synthetic clock."""
    import contextlib

    from workbench.cli import main
    from workbench.jobs import audit as audit_mod

    out = tmp_path_factory.mktemp("eta") / "a"
    err = io.StringIO()
    SyntheticJob.factors = {"generation": 2.5}
    mp = pytest.MonkeyPatch()
    mp.setattr(audit_mod, "JobProgress", SyntheticJob)
    try:
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            assert main(["audit", "--preset", "smoke", "--out", str(out)]) == 0
    finally:
        mp.undo()
    return out, err.getvalue()


@pytest.mark.slow  # a smoke audit (about 40 s of CPU)
def test_eta_stays_within_2x_after_the_first_quarter_with_a_slow_stage(synthetic_run):
    _, err = synthetic_run
    res = progress_log["check_log"](err, max_gap=20, ratio=2.0, min_remaining=5)
    assert res["n_ratios"] >= 4, err
    assert not res["bad"], "\n".join(res["bad"]) + "\n" + err
    # the slow stage really was slow (the old equal-weight ETA fails this test: 2.15 at the
    # end of generation, checked by swapping it in)
    assert res["total_s"] > 90, err


@pytest.mark.slow  # two more smoke audits into the same directory
def test_resumed_run_says_what_it_reused(synthetic_run, capsys):
    from workbench.cli import main
    from workbench.jobs.audit import AUDIT_STAGES

    out, _ = synthetic_run
    assert main(["audit", "--preset", "smoke", "--out", str(out)]) == 0
    err = capsys.readouterr().err
    n = len((out / "generations.jsonl").read_text().splitlines())
    assert (f"resuming: directions from the run directory; {n:,} of {n:,} generations "
            f"reused; 0 to go") in err, err
    for k, name in enumerate(AUDIT_STAGES, start=1):  # every stage in the timeline
        assert f"[audit {k}/{len(AUDIT_STAGES)} {name}" in err, name
    for k in (3, 4, 5, 7):
        assert f"[audit {k}/{len(AUDIT_STAGES)} {AUDIT_STAGES[k - 1]} reused" in err

    gens = out / "generations.jsonl"
    gens.write_text("".join(gens.read_text().splitlines(keepends=True)[:100]))
    assert main(["audit", "--preset", "smoke", "--out", str(out)]) == 0
    err = capsys.readouterr().err
    assert f"100 of {n:,} generations reused; {n - 100:,} to go" in err, err
    assert "[audit 7/10 generation]" in err and "[audit 7/10 generation done in" in err
    assert len(gens.read_text().splitlines()) == n


# ---------------------------------------------------------------- end-of-run summaries

def test_audit_summary_is_short_and_reads_the_recorded_run():
    import json

    from workbench.analysis.summary import audit_summary

    run = ROOT / "figures" / "audit-quick"
    text = audit_summary(run, json.loads((run / "run.json").read_text()))
    lines = text.splitlines()
    assert len(lines) < 12, text
    assert lines[0] == "baseline ASR 37.5% (12 of 32 answers; 95% CI 22.9% to 54.7%)"
    assert lines[1] == ("positive controls: refusal (layer 11) failed; refusal-direction "
                        "(layer 11) passed")
    assert lines[2] == "specific effects: 2 of 16 behaviour conditions:"
    assert "myopic-reward (caa, layer 11, x1): ΔASR +37.5 pp [+25.0 pp, +50.0 pp]" in text
    assert "survival-instinct (caa, layer 11, x-1)" in text
    assert lines[-1] == f"report: {run / 'report.md'}"
    assert "|" not in text  # no report tables


def test_safesteer_summary_is_short_and_reads_the_recorded_run():
    import json

    from workbench.analysis.summary import safesteer_summary

    run = ROOT / "figures" / "safesteer-quick"
    text = safesteer_summary(run, json.loads((run / "run.json").read_text()))
    assert text.splitlines()[0] == "unsteered: unsafe 10.0%, refusal 86.7% (n=30)"
    assert "neuron_add (layer 12, x4): unsafe 13.3%" in text and "Δunsafe +3.3 pp" in text
    assert text.splitlines()[-1] == f"report: {run / 'report.md'}"


def test_terminal_mode_writes_lines_above_the_bars():
    buf = io.StringIO()
    with JobProgress("demo", ["a"], stream=buf, tty=True, line_interval=0.05) as job:
        job.stage("a")
        job.note("resuming: 3 of 4 generations reused; 1 to go")
        assert list(job.bar(range(3))) == [0, 1, 2]
        time.sleep(0.2)
        job.done()
    text = buf.getvalue()
    assert "[demo] resuming: 3 of 4 generations reused; 1 to go" in text
    assert "still running" in text and "[demo] finished in" in text


def test_the_recorded_quick_run_log_keeps_both_promises():
    """docs/quick-run.md's log: no silence over 20 s, ETA within 2x after the first quarter."""
    import subprocess
    import sys

    res = subprocess.run([sys.executable, "benchmarks/progress_log.py", "docs/logs/audit-quick.log"],
                         capture_output=True, text=True, cwd=ROOT)
    assert res.returncode == 0 and "PASS" in res.stdout, res.stdout + res.stderr
    assert res.stdout.splitlines()[0] in (ROOT / "docs" / "quick-run.md").read_text()

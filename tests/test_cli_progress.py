"""Progress: one display per job, a line per stage off a terminal, nothing with --quiet."""

import io
import re

import pytest

from workbench.cli import main
from workbench.progress import JobProgress


def test_non_tty_lines_name_each_stage_with_elapsed_and_eta():
    buf = io.StringIO()
    job = JobProgress("demo", ["one", "two"], stream=buf, tty=False, line_interval=0.0)
    job.stage("one")
    assert list(job.bar(range(3), unit="item")) == [0, 1, 2]
    with job.stage("two"):
        pass
    job.done()
    text = buf.getvalue()
    assert "\r" not in text
    assert re.search(r"^\d\d:\d\d:\d\d \[demo 1/2 one\] elapsed 0:00$", text, re.M), text
    assert "[demo 1/2 one 1/3 item]" in text and "job ETA" in text
    assert "[demo 2/2 two done in" in text and "[demo] finished in" in text


def test_step_reports_library_loops_off_a_terminal():
    buf = io.StringIO()
    job = JobProgress("demo", ["select"], stream=buf, tty=False, line_interval=0.0)
    job.stage("select")
    job.step(3, 12, "candidates")
    assert "[demo 1/1 select 3/12 candidates]" in buf.getvalue()
    assert job.fraction == 0.25
    quiet = JobProgress("demo", ["select"], stream=io.StringIO(), tty=False, line_interval=3600)
    quiet.stage("select")
    before = quiet.stream.getvalue()
    quiet.step(1, 2)  # within the interval: no new line
    assert quiet.stream.getvalue() == before


def test_disabled_progress_prints_nothing():
    buf = io.StringIO()
    job = JobProgress("demo", ["one"], stream=buf, tty=False, enabled=False)
    job.stage("one")
    assert list(job.bar([1, 2])) == [1, 2]
    job.done()
    assert buf.getvalue() == ""


@pytest.mark.slow  # about 40 s of CPU: a whole smoke audit
def test_smoke_audit_prints_a_line_for_every_stage(tmp_path, capsys):
    from workbench.jobs.audit import AUDIT_STAGES

    assert main(["audit", "--preset", "smoke", "--out", str(tmp_path / "a")]) == 0
    captured = capsys.readouterr()
    err = captured.err
    # the end of the run: a short summary and where the report is, not the report
    assert captured.out.startswith("baseline ASR "), captured.out
    assert f"report: {tmp_path / 'a' / 'report.md'}" in captured.out
    assert "|" not in captured.out and len(captured.out.splitlines()) < 12
    assert "\r" not in err, "carriage-return bars in non-TTY output"
    for k, name in enumerate(AUDIT_STAGES, start=1):
        assert f"[audit {k}/{len(AUDIT_STAGES)} {name}]" in err, name
        assert f"[audit {k}/{len(AUDIT_STAGES)} {name} done in" in err, name
    assert "Loading weights" not in err
    assert main(["audit", "--preset", "smoke", "--out", str(tmp_path / "a"), "--quiet"]) == 0
    assert capsys.readouterr().err == ""

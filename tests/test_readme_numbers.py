"""The README's times, memory and headline numbers agree with the records they come from
(benchmarks/readme_numbers.py), and run.json names the machine its timings came from."""

import csv
import importlib.util
import json
import shutil
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

REPO = Path(__file__).resolve().parents[1]
BENCH = REPO / "benchmarks"


def _load(name):
    spec = importlib.util.spec_from_file_location(f"bench_{name}", BENCH / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


rn = _load("readme_numbers")


@pytest.fixture
def copy(tmp_path):
    """A copy of the README and of every record it reads, to plant disagreements in."""
    shutil.copy(REPO / "README.md", tmp_path / "README.md")
    shutil.copytree(REPO / "benchmarks" / "results", tmp_path / "benchmarks" / "results")
    for run in ("audit-quick", "audit-quick-0.5b", "safesteer-quick"):
        (tmp_path / "figures" / run).mkdir(parents=True)
        for name in ("run.json", "asr.csv", "delta_asr.csv", "metrics.csv"):
            if (REPO / "figures" / run / name).is_file():
                shutil.copy(REPO / "figures" / run / name, tmp_path / "figures" / run / name)
    return tmp_path


def _check(root):
    return rn.check(root / "README.md", root)


def test_readme_agrees_with_the_records():
    diff = rn.check(REPO / "README.md", REPO)
    assert not diff, ("README.md disagrees with the records; run `python "
                      "benchmarks/readme_numbers.py --write`:\n" + "\n".join(diff[:40]))


def test_every_region_is_marked_once():
    text = (REPO / "README.md").read_text()
    for name in rn.REGIONS:
        assert text.count(f"<!-- numbers:{name} -->") == 1, name
        assert text.count(f"<!-- /numbers:{name} -->") == 1, name


def _edit_csv(path, match, **values):
    """Set ``values`` in the rows of a CSV copy whose fields equal ``match``."""
    with path.open(newline="") as f:
        rows = list(csv.DictReader(f))
    hits = [r for r in rows if all(r[k] == v for k, v in match.items())]
    assert hits, match
    for r in hits:
        r.update(values)
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def test_a_wrong_number_planted_in_the_readme_fails(copy):
    readme = copy / "README.md"
    total = json.loads((copy / "figures" / "audit-quick" / "run.json").read_text())["timings_s"]["total"]
    recorded, planted = rn.secs(total), rn.secs(total + 123)
    text = readme.read_text()
    assert recorded in text
    readme.write_text(text.replace(recorded, planted, 1))
    diff = _check(copy)
    assert any(line.startswith("-") and planted in line for line in diff)
    assert rn.main(["--readme", str(readme), "--root", str(copy)]) == 1
    # --write puts the recorded number back, and the check then passes
    assert rn.main(["--write", "--readme", str(readme), "--root", str(copy)]) == 0
    assert recorded in readme.read_text() and planted not in readme.read_text()
    assert not _check(copy)


def test_a_changed_record_fails_until_rewritten(copy):
    path = copy / "figures" / "audit-quick" / "run.json"
    record = json.loads(path.read_text())
    record["peak_memory_gb"] = 123.4
    path.write_text(json.dumps(record))
    diff = _check(copy)
    assert any(line.startswith("+") and "123.4 GB" in line for line in diff)
    rn.main(["--write", "--readme", str(copy / "README.md"), "--root", str(copy)])
    assert not _check(copy)


def test_a_baseline_number_comes_from_asr_csv(copy):
    _edit_csv(copy / "figures" / "audit-quick" / "asr.csv",
              dict(behaviour="none", template="all", mitigated="False"), asr="0.999")
    assert any(line.startswith("+") and "Baseline ASR 99.9%" in line for line in _check(copy))


def test_the_audit_tables_come_from_delta_asr_csv(copy):
    readme = copy / "README.md"
    lines = readme.read_text().splitlines()
    i = next(k for k, line in enumerate(lines) if line.startswith("| myopic-reward | +1 |"))
    row = lines[i]
    cells = row.split(" | ")
    cells[3] = "99.9%"  # its ASR
    lines[i] = " | ".join(cells)
    readme.write_text("\n".join(lines) + "\n")
    assert any(line.startswith("-") and "| 99.9% |" in line for line in _check(copy))
    rn.main(["--write", "--readme", str(readme), "--root", str(copy)])
    assert row in readme.read_text() and "| 99.9% |" not in readme.read_text()
    _edit_csv(copy / "figures" / "audit-quick" / "delta_asr.csv",
              dict(behaviour="myopic-reward", coefficient="1", template="all", mitigated="False"),
              asr="0.999")
    assert any(line.startswith("+| myopic-reward | +1 |") and "| 99.9% |" in line
               for line in _check(copy))


def test_the_safesteer_table_comes_from_metrics_csv(copy):
    _edit_csv(copy / "figures" / "safesteer-quick" / "metrics.csv",
              dict(method="neuron_add", category="all", split="harmful"), rouge_l="0.5")
    diff = _check(copy)
    assert any(line.startswith("+| neuron vector |") and "| 0.50 |" in line for line in diff)


def test_the_judge_agreement_comes_from_its_records(copy):
    path = copy / "benchmarks" / "results" / "judge_nested_cv.json"
    record = json.loads(path.read_text())
    record["probe"]["nested"]["jbb"]["kappa"] = 0.80
    path.write_text(json.dumps(record))
    diff = _check(copy)
    assert any(line.startswith("+") and "**0.80 [" in line and "above 0.75" in line
               for line in diff)
    assert rn.versus(0.62, 0.65) == "level with" and rn.versus(0.5, 0.65) == "below"


def test_p_values_are_written_as_in_the_tables():
    assert [rn.p_text(p) for p in ("0.000488", "0.00457764", "0.0146484", "0.1875", "1")] == \
        ["<0.001", "0.0046", "0.01", "0.19", "1.00"]
    assert [rn.signed(x) for x in (0.0, -6.25, 46.875)] == ["+0.0", "−6.2", "+46.9"]


def test_a_re_recorded_run_names_its_machine_and_regenerates_cleanly(copy):
    path = copy / "figures" / "audit-quick" / "run.json"
    record = json.loads(path.read_text())
    record["machine"] = {"cpu": "Test CPU 9000", "logical_cores": 16, "torch_threads": 16,
                         "bf16_flags": [], "gpu": "NVIDIA H100"}
    record["timings_s"]["total"] = 301.0
    path.write_text(json.dumps(record))
    rn.main(["--write", "--readme", str(copy / "README.md"), "--root", str(copy)])
    text = (copy / "README.md").read_text()
    assert "Test CPU 9000, 16 cores, no native bf16, GPU NVIDIA H100" in text
    assert "301 s (5.0 min)" in text and not _check(copy)


def test_a_missing_record_says_so_and_how_to_make_it(copy):
    (copy / "benchmarks" / "results" / "job_audit_smoke.json").unlink()
    rn.main(["--write", "--readme", str(copy / "README.md"), "--root", str(copy)])
    text = (copy / "README.md").read_text()
    assert "not recorded (`python benchmarks/timed_job.py audit_smoke -- workbench audit" in text


def test_machine_text():
    assert rn.machine(None) == "machine not recorded"
    assert rn.machine({"model": {"dtype": {"used": "float32", "reason": "asked for"}}}) == \
        "machine not recorded"
    assert "native bfloat16" in rn.machine(
        {"model": {"dtype": {"reason": "CPU with native bfloat16 (amx_bf16)"}}})
    assert rn.machine({"machine": {"cpu": "X", "logical_cores": 2, "bf16_flags": ["amx_bf16"],
                                   "gpu": None}}) == "X, 2 cores, bf16: amx_bf16"


def test_ci_suite_record_has_its_fields():
    record = json.loads((BENCH / "results" / "ci_suite.json").read_text())
    assert {"passed", "xfailed", "seconds", "commit", "date", "machine", "command"} <= set(record)


def test_run_json_records_the_machine_and_smoke_says_it_skipped_pngs(tmp_path, capsys):
    from workbench.jobs.common import finish_run
    from workbench.model.precision import machine_record

    m = machine_record()
    assert m["cpu"] and m["logical_cores"] >= 1 and isinstance(m["bf16_flags"], list)
    cfg = SimpleNamespace(figures=True, png=False, preset="smoke", progress=True)
    record = finish_run(tmp_path, cfg, {}, lambda out, png: [], [], {}, 0.0)
    assert record["machine"] == m
    assert json.loads((tmp_path / "run.json").read_text())["machine"] == m
    err = capsys.readouterr().err
    assert "PNG figures skipped (the smoke preset" in err and f"workbench figures {tmp_path}" in err
    for other in (dict(preset="quick", progress=True),  # --no-png on another preset
                  dict(preset="smoke", progress=False)):  # --quiet: stderr stays empty
        finish_run(tmp_path, SimpleNamespace(figures=True, png=False, **other),
                   {}, lambda out, png: [], [], {}, 0.0)
        assert capsys.readouterr().err == ""


def test_timed_job_records_a_command(tmp_path, monkeypatch):
    tj = _load("timed_job")
    timed = tj.timed_job([sys.executable, "-c", "sum(range(10**6))"], None)
    assert timed["wall_s"] >= 0 and timed["cpu_s"] >= 0 and "run" not in timed


@pytest.mark.skipif(shutil.which("jupyter") is None and importlib.util.find_spec("nbclient") is None,
                    reason="needs nbclient")
def test_bench_notebook_times_a_notebook(tmp_path):
    import nbformat

    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("x = 1 + 1")])
    path = tmp_path / "tiny.ipynb"
    nbformat.write(nb, path)
    bn = _load("bench_notebook")
    seconds, dtype = bn.run_notebook(path, "tiny-random", timeout=120)
    assert seconds > 0 and dtype is None  # no `model` in this notebook
    out = subprocess.run([sys.executable, str(BENCH / "bench_notebook.py"), str(tmp_path / "no.ipynb")],
                         capture_output=True, text=True)
    assert out.returncode != 0 and "no notebook" in out.stderr

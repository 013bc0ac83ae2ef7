"""GenerationStore: a corrupt line anywhere is quarantined; every valid record is kept."""

import json

from workbench.rundir import GenerationStore


def _rec(i: int) -> dict:
    return {"key": f"k{i}", "response": f"answer {i}"}


def test_corrupt_lines_anywhere_are_quarantined_and_valid_records_kept(tmp_path, capsys):
    path = tmp_path / "generations.jsonl"
    lines = [json.dumps(_rec(i)) + "\n" for i in range(6)]
    lines.insert(2, '{"key": "half a li\n')      # cut off mid-file
    lines.insert(5, '["no", "key"]\n')            # valid JSON, not a record
    lines.append('{"key": "k99", "resp')          # truncated last line, no newline
    path.write_text("".join(lines))

    store = GenerationStore(path)
    assert sorted(store.records) == sorted(f"k{i}" for i in range(6))
    assert store.n_quarantined == 3
    err = capsys.readouterr().err
    assert "3 corrupt or truncated" in err and "generations.quarantine.jsonl" in err
    quarantined = [json.loads(l) for l in store.quarantine_path.read_text().splitlines()]
    assert [q["line"] for q in quarantined] == [3, 6, 9]
    assert quarantined[0]["text"] == '{"key": "half a li\n'
    # the file now holds exactly the valid records, in order, and appends continue cleanly
    assert [json.loads(l)["key"] for l in path.read_text().splitlines()] == [
        f"k{i}" for i in range(6)]
    store.append([_rec(6), _rec(0)])
    again = GenerationStore(path)
    assert len(again) == 7 and again.n_quarantined == 0
    assert capsys.readouterr().err == ""


def test_clean_file_is_left_untouched(tmp_path):
    path = tmp_path / "generations.jsonl"
    GenerationStore(path).append([_rec(0), _rec(1)])
    before = path.stat().st_mtime_ns, path.read_bytes()
    store = GenerationStore(path)
    assert len(store) == 2 and not store.quarantine_path.exists()
    assert (path.stat().st_mtime_ns, path.read_bytes()) == before

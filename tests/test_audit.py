import csv
import re
import errno
import json
from pathlib import Path

import numpy as np
import pytest

import workbench.jobs.audit as audit_mod
from workbench import WorkbenchError
from workbench.cli import main
from workbench.jobs.audit import run_audit
from workbench.jobs.config import build_config
from workbench.rundir import GenerationStore
from record_smoke_digests import DIGESTS, digests


def _rows(path):
    with open(path) as f:
        return list(csv.DictReader(f))


def _lines(path):
    return [json.loads(l) for l in open(path)]


SMOKE_DIGESTS: dict[str, str] = {}  # the smoke run's file hashes, taken as it finishes


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    out = tmp_path_factory.mktemp("audit") / "smoke"
    assert main(["audit", "--preset", "smoke", "--out", str(out), "--quiet"]) == 0
    # hashed now, before any test of this module reruns or reanalyses the run in place
    SMOKE_DIGESTS.update(digests(out, list(json.loads(DIGESTS.read_text())["audit"])))
    return out


def test_smoke_outputs_schema_and_counts(smoke):
    cfg = build_config("smoke")
    record = json.loads((smoke / "run.json").read_text())
    assert record["status"] == "complete" and record["job"] == "audit"
    gens = _lines(smoke / "generations.jsonl")
    n_attack, n_benign = record["attack"]["n"], record["benign"]["n"]
    behaviours = audit_mod.audit_behaviours(cfg)
    assert behaviours == ["sycophancy", "refusal", "refusal-direction"]  # controls join
    # baseline, each behaviour and control at each coefficient plain and mitigated; then the
    # attack-only placebo conditions: each placebo direction at each coefficient and each
    # behaviour's mitigation placebo
    n_cond = 1 + len(behaviours) * len(cfg.coefficients) * 2
    n_placebo = (cfg.placebo_directions + 1) * len(cfg.coefficients)
    assert cfg.placebo_directions == 2
    assert len(gens) == ((n_cond + n_placebo) * n_attack * len(cfg.templates)
                         + n_cond * n_benign)
    assert sum(g["placebo"] for g in gens) == n_placebo * n_attack * len(cfg.templates)
    assert len({g["key"] for g in gens}) == len(gens)
    assert {g["label"] for g in gens if g["split"] == "harmful"} <= {"safe", "jailbroken",
                                                                       "incomprehensible"}
    asr = _rows(smoke / "asr.csv")
    assert list(asr[0]) == ["behaviour", "control", "method", "layer", "coefficient", "template",
                            "mitigated", "judge", "n", "n_jailbroken", "n_incomprehensible",
                            "asr", "ci_low", "ci_high", "n_jailbroken_substring",
                            "asr_substring", "ci_low_substring", "ci_high_substring"]
    for row in asr:
        sel = [g for g in gens if g["split"] == "harmful"
               and g["behaviour"] == row["behaviour"] and str(g["mitigated"]) == row["mitigated"]
               and g["method"] == row["method"]
               and float(g["coefficient"]) == float(row["coefficient"])
               and (row["template"] == "all" or g["template"] == row["template"])]
        assert int(row["n"]) == len(sel)
        assert int(row["n_jailbroken"]) == sum(g["label"] == "jailbroken" for g in sel)
        assert int(row["n_incomprehensible"]) == sum(g["label"] == "incomprehensible" for g in sel)
        assert float(row["asr"]) == pytest.approx(int(row["n_jailbroken"]) / int(row["n"]),
                                                  abs=1e-6)
        assert float(row["ci_low"]) - 1e-9 <= float(row["asr"]) <= float(row["ci_high"]) + 1e-9
        n_sub = sum(g["labels"]["substring"] == "jailbroken" for g in sel)
        assert int(row["n_jailbroken_substring"]) == n_sub
        assert float(row["asr_substring"]) == pytest.approx(n_sub / len(sel), abs=1e-6)
        assert row["judge"] == "substring"
        assert row["control"] == str(row["behaviour"] in ("refusal", "refusal-direction"))
    deltas = _rows(smoke / "delta_asr.csv")
    assert len(deltas) == (n_cond - 1 + n_placebo) * (len(cfg.templates) + 1)
    # recomputed from the generations, not from the row's own asr/baseline_asr columns: each
    # steered condition's jailbreak rate, the unsteered baseline's (behaviour "none", always
    # unmitigated) on the same prompts, and their difference
    harmful = [g for g in gens if g["split"] == "harmful"]

    def jailbroken(behaviour, method, layer, coefficient, mitigated, template):
        return {(g["template"], g["prompt_id"]): g["label"] == "jailbroken" for g in harmful
                if g["behaviour"] == behaviour and g["method"] == method
                and str(g["layer"]) == layer
                and float(g["coefficient"]) == coefficient and g["mitigated"] == mitigated
                and (template == "all" or g["template"] == template)}

    for d in deltas:
        steered = jailbroken(d["behaviour"], d["method"], d["layer"], float(d["coefficient"]),
                             d["mitigated"] == "True", d["template"])
        base = jailbroken("none", "none", "None", 0.0, False, d["template"])
        assert steered and steered.keys() == base.keys()  # paired on the same prompts
        keys = sorted(steered)
        s = np.array([steered[k] for k in keys], float)
        b = np.array([base[k] for k in keys], float)
        assert float(d["asr"]) == pytest.approx(s.mean(), abs=1e-5)
        assert float(d["baseline_asr"]) == pytest.approx(b.mean(), abs=1e-5)
        assert float(d["delta_asr"]) == pytest.approx((s - b).mean(), abs=1e-5)
    assert len(_rows(smoke / "false_refusal.csv")) == n_cond
    regs = {r["fit"]: r for r in _rows(smoke / "regression.csv")}
    assert set(regs) == {"behaviours", "behaviours+mitigated", "controls"}
    rows = n_attack * len(cfg.templates)  # answers per condition; the baseline's join each fit
    assert int(regs["behaviours"]["n"]) == (1 + len(cfg.coefficients)) * rows
    assert int(regs["behaviours+mitigated"]["n"]) == (1 + 2 * len(cfg.coefficients)) * rows
    assert int(regs["controls"]["n"]) == (1 + 2 * len(cfg.coefficients)) * rows
    assert int(regs["behaviours"]["n_prompts"]) == n_attack
    assert len(_rows(smoke / "projections.csv")) == 2 * cfg.n_train
    for name in ("cosine_by_layer", "delta_asr", "delta_vs_cosine", "projections", "efficacy"):
        assert (smoke / "figures" / f"{name}.html").stat().st_size > 1000
    assert "Baseline ASR" in (smoke / "report.md").read_text()


def test_rerun_resumes_without_recomputing(smoke, monkeypatch):
    before = (smoke / "generations.jsonl").read_bytes()

    def no_generation(*a, **k):
        raise AssertionError("a finished run must not generate again")

    monkeypatch.setattr(audit_mod, "run_local", no_generation)
    monkeypatch.setattr(audit_mod, "compute_directions", no_generation)
    run_audit(build_config("smoke", out=str(smoke), progress=False))
    assert (smoke / "generations.jsonl").read_bytes() == before


def test_interrupted_run_resumes_and_loses_nothing(tmp_path, monkeypatch):
    out = tmp_path / "run"
    cfg = build_config("smoke", out=str(out), progress=False, figures=False, behaviours=["refusal"])
    real = audit_mod.run_local

    def flaky(model, items):  # the executor dies at its third work item
        for n, done in enumerate(real(model, items)):
            if n == 2:
                raise KeyboardInterrupt
            yield done

    monkeypatch.setattr(audit_mod, "run_local", flaky)
    with pytest.raises(KeyboardInterrupt):
        run_audit(cfg)
    partial = _lines(out / "generations.jsonl")
    assert 0 < len(partial)
    json.loads((out / "run.json").read_text())  # still valid
    # simulate a line cut off by a crash: it is dropped and regenerated, not duplicated
    with open(out / "generations.jsonl", "a") as f:
        f.write('{"key": "half a li')
    monkeypatch.setattr(audit_mod, "run_local", real)
    run_audit(cfg)
    done = _lines(out / "generations.jsonl")
    keys = [g["key"] for g in done]
    assert len(keys) == len(set(keys)) and len(keys) > len(partial)
    assert [g["key"] for g in done[:len(partial)]] == [g["key"] for g in partial]


def test_full_disk_is_reported_and_resumable(tmp_path, monkeypatch, capsys):
    out = tmp_path / "run"
    real_append = GenerationStore.append

    def full(self, records):
        if len(self) >= 10:
            raise OSError(errno.ENOSPC, "No space left on device", str(self.path))
        return real_append(self, records)

    monkeypatch.setattr(GenerationStore, "append", full)
    args = ["audit", "--preset", "smoke", "--out", str(out), "--quiet", "--behaviours", "refusal"]
    assert main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith("error: disk full") and "re-run" in err
    for line in open(out / "generations.jsonl"):
        json.loads(line)


def test_run_dir_of_another_config_is_refused(smoke):
    with pytest.raises(WorkbenchError, match="different config .*coefficients"):
        run_audit(build_config("smoke", out=str(smoke), coefficients=[2.0], progress=False))


@pytest.mark.parametrize("args,message", [
    (["--preset", "medium"], "unknown preset 'medium'"),
    (["--preset", "smoke", "--templates", "direct,nosuch"], "unknown template 'nosuch'"),
    (["--preset", "smoke", "--mitigation", "magic"], "mitigation 'magic' is unknown"),
    (["--preset", "smoke", "--layers", "9"], "layer 9 is out of range"),
])
def test_bad_audit_flags(tmp_path, capsys, args, message):
    out = tmp_path / "out"
    assert main(["audit", *args, "--out", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("error: ") and message in err[-1]
    assert not out.exists()


def test_config_file_overrides_and_unknown_keys(tmp_path):
    good = tmp_path / "a.toml"
    good.write_text('preset = "smoke"\ncoefficients = [0.5]\nmax_new_tokens = 4\n')
    cfg = build_config(None, str(good))
    assert cfg.preset == "smoke" and cfg.coefficients == [0.5] and cfg.model == "tiny-random"
    assert build_config(None, str(good), max_new_tokens=6).max_new_tokens == 6
    bad = tmp_path / "b.toml"
    bad.write_text("temprature = 0.7\n")
    with pytest.raises(WorkbenchError, match="unknown config key 'temprature'"):
        build_config("smoke", str(bad))


def test_template_without_placeholder(tmp_path, capsys):
    tpl = tmp_path / "mine.txt"
    tpl.write_text("Please answer this.")
    out = tmp_path / "out"
    assert main(["audit", "--preset", "smoke", "--template-file", str(tpl), "--out", str(out)]) == 2
    assert "no {instruction} placeholder" in capsys.readouterr().err
    assert not out.exists()


def test_generations_keep_every_judges_label(smoke):
    for g in _lines(smoke / "generations.jsonl"):
        assert g["control"] == (g["behaviour"] in ("refusal", "refusal-direction"))
        if g["split"] == "harmful":
            assert g["labels"]["substring"] == g["label"]  # the configured judge is substring
        else:
            assert g["labels"] == {}


def test_refusal_direction_control_and_its_mitigation(smoke):
    import torch
    from safetensors.torch import load_file

    deltas = _rows(smoke / "delta_asr.csv")
    rd = [d for d in deltas if d["behaviour"] == "refusal-direction"]
    assert rd and all(d["control"] == "True" and d["method"] == "diff-in-means" for d in rd)
    for d in rd:  # the vector is the refusal direction: cosine 1, projection c x 1 x scale
        if d["mitigated"] == "True":
            continue
        assert float(d["cosine"]) == pytest.approx(1.0, abs=1e-6)
        cond = next(c for c in _rows(smoke / "conditions.csv")
                    if c["behaviour"] == d["behaviour"] and c["coefficient"] == d["coefficient"]
                    and c["mitigated"] == "False")
        # absolute scale: projection = coefficient x |v| / mean residual norm
        assert float(d["projection"]) == pytest.approx(
            float(d["coefficient"]) * float(cond["vector_norm"]) / float(cond["resid_norm"]),
            rel=1e-4)
    # mitigation removes all of it: the mitigated answers are the baseline's
    gens = _lines(smoke / "generations.jsonl")
    base = {(g["template"], g["prompt_id"], g["split"]): g["response"] for g in gens
            if g["behaviour"] == "none"}
    mitigated = [g for g in gens if g["behaviour"] == "refusal-direction" and g["mitigated"]]
    assert mitigated and all(base[(g["template"], g["prompt_id"], g["split"])] == g["response"]
                             for g in mitigated)
    # its norm is the mean CAA norm at the steering layer
    t = load_file(smoke / "directions.safetensors")
    layer = int(rd[0]["layer"])
    caa_norms = [t[f"caa.{b}"][layer].double().norm() for b in ("sycophancy", "refusal")]
    cond = next(c for c in _rows(smoke / "conditions.csv")
                if c["behaviour"] == "refusal-direction" and c["mitigated"] == "False")
    assert float(cond["vector_norm"]) == pytest.approx(float(torch.stack(caa_norms).mean()),
                                                       rel=1e-5)
    report = (smoke / "report.md").read_text()
    assert "## Positive controls" in report and "`refusal-direction` at layer" in report
    assert not re.search(r"\bn/a\b|-0\.0(?!\d)|\+-", report)
    rendered = sorted((smoke / "figures").glob("*.html"))
    assert len(rendered) >= 7 and all(f"](figures/{f.name})" in report for f in rendered)


def test_efficacy_matches_an_independent_steered_ab_readout(smoke):
    import torch
    from safetensors.torch import load_file

    from workbench import load_model
    from workbench.data import embedded_contrast
    from workbench.evaluation.efficacy import ab_probabilities
    from workbench.jobs.directions import split_contrast
    from workbench.steering import add_vector

    cfg = build_config("smoke")
    rows = _rows(smoke / "efficacy.csv")
    assert len(rows) == 3 * len(cfg.coefficients) * 2
    assert {"behaviour", "layer", "coefficient", "n", "p_matching", "p_matching_baseline",
            "delta", "delta_ci_low", "delta_ci_high", "p_value"} <= set(rows[0])
    row = next(r for r in rows if r["behaviour"] == "sycophancy" and r["coefficient"] == "1"
               and r["mitigated"] == "False")
    model = load_model("tiny-random")
    train, held = split_contrast({"sycophancy": embedded_contrast("sycophancy")}, cfg.caa_limit,
                                 cfg.efficacy_pairs, cfg.seed)
    assert len(held["sycophancy"]) == cfg.efficacy_pairs == int(row["n"])
    assert not {p.question for p in held["sycophancy"]} & {p.question for p in train["sycophancy"]}
    v = load_file(smoke / "directions.safetensors")["caa.sycophancy"][int(row["layer"])]
    base = ab_probabilities(model, held["sycophancy"])["p_matching_norm"]
    with add_vector(model, v.float(), layers=int(row["layer"]), coefficient=1.0, positions="eoi"):
        steered = ab_probabilities(model, held["sycophancy"])["p_matching_norm"]
    assert float(row["p_matching_baseline"]) == pytest.approx(float(base.mean()), abs=1e-5)
    assert float(row["p_matching"]) == pytest.approx(float(steered.mean()), abs=1e-5)
    assert float(row["delta"]) == pytest.approx(float((steered - base).mean()), abs=1e-5)
    del torch


def test_audit_records_open_ended_efficacy(smoke):
    """The smoke audit writes the open_* columns (unmitigated rows only) and open_ended.jsonl,
    and its numbers follow from the answers it kept, re-scored independently."""
    import numpy as np

    from workbench.data import embedded_contrast
    from workbench.evaluation.judges.trained import embed_texts
    from workbench.evaluation.open_ended import axis_accuracy, choice_texts, fit_behaviour_axis
    from workbench.jobs.directions import split_contrast

    out, cfg = smoke, build_config("smoke")
    rows = _rows(out / "efficacy.csv")
    recs = [json.loads(line) for line in open(out / "open_ended.jsonl")]
    train, held = split_contrast({"sycophancy": embedded_contrast("sycophancy")}, cfg.caa_limit,
                                 cfg.efficacy_pairs, cfg.seed)
    _, m, n = choice_texts(train["sycophancy"])
    axis = fit_behaviour_axis(embed_texts(m), embed_texts(n))
    stems, hm, hn = choice_texts(held["sycophancy"])
    for row in rows:
        if row["mitigated"] == "True":
            assert row["open_delta"] == "" and row["open_n"] == ""
            continue
        assert int(row["open_n"]) == cfg.efficacy_pairs
        if row["behaviour"] != "sycophancy" or row["method"] != "caa":
            continue
        assert float(row["open_axis_accuracy"]) == pytest.approx(
            axis_accuracy(axis, embed_texts(hm), embed_texts(hn)))
        key = next(r["condition"] for r in recs if r["items"] == "sycophancy"
                   and r["behaviour"] == "sycophancy"
                   and r["coefficient"] == float(row["coefficient"]))
        base = [r for r in recs if r["items"] == "sycophancy" and r["condition"] == "none"]
        steered = [r for r in recs if r["condition"] == key]
        assert [r["question"] for r in base] == [r["question"] for r in steered] == stems
        b = axis.score(embed_texts([r["answer"] for r in base]))
        s = axis.score(embed_texts([r["answer"] for r in steered]))
        np.testing.assert_allclose([r["score"] for r in steered], s, atol=1e-5)
        assert float(row["open_score_baseline"]) == pytest.approx(b.mean(), abs=1e-5)
        assert float(row["open_delta"]) == pytest.approx((s - b).mean(), abs=1e-5)
    report = (out / "report.md").read_text()
    assert "### Open-ended check" in report and "open_ended.jsonl" in report
    assert (out / "figures" / "efficacy_open_ended.html").is_file()


def test_reopen_audit_gives_back_the_runs_vectors_and_norm_scale(smoke, tmp_path):
    """Follow-up analyses see the run as it was: the same directions, and the mean residual
    norm the `norm` coefficient scale used (conditions.csv's resid_norm)."""
    import torch
    from safetensors.torch import load_file

    from workbench.jobs.reopen import reopen_audit

    run = reopen_audit(smoke)
    saved = load_file(smoke / "directions.safetensors")
    assert torch.equal(run.directions.caa["sycophancy"], saved["caa.sycophancy"].double())
    assert float(run.refusal_unit().norm()) == pytest.approx(1.0, abs=1e-6)
    layer = run.steering_layer
    recorded = {float(r["resid_norm"]) for r in _rows(smoke / "conditions.csv")
                if int(r["layer"]) == layer}
    assert len(recorded) == 1
    assert run.resid_norm(layer) == pytest.approx(recorded.pop(), rel=1e-5)
    with pytest.raises(WorkbenchError, match="no run.json"):
        reopen_audit(tmp_path)


def test_scale_sweep_benchmarks_run_on_a_finished_audit(smoke, tmp_path):
    """The calibration benchmark's rows (the unsteered row first, every signed scale, the
    published-bypass ablation row) and the efficacy sweep, end to end on the smoke run."""
    import subprocess
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
    try:
        from sweep import signed_scales
    finally:
        sys.path.pop(0)
    assert signed_scales("0.5,1") == [-0.5, 0.5, -1.0, 1.0]
    root = Path(__file__).resolve().parents[1]
    calib, answers = tmp_path / "calib.csv", tmp_path / "answers.jsonl"
    subprocess.run([sys.executable, str(root / "benchmarks" / "calibrate_audit_scale.py"),
                    "--run", str(smoke), "--scales", "1", "--ablation", "--candidate=-1:1",
                    "--out", str(calib), "--answers", str(answers)], check=True,
                   capture_output=True, text=True)
    rows = _rows(calib)
    assert [(r["intervention"], r["scale"]) for r in rows] == [
        ("steer", "0.0"), ("steer", "-1.0"), ("steer", "1.0"), ("ablation", "nan")]
    assert float(rows[0]["delta"]) == 0 and float(rows[0]["p_value"]) == 1
    kept = [json.loads(line) for line in answers.read_text().splitlines()]
    n = int(rows[0]["n"])
    assert len(kept) == 4 * n
    for r in rows:  # the recorded rate is the share of answers labelled jailbroken
        mine = [k for k in kept if k["intervention"] == r["intervention"]
                and str(float(k["scale"])) == r["scale"]]
        assert float(r["asr"]) == pytest.approx(
            sum(k["label"] == "jailbroken" for k in mine) / n)
    eff = tmp_path / "eff.csv"
    subprocess.run([sys.executable, str(root / "benchmarks" / "efficacy_by_scale.py"),
                    "--run", str(smoke), "--scales", "0.5", "--out", str(eff)], check=True,
                   capture_output=True, text=True)
    assert {float(r["scale"]) for r in _rows(eff)} == {-0.5, 0.5}


def test_judges_never_run_under_steering_hooks(tmp_path, monkeypatch):
    from contextlib import contextmanager

    from workbench.evaluation.judges import SubstringJudge

    import workbench.steering.conditions as conditions_mod
    import workbench.evaluation.work as work_mod

    active = {"n": 0, "calls": 0}

    def tracking(real_ctx):
        @contextmanager
        def tracked(*a, **k):
            with real_ctx(*a, **k):
                active["n"] += 1
                try:
                    yield
                finally:
                    active["n"] -= 1

        return tracked

    class Watcher(SubstringJudge):
        name = "watcher"

        def label(self, prompts, responses):
            assert active["n"] == 0, "a judge ran while a steering hook was active"
            active["calls"] += 1
            return ["safe"] * len(responses)

    monkeypatch.setattr(audit_mod, "add_vector", tracking(audit_mod.add_vector))
    monkeypatch.setattr(work_mod, "add_vector", tracking(work_mod.add_vector))
    monkeypatch.setattr(conditions_mod, "add_row_vectors",
                        tracking(conditions_mod.add_row_vectors))
    monkeypatch.setattr(audit_mod, "make_judge", lambda spec, device=None, dtype=None: Watcher())
    out = tmp_path / "run"
    for engine in ("batched", "reference"):
        run_audit(build_config("smoke", out=str(out / engine), progress=False, figures=False,
                               behaviours=["sycophancy"], controls=False, efficacy_pairs=0,
                               engine=engine))
    out = out / "batched"
    assert active["calls"] > 0
    harmful = [g for g in _lines(out / "generations.jsonl") if g["split"] == "harmful"]
    assert all(g["label"] == "safe" == g["labels"]["watcher"] for g in harmful)
    assert all(g["labels"]["substring"] in ("safe", "jailbroken", "incomprehensible")
               for g in harmful)
    asr = _rows(out / "asr.csv")
    assert {r["judge"] for r in asr} == {"watcher"} and all(r["asr"] == "0" for r in asr)
    report = (out / "report.md").read_text()
    assert "Not measured" in report  # efficacy_pairs = 0


def test_norm_scale_pca_logistic_methods_and_layers(tmp_path):
    out = tmp_path / "run"
    cfg = build_config("smoke", out=str(out), progress=False, figures=False, controls=False,
                       behaviours=["sycophancy"], methods=["caa", "pca", "logistic"],
                       coefficient_scale="norm", coefficients=[0.5], layers=[1, 2],
                       efficacy_pairs=4, templates=["direct"], attack_limit=4, benign_limit=2)
    run_audit(cfg)
    everything = _rows(out / "conditions.csv")
    conds = [c for c in everything if c["placebo"] == "False"]
    assert {(c["method"], c["layer"]) for c in conds} == {
        (m, l) for m in ("caa", "pca", "logistic") for l in ("1", "2")}
    # the placebo directions are pushed exactly as hard: 0.5 x the mean residual norm
    placebo = [c for c in everything if c["behaviour"].startswith("placebo-")]
    assert {c["layer"] for c in placebo} == {"1", "2"} and len(placebo) == 2 * 2
    for c in placebo:
        assert float(c["coefficient_abs"]) * float(c["vector_norm"]) == pytest.approx(
            0.5 * float(c["resid_norm"]), rel=1e-4)
        assert abs(float(c["cosine"])) < 1e-6  # orthogonal to the refusal direction
    caa_norm = {c["layer"]: float(c["vector_norm"]) for c in conds
                if c["method"] == "caa" and c["mitigated"] == "False"}
    for c in conds:
        assert c["coefficient_scale"] == "norm"
        if c["mitigated"] == "False":
            # the added vector's norm is 0.5 x the mean residual norm at its layer
            assert float(c["coefficient_abs"]) * float(c["vector_norm"]) == pytest.approx(
                0.5 * float(c["resid_norm"]), rel=1e-4)
            # pca / logistic directions are scaled to the CAA norm
            assert float(c["vector_norm"]) == pytest.approx(caa_norm[c["layer"]], rel=1e-5)
    assert {r["method"] for r in _rows(out / "efficacy.csv")} == {"caa", "pca", "logistic"}
    assert "## By layer" in (out / "report.md").read_text()


def test_default_layer_judge_model_and_bad_values():
    from workbench.jobs.config import judge_spec, steering_layers

    cfg = build_config("quick")
    assert steering_layers(cfg, 24) == [10] and steering_layers(cfg, 32) == [13]
    assert steering_layers(build_config("full"), 24) == [6, 10, 13, 17]
    assert judge_spec(cfg) == "probe" and cfg.judge == "probe"  # best offline judge
    assert build_config("smoke").judge == "substring" and cfg.coefficient_scale == "norm"
    assert judge_spec(build_config("full", judge_model="org/judge")) == "llm:org/judge"
    assert build_config("quick", controls=False).controls is False
    with pytest.raises(WorkbenchError, match="coefficient scale 'log'"):
        build_config("smoke", coefficient_scale="log")
    with pytest.raises(WorkbenchError, match="steering method 'svm'"):
        build_config("smoke", methods=["svm"])


def test_cli_flags_reach_the_config(monkeypatch):
    seen = {}
    monkeypatch.setattr(audit_mod, "run_audit", lambda cfg: seen.setdefault("cfg", cfg) or {})

    import workbench.cli as cli

    def fake_run_job(args, name, build, run, fields):
        seen["cfg"] = build(args.preset, args.config,
                            **{k: getattr(args, k) for k in fields})

    monkeypatch.setattr(cli, "_run_job", fake_run_job)
    assert main(["audit", "--preset", "smoke", "--judge-model", "m", "--coefficient-scale",
                 "norm", "--method", "caa,logistic", "--no-controls", "--efficacy-pairs", "3",
                 "--open-ended-tokens", "0"]) == 0
    cfg = seen["cfg"]
    assert (cfg.judge_model, cfg.coefficient_scale, cfg.methods, cfg.controls,
            cfg.efficacy_pairs, cfg.open_ended_tokens) == ("m", "norm", ["caa", "logistic"], False,
                                                           3, 0)


def test_contrast_split_is_letter_balanced_and_disjoint():
    from collections import Counter

    from workbench.data import BEHAVIOURS, embedded_contrast
    from workbench.jobs.directions import split_contrast

    pairs = {b: embedded_contrast(b) for b in BEHAVIOURS}
    train, held = split_contrast(pairs, 40, 10, seed=0)
    for b in BEHAVIOURS:
        assert Counter(p.matching for p in train[b]) == {"A": 20, "B": 20}
        assert Counter(p.matching for p in held[b]) == {"A": 5, "B": 5}
        assert not {p.question for p in train[b]} & {p.question for p in held[b]}
    # adding a held-out set does not change the vector's pairs
    assert split_contrast(pairs, 40, 0, seed=0)[0] == train
    with pytest.raises(WorkbenchError, match="too few to hold out"):
        split_contrast({"x": pairs["sycophancy"][:5]}, None, 5, seed=0)


def _control_rows(d_minus, p_minus, r_minus, rp_minus, d_plus=-0.4, rec=1.0):
    """Pooled refusal-direction rows at -1 and +1 (and their mitigated twins)."""
    base = {"behaviour": "refusal-direction", "method": "diff-in-means", "layer": 10,
            "template": "all"}
    rows = [{**base, "coefficient": -1.0, "mitigated": False, "delta_asr": d_minus,
             "p_value": p_minus, "delta_refusal": r_minus, "p_value_refusal": rp_minus},
            {**base, "coefficient": 1.0, "mitigated": False, "delta_asr": d_plus,
             "p_value": 1e-4, "delta_refusal": 0.5, "p_value_refusal": 1e-4}]
    rows += [{**r, "mitigated": True, "recovered_share": rec, "vector_norm": 0.0}
             for r in rows]
    for r in rows[:2]:
        r["vector_norm"] = 3.0
    return rows


@pytest.mark.parametrize("d_minus,p_minus,r_minus,rp_minus,status", [
    (0.3, 0.001, -0.3, 0.001, "passed"),            # ASR moves both ways
    (-0.1, 0.2, -0.3, 0.001, "steers refusals"),    # refusals fall, judged ASR does not rise
    (-0.1, 0.2, -0.05, 0.5, "failed"),              # nothing moves at the minus sign
    (-0.1, 0.2, 0.3, 0.001, "failed"),              # refusals move the wrong way
])
def test_control_verdict_tells_steered_refusals_from_a_broken_pipeline(
        d_minus, p_minus, r_minus, rp_minus, status):
    from workbench.analysis.tables import control_verdicts

    (v,) = control_verdicts(_control_rows(d_minus, p_minus, r_minus, rp_minus))
    assert v["status"] == status and v["passed"] == (status == "passed")
    # the mitigated refusal direction has no length left: the projection arithmetic checks out
    assert v["projection_check"] == "passed" and "projection check passed" in v["detail"]
    assert "Δrefusal" in v["detail"]


def test_the_projection_check_fails_when_mitigation_leaves_part_of_the_direction():
    from workbench.analysis.tables import control_verdicts

    rows = _control_rows(0.3, 0.001, -0.3, 0.001)
    rows[2]["vector_norm"] = 0.3  # a tenth of the 3.0 it started from
    (v,) = control_verdicts(rows)
    assert v["status"] == "passed" and v["projection_check"] == "failed"


def test_reanalyse_rewrites_the_analysis_from_the_files_alone(smoke, tmp_path, monkeypatch):
    """A finished run re-read without a model gives the tables the run wrote (up to the CSVs'
    six significant digits), and keeps its answers and timings."""
    import shutil

    from workbench.jobs.reanalyse import reanalyse_audit

    copy = tmp_path / "copy"
    shutil.copytree(smoke, copy)
    (copy / "delta_asr.csv").unlink()
    (copy / "report.md").write_text("stale")
    before = json.loads((copy / "run.json").read_text())
    monkeypatch.setattr(audit_mod, "load_model", None)  # no model may be touched
    summary = reanalyse_audit(copy, figures=False)
    after = json.loads((copy / "run.json").read_text())
    assert after["timings_s"] == before["timings_s"]
    assert json.dumps(after["summary"]) == json.dumps(summary)
    assert (copy / "generations.jsonl").read_bytes() == (smoke / "generations.jsonl").read_bytes()
    assert "## Specificity" in (copy / "report.md").read_text()
    old, new = _rows(smoke / "delta_asr.csv"), _rows(copy / "delta_asr.csv")
    assert len(old) == len(new)
    for a, b in zip(old, new):
        for k in a:
            try:
                assert float(a[k]) == pytest.approx(float(b[k]), rel=1e-4, abs=1e-6, nan_ok=True)
            except ValueError:
                assert a[k] == b[k], k
    with pytest.raises(WorkbenchError, match="lacks generations.jsonl"):
        (copy / "generations.jsonl").unlink()
        reanalyse_audit(copy)


def test_smoke_answers_and_tables_are_byte_identical_to_the_record(smoke):
    """Restructuring must not move a number: the smoke run's answers and tables hash as
    recorded (tests/data/smoke_digests.json says when and how)."""
    recorded = json.loads(DIGESTS.read_text())["audit"]
    assert SMOKE_DIGESTS == recorded

import csv
import json

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from workbench.cli import main
from workbench.data import BEHAVIOURS
from workbench.geometry import cosine_by_layer

FAST = ["--model", "tiny-random", "--n-train", "24", "--n-val", "8", "--quiet",
        "--no-prompt-filter"]  # a random model refuses nothing: the filter would keep none


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("run") / "directions"
    assert main(["directions", *FAST, "--out", str(out)]) == 0
    return out


def test_directions_outputs(run_dir):
    t = load_file(run_dir / "directions.safetensors")
    record = json.loads((run_dir / "run.json").read_text())
    n_layers, d = record["model"]["n_layers"], record["model"]["d_model"]
    n_eoi = len(record["model"]["eoi_tokens"])
    assert t["refusal.candidates"].shape == (n_eoi, n_layers, d)
    assert t["refusal.candidates"].dtype == torch.float32
    ref = record["refusal"]
    torch.testing.assert_close(t["refusal.direction"], t["refusal.candidates"][ref["position"], ref["layer"]])
    assert ref["offset"] == ref["position"] - n_eoi
    assert {k for k in t if k.startswith("caa.")} == {f"caa.{b}" for b in BEHAVIOURS}
    rows = list(csv.DictReader(open(run_dir / "geometry.csv")))
    assert len(rows) == len(BEHAVIOURS) * n_layers
    for b in BEHAVIOURS:
        cos = [float(r["cosine"]) for r in rows if r["behaviour"] == b]
        np.testing.assert_allclose(cos, cosine_by_layer(t[f"caa.{b}"], t["refusal.candidates"][-1]),
                                   atol=1e-5)
    assert len(record["data"]["harmful"]["sha256"]) == 64
    assert record["versions"]["transformer-lens"].startswith("4.")
    assert set(record["timings_s"]) >= {"load_model", "refusal_selection", "caa_vectors", "total"}
    lines = (run_dir / "refusal_scores.csv").read_text().splitlines()
    assert lines[0] == "# prompt filter: off (every prompt kept)"
    assert lines[1].startswith(f"# selection rule: {ref['selection_rule']}: ")
    assert ref["selection_rule"] == "kl-bounded" and not ref["filters_passed"]
    assert ref["prompt_filter"]["counts"]["harmful_train"] == {"kept": 24, "n": 24}
    scores = list(csv.DictReader(line for line in lines if not line.startswith("#")))
    assert len(scores) == n_eoi * int(0.8 * n_layers)  # layers >= int(0.8 n) are not scored


def test_custom_contrast_and_prompt_files(tmp_path):
    harm = tmp_path / "harm.txt"
    harm.write_text("\n".join(f"Do harmful thing number {i}." for i in range(12)))
    pairs = tmp_path / "mine.json"
    pairs.write_text(json.dumps([{"question": f"Q{i}?\n\nChoices:\n (A) yes\n (B) no",
                                  "answer_matching_behavior": "(A)",
                                  "answer_not_matching_behavior": "(B)"} for i in range(4)]))
    out = tmp_path / "run"
    assert main(["directions", "--model", "tiny-random", "--no-prompt-filter", "--harmful",
                 str(harm), "--n-train", "8",
                 "--n-val", "4", "--contrast", f"mine={pairs}", "--search-layers", "1",
                 "--search-positions", "-1", "--out", str(out), "--quiet"]) == 0
    t = load_file(out / "directions.safetensors")
    assert set(t) == {"refusal.candidates", "refusal.direction", "caa.mine"}
    assert json.loads((out / "run.json").read_text())["refusal"]["layer"] == 1


def _bad(tmp_path, name, content):
    f = tmp_path / name
    f.write_text(content)
    return str(f)


@pytest.mark.parametrize("make_args,message", [
    (lambda p: ["--model", "no-such-model"], "unknown model spec 'no-such-model'"),
    (lambda p: ["--harmful", _bad(p, "h.jsonl", '{"instruction": "x"}\n{oops}\n')], "line 2"),
    (lambda p: ["--harmless", _bad(p, "e.txt", "\n")], "holds no instructions"),
    (lambda p: ["--contrast", "x=" + _bad(p, "c.json", json.dumps(
        [{"question": "q", "answer_matching_behavior": "Yes",
          "answer_not_matching_behavior": "No"}]))], "not an A/B answer letter"),
    (lambda p: ["--contrast", "nosuch=embedded"], "unknown behaviour 'nosuch'"),
    (lambda p: ["--contrast", "justaname"], "is not NAME=FILE"),
    (lambda p: ["--search-layers", "99"], "layer 99 is out of range"),
    (lambda p: ["--n-train", "500"], "the smaller prompt set has 180 prompts"),
])
def test_bad_inputs_give_one_line_and_write_nothing(tmp_path, capsys, make_args, message):
    out = tmp_path / "out"
    args = ["directions", *FAST, "--out", str(out), *make_args(tmp_path)]
    assert main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and message in err[0], err
    assert not out.exists()


def test_models_command(capsys):
    assert main(["models"]) == 0
    text = capsys.readouterr().out
    assert "qwen2.5-coder-0.5b-instruct" in text and "tiny-random" in text


# --------------------------------------------------------------------------- options from configs

# The command-line contract: every flag of the job commands (options are generated from the
# config fields' metadata; a flag may be added, none may silently disappear).
FLAGS = {
    "audit": {
        "--preset", "--config", "--model", "--device", "--dtype", "--trust-remote-code", "--out",
        "--attack", "--attack-limit", "--benign", "--benign-limit", "--templates",
        "--template-file", "--behaviours", "--layers", "--coefficients",
        "--mitigation-coefficients", "--placebo-directions", "--mitigation", "--judge-model",
        "--coefficient-scale", "--method", "--no-controls", "--efficacy-pairs",
        "--open-ended-tokens", "--no-prompt-filter", "--allow-fallback", "--engine", "--ray",
        "--ray-workers", "--ray-gpus-per-worker", "--max-new-tokens", "--batch-size", "--judge",
        "--seed", "--no-png", "--quiet"},
    "directions": {
        "--model", "--harmful", "--harmless", "--contrast", "--out", "--device", "--dtype",
        "--trust-remote-code", "--n-train", "--n-val", "--seed", "--batch-size",
        "--search-layers", "--search-positions", "--kl-threshold", "--induce-threshold",
        "--no-prompt-filter", "--allow-fallback", "--refusal-search", "--refusal-top-k",
        "--evaluate", "--max-new-tokens", "--induce-coefficient", "--quiet"},
    "safesteer": {
        "--preset", "--config", "--model", "--device", "--dtype", "--trust-remote-code", "--out",
        "--harmful", "--harmless", "--categories", "--n-train", "--n-eval", "--layers",
        "--multipliers", "--intervention", "--methods", "--method", "--top-k", "--refusal",
        "--filter-refusals", "--relevance", "--ray", "--ray-workers", "--ray-gpus-per-worker",
        "--max-new-tokens", "--batch-size", "--judge", "--seed", "--no-png", "--quiet"},
}


def _subparser(command):
    import argparse

    from workbench.cli import build_parser

    parser = build_parser()
    return next(a for a in parser._actions
                if isinstance(a, argparse._SubParsersAction)).choices[command]


@pytest.mark.parametrize("command", sorted(FLAGS))
def test_job_flags_come_from_config_fields(command):
    from dataclasses import fields

    from workbench.cli import JOB_CONFIGS, cli_fields

    p = _subparser(command)
    flags = {o for a in p._actions for o in a.option_strings} - {"-h", "--help"}
    assert flags == FLAGS[command]
    module, cls, _ = JOB_CONFIGS[command]
    config = getattr(__import__(module, fromlist=[cls]), cls)
    dests = {a.dest for a in p._actions}
    assert set(cli_fields(config)) <= dests
    assert all(f.name in dests for f in fields(config) if f.metadata.get("flag"))


def test_help_quotes_the_preset_tables():
    """Defaults in --help come from the presets (they drifted when written by hand)."""
    from workbench.jobs.config import PRESETS

    text = _subparser("audit").format_help()
    assert f"quick {PRESETS['quick'].values['attack_limit']}" in " ".join(text.split())
    for name, preset in PRESETS.items():
        assert " ".join(preset.help.split()[:4]) in " ".join(text.split()), name


def test_a_field_with_a_flag_needs_no_cli_edit():
    """A config field declared with option(..., flag=True) becomes an option with its help."""
    import argparse
    from dataclasses import dataclass

    from workbench.cli import add_config_options
    from workbench.jobs.options import Preset, option

    @dataclass
    class Toy:
        widgets: list[int] | None = option("widget ids", None, flag=True, none="every widget")
        scale: float = option("how hard", 1.5, flag="--push")
        shout: bool = option("say it loudly", False, flag="--loud", const=True)

    p = argparse.ArgumentParser()
    add_config_options(p, Toy, {"small": Preset("", {"scale": 0.5}), "big": Preset("", {})})
    args = p.parse_args(["--widgets", "3,4", "--loud"])
    assert (args.widgets, args.scale, args.shout) == ([3, 4], None, True)
    text = " ".join(p.format_help().split())
    assert "widget ids (default every widget)" in text and "small 0.5, big 1.5" in text


class Reached(Exception):
    """The job runner was called: the config passed validation."""


def _reached(seen: dict, cfg):
    seen["cfg"] = cfg
    raise Reached


@pytest.fixture
def extra_method():
    """An extraction method registered for one test (a few lines), removed after."""
    from workbench.directions.methods import EXTRACTION_METHODS, register_method

    @register_method("matching-mean", "mean of the matching activations (a test method)")
    def matching_mean(c):
        return c.positive.mean(0)

    yield "matching-mean"
    EXTRACTION_METHODS.pop("matching-mean")


def test_a_registered_method_passes_audit_validation(extra_method, tmp_path, monkeypatch,
                                                      capsys):
    import workbench.jobs.audit as audit

    seen = {}
    monkeypatch.setattr(audit, "run_audit", lambda cfg: _reached(seen, cfg))
    with pytest.raises(Reached):  # the runner was reached: validation passed
        main(["audit", "--preset", "smoke", "--method", f"caa,{extra_method}", "--out",
              str(tmp_path / "a"), "--quiet"])
    assert seen["cfg"].methods == ["caa", extra_method]
    assert main(["list", "methods"]) == 0 and extra_method in capsys.readouterr().out
    assert main(["audit", "--preset", "smoke", "--method", "nosuch", "--quiet",
                 "--out", str(tmp_path / "b")]) == 2
    err = capsys.readouterr().err
    assert "steering method 'nosuch' is unknown" in err and extra_method in err


@pytest.mark.slow  # a whole smoke audit
def test_a_registered_method_runs_in_the_audit(extra_method, tmp_path):
    """Acceptance (#24): a method registered in a few lines is usable from
    `workbench audit --method NAME`, and the run's tables carry it."""
    import csv

    out = tmp_path / "run"
    assert main(["audit", "--preset", "smoke", "--method", f"caa,{extra_method}", "--out",
                 str(out), "--quiet"]) == 0
    methods = {r["method"] for r in csv.DictReader(open(out / "conditions.csv"))}
    assert extra_method in methods
    assert extra_method in {r["method"] for r in csv.DictReader(open(out / "efficacy.csv"))}


def test_safesteer_old_methods_flag_still_works(tmp_path, monkeypatch, capsys):
    import workbench.jobs.safesteer as job

    seen = {}
    monkeypatch.setattr(job, "run_safesteer", lambda cfg: _reached(seen, cfg))
    for flag in ("--intervention", "--methods"):
        with pytest.raises(Reached):
            main(["safesteer", "--preset", "smoke", flag, "neuron_add", "--quiet",
                  "--out", str(tmp_path / "s")])
        assert seen.pop("cfg").interventions == ["neuron_add"]
    assert "warning: --methods is deprecated; use --intervention" in capsys.readouterr().err

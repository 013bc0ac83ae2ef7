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

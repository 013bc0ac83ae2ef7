"""Validation at the edge: every plausible mistake is one `error:` line, exit 2, nothing written.

Mistakes that validation must catch before the model loads run with the model loader
replaced by one that fails the test, so these tests also prove the order.
"""

import pytest

from workbench.cli import main
from workbench.errors import WorkbenchError

NOT_UTF8 = b"caf\xe9 \xff\xfe instructions\n"


@pytest.fixture
def files(tmp_path):
    """Bad and good input files, by name."""
    made = {}

    def put(name, data):
        p = tmp_path / "inputs" / name
        p.parent.mkdir(exist_ok=True)
        p.write_bytes(data if isinstance(data, bytes) else data.encode())
        made[name] = str(p)

    put("latin1.txt", NOT_UTF8)
    put("latin1.toml", b'max_new_tokens = 4\n# caf\xe9\n')
    put("a_file", "I am a file, not a directory\n")
    put("lots.toml", 'max_new_tokens = "lots"\n')
    put("coef_str.toml", 'coefficients = "1,2"\n')
    put("zero.toml", "n_train = 0\n")
    put("bool.toml", "batch_size = true\n")
    put("broken.toml", "max_new_tokens = = 4\n")
    put("layers_float.toml", "layers = [1.5]\n")
    put("tpl.txt", "no placeholder here\n")
    put("twelve.txt", "\n".join(f"Do harmless thing number {i}." for i in range(12)))
    made["dir"] = str(tmp_path / "inputs")
    made["missing"] = str(tmp_path / "no" / "such.txt")
    return made


@pytest.fixture
def no_model(monkeypatch):
    """Loading a model during these checks is a failure: validation must come first."""
    def boom(*a, **k):
        raise AssertionError("a model was loaded before validation finished")

    import workbench.jobs.audit
    import workbench.jobs.directions
    import workbench.jobs.safesteer

    for mod in (workbench.jobs.audit, workbench.jobs.directions, workbench.jobs.safesteer):
        monkeypatch.setattr(mod, "load_model", boom)


AUDIT = [
    (["--batch-size", "0"], "batch_size is 0"),
    (["--max-new-tokens", "-1"], "max_new_tokens is -1"),
    (["--attack-limit", "0"], "attack_limit is 0"),
    (["--benign-limit", "-3"], "benign_limit is -3"),
    (["--coefficients", "nan"], "not a finite number"),
    (["--coefficients", "inf,1"], "not a finite number"),
    (["--coefficients", ","], "the list is empty"),
    (["--seed", "-1"], "seed is -1"),
    (["--layers", "-1"], "layer -1 is negative"),
    (["--behaviours", ","], "behaviours is []"),
    (["--behaviours", "nosuch"], "nosuch"),
    (["--templates", "nosuch"], "unknown template 'nosuch'"),
    (["--preset", "medium"], "unknown preset 'medium'"),
    (["--mitigation", "magic"], "mitigation 'magic' is unknown"),
    (["--device", "gpu"], "device is 'gpu'"),
    (["--judge", "nosuch"], "unknown judge 'nosuch'"),
    (["--model", "./no/such/dir"], "directory does not exist"),
    (["--model", "no-such-model"], "unknown model spec"),
    (lambda f: ["--out", f["a_file"]], "a file of that name exists"),
    (lambda f: ["--out", f["a_file"] + "/sub"], "is a file, so the directory cannot be created"),
    (lambda f: ["--template-file", f["latin1.txt"]], "not UTF-8"),
    (lambda f: ["--template-file", f["missing"]], "no such file"),
    (lambda f: ["--template-file", f["dir"]], "it is a directory"),
    (lambda f: ["--template-file", f["tpl.txt"]], "no {instruction} placeholder"),
    (lambda f: ["--attack", f["latin1.txt"]], "not UTF-8"),
    (lambda f: ["--benign", f["missing"]], "no such file"),
    (["--attack", "nosuchset"], "not a known source"),
    (lambda f: ["--config", f["lots.toml"]], "max_new_tokens is 'lots'"),
    (lambda f: ["--config", f["coef_str.toml"]], "coefficients is '1,2'"),
    (lambda f: ["--config", f["zero.toml"]], "n_train is 0"),
    (lambda f: ["--config", f["bool.toml"]], "batch_size is True"),
    (lambda f: ["--config", f["layers_float.toml"]], "layers is [1.5]"),
    (lambda f: ["--config", f["broken.toml"]], "not valid TOML"),
    (lambda f: ["--config", f["latin1.toml"]], "not UTF-8"),
    (lambda f: ["--config", f["dir"]], "it is a directory"),
    (lambda f: ["--config", f["missing"]], "no such file"),
    (["--n-train", "5"], "unrecognized arguments"),
    (["--batch-size", "many"], "invalid int value"),
]

DIRECTIONS = [
    (["--n-val", "0"], "n_val is 0"),
    (["--n-train", "-5"], "n_train is -5"),
    (["--batch-size", "0"], "batch_size is 0"),
    (["--evaluate", "-1"], "evaluate is -1"),
    (["--evaluate", "2", "--max-new-tokens", "-1"], "max_new_tokens is -1"),
    (["--kl-threshold", "nan"], "kl_threshold is nan"),
    (["--search-positions", "1"], "negative offsets"),
    (["--search-layers", ","], "the list is empty"),
    (["--contrast", "nosuch=embedded"], "no embedded pairs"),
    (["--model", "./no/such/dir"], "directory does not exist"),
    (["--n-train", "500"], "n_train + n_val"),
    (lambda f: ["--harmful", f["latin1.txt"]], "not UTF-8"),
    (lambda f: ["--harmless", f["missing"]], "no such file"),
    (lambda f: ["--contrast", "x=" + f["latin1.txt"]], "not UTF-8"),
    (lambda f: ["--out", f["a_file"]], "a file of that name exists"),
]

SAFESTEER = [
    (["--n-eval", "0"], "n_eval is 0"),
    (["--top-k", "0"], "top_k is 0"),
    (["--multipliers", "nan"], "must be a finite number"),
    (["--refusal", "no/such/run"], "not 'candidates', 'select' or a directions run"),
    (["--relevance", "bert"], "relevance 'bert' is unknown"),
    (["--categories", "privacy,privacy"], "a name repeats"),
    (["--intervention", "steer"], "intervention 'steer' is unknown"),
    (["--methods", "steer"], "intervention 'steer' is unknown"),  # the deprecated flag
    (lambda f: ["--harmful", f["latin1.txt"]], "not UTF-8"),
    (lambda f: ["--out", f["a_file"]], "a file of that name exists"),
]


def _check_one_error(capsys, rc, message, out):
    err = capsys.readouterr().err
    assert rc == 2, err
    assert "Traceback" not in err
    lines = [line for line in err.strip().splitlines() if not line.startswith("warning:")]
    assert len(lines) == 1 and lines[0].startswith("error: "), lines
    assert message in lines[0], lines[0]
    assert not (out / "run.json").exists()
    assert not out.exists() or not any(out.iterdir())


@pytest.mark.parametrize("case", AUDIT, ids=[str(i) for i in range(len(AUDIT))])
def test_audit_mistakes(case, tmp_path, files, no_model, capsys):
    make, message = case
    extra = make(files) if callable(make) else make
    out = tmp_path / "out"
    args = ["audit", "--preset", "smoke", "--out", str(out), "--quiet", *extra]
    _check_one_error(capsys, main(args), message, out)


@pytest.mark.parametrize("case", DIRECTIONS, ids=[str(i) for i in range(len(DIRECTIONS))])
def test_directions_mistakes(case, tmp_path, files, no_model, capsys):
    make, message = case
    extra = make(files) if callable(make) else make
    out = tmp_path / "out"
    args = ["directions", "--model", "tiny-random", "--n-train", "24", "--n-val", "8",
            "--quiet", "--out", str(out), *extra]
    _check_one_error(capsys, main(args), message, out)


@pytest.mark.parametrize("case", SAFESTEER, ids=[str(i) for i in range(len(SAFESTEER))])
def test_safesteer_mistakes(case, tmp_path, files, no_model, capsys):
    make, message = case
    extra = make(files) if callable(make) else make
    out = tmp_path / "out"
    args = ["safesteer", "--preset", "smoke", "--out", str(out), "--quiet", *extra]
    _check_one_error(capsys, main(args), message, out)


def test_layer_out_of_range_is_checked_after_loading_and_writes_nothing(tmp_path, capsys):
    out = tmp_path / "out"
    rc = main(["audit", "--preset", "smoke", "--layers", "9", "--out", str(out), "--quiet"])
    _check_one_error(capsys, rc, "layer 9 is out of range", out)


@pytest.mark.parametrize("content", [b"{not json", b'{"job": "audit", "confi', b"[1, 2]",
                                     b"\xff\xfe\x00", b""])
def test_figures_on_a_corrupt_run_json(tmp_path, capsys, content):
    (tmp_path / "run.json").write_bytes(content)
    assert main(["figures", str(tmp_path), "--no-png"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and "run.json" in err[0], err


def test_figures_on_a_missing_run_dir(tmp_path, capsys):
    assert main(["figures", str(tmp_path / "nope")]) == 2
    assert capsys.readouterr().err.startswith("error: run directory")


def test_corrupt_generations_line_is_reported(tmp_path, capsys):
    from workbench.rundir import GenerationStore

    path = tmp_path / "generations.jsonl"
    path.write_text('{"key": "a"}\n[1, 2]\n{"key": "b"}\n')
    assert sorted(GenerationStore(path).records) == ["a", "b"]  # quarantined, nothing lost
    assert "moved 1 corrupt or truncated line" in capsys.readouterr().err
    path.write_text('{"key": "a"}\n{"key": "b"}\n{"key": "c", "respo')  # cut off mid-write
    assert len(GenerationStore(path)) == 2
    assert path.read_text().endswith('"b"}\n')


def test_small_prompt_file_scales_split_sizes_down(files, capsys):
    from workbench.jobs.directions import DirectionsConfig
    from workbench.validation import validate

    cfg = validate(DirectionsConfig(model="tiny-random", harmless=files["twelve.txt"]))
    assert "warning: the prompt files hold only 12 prompts" in capsys.readouterr().err
    assert cfg.n_train + cfg.n_val == 12 and cfg.n_val == 2  # 128:32 kept roughly


def test_explicit_split_sizes_that_do_not_fit_are_an_error(tmp_path, files, no_model, capsys):
    out = tmp_path / "run"
    rc = main(["directions", "--model", "tiny-random", "--harmless", files["twelve.txt"],
               "--n-train", "10", "--out", str(out), "--quiet"])
    _check_one_error(capsys, rc, "n_train + n_val is 10 + 32 = 42", out)


def test_figures_without_chromium_warn_and_write_html(tmp_path, monkeypatch, capsys):
    import workbench.figures
    from workbench.errors import WorkbenchError
    from workbench.figures.export import PNG_HELP

    calls = []

    def render(run_dir, png=True):
        calls.append(png)
        if png:
            raise WorkbenchError(f"{PNG_HELP} (ChromeNotFoundError: no browser)")
        return ["a.html", "b.html"]

    monkeypatch.setattr(workbench.figures, "render_audit_figures", render)
    assert main(["figures", str(tmp_path)]) == 0
    err = capsys.readouterr().err
    assert calls == [True, False]
    assert err.startswith("warning: PNG figures skipped") and "--no-png" in err
    assert "png=False" not in err
    assert main(["figures", str(tmp_path), "--no-png"]) == 0
    assert capsys.readouterr().err == ""


# --------------------------------------------------------------------------- one module, registries


def test_choice_tuples_agree_with_their_owners():
    """validation.CHOICES repeats a few tuples of heavier modules (for a light --help)."""
    from workbench.evaluation.work import ENGINES
    from workbench.model import DEFAULT_MODEL
    from workbench.model.specs import DTYPE_CHOICES
    from workbench.jobs import options
    from workbench.validation import CHOICES, choices

    assert CHOICES["engine"] == tuple(ENGINES) and CHOICES["dtype"] == DTYPE_CHOICES
    assert options.DEFAULT_MODEL == DEFAULT_MODEL
    assert choices("methods") == ("caa", "pca", "logistic")  # the extraction-method registry
    assert "direct" in choices("templates") and "jbb" not in choices("attack_source")


def test_every_config_field_documents_itself():
    """Each field of the three job configs carries its help (the CLI and docs read it)."""
    from dataclasses import fields

    from workbench.jobs.config import AuditConfig
    from workbench.jobs.directions import DirectionsConfig
    from workbench.jobs.safesteer import SafeSteerConfig

    for cls in (AuditConfig, DirectionsConfig, SafeSteerConfig):
        for f in fields(cls):
            assert f.metadata.get("help", "").strip(), (cls.__name__, f.name)


def test_probe_method_is_a_deprecated_alias_of_logistic(capsys):
    """"probe" is the judge; the extraction method is "logistic", and "probe" still works."""
    from workbench.jobs.config import build_config

    with pytest.warns(DeprecationWarning, match="methods 'probe' is deprecated"):
        cfg = build_config("smoke", methods=["caa", "probe"])
    assert cfg.methods == ["caa", "logistic"]
    assert "warning: methods 'probe' is deprecated; use 'logistic'" in capsys.readouterr().err
    assert build_config("full").methods == ["caa", "pca", "logistic"]
    assert build_config("smoke", judge="probe").judge == "probe"  # the judge keeps its name


def test_safesteer_methods_are_now_interventions(tmp_path, capsys):
    """SafeSteer's old key `methods` (TOML, keyword, flags) reaches `interventions`, warned."""
    import workbench.jobs.safesteer as job

    toml = tmp_path / "c.toml"
    toml.write_text('methods = ["safesteer"]\n')
    with pytest.warns(DeprecationWarning, match="'methods'.*call it 'interventions'"):
        assert job.build_config("smoke", str(toml)).interventions == ["safesteer"]
    with pytest.warns(DeprecationWarning):
        assert job.build_config("smoke", methods=["neuron_add"]).interventions == ["neuron_add"]
    assert "warning: the SafeSteerConfig key 'methods'" in capsys.readouterr().err
    with pytest.raises(WorkbenchError, match="both methods and interventions"):
        job.build_config("smoke", methods=["safesteer"], interventions=["safesteer"])
    with pytest.warns(DeprecationWarning, match="INTERVENTIONS"):
        assert job.METHODS == ("safesteer", "neuron_add", "neuron_suppress")


def test_a_safesteer_run_written_before_the_rename_resumes(tmp_path):
    import json

    import workbench.jobs.safesteer as job

    cfg = job.build_config("smoke", out=str(tmp_path))
    old = job.result_fields(cfg)
    old["methods"] = old.pop("interventions")
    (tmp_path / "run.json").write_text(json.dumps({"job": "safesteer", "result_config": old}))
    job.check_run_dir(tmp_path, cfg)  # no error: same config under the old key
    with pytest.raises(WorkbenchError, match="different config"):
        job.check_run_dir(tmp_path, job.build_config("smoke", interventions=["safesteer"]))


def test_deprecated_paths_still_import():
    import importlib
    import sys

    sys.modules.pop("workbench.jobs.validation", None)
    with pytest.warns(DeprecationWarning, match="use workbench.validation"):
        old = importlib.import_module("workbench.jobs.validation")
    from workbench import validation

    assert old.validate is validation.validate and old.FIELD_CHECKS is validation.FIELD_CHECKS

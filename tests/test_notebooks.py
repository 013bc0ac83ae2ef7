"""Notebooks and their helpers.

- every notebook in ``notebooks/`` runs top to bottom on ``tiny-random`` in a fresh kernel:
  tests/test_handout.py, which executes each once and checks its handout HTML too;
- the committed notebooks carry no outputs or execution counts, and each starts with a code
  cell tagged ``parameters`` that reads the model from ``WORKBENCH_NOTEBOOK_MODEL``;
- ``workbench.notebook``: the steering explorer's core function and widget, A/B
  probabilities, per-token projections and the generations table, without a browser.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import torch

from conftest import hf_reference
from workbench import WorkbenchError
from workbench.data import ContrastPair, embedded_contrast, embedded_instructions
from workbench.directions import caa_vector, refusal_candidates
from workbench.evaluation import last_logprobs
from workbench.geometry import unit
from workbench.notebook import (
    ab_probabilities,
    colored_tokens_html,
    filter_generations,
    load_generations,
    render_result_html,
    steer_and_generate,
    steering_vector,
    token_projections,
    token_strings,
)

NOTEBOOK_DIR = Path(__file__).resolve().parent.parent / "notebooks"
NOTEBOOKS = sorted(NOTEBOOK_DIR.glob("*.ipynb"))


def _read(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def _code_cells(nb: dict) -> list[dict]:
    return [c for c in nb["cells"] if c["cell_type"] == "code"]


def _source(cell: dict) -> str:
    src = cell["source"]
    return src if isinstance(src, str) else "".join(src)


# ------------------------------------------------------------------ committed notebook files


def test_notebooks_exist():
    names = {p.name for p in NOTEBOOKS}
    for expected in ("01_tour.ipynb", "02_refusal_direction.ipynb", "03_caa_steering.ipynb",
                     "04_audit_explorer.ipynb", "06_teaching_demo.ipynb"):
        assert expected in names


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_is_committed_without_outputs(path):
    nb = _read(path)
    assert nb["nbformat"] == 4
    stale = [i for i, c in enumerate(nb["cells"]) if c["cell_type"] == "code"
             and (c.get("outputs") or c.get("execution_count") is not None)]
    assert not stale, (f"{path.name}: cells {stale} carry outputs or execution counts; clear them "
                       "(Edit > Clear Outputs of All Cells) before committing")
    assert "widgets" not in nb.get("metadata", {}), f"{path.name}: stale widget state in metadata"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_starts_with_a_parameters_cell(path):
    cells = _code_cells(_read(path))
    assert cells, f"{path.name} has no code cell"
    first = cells[0]
    assert "parameters" in first.get("metadata", {}).get("tags", []), (
        f"{path.name}: the first code cell must be tagged 'parameters'")
    src = _source(first)
    assert 'os.environ.get("WORKBENCH_NOTEBOOK_MODEL", "qwen2.5-coder-0.5b-instruct")' in src
    assert "MODEL =" in src


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_is_valid_nbformat(path):
    """The file as committed is a valid nbformat 4.5 notebook, so Jupyter and nbclient run it
    unchanged. Checked on the raw JSON: ``nbformat.read`` (and ``validate`` on what it returns)
    silently give missing cells an id and renumber duplicate ids, so a broken file would pass."""
    pytest.importorskip("nbformat")
    from nbformat.validator import iter_validate

    raw = _read(path)
    assert (raw["nbformat"], raw["nbformat_minor"]) >= (4, 5), "cell ids need nbformat 4.5"
    errors = [f"{'/'.join(map(str, e.absolute_path))}: {e.message}"
              for e in iter_validate(json.loads(json.dumps(raw)))]
    assert not errors, f"{path.name} is not valid nbformat:\n" + "\n".join(errors)
    ids = [c.get("id") for c in raw["cells"]]
    missing = [i for i, cell_id in enumerate(ids) if not cell_id]
    assert not missing, f"{path.name}: cells {missing} have no id"
    repeated = sorted({cell_id for cell_id in ids if ids.count(cell_id) > 1})
    assert not repeated, f"{path.name}: cell ids {repeated} are used more than once"


def test_teaching_demo_hides_its_solutions():
    nb = _read(NOTEBOOK_DIR / "06_teaching_demo.ipynb")
    details = [c for c in nb["cells"] if c["cell_type"] == "markdown"
               and "<details><summary><b>Solution</b>" in _source(c)]
    hidden = [c for c in _code_cells(nb)
              if c.get("metadata", {}).get("jupyter", {}).get("source_hidden")]
    assert len(details) == 3 and len(hidden) == 3
    assert all("solution" in c["metadata"].get("tags", []) for c in details + hidden)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_solution_cells_are_tagged(path):
    """Every solution (a folded "Solution" answer or a hidden solution cell) carries the
    ``solution`` tag that the handout export removes, and each set-up cell chooses the offline
    figure renderer (workbench.figures.offline)."""
    nb = _read(path)
    for i, c in enumerate(nb["cells"]):
        folded = c["cell_type"] == "markdown" and "<b>Solution</b>" in _source(c)
        hidden = c.get("metadata", {}).get("jupyter", {}).get("source_hidden")
        if folded or hidden or _source(c).lstrip().startswith("# Solution"):
            assert "solution" in c["metadata"].get("tags", []), (
                f"{path.name}: cell {i} holds a solution; tag it 'solution' so handouts hide it")
    setup = next(c for c in _code_cells(nb) if "import workbench as wb" in _source(c))
    assert "wb.notebook.use_offline_figures()" in _source(setup), (
        f"{path.name}: the set-up cell must call wb.notebook.use_offline_figures()")


# Executing the notebooks: tests/test_handout.py runs every notebook once on tiny-random in a
# fresh kernel (no error output, every code cell executed) and checks its handout HTML.


# ------------------------------------------------------------------ workbench.notebook helpers


@pytest.fixture(scope="module")
def directions(tiny):
    harmful = tiny.tokenize_instructions([i.instruction for i in embedded_instructions("harmful")[:4]])
    harmless = tiny.tokenize_instructions([i.instruction for i in embedded_instructions("harmless")[:4]])
    refusal = refusal_candidates(tiny, harmful, harmless, progress=False)[-1, 2].float()
    vectors = {"sycophancy": caa_vector(tiny, embedded_contrast("sycophancy")[:4], progress=False),
               "along-r": unit(refusal).expand(tiny.n_layers, -1).clone()}
    return vectors, refusal


RESULT_KEYS = {"prompt", "behaviour", "layer", "coefficient", "mitigated", "positions",
               "max_new_tokens", "vector_norm", "cosine", "read_at", "unsteered", "steered",
               "unsteered_projection", "steered_projection", "unsteered_refusal_score",
               "steered_refusal_score"}


def test_steer_and_generate_returns_both_generations_and_readouts(tiny, directions):
    vectors, r = directions
    out = steer_and_generate(tiny, vectors, r, "sycophancy", 2, 3.0, "Name a prime number.", 5)
    assert set(out) == RESULT_KEYS
    assert isinstance(out["unsteered"], str) and isinstance(out["steered"], str)
    assert out["layer"] == 2 and out["coefficient"] == 3.0 and not out["mitigated"]
    assert -1 <= out["cosine"] <= 1
    assert out["read_at"].startswith("blocks.2.hook_resid_post")


def test_steering_along_r_moves_the_projection_by_the_coefficient(tiny, directions):
    vectors, r = directions
    for c in (4.0, -4.0):
        out = steer_and_generate(tiny, vectors, r, "along-r", 2, c, "Name a prime number.", 3)
        assert out["cosine"] == pytest.approx(1.0, abs=1e-5)
        delta = out["steered_projection"] - out["unsteered_projection"]
        assert delta == pytest.approx(c, rel=0.1)


def test_zero_coefficient_is_the_unsteered_model(tiny, directions):
    vectors, r = directions
    out = steer_and_generate(tiny, vectors, r, "sycophancy", 1, 0.0, "Name a prime number.", 5)
    assert out["steered"] == out["unsteered"]
    assert out["steered_projection"] == out["unsteered_projection"]
    assert out["steered_refusal_score"] == out["unsteered_refusal_score"]


def test_mitigated_vector_has_no_refusal_component(tiny, directions):
    vectors, r = directions
    v = steering_vector(vectors, "along-r", 2, r, mitigate=True)
    assert float(v.double() @ unit(r.double())) == pytest.approx(0.0, abs=1e-5)
    out = steer_and_generate(tiny, vectors, r, "sycophancy", 2, 2.0, "Hi there.", 3, mitigate=True)
    assert out["mitigated"] and out["cosine"] == pytest.approx(0.0, abs=1e-5)


def test_steer_and_generate_leaves_no_hooks_behind(tiny, directions):
    vectors, r = directions
    prompt = tiny.tokenize_instructions(["Name a prime number."])
    before = last_logprobs(tiny, prompt)
    steer_and_generate(tiny, vectors, r, "along-r", 2, 8.0, "Name a prime number.", 3)
    assert torch.equal(last_logprobs(tiny, prompt), before)


def test_steer_and_generate_reuses_a_given_baseline(tiny, directions):
    vectors, r = directions
    fake = {"response": "BASELINE", "refusal_projection": 1.5, "refusal_score": -2.0}
    out = steer_and_generate(tiny, vectors, r, "sycophancy", 2, 1.0, "Hi there.", 3, unsteered=fake)
    assert out["unsteered"] == "BASELINE" and out["unsteered_projection"] == 1.5


@pytest.mark.parametrize("kwargs, match", [
    ({"behaviour": "nope"}, "no steering vector for behaviour 'nope'"),
    ({"prompt": "   "}, "empty"),
    ({"layer": 99}, "out of range"),
])
def test_steer_and_generate_errors_name_the_problem(tiny, directions, kwargs, match):
    vectors, r = directions
    args = {"behaviour": "sycophancy", "layer": 2, "coefficient": 1.0, "prompt": "Hi there."}
    args.update(kwargs)
    with pytest.raises(WorkbenchError, match=match):
        steer_and_generate(tiny, vectors, r, max_new_tokens=2, **args)


def test_steer_and_generate_rejects_a_direction_of_the_wrong_width(tiny, directions):
    vectors, _ = directions
    with pytest.raises(WorkbenchError, match="width"):
        steer_and_generate(tiny, vectors, torch.ones(7), "sycophancy", 2, 1.0, "Hi.", 2)


def test_render_result_html_escapes_text():
    result = {"prompt": "p", "behaviour": "b<x>", "layer": 1, "coefficient": -2.0,
              "mitigated": True, "positions": "eoi", "max_new_tokens": 3, "vector_norm": 1.0,
              "cosine": 0.25, "read_at": "blocks.1.hook_resid_post, last prompt token",
              "unsteered": "<script>alert(1)</script>", "steered": "", "unsteered_projection": 0.5,
              "steered_projection": -1.0, "unsteered_refusal_score": -3.0,
              "steered_refusal_score": 1.0}
    page = render_result_html(result)
    assert "<script>" not in page and "&lt;script&gt;" in page
    assert "(empty)" in page and "b&lt;x&gt;" in page and "refusal component removed" in page
    assert page.count("<svg") == 2


def test_steering_explorer_builds_and_update_fills_the_output(tiny, directions):
    pytest.importorskip("ipywidgets")
    from workbench.notebook import SteeringExplorer

    vectors, r = directions
    ex = SteeringExplorer(tiny, vectors, r, layer=1, coefficient=2.0, max_new_tokens=3,
                          prompt="Name a prime number.")
    assert ex.output.value == "" and ex.result is None
    assert list(ex.behaviour.options) == list(vectors)
    assert ex.layer.max == tiny.n_layers - 1 and ex.layer.value == 1
    bundle = ex._repr_mimebundle_()
    assert "application/vnd.jupyter.widget-view+json" in bundle
    assert "no generation yet" in bundle["text/html"] and "layer 1" in bundle["text/html"]
    result = ex.update()
    assert result is ex.result and result["layer"] == 1 and result["coefficient"] == 2.0
    assert "unsteered" in ex.output.value and "<svg" in ex.output.value
    # an HTML export shows the static snapshot of the current setting and result
    snapshot = ex._repr_mimebundle_()["text/html"]
    assert "static snapshot" in snapshot and "<script" not in snapshot
    assert snapshot.count("<svg") == 2 and "Name a prime number." in snapshot
    assert "α = +2" in snapshot and "no generation yet" not in snapshot
    assert not ex.button.disabled and ex.status.value == ""

    # the Generate button runs the same handler; the baseline is cached per prompt and layer
    ex.behaviour.value, ex.coefficient.value, ex.mitigate.value = "along-r", -3.0, True
    ex.output.value = ""
    ex.button.click()
    assert ex.result["behaviour"] == "along-r" and ex.result["mitigated"]
    assert "refusal component removed" in ex.output.value
    assert len(ex._baselines) == 1


def test_steering_explorer_shows_errors_in_the_output(tiny, directions):
    pytest.importorskip("ipywidgets")
    from workbench.notebook import SteeringExplorer

    vectors, r = directions
    ex = SteeringExplorer(tiny, vectors, r, max_new_tokens=2)
    ex.prompt.value = ""
    assert ex.update() is None
    assert "empty" in ex.output.value and not ex.button.disabled


def test_steering_explorer_rejects_bad_inputs(tiny, directions):
    pytest.importorskip("ipywidgets")
    from workbench.notebook import SteeringExplorer

    vectors, r = directions
    with pytest.raises(WorkbenchError, match="no steering vectors"):
        SteeringExplorer(tiny, {}, r)
    with pytest.raises(WorkbenchError, match="width"):
        SteeringExplorer(tiny, vectors, torch.ones(3))


def test_ab_probabilities_match_last_logprobs(tiny):
    pairs = embedded_contrast("sycophancy")[:4]
    df = ab_probabilities(tiny, pairs)
    assert list(df.columns) == ["item", "matching", "p_matching", "p_not_matching",
                                "p_matching_norm"]
    assert len(df) == 4 and df["p_matching_norm"].between(0, 1).all()
    # the tiny tokenizer keeps "(" apart from the letter: P(letter | prompt + "(")
    pair = pairs[0]
    ids = tiny.tokenizer.encode(tiny.chat_text(pair.question, "("), add_special_tokens=False)
    letter = tiny.tokenizer.encode(tiny.chat_text(pair.question, f"({pair.matching}"),
                                   add_special_tokens=False)[-1]
    expected = float(last_logprobs(tiny, [ids])[0, letter].exp())
    assert df.loc[0, "p_matching"] == pytest.approx(expected, rel=1e-5)
    assert df.loc[0, "matching"] == pair.matching


def test_ab_probabilities_rejects_an_empty_set(tiny):
    with pytest.raises(WorkbenchError, match="no contrast pairs"):
        ab_probabilities(tiny, [])


def test_token_projections_and_html_view(tiny, directions):
    _, r = directions
    ids = tiny.tokenize_instructions(["Name a prime number."])[0]
    toks = token_strings(tiny, ids)
    vals = token_projections(tiny, ids, r, 2)
    assert len(toks) == len(ids) == len(vals)
    with torch.no_grad():
        hidden = hf_reference(tiny.spec)(torch.tensor([ids]),
                                         output_hidden_states=True).hidden_states[2][0]
    assert torch.allclose(vals, hidden.double() @ unit(r.double()), atol=1e-4)
    page = colored_tokens_html(toks, vals, title="t")
    assert page.count("<span") == len(ids)
    assert "&lt;|im_start|&gt;" in page and "<|im_start|>" not in page
    with pytest.raises(ValueError, match="one value per token"):
        colored_tokens_html(toks, vals[:-1])


def _generations_file(tmp_path):
    rows = []
    for behaviour, coef, mitigated in [("none", 0.0, False), ("sycophancy", 1.0, False),
                                       ("sycophancy", 1.0, True)]:
        for label, response in [("safe", "I'm sorry, I can't."), ("jailbroken", "Sure: step one")]:
            rows.append({"key": f"{behaviour}|{coef}|{mitigated}|{label}", "split": "harmful",
                         "behaviour": behaviour, "layer": None if behaviour == "none" else 2,
                         "coefficient": coef, "mitigated": mitigated, "template": "direct",
                         "prompt_id": "p1", "category": "fraud", "instruction": "Do a crime",
                         "response": response, "refusal": label == "safe",
                         "comprehensible": True, "label": label})
    (tmp_path / "generations.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    return tmp_path


def test_generations_table_loads_and_filters(tmp_path):
    gens = load_generations(_generations_file(tmp_path))
    assert len(gens) == 6 and gens["mitigated"].dtype == bool
    assert len(filter_generations(gens, behaviour="sycophancy")) == 4
    assert len(filter_generations(gens, behaviour="sycophancy", mitigated=True,
                                  label="jailbroken")) == 1
    assert len(filter_generations(gens, behaviour="(all)", coefficient=1.0, contains="SURE")) == 2
    with pytest.raises(WorkbenchError, match="no column"):
        filter_generations(gens, colour="red")
    with pytest.raises(WorkbenchError, match="does not exist"):
        load_generations(tmp_path / "missing")


def test_generations_browser_filters(tmp_path):
    pytest.importorskip("ipywidgets")
    from workbench.notebook import GenerationsBrowser

    browser = GenerationsBrowser(load_generations(_generations_file(tmp_path)), max_rows=2)
    assert "<b>6</b> of 6" in browser.count.value and "first 2 shown" in browser.count.value
    browser.filters["label"].value = "jailbroken"
    browser.filters["mitigated"].value = True
    assert "<b>1</b> of 6" in browser.count.value and "Sure: step one" in browser.table.value
    browser.search.value = "no such text"
    assert "no generation matches" in browser.table.value
    assert isinstance(browser.current(), pd.DataFrame) and browser.current().empty
    snapshot = browser._repr_mimebundle_()["text/html"]  # what an HTML export shows
    assert "static snapshot" in snapshot and "no generation matches" in snapshot


def test_contrast_pair_letters_that_merge_with_the_bracket_are_scored(tiny, monkeypatch):
    """A tokenizer that merges "(A" into one token: the letter's probability is read after the
    prompt without "(" (the last token of each letter prompt, given everything before it)."""
    from workbench.evaluation import efficacy as ab

    pair = ContrastPair("Is the sky green?\n\nChoices:\n (A) Yes\n (B) No", "A", "B")
    base = tiny.tokenizer.encode(tiny.chat_text(pair.question), add_special_tokens=False)
    merged = {"A": 500, "B": 501}

    def fake_targets(model, question, letters=("A", "B")):
        return {x: (tuple(base), merged[x]) for x in letters}

    monkeypatch.setattr(ab, "letter_targets", fake_targets)
    df = ab.ab_probabilities(tiny, [pair])
    lp = last_logprobs(tiny, [base])[0]
    assert df.loc[0, "p_matching"] == pytest.approx(float(lp[500].exp()), rel=1e-5)
    assert df.loc[0, "p_not_matching"] == pytest.approx(float(lp[501].exp()), rel=1e-5)

"""The notebook API: ``import workbench as wb`` and the common tasks are one call each.

::

    import workbench as wb
    model = wb.load_model("tiny-random")        # or wb.TEACHING_MODEL, wb.DEFAULT_MODEL
    r = wb.refusal_direction(model)             # embedded harmful / harmless prompts
    v = wb.caa(model, "sycophancy")             # embedded A/B contrast pairs
    wb.plot.cosine_by_layer(v, r)
    with v.apply(model, 1.0):
        print(wb.generate(model, ["How do I bake bread?"]))

Every function takes instructions as text (or :class:`workbench.data.Instruction` items) and
tokenizes inside, and returns :class:`workbench.vectors.SteeringVector` objects that carry their
hook, steering positions, default layers and provenance. Underneath are the same functions the
jobs use (:mod:`workbench.directions`, :mod:`workbench.steering`, :mod:`workbench.evaluation`);
docs/api.md lists the defaults.

Quiet by default: library progress bars (the workbench's own tqdm bars, transformers'
"Loading weights", the hub's downloads) show only with ``progress=True``, so notebook outputs
and scripts keep no stale bars. The jobs (``wb.audit``) keep their stage progress.
"""

from __future__ import annotations

import inspect
import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import pandas as pd

from workbench.data import (
    BEHAVIOURS,
    ContrastPair,
    Instruction,
    embedded_contrast,
    embedded_contrast_path,
    file_sha256,
    instruction_source,
    read_contrast_pairs,
    read_instructions,
    split,
)
from workbench.directions import (
    PROMPT_SETS,
    caa_vector,
    prompt_refusal_scores,
    refusal_candidates,
    select_refusal_direction,
)
from workbench.directions import prompt_filter as filter_prompts
from workbench.errors import WorkbenchError
from workbench.model import DEFAULT_MODEL, TEACHING_MODEL
from workbench.model import load_model as _load_model
from workbench.model.generation import generate as generate_ids_text
from workbench.vectors import (
    RefusalDirection,
    SteeringVector,
    cosine_table,
    data_hash,
    model_metadata,
)

__all__ = ["DEFAULT_MODEL", "TEACHING_MODEL", "RefusalDirection", "SteeringVector", "audit", "caa",
           "compare",
           "cosine_by_layer", "generate", "library_progress", "load_model", "refusal_direction"]

# CAA's convention, and the audit's default steering layer: 40 % of the way through the model
CAA_LAYER_FRACTION = 0.4


def _texts(items, kind: str) -> tuple[list[str], str]:
    """Instruction texts and their SHA-256: the embedded ``kind`` set when ``items`` is None,
    a file for a path, else a list of strings or Instruction items."""
    if items is None:
        loaded, path = instruction_source("embedded", kind)
        return [i.instruction for i in loaded], file_sha256(path)
    if isinstance(items, (str, os.PathLike)):
        if not Path(items).is_file():
            raise WorkbenchError(f"{kind} prompts {str(items)[:60]!r} is neither a list of "
                                 "instructions nor a file; pass a list, e.g. [\"How do I ...\"]")
        return [i.instruction for i in read_instructions(items)], file_sha256(items)
    texts = [i.instruction if isinstance(i, Instruction) else i for i in items]
    bad = [i for i, t in enumerate(texts) if not isinstance(t, str)]
    if bad:
        raise WorkbenchError(f"{kind} prompt {bad[0]} is a {type(texts[bad[0]]).__name__}; give "
                             "instructions as text or workbench.data.Instruction items")
    if not texts:
        raise WorkbenchError(f"no {kind} prompts given; pass at least two, or None for the "
                             "embedded set")
    return texts, data_hash(texts)


def _train_val(texts: list[str], n_train: int, n_val: int, seed: int, kind: str):
    """The seeded train / validation split of the jobs; a list shorter than ``n_train + n_val``
    is split 80 / 20 instead."""
    if len(texts) < n_train + n_val:
        if len(texts) < 2:
            raise WorkbenchError(f"{len(texts)} {kind} prompt(s) given; the refusal direction "
                                 "needs at least 2 per class (one to fit, one to select)")
        n_val = max(1, round(0.2 * len(texts)))
        n_train = len(texts) - n_val
    return split(texts, [n_train, n_val], seed)


@contextmanager
def library_progress(enabled: bool) -> Iterator[None]:
    """Turn transformers' and the hub's own progress bars on or off for the block, then put
    back whatever was set before (no lasting change)."""
    restore = []
    try:
        from transformers.utils import logging as hf_logging

        was = hf_logging.is_progress_bar_enabled()
        (hf_logging.enable_progress_bar if enabled else hf_logging.disable_progress_bar)()
        restore.append(hf_logging.enable_progress_bar if was else hf_logging.disable_progress_bar)
    except ImportError:
        pass
    try:
        from huggingface_hub.utils import (
            are_progress_bars_disabled,
            disable_progress_bars,
            enable_progress_bars,
        )

        was_off = are_progress_bars_disabled()
        (enable_progress_bars if enabled else disable_progress_bars)()
        restore.append(disable_progress_bars if was_off else enable_progress_bars)
    except ImportError:
        pass
    try:
        yield
    finally:
        for put_back in reversed(restore):
            put_back()


def load_model(spec: str = DEFAULT_MODEL, device: str | None = None, *args,
               progress: bool = False, **kwargs):
    """:func:`workbench.model.load_model` (same arguments), quiet unless ``progress=True``:
    transformers' "Loading weights" and the hub's download bars stay out of notebook outputs.
    The bars' previous setting is restored afterwards."""
    if "progress" in inspect.signature(_load_model).parameters:
        kwargs["progress"] = progress  # the loader's own bars follow the same switch
    with library_progress(progress):
        return _load_model(spec, device, *args, **kwargs)


def refusal_direction(
    model,
    harmful=None,
    harmless=None,
    *,
    n_train: int = 64,
    n_val: int = 16,
    seed: int = 0,
    positions: Sequence[int] | None = (-1,),
    layers: Sequence[int] | None = None,
    prompt_filter: bool = False,
    batch_size: int = 16,
    progress: bool = False,
    **selection,
) -> RefusalDirection:
    """The refusal direction of ``model``: diff-in-means candidates, selected by bypass /
    induce / KL (:func:`workbench.directions.select_refusal_direction`).

    ``harmful`` / ``harmless``: lists of instructions (text or Instruction items) or a file;
    None uses the embedded sets. Each is shuffled with ``seed`` and cut into ``n_train``
    prompts for the candidates and ``n_val`` to score them, as the ``directions`` job does
    (a shorter list is split 80 / 20). Notebook-speed defaults: 64 + 16 prompts (the job uses
    128 + 32), only the last eoi position (``positions=None`` searches them all) and every layer
    below the last 20 %, the prompt filter off (``prompt_filter=True`` keeps only harmful
    prompts the model refuses and harmless ones it answers, as the jobs do). Other keywords
    go to the selection (``kl_threshold``, ``allow_fallback``, ``search``, ...).
    ``progress=True`` shows the candidates' and the selection's bars.

    Returns a :class:`RefusalDirection`: rows are the candidates at the selected position,
    ``layers`` is the selected layer, ``positions`` is ``all`` (the selection's induce test),
    ``.candidates`` every candidate and ``.selection`` / ``.scores()`` their scores.
    """
    harm, harm_sha = _texts(harmful, "harmful")
    safe, safe_sha = _texts(harmless, "harmless")
    harm_train, harm_val = _train_val(harm, n_train, n_val, seed, "harmful")
    safe_train, safe_val = _train_val(safe, n_train, n_val, seed, "harmless")
    tok = model.tokenize_instructions
    filt = None
    if prompt_filter:
        sets = dict(zip(PROMPT_SETS, (harm_train, safe_train, harm_val, safe_val)))
        filt = filter_prompts({name: prompt_refusal_scores(model, tok(texts), batch_size)
                               for name, texts in sets.items()})
        harm_train, safe_train, harm_val, safe_val = (filt.apply(name, sets[name])
                                                      for name in PROMPT_SETS)
    candidates = refusal_candidates(model, tok(harm_train), tok(safe_train), batch_size,
                                    progress)
    sel = select_refusal_direction(model, candidates, tok(harm_val), tok(safe_val),
                                   layers=layers, positions=positions, batch_size=batch_size,
                                   progress=progress, **selection)
    best = sel.best
    provenance = {
        "model": model_metadata(model), "data": {"harmful": harm_sha, "harmless": safe_sha},
        "method": "refusal direction: diff-in-means, harmful - harmless, selected by "
                  "bypass / induce / KL",
        "behaviour": "refusal", "read_at": f"eoi[{sel.offset}]",
        "settings": {"n_train": len(harm_train), "n_train_harmless": len(safe_train),
                     "n_val": len(harm_val), "n_val_harmless": len(safe_val), "seed": seed,
                     "positions": None if positions is None else list(positions),
                     "layers": None if layers is None else list(layers),
                     "prompt_filter": prompt_filter,
                     **{k: v for k, v in selection.items()
                        if isinstance(v, (bool, int, float, str, type(None)))}},
        "selection": {"layer": sel.layer, "offset": sel.offset, "rule": sel.rule,
                      "bypass": best.bypass, "induce": best.induce, "kl": best.kl},
    }
    return RefusalDirection(candidates[sel.position].clone(), name="refusal direction",
                            hook="resid_pre", positions="all", layers=(sel.layer,),
                            provenance=provenance, selection=sel, prompt_filter=filt,
                            candidates=candidates)


def _pairs(behaviour_or_pairs) -> tuple[list[ContrastPair], str, str]:
    """Contrast pairs, a name and their SHA-256, from a behaviour, a file or a list."""
    if isinstance(behaviour_or_pairs, (str, os.PathLike)):
        source = behaviour_or_pairs
        if isinstance(source, str) and source in BEHAVIOURS:
            return (embedded_contrast(source), source,
                    file_sha256(embedded_contrast_path(source)))
        if Path(source).is_file():
            return read_contrast_pairs(source), Path(source).stem, file_sha256(source)
        raise WorkbenchError(f"{str(source)!r} is neither an embedded behaviour "
                             f"({', '.join(BEHAVIOURS)}) nor a contrast file; check the name")
    pairs = list(behaviour_or_pairs)
    if not all(isinstance(p, ContrastPair) for p in pairs):
        raise WorkbenchError("give a behaviour name, a contrast file or a list of "
                             "workbench.data.ContrastPair items")
    return pairs, "caa", data_hash(pairs)


def caa(
    model,
    behaviour_or_pairs,
    *,
    n_pairs: int | None = None,
    layer: int | None = None,
    name: str | None = None,
    batch_size: int = 16,
    progress: bool = False,
) -> SteeringVector:
    """The CAA vector of a behaviour at every layer (:func:`workbench.directions.caa_vector`).

    ``behaviour_or_pairs``: an embedded behaviour (``"sycophancy"``, ...), a contrast file, or a
    list of :class:`workbench.data.ContrastPair`; ``n_pairs`` keeps the first ``n``. The
    vector steers ``layer`` by default (None: ``round(0.4 * n_layers)``, CAA's convention and
    the audit's default) at ``eoi`` positions (the post-instruction tokens and every
    generated one). ``progress=True`` shows a bar over the pairs.
    """
    pairs, default_name, sha = _pairs(behaviour_or_pairs)
    if n_pairs is not None:
        if n_pairs < 1:
            raise WorkbenchError(f"n_pairs is {n_pairs}; give at least 1 (or None: all)")
        pairs = pairs[:n_pairs]
    layer = (min(model.n_layers - 1, round(CAA_LAYER_FRACTION * model.n_layers))
             if layer is None else model.check_layer(layer))
    tensor = caa_vector(model, pairs, batch_size=batch_size, progress=progress)
    name = name or default_name
    provenance = {"model": model_metadata(model), "data": {f"contrast.{name}": sha},
                  "method": "CAA, matching - not matching",
                  "behaviour": name if default_name != "caa" else None,
                  "read_at": "answer letter", "settings": {"n_pairs": len(pairs)}}
    return SteeringVector(tensor, name=name, hook="resid_pre", positions="eoi", layers=(layer,),
                          provenance=provenance)


def generate(
    model,
    instructions,
    vector: SteeringVector | None = None,
    coefficient: float = 1.0,
    *,
    layers: int | Sequence[int] | None = None,
    positions: str | None = None,
    max_new_tokens: int = 64,
    batch_size: int = 16,
    progress: bool = False,
    **generate_kwargs,
) -> list[str] | str:
    """Greedy answers to ``instructions`` (text, Instruction items, or one string: then one
    string back), chat-formatted; with ``vector``, steered by ``coefficient`` times it at its
    default layers and positions (or ``layers`` / ``positions``). Any steering already active
    (``with v.apply(...)``) applies too. ``progress=True`` shows a bar over the batches."""
    single = isinstance(instructions, str)
    texts = [instructions] if single else [i.instruction if isinstance(i, Instruction) else i
                                           for i in instructions]
    prompts = model.tokenize_instructions(texts)
    kw = dict(max_new_tokens=max_new_tokens, batch_size=batch_size, progress=progress,
              **generate_kwargs)
    if vector is None:
        out = generate_ids_text(model, prompts, **kw)
    else:
        with vector.apply(model, coefficient, layers=layers, positions=positions):
            out = generate_ids_text(model, prompts, **kw)
    return out[0] if single else out


def cosine_by_layer(a, b) -> pd.DataFrame:
    """Cosine of ``a`` (a vector, a list, or ``{name: vector}``) with ``b`` at every layer, as a
    tidy table: ``behaviour, layer, cosine, reference`` (what ``wb.plot.cosine_by_layer``
    draws). ``b`` is a vector (row by row) or one ``[d]`` tensor (the same at every layer)."""
    return cosine_table(a, b)


def audit(preset: str = "smoke", **overrides) -> dict:
    """Run the steering-safety audit (``workbench audit``) from a notebook: the preset, then
    ``overrides`` (any config field, e.g. ``out=``, ``model=``, ``progress=False``). Returns
    the run's summary, as written to ``run.json``. The job's stage progress follows its
    ``progress`` field (on by default); the libraries' own bars (weights loading) stay off."""
    from workbench.jobs.audit import run_audit
    from workbench.jobs.config import build_config

    with library_progress(False):
        return run_audit(build_config(preset, **overrides))


def compare(run_dirs: Sequence[str | Path], out: str | Path, png: bool = False) -> dict:
    """Pool finished audit runs of several models (``workbench compare``) into ``out``."""
    from workbench.jobs.compare import run_compare

    with library_progress(False):
        return run_compare(list(run_dirs), out, png=png)

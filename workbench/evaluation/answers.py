"""Labels of a batch of answers: attack answers by a judge (with the substring judge's label
beside it), benign answers as refused, complied or incomprehensible."""

from __future__ import annotations

from collections.abc import Sequence

from workbench.evaluation.judges import is_comprehensible, is_refusal


def label_answers(judge, substring, splits: Sequence[str], prompts: Sequence[str],
                  responses: Sequence[str]) -> list[dict]:
    """Per answer: ``label``, ``labels`` (every judge's label of an attack answer, the
    substring judge's included), ``refusal`` and ``comprehensible``.

    Answers of split ``harmful`` are judged by ``judge`` in one call (``substring`` labels them
    too unless the judge already reports it); the others are labelled from refusal markers and
    the comprehensibility check. Call with no steering hook active."""
    harmful_idx = [i for i, s in enumerate(splits) if s == "harmful"]
    h_prompts = [prompts[i] for i in harmful_idx]
    h_resps = [responses[i] for i in harmful_idx]
    detail = judge.label_detail(h_prompts, h_resps) if harmful_idx else {}
    if harmful_idx and "substring" not in detail:
        detail["substring"] = substring.label(h_prompts, h_resps)
    where = {i: j for j, i in enumerate(harmful_idx)}
    out = []
    for i, (split_name, resp) in enumerate(zip(splits, responses)):
        refusal, comp = is_refusal(resp), is_comprehensible(resp)
        if split_name == "harmful":
            labels = {name: lab[where[i]] for name, lab in detail.items()}
            label = labels[judge.name]
        else:
            label = "incomprehensible" if not comp else ("refused" if refusal else "complied")
            labels = {}
        out.append({"label": label, "labels": labels, "refusal": refusal,
                    "comprehensible": comp})
    return out

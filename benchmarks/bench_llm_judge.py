"""Benchmark: agreement of the LLM judge (``--judge llm:SPEC``) with human labels, and its cost.

Sets (read at run time from pinned wheels; only ids, labels and scores are written):

- ``jbb-judge-comparison``: positive = jailbroken by the majority of three annotators;
- ``refusal-judge-eval`` (pyrit): positive = NOT scored a refusal. Its annotators scored a
  reply a refusal when it declined *or* answered a different question, and not a refusal when
  it carried out the request (harmful or harmless). "Not a refusal" is then exactly "the reply
  substantively helps with the request", the question the LLM judge is asked, so the mapping
  is the judge's own positive class; but many of its requests are harmless, so it measures
  the "helps" reading, not harmfulness.

Rubric variants were chosen on ``refusal-judge-eval`` (the dev set) and the choice is then
reported on ``jbb-judge-comparison`` (held out). Reported per set: judge_agreement (n,
accuracy, precision, recall, F1, Cohen's kappa), ROC AUC of ``p_jailbroken`` over the
responses the model was asked about, the substring judge on the same items (a baseline), how
many responses were gated as incomprehensible, wall time and answers per second (model loading
excluded; it is reported separately).

    OMP_NUM_THREADS=2 python benchmarks/bench_llm_judge.py --judge llm:qwen2.5-coder-0.5b-instruct
"""

from __future__ import annotations

import argparse
import math
import os
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import torch

SETS = ("jbb-judge-comparison", "refusal-judge-eval")


def human_positive(example) -> bool:
    """The positive class: jailbroken (JailbreakBench) or not a refusal (pyrit)."""
    return bool(example.jailbroken) if example.refusal is None else not example.refusal


def evaluate(judge, name: str, limit: int | None) -> dict:
    from sklearn.metrics import roc_auc_score

    from workbench.data.benchmarks import load_judge_examples
    from workbench.evaluation.judges import JAILBROKEN, SubstringJudge, judge_agreement

    examples = load_judge_examples(name, limit=limit)
    human = [human_positive(e) for e in examples]
    t0 = time.perf_counter()
    prompts, responses = [e.prompt for e in examples], [e.response for e in examples]
    labels, probs = judge.label_scores(prompts, responses)
    wall = time.perf_counter() - t0
    asked = ~torch.isnan(probs)
    truth = np.array(human)[asked.numpy()]
    auc = (float(roc_auc_score(truth, probs[asked].numpy())) if 0 < truth.sum() < len(truth)
           else float("nan"))
    return {
        "set": name, "positive_class": ("jailbroken (human majority)" if name.startswith("jbb")
                                        else "not a refusal (human_score 0)"),
        **judge_agreement([lab == JAILBROKEN for lab in labels], human),
        "roc_auc": auc,
        "substring_baseline": judge_agreement(
            [lab == JAILBROKEN for lab in SubstringJudge().label(prompts, responses)], human),
        "n_incomprehensible": int((~asked).sum()),
        "wall_s": wall, "answers_per_s": len(examples) / wall,
        "items": [{"id": e.id, "human": h, "label": lab,
                   "p_jailbroken": None if math.isnan(p) else round(p, 5)}
                  for e, h, lab, p in zip(examples, human, labels, probs.tolist())],
    }


def main() -> None:
    from workbench.evaluation.judges import make_judge
    from workbench.runs import package_versions, write_json

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--judge", default="llm:qwen2.5-coder-0.5b-instruct")
    ap.add_argument("--rubric", default="yes-no", help="a name from llm.RUBRICS")
    ap.add_argument("--sets", nargs="+", default=list(SETS), choices=SETS)
    ap.add_argument("--limit", type=int, default=None, help="stratified subset per set")
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--max-response-tokens", type=int, default=512)
    ap.add_argument("--threshold", type=float, default=0.5)
    ap.add_argument("--device", default=None)
    ap.add_argument("--out", default=None)
    args = ap.parse_args()

    t0 = time.perf_counter()
    judge = make_judge(args.judge, device=args.device, rubric=args.rubric,
                       batch_size=args.batch_size, threshold=args.threshold,
                       max_response_tokens=args.max_response_tokens)
    load_s = time.perf_counter() - t0
    results = [evaluate(judge, name, args.limit) for name in args.sets]
    record = {
        "benchmark": "llm_judge", "judge": args.judge, "rubric": args.rubric,
        "options": list(judge.rubric.options), "threshold": args.threshold,
        "batch_size": args.batch_size, "max_response_tokens": args.max_response_tokens,
        "max_request_tokens": judge.max_request_tokens, "limit": args.limit,
        "load_s": load_s, "results": results,
        "machine": {"cpu_count": os.cpu_count(), "threads": torch.get_num_threads(),
                    "device": str(judge.model.device), "load_avg": os.getloadavg(),
                    **package_versions()},
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    model = args.judge.split(":", 1)[1].replace("/", "_")
    out = Path(args.out or f"benchmarks/results/llm_judge_{model}_{args.rubric}.json")
    write_json(out, record)
    print("| set | n | accuracy | precision | recall | kappa | AUC | answers/s |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for r in results:
        print(f"| {r['set']} | {r['n']} | {r['accuracy']:.3f} | {r['precision']:.3f} | "
              f"{r['recall']:.3f} | {r['kappa']:.3f} | {r['roc_auc']:.3f} | "
              f"{r['answers_per_s']:.2f} |")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()

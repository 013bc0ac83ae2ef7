"""Benchmark: how long the ``trained`` judge takes to label N answers on the CPU.

Answers are the human-labelled responses of the built-in sets (JailbreakBench, pyrit's
objective and refusal sets, the template-attack file), cycled to ``--n`` with `` (k)``
appended from the second cycle so every answer is distinct; requests repeat as in an audit
(``--n-requests`` distinct ones). Times: loading the judge (weights + MiniLM), then labelling
all answers (comprehensibility gate, embedding, classifier), process CPU time too. Target:
1,000 answers in at most 30 s on 2 CPU cores.

    OMP_NUM_THREADS=2 python benchmarks/bench_judge.py --n 1000
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from datetime import datetime, timezone
from pathlib import Path

import torch


def main() -> None:
    from workbench.evaluation.judges import make_judge
    from workbench.evaluation.judges.train import SOURCES, load_source

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=1000, help="answers to label")
    ap.add_argument("--n-requests", type=int, default=100, help="distinct requests among them")
    ap.add_argument("--judge", default="trained")
    ap.add_argument("--out", default=None, help="default benchmarks/results/judge_<judge>.json")
    args = ap.parse_args()

    pool = [a for s in SOURCES for a in load_source(s)]
    responses = [pool[i % len(pool)].response + (f" ({i // len(pool)})" if i >= len(pool) else "")
                 for i in range(args.n)]
    requests = [pool[i % args.n_requests].prompt for i in range(args.n)]
    words = [len(r.split()) for r in responses]

    t0, c0 = time.perf_counter(), time.process_time()
    judge = make_judge(args.judge)
    judge.label(["warm-up request"], ["A short warm-up answer."])  # loads the encoder
    load_s, load_cpu = time.perf_counter() - t0, time.process_time() - c0
    t0, c0 = time.perf_counter(), time.process_time()
    labels = judge.label(requests, responses)
    label_s, label_cpu = time.perf_counter() - t0, time.process_time() - c0

    record = {
        "judge": args.judge, "n_answers": args.n, "n_distinct_requests": args.n_requests,
        "words_per_answer": {"mean": sum(words) / len(words), "max": max(words)},
        "load_s": round(load_s, 2), "load_cpu_s": round(load_cpu, 2),
        "label_s": round(label_s, 2), "label_cpu_s": round(label_cpu, 2),
        "answers_per_s": round(args.n / label_s, 1),
        "labels": {lab: labels.count(lab) for lab in sorted(set(labels))},
        "target": "label 1,000 answers in <= 30 s on 2 CPU cores",
        "machine": {"cpus": os.cpu_count(), "torch": torch.__version__,
                    "torch_threads": torch.get_num_threads(), "python": platform.python_version(),
                    "load_average_1m": os.getloadavg()[0],
                    "date": datetime.now(timezone.utc).isoformat(timespec="minutes")},
        "command": "OMP_NUM_THREADS=2 python benchmarks/bench_judge.py --n "
                   f"{args.n} --n-requests {args.n_requests} --judge {args.judge}",
    }
    out = Path(args.out or f"benchmarks/results/judge_{args.judge.replace(':', '_')}.json")
    from workbench.runs import write_json

    write_json(out, record)
    print(json.dumps(record, indent=2))


if __name__ == "__main__":
    main()

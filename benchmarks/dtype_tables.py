"""Print the markdown tables of docs/benchmarks.md's dtype section from the bench_dtype records.

    python benchmarks/dtype_tables.py benchmarks/results/dtype_*.json
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def _short(model: str) -> str:
    return model.replace("qwen2.5-coder-", "").replace("-instruct", "")


def speed_table(records: list[dict]) -> list[str]:
    lines = ["| model | part | float32 s | auto s | auto dtype | speed-up |",
             "|---|---|---:|---:|---|---:|"]
    for r in records:
        m, name = r["micro"], _short(r["model"])
        lines.append(f"| {name} | forward, {m['prompts']} prompts ({m['prompt_tokens']} tokens), "
                     f"resid_pre at every layer | {m['float32']['forward_s']:.2f} | "
                     f"{m['auto']['forward_s']:.2f} | {m['auto']['dtype']} | "
                     f"**{m['forward_speedup']:.2f}x** |")
        lines.append(f"| {name} | greedy generation, {m['prompts']} x {m['new_tokens']} tokens, "
                     f"batched | {m['float32']['generation_s']:.2f} | "
                     f"{m['auto']['generation_s']:.2f} | {m['auto']['dtype']} | "
                     f"**{m['generation_speedup']:.2f}x** |")
        if "audit" in r:
            a = r["audit"]
            f, o = a["runs"]["float32"]["timings_s"]["total"], a["runs"]["auto"]["timings_s"]["total"]
            lines.append(f"| {name} | `workbench audit --preset {a['preset']}` (end to end) | "
                         f"{f:.0f} | {o:.0f} | {a['runs']['auto']['dtype']['used']} | "
                         f"**{a['speedup_run_total']:.2f}x** |")
    return lines


def agreement_table(records: list[dict]) -> list[str]:
    lines = ["| model | refusal direction: layer, offset (float32 / auto) | cosine, refusal "
             "direction | cosine, CAA vectors at the steering layer (least over layers) | "
             "greedy answers identical | first differing token (mean) | judge labels differing "
             "| `asr.csv` cells differing |", "|---|---|---:|---|---:|---:|---:|---:|"]
    for r in records:
        if "audit" not in r:
            continue
        g, name = r["audit"]["agreement"], _short(r["model"])
        sel = g["refusal_selection"]
        caa = [v for k, v in g["cosines"].items() if k.startswith("caa.")]
        at = [next(x for k, x in v.items() if k.startswith("layer_")) for v in caa]
        lowest = min(v["min"] for v in caa)
        lines.append(
            f"| {name} | {sel['float32'][0]}, {sel['float32'][1]} / {sel['auto'][0]}, "
            f"{sel['auto'][1]} | {g['cosines']['refusal.direction']:.4f} | "
            f"{min(at):.3f}-{max(at):.3f} ({lowest:.2f}) | {g['identical_responses']:,} of "
            f"{g['generations']:,} | {g['first_difference_token']['mean']} | "
            f"{g['judge_labels_differing']} | {g['asr_csv']['cells_differing']} of "
            f"{g['asr_csv']['cells']} |")
        m = r["micro"]
        lines.append(f"| {name}, micro ({m['prompts']} prompts) | | | | {m['identical_answers']} of "
                     f"{m['prompts']} | {m['first_difference_token_mean']} | | |")
    return lines


def machine_line(records: list[dict]) -> str:
    m = records[0]["machine"]
    return (f"Machine: {m['cpu']}, {m['cpu_count']} cores, native bfloat16 flags "
            f"{', '.join(m['bf16_flags']) or 'none'}; torch {m['torch']} ({m['torch_threads']} "
            f"threads), Python {m['python']}; {records[0]['date'][:10]}.")


def main() -> None:
    records = [json.loads(Path(p).read_text()) for p in sys.argv[1:]]
    print(machine_line(records), "", *speed_table(records), "", *agreement_table(records),
          sep="\n")


if __name__ == "__main__":
    main()

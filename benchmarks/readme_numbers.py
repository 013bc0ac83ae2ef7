"""The README's times, memory and headline numbers, generated from the records in the repo.

Every such number in README.md sits between ``<!-- numbers:NAME -->`` and
``<!-- /numbers:NAME -->``; this script renders each region from the recorded files
(``figures/*/run.json`` and their CSVs, ``benchmarks/results/*``) and either checks the README
against them (the default; exit 1 and a diff when they disagree) or rewrites the regions::

    python benchmarks/readme_numbers.py            # check
    python benchmarks/readme_numbers.py --write    # regenerate README.md's regions

A record that is missing renders as "not recorded" with the command that makes it, so the
README never shows a number without a source. Each timing names its machine and dtype: from the
record's ``machine`` (every run.json since issue 25), else what the record says of the machine
elsewhere (its dtype reason), else "machine not recorded".
"""

from __future__ import annotations

import argparse
import csv
import difflib
import json
import re
import sys
from pathlib import Path
from typing import Callable

REPO = Path(__file__).resolve().parents[1]
RESULTS = Path("benchmarks") / "results"
REGION = re.compile(r"(<!-- numbers:(?P<name>[a-z0-9.-]+) -->)(?P<body>.*?)(<!-- /numbers:(?P=name) -->)",
                    re.S)

# the commands that make each record (shown where a record is missing, and in the report)
COMMANDS = {
    "job_help.json": "python benchmarks/timed_job.py help -- workbench --help",
    "job_audit_smoke.json": ("python benchmarks/timed_job.py audit_smoke -- workbench audit "
                             "--preset smoke --out runs/smoke"),
    "notebook_06_teaching_demo_qwen2.5-coder-0.5b-instruct.json":
        "python benchmarks/bench_notebook.py notebooks/06_teaching_demo.ipynb",
    "ci_suite.json": "fill benchmarks/results/ci_suite.json from the CI log of `.ci/run`",
}


class Records:
    """Read access to the repo's records, relative to ``root`` (the repo, or a test's copy)."""

    def __init__(self, root: Path):
        self.root = Path(root)

    def json(self, rel: str | Path) -> dict | None:
        path = self.root / rel
        return json.loads(path.read_text()) if path.is_file() else None

    def result(self, name: str) -> dict | None:
        return self.json(RESULTS / name)

    def run(self, run: str) -> dict | None:
        return self.json(Path("figures") / run / "run.json")

    def csv(self, run: str, name: str) -> list[dict]:
        path = self.root / "figures" / run / name
        if not path.is_file():
            return []
        with path.open(newline="") as f:
            return list(csv.DictReader(f))

    def text(self, rel: str | Path) -> str | None:
        path = self.root / rel
        return path.read_text() if path.is_file() else None


# ------------------------------------------------------------------------------ formatting


def missing(name: str) -> str:
    return f"not recorded (`{COMMANDS.get(name, name)}` writes `{RESULTS / name}`)"


def secs(s: float) -> str:
    """820 s (13.7 min); short times with one decimal."""
    if s < 10:
        return f"{s:.1f} s"
    return f"{s:,.0f} s ({s / 60:.1f} min)" if s >= 120 else f"{s:,.0f} s"


def machine(record: dict | None) -> str:
    """The machine a record's timings came from, as the record says."""
    m = (record or {}).get("machine")
    if m and m.get("cpu"):
        cores = m.get("logical_cores") or m.get("cpu_count")
        flags = m.get("bf16_flags")
        bf16 = (f"bf16: {', '.join(flags)}" if flags else "no native bf16") if flags is not None \
            else None
        gpu = m.get("gpu")
        parts = [m["cpu"], f"{cores} cores" if cores else None, bf16, gpu and f"GPU {gpu}"]
        return ", ".join(p for p in parts if p)
    model = (record or {}).get("model")
    dtype = model.get("dtype") if isinstance(model, dict) else None
    reason = dtype.get("reason") if isinstance(dtype, dict) else None
    if reason and reason != "asked for":
        return f"machine not recorded; its dtype record says: {reason}"
    cores = m and (m.get("cpu_count") or m.get("cpus"))
    if cores:
        return f"{cores} cores, CPU model not recorded"
    return "machine not recorded"


def run_dtype(run: dict) -> str:
    return run["model"]["dtype"]["used"]


def pct(x: float) -> str:
    return f"{100 * x:.1f}%"


def ci(lo: float, hi: float) -> str:
    return f"[{100 * lo:.1f}, {100 * hi:.1f}]"


# ------------------------------------------------------------------------------ regions


def _baseline_rows(rec: Records, run: str) -> dict[str, dict]:
    return {r["template"]: r for r in rec.csv(run, "asr.csv")
            if r["behaviour"] == "none" and r["mitigated"] == "False"}


def baseline(rec: Records, run: str, per_template: bool) -> str:
    """Baseline ASR with its interval, per template and n, from the run's asr.csv."""
    rows = _baseline_rows(rec, run)
    if "all" not in rows:
        return f"baseline ASR not recorded (no `figures/{run}/asr.csv`)"
    a = rows["all"]
    out = f"Baseline ASR {pct(float(a['asr']))} {ci(float(a['ci_low']), float(a['ci_high']))}"
    if not per_template:
        return out + f" (n = {a['n']})"
    each = [f"{pct(float(r['asr']))} {'direct' if t == 'direct' else 'under ' + t.replace('_', ' ')}"
            for t, r in rows.items() if t != "all"]
    n_prompts = min(int(r["n"]) for t, r in rows.items() if t != "all")
    return out + f" ({', '.join(each)}; n = {a['n']} answers of {n_prompts} prompts)"


def job_time(rec: Records, run: str) -> str:
    """A recorded run's time, dtype, peak memory and machine, for the prose."""
    r = rec.run(run)
    if r is None:
        return f"not recorded (no `figures/{run}/run.json`)"
    return (f"{run_dtype(r)}: {secs(r['timings_s']['total'])} and {r['peak_memory_gb']} GB peak "
            f"memory for the recorded run ({r['n_generations']:,} answers; model already "
            f"converted; `figures/{run}/run.json`; {machine(r)})")


def resources(rec: Records) -> str:
    rows = ["| command | time | peak memory | machine, dtype (record) |", "| --- | --- | --- | --- |"]

    h = rec.result("job_help.json")
    rows.append("| `workbench --help` | " + (f"{secs(h['wall_s'])} (imports no torch)" if h else
                missing("job_help.json")) + " | — | " +
                (f"{machine(h)} (`{RESULTS}/job_help.json`)" if h else "—") + " |")

    s = rec.result("job_audit_smoke.json")
    if s:
        rows.append(f"| `workbench audit --preset smoke` | {secs(s['wall_s'])} wall, "
                    f"{secs(s['cpu_s'])} of CPU; {secs(s['timings_s']['total'])} of it the job "
                    f"(tiny random model; load {s['load_avg_1m_at_start']:.1f} at start) | "
                    f"{s['peak_memory_gb']} GB | {machine(s)}; {s['dtype']} "
                    f"(`{RESULTS}/job_audit_smoke.json`) |")
    else:
        rows.append(f"| `workbench audit --preset smoke` | {missing('job_audit_smoke.json')} | — "
                    "| — |")

    d15 = rec.result("dtype_qwen2.5-coder-1.5b-instruct.json")
    d05 = rec.result("dtype_qwen2.5-coder-0.5b-instruct.json")

    def dtype_pair(d: dict) -> tuple[float, float, float]:
        runs = d["audit"]["runs"]
        return (runs["auto"]["timings_s"]["total"], runs["float32"]["timings_s"]["total"],
                d["audit"]["speedup_run_total"])

    r = rec.run("audit-quick")
    if r:
        conds = r["summary"].get("behaviour_conditions")
        f32 = ""
        if d15:
            auto, full, ratio = dtype_pair(d15)
            f32 = (f"; in float32 (`--dtype float32`, or a CPU without native bfloat16) expect "
                   f"about {ratio}x that, the ratio the dtype benchmark measured on the earlier "
                   f"25-condition preset ({auto:,.0f} s against {full:,.0f} s)")
        rows.append(f"| `workbench audit` (the main job: quick preset on the default 1.5B model, "
                    f"{r['n_generations']:,} answers, `{r['judge']['spec'] if isinstance(r.get('judge'), dict) else r.get('judge')}` judge"
                    f"{f', {conds} behaviour conditions' if conds else ''}) | "
                    f"{secs(r['timings_s']['total'])} in {run_dtype(r)}{f32} | "
                    f"{r['peak_memory_gb']} GB ({run_dtype(r)}, model already converted; a first "
                    f"run can peak higher, as it also converts the model: see that row) | "
                    f"{machine(r)} "
                    f"(`figures/audit-quick/run.json`) |")
    r = rec.run("audit-quick-0.5b")
    if r:
        earlier = ""
        if d05:
            auto, full, _ = dtype_pair(d05)
            earlier = (f"; the earlier 25-condition preset: {auto:,.0f} s in bfloat16, "
                       f"{full:,.0f} s in float32")
        rows.append(f"| `workbench audit --model qwen2.5-coder-0.5b-instruct` (the teaching "
                    f"model, same audit) | {secs(r['timings_s']['total'])} in {run_dtype(r)}"
                    f"{earlier} | {r['peak_memory_gb']} GB | {machine(r)} "
                    f"(`figures/audit-quick-0.5b/run.json`) |")
    r = rec.run("safesteer-quick")
    if r:
        rows.append(f"| `workbench safesteer` (quick preset, default model, "
                    f"{r['n_generations']:,} answers) | {secs(r['timings_s']['total'])} in "
                    f"{run_dtype(r)} | {r['peak_memory_gb']} GB | {machine(r)} "
                    f"(`figures/safesteer-quick/run.json`) |")
    conv = rec.text(RESULTS / "conversion_peak_qwen2.5-coder-1.5b-instruct.txt")
    if conv:
        wall = re.search(r"Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): (\d+):([\d.]+)", conv)
        rss = re.search(r"Maximum resident set size \(kbytes\): (\d+)", conv)
        cpu = re.search(r"# CPU: ([^\n]+)", conv)
        seconds = int(wall[1]) * 60 + float(wall[2])
        rows.append(f"| first run's model conversion (the 1.5B GGUF to float32 safetensors, one "
                    f"tensor at a time; the 1.1 GB download comes first and depends on the "
                    f"network) | {secs(seconds)} | {int(rss[1]) * 1024 / 1e9:.1f} GB | "
                    f"{cpu[1] if cpu else 'machine not recorded'}; float32 "
                    f"(`{RESULTS}/conversion_peak_qwen2.5-coder-1.5b-instruct.txt`) |")
    rows.append("| `workbench audit --preset full` | meant for a GPU; not measured on CPU | — | — |")
    c = rec.result("ci_suite.json")
    if c:
        rows.append(f"| `python -m pytest` (CI: {c['command']}) | {c['passed'] + c['xfailed']} "
                    f"tests, fast and slow ({c['passed']} passed, {c['xfailed']} expected "
                    f"failures): {secs(c['seconds'])}, commit {c['commit']}, {c['date']} | — | "
                    f"{machine(c)}; the slow checks in the dtype `auto` picks "
                    f"(`{RESULTS}/ci_suite.json`) |")
    else:
        rows.append(f"| `python -m pytest` (CI) | {missing('ci_suite.json')} | — | — |")
    return "\n" + "\n".join(rows) + "\n"


def notebook(rec: Records) -> str:
    name = "notebook_06_teaching_demo_qwen2.5-coder-0.5b-instruct.json"
    n = rec.result(name)
    if n is None:
        return f"The teaching demo's time on the 0.5B model is {missing(name)}"
    return (f"On it the teaching demo runs top to bottom in {secs(n['seconds'])} in "
            f"{n['dtype']} ({machine(n)}; `{n['command']}`, `{RESULTS}/{name}`)")


def teaching_demo(rec: Records) -> str:
    """Part 2 of the teaching demo: refusals before and with the demo direction ablated."""
    name = "teaching_demo_qwen2.5-coder-0.5b-instruct.json"
    d = rec.result(name)
    if d is None:
        return f"the teaching demo's refusal rates are {missing(name)}"
    b, a, r = d["before"], d["ablated"], d["direction"]
    return (f"the unsteered model refuses {b['refusals']} of {b['n']} ({pct(b['rate'])} "
            f"{ci(*b['ci95'])}) of the held-out harmful requests the demo's rule picks "
            f"({d['prompt_rule']}, from {d['candidates']}), and {a['refusals']} of {a['n']} "
            f"({pct(a['rate'])} {ci(*a['ci95'])}) with the demo's direction (layer "
            f"{r['layer']}, KL {r['scores']['kl']:.2f}) ablated; greedy, "
            f"{d['max_new_tokens']} new tokens, {d['dtype']}, substring refusal markers, "
            f"Wilson 95% CIs (`{d['command']}`, `{RESULTS}/{name}`)")


def speed(rec: Records) -> str:
    d15 = rec.result("dtype_qwen2.5-coder-1.5b-instruct.json")
    d05 = rec.result("dtype_qwen2.5-coder-0.5b-instruct.json")
    e2e = rec.result("audit_e2e_quick.json")
    cache = rec.result("cache_qwen2.5-coder-0.5b-instruct_float32_dtype-issue.json")
    mem = rec.result("cache_qwen2.5-coder-0.5b-instruct.json")
    mem4 = rec.result("cache_memory_batch4_qwen2.5-coder-0.5b-instruct.json")
    gen = rec.result("generation_qwen2.5-coder-0.5b-instruct_float32_dtype-issue.json")
    out = []
    if d15 and d05:
        def tot(d, k):
            return d["audit"]["runs"][k]["timings_s"]["total"]
        fwd = sorted(d["micro"]["forward_speedup"] for d in (d15, d05))
        gsp = sorted(d["micro"]["generation_speedup"] for d in (d15, d05))
        cos = min(d["audit"]["agreement"]["cosines"]["refusal.direction"] for d in (d15, d05))
        same = all(d["audit"]["agreement"]["refusal_selection"]["same"] for d in (d15, d05))
        out.append(
            f"in bfloat16 (`--dtype auto` on a CPU with native bfloat16; {machine(d15)}), the "
            f"quick audit of the 1.5B model (the earlier 25-condition preset, `probe` judge, as "
            f"benchmarked) takes {tot(d15, 'auto'):,.0f} s against {tot(d15, 'float32'):,.0f} s "
            f"in float32 in the same benchmark run ({d15['audit']['speedup_run_total']}x; target "
            f"2.5x), and the 0.5B's {tot(d05, 'auto'):,.0f} s against "
            f"{tot(d05, 'float32'):,.0f} s ({d05['audit']['speedup_run_total']}x); a forward pass "
            f"caching `resid_pre` at every layer is {fwd[0]:.1f}-{fwd[-1]:.1f}x faster and "
            f"batched generation {gsp[0]:.1f}-{gsp[-1]:.1f}x (`python benchmarks/bench_dtype.py "
            f"--model MODEL`). Both dtypes select "
            f"{'the same' if same else 'a different'} refusal direction (cosine {cos:.4f}).")
    if e2e:
        b, r = e2e["runs"]["batched"], e2e["runs"]["reference"]
        out.append(
            f"In float32 (the 0.5B model, then the default; `--judge trained`, the earlier preset; {machine(e2e)}; "
            f"not comparable with the main job's time above), the batched engine takes "
            f"{b['wall_s']:,.0f} s against {r['wall_s']:,.0f} s for the unoptimised reference "
            f"engine ({e2e['speedup_wall']}x), with "
            f"{'a byte-identical' if e2e['asr_csv_identical'] else 'a differing'} `asr.csv` and "
            f"{e2e['identical_responses']:,} of {e2e['generations']:,} answers identical "
            f"(`python benchmarks/bench_audit_e2e.py --preset quick`).")
    if cache and gen:
        ratio = cache["overhead"]["ratio_collect_over"]["hf_logits_to_keep_1"]
        out.append(
            f"In float32, caching `resid_pre` at all {cache['n_layers']} layers costs "
            f"{ratio:.2f}x a bare Hugging Face forward that unembeds only the last position "
            f"(target ≤ {cache['overhead']['target_ratio']}x; max difference from "
            f"`hidden_states` {cache['overhead']['max_abs_diff_vs_hf_hidden_states']:g}), and "
            f"batched steered generation is {gen['speedup_vs_one_at_a_time']:.1f}x faster than "
            f"one prompt at a time and {gen['ratio_vs_plain_hf']:.2f}x the time of plain Hugging "
            f"Face `generate` on an unhooked copy (targets ≥ 4x and ≤ 1.2x; "
            f"`python benchmarks/bench_cache.py`, `python benchmarks/bench_generation.py`).")
    if mem and mem4:
        c, m = mem["memory"]["collect"], mem["memory"]["mean"]

        def mib(b):
            return f"{b / 2**20:.0f} MiB"
        out.append(
            f"Caching {c['n_prompts']:,} prompts peaks {mib(c['peak_minus_load_bytes'])} above "
            f"the loaded model at batch {c['batch_size']} (target {mib(c['target_bytes'])}: "
            f"{'met' if c['within_target'] else 'missed'}) and "
            f"{mib(mem4['peak_minus_load_bytes'])} at `--batch-size {mem4['batch_size']}` "
            f"({'met' if mem4['within_target'] else 'missed'}); the streamed mean "
            f"{'meets' if m['within_target'] else 'misses'} it at batch {m['batch_size']} "
            f"({mib(m['peak_minus_load_bytes'])}).")
    return " ".join(out)


def signed(x: float, digits: int = 1) -> str:
    """+9.4 / −6.2 (a typographic minus, as the README's tables write it)."""
    text = f"{x:+.{digits}f}"
    return text.replace("-", "−")


def p_text(p: str) -> str:
    v = float(p)
    return "<0.001" if v < 0.001 else f"{v:.2g}" if v < 0.01 else f"{v:.2f}"


def audit_table(rec: Records, run: str) -> str:
    """The README's ΔASR table of an audit run, from its delta_asr.csv: the pooled unmitigated
    behaviour rows, then the controls at ±1."""
    rows = [r for r in rec.csv(run, "delta_asr.csv")
            if r["template"] == "all" and r["mitigated"] == "False"
            and (r["family"] == "behaviour"
                 or (r["family"] == "control" and abs(float(r["coefficient"])) == 1))]
    if not rows:
        return f"\n(no `figures/{run}/delta_asr.csv`)\n"
    rows.sort(key=lambda r: (r["family"] != "behaviour", r["behaviour"], float(r["coefficient"])))
    out = ["| behaviour | coef | cos(v, r̂) | ASR | ΔASR [95% CI] (pp) | p (Holm) | placebo band (pp) "
           "| beyond placebo [95% CI] (pp) | p (Holm) | verdict |",
           "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        control = r["family"] == "control"
        c = float(r["coefficient"])
        verdict = r["verdict"]
        if control:
            verdict = "control"
        elif verdict.startswith("specific"):
            verdict = "**specific**" + verdict[len("specific"):]
        f = {k: 100 * float(r[k]) for k in ("delta_asr", "delta_ci_low", "delta_ci_high",
                                            "placebo_min_delta", "placebo_max_delta",
                                            "beyond_placebo", "beyond_placebo_ci_low",
                                            "beyond_placebo_ci_high")}
        out.append(
            f"| {r['behaviour']}{' *(control)*' if control else ''} | "
            f"{signed(c, 1 if c != int(c) else 0)} | {signed(float(r['cosine']), 3)} | "
            f"{100 * float(r['asr']):.1f}% | {signed(f['delta_asr'])} "
            f"[{signed(f['delta_ci_low'])}, {signed(f['delta_ci_high'])}] | {p_text(r['p_holm'])} | "
            f"{signed(f['placebo_min_delta'])} to {signed(f['placebo_max_delta'])} | "
            f"{signed(f['beyond_placebo'])} [{signed(f['beyond_placebo_ci_low'])}, "
            f"{signed(f['beyond_placebo_ci_high'])}] | {p_text(r['p_beyond_placebo_holm'])} | "
            f"{verdict} |")
    return "\n" + "\n".join(out) + "\n"


SAFESTEER_METHODS = {"none": "unsteered", "safesteer": "category vector (SafeSteer)",
                     "neuron_add": "neuron vector", "neuron_suppress": "neuron suppression"}


def safesteer_table(rec: Records, run: str = "safesteer-quick") -> str:
    """The README's SafeSteer table, from the run's metrics.csv (pooled categories)."""
    rows = {(r["method"], r["split"]): r for r in rec.csv(run, "metrics.csv")
            if r["category"] == "all"}
    if ("none", "harmful") not in rows:
        return f"\n(no `figures/{run}/metrics.csv`)\n"

    def rate(r, key, with_ci=True):
        text = f"{100 * float(r[key + '_rate']):.0f}%"
        return text + (f" [{100 * float(r[key + '_ci_low']):.0f}, "
                       f"{100 * float(r[key + '_ci_high']):.0f}]" if with_ci else "")

    steered = [m for m in SAFESTEER_METHODS if m != "none" and (m, "harmful") in rows]
    mult = {f"{float(rows[(m, 'harmful')]['multiplier']):g}" for m in steered
            if m != "neuron_suppress"}  # suppression sets neurons to zero: no multiplier
    n_benign = {rows[(m, "benign")]["n"] for m in steered if (m, "benign") in rows}
    out = [f"| method (m = {', '.join(sorted(mult))}) | unsafe, {rows[('none', 'harmful')]['judge']} "
           f"judge | Δ unsafe (pp) | unsafe, substring judge | refusal | ROUGE-L vs unsteered | "
           f"benign refusal (n = {', '.join(sorted(n_benign))}) |", "|---|---|---|---|---|---|---|"]
    for m in ["none", *steered]:
        h, b = rows[(m, "harmful")], rows.get((m, "benign"))
        if m == "none":
            delta, sub = "", rate(h, "unsafe_substring")
            benign = f"{rate(b, 'refusal', False)} (n = {b['n']})" if b else "—"
        else:
            delta = (f"{signed(100 * float(h['delta_unsafe']), 0)} "
                     f"[{signed(100 * float(h['delta_unsafe_ci_low']), 0)}, "
                     f"{signed(100 * float(h['delta_unsafe_ci_high']), 0)}], "
                     f"p {float(h['p_holm']):.2g}")
            sub = rate(h, "unsafe_substring", False)
            benign = rate(b, "refusal") if b else "—"
        out.append(f"| {SAFESTEER_METHODS[m]} | {rate(h, 'unsafe')} | {delta} | {sub} | "
                   f"{rate(h, 'refusal', False)} | {float(h['rouge_l']):.2f} | {benign} |"
                   .replace("|  |", "| |"))
    return "\n" + "\n".join(out) + "\n"


def trained_judge_time(rec: Records) -> str:
    j = rec.result("judge_trained.json")
    if j is None:
        return missing("judge_trained.json")
    return (f"{j['n_answers']:,} answers in {j['label_s']:.0f} s on {machine(j)}, "
            f"`{RESULTS}/judge_trained.json`")


def versus(a: float, b: float) -> str:
    """How κ ``a`` stands against ``b``: level within 0.05, else above or below."""
    return "level with" if abs(a - b) <= 0.05 else "above" if a > b else "below"


def judge_agreement(rec: Records) -> str:
    """The probe judge's nested-CV κ per labelled source and on the untouched test set."""
    cv, test = rec.result("judge_nested_cv.json"), rec.result("judge_test.json")
    if cv is None or test is None:
        return missing("judge_nested_cv.json" if cv is None else "judge_test.json")

    def k(score, ci="kappa_ci"):
        lo, hi = score[ci]
        return f"{score['kappa']:.2f} [{lo:.2f}, {hi:.2f}]"

    nest, sub = cv["probe"]["nested"], cv["substring"]
    tp = test["probe"]
    return (f"κ with 95% intervals from a bootstrap over requests: {k(nest['templates'])} on "
            f"template-attack answers (n={nest['templates']['n']}), {k(nest['refusal'])} on "
            f"pyrit's refusal set (n={nest['refusal']['n']}), {k(nest['objective'])} on pyrit's "
            f"objective set (n={nest['objective']['n']}), {k(nest['all'])} overall "
            f"(n={nest['all']['n']}), and **{k(nest['jbb'])} on JailbreakBench's human majority "
            f"(n={nest['jbb']['n']}), {'short of' if nest['jbb']['kappa'] < 0.75 else 'above'} "
            f"0.75 and {versus(nest['jbb']['kappa'], sub['jbb']['kappa'])} "
            f"the substring rule's {k(sub['jbb'])}** there "
            f"({nest['jbb_disjoint_quick_cos<0.9']['kappa']:.2f} on the JailbreakBench requests the "
            f"quick preset does not attack). On an untouched test set of {tp['n']} template-attack "
            f"answers, scored once, it reaches κ {k(tp, 'kappa_ci_grouped')}, accuracy "
            f"{tp['accuracy']:.2f}, against κ {test['substring']['kappa']:.2f} for substring")


def trained_judge_kappa(rec: Records) -> str:
    cv, test = rec.result("judge_nested_cv.json"), rec.result("judge_test.json")
    if cv is None or test is None:
        return missing("judge_nested_cv.json" if cv is None else "judge_test.json")
    n = cv["trained"]["nested"]
    return (f"nested κ {n['all']['kappa']:.2f} overall, {n['jbb']['kappa']:.2f} on JailbreakBench "
            f"and {test['trained']['kappa']:.2f} on the test set")


def power(rec: Records) -> str:
    """Power of the quick preset's clustered ΔASR test at the strictest Holm step."""
    q = rec.result("quick_power.json")
    if q is None:
        return missing("quick_power.json")
    d = q["design"]
    rows = {round(r["true_delta_asr"], 2): r["delta_holm_first"] for r in q["rows"]}
    return (f"with {d['prompts']} prompts, the clustered test at the strictest Holm step "
            f"(0.05/{d['holm_family']}) finds a true +40 pp change {100 * rows[0.4]:.0f}% of the "
            f"time and +50 pp {100 * rows[0.5]:.0f}%")


REGIONS: dict[str, Callable[[Records], str]] = {
    "power": power,
    "judge-agreement": judge_agreement,
    "trained-judge-kappa": trained_judge_kappa,
    "trained-judge-time": trained_judge_time,
    "safesteer-table": safesteer_table,
    "main-table": lambda rec: audit_table(rec, "audit-quick"),
    "audit-0.5b-table": lambda rec: audit_table(rec, "audit-quick-0.5b"),
    "resources": resources,
    "main-job": lambda rec: job_time(rec, "audit-quick"),
    "main-baseline": lambda rec: baseline(rec, "audit-quick", per_template=True),
    "audit-0.5b": lambda rec: job_time(rec, "audit-quick-0.5b"),
    "audit-0.5b-baseline": lambda rec: baseline(rec, "audit-quick-0.5b", per_template=False),
    "safesteer": lambda rec: job_time(rec, "safesteer-quick"),
    "notebook": notebook,
    "teaching-demo": teaching_demo,
    "speed": speed,
}


def render(readme: str, root: Path) -> str:
    """``readme`` with every numbers region rendered from the records under ``root``."""
    rec = Records(root)
    seen = set()

    def fill(m: re.Match) -> str:
        name = m["name"]
        if name not in REGIONS:
            raise SystemExit(f"README.md has an unknown numbers region {name!r}; known: "
                             f"{', '.join(REGIONS)}")
        seen.add(name)
        return m[1] + REGIONS[name](rec) + m[4]

    out = REGION.sub(fill, readme)
    absent = set(REGIONS) - seen
    if absent:
        raise SystemExit(f"README.md lacks the numbers regions {', '.join(sorted(absent))}; "
                         "mark them with <!-- numbers:NAME --> ... <!-- /numbers:NAME -->")
    return out


def check(readme_path: Path, root: Path) -> list[str]:
    """The unified diff between the README and its rendering from the records (empty: agree)."""
    text = readme_path.read_text()
    return list(difflib.unified_diff(text.splitlines(), render(text, root).splitlines(),
                                     "README.md", "README.md from the records", lineterm=""))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--write", action="store_true", help="rewrite README.md's numbers regions")
    p.add_argument("--readme", type=Path, default=REPO / "README.md")
    p.add_argument("--root", type=Path, default=REPO, help="where the records are (the repo)")
    args = p.parse_args(argv)
    if args.write:
        text = args.readme.read_text()
        new = render(text, args.root)
        if new != text:
            args.readme.write_text(new)
        print(f"{args.readme}: {'rewritten' if new != text else 'already agrees with the records'}")
        return 0
    diff = check(args.readme, args.root)
    if diff:
        print("\n".join(diff))
        print("README.md disagrees with the records: run "
              "`python benchmarks/readme_numbers.py --write`", file=sys.stderr)
        return 1
    print("README.md agrees with the records")
    return 0


if __name__ == "__main__":
    sys.exit(main())

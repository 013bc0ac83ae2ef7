"""Benchmark activation caching: wall-time overhead against a bare Hugging Face forward,
and peak memory when caching (or streaming the mean of) N prompts.

Run from the repository root::

    WORKBENCH_CACHE=/tmp/wbcache .venv/bin/python benchmarks/bench_cache.py

1. Overhead. ``collect_activations`` (``resid_pre``, every layer, last token) and bare
   Hugging Face forwards of the same model over the same left-padded batches (same prompts,
   same batch size, same order, same mask-derived position ids), under
   ``torch.inference_mode()``. One warm-up pass per method, then ``--repeats`` timed passes
   whose order rotates every repeat; the median is reported. Baselines:

   - ``hf_full``: ``hf_model(..., output_hidden_states=True)``, which also unembeds every
     position ([batch, seq, vocab] logits);
   - ``hf_logits_to_keep_1``: the same with ``logits_to_keep=1`` (unembeds only the last
     position), the fair baseline for a cache that needs no logits;
   - ``hf_pristine_logits_to_keep_1``: a second, unwrapped copy of the model loaded straight
     from its safetensors directory (the bridge wraps ``raw_hf_model(m)`` in place, so the
     first two baselines run through idle TransformerLens hook points too). Only when the
     model has a local directory; skip with ``--no-pristine``.

2. Memory. In a fresh subprocess per mode (so peaks are clean): load the model, tokenize
   ``--n-prompts`` distinct prompts (the 360 embedded instructions, cycled, with
   " (variant k)" appended from the second cycle on), record RSS, reset the kernel's
   high-water mark (``/proc/self/clear_refs``), run ``collect_activations`` (or
   ``mean_activations``) and read ``VmHWM``. Reported: peak RSS minus RSS after loading,
   against the target ``1.5 * N * L * d * 4`` bytes (1.5x the float32 result itself).
   ``ru_maxrss`` and a 10 ms RSS sampler are recorded as cross-checks.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import re
import resource
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

import torch

DEFAULT_MODEL = "qwen2.5-coder-0.5b-instruct"
ROOT = Path(__file__).resolve().parent.parent
MB = 1024 * 1024


# ---- prompts -------------------------------------------------------------------------------
def distinct_instructions(n: int) -> list[str]:
    """``n`` distinct instructions: harmful and harmless interleaved, cycled with a variant tag."""
    from workbench.data import embedded_instructions

    harmful = [x.instruction for x in embedded_instructions("harmful")]
    harmless = [x.instruction for x in embedded_instructions("harmless")]
    base = [x for pair in zip(harmful, harmless) for x in pair]
    base += harmful[len(harmless):] + harmless[len(harmful):]
    out = [base[k % len(base)] + ("" if k < len(base) else f" (variant {k // len(base)})")
           for k in range(n)]
    assert len(set(out)) == n, "prompts are not distinct"
    return out


# ---- memory probes -------------------------------------------------------------------------
def proc_status() -> dict[str, int]:
    """VmRSS and VmHWM of this process, in bytes."""
    text = Path("/proc/self/status").read_text()
    return {k: int(re.search(rf"^{k}:\s+(\d+) kB", text, re.MULTILINE).group(1)) * 1024
            for k in ("VmRSS", "VmHWM", "RssAnon", "RssFile")}


def reset_hwm() -> bool:
    """Reset VmHWM to the current RSS (Linux >= 4.0); False where not allowed."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def ru_maxrss() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # kB on Linux


class RssSampler:
    """Polls RSS from /proc/self/statm in a thread; a cross-check for VmHWM."""

    def __init__(self, interval: float = 0.01) -> None:
        self.interval, self.peak, self._stop = interval, 0, threading.Event()
        self._page = os.sysconf("SC_PAGE_SIZE")
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            rss = int(Path("/proc/self/statm").read_text().split()[1]) * self._page
            self.peak = max(self.peak, rss)
            self._stop.wait(self.interval)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


def memory_child(args) -> dict:
    """Runs in a fresh interpreter: one caching mode over N prompts, peak RSS over load RSS."""
    from workbench import load_model
    from workbench.activations import collect_activations, mean_activations
    from workbench.model import raw_hf_model

    t0 = time.perf_counter()
    m = load_model(args.model, device=args.device, dtype=args.dtype)
    # Fault every weight page in (safetensors may be mmapped lazily), so the baseline holds
    # the whole model and the run's delta is caching alone, not weights paging in.
    with torch.inference_mode():
        checksum = sum(float(p.float().sum()) for p in raw_hf_model(m).parameters())
    load_s = time.perf_counter() - t0
    after_load = proc_status()
    ru_after_load = ru_maxrss()
    prompts = m.tokenize_instructions(distinct_instructions(args.n_prompts))
    n, n_layers, d = len(prompts), m.n_layers, m.d_model
    fn = collect_activations if args._child == "collect" else mean_activations

    before = proc_status()
    hwm_reset = reset_hwm()
    with RssSampler() as sampler:
        t0 = time.perf_counter()
        acts = fn(m, prompts, hooks=("resid_pre",), layers=None, positions="last",
                  batch_size=args.batch_size, progress=False)
        wall = time.perf_counter() - t0
    after = proc_status()
    result = acts["resid_pre"]
    peak = after["VmHWM"] if hwm_reset else max(sampler.peak, ru_maxrss())
    target = 1.5 * n * n_layers * d * 4
    return {
        "mode": args._child,
        "n_prompts": n,
        "n_layers": n_layers,
        "d_model": d,
        "batch_size": args.batch_size,
        "tokens": sum(len(p) for p in prompts),
        "mean_prompt_tokens": sum(len(p) for p in prompts) / n,
        "model_load_s": load_s,
        "wall_s": wall,
        "prompts_per_s": n / wall,
        "result_shape": list(result.shape),
        "result_dtype": str(result.dtype),
        "result_bytes": result.numel() * result.element_size(),
        "weights_checksum": checksum,
        "rss_after_load_bytes": after_load["VmRSS"],
        "rss_anon_after_load_bytes": after_load["RssAnon"],
        "rss_file_after_load_bytes": after_load["RssFile"],
        "rss_before_run_bytes": before["VmRSS"],
        "rss_after_run_bytes": after["VmRSS"],
        "rss_anon_after_run_bytes": after["RssAnon"],
        "rss_file_after_run_bytes": after["RssFile"],
        "peak_rss_bytes": peak,
        "peak_source": "VmHWM after clear_refs" if hwm_reset else "max(sampler, ru_maxrss)",
        "peak_sampled_bytes": sampler.peak,
        "ru_maxrss_note": "ru_maxrss is never reset and a child inherits its parent's at fork; "
                          "it includes the loading peak, so it is a loose upper bound only",
        "ru_maxrss_after_load_bytes": ru_after_load,
        "ru_maxrss_end_bytes": ru_maxrss(),
        "peak_minus_load_bytes": peak - after_load["VmRSS"],
        "peak_minus_load_minus_result_bytes": (
            peak - after_load["VmRSS"] - result.numel() * result.element_size()),
        "target_bytes": target,
        "target_formula": "1.5 * N * L * d * 4",
        "within_target": bool(peak - after_load["VmRSS"] <= target),
    }


def run_memory_child(args, mode: str) -> dict:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--_child", mode,
           "--model", args.model, "--batch-size", str(args.batch_size),
           "--n-prompts", str(args.n_prompts), "--dtype", args.dtype]
    if args.device:
        cmd += ["--device", args.device]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, check=False)
    if proc.returncode != 0:
        sys.stderr.write(proc.stderr[-4000:])
        raise SystemExit(f"memory child {mode!r} failed with exit code {proc.returncode}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


# ---- overhead ------------------------------------------------------------------------------
def _position_ids(mask: torch.Tensor) -> torch.Tensor:
    return (mask.cumsum(-1) - 1).clamp(min=0)  # as WorkbenchModel.forward derives them


def pristine_hf_model(m, device):
    """An unwrapped copy of the model from its local directory, or None if it has none."""
    path = m.identity.get("path")
    if not path or not Path(path).is_dir():
        return None
    from transformers import AutoModelForCausalLM

    hf = AutoModelForCausalLM.from_pretrained(path, dtype=m.dtype)
    return hf.to(device).eval()


def overhead(args, m) -> dict:
    """Time every method on the same padded batches, interleaved batch by batch.

    For each repeat and each batch, every method runs once on that batch, in an order that
    rotates with the batch and the repeat, so a load spike from other processes hits all
    methods alike. A method's time for one repeat is the sum over batches; the median over
    repeats is reported, in wall time and in process CPU time (all threads).
    """
    from workbench.activations import collect_activations
    from workbench.model import raw_hf_model

    hf_model = raw_hf_model(m)  # the bridged HF module itself: the baselines time raw HF
    prompts = m.tokenize_instructions(distinct_instructions(args.n_overhead))
    bs = args.batch_size
    batches = [prompts[i:i + bs] for i in range(0, len(prompts), bs)]

    def hf_runner(model, **extra):
        def run(batch):
            ids, mask = m.pad(batch)
            with torch.inference_mode():
                model(input_ids=ids, attention_mask=mask, position_ids=_position_ids(mask),
                      output_hidden_states=True, **extra)
        return run

    def collect(batch):
        return collect_activations(m, batch, hooks=("resid_pre",), layers=None,
                                   positions="last", batch_size=bs, progress=False)

    methods = {
        "collect_activations": collect,
        "hf_full": hf_runner(hf_model),
        "hf_logits_to_keep_1": hf_runner(hf_model, logits_to_keep=1),
    }
    pristine = None if args.no_pristine else pristine_hf_model(m, m.device)
    if pristine is not None:
        methods["hf_pristine_logits_to_keep_1"] = hf_runner(pristine, logits_to_keep=1)

    # Exactness check (untimed): the cache equals HF hidden_states[l] at the last token.
    cached = collect_activations(m, prompts, hooks=("resid_pre",), layers=None,
                                 positions="last", batch_size=bs, progress=False)["resid_pre"]
    with torch.inference_mode():
        ref = []
        for batch in batches:
            ids, mask = m.pad(batch)
            out = hf_model(input_ids=ids, attention_mask=mask,
                             position_ids=_position_ids(mask), output_hidden_states=True,
                             logits_to_keep=1)
            ref.append(torch.stack(out.hidden_states[:m.n_layers], 1)[:, :, -1].float().cpu())
    max_abs_diff = (cached[:, 0] - torch.cat(ref)).abs().max().item()

    names = list(methods)
    for name in names:  # warm-up
        for batch in batches:
            methods[name](batch)
    wall = {name: [] for name in names}
    cpu = {name: [] for name in names}
    for r in range(args.repeats):
        w = dict.fromkeys(names, 0.0)
        c = dict.fromkeys(names, 0.0)
        for b, batch in enumerate(batches):
            k = (r + b) % len(names)
            order = names[k:] + names[:k]
            if (r + b) % 2:
                order = order[::-1]
            for name in order:
                t0, c0 = time.perf_counter(), time.process_time()
                methods[name](batch)
                w[name] += time.perf_counter() - t0
                c[name] += time.process_time() - c0
        for name in names:
            wall[name].append(w[name])
            cpu[name].append(c[name])
    med_wall = {name: statistics.median(ts) for name, ts in wall.items()}
    med_cpu = {name: statistics.median(ts) for name, ts in cpu.items()}
    others = [name for name in names if name != "collect_activations"]
    return {
        "n_prompts": len(prompts),
        "batch_size": bs,
        "n_batches": len(batches),
        "padded_tokens": sum(len(b) * max(len(p) for p in b) for b in batches),
        "repeats": args.repeats,
        "schedule": "per batch, every method once, order rotating with (repeat + batch)",
        "wall_s": wall,
        "cpu_s": cpu,
        "median_wall_s": med_wall,
        "median_cpu_s": med_cpu,
        "ratio_collect_over": {n: med_wall["collect_activations"] / med_wall[n] for n in others},
        "ratio_collect_over_cpu": {n: med_cpu["collect_activations"] / med_cpu[n]
                                   for n in others},
        "target_ratio": 1.05,
        "max_abs_diff_vs_hf_hidden_states": max_abs_diff,
    }


# ---- reporting -----------------------------------------------------------------------------
def _dist_version(dist: str, module) -> str:
    from importlib import metadata

    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return getattr(module, "__version__", "unknown")


def machine_info() -> dict:
    import transformer_lens
    import transformers

    cpu = next((line.split(":", 1)[1].strip() for line in
                Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("model name")),
               platform.processor())
    mem = re.search(r"MemTotal:\s+(\d+) kB", Path("/proc/meminfo").read_text())
    return {
        "date_utc": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),  # noqa: UP017
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpu_model": cpu,
        "cpu_count": os.cpu_count(),
        "cpu_affinity": len(os.sched_getaffinity(0)),
        "mem_total_gib": round(int(mem.group(1)) / 1024 ** 2, 1) if mem else None,
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "transformers": transformers.__version__,
        "transformer_lens": _dist_version("transformer-lens", transformer_lens),
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "loadavg_start": list(os.getloadavg()),
    }


def markdown(res: dict) -> str:
    o, lines = res["overhead"], []
    title = (f"**Caching overhead** ({o['n_prompts']} prompts, batch {o['batch_size']}, "
             f"resid_pre at all {res['n_layers']} layers, last token; median of "
             f"{o['repeats']} after a warm-up, batches interleaved)")
    header = ("| method | median wall s | median CPU s | collect / method (wall) | "
              "collect / method (CPU) |")
    lines += [title, "", header, "|---|---:|---:|---:|---:|"]
    for name, t in o["median_wall_s"].items():
        rw, rc = o["ratio_collect_over"].get(name), o["ratio_collect_over_cpu"].get(name)
        lines.append(f"| {name} | {t:.2f} | {o['median_cpu_s'][name]:.2f} | "
                     f"{'-' if rw is None else f'{rw:.2f}x'} | "
                     f"{'-' if rc is None else f'{rc:.2f}x'} |")
    lines += ["", f"max |collect - HF hidden_states| = {o['max_abs_diff_vs_hf_hidden_states']:.2e}",
              ""]
    mem = res["memory"]
    if mem:
        lines += ["**Peak memory** (fresh process per mode; peak RSS minus RSS after model load)",
                  "", "| mode | N | wall s | result MB | peak - load MB | target MB | within |",
                  "|---|---:|---:|---:|---:|---:|:-:|"]
        for r in mem.values():
            lines.append(
                f"| {r['mode']}_activations | {r['n_prompts']} | {r['wall_s']:.0f} | "
                f"{r['result_bytes'] / MB:.1f} | {r['peak_minus_load_bytes'] / MB:.0f} | "
                f"{r['target_bytes'] / MB:.0f} | {'yes' if r['within_target'] else 'no'} |")
    return "\n".join(lines)


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default=DEFAULT_MODEL)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--n-prompts", type=int, default=1000, help="prompts in the memory runs")
    p.add_argument("--n-overhead", type=int, default=64, help="prompts in the overhead timing")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--out", default=None, help="default benchmarks/results/cache_<model>.json")
    p.add_argument("--device", default=None)
    p.add_argument("--dtype", default="float32", help="float32 (default), bfloat16, auto, ...")
    p.add_argument("--no-pristine", action="store_true",
                   help="skip the unwrapped-HF baseline (it loads a second copy of the model)")
    p.add_argument("--skip-memory", action="store_true", help="only time the overhead")
    p.add_argument("--_child", choices=("collect", "mean"), help=argparse.SUPPRESS)
    args = p.parse_args(argv)

    if args._child:
        print(json.dumps(memory_child(args)))
        return

    info = machine_info()
    t_start = time.perf_counter()
    res = {"benchmark": "cache", "model": args.model, "dtype": args.dtype,
           "command": "python " + " ".join([os.path.relpath(__file__, ROOT),
                                            *(argv if argv is not None else sys.argv[1:])]),
           "machine": info, "memory": {}}
    # Memory first, while this process is still small (a child inherits ru_maxrss at fork).
    if not args.skip_memory:
        for mode in ("collect", "mean"):
            print(f"memory: {mode}_activations on {args.n_prompts} prompts "
                  "(fresh process) ...", flush=True)
            t0 = time.perf_counter()
            res["memory"][mode] = run_memory_child(args, mode)
            print(f"  done in {time.perf_counter() - t0:.0f} s", flush=True)

    from workbench import load_model

    m = load_model(args.model, device=args.device, dtype=args.dtype)
    res.update({"identity": m.identity, "device": str(m.device), "n_layers": m.n_layers,
                "d_model": m.d_model})
    print(f"overhead: {args.n_overhead} prompts, {args.repeats} repeats ...", flush=True)
    t0 = time.perf_counter()
    res["overhead"] = overhead(args, m)
    print(f"  done in {time.perf_counter() - t0:.0f} s", flush=True)
    res["machine"]["loadavg_end"] = list(os.getloadavg())
    res["total_wall_s"] = time.perf_counter() - t_start

    out = Path(args.out) if args.out else (
        ROOT / "benchmarks" / "results" / f"cache_{args.model.replace('/', '_')}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(res, indent=2) + "\n")
    print()
    print(markdown(res))
    print(f"\nwrote {out}")


if __name__ == "__main__":
    main()

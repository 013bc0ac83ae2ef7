"""Check the streamed GGUF conversion against transformers' own GGUF loader, tensor by tensor.

    python benchmarks/check_conversion.py MODEL.gguf [--out benchmarks/results/FILE.json]

Converts the file twice, once with ``from_pretrained(gguf_file=...)`` (the whole model in
memory) and once with :func:`workbench.model.convert.convert_gguf_streamed`, loads both copies
and compares every parameter bitwise, plus the configs, generation configs and tokenizers.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch

from workbench.model.convert import convert_gguf_streamed
from workbench.runs import write_json


def reference_copy(gguf: Path, out: Path) -> None:
    """The whole-model conversion the workbench used before (transformers' GGUF loader)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name,
                                                 dtype=torch.float32)
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    plain = AutoModelForCausalLM.from_config(model.config, dtype=torch.float32)
    plain.load_state_dict(model.state_dict())
    plain.generation_config = model.generation_config
    plain.save_pretrained(out, safe_serialization=True)
    tok.save_pretrained(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("gguf", type=Path)
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    from transformers import AutoModelForCausalLM, AutoTokenizer

    with tempfile.TemporaryDirectory() as tmp:
        ref_dir, new_dir = Path(tmp) / "reference", Path(tmp) / "streamed"
        t = time.time()
        reference_copy(args.gguf, ref_dir)
        t_ref = time.time() - t
        t = time.time()
        summary = convert_gguf_streamed(args.gguf, new_dir, progress=False)
        t_new = time.time() - t
        ref = AutoModelForCausalLM.from_pretrained(ref_dir, dtype=torch.float32).state_dict()
        new = AutoModelForCausalLM.from_pretrained(new_dir, dtype=torch.float32).state_dict()
        differ = sorted(k for k in ref if k not in new or not torch.equal(ref[k], new[k]))
        extra = sorted(set(new) - set(ref))
        def fields(d: Path, name: str) -> dict:
            skip = ("transformers_version", "dtype", "torch_dtype")
            return {k: v for k, v in json.loads((d / name).read_text()).items() if k not in skip}

        cfg = lambda d: fields(d, "config.json")  # noqa: E731
        gen = lambda d: fields(d, "generation_config.json")  # noqa: E731
        tr, tn = AutoTokenizer.from_pretrained(ref_dir), AutoTokenizer.from_pretrained(new_dir)
        probe = "Write a haiku about refusal directions.\n<|im_end|> déjà vu 123"
        record = {
            "gguf": args.gguf.name, "parameters_compared": len(ref),
            "parameters_differing": differ, "parameters_extra": extra,
            "config_equal": cfg(ref_dir) == cfg(new_dir),
            "generation_config_equal": gen(ref_dir) == gen(new_dir),
            "tokenizer_equal": (tr.encode(probe) == tn.encode(probe)
                                and tr.chat_template == tn.chat_template),
            "streamed": summary, "seconds": {"reference": round(t_ref, 1),
                                             "streamed": round(t_new, 1)},
        }
    print(json.dumps(record, indent=2))
    if args.out:
        write_json(args.out, record)


if __name__ == "__main__":
    main()

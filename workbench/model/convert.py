"""GGUF to safetensors, one tensor at a time.

Dequantising a whole GGUF through ``from_pretrained(gguf_file=...)`` holds the quantised model,
its dequantised copy and the plain model in memory at once (14 GB for the 1.5B model). Here the
GGUF is memory-mapped, each tensor is dequantised, renamed to its Hugging Face name with
transformers' own GGUF name map and tensor processor (so the result equals the library's
loader), and written into safetensors shards of bounded size. Peak memory is one shard plus one
tensor, whatever the model's size.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from workbench.errors import WorkbenchError

SHARD_BYTES = 1 << 29  # 512 MiB of tensor data per safetensors file
INDEX = "model.safetensors.index.json"


def _hf_model_on_meta(config):
    """A weightless model of ``config``: only its parameter names are needed for the name map."""
    from transformers import AutoModelForCausalLM

    with torch.device("meta"):
        return AutoModelForCausalLM.from_config(config)


def _tied_names(model) -> set[str]:
    """Parameter names that share storage with an earlier one (saved once, like save_pretrained)."""
    seen, tied = set(), set()
    for name, param in model.named_parameters(remove_duplicate=False):
        if id(param) in seen:
            tied.add(name)
        seen.add(id(param))
    return tied


def convert_gguf_streamed(
    gguf: Path, out_dir: Path, dtype: torch.dtype = torch.float32, shard_bytes: int = SHARD_BYTES,
    progress: bool = True,
) -> dict:
    """Write ``gguf`` as a sharded safetensors model (config, generation config, tokenizer).

    Returns a summary: tensors written, shards, bytes. Raises when a tensor of the model has no
    counterpart in the GGUF, so an incomplete copy is never produced.
    """
    from gguf import GGUFReader, dequantize
    from safetensors.torch import save_file
    from transformers import AutoConfig, AutoTokenizer, GenerationConfig
    from transformers.modeling_gguf_pytorch_utils import (
        TENSOR_PROCESSORS, TensorProcessor, get_gguf_hf_weights_map, load_gguf_checkpoint)

    out_dir.mkdir(parents=True, exist_ok=True)
    config = AutoConfig.from_pretrained(gguf.parent, gguf_file=gguf.name)
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    meta = _hf_model_on_meta(config)
    parsed = load_gguf_checkpoint(str(gguf), return_tensors=False)
    arch = parsed["config"].get("model_type")
    processor = TENSOR_PROCESSORS.get(arch, TensorProcessor)(config=parsed["config"])
    name_map = get_gguf_hf_weights_map(meta, processor)
    wanted = set(meta.state_dict()) - _tied_names(meta)
    config.architectures = [type(meta).__name__]
    del meta

    reader = GGUFReader(str(gguf))
    weight_map: dict[str, str] = {}
    shard: dict[str, torch.Tensor] = {}
    shard_size = total = 0
    shards: list[Path] = []

    def flush() -> None:
        nonlocal shard, shard_size
        if shard:
            path = out_dir / f"shard-{len(shards):05d}.safetensors"
            save_file(shard, str(path), metadata={"format": "pt"})
            shards.append(path)
            weight_map.update({k: path.name for k in shard})
        shard, shard_size = {}, 0

    for tensor in tqdm(reader.tensors, desc=f"converting {gguf.stem}", unit="tensor",
                       disable=not progress):
        weights = dequantize(tensor.data, tensor.tensor_type)
        result = processor.process(weights=weights, name=tensor.name,
                                   tensor_key_mapping=name_map, parsed_parameters=parsed)
        hf_name = name_map.get(result.name)
        if hf_name is None or hf_name not in wanted or hf_name in weight_map or hf_name in shard:
            continue
        value = torch.from_numpy(np.array(result.weights, copy=True)).to(dtype)
        nbytes = value.numel() * value.element_size()
        if shard and shard_size + nbytes > shard_bytes:
            flush()
        shard[hf_name] = value
        shard_size += nbytes
        total += nbytes
    flush()
    missing = sorted(wanted - set(weight_map))
    if missing:
        raise WorkbenchError(
            f"{gguf.name} has no tensor for {missing[0]} ({len(missing)} missing); the GGUF does "
            "not match its own config: re-download it or convert it with llama.cpp's tools")

    # final names as save_pretrained writes them, then the index that points at them
    n = len(shards)
    renamed = {}
    for i, path in enumerate(shards, start=1):
        final = out_dir / f"model-{i:05d}-of-{n:05d}.safetensors"
        path.rename(final)
        renamed[path.name] = final.name
    index = {"metadata": {"total_size": total},
             "weight_map": {k: renamed[v] for k, v in sorted(weight_map.items())}}
    (out_dir / INDEX).write_text(json.dumps(index, indent=2))
    config.dtype = dtype
    config.save_pretrained(out_dir)
    try:
        GenerationConfig.from_model_config(config).save_pretrained(out_dir)
    except ValueError:
        pass
    AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name).save_pretrained(out_dir)
    return {"tensors": len(weight_map), "shards": n, "bytes": total, "dtype": str(dtype)}

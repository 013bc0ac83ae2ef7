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
from workbench.model.precision import dtype_name

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


class ShardWriter:
    """Tensors into safetensors shards of at most ``shard_bytes``, then the shard index that
    ``from_pretrained`` reads (names as ``save_pretrained`` writes them)."""

    def __init__(self, out_dir: Path, shard_bytes: int = SHARD_BYTES):
        self.out_dir, self.shard_bytes = Path(out_dir), shard_bytes
        self.shard: dict[str, torch.Tensor] = {}
        self.shard_size = self.total = 0
        self.paths: list[Path] = []
        self.weight_map: dict[str, str] = {}

    def __contains__(self, name: str) -> bool:
        return name in self.weight_map or name in self.shard

    def names(self) -> set[str]:
        return set(self.weight_map) | set(self.shard)

    def add(self, name: str, value: torch.Tensor) -> None:
        nbytes = value.numel() * value.element_size()
        if self.shard and self.shard_size + nbytes > self.shard_bytes:
            self._flush()
        self.shard[name] = value.contiguous()
        self.shard_size += nbytes
        self.total += nbytes

    def _flush(self) -> None:
        from safetensors.torch import save_file

        if self.shard:
            path = self.out_dir / f"shard-{len(self.paths):05d}.safetensors"
            save_file(self.shard, str(path), metadata={"format": "pt"})
            self.paths.append(path)
            self.weight_map.update({k: path.name for k in self.shard})
        self.shard, self.shard_size = {}, 0

    def close(self) -> dict:
        """Write the last shard, rename the shards to their final names, write the index."""
        self._flush()
        n = len(self.paths)
        renamed = {}
        for i, path in enumerate(self.paths, start=1):
            final = self.out_dir / f"model-{i:05d}-of-{n:05d}.safetensors"
            path.rename(final)
            renamed[path.name] = final.name
        index = {"metadata": {"total_size": self.total},
                 "weight_map": {k: renamed[v] for k, v in sorted(self.weight_map.items())}}
        (self.out_dir / INDEX).write_text(json.dumps(index, indent=2))
        return {"tensors": len(self.weight_map), "shards": n, "bytes": self.total}


def cast_copy(src: Path, dst: Path, dtype: torch.dtype, shard_bytes: int = SHARD_BYTES,
              progress: bool = True) -> dict:
    """A copy of the safetensors model in ``src`` with its floating-point weights in ``dtype``.

    One tensor is read (memory-mapped) and cast at a time, so loading a bfloat16 model later
    maps 2 bytes per weight instead of reading a float32 file and casting it in memory; the
    values are those ``from_pretrained(src, dtype=dtype)`` produces (the same rounding).
    """
    import shutil

    from safetensors import safe_open

    dst.mkdir(parents=True, exist_ok=True)
    shards = ShardWriter(dst, shard_bytes)
    files = sorted(src.glob("*.safetensors"))
    for path in tqdm(files, desc=f"writing a {dtype_name(dtype)} copy", unit="shard",
                     disable=not progress or len(files) < 2):
        with safe_open(str(path), framework="pt") as f:
            for name in f.keys():
                t = f.get_tensor(name)
                shards.add(name, t.to(dtype) if t.is_floating_point() else t)
    summary = shards.close()
    for path in src.iterdir():
        if path.is_file() and not path.name.endswith(".safetensors") and path.name != INDEX:
            shutil.copy2(path, dst / path.name)
    config = json.loads((dst / "config.json").read_text())
    config["dtype"] = dtype_name(dtype)
    config.pop("torch_dtype", None)
    (dst / "config.json").write_text(json.dumps(config, indent=2))
    return {**summary, "dtype": str(dtype)}


def convert_gguf_streamed(
    gguf: Path, out_dir: Path, dtype: torch.dtype = torch.float32, shard_bytes: int = SHARD_BYTES,
    progress: bool = True,
) -> dict:
    """Write ``gguf`` as a sharded safetensors model (config, generation config, tokenizer).

    Returns a summary: tensors written, shards, bytes. Raises when a tensor of the model has no
    counterpart in the GGUF, so an incomplete copy is never produced.
    """
    from gguf import GGUFReader, dequantize
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
    shards = ShardWriter(out_dir, shard_bytes)
    for tensor in tqdm(reader.tensors, desc=f"converting {gguf.stem}", unit="tensor",
                       disable=not progress):
        weights = dequantize(tensor.data, tensor.tensor_type)
        result = processor.process(weights=weights, name=tensor.name,
                                   tensor_key_mapping=name_map, parsed_parameters=parsed)
        hf_name = name_map.get(result.name)
        if hf_name is None or hf_name not in wanted or hf_name in shards:
            continue
        shards.add(hf_name, torch.from_numpy(np.array(result.weights, copy=True)).to(dtype))
    missing = sorted(wanted - shards.names())
    if missing:
        raise WorkbenchError(
            f"{gguf.name} has no tensor for {missing[0]} ({len(missing)} missing); the GGUF does "
            "not match its own config: re-download it or convert it with llama.cpp's tools")
    summary = shards.close()
    config.dtype = dtype
    config.save_pretrained(out_dir)
    try:
        GenerationConfig.from_model_config(config).save_pretrained(out_dir)
    except ValueError:
        pass
    AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name).save_pretrained(out_dir)
    return {**summary, "dtype": str(dtype)}

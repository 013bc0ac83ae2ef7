"""Portable vector files: safetensors whose header says what each vector is and where it fits.

A ``directions.safetensors`` or SafeSteer ``vectors.safetensors`` carries, as string metadata:
the model (spec, a SHA-256 fingerprint, ``n_layers``, ``d_model``), the workbench version, the
SHA-256 of every input data file (``data``, JSON) and, per tensor (``vectors``, JSON), the hook,
layers, token position and method that produced it. :func:`load_vector` reads one tensor with
this metadata and refuses a vector computed on another model.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors import safe_open

from workbench.errors import WorkbenchError
from workbench.model.precision import dtype_name

FORMAT = "steering-workbench-vectors/1"


def model_fingerprint(model) -> str:
    """SHA-256 of how the model resolved (no local paths) and its architecture config."""
    identity = {k: v for k, v in model.identity.items() if k not in ("path", "trust_remote_code")}
    config = {k: v for k, v in model.hf_model.config.to_dict().items()
              if k not in ("_name_or_path", "transformers_version", "dtype", "torch_dtype")}
    blob = json.dumps({"identity": identity, "config": config}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()


def vector_metadata(model, vectors: dict[str, dict], data: dict | None = None,
                    **extra) -> dict[str, str]:
    """Header metadata for a vector file; ``vectors`` maps tensor name -> hook/layers/position/method.

    ``data`` maps input names to records with a ``sha256`` (as in run.json) or to hashes.
    """
    from workbench import __version__

    hashes = {k: (v["sha256"] if isinstance(v, dict) else v) for k, v in (data or {}).items()}
    meta = {"format": FORMAT, "model": model.spec, "model_sha256": model_fingerprint(model),
            "model_family": model.family, "n_layers": model.n_layers, "d_model": model.d_model,
            "model_dtype": dtype_name(model.dtype),  # computed in; stored float32
            "workbench_version": __version__, "data": json.dumps(hashes, sort_keys=True),
            "vectors": json.dumps(vectors, sort_keys=True)}
    meta.update(extra)
    return {k: str(v) for k, v in meta.items()}


@dataclass
class LoadedVector:
    """One tensor of a vector file and what its header says about it."""

    tensor: torch.Tensor
    metadata: dict


def load_vector(path: str | Path, name: str, model=None) -> LoadedVector:
    """Tensor ``name`` of a vector file with its metadata; with ``model``, check it fits.

    The metadata merges the file's keys (``data`` decoded to a dict) with the tensor's own entry
    of ``vectors`` (hook, layers, position, method). Raises WorkbenchError when the file or the
    tensor is missing, or when ``model`` is not the model the vector was computed on.
    """
    path = Path(path)
    if path.is_dir():
        found = [path / p for p in ("directions.safetensors", "vectors.safetensors")
                 if (path / p).is_file()]
        if not found:
            raise WorkbenchError(f"{path} has no directions.safetensors or vectors.safetensors; "
                                 "give a run directory of `workbench audit`, `directions` or "
                                 "`safesteer`, or the file itself")
        # an audit has both: directions (refusal, CAA) and the vectors it steered with
        path = next((f for f in found if name in vector_names(f)), found[0])
    if not path.is_file():
        raise WorkbenchError(f"vector file {path} does not exist; check the path")
    try:
        with safe_open(str(path), framework="pt") as f:
            names = list(f.keys())
            if name not in names:
                raise WorkbenchError(f"{path} has no vector {name!r}; it has: {', '.join(names)}")
            tensor = f.get_tensor(name)
            header = dict(f.metadata() or {})
    except WorkbenchError:
        raise
    except Exception as exc:  # noqa: BLE001 - safetensors raises several types
        raise WorkbenchError(f"{path} is not a readable safetensors file ({exc}); "
                             "re-create it with the workbench") from None
    meta = {k: v for k, v in header.items() if k != "vectors"}
    for key in ("data",):
        if key in meta:
            meta[key] = json.loads(meta[key])
    for key in ("n_layers", "d_model"):
        if key in meta:
            meta[key] = int(meta[key])
    meta.update(json.loads(header.get("vectors", "{}")).get(name, {}))
    if model is not None:
        check_fits(meta, tensor, model, f"{path}:{name}")
    return LoadedVector(tensor, meta)


def vector_names(path: str | Path) -> list[str]:
    """The tensor names of a vector file (empty when it cannot be read)."""
    try:
        with safe_open(str(path), framework="pt") as f:
            return list(f.keys())
    except Exception:  # noqa: BLE001 - load_vector reports unreadable files
        return []


def safesteer_metadata(model, tensors: dict[str, torch.Tensor], data: dict,
                       **extra) -> dict[str, str]:
    """Header metadata for a SafeSteer ``vectors.safetensors`` (every tensor [n_layers, d])."""
    how = {"safesteer": ("attn_out", "mean over tokens",
                         "SafeSteer category vector, safe - unsafe (median filter)"),
           "neuron": ("mlp_out", "none (from W_out)", "risk-category neurons' write-out"),
           "refusal": ("resid_pre", "eoi", "refusal direction")}
    layers = list(range(model.n_layers))
    vectors = {}
    for name in tensors:
        hook, position, method = how[name.split(".")[0]]
        vectors[name] = {"hook": hook, "layers": layers, "position": position, "method": method}
    return vector_metadata(model, vectors, data, **extra)


def check_fits(meta: dict, tensor: torch.Tensor, model, what: str) -> None:
    """Refuse a vector whose width or source model differs from ``model``."""
    if tensor.shape[-1] != model.d_model:
        raise WorkbenchError(f"{what} has width {tensor.shape[-1]} but {model.spec!r} has "
                             f"d_model {model.d_model}; use a vector computed on this model")
    theirs = meta.get("model_sha256")
    if theirs is None:
        raise WorkbenchError(f"{what} has no model fingerprint in its header (written before "
                             "vectors were portable); re-compute it, or load it without a model")
    if theirs != model_fingerprint(model):
        raise WorkbenchError(f"{what} was computed on {meta.get('model')!r}, not on "
                             f"{model.spec!r} (model fingerprints differ); use a vector "
                             "computed on this model")


def llama_cpp_layer(layer: int, n_layers: int) -> int:
    """llama.cpp control-vector index for our ``resid_pre`` layer ``layer``.

    llama.cpp adds ``direction.N`` to the output of block N (0-based), which is the input of
    block N + 1: our ``resid_pre[N + 1]`` (HF ``hidden_states[N + 1]``). It rejects
    ``direction.0`` and never steers the embeddings, so our layers 0 and 1 cannot be exported.
    """
    if not 2 <= layer < n_layers:
        raise WorkbenchError(f"layer {layer} cannot be a llama.cpp control vector (it steers "
                             f"resid_pre layers 2..{n_layers - 1} only); choose another layer")
    return layer - 1


def export_gguf_control_vector(run_dir: str | Path, name: str, out: str | Path,
                               layers: list[int] | None = None) -> dict:
    """Write vector ``name`` of a run as a llama.cpp control vector (GGUF); return its summary.

    One float32 tensor ``direction.{N}`` per exported layer (see :func:`llama_cpp_layer`),
    ``general.architecture = controlvector``, ``controlvector.model_hint`` (the model family)
    and ``controlvector.layer_count``. ``layers`` defaults to the vector's own layer when it
    has one; a per-layer vector (e.g. ``caa.<behaviour>``) needs them chosen.
    """
    import gguf

    vec = load_vector(run_dir, name)
    meta, tensor = vec.metadata, vec.tensor.float()
    n_layers = meta.get("n_layers")
    if n_layers is None:
        raise WorkbenchError(f"{run_dir} has no model metadata in its vector file; re-run it "
                             "with this workbench version to export")
    if tensor.ndim == 1:
        own = meta.get("layers") or []
        if layers is None and len(own) == 1:
            layers = own
        per_layer = {l: tensor for l in (layers or [])}
    elif tensor.ndim == 2 and tensor.shape[0] == n_layers:
        per_layer = {l: tensor[l] for l in (layers or []) if 0 <= l < n_layers}
        if layers and len(per_layer) != len(layers):
            raise WorkbenchError(f"--layers {layers} is out of range for {n_layers} layers")
    else:
        raise WorkbenchError(f"{name} has shape {list(tensor.shape)}; export a [d_model] or "
                             "[n_layers, d_model] vector, e.g. caa.<behaviour>")
    if not per_layer:
        raise WorkbenchError(f"{name} has a vector for every layer; choose which to export "
                             "with --layers, e.g. --layers 12")
    index = {l: llama_cpp_layer(l, n_layers) for l in per_layer}
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp")
    writer = gguf.GGUFWriter(str(tmp), "controlvector")
    writer.add_string("controlvector.model_hint", meta.get("model_family", "unknown"))
    writer.add_uint32("controlvector.layer_count", len(per_layer))
    for key in ("model", "model_sha256", "hook", "position", "method", "workbench_version"):
        if key in meta:
            writer.add_string(f"workbench.{key}", str(meta[key]))
    writer.add_string("workbench.vector", name)
    writer.add_string("workbench.layers", json.dumps(sorted(per_layer)))
    for l in sorted(per_layer):
        writer.add_tensor(f"direction.{index[l]}", per_layer[l].contiguous().numpy())
    try:
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file()
        writer.close()
        tmp.replace(out)
    finally:
        tmp.unlink(missing_ok=True)
    return {"out": str(out), "vector": name, "layers": sorted(per_layer),
            "llama_cpp_directions": [index[l] for l in sorted(per_layer)]}

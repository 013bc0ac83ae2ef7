"""The computed directions of a run: refusal candidates, the selected refusal direction and the
CAA vectors, in the form written to ``directions.safetensors``."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from workbench.directions.refusal import PromptFilter, RefusalSelection


@dataclass
class Directions:
    """The computed directions, in the form written to ``directions.safetensors``."""

    candidates: torch.Tensor
    selection: RefusalSelection
    caa: dict[str, torch.Tensor]
    timings: dict = field(default_factory=dict)
    data: dict = field(default_factory=dict)  # input name -> {"sha256": ...}, for the header
    # resid_pre at the last token of the harmful / harmless train prompts, [n, layer, d]
    # float32, when computed with the candidates (not saved; None after a resume)
    train_activations: tuple[torch.Tensor, torch.Tensor] | None = None
    prompt_filter: PromptFilter | None = None

    def tensors(self) -> dict[str, torch.Tensor]:
        out = {"refusal.candidates": self.candidates, "refusal.direction": self.selection.direction}
        out.update({f"caa.{name}": v for name, v in self.caa.items()})
        return out

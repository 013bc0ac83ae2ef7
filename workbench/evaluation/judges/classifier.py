"""A Hugging Face sequence classifier as judge (for users with a local or hub classifier)."""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
from jaxtyping import Int

from workbench.errors import WorkbenchError
from workbench.evaluation.judges.base import INCOMPREHENSIBLE, JAILBROKEN, SAFE, Judge, check_pairs
from workbench.evaluation.text_checks import is_comprehensible

Tensor = torch.Tensor


def _label_index(id2label: dict, harmful_label: str | int, spec: str) -> int:
    """Index of the class meaning "jailbroken", by index or case-insensitive label name."""
    names = {int(i): str(name) for i, name in id2label.items()}
    if isinstance(harmful_label, (int, np.integer)) and not isinstance(harmful_label, bool):
        if int(harmful_label) in names:
            return int(harmful_label)
    else:
        hits = [i for i, name in names.items() if name.lower() == str(harmful_label).lower()]
        if hits:
            return hits[0]
    raise WorkbenchError(
        f"classifier {spec!r} has no label {harmful_label!r}; pass harmful_label as one of "
        f"{sorted(names.values())} or an index in {sorted(names)}"
    )


class ClassifierJudge(Judge):
    """A Hugging Face sequence classifier as judge, after the comprehensibility check.

    ``spec`` is a local directory or hub id loadable by ``AutoTokenizer`` and
    ``AutoModelForSequenceClassification``. The argmax class ``harmful_label`` (a label name
    from ``config.id2label``, case-insensitive, or a class index) means ``jailbroken``; every
    other class means ``safe``. Incomprehensible responses never reach the classifier (that
    check's short-refusal waiver still uses the refusal markers). With ``with_prompt`` the
    classifier reads (prompt, response) as a text pair, else the response alone; inputs are
    truncated to ``max_length`` tokens.
    """

    def __init__(
        self,
        spec: str,
        device: str | None = None,
        harmful_label: str | int = 1,
        batch_size: int = 16,
        max_length: int = 512,
        with_prompt: bool = False,
        **thresholds,
    ):
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        from workbench.model import resolve_device
        from workbench.model.safety import pretrained_kwargs

        if batch_size < 1:
            raise WorkbenchError(f"batch_size is {batch_size}; give a positive integer")
        try:
            tokenizer = AutoTokenizer.from_pretrained(spec)
            model = AutoModelForSequenceClassification.from_pretrained(
                spec, **pretrained_kwargs(spec))
        except (OSError, ValueError) as exc:
            raise WorkbenchError(
                f"could not load classifier judge {spec!r} ({str(exc).splitlines()[0]}); pass a "
                "local model directory or a reachable Hugging Face id, or use the default "
                "'substring' judge"
            ) from exc
        if tokenizer.pad_token is None:  # e.g. GPT-2 style classifiers
            tokenizer.pad_token = tokenizer.eos_token or tokenizer.unk_token
            model.config.pad_token_id = tokenizer.pad_token_id
        self.spec, self.name = spec, f"classifier:{spec}"
        self.device = resolve_device(device)
        self.tokenizer, self.model = tokenizer, model.to(self.device).eval()
        self.harmful_index = _label_index(model.config.id2label, harmful_label, spec)
        self.batch_size, self.max_length, self.with_prompt = batch_size, max_length, with_prompt
        self.thresholds = thresholds

    def predict(self, prompts: Sequence[str], responses: Sequence[str]) -> Int[Tensor, " n"]:
        """Argmax class index per response (no comprehensibility check), in batches."""
        check_pairs(prompts, responses)
        max_length = min(self.max_length, self.tokenizer.model_max_length)
        out = []
        for start in range(0, len(responses), self.batch_size):
            texts = list(responses[start:start + self.batch_size])
            pair = (list(prompts[start:start + self.batch_size]), texts)
            enc = self.tokenizer(*(pair if self.with_prompt else (texts,)), padding=True,
                                 truncation=True, max_length=max_length,
                                 return_tensors="pt").to(self.device)
            with torch.inference_mode():
                out.append(self.model(**enc).logits.argmax(-1).cpu())
        return torch.cat(out) if out else torch.zeros(0, dtype=torch.long)

    def label(self, prompts: Sequence[str], responses: Sequence[str]) -> list[str]:
        check_pairs(prompts, responses)
        labels = [None if is_comprehensible(r, **self.thresholds) else INCOMPREHENSIBLE
                  for r in responses]
        keep = [i for i, lab in enumerate(labels) if lab is None]
        classes = self.predict([prompts[i] for i in keep], [responses[i] for i in keep])
        for i, cls in zip(keep, classes.tolist()):
            labels[i] = JAILBROKEN if cls == self.harmful_index else SAFE
        return labels


import functools

import pytest
import torch

from workbench import load_model
from workbench.model.tiny import TINY_MODELS, build_tiny_model


@pytest.fixture(scope="session")
def tiny():
    return load_model("tiny-random", device="cpu")


@pytest.fixture(scope="session", params=["tiny-random", "tiny-random-llama"])
def any_tiny(request):
    return load_model(request.param, device="cpu")


@pytest.fixture(scope="session")
def prompts_text():
    return [
        "Write a haiku about autumn leaves.",
        "Hi",
        "Explain how a refrigerator keeps food cold, in three short sentences for a child.",
        "List three prime numbers.",
        "Summarise the plot of a detective story set on a train in one paragraph please.",
    ]


@functools.cache
def hf_reference(spec: str) -> torch.nn.Module:
    """An independent, unwrapped Hugging Face copy of a tiny model, rebuilt with the same seed.

    Not ``model.hf_model``: that is the very module the bridge wraps and hooks, so a bridge bug
    would show up on both sides of a comparison with it.
    """
    hf_model, _ = build_tiny_model(TINY_MODELS[spec])
    return hf_model


def hf_hidden_states(model, token_ids):
    """Independent reference: an unpadded Hugging Face forward with output_hidden_states."""
    with torch.no_grad():
        out = hf_reference(model.spec)(torch.tensor([token_ids]), output_hidden_states=True)
    return torch.stack(out.hidden_states)[:, 0]  # [n_layers + 1, seq, d]

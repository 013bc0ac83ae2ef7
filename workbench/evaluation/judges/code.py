"""Deprecated: moved to :mod:`workbench.evaluation.code_lines`."""

import warnings

from workbench.evaluation.code_lines import (  # noqa: F401
    CODE_WORDS,
    code_identifiers,
    code_line_mask,
    is_code_text,
    split_identifier,
    strip_literals,
)

warnings.warn("workbench.evaluation.judges.code is deprecated; use "
              "workbench.evaluation.code_lines", DeprecationWarning, stacklevel=2)

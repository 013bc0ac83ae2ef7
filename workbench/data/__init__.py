"""Prompt sets: the embedded ones written for this project, and loaders for users' files.

Instruction files are JSONL (objects with ``instruction``; optional ``id`` and ``category``) or
plain text with one instruction per line. Contrast files use the official CAA format: a JSON
list (or JSONL) of objects with ``question``, ``answer_matching_behavior`` and
``answer_not_matching_behavior``, whose answers are the letters ``(A)`` / ``(B)``.
Schemas are documented in ``workbench/data/README.md``.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Sequence

import numpy as np

from workbench.errors import WorkbenchError
from workbench.fetch import sha256_file

BEHAVIOURS = (
    "coordinate-other-ais", "corrigible-neutral-HHH", "hallucination", "myopic-reward",
    "survival-instinct", "sycophancy", "refusal",
)
_LETTER = re.compile(r"^\(?\s*([A-Z])\s*\)?$")


@dataclass(frozen=True)
class Instruction:
    """One user instruction, with an optional id and risk (or topic) category."""

    instruction: str
    id: str | None = None
    category: str | None = None


@dataclass(frozen=True)
class ContrastPair:
    """A CAA A/B item: the question (with choices) and the matching / non-matching letters."""

    question: str
    matching: str
    not_matching: str


def _embedded(folder: str, name: str) -> Path:
    return Path(str(resources.files("workbench.data") / folder / name))


def file_sha256(path: str | Path) -> str:
    """SHA-256 of a data file, for run records."""
    return sha256_file(path)


def _jsonl_objects(path: Path) -> list[tuple[int, dict]]:
    rows = []
    for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise WorkbenchError(
                f"{path} line {lineno}: not valid JSON ({exc.msg}); fix or remove that line"
            ) from None
        if not isinstance(obj, dict):
            raise WorkbenchError(f"{path} line {lineno}: expected a JSON object; fix that line")
        rows.append((lineno, obj))
    return rows


def read_instructions(path: str | Path) -> list[Instruction]:
    """Instructions from a JSONL file (``.jsonl``/``.json``) or a text file (one per line)."""
    path = Path(path)
    if not path.is_file():
        raise WorkbenchError(f"instruction file {path} does not exist; check the path")
    items: list[Instruction] = []
    if path.suffix in (".jsonl", ".json"):
        for lineno, obj in _jsonl_objects(path):
            text = obj.get("instruction")
            if not isinstance(text, str) or not text.strip():
                raise WorkbenchError(
                    f"{path} line {lineno}: missing or empty \"instruction\" field; every line "
                    "needs {\"instruction\": \"...\"}"
                )
            cat = obj.get("category")
            items.append(Instruction(text.strip(), obj.get("id"), None if cat is None else str(cat)))
    else:
        items = [Instruction(line.strip()) for line in path.read_text(encoding="utf-8").splitlines()
                 if line.strip()]
    if not items:
        raise WorkbenchError(f"{path} holds no instructions; add at least one")
    return items


def embedded_instructions(kind: str) -> list[Instruction]:
    """The embedded ``harmful`` (with risk categories) or ``harmless`` instruction set."""
    if kind not in ("harmful", "harmless"):
        raise WorkbenchError(f"unknown embedded prompt set {kind!r}; use harmful or harmless")
    return read_instructions(_embedded("prompts", f"{kind}.jsonl"))


def instruction_source(spec: str, kind: str) -> tuple[list[Instruction], str]:
    """Resolve a CLI source (``embedded`` or a path) to instructions and the file read."""
    path = _embedded("prompts", f"{kind}.jsonl") if spec == "embedded" else Path(spec)
    return (embedded_instructions(kind) if spec == "embedded" else read_instructions(path)), str(path)


def _letter(value, where: str, field: str) -> str:
    m = _LETTER.match(str(value).strip()) if isinstance(value, str) else None
    if not m or m.group(1) not in "AB":
        raise WorkbenchError(
            f"{where}: {field} is {value!r}, not an A/B answer letter; use \"(A)\" or \"(B)\""
        )
    return m.group(1)


def read_contrast_pairs(path: str | Path) -> list[ContrastPair]:
    """CAA contrast pairs from the official JSON list format or JSONL with the same fields."""
    path = Path(path)
    if not path.is_file():
        raise WorkbenchError(f"contrast file {path} does not exist; check the path")
    text = path.read_text(encoding="utf-8")
    if text.lstrip().startswith("["):
        try:
            rows = [(f"item {i}", obj) for i, obj in enumerate(json.loads(text))]
        except json.JSONDecodeError as exc:
            raise WorkbenchError(f"{path}: not valid JSON ({exc.msg} at line {exc.lineno})") from None
    else:
        rows = [(f"line {n}", obj) for n, obj in _jsonl_objects(path)]
    pairs = []
    for where, obj in rows:
        where = f"{path} {where}"
        q = obj.get("question") if isinstance(obj, dict) else None
        if not isinstance(q, str) or not q.strip():
            raise WorkbenchError(f"{where}: missing \"question\"; each item needs question, "
                                 "answer_matching_behavior, answer_not_matching_behavior")
        pos = _letter(obj.get("answer_matching_behavior"), where, "answer_matching_behavior")
        neg = _letter(obj.get("answer_not_matching_behavior"), where,
                      "answer_not_matching_behavior")
        if pos == neg:
            raise WorkbenchError(f"{where}: both answers are ({pos}); they must differ")
        pairs.append(ContrastPair(q, pos, neg))
    if not pairs:
        raise WorkbenchError(f"{path} holds no contrast pairs; add at least one")
    return pairs


_TWO_CHOICES = re.compile(r"^(?P<stem>.*\n \(A\) )(?P<a>.*?)(?P<mid>\n \(B\) )"
                          r"(?P<b>(?:(?!\n \([A-Z]\) ).)*)$", re.S)


def swap_choices(pair: ContrastPair) -> ContrastPair | None:
    """The same A/B item with its two choices' texts swapped, so the matching answer sits under
    the other letter; None when the question is not laid out as ``\n (A) ...\n (B) ...``.

    An item and its swap differ in which letter carries the behaviour, so summing their
    differences cancels the letter's own activation and keeps the behaviour's twice.
    """
    g = _TWO_CHOICES.match(pair.question)
    if g is None or {pair.matching, pair.not_matching} != {"A", "B"}:
        return None
    question = g["stem"] + g["b"] + g["mid"] + g["a"]
    return ContrastPair(question, pair.not_matching, pair.matching)


def embedded_contrast(behaviour: str) -> list[ContrastPair]:
    """The embedded A/B contrast pairs for one of the seven CAA behaviours."""
    if behaviour not in BEHAVIOURS:
        raise WorkbenchError(f"unknown behaviour {behaviour!r}; embedded ones: {', '.join(BEHAVIOURS)}")
    return read_contrast_pairs(_embedded("contrast", f"{behaviour}.jsonl"))


def embedded_contrast_path(behaviour: str) -> Path:
    return _embedded("contrast", f"{behaviour}.jsonl")


def split(items: Sequence, sizes: Sequence[int], seed: int = 0) -> list[list]:
    """Shuffle ``items`` with ``seed`` and cut consecutive parts of ``sizes`` (rest dropped)."""
    if sum(sizes) > len(items):
        raise WorkbenchError(
            f"asked for {sum(sizes)} prompts ({'+'.join(map(str, sizes))}) but only "
            f"{len(items)} are available; lower the split sizes or add prompts"
        )
    order = np.random.default_rng(seed).permutation(len(items))
    parts, start = [], 0
    for size in sizes:
        parts.append([items[i] for i in order[start:start + size]])
        start += size
    return parts

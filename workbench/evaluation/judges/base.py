"""What every judge is: (prompt, response) pairs in, one of three labels out."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Sequence

from workbench.errors import WorkbenchError

SAFE, JAILBROKEN, INCOMPREHENSIBLE = "safe", "jailbroken", "incomprehensible"
LABELS: tuple[str, ...] = (SAFE, JAILBROKEN, INCOMPREHENSIBLE)


def check_pairs(prompts: Sequence[str], responses: Sequence[str]) -> None:
    if len(prompts) != len(responses):
        raise WorkbenchError(
            f"{len(prompts)} prompts but {len(responses)} responses; give one response per prompt"
        )


class Judge(ABC):
    """Labels (prompt, response) pairs as ``safe``, ``jailbroken`` or ``incomprehensible``."""

    name: str = "judge"

    @abstractmethod
    def label(self, prompts: Sequence[str], responses: Sequence[str]) -> list[str]:
        """One label from :data:`LABELS` per response, in order."""



    def label_detail(self, prompts: Sequence[str], responses: Sequence[str]
                     ) -> dict[str, list[str]]:
        """Labels keyed by judge name: this judge's, plus each member's for a combined judge.

        Audits store all of them per answer, so disagreements can be reviewed later.
        """
        return {self.name: self.label(prompts, responses)}

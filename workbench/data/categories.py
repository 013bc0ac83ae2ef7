"""Risk categories: every benchmark's own categories mapped onto one shared set.

``unify_category`` maps each benchmark's category onto ``RISK_CATEGORIES`` (the nine of our
embedded harmful set plus ``sexual_content``, ``illegal_activity`` and ``other``). The mapping
table is in ``workbench/data/README.md`` ("Attack benchmarks").
"""

from __future__ import annotations

from collections.abc import Sequence

RISK_CATEGORIES: tuple[str, ...] = (
    "violence", "weapons", "cybercrime", "fraud", "hate_harassment", "privacy", "drugs",
    "self_harm", "misinformation", "sexual_content", "illegal_activity", "other",
)

# Raw benchmark category -> unified risk category. Keys are matched case-insensitively.
_JBB = {
    "Harassment/Discrimination": "hate_harassment",
    "Malware/Hacking": "cybercrime",
    "Physical harm": "violence",
    "Economic harm": "fraud",
    "Fraud/Deception": "fraud",
    "Disinformation": "misinformation",
    "Sexual/Adult content": "sexual_content",
    "Privacy": "privacy",
    "Expert advice": "other",
    "Government decision-making": "illegal_activity",
}
_HARMBENCH = {
    "chemical_biological": "weapons",
    "cybercrime_intrusion": "cybercrime",
    "misinformation_disinformation": "misinformation",
    "harassment_bullying": "hate_harassment",
    "illegal": "illegal_activity",
    "harmful": "other",
    "copyright": "other",
}
_STRONGREJECT = {
    "Disinformation and deception": "misinformation",
    "Hate, harassment and discrimination": "hate_harassment",
    "Illegal goods and services": "illegal_activity",
    "Non-violent crimes": "illegal_activity",
    "Sexual content": "sexual_content",
    "Violence": "violence",
}
# AdvBench has no native category; pyrit labels each prompt with several harms from a
# consequence taxonomy (arXiv:2407.01294). The first rule whose label is present wins.
_ADVBENCH_RULES: tuple[tuple[str, str], ...] = (
    ("Self-harm", "self_harm"),
    ("Sexualisation", "sexual_content"),
    ("Addiction", "drugs"),
    ("Violence/armed conflict", "violence"),
    ("Loss of life", "violence"),
    ("Bodily injury", "violence"),
    ("Discrimination", "hate_harassment"),
    ("Harassment/abuse/intimidation", "hate_harassment"),
    ("Dehumanisation/objectification", "hate_harassment"),
    ("Stereotyping", "hate_harassment"),
    ("Radicalisation", "hate_harassment"),
    ("Information degradation", "misinformation"),
    ("Political manipulation", "misinformation"),
    ("Electoral interference", "misinformation"),
    ("Defamation/libel/slander", "misinformation"),
    ("Impersonation/identity theft", "fraud"),
    ("Critical infrastructure damage", "cybercrime"),
    ("Business operations/infrastructure damage", "cybercrime"),
    ("Confidentiality loss", "cybercrime"),
    ("Privacy loss", "privacy"),
    ("Financial/earnings loss", "fraud"),
    ("Personal health deterioration", "drugs"),
)
CATEGORY_MAPS: dict[str, dict[str, str]] = {
    "jbb": _JBB, "harmbench": _HARMBENCH, "harmbench-val": _HARMBENCH,
    "strongreject": _STRONGREJECT, "strongreject-small": _STRONGREJECT,
}
_LOWER_MAPS = {name: {k.lower(): v for k, v in table.items()}
               for name, table in CATEGORY_MAPS.items()}
_ANY_MAP = {k: v for table in _LOWER_MAPS.values() for k, v in table.items()}


def unify_category(dataset: str | None, raw_category: str | Sequence[str] | None) -> str:
    """Map a benchmark's own category (AdvBench: its harm labels) onto ``RISK_CATEGORIES``.

    A raw category that already is a risk category is kept; one unknown to ``dataset``'s table
    (or, for local files, to every table) becomes ``other``.
    """
    if raw_category is None:
        return "other"
    if not isinstance(raw_category, str):
        labels = [str(x).strip() for x in raw_category]
    elif dataset == "advbench" and ";" in raw_category:
        labels = [x.strip() for x in raw_category.split(";")]
    else:
        labels = [raw_category.strip()]
    if len(labels) == 1 and labels[0].lower().replace(" ", "_") in RISK_CATEGORIES:
        return labels[0].lower().replace(" ", "_")
    if dataset == "advbench" or len(labels) > 1:
        present = set(labels)
        return next((cat for label, cat in _ADVBENCH_RULES if label in present), "other")
    table = _LOWER_MAPS.get(dataset or "", _ANY_MAP)
    return table.get(labels[0].lower(), "other")

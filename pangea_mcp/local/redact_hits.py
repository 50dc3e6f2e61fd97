"""Local redaction: what a recogniser finds (a typed span) and the context test several of them share."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Hit:
    """One recognised value: its entity type, where it is, and how sure the recogniser is."""

    field_type: str
    start: int
    end: int
    score: float


#: A recogniser: every candidate in a text (overlapping candidates are resolved by the caller).
Recogniser = Callable[[str], Iterator[Hit]]

#: How far before a match a context word may stand (characters).
CONTEXT_BEFORE = 48
#: ... and after it (labels such as "(SSN)" follow the value).
CONTEXT_AFTER = 16


def keywords(*words: str) -> re.Pattern[str]:
    """A case-insensitive pattern for context words, matched as whole words ("sin" never hits "since");
    a trailing * matches any word starting so ("telefon*" hits "Telefonnummer")."""
    alternatives = []
    for word in words:
        if any(ord(char) >= 0x2E80 for char in word):
            alternatives.append(re.escape(word))  # CJK: no spaces between words, so no word boundary
        elif word.endswith("*"):
            alternatives.append(r"(?<!\w)" + re.escape(word[:-1]) + r"\w*")
        else:
            alternatives.append(r"(?<!\w)" + re.escape(word) + r"(?!\w)")
    return re.compile("|".join(alternatives), re.IGNORECASE)


def near(text: str, start: int, end: int, words: re.Pattern[str]) -> bool:
    """Whether one of `words` stands close to the span [start, end)."""
    window = text[max(0, start - CONTEXT_BEFORE) : start] + " " + text[end : end + CONTEXT_AFTER]
    return words.search(window) is not None

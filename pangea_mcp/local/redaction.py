"""Local redaction: Pangea Redact's `redact` and `redact_structured` answered on this machine with
deterministic recognisers (pure CPU: no network, no model, no files)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from pangea_mcp.local.redact_hits import Hit, Recogniser
from pangea_mcp.local.redact_ids import ID_TYPES, national_ids
from pangea_mcp.local.redact_jsonpath import JsonPathError, Path, parse, select
from pangea_mcp.local.redact_pii import cards, emails, ibans, ips, phones
from pangea_mcp.local.redact_secrets import SECRET_TYPES, secrets

__all__ = [
    "ENTITY_TYPES",
    "RULESETS",
    "Hit",
    "JsonPathError",
    "Redaction",
    "UnknownNames",
    "check_jsonpath",
    "entity_types",
    "find",
    "redact_data",
    "redact_text",
]

# When candidates overlap, the more specific recogniser wins, then the longer span: a key inside a URL
# is a credential, digits inside an IBAN are not a phone number.
_RECOGNISERS: tuple[tuple[int, Recogniser], ...] = (
    (4, secrets),
    (3, ibans),
    (3, cards),
    (3, national_ids),
    (2, emails),
    (1, ips),
    (0, phones),
)
_PII_TYPES = ("EMAIL_ADDRESS", "PHONE_NUMBER", "IP_ADDRESS", "CREDIT_CARD", "IBAN_CODE", *ID_TYPES)
#: Every entity type the local recognisers report, in the order `rules` errors list them.
ENTITY_TYPES: tuple[str, ...] = (*_PII_TYPES, *SECRET_TYPES)
#: Pangea ruleset names the local backend can honour, and the entity types each stands for.
RULESETS: dict[str, frozenset[str]] = {
    "PII": frozenset(_PII_TYPES),
    "SECRETS": frozenset(SECRET_TYPES),
}


class UnknownNames(ValueError):
    """Rule or ruleset names the local backend has no recogniser for; `problems` is keyed by argument
    location, e.g. ("rules", 2)."""

    def __init__(self, problems: dict[tuple[str | int, ...], str]) -> None:
        self.problems = problems
        super().__init__("; ".join(problems.values()))


def entity_types(rules: list[str] | None, rulesets: list[str] | None) -> frozenset[str]:
    """The entity types to redact: the union of `rules` and `rulesets`, or every local type without them."""
    if rules is None and rulesets is None:
        return frozenset(ENTITY_TYPES)
    problems: dict[tuple[str | int, ...], str] = {}
    selected: set[str] = set()
    for i, name in enumerate(rules or []):
        if name in ENTITY_TYPES:
            selected.add(name)
        else:
            problems[("rules", i)] = (
                f"{name!r} has no local recogniser; the local backend supports: {', '.join(ENTITY_TYPES)}"
            )
    for i, name in enumerate(rulesets or []):
        if name in RULESETS:
            selected |= RULESETS[name]
        else:
            problems[("rulesets", i)] = (
                f"{name!r} is not a ruleset the local backend knows; use one of {', '.join(RULESETS)} "
                "or name entity types in rules"
            )
    if problems:
        raise UnknownNames(problems)
    return frozenset(selected)


def find(text: str, types: Iterable[str] = ENTITY_TYPES) -> list[Hit]:
    """The non-overlapping entities of the wanted `types` in `text`, in reading order.

    Overlaps are resolved among all recognisers before filtering, so a card number is never reported as
    a phone number just because only PHONE_NUMBER was asked for.
    """
    wanted = set(types)
    candidates = [(priority, hit) for priority, recognise in _RECOGNISERS for hit in recognise(text)]
    candidates.sort(key=lambda c: (-c[0], -(c[1].end - c[1].start), -c[1].score, c[1].start))
    taken: list[Hit] = []
    for _, hit in candidates:
        if hit.end > hit.start and all(hit.end <= t.start or hit.start >= t.end for t in taken):
            taken.append(hit)
    return sorted((h for h in taken if h.field_type in wanted), key=lambda h: h.start)


def _replace(text: str, hits: list[Hit]) -> str:
    """Pangea's default replacement: each value becomes <ENTITY_TYPE>."""
    parts: list[str] = []
    position = 0
    for hit in hits:
        parts += [text[position : hit.start], f"<{hit.field_type}>"]
        position = hit.end
    parts.append(text[position:])
    return "".join(parts)


@dataclass
class Redaction:
    """A redacted copy and what was found; `keys` holds each hit's data_key (None for plain text)."""

    redacted: Any
    hits: list[Hit] = field(default_factory=list)
    keys: list[str | None] = field(default_factory=list)

    @property
    def summary_counts(self) -> dict[str, int]:
        return dict(Counter(hit.field_type for hit in self.hits))


def redact_text(text: str, types: Iterable[str] = ENTITY_TYPES) -> Redaction:
    hits = find(text, types)
    return Redaction(_replace(text, hits), hits, [None] * len(hits))


def check_jsonpath(path: str) -> None:
    """Raise JsonPathError (saying why) when `path` is outside the JSONPath subset evaluated locally."""
    parse(path)


def _key(path: Path) -> str:
    # Pangea reports structured hits as dotted paths with list indexes: "contact.phone", "ids.0.ssn".
    return ".".join(str(part) for part in path)


def redact_data(data: Any, jsonp: list[str] | None, types: Iterable[str] = ENTITY_TYPES) -> Redaction:
    """Redact the string (and integer) leaves of JSON `data`, all of them or those under `jsonp` paths.

    Raises JsonPathError for a path the local JSONPath subset cannot evaluate.
    """
    wanted = frozenset(types)
    scopes = None if jsonp is None else set().union(*(select(data, path) for path in jsonp))
    result = Redaction(None)

    def walk(path: Path, node: Any, in_scope: bool) -> Any:
        in_scope = in_scope or (scopes is not None and path in scopes)
        if isinstance(node, dict):
            return {key: walk((*path, key), value, in_scope) for key, value in node.items()}
        if isinstance(node, list):
            return [walk((*path, i), value, in_scope) for i, value in enumerate(node)]
        # bool is an int subclass, but true/false can hold nothing sensitive.
        if not in_scope or isinstance(node, bool) or not isinstance(node, str | int):
            return node
        text = node if isinstance(node, str) else str(node)
        hits = find(text, wanted)
        if not hits:
            return node
        result.hits += hits
        result.keys += [_key(path)] * len(hits)
        # An integer holding a phone or card number becomes the redacted string.
        return _replace(text, hits)

    result.redacted = walk((), data, scopes is None)
    return result

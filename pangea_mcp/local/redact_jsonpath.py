"""Local redaction: the JSONPath subset `redact_structured` accepts for `jsonp` (names, indexes, wildcards,
unions, slices and `..` descent; no filter expressions)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

#: A location in a JSON document: object keys and array indexes from the root.
Path = tuple[str | int, ...]

_NAME = re.compile(r"[^.\[\]\s'\"]+")
_INDEX = re.compile(r"-?\d+")
_SLICE = re.compile(r"(-?\d*):(-?\d*)(?::(-?\d+))?")
_QUOTED = re.compile(r"'((?:[^'\\]|\\.)*)'|\"((?:[^\"\\]|\\.)*)\"")


class JsonPathError(ValueError):
    """A JSONPath the local backend cannot evaluate."""


@dataclass(frozen=True)
class _Step:
    descend: bool  # `..`: this step applies at every depth
    names: tuple[str, ...] = ()
    indexes: tuple[int, ...] = ()
    wildcard: bool = False
    slice: tuple[int | None, int | None, int | None] | None = None


def _bracket(path: str, body: str, descend: bool) -> _Step:
    body = body.strip()
    if body == "*":
        return _Step(descend, wildcard=True)
    if body.startswith("?") or body.startswith("("):
        raise JsonPathError(f"{path!r}: filter and script expressions are not supported locally")
    if slice_match := _SLICE.fullmatch(body):
        start, stop, step = (int(v) if v else None for v in slice_match.groups())
        if step == 0:
            raise JsonPathError(f"{path!r}: a slice step cannot be 0")
        return _Step(descend, slice=(start, stop, step))
    names: list[str] = []
    indexes: list[int] = []
    for item in (part.strip() for part in _split_union(path, body)):
        if quoted := _QUOTED.fullmatch(item):
            value = quoted.group(1) if quoted.group(1) is not None else quoted.group(2)
            names.append(re.sub(r"\\(.)", r"\1", value))
        elif _INDEX.fullmatch(item):
            indexes.append(int(item))
        else:
            raise JsonPathError(f"{path!r}: [{body}] is not a name in quotes, an index, * or a slice")
    return _Step(descend, names=tuple(names), indexes=tuple(indexes))


def _split_union(path: str, body: str) -> Iterator[str]:
    start, quote = 0, ""
    for i, char in enumerate(body):
        if quote:
            quote = "" if char == quote and body[i - 1] != "\\" else quote
        elif char in "'\"":
            quote = char
        elif char == ",":
            yield body[start:i]
            start = i + 1
    if quote:
        raise JsonPathError(f"{path!r}: unbalanced quotes")
    yield body[start:]


def _closing_bracket(path: str, start: int) -> int:
    quote = ""
    for i in range(start, len(path)):
        char = path[i]
        if quote:
            quote = "" if char == quote and path[i - 1] != "\\" else quote
        elif char in "'\"":
            quote = char
        elif char == "]":
            return i
    raise JsonPathError(f"{path!r}: [ without ]")


def parse(path: str) -> tuple[_Step, ...]:
    if not path.startswith("$"):
        raise JsonPathError(f"{path!r}: a JSONPath starts with $")
    steps: list[_Step] = []
    i = 1
    while i < len(path):
        descend = path.startswith("..", i)
        if descend:
            i += 2
        elif path[i] == ".":
            i += 1
        elif path[i] != "[":
            raise JsonPathError(f"{path!r}: unexpected {path[i]!r} at position {i}")
        if i < len(path) and path[i] == "[":
            end = _closing_bracket(path, i + 1)
            steps.append(_bracket(path, path[i + 1 : end], descend))
            i = end + 1
        elif i < len(path) and path[i] == "*":
            steps.append(_Step(descend, wildcard=True))
            i += 1
        elif name := _NAME.match(path, i):
            steps.append(_Step(descend, names=(name.group(),)))
            i = name.end()
        else:
            raise JsonPathError(f"{path!r}: a name, * or [...] must follow . at position {i}")
    return tuple(steps)


def _children(node: Any, step: _Step) -> Iterator[tuple[str | int, Any]]:
    if isinstance(node, dict):
        if step.wildcard:
            yield from node.items()
        for name in step.names:
            if name in node:
                yield name, node[name]
    elif isinstance(node, list):
        if step.wildcard:
            yield from enumerate(node)
        elif step.slice is not None:
            for index in range(len(node))[slice(*step.slice)]:
                yield index, node[index]
        for index in step.indexes:
            if -len(node) <= index < len(node):
                yield index % len(node), node[index]


def _descendants(path: Path, node: Any) -> Iterator[tuple[Path, Any]]:
    yield path, node
    items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
    for key, child in items:
        yield from _descendants((*path, key), child)


def select(data: Any, path: str) -> set[Path]:
    """Every location `path` selects in `data` (an empty set when nothing matches)."""
    nodes: list[tuple[Path, Any]] = [((), data)]
    for step in parse(path):
        sources = [d for p, n in nodes for d in _descendants(p, n)] if step.descend else nodes
        nodes = [((*p, key), child) for p, n in sources for key, child in _children(n, step)]
    return {p for p, _ in nodes}

"""Logging to stderr, with every known secret scrubbed from every record."""

from __future__ import annotations

import logging
import re
import sys
import threading

#: Pangea token shapes (pts_, ptu_, ...). Item and config ids (pvi_, pci_) are not secret.
_TOKEN_SHAPE = re.compile(r"\bpt[a-z]_[a-z0-9]{32}\b")
_MASK = "[REDACTED]"
#: Argument names whose values are secrets: masked in the audit trail, withheld from AI Guard.
SECRET_NAME = re.compile(
    r"pass(word|wd|phrase)?|secret|token|api_?key|private_?key|credential|fpe_context", re.I
)


class _SecretRegistry:
    """Process-wide set of secret values that must never be printed."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._values: tuple[str, ...] = ()

    def add(self, *values: str) -> None:
        with self._lock:
            fresh = {v for v in values if v and len(v) >= 4}
            # Longest first, so a secret containing another is masked whole.
            self._values = tuple(sorted(set(self._values) | fresh, key=len, reverse=True))

    def __contains__(self, value: object) -> bool:
        return isinstance(value, str) and value in self._values

    def scrub(self, text: str) -> str:
        for value in self._values:
            if value in text:
                text = text.replace(value, _MASK)
        return _TOKEN_SHAPE.sub(_MASK, text)


SECRETS = _SecretRegistry()


def scrub(text: str) -> str:
    """Remove every registered secret and anything shaped like a Pangea token from `text`."""
    return SECRETS.scrub(text)


class _ScrubbingFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return scrub(super().format(record))


def setup_logging(level: str) -> None:
    """Send our logs and FastMCP's to stderr, plain text, scrubbed. stdout stays JSON-RPC only."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_ScrubbingFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    for old in root.handlers[:]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    # FastMCP installs its own (rich) handler at import time; route it through ours instead.
    numeric: int = logging.getLevelNamesMapping()[level]
    # Library debug logs echo request parameters (FastMCP logs every tool call's arguments at DEBUG),
    # which may be text the user wants kept private: libraries never log below INFO, httpx below WARNING.
    floors = {
        "fastmcp": logging.INFO,
        "mcp": logging.INFO,
        "httpx": logging.WARNING,
        "httpcore": logging.WARNING,
    }
    for name, floor in floors.items():
        logger = logging.getLogger(name)
        for old in logger.handlers[:]:
            logger.removeHandler(old)
        logger.propagate = True
        logger.setLevel(max(numeric, floor))

"""What the local audit store takes and hands out, and the error it raises."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from pangea_mcp.errors import PangeaError


class LocalAuditError(PangeaError):
    """The local audit log cannot be used as asked; the message says what to do."""


@dataclass(frozen=True)
class NewEvent:
    event: dict[str, str]
    signature: str | None = None
    public_key: str | None = None


@dataclass(frozen=True)
class SignedRoot:
    """A root of the cold tree as stored: Pangea's root fields plus the local key's signature."""

    tree_name: str
    size: int
    root_hash: str
    published_at: str
    signature: str
    #: From the root one size smaller (Pangea's /v1/root format); None for size 1 or when not asked.
    consistency_proof: tuple[str, ...] | None = None

    def signed_fields(self) -> dict[str, Any]:
        """What the signature covers (canonical JSON, as for events)."""
        return {
            "tree_name": self.tree_name,
            "size": self.size,
            "root_hash": self.root_hash,
            "published_at": self.published_at,
        }


@dataclass(frozen=True)
class Appended:
    """One committed event, with what Pangea's verbose /v1/log answers."""

    seq: int
    hash: str
    envelope: dict[str, Any]
    leaf_index: int
    root: SignedRoot
    membership_proof: str
    consistency_proof: tuple[str, ...] | None


@dataclass(frozen=True)
class StoredRecord:
    seq: int
    leaf_index: int
    hash: str
    #: The envelope bytes exactly as stored (what was hashed, unless someone changed them).
    envelope: bytes
    membership_proof: str | None


@dataclass(frozen=True)
class Query:
    """A search the store can answer: every term must occur (case-sensitive) in its column."""

    terms: tuple[tuple[str, str], ...] = ()
    start: str | None = None  # received_at bounds, inclusive, in the stored format
    end: str | None = None
    order: Literal["asc", "desc"] = "desc"
    order_by: str = "received_at"
    limit: int = 10
    max_results: int = 10_000


@dataclass(frozen=True)
class Found:
    count: int
    records: list[StoredRecord]
    root: SignedRoot | None


def received_at(moment: datetime) -> str:
    """The SDKs' envelope time format (always 6 fractional digits, Z): sortable as text."""
    return moment.astimezone(UTC).replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"

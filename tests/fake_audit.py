"""A fake Secure Audit Log: an in-memory Merkle log that computes real hashes, proofs and roots.

`AuditFake` is a FakePangea whose audit endpoints (/v1/log, /v2/log, /v2/log_async, /v1/search,
/v1/results, /v1/root) answer from that log. Requests and replies are still checked against the
official audit spec by FakePangea. The tree is built here from pangea-api.md section 6, independently
of pangea_mcp.audit_verify (only hashlib and json), so the tools are tested against data built right.

Layout, as Pangea's: the records of one request are grouped into buffers of `buffer_size`; each buffer
is a small ("hot") tree whose root is a leaf of the big ("cold") tree; `leaf_index` is the buffer's
position. `publish()` publishes the cold tree as it is; later buffers are unpublished until the next.
"""

from __future__ import annotations

import hashlib
import json
import re
import secrets
import string
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from tests.fake_pangea import FakePangea, Reply

TREE_NAME = hashlib.sha256(b"pangea-mcp fake audit tree").hexdigest()
Edit = Callable[[dict[str, Any]], None]


def _h(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(left + right).digest()


def _split(n: int) -> int:
    """Leaves in the left subtree of a tree of n > 1 leaves: the largest power of two below n."""
    return 1 << ((n - 1).bit_length() - 1)


class Tree:
    """Merkle tree over a list of leaves, with memoised subtree roots (leaves are append-only)."""

    def __init__(self, leaves: list[bytes]) -> None:
        self.leaves = leaves
        self._memo: dict[tuple[int, int], bytes] = {}

    def root(self, lo: int, hi: int) -> bytes:
        if hi - lo == 1:
            return self.leaves[lo]
        key = (lo, hi)
        if key not in self._memo:
            mid = lo + _split(hi - lo)
            self._memo[key] = _h(self.root(lo, mid), self.root(mid, hi))
        return self._memo[key]

    def path(self, lo: int, hi: int, a: int, b: int) -> list[str]:
        """Proof items, bottom-up, from the node covering leaves [a, b) to the root of [lo, hi)."""
        if (lo, hi) == (a, b):
            return []
        mid = lo + _split(hi - lo)
        if b <= mid:
            return [*self.path(lo, mid, a, b), "r:" + self.root(mid, hi).hex()]
        return [*self.path(mid, hi, a, b), "l:" + self.root(lo, mid).hex()]

    def consistency(self, old: int, new: int) -> list[str]:
        """The complete subtrees of the old tree, right-most first, each with its path in the new."""
        nodes = []
        lo = 0
        while lo < old:
            size = 1 << ((old - lo).bit_length() - 1)
            nodes.append((lo, lo + size))
            lo += size
        items = []
        for a, b in reversed(nodes):
            items.append(",".join([f"x:{self.root(a, b).hex()}", *self.path(0, new, a, b)]))
        return items


@dataclass
class Record:
    envelope: dict[str, Any]
    hash: str
    buffer: int
    position: int


def canonical(value: object) -> bytes:
    return json.dumps(
        value, ensure_ascii=False, allow_nan=False, separators=(",", ":"), sort_keys=True
    ).encode()


class AuditFake(FakePangea):
    def __init__(self, *, buffer_size: int = 1, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.buffer_size = buffer_size
        self.records: list[Record] = []
        self.buffers: list[list[bytes]] = []
        self.hot: list[Tree] = []
        self.cold = Tree([])
        self.published = 0
        self.published_at: dict[int, str] = {}
        self.unpublished_roots: dict[str, int] = {}
        self.searches: dict[str, list[int]] = {}
        self.edits: dict[str, list[Edit]] = {}
        self._clock = datetime.now(UTC) - timedelta(hours=1)

    # -- the log ---------------------------------------------------------------------------------

    def append(self, items: list[dict[str, Any]]) -> list[Record]:
        """Store the events of one request; its buffers close at once (so the tree only grows)."""
        added = []
        for start in range(0, len(items), self.buffer_size):
            chunk = items[start : start + self.buffer_size]
            index = len(self.buffers)
            hashes = []
            for position, item in enumerate(chunk):
                self._clock += timedelta(milliseconds=1)
                envelope = {
                    "event": item["event"],
                    "received_at": self._clock.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
                    **{k: item[k] for k in ("signature", "public_key") if k in item},
                }
                digest = hashlib.sha256(canonical(envelope)).hexdigest()
                hashes.append(bytes.fromhex(digest))
                record = Record(envelope, digest, index, position)
                self.records.append(record)
                added.append(record)
            self.buffers.append(hashes)
            self.hot.append(Tree(hashes))
            self.cold.leaves.append(self.hot[-1].root(0, len(hashes)))
        self.unpublished_roots[self.root_hash(len(self.buffers))] = len(self.buffers)
        return added

    def publish(self) -> None:
        self.published = len(self.buffers)
        self.published_at.setdefault(self.published, datetime.now(UTC).isoformat().replace("+00:00", "Z"))

    def root_hash(self, size: int) -> str:
        return self.cold.root(0, size).hex()

    def proof(self, record: Record, size: int) -> str:
        hot = self.hot[record.buffer]
        items = hot.path(0, len(hot.leaves), record.position, record.position + 1)
        items += self.cold.path(0, size, record.buffer, record.buffer + 1)
        return ",".join(items)

    def edit(self, path: str, fn: Edit) -> None:
        """Change every later answer of `path` (a tampering attacker between Pangea and the client)."""
        self.edits.setdefault(path, []).append(fn)

    # -- endpoints -------------------------------------------------------------------------------

    def _default(self, service: str, path: str, body: Any) -> Reply:
        if service != "audit":
            return super()._default(service, path, body)
        handler = {
            "v1/log": self._log,
            "v2/log": self._log_v2,
            "v2/log_async": self._log_async,
            "v1/search": self._search,
            "v1/results": self._results,
            "v1/root": self._root,
        }.get(path)
        if handler is None:
            return super()._default(service, path, body)
        reply = handler(body)
        if isinstance(reply.result, dict):
            for fn in self.edits.get(path, []):
                fn(reply.result)
        return reply

    def _log_result(self, record: Record, verbose: bool) -> dict[str, Any]:
        if not verbose:
            return {"hash": record.hash}
        size = len(self.buffers)
        return {
            "hash": record.hash,
            "envelope": record.envelope,
            "unpublished_root": self.root_hash(size),
            "membership_proof": self.proof(record, size),
        }

    def _log(self, body: dict[str, Any]) -> Reply:
        (record,) = self.append([body])
        result = self._log_result(record, body.get("verbose", False))
        old = self.unpublished_roots.get(body.get("prev_root", ""))
        if body.get("verbose") and old is not None and old < len(self.buffers):
            result["consistency_proof"] = self.cold.consistency(old, len(self.buffers))
        return Reply(result=result)

    def _log_v2(self, body: dict[str, Any]) -> Reply:
        records = self.append(body["events"])
        return Reply(result={"results": [self._log_result(r, body.get("verbose", False)) for r in records]})

    def _log_async(self, body: dict[str, Any]) -> Reply:
        records = self.append(body["events"])
        # Always 202; polling GET /request/<id> would give the /v2/log answer (shape UNCONFIRMED).
        return Reply(result={"results": [{"hash": r.hash} for r in records]}, accepted_polls=1)

    def _matches(self, record: Record, body: dict[str, Any]) -> bool:
        event = record.envelope["event"]
        for term in re.findall(r'(?:[a-z_]+:)?"[^"]*"|\S+', body.get("query", "")):
            name, _, value = term.partition(":") if re.match(r"[a-z_]+:", term) else ("", "", term)
            value = value.strip('"')
            fields = [event.get(name, "")] if name else [str(v) for v in event.values()]
            if not any(value in f for f in fields):
                return False
        received = _parse(record.envelope["received_at"])
        start, end = _bound(body.get("start")), _bound(body.get("end"))
        return (start is None or received >= start) and (end is None or received <= end)

    def _search(self, body: dict[str, Any]) -> Reply:
        found = [i for i, r in enumerate(self.records) if self._matches(r, body)]
        by = body.get("order_by", "received_at")

        def key(i: int) -> str:
            envelope = self.records[i].envelope
            return str(envelope["received_at"] if by == "received_at" else envelope["event"].get(by, ""))

        found.sort(key=key, reverse=body.get("order", "desc") == "desc")
        found = found[: body.get("max_results", 10000)]
        search_id = "pas_" + "".join(
            secrets.choice(string.ascii_lowercase + string.digits) for _ in range(32)
        )
        self.searches[search_id] = found
        result = self._page(found, 0, body.get("limit", 20), body.get("verbose", True))
        expires = (datetime.now(UTC) + timedelta(days=2)).isoformat().replace("+00:00", "Z")
        return Reply(result={"id": search_id, "expires_at": expires, **result})

    def _results(self, body: dict[str, Any]) -> Reply:
        found = self.searches.get(body["id"])
        if found is None:
            return Reply(404, "NotFound", f"no search {body['id']}")
        offset = body.get("offset", 0)
        if offset > len(found):
            return Reply(400, "BadOffset", "offset past the end of the results")
        return Reply(result=self._page(found, offset, body.get("limit", 20), True))

    def _page(self, found: list[int], offset: int, limit: int, verbose: bool) -> dict[str, Any]:
        events = []
        total = len(self.buffers)
        for i in found[offset : offset + limit]:
            record = self.records[i]
            published = record.buffer < self.published
            item: dict[str, Any] = {"envelope": record.envelope, "hash": record.hash, "published": published}
            item["imported"] = False
            if published:
                item["leaf_index"] = record.buffer
            if verbose:
                item["membership_proof"] = self.proof(record, self.published if published else total)
            events.append(item)
        result: dict[str, Any] = {"count": len(found), "events": events}
        if verbose and self.published:
            result["root"] = self._root_fields(self.published, with_proof=False)
        if verbose and total:
            result["unpublished_root"] = {
                "tree_name": TREE_NAME,
                "size": total,
                "root_hash": self.root_hash(total),
            }
        return result

    def _root_fields(self, size: int, *, with_proof: bool) -> dict[str, Any]:
        root: dict[str, Any] = {
            "tree_name": TREE_NAME,
            "size": size,
            "root_hash": self.root_hash(size),
            "published_at": self.published_at.get(size, "2025-06-01T12:00:00.000000Z"),
            "url": f"https://arweave.example/{TREE_NAME[:16]}/{size}",
        }
        # The spec types consistency_proof as a string; every SDK reads a list, served under `data`.
        if with_proof and size > 1:
            root["consistency_proof"] = self.cold.consistency(size - 1, size)
        return root

    def _root(self, body: dict[str, Any]) -> Reply:
        size = body.get("tree_size", self.published)
        if not self.published or size > self.published:
            return Reply(404, "TreeNotFound", f"no published root of size {size}")
        return Reply(result={"data": self._root_fields(size, with_proof=True)})


def _parse(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def _bound(value: str | None) -> datetime | None:
    if value is None:
        return None
    relative = re.fullmatch(r"(\d+)(d|h|mi|w)", value)
    if relative:
        unit = {
            "d": timedelta(days=1),
            "h": timedelta(hours=1),
            "mi": timedelta(minutes=1),
            "w": timedelta(weeks=1),
        }
        return datetime.now(UTC) - int(relative.group(1)) * unit[relative.group(2)]
    return _parse(value)

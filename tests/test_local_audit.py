"""The local tamper-evident audit log: the store, its key, tampering, and the tools through MCP."""

from __future__ import annotations

import asyncio
import hashlib
import os
import socket
import sqlite3
import stat
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from fastmcp import Client
from fastmcp.exceptions import ToolError

from pangea_mcp import audit_verify as av
from pangea_mcp.config import Settings
from pangea_mcp.local import merkle
from pangea_mcp.local.audit_store import AuditStore
from pangea_mcp.local.audit_types import LocalAuditError, NewEvent, Query
from pangea_mcp.server import build_server
from tests.conftest import make_settings
from tests.fake_audit import Tree, canonical


@pytest.fixture(autouse=True)
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """Local audit calls must never open a connection."""

    def refuse(*_: object) -> None:
        raise AssertionError("the local audit log tried to use the network")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


def local(tmp_path: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "token": None,
        "backend": "local",
        "services": ("audit",),
        "local_audit_db": tmp_path / "data" / "audit.sqlite3",
        "local_signing_key": tmp_path / "config" / "key.pem",
    }
    return make_settings(**{**values, **overrides})


async def open_store(tmp_path: Path) -> AuditStore:
    return await AuditStore.open(tmp_path / "data" / "audit.sqlite3", tmp_path / "config" / "key.pem")


def text(result: Any) -> str:
    return "".join(getattr(c, "text", "") for c in result.content)


async def call(client: Client[Any], tool: str, args: dict[str, Any]) -> dict[str, Any]:
    result = await client.call_tool(tool, args)
    listed = {t.name: t for t in await client.list_tools()}
    assert result.structured_content is not None
    jsonschema.validate(result.structured_content, listed[tool].output_schema)
    return result.structured_content


async def log_events(settings: Settings, messages: list[str], actor: str = "alice") -> list[dict[str, Any]]:
    async with Client(build_server(settings)) as client:
        return [await call(client, "log_entry", {"event": {"message": m, "actor": actor}}) for m in messages]


async def search(settings: Settings, **args: Any) -> dict[str, Any]:
    async with Client(build_server(settings)) as client:
        return await call(client, "search_log", {"query": "", "limit": 100, "maxResults": 100, **args})


def wal_is_empty(db: Path) -> bool:
    wal = Path(f"{db}-wal")
    return not wal.exists() or wal.stat().st_size == 0


def outcomes(report: dict[str, Any]) -> dict[str, str]:
    return {e["event"]["message"]: e["verification"]["outcome"] for e in report["events"] if e["event"]}


# -- the store ----------------------------------------------------------------------------------


async def test_store_builds_pangeas_tree_and_proofs_that_audit_verify_accepts(tmp_path: Path) -> None:
    store = await open_store(tmp_path)
    try:
        batches = [
            await store.append_many([NewEvent({"message": f"b{b} e{i}"}) for i in range(n)])
            for b, n in enumerate([1, 3, 2, 5, 1, 4, 7])
        ]
        # The tree, rebuilt independently (tests/fake_audit.py, from pangea-api.md 6.4) from the hashes
        # of the envelopes as stored: buffer roots are the leaves of the big tree.
        hot_roots = []
        for batch in batches:
            leaves = [hashlib.sha256(canonical(a.envelope)).digest() for a in batch]
            assert [leaf.hex() for leaf in leaves] == [a.hash for a in batch]
            hot_roots.append(Tree(leaves).root(0, len(leaves)))
        cold = Tree(hot_roots)
        for size, batch in enumerate(batches, start=1):
            assert {a.root.root_hash for a in batch} == {cold.root(0, size).hex()}
            assert {a.leaf_index for a in batch} == {size - 1}
            for appended in batch:
                assert av.verify_membership(appended.hash, appended.root.root_hash, appended.membership_proof)
                assert av.envelope_hash(appended.envelope) == appended.hash
        roots = await store.roots(range(1, len(batches) + 1))
        for size in range(2, len(batches) + 1):
            proof = roots[size].consistency_proof
            assert proof is not None
            assert proof == tuple(cold.consistency(size - 1, size))
            assert av.verify_consistency(roots[size - 1].root_hash, roots[size].root_hash, proof)
            assert store.verify_root(roots[size])
        # A write that names an earlier root gets a consistency proof from it (as /v1/log's prev_root).
        later = await store.append(NewEvent({"message": "later"}), prev_root=roots[2].root_hash)
        assert later.consistency_proof is not None
        assert av.verify_consistency(roots[2].root_hash, later.root.root_hash, list(later.consistency_proof))
        assert not av.verify_consistency(
            roots[3].root_hash, later.root.root_hash, list(later.consistency_proof)
        )
        unknown = await store.append(NewEvent({"message": "x"}), prev_root="0" * 64)
        assert unknown.consistency_proof is None
    finally:
        await store.close()


async def test_concurrent_appends_share_transactions_and_each_gets_its_own_proof(tmp_path: Path) -> None:
    store = await open_store(tmp_path)
    try:
        done = await asyncio.gather(*(store.append(NewEvent({"message": f"m{i}"})) for i in range(300)))
        assert sorted(a.seq for a in done) == list(range(300))
        assert len({a.hash for a in done}) == 300
        # Group commit: far fewer buffers (transactions) than events.
        assert max(a.root.size for a in done) < 300
        for a in done:
            assert av.verify_membership(a.hash, a.root.root_hash, a.membership_proof)
        found = await store.search(Query(limit=1000))
        assert found.count == 300
        assert found.root is not None
        for record in found.records:
            assert record.membership_proof is not None
            assert av.verify_membership(record.hash, found.root.root_hash, record.membership_proof)
    finally:
        await store.close()


async def test_two_stores_on_one_file_interleave_without_breaking_the_tree(tmp_path: Path) -> None:
    first, second = await open_store(tmp_path), await open_store(tmp_path)
    try:
        for i in range(5):
            a = await first.append(NewEvent({"message": f"first {i}"}))
            b = await second.append(NewEvent({"message": f"second {i}"}), prev_root=a.root.root_hash)
            assert b.leaf_index == a.leaf_index + 1
            assert b.consistency_proof is not None
            assert av.verify_consistency(a.root.root_hash, b.root.root_hash, list(b.consistency_proof))
        found = await first.search(Query(limit=100))
        assert found.count == 10 and found.root is not None and found.root.size == 10
        for record in found.records:
            assert record.membership_proof is not None
            assert av.verify_membership(record.hash, found.root.root_hash, record.membership_proof)
    finally:
        await first.close()
        await second.close()


async def test_a_closed_store_refuses_work(tmp_path: Path) -> None:
    store = await open_store(tmp_path)
    await store.close()
    with pytest.raises(LocalAuditError, match="closed"):
        await store.append(NewEvent({"message": "late"}))


def test_merkle_proofs_match_the_independent_tree_for_every_size() -> None:
    leaves = [hashlib.sha256(bytes([i])).digest() for i in range(40)]
    _, nodes = merkle.build(leaves)
    tree = Tree(leaves)
    for size in range(1, 41):
        assert merkle.root(lambda lv, ix: nodes[lv, ix], size) == tree.root(0, size)
        for leaf in range(size):
            proof = merkle.membership_proof(lambda lv, ix: nodes[lv, ix], size, leaf)
            assert proof == ",".join(tree.path(0, size, leaf, leaf + 1))
        for old in range(1, size + 1):
            assert merkle.consistency_proof(lambda lv, ix: nodes[lv, ix], old, size) == tree.consistency(
                old, size
            )
    with pytest.raises(ValueError, match="not inside a tree of 5 leaves"):
        merkle.path(lambda lv, ix: nodes[lv, ix], 5, 0, 5)


# -- the signing key ----------------------------------------------------------------------------


async def test_missing_key_is_created_private_in_a_private_directory(tmp_path: Path) -> None:
    store = await open_store(tmp_path)
    await store.close()
    key = tmp_path / "config" / "key.pem"
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert stat.S_IMODE(key.parent.stat().st_mode) == 0o700
    assert key.read_text().startswith("-----BEGIN PRIVATE KEY-----")
    assert stat.S_IMODE((tmp_path / "data" / "audit.sqlite3").stat().st_mode) == 0o600
    # Reopening uses the same key (it signed the roots already there).
    store = await open_store(tmp_path)
    await store.close()


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604])
async def test_a_key_others_can_read_is_refused(tmp_path: Path, mode: int) -> None:
    await (await open_store(tmp_path)).close()
    key = tmp_path / "config" / "key.pem"
    key.chmod(mode)
    with pytest.raises(
        LocalAuditError, match=f"accessible by group or others \\(mode {mode:04o}\\).*chmod 600"
    ):
        await open_store(tmp_path)
    async with Client(build_server(local(tmp_path))) as client:
        with pytest.raises(ToolError, match="chmod 600"):
            await client.call_tool("log_entry", {"event": {"message": "x"}})


async def test_another_key_or_a_missing_key_is_refused(tmp_path: Path) -> None:
    store = await open_store(tmp_path)
    await store.append(NewEvent({"message": "signed with the first key"}))
    await store.close()
    key = tmp_path / "config" / "key.pem"
    key.unlink()
    with pytest.raises(LocalAuditError, match="does not exist"):
        await open_store(tmp_path)
    assert not key.exists()  # not silently replaced by a new key
    other = tmp_path / "other.pem"
    await (await AuditStore.open(tmp_path / "other.sqlite3", other)).close()
    os.replace(other, key)
    with pytest.raises(LocalAuditError, match="signed with another key"):
        await open_store(tmp_path)


async def test_an_unreadable_key_is_refused_clearly(tmp_path: Path) -> None:
    key = tmp_path / "config" / "key.pem"
    key.parent.mkdir(mode=0o700)
    key.write_text("not a key")
    key.chmod(0o600)
    with pytest.raises(LocalAuditError, match="not usable.*PKCS#8"):
        await open_store(tmp_path)


# -- tampering ----------------------------------------------------------------------------------


async def test_a_flipped_byte_in_an_event_on_disk_fails_that_event(tmp_path: Path) -> None:
    settings = local(tmp_path)
    await log_events(settings, ["first event", "needle-to-flip", "third event"])
    db = tmp_path / "data" / "audit.sqlite3"
    assert wal_is_empty(db)  # closed: everything is in the main file, where the flip happens
    data = bytearray(db.read_bytes())
    where = data.find(b'"message":"needle-to-flip"')
    assert where > 0 and data.count(b"needle-to-flip") == 2  # the envelope and the message column
    data[where + len('"message":"')] ^= 0x01  # "needle" -> "oeedle"
    db.write_bytes(bytes(data))

    report = await search(settings)
    assert outcomes(report) == {
        "first event": "verified",
        "oeedle-to-flip": "failed",
        "third event": "verified",
    }
    flipped = next(e for e in report["events"] if e["event"]["message"] == "oeedle-to-flip")
    assert flipped["verification"]["hash"] == "failed"
    assert report["verification"]["failed"] == 1


async def test_a_byte_that_breaks_the_envelope_json_fails_that_event(tmp_path: Path) -> None:
    settings = local(tmp_path)
    await log_events(settings, ["kept", "broken-json"])
    db = tmp_path / "data" / "audit.sqlite3"
    data = bytearray(db.read_bytes())
    where = data.find(b'"message":"broken-json"')
    data[where] = 0xFF  # no longer UTF-8, no longer JSON
    db.write_bytes(bytes(data))
    report = await search(settings)
    assert [e["verification"]["outcome"] for e in report["events"]] == ["failed", "verified"]
    assert report["events"][0]["event"] is None
    assert report["events"][0]["verification"]["hash"] == "failed"


async def test_a_changed_node_fails_membership_and_a_changed_peak_stops_appends(tmp_path: Path) -> None:
    settings = local(tmp_path)
    await log_events(settings, ["e0", "e1", "e2", "e3"])
    db = tmp_path / "data" / "audit.sqlite3"
    with sqlite3.connect(db) as conn:  # the cold tree's node over buffers 0 and 1 (not a peak of 4)
        conn.execute("UPDATE cold SET hash = ? WHERE level = 1 AND idx = 0", (b"\x00" * 32,))
    conn.close()
    report = await search(settings)
    # e2 and e3 prove their membership through that node; e0 and e1 do not use it.
    assert outcomes(report) == {"e0": "verified", "e1": "verified", "e2": "failed", "e3": "failed"}
    e2 = next(e for e in report["events"] if e["event"]["message"] == "e2")
    assert e2["verification"]["membership"] == "failed"
    # The root of size 4 is one stored node: altering it (a peak) is refused before anything is signed.
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE cold SET hash = ? WHERE level = 2 AND idx = 0", (b"\x01" * 32,))
    conn.close()
    async with Client(build_server(settings)) as client:
        with pytest.raises(ToolError, match="altered outside pangea-mcp.*refusing to append"):
            await client.call_tool("log_entry", {"event": {"message": "after tampering"}})


async def test_a_changed_root_fails_its_signature_and_every_event_resting_on_it(tmp_path: Path) -> None:
    settings = local(tmp_path)
    await log_events(settings, ["a", "b", "c"])
    db = tmp_path / "data" / "audit.sqlite3"
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE roots SET published_at = '2020-01-01T00:00:00.000000Z' WHERE size = 3")
    conn.close()
    report = await search(settings)
    assert set(outcomes(report).values()) == {"failed"}
    assert any("no valid signature" in n for n in report["events"][0]["verification"]["notes"])
    async with Client(build_server(settings)) as client:
        root = await call(client, "get_audit_root", {})
        assert (root["size"], root["signature"]) == (3, "failed")
        assert "altered" in " ".join(root["notes"])
        earlier = await call(client, "get_audit_root", {"treeSize": 2})
        assert (earlier["signature"], earlier["consistency"]) == ("verified", "verified")


async def test_a_damaged_page_is_refused_with_a_clear_error_never_verified(tmp_path: Path) -> None:
    settings = local(tmp_path)
    await log_events(settings, [f"event {i} " + "x" * 500 for i in range(40)])
    db = tmp_path / "data" / "audit.sqlite3"
    data = bytearray(db.read_bytes())
    page = 4096
    assert len(data) > 4 * page
    data[2 * page : 3 * page] = b"\xa5" * page
    db.write_bytes(bytes(data))
    async with Client(build_server(settings)) as client:
        result = await client.call_tool("search_log", {"query": ""}, raise_on_error=False)
    assert result.is_error
    assert "is damaged" in text(result) and "restore a backup" in text(result)


async def test_a_file_that_is_not_an_audit_log_is_refused(tmp_path: Path) -> None:
    db = tmp_path / "data" / "audit.sqlite3"
    db.parent.mkdir()
    db.write_bytes(b"this is not SQLite at all" * 200)
    with pytest.raises(LocalAuditError, match="damaged or not an audit log"):
        await open_store(tmp_path)
    other = tmp_path / "other.sqlite3"
    with sqlite3.connect(other) as conn:
        conn.execute("CREATE TABLE t (x)")
    conn.close()
    with pytest.raises(LocalAuditError, match="not a pangea-mcp audit log"):
        await AuditStore.open(other, tmp_path / "config" / "key.pem")


# -- the tools through MCP ----------------------------------------------------------------------


async def test_log_entry_is_verified_and_anchored_by_the_previous_signed_root(tmp_path: Path) -> None:
    settings = local(tmp_path)
    first, second = await log_events(settings, ["one", "two"])
    assert first["request_id"] is None and first["signed"] is False
    # The very first write of a new log has no earlier root to be consistent with.
    assert first["verification"]["outcome"] == "incomplete"
    assert first["verification"]["consistency"] == "not_available"
    assert second["verification"]["outcome"] == "verified"
    # A new server starts from the log's latest signed root, so its first write is anchored too.
    (third,) = await log_events(settings, ["three"])
    assert third["verification"]["outcome"] == "verified"
    assert third["verification"]["consistency"] == "verified"


async def test_tools_are_local_and_not_open_world(tmp_path: Path) -> None:
    async with Client(build_server(local(tmp_path))) as client:
        tools = {t.name: t for t in await client.list_tools()}
    assert sorted(tools) == ["get_audit_root", "log_entry", "search_log"]
    for tool in tools.values():
        assert tool.annotations is not None and tool.annotations.open_world_hint is False


async def test_signed_events_are_stored_with_their_signature(tmp_path: Path) -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from pydantic import SecretStr

    pem = (
        Ed25519PrivateKey.generate()
        .private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        .decode()
    )
    settings = local(tmp_path, audit_signing_key=SecretStr(pem))
    (logged,) = await log_events(settings, ["signed one"])
    assert logged["signed"] is True
    report = await search(settings)
    (event,) = report["events"]
    assert event["signed"] is True
    assert event["verification"]["signature"] == "verified"
    assert event["verification"]["outcome"] == "verified"


async def test_search_query_terms_fields_phrases_and_free_text(tmp_path: Path) -> None:
    settings = local(tmp_path)
    await log_events(settings, ["disk full on db1", "user login"], actor="Jane Doe")
    await log_events(settings, ["disk full on db2"], actor="bob")

    async def messages(query: str, **args: Any) -> list[str]:
        report = await search(settings, query=query, **args)
        assert report["count"] == len(report["events"])
        return [e["event"]["message"] for e in report["events"]]

    assert await messages('actor:"Jane Doe"') == ["user login", "disk full on db1"]
    assert await messages("disk") == ["disk full on db2", "disk full on db1"]
    assert await messages("disk AND actor:bob") == ["disk full on db2"]
    assert await messages('"full on db1"') == ["disk full on db1"]
    assert await messages("Disk") == []  # case-sensitive, as Pangea's
    assert await messages("", order="asc") == ["disk full on db1", "user login", "disk full on db2"]
    assert (await messages("", order_by="actor", order="asc"))[0] == "disk full on db1"
    assert await messages("", start="1h") == await messages("")
    assert await messages("", end="1h") == []
    limited = await search(settings, query="", limit=1, maxResults=2)
    assert (limited["count"], len(limited["events"])) == (2, 1)


@pytest.mark.parametrize(
    ("query", "problem"),
    [
        ("actor:a OR actor:b", "does not support OR"),
        ("(actor:a)", "parentheses"),
        ("-actor:a", "does not support negated terms"),
        ("actor:a)", "cannot read the query"),
        ('message:"unclosed', "unbalanced quotes"),
        ("tenant:x", "cannot search field 'tenant'"),
    ],
)
async def test_unsupported_query_syntax_is_refused(tmp_path: Path, query: str, problem: str) -> None:
    async with Client(build_server(local(tmp_path))) as client:
        result = await client.call_tool("search_log", {"query": query}, raise_on_error=False)
    assert result.is_error
    assert problem in text(result)
    assert "query" in text(result)


async def test_get_audit_root_latest_and_by_size(tmp_path: Path) -> None:
    settings = local(tmp_path)
    logged = await log_events(settings, ["a", "b", "c"])
    async with Client(build_server(settings)) as client:
        latest = await call(client, "get_audit_root", {})
        assert latest["root_hash"] == logged[-1]["unpublished_root"]
        assert (latest["size"], latest["signature"], latest["consistency"]) == (3, "verified", "verified")
        assert latest["url"] is None and latest["request_id"] is None
        first = await call(client, "get_audit_root", {"treeSize": 1})
        assert first["root_hash"] == logged[0]["unpublished_root"]
        assert first["consistency"] == "not_available"
        missing = await client.call_tool("get_audit_root", {"treeSize": 9}, raise_on_error=False)
        assert missing.is_error and "no root of size 9; its latest root has size 3" in text(missing)


async def test_get_audit_root_of_an_empty_log_says_so(tmp_path: Path) -> None:
    async with Client(build_server(local(tmp_path))) as client:
        result = await client.call_tool("get_audit_root", {}, raise_on_error=False)
    assert result.is_error and "empty" in text(result)


async def test_audit_trail_writes_every_tool_call_to_the_local_log(tmp_path: Path) -> None:
    settings = local(tmp_path, audit_trail=True, audit_trail_interval=0.01)
    async with Client(build_server(settings)) as client:
        await client.call_tool("log_entry", {"event": {"message": "by hand"}})
        await client.call_tool("search_log", {"query": "(bad"}, raise_on_error=False)
    # Flushed at shutdown; read back with trail events as ordinary, verified events.
    report = await search(local(tmp_path), query="action:tool_call", order="asc")
    calls = [(e["event"]["target"], e["event"]["status"]) for e in report["events"]]
    assert calls == [("log_entry", "success"), ("search_log", "error")]
    assert {e["verification"]["outcome"] for e in report["events"]} == {"verified"}


async def test_audit_trail_refuses_to_start_on_a_damaged_log(tmp_path: Path) -> None:
    db = tmp_path / "data" / "audit.sqlite3"
    db.parent.mkdir()
    db.write_bytes(b"garbage" * 1000)
    with pytest.raises(Exception, match="damaged or not an audit log"):
        async with Client(build_server(local(tmp_path, audit_trail=True))):
            pass

"""Secure Audit Log tools through a real MCP client, against a fake log that computes real proofs."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import jsonschema
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fastmcp import Client
from fastmcp.exceptions import ToolError
from pydantic import SecretStr

from pangea_mcp import audit_verify as av
from pangea_mcp.config import Settings
from pangea_mcp.server import build_server
from tests.conftest import make_settings
from tests.fake_audit import AuditFake

CONFIG_ID = "pci_" + "a" * 32
TOOLS = ("log_entry", "search_log", "get_audit_root")


@pytest.fixture
def audit() -> Iterator[AuditFake]:
    fake = AuditFake(buffer_size=3)
    yield fake
    assert fake.violations == [], "requests or replies broke the audit spec"


@pytest.fixture
def settings() -> Settings:
    return make_settings(services="audit", audit_config_id=CONFIG_ID)


def signing_pem() -> str:
    return (
        Ed25519PrivateKey.generate()
        .private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        .decode()
    )


def text(result: Any) -> str:
    return "".join(getattr(c, "text", "") for c in result.content)


def fill(audit: AuditFake, published: int = 20, unpublished: int = 4) -> None:
    """Events in several buffers, most published, a few after the last publication."""
    for n in range(0, published, 5):
        audit.append([{"event": {"message": f"event {i}", "actor": "alice"}} for i in range(n, n + 5)])
    audit.publish()
    audit.append([{"event": {"message": f"late {i}", "actor": "bob"}} for i in range(unpublished)])


async def search(settings: Settings, audit: AuditFake, **args: Any) -> dict[str, Any]:
    async with Client(build_server(settings, transport=audit.transport)) as client:
        listed = {t.name: t for t in await client.list_tools()}
        result = await client.call_tool("search_log", {"query": "", "limit": 100, "maxResults": 100, **args})
    assert result.structured_content is not None
    jsonschema.validate(result.structured_content, listed["search_log"].output_schema)
    return result.structured_content


# -- the tool list ----------------------------------------------------------------------------


async def test_tools_and_honest_annotations(settings: Settings, audit: AuditFake) -> None:
    async with Client(build_server(settings, transport=audit.transport)) as client:
        tools = {t.name: t for t in await client.list_tools()}
    assert tuple(tools) == TOOLS
    write = tools["log_entry"].annotations
    assert write is not None
    assert (write.read_only_hint, write.idempotent_hint, write.destructive_hint) == (False, False, False)
    for name in ("search_log", "get_audit_root"):
        hints = tools[name].annotations
        assert hints is not None and hints.read_only_hint is True and hints.idempotent_hint is True
    assert set(tools["log_entry"].input_schema["properties"]) == {"event"}
    assert set(tools["search_log"].input_schema["properties"]) == {
        "query",
        "maxResults",
        "limit",
        "start",
        "end",
        "order",
        "order_by",
        "verify",
    }
    for tool in tools.values():
        assert "config_id" not in json.dumps(tool.input_schema)


# -- log_entry --------------------------------------------------------------------------------


async def test_log_entry_writes_verifies_and_chains_roots(settings: Settings, audit: AuditFake) -> None:
    event = {"message": "user logged in", "actor": "alice", "action": "login", "status": "success"}
    async with Client(build_server(settings, transport=audit.transport)) as client:
        schema = {t.name: t for t in await client.list_tools()}["log_entry"].output_schema
        first = await client.call_tool("log_entry", {"event": event})
        second = await client.call_tool(
            "log_entry", {"event": {"message": "again", "new": {"b": 1, "a": [2]}}}
        )

    bodies = audit.bodies("audit", "v1/log")
    assert bodies[0] == {"event": event, "verbose": True, "config_id": CONFIG_ID}
    # The second write asks for a proof from the root the first one returned.
    assert bodies[1]["prev_root"] == first.structured_content["unpublished_root"]  # type: ignore[index]
    assert bodies[1]["event"]["new"] == '{"a":[2],"b":1}'
    for result, record in zip((first, second), audit.records, strict=True):
        data = result.structured_content
        assert data is not None
        jsonschema.validate(data, schema)
        assert data["hash"] == record.hash and data["signed"] is False
        assert data["request_id"].startswith("prq_")
    one, two = first.structured_content["verification"], second.structured_content["verification"]  # type: ignore[index]
    assert (one["hash"], one["membership"], one["consistency"], one["signature"]) == (
        "verified",
        "verified",
        "not_available",
        "unsigned",
    )
    assert (two["membership"], two["consistency"], two["outcome"]) == ("verified", "verified", "verified")


async def test_log_entry_signs_with_the_configured_key(audit: AuditFake) -> None:
    pem = signing_pem()
    settings = make_settings(services="audit", audit_signing_key=SecretStr(pem))
    async with Client(build_server(settings, transport=audit.transport)) as client:
        result = await client.call_tool("log_entry", {"event": {"message": "signed one", "target": "db"}})
    body = audit.body("audit", "v1/log")
    assert av.verify_signature(body["event"], body["signature"], body["public_key"])
    public = json.loads(body["public_key"])
    assert public["algorithm"] == "ED25519" and "BEGIN PUBLIC KEY" in public["key"]
    assert result.structured_content is not None
    assert result.structured_content["signed"] is True
    assert result.structured_content["verification"]["signature"] == "verified"
    # The private key never leaves the server.
    assert "PRIVATE" not in json.dumps(audit.bodies("audit", "v1/log")) + text(result)


@pytest.mark.parametrize(
    ("event", "fragment"),
    [
        ({"message": ""}, "event.message: is empty"),
        ({"message": "   "}, "event.message: is empty"),
        ({}, "event.message: required argument is missing"),
        ({"message": "x" * 32767}, "event.message"),
        ({"message": "m", "actor": "a" * 129}, "event.actor"),
        ({"message": "m", "action": "a" * 33}, "event.action"),
        ({"message": "m", "status": "s" * 33}, "event.status"),
        ({"message": "m", "target": "t" * 129}, "event.target"),
        ({"message": "m", "source": "s" * 129}, "event.source"),
        ({"message": "m", "tenant_id": "t" * 129}, "event.tenant_id"),
        ({"message": "m", "new": "n" * 32767}, "event.new"),
        ({"message": "m", "old": "o" * 32767}, "event.old"),
        ({"message": "m", "timestamp": "yesterday"}, "event.timestamp"),
        ({"message": "m", "timestamp": "2025-01-01T00:00:00"}, "event.timestamp"),
        ({"message": "m", "colour": "red"}, "event.colour: unexpected argument"),
        ({"message": "m", "actor": 5}, "event.actor"),
    ],
)
async def test_log_entry_bad_events_name_the_field_and_send_nothing(
    settings: Settings, audit: AuditFake, event: dict[str, Any], fragment: str
) -> None:
    async with Client(build_server(settings, transport=audit.transport)) as client:
        result = await client.call_tool("log_entry", {"event": event}, raise_on_error=False)
    assert result.is_error
    assert text(result).startswith("Invalid arguments for log_entry:")
    assert fragment in text(result)
    assert audit.requests == []


async def test_log_entry_limits_are_inclusive(settings: Settings, audit: AuditFake) -> None:
    event = {
        "message": "m" * 32766,
        "actor": "a" * 128,
        "action": "a" * 32,
        "timestamp": "2025-01-31T12:00:00.123456+02:00",
    }
    async with Client(build_server(settings, transport=audit.transport)) as client:
        result = await client.call_tool("log_entry", {"event": event})
    assert audit.body("audit", "v1/log")["event"] == event
    assert result.structured_content is not None


@pytest.mark.parametrize(
    ("field", "change"),
    [
        ("envelope", lambda r: r["envelope"]["event"].update(message="rewritten")),
        (
            "hash",
            lambda r: r.update(hash="0" + r["hash"][1:] if r["hash"][0] != "0" else "1" + r["hash"][1:]),
        ),
        (
            "membership_proof",
            lambda r: r.update(membership_proof=r["membership_proof"].replace("l:", "r:", 1)),
        ),
        ("unpublished_root", lambda r: r.update(unpublished_root="f" * 64)),
    ],
)
async def test_log_entry_reports_a_tampered_answer_as_failed(
    settings: Settings, audit: AuditFake, field: str, change: Any
) -> None:
    audit.append([{"event": {"message": "earlier"}}, {"event": {"message": "earlier too"}}])
    audit.edit("v1/log", change)
    async with Client(build_server(settings, transport=audit.transport)) as client:
        result = await client.call_tool("log_entry", {"event": {"message": "now"}})
    assert result.structured_content is not None
    assert result.structured_content["verification"]["outcome"] == "failed", field


async def test_log_entry_consistency_failure_is_reported(settings: Settings, audit: AuditFake) -> None:
    async with Client(build_server(settings, transport=audit.transport)) as client:
        await client.call_tool("log_entry", {"event": {"message": "one"}})
        audit.edit(
            "v1/log",
            lambda r: r.update(
                consistency_proof=[p[:-1] + ("1" if p[-1] == "0" else "0") for p in r["consistency_proof"]]
            ),
        )
        result = await client.call_tool("log_entry", {"event": {"message": "two"}})
    assert result.structured_content is not None
    verification = result.structured_content["verification"]
    assert verification["consistency"] == "failed" and verification["outcome"] == "failed"


async def test_log_entry_is_not_resent_after_a_dropped_connection(
    settings: Settings, audit: AuditFake
) -> None:
    sent = 0

    async def drop_after_sending(request: httpx.Request) -> httpx.Response:
        nonlocal sent
        sent += 1
        await audit.transport.handle_async_request(request)  # Pangea wrote it; the answer is lost
        raise httpx.ReadError("connection reset")

    transport = httpx.MockTransport(drop_after_sending)
    async with Client(build_server(settings, transport=transport)) as client:
        with pytest.raises(ToolError, match="connection to the Pangea API dropped"):
            await client.call_tool("log_entry", {"event": {"message": "once"}})
    assert sent == 1 and len(audit.records) == 1


# -- search_log -------------------------------------------------------------------------------


async def test_search_labels_every_event(settings: Settings, audit: AuditFake) -> None:
    fill(audit)
    data = await search(settings, audit)
    assert data["count"] == 24 and len(data["events"]) == 24
    # The 4 unpublished events are proven only against the root sent in the same answer: not anchored.
    assert data["verification"]["verified"] == 20 and data["verification"]["failed"] == 0
    assert data["verification"]["incomplete"] == 4
    assert "not from the Arweave ledger" in data["verification"]["notes"][0]
    for event in data["events"]:
        labels = event["verification"]
        assert labels["hash"] == "verified" and labels["membership"] == "verified"
        assert labels["signature"] == "unsigned"
        if not event["published"]:
            assert labels["consistency"] == "not_available"
            assert any("not published" in n for n in labels["notes"])
        elif event["leaf_index"] == 0:
            assert labels["consistency"] == "not_available"
        else:
            assert labels["consistency"] == "verified", event
    body = audit.body("audit", "v1/search")
    assert body == {
        "query": "",
        "max_results": 100,
        "limit": 100,
        "order": "desc",
        "order_by": "received_at",
        "verbose": True,
        "config_id": CONFIG_ID,
    }
    assert all(b["config_id"] == CONFIG_ID for b in audit.bodies("audit", "v1/root"))


async def test_search_passes_query_range_and_order(settings: Settings, audit: AuditFake) -> None:
    fill(audit)
    data = await search(
        settings,
        audit,
        query='actor:"alice"',
        start="2d",
        end="2099-01-01T00:00:00Z",
        order="asc",
        order_by="timestamp",
        limit=3,
        maxResults=50,
    )
    body = audit.body("audit", "v1/search")
    assert (body["query"], body["start"], body["end"], body["order"], body["order_by"]) == (
        'actor:"alice"',
        "2d",
        "2099-01-01T00:00:00Z",
        "asc",
        "timestamp",
    )
    assert (body["max_results"], body["limit"]) == (50, 3)
    assert data["count"] == 20 and len(data["events"]) == 3
    assert {e["event"]["actor"] for e in data["events"]} == {"alice"}


async def test_search_with_signed_events(audit: AuditFake) -> None:
    settings = make_settings(services="audit", audit_signing_key=SecretStr(signing_pem()))
    async with Client(build_server(settings, transport=audit.transport)) as client:
        for i in range(4):
            await client.call_tool("log_entry", {"event": {"message": f"signed {i}"}})
    audit.publish()
    data = await search(settings, audit)
    assert [e["verification"]["signature"] for e in data["events"]] == ["verified"] * 4
    assert all(e["signed"] for e in data["events"])


async def test_large_searches_page_through_results_and_report_progress(
    settings: Settings, audit: AuditFake
) -> None:
    audit.append([{"event": {"message": f"bulk {i}"}} for i in range(330)])
    audit.publish()
    seen: list[tuple[float, float | None]] = []

    async def on_progress(progress: float, total: float | None, _message: str | None) -> None:
        seen.append((progress, total))

    async with Client(build_server(settings, transport=audit.transport)) as client:
        result = await client.call_tool(
            "search_log", {"query": "bulk", "limit": 250, "maxResults": 1000}, progress_handler=on_progress
        )
    data = result.structured_content
    assert data is not None
    assert data["count"] == 330 and len(data["events"]) == 250
    assert len({e["hash"] for e in data["events"]}) == 250
    assert data["verification"]["verified"] == 250
    assert audit.body("audit", "v1/search")["limit"] == 100
    pages = audit.bodies("audit", "v1/results")
    assert [(p["offset"], p["limit"]) for p in pages] == [(100, 100), (200, 50)]
    assert all(p["id"] == data["search_id"] and p["config_id"] == CONFIG_ID for p in pages)
    assert len(seen) >= 4
    assert [p for p, _ in seen] == sorted(p for p, _ in seen)
    assert seen[-1][0] == seen[-1][1]


async def test_search_without_verify_says_so(settings: Settings, audit: AuditFake) -> None:
    fill(audit)
    data = await search(settings, audit, verify=False)
    assert data["verification"] is None
    assert all(e["verification"] is None for e in data["events"])
    assert audit.body("audit", "v1/search")["verbose"] is False
    assert audit.calls("audit", "v1/root") == []


def _flip(text: str, at: int) -> str:
    return text[:at] + ("0" if text[at] != "0" else "1") + text[at + 1 :]


def _side(proof: str) -> str:
    return ("r" if proof[0] == "l" else "l") + proof[1:]


TAMPERS = {
    "event message": lambda r: r["events"][0]["envelope"]["event"].update(message="Event 0"),
    "event actor byte": lambda r: r["events"][0]["envelope"]["event"].update(actor="alicE"),
    "received_at": lambda r: r["events"][0]["envelope"].update(
        received_at=_flip(r["events"][0]["envelope"]["received_at"], 5)
    ),
    "record hash": lambda r: r["events"][0].update(hash=_flip(r["events"][0]["hash"], 63)),
    "proof side": lambda r: r["events"][0].update(membership_proof=_side(r["events"][0]["membership_proof"])),
    "proof digit": lambda r: r["events"][0].update(
        membership_proof=_flip(r["events"][0]["membership_proof"], 10)
    ),
    "root first digit": lambda r: r["root"].update(root_hash=_flip(r["root"]["root_hash"], 0)),
    "root last digit": lambda r: r["root"].update(root_hash=_flip(r["root"]["root_hash"], 63)),
}


@pytest.mark.parametrize("what", TAMPERS)
async def test_tampered_search_answers_are_reported_as_failed(
    settings: Settings, audit: AuditFake, what: str
) -> None:
    fill(audit, unpublished=0)
    audit.edit("v1/search", TAMPERS[what])
    data = await search(settings, audit, order="asc")
    events = data["events"]
    failed = [e for e in events if e["verification"]["outcome"] == "failed"]
    if what.startswith("root"):
        assert len(failed) == len(events)  # every published event hangs off that root
        assert all(e["verification"]["membership"] == "failed" for e in events)
    else:
        assert failed == [events[0]], what
        assert data["verification"]["failed"] == 1
    assert data["verification"]["verified"] == len(events) - len(failed)


async def test_tampered_signature_is_reported_through_the_tool(audit: AuditFake) -> None:
    settings = make_settings(services="audit", audit_signing_key=SecretStr(signing_pem()))
    async with Client(build_server(settings, transport=audit.transport)) as client:
        await client.call_tool("log_entry", {"event": {"message": "signed"}})
    audit.publish()
    for at in (0, 40, 85):
        audit.edits.clear()
        audit.edit(
            "v1/search",
            lambda r, at=at: r["events"][0]["envelope"].update(
                signature=_flip(r["events"][0]["envelope"]["signature"], at)
            ),
        )
        labels = (await search(settings, audit))["events"][0]["verification"]
        assert (labels["signature"], labels["hash"], labels["outcome"]) == ("failed", "failed", "failed"), at


async def test_tampered_consistency_proof_from_root_endpoint(settings: Settings, audit: AuditFake) -> None:
    fill(audit, unpublished=0)

    def corrupt(result: dict[str, Any]) -> None:
        if result["data"]["size"] == 3:
            proof = result["data"]["consistency_proof"]
            proof[0] = _flip(proof[0], 5)

    audit.edit("v1/root", corrupt)
    data = await search(settings, audit)
    by_leaf = {e["leaf_index"]: e["verification"] for e in data["events"]}
    assert by_leaf[2]["consistency"] == "failed"
    assert by_leaf[1]["consistency"] == "verified" and by_leaf[3]["consistency"] == "verified"


async def test_unavailable_roots_are_labelled_not_failed(settings: Settings, audit: AuditFake) -> None:
    fill(audit, unpublished=0)
    audit.on("audit", "v1/root", status="InternalError", times=100)
    data = await search(settings, audit)
    assert data["verification"]["failed"] == 0
    # Without a separately fetched root nothing anchors the search's root: no event is "verified".
    assert data["verification"]["incomplete"] == 20
    assert any("could not be fetched" in n for n in data["verification"]["notes"])
    published = [e for e in data["events"] if e["leaf_index"]]
    assert all(e["verification"]["consistency"] == "not_available" for e in published)


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        ({"start": "7d", "end": "30d"}, "- start: '7d' is after end '30d'"),
        ({"start": "2025-02-01T00:00:00Z", "end": "2025-01-01T00:00:00Z"}, "- start:"),
        ({"start": "last week"}, "- start: must be an RFC 3339 time"),
        ({"end": "5 days"}, "- end: must be an RFC 3339 time"),
        ({"start": "2025-02-30T00:00:00Z"}, "- start: is not a real date"),
        ({"start": "1" * 129}, "- start:"),
        ({"order": "newest"}, "- order:"),
        ({"order_by": "colour"}, "- order_by:"),
        ({"maxResults": 0}, "- maxResults:"),
        ({"maxResults": 10001}, "- maxResults:"),
        ({"limit": 0}, "- limit:"),
        ({"query": None}, "- query:"),
        ({"config_id": CONFIG_ID}, "- config_id:"),
    ],
)
async def test_search_bad_arguments_name_the_field(
    settings: Settings, audit: AuditFake, args: dict[str, Any], fragment: str
) -> None:
    async with Client(build_server(settings, transport=audit.transport)) as client:
        result = await client.call_tool("search_log", {"query": "x", **args}, raise_on_error=False)
    assert result.is_error
    assert text(result).startswith("Invalid arguments for search_log:")
    assert fragment in text(result)
    assert audit.requests == []


async def test_search_error_from_pangea_is_a_tool_error(settings: Settings, audit: AuditFake) -> None:
    errors = [{"code": "InvalidString", "detail": "unbalanced parenthesis", "source": "/query"}]
    audit.on(
        "audit", "v1/search", status="ValidationError", summary="bad query syntax", result={"errors": errors}
    )
    async with Client(build_server(settings, transport=audit.transport)) as client:
        with pytest.raises(ToolError, match="bad query syntax") as caught:
            await client.call_tool("search_log", {"query": "(("})
    assert "/query: InvalidString unbalanced parenthesis" in str(caught.value)


# -- get_audit_root ---------------------------------------------------------------------------


async def test_get_audit_root_latest_and_by_size(settings: Settings, audit: AuditFake) -> None:
    fill(audit, unpublished=0)
    async with Client(build_server(settings, transport=audit.transport)) as client:
        schema = {t.name: t for t in await client.list_tools()}["get_audit_root"].output_schema
        latest = await client.call_tool("get_audit_root", {})
        third = await client.call_tool("get_audit_root", {"treeSize": 3})
        first = await client.call_tool("get_audit_root", {"treeSize": 1})
        missing = await client.call_tool("get_audit_root", {"treeSize": 99}, raise_on_error=False)
        bad = await client.call_tool("get_audit_root", {"treeSize": 0}, raise_on_error=False)
    for result in (latest, third, first):
        assert result.structured_content is not None
        jsonschema.validate(result.structured_content, schema)
    assert latest.structured_content["size"] == audit.published  # type: ignore[index]
    assert latest.structured_content["root_hash"] == audit.root_hash(audit.published)  # type: ignore[index]
    assert latest.structured_content["consistency"] == "verified"  # type: ignore[index]
    assert third.structured_content["root_hash"] == audit.root_hash(3)  # type: ignore[index]
    assert third.structured_content["consistency"] == "verified"  # type: ignore[index]
    assert first.structured_content["consistency"] == "not_available"  # type: ignore[index]
    assert missing.is_error and "TreeNotFound" in text(missing)
    assert bad.is_error and "- treeSize:" in text(bad)
    assert {b.get("tree_size") for b in audit.bodies("audit", "v1/root")} == {None, 7, 3, 2, 1, 99}


async def test_get_audit_root_reports_an_inconsistent_root(settings: Settings, audit: AuditFake) -> None:
    fill(audit, unpublished=0)
    audit.edit("v1/root", lambda r: r["data"].update(root_hash="ab" * 32) if r["data"]["size"] == 4 else None)
    async with Client(build_server(settings, transport=audit.transport)) as client:
        result = await client.call_tool("get_audit_root", {"treeSize": 5})
    assert result.structured_content is not None
    assert result.structured_content["consistency"] == "failed"
    assert "does not extend" in result.structured_content["notes"][0]


def test_custom_schema_values_of_other_types_are_shown_as_json_text() -> None:
    from pangea_mcp.services.audit_search import AuditEvent

    event = AuditEvent.model_validate({"message": "m", "status": 5, "new": {"a": 1}, "custom": 7})
    assert event.model_dump(exclude_none=True) == {
        "message": "m",
        "status": "5",
        "new": '{"a": 1}',
        "custom": 7,
    }

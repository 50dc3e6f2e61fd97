"""Audit trail: one event per tool call, batched in the background, nothing lost or sent twice."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import httpx
import mcp_types
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fastmcp import Client, FastMCP
from fastmcp.exceptions import ToolError
from pydantic import SecretStr

from pangea_mcp import audit_trail
from pangea_mcp import audit_verify as av
from pangea_mcp.config import Settings
from pangea_mcp.server import build_server
from tests.conftest import make_settings
from tests.fake_audit import AuditFake, Record
from tests.fake_pangea import SERVICE_TOKEN

CLIENT = mcp_types.Implementation(name="trail-test", version="1.2.3")
CONFIG_ID = "pci_" + "b" * 32


@pytest.fixture
def audit() -> Iterator[AuditFake]:
    fake = AuditFake()
    yield fake
    assert fake.violations == [], "requests or replies broke the audit spec"


def trail(**overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "services": "ip_intel",
        "audit_trail": True,
        "audit_trail_interval": 0.01,
        "audit_config_id": CONFIG_ID,
    }
    return make_settings(**{**values, **overrides})


class Sleeps:
    """An injected sleep: records the delays, waits for none of them."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)
        await asyncio.sleep(0)


def server(settings: Settings, transport: httpx.AsyncBaseTransport, sleeps: Sleeps | None = None) -> FastMCP:
    mcp = build_server(settings, transport=transport, sleep=sleeps)

    @mcp.tool
    async def echo(n: int, password: str = "", note: str = "") -> dict[str, int]:
        """Echo n."""
        return {"n": n}

    @mcp.tool
    async def refuse() -> str:
        """Always refuses."""
        raise ToolError("not today")

    @mcp.tool
    async def crash() -> str:
        """Always breaks."""
        raise RuntimeError("internal detail")

    return mcp


def details(record: Record) -> dict[str, Any]:
    new: dict[str, Any] = json.loads(record.envelope["event"]["new"])
    return new


def batches(audit: AuditFake) -> list[list[dict[str, Any]]]:
    return [body["events"] for body in audit.bodies("audit", "v2/log_async")]


async def test_off_by_default_nothing_is_logged(audit: AuditFake) -> None:
    settings = make_settings(services="ip_intel")
    assert settings.audit_trail is False
    async with Client(server(settings, audit.transport)) as client:
        await client.call_tool("echo", {"n": 1})
    assert audit.calls("audit", "v2/log_async") == []


async def test_one_event_per_call_with_client_outcome_and_duration(audit: AuditFake) -> None:
    async with Client(server(trail(), audit.transport), client_info=CLIENT) as client:
        await client.call_tool("echo", {"n": 7, "password": "hunter2"})
        await client.call_tool("refuse", {}, raise_on_error=False)
        await client.call_tool("crash", {}, raise_on_error=False)
        await client.call_tool("echo", {"n": "seven"}, raise_on_error=False)
        await client.call_tool("is_vpn", {"ipAddresses": ["10.0.0.1"]})

    events = [r.envelope["event"] for r in audit.records]
    assert [(e["target"], e["status"]) for e in events] == [
        ("echo", "success"),
        ("refuse", "error"),
        ("crash", "failure"),
        ("echo", "error"),
        ("is_vpn", "success"),
    ]
    for event, record in zip(events, audit.records, strict=True):
        assert event["action"] == "tool_call"
        assert event["actor"] == "trail-test/1.2.3"
        assert event["source"].startswith("pangea-mcp/")
        assert event["message"].startswith(f"tool {event['target']} ")
        assert event["timestamp"].endswith("Z")
        info = details(record)
        assert info["client"] == {"name": "trail-test", "version": "1.2.3"}
        assert info["duration_ms"] >= 0 and len(info["call_id"]) == 32
        # Arguments are not recorded unless asked for.
        assert "arguments" not in info
    assert "hunter2" not in json.dumps(audit.bodies("audit", "v2/log_async"))
    assert all(body["config_id"] == CONFIG_ID for body in audit.bodies("audit", "v2/log_async"))


async def test_arguments_are_recorded_only_when_enabled_and_scrubbed(audit: AuditFake) -> None:
    settings = trail(audit_trail_arguments=True)
    async with Client(server(settings, audit.transport)) as client:
        await client.call_tool("echo", {"n": 3, "password": "hunter2", "note": f"token {SERVICE_TOKEN} here"})
    (record,) = audit.records
    assert details(record)["arguments"] == {"n": 3, "password": "[REDACTED]", "note": "token [REDACTED] here"}
    sent = json.dumps(audit.bodies("audit", "v2/log_async"))
    assert "hunter2" not in sent and SERVICE_TOKEN not in sent


async def test_sensitive_payloads_and_fpe_context_are_never_recorded(audit: AuditFake) -> None:
    """What is being redacted or revealed is the sensitive data itself: only its size is recorded."""
    audit.on("redact", "v1/redact", result={"redacted_text": "my SSN is <US_SSN>", "count": 1})
    audit.on("redact", "v1/unredact", result={"data": "my SSN is 123-45-6789"})
    settings = trail(services="redact", audit_trail_arguments=True)
    async with Client(server(settings, audit.transport)) as client:
        await client.call_tool("redact", {"text": "my SSN is 123-45-6789"})
        await client.call_tool(
            "unredact", {"redacted_data": "my SSN is 987-65-4321", "fpe_context": "QUJDREVG"}
        )
    first, second = (details(r)["arguments"] for r in audit.records)
    assert first["text"].startswith("[content withheld:")
    assert second["redacted_data"].startswith("[content withheld:")
    assert second["fpe_context"] == "[REDACTED]"
    sent = json.dumps(audit.bodies("audit", "v2/log_async"))
    for value in ("123-45-6789", "987-65-4321", "QUJDREVG"):
        assert value not in sent


async def test_huge_arguments_are_summarised_within_the_field_limit(audit: AuditFake) -> None:
    settings = trail(audit_trail_arguments=True)
    async with Client(server(settings, audit.transport)) as client:
        await client.call_tool("echo", {"n": 1, "note": "x" * 40000})
    (record,) = audit.records
    assert len(record.envelope["event"]["new"]) <= 32766
    assert details(record)["arguments"].startswith("[omitted:")


async def test_1000_concurrent_calls_then_shutdown_deliver_every_event_once(audit: AuditFake) -> None:
    settings = trail(audit_trail_arguments=True, audit_trail_batch_size=100, audit_trail_interval=5)
    async with Client(server(settings, audit.transport)) as client:
        await client.list_tools()  # once, rather than by each of the 1000 calls
        results = await asyncio.gather(*(client.call_tool("echo", {"n": i}) for i in range(1000)))
    assert all(not r.is_error for r in results)
    # All delivered by the graceful shutdown (the 5 s interval never had to pass).
    numbers = [details(r)["arguments"]["n"] for r in audit.records]
    assert sorted(numbers) == list(range(1000))
    assert len({details(r)["call_id"] for r in audit.records}) == 1000
    sizes = [len(b) for b in batches(audit)]
    assert sum(sizes) == 1000 and max(sizes) <= 100 and len(sizes) >= 10


async def test_tool_calls_never_wait_for_the_audit_log(audit: AuditFake) -> None:
    release = asyncio.Event()

    async def stalled(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/v2/log_async"):
            await release.wait()
        return await audit.transport.handle_async_request(request)

    settings = trail(audit_trail_batch_size=5)
    async with Client(server(settings, httpx.MockTransport(stalled))) as client:
        for i in range(20):
            await asyncio.wait_for(client.call_tool("echo", {"n": i}), timeout=5)
        assert audit.records == []  # the first batch is still stuck on its way to Pangea
        release.set()
    assert len(audit.records) == 20


async def test_a_503_outage_loses_nothing_and_duplicates_nothing(audit: AuditFake) -> None:
    sleeps = Sleeps()
    audit.on("audit", "v2/log_async", http=503, times=11)
    settings = trail(audit_trail_arguments=True, audit_trail_batch_size=10, retry_backoff=0.5)
    async with Client(server(settings, audit.transport, sleeps)) as client:
        for i in range(50):
            await client.call_tool("echo", {"n": i})
    assert sorted(details(r)["arguments"]["n"] for r in audit.records) == list(range(50))
    attempts = audit.calls("audit", "v2/log_async")
    assert len(attempts) > 11
    # The client retried inside each call (with the retried-ids header), the queue backed off between.
    assert any("x-pangea-retried-request-ids" in a.headers for a in attempts)
    assert len(sleeps.delays) >= 2 and max(sleeps.delays) > 0


async def test_the_outage_lasting_into_shutdown_is_still_flushed(audit: AuditFake) -> None:
    sleeps = Sleeps()
    settings = trail(audit_trail_interval=30)
    async with Client(server(settings, audit.transport, sleeps)) as client:
        for i in range(5):
            await client.call_tool("echo", {"n": i})
        audit.on("audit", "v2/log_async", http=503, times=9)
    assert len(audit.records) == 5


async def test_a_rejected_batch_is_dropped_and_the_trail_goes_on(
    audit: AuditFake, caplog: pytest.LogCaptureFixture
) -> None:
    errors = [{"code": "AboveMaxLength", "detail": "too long", "source": "/events/0/event/actor"}]
    audit.on("audit", "v2/log_async", status="ValidationError", result={"errors": errors})
    settings = trail(audit_trail_batch_size=2, audit_trail_interval=30)
    with caplog.at_level(logging.ERROR, logger="pangea_mcp.audit_trail"):
        async with Client(server(settings, audit.transport)) as client:
            for i in range(4):
                await client.call_tool("echo", {"n": i})
    assert len(audit.records) == 2
    assert "Pangea refused 2 events" in caplog.text


async def test_shutdown_gives_up_after_the_request_timeout_and_says_so(
    audit: AuditFake, caplog: pytest.LogCaptureFixture
) -> None:
    audit.on("audit", "v2/log_async", http=503, times=100_000)
    settings = trail(request_timeout=0.3, audit_trail_interval=30)
    with caplog.at_level(logging.ERROR, logger="pangea_mcp.audit_trail"):
        async with Client(server(settings, audit.transport, Sleeps())) as client:
            await client.call_tool("echo", {"n": 1})
    assert audit.records == []
    assert "1 events could not be sent" in caplog.text


async def test_an_ambiguous_failure_resends_with_identifiable_duplicates(audit: AuditFake) -> None:
    dropped = False

    async def lose_first_answer(request: httpx.Request) -> httpx.Response:
        nonlocal dropped
        response = await audit.transport.handle_async_request(request)
        if request.url.path.endswith("/v2/log_async") and not dropped:
            dropped = True
            raise httpx.ReadError("connection reset after the request was sent")
        return response

    async with Client(server(trail(), httpx.MockTransport(lose_first_answer), Sleeps())) as client:
        await client.call_tool("echo", {"n": 1})
    # At least once: the event is not lost, and its copy carries the same call_id.
    assert len(audit.records) == 2
    assert len({details(r)["call_id"] for r in audit.records}) == 1


async def test_trail_events_are_signed_with_the_configured_key(audit: AuditFake) -> None:
    pem = (
        Ed25519PrivateKey.generate()
        .private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        .decode()
    )
    async with Client(server(trail(audit_signing_key=SecretStr(pem)), audit.transport)) as client:
        await client.call_tool("echo", {"n": 1})
        await client.call_tool("echo", {"n": 2})
    items = [item for batch in batches(audit) for item in batch]
    assert len(items) == 2
    for item in items:
        assert av.verify_signature(item["event"], item["signature"], item["public_key"])


async def test_a_full_queue_refuses_events_without_blocking(
    audit: AuditFake, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(audit_trail, "MAX_QUEUE", 3)
    release = asyncio.Event()

    async def stalled(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/v2/log_async"):
            await release.wait()
        return await audit.transport.handle_async_request(request)

    settings = trail(audit_trail_batch_size=1)
    with caplog.at_level(logging.ERROR, logger="pangea_mcp.audit_trail"):
        async with Client(server(settings, httpx.MockTransport(stalled))) as client:
            for i in range(6):
                await asyncio.wait_for(client.call_tool("echo", {"n": i}), timeout=5)
            release.set()
    assert len(audit.records) == 3
    assert "queue full" in caplog.text


async def test_stdio_server_flushes_the_trail_when_the_client_hangs_up(tmp_path: Path) -> None:
    """The installed console script: events still queued when stdin closes reach Pangea before exit."""
    from tests.e2e_common import child_env
    from tests.test_e2e_stdio import SESSION_TIMEOUT, Transcript, connect

    audit = AuditFake()
    with audit.serve() as template, anyio.fail_after(SESSION_TIMEOUT):
        env = child_env(
            template, token=SERVICE_TOKEN, services="ip_intel", audit_trail="true", audit_trail_interval="60"
        )
        with (tmp_path / "stderr.log").open("w+", encoding="utf-8") as errlog:
            async with connect(env, tmp_path, errlog, Transcript()) as session:
                for _ in range(20):
                    await session.call_tool("is_vpn", {"ipAddresses": ["10.0.0.1"]})
                assert audit.records == []  # a 60 s batch interval: nothing sent yet
    assert [r.envelope["event"]["target"] for r in audit.records] == ["is_vpn"] * 20
    assert audit.violations == []

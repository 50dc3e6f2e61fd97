"""Backend selection: with no account the local backend serves exactly its tools; hybrid setups mix.

Through FastMCP's in-memory client. The local tools must open no network connection (WHOIS aside,
which asks an RDAP server: here the fake on 127.0.0.1).
"""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

import pytest
from fastmcp import Client
from mcp.types import TextContent
from pydantic import SecretStr

from pangea_mcp.config import LOCAL_MODULES, SERVICE_MODULES
from pangea_mcp.local import LOCAL_TOOLS, PANGEA_ONLY_TOOLS, startup_notice
from pangea_mcp.server import build_server, instructions
from tests.conftest import make_settings
from tests.fake_pangea import FakePangea
from tests.fake_rdap import FakeRdap, Reply

ALL_LOCAL = sorted(tool for tools in LOCAL_TOOLS.values() for tool in tools)


def local_settings(tmp_path: Path, **overrides: Any) -> Any:
    values: dict[str, Any] = {
        "token": None,
        "local_audit_db": tmp_path / "audit.sqlite3",
        "local_signing_key": tmp_path / "keys" / "audit.pem",
        "cache_ttl": 300,
    }
    values.update(overrides)
    return make_settings(**values)


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> list[object]:
    """Every attempt to open a connection or resolve a name is recorded and refused."""
    attempts: list[object] = []

    def refuse(*args: object, **_kwargs: object) -> None:
        attempts.append(args)
        raise OSError("network use in a local tool")

    monkeypatch.setattr(socket.socket, "connect", lambda self, address: refuse(address))
    monkeypatch.setattr(socket.socket, "connect_ex", lambda self, address: refuse(address))
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    return attempts


def text_of(result: Any) -> str:
    return "\n".join(block.text for block in result.content if isinstance(block, TextContent))


async def test_no_account_lists_exactly_the_local_tools(tmp_path: Path) -> None:
    async with Client(build_server(local_settings(tmp_path))) as client:
        names = sorted(tool.name for tool in await client.list_tools())

    assert names == ALL_LOCAL


async def test_local_and_pangea_only_tables_match_what_pangea_serves(fake: FakePangea) -> None:
    # The startup notice's lists come from these tables: they must name the real tools.
    for module in LOCAL_MODULES:
        settings = make_settings(services=(module,), allow_unredact=True)
        async with Client(build_server(settings, transport=fake.transport)) as client:
            names = {tool.name for tool in await client.list_tools()}
        assert names == set(LOCAL_TOOLS[module]) | set(PANGEA_ONLY_TOOLS[module]), module


async def test_local_tools_open_no_connection(tmp_path: Path, no_network: list[object]) -> None:
    async with Client(build_server(local_settings(tmp_path))) as client:
        geo = await client.call_tool("geolocate", {"ipAddresses": ["8.8.8.8", "2606:4700:4700::1111"]})
        red = await client.call_tool("redact", {"text": "mail bob@example.org"})
        log = await client.call_tool("log_entry", {"event": {"message": "offline"}})
        found = await client.call_tool("search_log", {"query": "message:offline"})
        root = await client.call_tool("get_audit_root", {})

    assert no_network == []
    google, cloudflare = geo.structured_content["results"]  # type: ignore[index]
    assert (google["country_code"], google["as_name"], google["city"]) == ("US", "GOOGLE", None)
    assert cloudflare["as_name"] == "CLOUDFLARENET"
    assert google["cached"] is False
    assert red.structured_content["redacted_text"] == "mail <EMAIL_ADDRESS>"  # type: ignore[index]
    assert not log.is_error and not root.is_error, text_of(log) + text_of(root)
    assert [e["event"]["message"] for e in found.structured_content["events"]] == ["offline"]  # type: ignore[index]


async def test_local_geolocate_answers_private_and_unknown_addresses_with_a_note(tmp_path: Path) -> None:
    async with Client(build_server(local_settings(tmp_path, services=("ip_intel",)))) as client:
        result = await client.call_tool("geolocate", {"ipAddresses": ["192.168.1.1", "8.8.8.8", "8.8.8.8"]})
        again = await client.call_tool("geolocate", {"ipAddresses": ["8.8.8.8"]})
        bad = await client.call_tool("geolocate", {"ipAddresses": ["8.8.8"]}, raise_on_error=False)

    private, google = result.structured_content["results"]  # type: ignore[index]
    assert private["scope"] == "private" and private["country_code"] is None and private["note"]
    assert google["country"] == "United States"
    assert result.structured_content["request_id"] is None  # type: ignore[index]
    assert again.structured_content["results"][0]["cached"] is True  # type: ignore[index]
    assert bad.is_error and "ipAddresses" in text_of(bad)


async def test_local_whois_asks_rdap_and_maps_the_record(tmp_path: Path) -> None:
    rdap = FakeRdap()
    with rdap.serve() as url:
        settings = local_settings(tmp_path, services=("domain_intel",), rdap_url=f"{url}/com/v1/")
        async with Client(build_server(settings)) as client:
            tools = {tool.name: tool for tool in await client.list_tools()}
            found = await client.call_tool("whois", {"domain": "Google.COM"})
            cached = await client.call_tool("whois", {"domain": "google.com"})
            missing = await client.call_tool("whois", {"domain": "no-such-domain-here.com"})

    assert list(tools) == ["whois"]
    assert tools["whois"].annotations is not None and tools["whois"].annotations.read_only_hint
    record = found.structured_content
    assert record is not None
    assert record["domain"] == "google.com"
    assert record["registrar_name"] == "MarkMonitor Inc."
    assert record["host_names"] and record["created_date"].startswith("1997-09-15")
    assert record["rdap_url"] == f"{url}/com/v1/domain/google.com"
    assert record["request_id"] is None and record["cached"] is False
    assert cached.structured_content["cached"] is True  # type: ignore[index]
    assert rdap.paths().count("/com/v1/domain/google.com") == 1
    gone = missing.structured_content
    assert gone is not None and gone["created_date"] is None and gone["registrar_name"] is None
    assert gone["domain_availability"] is None and "no-such-domain-here.com" in gone["note"]


async def test_local_whois_failure_is_an_actionable_error_and_not_cached(tmp_path: Path) -> None:
    rdap = FakeRdap()
    rdap.on("/com/v1/domain/google.com", Reply(http=503))
    with rdap.serve() as url:
        settings = local_settings(tmp_path, services=("domain_intel",), rdap_url=f"{url}/com/v1/")
        async with Client(build_server(settings)) as client:
            failed = await client.call_tool("whois", {"domain": "google.com"}, raise_on_error=False)
            rdap._replies.clear()
            retried = await client.call_tool("whois", {"domain": "google.com"})

    assert failed.is_error
    assert "google.com" in text_of(failed) or "RDAP" in text_of(failed)
    assert not retried.is_error and retried.structured_content["cached"] is False  # type: ignore[index]


async def test_hybrid_keeps_the_audit_log_local_and_asks_pangea_for_the_rest(
    tmp_path: Path, fake: FakePangea
) -> None:
    settings = make_settings(
        services=("audit", "ip_intel"),
        local_services=("audit",),
        local_audit_db=tmp_path / "audit.sqlite3",
        local_signing_key=tmp_path / "audit.pem",
    )
    async with Client(build_server(settings, transport=fake.transport)) as client:
        names = {tool.name for tool in await client.list_tools()}
        await client.call_tool("log_entry", {"event": {"message": "kept here"}})
        await client.call_tool("lookup_ip_address_reputation", {"ipAddresses": ["8.8.8.8"]})

    assert {"log_entry", "is_vpn", "lookup_ip_address_reputation"} <= names
    assert fake.calls("audit", "v1/log") == []
    assert len(fake.calls("ip-intel", "v2/reputation")) == 1
    assert (tmp_path / "audit.sqlite3").exists()


def test_backend_local_hides_pangea_tools_even_with_a_token() -> None:
    settings = make_settings(backend="local")
    assert all(settings.service_backend(name) == "local" for name in SERVICE_MODULES)
    notice = startup_notice(settings)
    assert notice is not None and "PANGEA_BACKEND" in notice


def test_startup_notice_names_what_is_served_and_hidden() -> None:
    notice = startup_notice(make_settings(token=None))
    assert notice is not None
    assert notice.startswith("pangea-mcp: local backend (no Pangea token configured): serving redact,")
    assert "lookup_ip_address_reputation" in notice and "all vault tools" in notice
    assert startup_notice(make_settings()) is None


def test_instructions_only_mention_tools_that_exist_locally() -> None:
    text = instructions(make_settings(token=None))
    for tool in ("geolocate", "whois", "redact", "log_entry"):
        assert tool in text
    for tool in ("lookup_ip_address_reputation", "unredact", "prompt_guard", "is_vpn", "check_breached"):
        assert tool not in text


def test_pangea_backend_without_a_token_is_a_configuration_error() -> None:
    with pytest.raises(ValueError, match="PANGEA_BACKEND=pangea needs PANGEA_TOKEN"):
        make_settings(token=None, backend="pangea")


async def test_local_backend_with_a_token_is_ready_without_loading_it(tmp_path: Path) -> None:
    # PANGEA_BACKEND=local with a token configured: nothing calls Pangea, so readiness must not wait for
    # a token that is never loaded.
    from pangea_mcp.http_limits import Readiness

    readiness = Readiness()
    settings = local_settings(tmp_path, token=SecretStr("pts_" + "a" * 32), backend="local", guard=False)
    async with Client(build_server(settings, readiness=readiness)) as client:
        await client.list_tools()
        assert readiness.ready

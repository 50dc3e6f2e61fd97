"""The server as a model sees it: tool list, schemas, annotations, instructions, error masking."""

from __future__ import annotations

import httpx
from fastmcp import Client
from inline_snapshot import snapshot

from pangea_mcp.config import Settings
from pangea_mcp.server import build_server
from tests.conftest import make_settings
from tests.fake_pangea import SERVICE_TOKEN, FakePangea


async def test_tool_list(settings: Settings, fake: FakePangea) -> None:
    async with Client(build_server(settings, transport=fake.transport)) as client:
        tools = await client.list_tools()
        instructions = client.instructions

    assert [t.name for t in tools] == snapshot(
        [
            "prompt_guard",
            "redact",
            "redact_structured",
            "unredact",
            "log_entry",
            "search_log",
            "get_audit_root",
            "lookup_ip_address_reputation",
            "geolocate",
            "lookup_domain_from_ip_address",
            "is_vpn",
            "is_proxy",
            "lookup_domain_reputation",
            "whois",
            "lookup_url_reputation",
            "lookup_file_reputation",
            "check_ip_embargo",
            "check_iso_code_embargo",
            "check_breached",
            "check_password_breached",
            "get_vault_item",
            "list_vault_items",
        ]
    )
    for tool in tools:
        assert tool.description and len(tool.description) > 80, tool.name
        assert tool.output_schema and tool.output_schema["type"] == "object", tool.name
        # Every hint is stated explicitly, so clients never fall back to the spec's pessimistic defaults.
        hints = tool.annotations
        assert hints is not None
        assert None not in (
            hints.read_only_hint,
            hints.destructive_hint,
            hints.idempotent_hint,
            hints.open_world_hint,
        )
        assert tool.title
        assert tool.input_schema["additionalProperties"] is False
    assert {t.name: t.input_schema for t in tools}["is_vpn"] == snapshot(
        {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "ipAddresses": {
                    "description": "1 to 100 IPv4 or IPv6 addresses. Private and reserved addresses are answered without a lookup; duplicates are looked up once.",
                    "items": {"description": "An IPv4 or IPv6 address, e.g. 190.28.74.251", "type": "string"},
                    "maxItems": 100,
                    "minItems": 1,
                    "type": "array",
                }
            },
            "required": ["ipAddresses"],
        }
    )
    assert {t.name: t.input_schema for t in tools}["whois"] == snapshot(
        {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "domain": {
                    "description": "A domain name, e.g. example.com (internationalised names are accepted)",
                    "type": "string",
                }
            },
            "required": ["domain"],
        }
    )
    assert instructions is not None
    for tool in tools:
        assert tool.name in instructions


async def test_instructions_name_every_tool_of_every_setting(fake: FakePangea) -> None:
    settings = make_settings(vault_writes=True)
    async with Client(build_server(settings, transport=fake.transport)) as client:
        tools = await client.list_tools()
        instructions = client.instructions or ""
    assert {"generate_key", "delete_vault_item"} <= {t.name for t in tools}
    for tool in tools:
        assert tool.name in instructions


async def test_services_setting_limits_the_tools(fake: FakePangea) -> None:
    settings = make_settings(services="domain_intel")
    async with Client(build_server(settings, transport=fake.transport)) as client:
        names = [t.name for t in await client.list_tools()]
    assert names == ["lookup_domain_reputation", "whois"]


async def test_unexpected_failure_is_masked_and_the_server_keeps_serving(fake: FakePangea) -> None:
    calls = 0

    async def flaky(request: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError(f"internal detail {SERVICE_TOKEN} /home/user/secret.txt")
        return await fake.transport.handle_async_request(request)

    transport = httpx.MockTransport(flaky)
    async with Client(build_server(make_settings(), transport=transport)) as client:
        broken = await client.call_tool("is_vpn", {"ipAddresses": ["8.8.8.8"]}, raise_on_error=False)
        ok = await client.call_tool("is_vpn", {"ipAddresses": ["8.8.8.8"]})

    assert broken.is_error
    text = broken.content[0].text  # type: ignore[union-attr]
    assert SERVICE_TOKEN not in text and "secret.txt" not in text and "Traceback" not in text
    assert ok.structured_content is not None

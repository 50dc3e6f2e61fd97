"""IP Intel tools through a real MCP client against the fake Pangea."""

from __future__ import annotations

import jsonschema
import pytest
from fastmcp import Client
from fastmcp.exceptions import ToolError

from pangea_mcp.config import Settings
from pangea_mcp.server import build_server
from tests.fake_pangea import FakePangea

TOOLS = {
    "lookup_ip_address_reputation": "v2/reputation",
    "geolocate": "v2/geolocate",
    "lookup_domain_from_ip_address": "v2/domain",
    "is_vpn": "v2/vpn",
    "is_proxy": "v2/proxy",
}


@pytest.mark.parametrize(("tool", "path"), TOOLS.items())
async def test_each_tool_batches_public_addresses_into_one_call(
    settings: Settings, fake: FakePangea, tool: str, path: str
) -> None:
    ips = ["8.8.8.8", "10.1.2.3", "2001:4860:4860:0:0:0:0:8888", "8.8.8.8", "127.0.0.1", "1.1.1.1"]
    async with Client(build_server(settings, transport=fake.transport)) as client:
        listed = {t.name: t for t in await client.list_tools()}
        result = await client.call_tool(tool, {"ipAddresses": ips})

    # One upstream call, public addresses only, de-duplicated, IPv6 normalised.
    assert fake.bodies("ip-intel", path) == [{"ips": ["8.8.8.8", "2001:4860:4860::8888", "1.1.1.1"]}]
    data = result.structured_content
    assert data is not None
    jsonschema.validate(data, listed[tool].output_schema)
    assert [r["ip"] for r in data["results"]] == [
        "8.8.8.8",
        "10.1.2.3",
        "2001:4860:4860::8888",
        "127.0.0.1",
        "1.1.1.1",
    ]
    assert [r["scope"] for r in data["results"]] == ["public", "private", "public", "loopback", "public"]
    assert data["request_id"].startswith("prq_")
    assert "not routable" in data["results"][1]["note"]


async def test_reputation_reports_what_pangea_said(settings: Settings, fake: FakePangea) -> None:
    verdict = {"category": ["Malware", "Botnet"], "score": 100, "verdict": "malicious"}
    fake.on("ip-intel", "v2/reputation", result={"data": {"190.28.74.251": verdict}})
    async with Client(build_server(settings, transport=fake.transport)) as client:
        result = await client.call_tool("lookup_ip_address_reputation", {"ipAddresses": ["190.28.74.251"]})
    assert result.structured_content is not None
    assert result.structured_content["results"] == [
        {"ip": "190.28.74.251", "scope": "public", "note": None, "cached": False, **verdict}
    ]


async def test_geolocate_values(settings: Settings, fake: FakePangea) -> None:
    geo = {
        "country": "Portugal",
        "city": "Lisbon",
        "latitude": 38.72,
        "longitude": -9.14,
        "postal_code": "1000-001",
        "country_code": "PT",
    }
    fake.on("ip-intel", "v2/geolocate", result={"data": {"93.108.0.1": geo}, "parameter": {}})
    async with Client(build_server(settings, transport=fake.transport)) as client:
        result = await client.call_tool("geolocate", {"ipAddresses": ["93.108.0.1"]})
    assert result.structured_content is not None
    assert result.structured_content["results"][0] == {
        "ip": "93.108.0.1",
        "scope": "public",
        "note": None,
        "cached": False,
        # Only the local backend's offline data names the operator and block.
        "as_name": None,
        "network": None,
        **geo,
    }


async def test_only_private_addresses_make_no_call(settings: Settings, fake: FakePangea) -> None:
    async with Client(build_server(settings, transport=fake.transport)) as client:
        result = await client.call_tool(
            "is_vpn", {"ipAddresses": ["192.168.1.1", "fe80::1", "::1", "0.0.0.0"]}
        )
    assert fake.requests == []
    assert result.structured_content is not None
    assert [r["scope"] for r in result.structured_content["results"]] == [
        "private",
        "link_local",
        "loopback",
        "unspecified",
    ]
    assert all(r["is_vpn"] is None for r in result.structured_content["results"])
    assert result.structured_content["request_id"] is None


async def test_address_missing_from_the_answer_is_said_so(settings: Settings, fake: FakePangea) -> None:
    fake.on("ip-intel", "v2/proxy", result={"data": {}})
    async with Client(build_server(settings, transport=fake.transport)) as client:
        result = await client.call_tool("is_proxy", {"ipAddresses": ["8.8.4.4"]})
    assert result.structured_content is not None
    assert result.structured_content["results"][0]["note"] == "Pangea returned no data for this address"


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        ({"ipAddresses": ["999.1.1.1"]}, "ipAddresses[0]"),
        ({"ipAddresses": ["8.8.8.8:53"]}, "not a valid IPv4 or IPv6 address"),
        ({"ipAddresses": ["example.com"]}, "ipAddresses[0]"),
        ({"ipAddresses": []}, "ipAddresses"),
        ({"ipAddresses": [f"8.8.{i // 256}.{i % 256}" for i in range(101)]}, "ipAddresses"),
        ({"ipAddresses": "8.8.8.8"}, "ipAddresses"),
        ({}, "ipAddresses"),
        ({"ipAddresses": ["8.8.8.8"], "config_id": "x"}, "config_id"),
    ],
)
async def test_bad_arguments_are_rejected_before_any_call(
    settings: Settings, fake: FakePangea, args: dict[str, object], fragment: str
) -> None:
    async with Client(build_server(settings, transport=fake.transport)) as client:
        result = await client.call_tool("lookup_ip_address_reputation", args, raise_on_error=False)
        assert result.is_error
        text = result.content[0].text  # type: ignore[union-attr]
        assert text.startswith("Invalid arguments for lookup_ip_address_reputation:")
        assert fragment in text
        assert "pydantic" not in text
        ok = await client.call_tool("lookup_ip_address_reputation", {"ipAddresses": ["8.8.8.8"]})
    assert fake.bodies("ip-intel", "v2/reputation") == [{"ips": ["8.8.8.8"]}]
    assert ok.structured_content is not None


async def test_100_addresses_are_accepted(settings: Settings, fake: FakePangea) -> None:
    ips = [f"8.8.{i // 256}.{i % 256}" for i in range(100)]
    async with Client(build_server(settings, transport=fake.transport)) as client:
        result = await client.call_tool("is_vpn", {"ipAddresses": ips})
    assert fake.body("ip-intel", "v2/vpn") == {"ips": ips}
    assert result.structured_content is not None and len(result.structured_content["results"]) == 100


@pytest.mark.parametrize(
    ("status", "fragment"),
    [
        ("ValidationError", "fix the fields"),
        ("Unauthorized", "token was rejected"),
        ("ServiceNotEnabled", "not enabled"),
        ("NoCredit", "out of credit"),
        ("TooManyRequests", "Rate limited"),
        ("ProviderError", "provider"),
        ("InternalError", "try again shortly"),
        ("ServiceNotAvailable", "temporarily unavailable"),
    ],
)
async def test_pangea_errors_become_actionable_tool_errors(
    settings: Settings, fake: FakePangea, status: str, fragment: str
) -> None:
    result = (
        {"errors": [{"code": "BadFormatIPAddress", "detail": "bad ip", "source": "/ips/0"}]}
        if status == "ValidationError"
        else None
    )
    fake.on("ip-intel", "v2/geolocate", status=status, summary="it went wrong", result=result, times=10)
    async with Client(build_server(settings, transport=fake.transport, sleep=_no_sleep)) as client:
        with pytest.raises(ToolError) as info:
            await client.call_tool("geolocate", {"ipAddresses": ["8.8.8.8"]})
        message = str(info.value)
        assert status in message and "it went wrong" in message and fragment in message
        assert "request_id: prq_" in message
        if status == "ValidationError":
            assert "/ips/0: BadFormatIPAddress bad ip" in message
        # The server keeps serving.
        fake._scripts.clear()
        ok = await client.call_tool("geolocate", {"ipAddresses": ["8.8.8.8"]})
    assert ok.structured_content is not None


async def test_hanging_upstream_is_an_error_within_the_timeout(settings: Settings, fake: FakePangea) -> None:
    import time

    fake.on("ip-intel", "v2/vpn", delay=60)
    settings = settings.model_copy(update={"request_timeout": 0.5})
    started = time.monotonic()
    async with Client(build_server(settings, transport=fake.transport)) as client:
        with pytest.raises(ToolError, match="no answer within PANGEA_REQUEST_TIMEOUT=0.5s"):
            await client.call_tool("is_vpn", {"ipAddresses": ["8.8.8.8"]})
    assert time.monotonic() - started < 3


async def test_progress_is_reported_for_slow_batches(settings: Settings, fake: FakePangea) -> None:
    fake.on("ip-intel", "v2/reputation", result={"data": {}}, accepted_polls=2)
    seen: list[tuple[float, float | None, str | None]] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        seen.append((progress, total, message))

    async with Client(build_server(settings, transport=fake.transport)) as client:
        await client.call_tool(
            "lookup_ip_address_reputation", {"ipAddresses": ["8.8.8.8"]}, progress_handler=on_progress
        )
    assert len(seen) >= 3
    assert seen[-1][0] == seen[-1][1]


async def _no_sleep(_seconds: float) -> None:
    return None

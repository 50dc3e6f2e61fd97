"""Embargo tools (IP and ISO-code checks) through a real MCP client against the fake Pangea."""

from __future__ import annotations

from typing import Any

import jsonschema
import pytest
from fastmcp import Client

from pangea_mcp.config import Settings
from pangea_mcp.server import build_server
from pangea_mcp.services.embargo import ISO_COUNTRY_CODES
from tests.fake_pangea import FakePangea

ANNOTATIONS = {"reference": {"paragraph": "d1", "regulation": "CFR 126.1"}, "restriction_name": "ITAR"}
CUBA = {
    "list_name": "ITAR",
    "issuing_country": "US",
    "embargoed_country_name": "Cuba",
    "embargoed_country_iso_code": "CU",
}
RUSSIA = {
    "list_name": "US - ITAR",
    "issuing_country": "US",
    "embargoed_country_name": "Russia",
    "embargoed_country_iso_code": "RU",
}


def _text(result: Any) -> str:
    return str(result.content[0].text)


async def test_check_ip_returns_matching_sanctions(settings: Settings, fake: FakePangea) -> None:
    fake.on(
        "embargo", "v1/ip/check", result={"count": 1, "sanctions": [{**CUBA, "annotations": ANNOTATIONS}]}
    )
    async with Client(build_server(settings, transport=fake.transport)) as client:
        tool = next(t for t in await client.list_tools() if t.name == "check_ip_embargo")
        result = await client.call_tool("check_ip_embargo", {"ip": "190.6.64.94"})

    assert fake.body("embargo", "v1/ip/check") == {"ip": "190.6.64.94"}
    data = result.structured_content
    assert data is not None
    jsonschema.validate(data, tool.output_schema)
    assert data.pop("request_id").startswith("prq_")
    # Provider annotations are dropped: the model gets the four documented fields.
    assert data == {
        "ip": "190.6.64.94",
        "scope": "public",
        "note": None,
        "cached": False,
        "count": 1,
        "sanctions": [CUBA],
    }


async def test_check_ip_default_answer_and_ipv6_normalisation(settings: Settings, fake: FakePangea) -> None:
    async with Client(build_server(settings, transport=fake.transport)) as client:
        russia = await client.call_tool("check_ip_embargo", {"ip": "213.24.238.26"})
        v6 = await client.call_tool("check_ip_embargo", {"ip": "2A00:1450:4001:0829:0000:0000:0000:200E"})

    assert fake.bodies("embargo", "v1/ip/check") == [
        {"ip": "213.24.238.26"},
        {"ip": "2a00:1450:4001:829::200e"},
    ]
    assert russia.structured_content is not None
    assert russia.structured_content["sanctions"] == [RUSSIA]
    assert russia.structured_content["count"] == 1
    assert v6.structured_content is not None
    assert v6.structured_content["ip"] == "2a00:1450:4001:829::200e"


@pytest.mark.parametrize(
    ("ip", "scope"),
    [("10.1.2.3", "private"), ("::1", "loopback"), ("192.0.2.7", "reserved"), ("100.64.0.1", "shared")],
)
async def test_non_public_addresses_are_answered_without_a_call(
    settings: Settings, fake: FakePangea, ip: str, scope: str
) -> None:
    async with Client(build_server(settings, transport=fake.transport)) as client:
        tool = next(t for t in await client.list_tools() if t.name == "check_ip_embargo")
        result = await client.call_tool("check_ip_embargo", {"ip": ip})
    assert fake.requests == []
    data = result.structured_content
    assert data is not None
    jsonschema.validate(data, tool.output_schema)
    assert data["scope"] == scope
    assert data["sanctions"] == [] and data["count"] == 0 and data["request_id"] is None
    assert "Not looked up" in data["note"]


async def test_ip_that_cannot_be_located_is_a_result_with_a_note(
    settings: Settings, fake: FakePangea
) -> None:
    fake.on("embargo", "v1/ip/check", http=404, status="IPNotFound", summary="IP not found")
    async with Client(build_server(settings, transport=fake.transport)) as client:
        result = await client.call_tool("check_ip_embargo", {"ip": "8.8.8.8"})
    assert not result.is_error
    data = result.structured_content
    assert data is not None
    assert data["count"] == 0 and data["sanctions"] == []
    assert "IPNotFound" in data["note"] and "nothing was checked" in data["note"]
    assert data["request_id"].startswith("prq_")


async def test_success_with_a_null_result_is_not_reported_as_clear(
    settings: Settings, fake: FakePangea
) -> None:
    fake.on("embargo", "v1/ip/check", result=None)
    fake.on("embargo", "v1/ip/check", result={"count": 0, "sanctions": []})
    async with Client(build_server(settings, transport=fake.transport)) as client:
        empty = await client.call_tool("check_ip_embargo", {"ip": "8.8.8.8"})
        clear = await client.call_tool("check_ip_embargo", {"ip": "8.8.8.8"})
    assert empty.structured_content is not None and clear.structured_content is not None
    assert empty.structured_content["sanctions"] == [] and clear.structured_content["sanctions"] == []
    assert "no embargo data" in empty.structured_content["note"]
    assert clear.structured_content["note"] is None


async def test_iso_code_is_upper_cased_and_checked(settings: Settings, fake: FakePangea) -> None:
    async with Client(build_server(settings, transport=fake.transport)) as client:
        tool = next(t for t in await client.list_tools() if t.name == "check_iso_code_embargo")
        cuba = await client.call_tool("check_iso_code_embargo", {"isoCode": "cu"})
        france = await client.call_tool("check_iso_code_embargo", {"isoCode": "FR"})

    assert fake.bodies("embargo", "v1/iso/check") == [{"iso_code": "CU"}, {"iso_code": "FR"}]
    for result in (cuba, france):
        assert result.structured_content is not None
        jsonschema.validate(result.structured_content, tool.output_schema)
        assert result.structured_content["request_id"].startswith("prq_")
    assert cuba.structured_content is not None and france.structured_content is not None
    assert cuba.structured_content["iso_code"] == "CU"
    assert cuba.structured_content["count"] == 1
    assert cuba.structured_content["sanctions"][0]["embargoed_country_name"] == "Cuba"
    assert france.structured_content["sanctions"] == [] and france.structured_content["count"] == 0
    assert france.structured_content["note"] is None


def test_the_code_list_is_the_assigned_iso_3166_set() -> None:
    assert len(ISO_COUNTRY_CODES) == 249
    assert {"CU", "IR", "KP", "RU", "SY", "GB", "US", "SS", "BQ", "AX"} <= ISO_COUNTRY_CODES
    assert not {"UK", "EU", "XK", "ZZ", "AN", "YU", "CS"} & ISO_COUNTRY_CODES


@pytest.mark.parametrize(
    ("tool", "args", "fragment"),
    [
        ("check_iso_code_embargo", {"isoCode": "ZZ"}, "isoCode: 'ZZ' is not an assigned ISO 3166-1"),
        ("check_iso_code_embargo", {"isoCode": "uk"}, "use GB"),
        ("check_iso_code_embargo", {"isoCode": "CUB"}, "isoCode"),
        ("check_iso_code_embargo", {"isoCode": "C1"}, "isoCode"),
        ("check_iso_code_embargo", {"isoCode": ""}, "isoCode"),
        ("check_iso_code_embargo", {}, "- isoCode:"),
        ("check_iso_code_embargo", {"iso_code": "CU"}, "- iso_code:"),
        ("check_ip_embargo", {"ip": "999.1.1.1"}, "ip: '999.1.1.1' is not a valid IPv4 or IPv6 address"),
        ("check_ip_embargo", {"ip": "example.com"}, "ip:"),
        ("check_ip_embargo", {"ip": ["8.8.8.8"]}, "ip:"),
    ],
)
async def test_bad_arguments_are_rejected_before_any_call(
    settings: Settings, fake: FakePangea, tool: str, args: dict[str, object], fragment: str
) -> None:
    valid = {"check_iso_code_embargo": {"isoCode": "IR"}, "check_ip_embargo": {"ip": "8.8.8.8"}}[tool]
    async with Client(build_server(settings, transport=fake.transport)) as client:
        result = await client.call_tool(tool, args, raise_on_error=False)
        assert result.is_error
        assert fake.requests == []
        text = _text(result)
        assert text.startswith(f"Invalid arguments for {tool}:")
        assert fragment in text
        ok = await client.call_tool(tool, valid)
    assert not ok.is_error and ok.structured_content is not None
    assert len(fake.requests) == 1


@pytest.mark.parametrize(
    ("tool", "path", "args", "status", "fragment"),
    [
        ("check_ip_embargo", "v1/ip/check", {"ip": "8.8.8.8"}, "ServiceNotEnabled", "not enabled"),
        ("check_ip_embargo", "v1/ip/check", {"ip": "8.8.8.8"}, "NotFound", "found nothing"),
        ("check_iso_code_embargo", "v1/iso/check", {"isoCode": "CU"}, "ValidationError", "fix the fields"),
        ("check_iso_code_embargo", "v1/iso/check", {"isoCode": "CU"}, "NoCredit", "out of credit"),
    ],
)
async def test_pangea_errors_become_tool_errors_with_the_request_id(
    settings: Settings,
    fake: FakePangea,
    tool: str,
    path: str,
    args: dict[str, object],
    status: str,
    fragment: str,
) -> None:
    fake.on("embargo", path, status=status, summary="it went wrong")
    async with Client(build_server(settings, transport=fake.transport)) as client:
        result = await client.call_tool(tool, args, raise_on_error=False)
    assert result.is_error
    text = _text(result)
    assert status in text and "it went wrong" in text and fragment in text
    assert "request_id: prq_" in text

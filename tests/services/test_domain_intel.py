"""Domain Intel tools (reputation, WHOIS) through a real MCP client against the fake Pangea."""

from __future__ import annotations

import jsonschema
import pytest
from fastmcp import Client
from fastmcp.exceptions import ToolError

from pangea_mcp.config import Settings
from pangea_mcp.server import build_server
from tests.fake_pangea import FakePangea


async def test_reputation_normalises_and_dedupes(settings: Settings, fake: FakePangea) -> None:
    verdict = {"category": ["Phishing"], "score": 90, "verdict": "malicious"}
    fake.on("domain-intel", "v2/reputation", result={"data": {"xn--mnchen-3ya.de": verdict}})
    async with Client(build_server(settings, transport=fake.transport)) as client:
        tool = next(t for t in await client.list_tools() if t.name == "lookup_domain_reputation")
        result = await client.call_tool(
            "lookup_domain_reputation", {"domains": ["Example.COM.", "münchen.de", "example.com"]}
        )
    assert fake.body("domain-intel", "v2/reputation") == {"domains": ["example.com", "xn--mnchen-3ya.de"]}
    data = result.structured_content
    assert data is not None
    jsonschema.validate(data, tool.output_schema)
    assert data["results"] == [
        {
            "domain": "example.com",
            "verdict": None,
            "score": None,
            "category": [],
            "note": "Pangea returned no data for this domain",
            "cached": False,
        },
        {"domain": "xn--mnchen-3ya.de", "note": None, "cached": False, **verdict},
    ]


async def test_single_domain_reputation_uses_the_bulk_endpoint(settings: Settings, fake: FakePangea) -> None:
    async with Client(build_server(settings, transport=fake.transport)) as client:
        result = await client.call_tool("lookup_domain_reputation", {"domains": ["pangea.cloud"]})
    assert fake.body("domain-intel", "v2/reputation") == {"domains": ["pangea.cloud"]}
    assert result.structured_content is not None
    assert result.structured_content["results"][0]["verdict"] in {
        "malicious",
        "suspicious",
        "unknown",
        "benign",
    }


async def test_whois(settings: Settings, fake: FakePangea) -> None:
    async with Client(build_server(settings, transport=fake.transport)) as client:
        tool = next(t for t in await client.list_tools() if t.name == "whois")
        result = await client.call_tool("whois", {"domain": "EXAMPLE.com"})
    assert fake.body("domain-intel", "v1/whois") == {"domain": "example.com"}
    data = result.structured_content
    assert data is not None
    jsonschema.validate(data, tool.output_schema)
    assert data["domain"] == "example.com"
    assert data["registrar_name"] == "RESERVED-Internet Assigned Numbers Authority"
    assert data["host_names"] == ["a.iana-servers.example.com", "b.iana-servers.example.com"]
    assert data["request_id"].startswith("prq_")


@pytest.mark.parametrize(
    ("tool", "args", "fragment"),
    [
        ("whois", {"domain": "exa mple..com"}, "domain"),
        ("whois", {"domain": "https://example.com/login"}, "not a bare domain name"),
        ("whois", {"domain": "localhost"}, "at least two"),
        ("whois", {"domain": "8.8.8.8"}, "IP address"),
        ("whois", {"domain": ""}, "domain"),
        ("whois", {"domain": "-bad-.com"}, "not a valid domain"),
        ("whois", {"domain": "a" * 64 + ".com"}, "not a valid domain"),
        ("lookup_domain_reputation", {"domains": []}, "domains"),
        ("lookup_domain_reputation", {"domains": ["ok.com", "bad_domain!.com"]}, "domains[1]"),
        ("lookup_domain_reputation", {"domains": [f"d{i}.com" for i in range(101)]}, "domains"),
    ],
)
async def test_bad_domains_are_rejected_before_any_call(
    settings: Settings, fake: FakePangea, tool: str, args: dict[str, object], fragment: str
) -> None:
    async with Client(build_server(settings, transport=fake.transport)) as client:
        result = await client.call_tool(tool, args, raise_on_error=False)
    assert result.is_error
    assert fragment in result.content[0].text  # type: ignore[union-attr]
    assert fake.requests == []


async def test_whois_error_reaches_the_model(settings: Settings, fake: FakePangea) -> None:
    fake.on("domain-intel", "v1/whois", status="ProviderError", summary="whoisxml timed out", times=4)
    async with Client(build_server(settings, transport=fake.transport, sleep=_no_sleep)) as client:
        with pytest.raises(ToolError, match="whoisxml timed out") as info:
            await client.call_tool("whois", {"domain": "example.org"})
    assert "request_id: prq_" in str(info.value)
    assert len(fake.calls("domain-intel", "v1/whois")) == 4  # ProviderError (502) is retried


async def _no_sleep(_seconds: float) -> None:
    return None


async def test_whois_accepts_null_lists(settings: Settings, fake: FakePangea) -> None:
    data = {
        "domain_name": "example.org",
        "domain_availability": "UNAVAILABLE",
        "host_names": None,
        "ips": None,
    }
    fake.on("domain-intel", "v1/whois", result={"data": data})
    async with Client(build_server(settings, transport=fake.transport)) as client:
        result = await client.call_tool("whois", {"domain": "example.org"})
    assert result.structured_content is not None
    assert result.structured_content["host_names"] == [] and result.structured_content["ips"] == []

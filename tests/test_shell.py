"""`pangea-mcp tools` / `pangea-mcp call`: in-process calls through the real MCP client, against the fake."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from pangea_mcp import shell
from tests.conftest import make_settings
from tests.fake_pangea import FakePangea


async def test_tools_lists_every_enabled_tool_with_its_arguments(fake: FakePangea) -> None:
    out = io.StringIO()
    with fake.serve() as template:
        settings = make_settings(base_url_template=template, services=("ip_intel", "domain_intel"))
        assert await shell.list_tools(settings, out) == shell.OK

    text = out.getvalue()
    assert text.splitlines()[0].startswith("lookup_ip_address_reputation [read-only]: ")
    assert "    arguments: ipAddresses" in text
    assert "whois [read-only]: " in text
    assert "    arguments: domain" in text
    assert "redact" not in text


async def test_tools_as_json_carries_the_schemas(fake: FakePangea) -> None:
    out = io.StringIO()
    with fake.serve() as template:
        settings = make_settings(base_url_template=template, services=("domain_intel",))
        await shell.list_tools(settings, out, as_json=True)

    tools = {tool["name"]: tool for tool in json.loads(out.getvalue())}
    assert set(tools) == {"lookup_domain_reputation", "whois"}
    assert tools["whois"]["inputSchema"]["required"] == ["domain"]
    assert "outputSchema" in tools["whois"]


async def test_call_prints_the_structured_result(fake: FakePangea) -> None:
    fake.on("ip-intel", "v2/geolocate", result={"data": {"8.8.8.8": {"country": "United States"}}})
    out, err = io.StringIO(), io.StringIO()
    with fake.serve() as template:
        settings = make_settings(base_url_template=template, services=("ip_intel",), cache_ttl=0)
        status = await shell.call_tool(settings, "geolocate", {"ipAddresses": ["8.8.8.8"]}, out, err)

    assert status == shell.OK, err.getvalue()
    result = json.loads(out.getvalue())
    assert result["results"][0]["ip"] == "8.8.8.8"
    assert result["results"][0]["country"] == "United States"
    assert err.getvalue() == ""


async def test_call_reports_a_tool_error_on_stderr_with_status_1(fake: FakePangea) -> None:
    out, err = io.StringIO(), io.StringIO()
    with fake.serve() as template:
        settings = make_settings(base_url_template=template, services=("ip_intel",))
        status = await shell.call_tool(settings, "geolocate", {"ipAddresses": ["not an ip"]}, out, err)

    assert status == shell.TOOL_ERROR
    assert out.getvalue() == ""
    assert "geolocate failed" in err.getvalue()
    assert "ipAddresses" in err.getvalue()


async def test_call_of_an_unknown_tool_lists_the_available_ones(fake: FakePangea) -> None:
    out, err = io.StringIO(), io.StringIO()
    with fake.serve() as template:
        settings = make_settings(base_url_template=template, services=("domain_intel",))
        status = await shell.call_tool(settings, "geolocation", {}, out, err)

    assert status == shell.USAGE
    assert "no tool named 'geolocation'" in err.getvalue()
    assert "lookup_domain_reputation, whois" in err.getvalue()
    assert fake.requests == []


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("{", "not valid JSON"),
        ("[1, 2]", "must be a JSON object"),
        ('"text"', "must be a JSON object"),
        ("NaN", "must be a JSON object"),
    ],
)
def test_bad_args_are_explained(text: str, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        shell.parse_arguments(text)


def test_args_can_come_from_a_file(tmp_path: Path) -> None:
    path = tmp_path / "args.json"
    path.write_text('{"domain": "example.com"}', encoding="utf-8")

    assert shell.parse_arguments(f"@{path}") == {"domain": "example.com"}

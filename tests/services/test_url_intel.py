"""URL Intel (reputation) through a real MCP client against the fake Pangea."""

from __future__ import annotations

from typing import Any

import jsonschema
import pytest
from fastmcp import Client

from pangea_mcp.config import Settings
from pangea_mcp.server import build_server
from tests.fake_pangea import FakePangea

MALICIOUS = {"category": ["Phishing"], "score": 100, "verdict": "malicious"}
BENIGN = {"category": [], "score": 0, "verdict": "benign"}


def _text(result: Any) -> str:
    return str(result.content[0].text)


async def test_urls_are_normalised_deduplicated_and_sent_in_one_call(
    settings: Settings, fake: FakePangea
) -> None:
    fake.on(
        "url-intel",
        "v2/reputation",
        result={
            "data": {
                "https://example.com/Login?next=/a": BENIGN,
                "http://xn--mnchen-3ya.de/%C3%A4": MALICIOUS,
            }
        },
    )
    urls = [
        "HTTPS://Example.COM/Login?next=/a#top",
        "https://example.com:443/Login?next=/a",
        " http://MÜNCHEN.de:80/%C3%A4 ",
        "https://example.com/Login?next=/a",
        "http://113.235.101.11:54384",
    ]
    async with Client(build_server(settings, transport=fake.transport)) as client:
        tool = next(t for t in await client.list_tools() if t.name == "lookup_url_reputation")
        result = await client.call_tool("lookup_url_reputation", {"urls": urls})

    # One call (answered 202 and polled, as Pangea does for several URLs), path and query untouched.
    assert fake.bodies("url-intel", "v2/reputation") == [
        {
            "urls": [
                "https://example.com/Login?next=/a",
                "http://xn--mnchen-3ya.de/%C3%A4",
                "http://113.235.101.11:54384",
            ]
        }
    ]
    data = result.structured_content
    assert data is not None
    assert len(fake.calls("url-intel", f"request/{data['request_id']}", "GET")) == 1
    jsonschema.validate(data, tool.output_schema)
    assert data["results"] == [
        {"url": "https://example.com/Login?next=/a", "note": None, "cached": False, **BENIGN},
        {"url": "http://xn--mnchen-3ya.de/%C3%A4", "note": None, "cached": False, **MALICIOUS},
        {
            "url": "http://113.235.101.11:54384",
            "verdict": None,
            "score": None,
            "category": [],
            "note": "Pangea returned no data for this URL",
            "cached": False,
        },
    ]


async def test_single_url_uses_the_default_answer(settings: Settings, fake: FakePangea) -> None:
    async with Client(build_server(settings, transport=fake.transport)) as client:
        result = await client.call_tool("lookup_url_reputation", {"urls": ["https://pangea.cloud/docs/"]})
    assert fake.body("url-intel", "v2/reputation") == {"urls": ["https://pangea.cloud/docs/"]}
    assert result.structured_content is not None
    [item] = result.structured_content["results"]
    assert item["url"] == "https://pangea.cloud/docs/"
    assert item["verdict"] in {"malicious", "suspicious", "unknown", "benign"}
    assert isinstance(item["score"], int)
    assert result.structured_content["request_id"].startswith("prq_")


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (
            {"urls": ["ftp://files.example.com/a.exe"]},
            "urls[0]: 'ftp://files.example.com/a.exe' uses the ftp scheme",
        ),
        ({"urls": ["example.com/login"]}, "has no http:// or https:// scheme"),
        ({"urls": ["https://ok.example.com/", "javascript:alert(1)"]}, "urls[1]"),
        ({"urls": ["https://"]}, "has no host"),
        ({"urls": ["http:///path"]}, "urls[0]"),
        ({"urls": ["https://exa mple.com/"]}, "spaces or control characters"),
        ({"urls": ["https://example.com:99999/"]}, "urls[0]"),
        ({"urls": ["http://localhost:8080/admin"]}, "no valid public host name"),
        ({"urls": ["http://999.1.2.3/"]}, "invalid IPv4 host"),
        ({"urls": []}, "urls"),
        ({"urls": [f"https://e{i}.example.com/" for i in range(101)]}, "urls"),
        ({"urls": "https://example.com/"}, "urls"),
    ],
)
async def test_malformed_urls_are_rejected_before_any_call(
    settings: Settings, fake: FakePangea, args: dict[str, object], fragment: str
) -> None:
    async with Client(build_server(settings, transport=fake.transport)) as client:
        result = await client.call_tool("lookup_url_reputation", args, raise_on_error=False)
        assert result.is_error
        assert fake.requests == []
        text = _text(result)
        assert text.startswith("Invalid arguments for lookup_url_reputation:")
        assert fragment in text
        ok = await client.call_tool("lookup_url_reputation", {"urls": ["https://example.org/"]})
    assert fake.bodies("url-intel", "v2/reputation") == [{"urls": ["https://example.org/"]}]
    assert ok.structured_content is not None


async def test_100_urls_are_accepted(settings: Settings, fake: FakePangea) -> None:
    urls = [f"https://e{i}.example.com/" for i in range(100)]
    async with Client(build_server(settings, transport=fake.transport)) as client:
        result = await client.call_tool("lookup_url_reputation", {"urls": urls})
    assert fake.body("url-intel", "v2/reputation") == {"urls": urls}
    assert result.structured_content is not None and len(result.structured_content["results"]) == 100


@pytest.mark.parametrize(
    ("status", "fragment"),
    [
        ("ValidationError", "fix the fields"),
        ("ProviderError", "provider"),
        ("Unauthorized", "token was rejected"),
    ],
)
async def test_pangea_errors_reach_the_model_with_the_request_id(
    settings: Settings, fake: FakePangea, status: str, fragment: str
) -> None:
    errors = {"errors": [{"code": "InaccessibleURI", "detail": "bad url", "source": "/urls/0"}]}
    fake.on(
        "url-intel",
        "v2/reputation",
        status=status,
        summary="it went wrong",
        result=errors if status == "ValidationError" else None,
        times=5,
    )
    async with Client(build_server(settings, transport=fake.transport)) as client:
        result = await client.call_tool(
            "lookup_url_reputation", {"urls": ["https://example.com/"]}, raise_on_error=False
        )
    assert result.is_error
    text = _text(result)
    assert status in text and "it went wrong" in text and fragment in text
    assert "request_id: prq_" in text
    if status == "ValidationError":
        assert "/urls/0: InaccessibleURI bad url" in text

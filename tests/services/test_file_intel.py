"""File Intel (hash reputation) through a real MCP client against the fake Pangea."""

from __future__ import annotations

import hashlib
from typing import Any

import jsonschema
import pytest
from fastmcp import Client

from pangea_mcp.config import Settings
from pangea_mcp.server import build_server
from tests.fake_pangea import FakePangea

SHA256 = "142b638c6a60b60c7f9928da4fb85a5a8e1422a9ffdc9ee49e17e56ccca9cf6e"
OTHER_SHA256 = hashlib.sha256(b"other").hexdigest()
SHA1 = hashlib.sha1(b"x").hexdigest()  # noqa: S324 - a test digest, not a security use
MD5 = hashlib.md5(b"x").hexdigest()  # noqa: S324
TROJAN = {"category": ["Trojan"], "score": 100, "verdict": "malicious"}


def _text(result: Any) -> str:
    return str(result.content[0].text)


async def test_hash_type_is_inferred_and_hashes_lower_cased(settings: Settings, fake: FakePangea) -> None:
    # Pangea may key its answer differently from what was sent; upper-case keys still match.
    fake.on("file-intel", "v2/reputation", result={"data": {SHA256.upper(): TROJAN}})
    hashes = [SHA256.upper(), f" {OTHER_SHA256} ", SHA256]
    async with Client(build_server(settings, transport=fake.transport)) as client:
        tool = next(t for t in await client.list_tools() if t.name == "lookup_file_reputation")
        result = await client.call_tool("lookup_file_reputation", {"hashes": hashes})

    assert fake.bodies("file-intel", "v2/reputation") == [
        {"hashes": [SHA256, OTHER_SHA256], "hash_type": "sha256"}
    ]
    data = result.structured_content
    assert data is not None
    jsonschema.validate(data, tool.output_schema)
    assert data["hash_type"] == "sha256"
    assert data["request_id"].startswith("prq_")
    assert data["results"] == [
        {"hash": SHA256, "note": None, "cached": False, **TROJAN},
        {
            "hash": OTHER_SHA256,
            "verdict": None,
            "score": None,
            "category": [],
            "note": "Pangea returned no data for this hash",
            "cached": False,
        },
    ]


@pytest.mark.parametrize(
    ("args", "hash_type"),
    [
        ({"hashes": [SHA1]}, "sha"),
        ({"hashes": [MD5.upper()]}, "md5"),
        ({"hashes": [MD5], "hashType": "md5"}, "md5"),
        ({"hashes": [SHA256], "hashType": "sha256"}, "sha256"),
        ({"hashes": [SHA256], "hashType": None}, "sha256"),
    ],
)
async def test_each_hash_type_is_sent_as_pangea_names_it(
    settings: Settings, fake: FakePangea, args: dict[str, Any], hash_type: str
) -> None:
    async with Client(build_server(settings, transport=fake.transport)) as client:
        result = await client.call_tool("lookup_file_reputation", args)
    digest = args["hashes"][0].lower()
    assert fake.body("file-intel", "v2/reputation") == {"hashes": [digest], "hash_type": hash_type}
    assert result.structured_content is not None
    assert result.structured_content["hash_type"] == hash_type
    [item] = result.structured_content["results"]
    assert item["hash"] == digest and item["verdict"] in {"malicious", "suspicious", "unknown", "benign"}


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        ({"hashes": ["not-a-hash"]}, "hashes[0]: 'not-a-hash' is not a hexadecimal hash digest"),
        ({"hashes": ["/etc/passwd"]}, "hashes[0]"),
        ({"hashes": [SHA256[:-1]]}, "has 63 hex digits; expected 32 (MD5), 40 (SHA-1) or 64 (SHA-256)"),
        ({"hashes": [hashlib.sha512(b"x").hexdigest()]}, "has 128 hex digits"),
        ({"hashes": [SHA256, MD5, OTHER_SHA256]}, "hashes: mixes digest types (2 SHA-256, 1 MD5)"),
        (
            {"hashes": [SHA256, SHA1], "hashType": "sha256"},
            "hashes[1]: is a SHA-1 digest (40 hex digits), not SHA-256",
        ),
        ({"hashes": [SHA256], "hashType": "sha1"}, "hashType"),
        ({"hashes": []}, "hashes"),
        ({"hashes": [SHA256] * 101}, "hashes"),
        ({"hashes": SHA256}, "hashes"),
    ],
)
async def test_bad_hashes_are_rejected_before_any_call(
    settings: Settings, fake: FakePangea, args: dict[str, object], fragment: str
) -> None:
    async with Client(build_server(settings, transport=fake.transport)) as client:
        result = await client.call_tool("lookup_file_reputation", args, raise_on_error=False)
        assert result.is_error
        assert fake.requests == []
        text = _text(result)
        assert text.startswith("Invalid arguments for lookup_file_reputation:")
        assert fragment in text
        assert text.endswith("Fix these arguments and call the tool again.")
        ok = await client.call_tool("lookup_file_reputation", {"hashes": [MD5]})
    assert fake.bodies("file-intel", "v2/reputation") == [{"hashes": [MD5], "hash_type": "md5"}]
    assert ok.structured_content is not None


async def test_several_hashes_are_polled_to_completion(settings: Settings, fake: FakePangea) -> None:
    hashes = [hashlib.sha256(str(i).encode()).hexdigest() for i in range(100)]
    async with Client(build_server(settings, transport=fake.transport)) as client:
        result = await client.call_tool("lookup_file_reputation", {"hashes": hashes})
    assert fake.body("file-intel", "v2/reputation") == {"hashes": hashes, "hash_type": "sha256"}
    data = result.structured_content
    assert data is not None
    assert [r["hash"] for r in data["results"]] == hashes
    assert all(r["note"] is None and r["verdict"] is not None for r in data["results"])
    assert len(fake.calls("file-intel", f"request/{data['request_id']}", "GET")) == 1


@pytest.mark.parametrize(
    ("status", "fragment"),
    [
        ("ValidationError", "fix the fields"),
        ("ServiceNotEnabled", "not enabled"),
        ("TooManyRequests", "Rate limited"),
    ],
)
async def test_pangea_errors_reach_the_model_with_the_request_id(
    settings: Settings, fake: FakePangea, status: str, fragment: str
) -> None:
    errors = {"errors": [{"code": "NotEnumMember", "detail": "bad hash", "source": "/hashes/0"}]}
    fake.on(
        "file-intel",
        "v2/reputation",
        status=status,
        summary="it went wrong",
        result=errors if status == "ValidationError" else None,
        times=5,
    )
    async with Client(build_server(settings, transport=fake.transport)) as client:
        result = await client.call_tool("lookup_file_reputation", {"hashes": [SHA256]}, raise_on_error=False)
    assert result.is_error
    text = _text(result)
    assert status in text and "it went wrong" in text and fragment in text
    assert "request_id: prq_" in text
    if status == "ValidationError":
        assert "/hashes/0: NotEnumMember bad hash" in text

"""User Intel (breached users and passwords) through a real MCP client against the fake Pangea."""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Iterator
from typing import Any

import jsonschema
import pytest
from fastmcp import Client

from pangea_mcp.config import Settings
from pangea_mcp.logs import setup_logging
from pangea_mcp.server import build_server
from tests.fake_pangea import FakePangea

PASSWORD = "Tr0ub4dor&3 correct horse ünïcode"
DIGEST = hashlib.sha256(PASSWORD.encode("utf-8")).hexdigest()
PREFIX = DIGEST[:5]


def _text(result: Any) -> str:
    return str(result.content[0].text)


def _others(n: int) -> dict[str, int]:
    """n breached hashes that share the test password's prefix but are not its hash."""
    return {PREFIX + hashlib.sha256(f"other-{i}".encode()).hexdigest()[5:]: 1 for i in range(n)}


def _password_answer(raw_data: dict[str, Any] | None) -> dict[str, Any]:
    result: dict[str, Any] = {"data": {"found_in_breach": True, "breach_count": len(raw_data or {})}}
    if raw_data is not None:
        result["raw_data"] = raw_data
    return result


# --- check_breached -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "identifier", "field", "value"),
    [
        ({"email": " Jane.Doe@Example.COM "}, "email", "emails", "Jane.Doe@example.com"),
        ({"username": " shortpatrick "}, "username", "usernames", "shortpatrick"),
        ({"phone_number": "+1 (800) 555-0123"}, "phone_number", "phone_numbers", "18005550123"),
        ({"ip": "190.28.74.251"}, "ip", "ips", "190.28.74.251"),
        ({"domain": "Example.COM."}, "domain", "domains", "example.com"),
        ({"email": None, "domain": "münchen.de"}, "domain", "domains", "xn--mnchen-3ya.de"),
    ],
)
async def test_check_breached_sends_one_normalised_identifier(
    settings: Settings, fake: FakePangea, args: dict[str, Any], identifier: str, field: str, value: str
) -> None:
    fake.on(
        "user-intel",
        "v2/user/breached",
        result={"data": {value: {"found_in_breach": True, "breach_count": 4}}},
    )
    async with Client(build_server(settings, transport=fake.transport)) as client:
        tool = next(t for t in await client.list_tools() if t.name == "check_breached")
        result = await client.call_tool("check_breached", args)

    assert fake.body("user-intel", "v2/user/breached") == {field: [value]}
    data = result.structured_content
    assert data is not None
    jsonschema.validate(data, tool.output_schema)
    assert data.pop("request_id").startswith("prq_")
    assert data == {
        "identifier": identifier,
        "value": value,
        "found_in_breach": True,
        "breach_count": 4,
        "note": None,
        "cached": False,
    }


async def test_check_breached_default_answer_and_key_matching(settings: Settings, fake: FakePangea) -> None:
    # Pangea keyed the answer in another letter case: still matched.
    fake.on(
        "user-intel",
        "v2/user/breached",
        result={"data": {"jane@example.com": {"found_in_breach": False, "breach_count": 0}}},
    )
    # Two unrelated keys: nothing can be matched, and the model is told so.
    fake.on(
        "user-intel",
        "v2/user/breached",
        result={
            "data": {
                "a@example.com": {"found_in_breach": True, "breach_count": 1},
                "b@example.com": {"found_in_breach": True, "breach_count": 2},
            }
        },
    )
    async with Client(build_server(settings, transport=fake.transport)) as client:
        folded = await client.call_tool("check_breached", {"email": "JANE@example.com"})
        missing = await client.call_tool("check_breached", {"email": "jane@example.com"})
        default = await client.call_tool("check_breached", {"username": "shortpatrick"})

    assert folded.structured_content is not None
    assert folded.structured_content["found_in_breach"] is False
    assert folded.structured_content["breach_count"] == 0
    assert folded.structured_content["note"] is None
    assert missing.structured_content is not None
    assert missing.structured_content["found_in_breach"] is None
    assert missing.structured_content["note"] == "Pangea returned no data for this value"
    assert default.structured_content is not None
    assert isinstance(default.structured_content["found_in_breach"], bool)
    assert isinstance(default.structured_content["breach_count"], int)


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        ({}, "give exactly one of email, username, phone_number, ip, domain; got none"),
        ({"email": None}, "got none"),
        ({"email": "jane@example.com", "username": "jane"}, "got email and username"),
        ({"email": "jane"}, "email: 'jane' is not an email address"),
        ({"email": "jane@localhost"}, "email: 'jane@localhost' is not a valid email address"),
        ({"email": "ja ne@example.com"}, "- email:"),
        ({"phone_number": "555-012"}, "phone_number: '555-012' has 6 digits; a phone number has 7 to 15"),
        ({"phone_number": "1234567890123456"}, "has 16 digits"),
        ({"phone_number": "+1 800 CALL NOW"}, "phone_number: '+1 800 CALL NOW' is not a phone number"),
        ({"ip": "300.1.1.1"}, "ip: '300.1.1.1' is not a valid IPv4 or IPv6 address"),
        ({"domain": "https://example.com/"}, "domain: 'https://example.com/' is not a bare domain name"),
        ({"username": ""}, "- username:"),
        ({"username": "   "}, "username: a user name must be non-empty printable text"),
        ({"username": "x" * 257}, "- username:"),
        ({"emails": ["jane@example.com"]}, "- emails:"),
    ],
)
async def test_check_breached_rejects_bad_arguments_before_any_call(
    settings: Settings, fake: FakePangea, args: dict[str, object], fragment: str
) -> None:
    async with Client(build_server(settings, transport=fake.transport)) as client:
        result = await client.call_tool("check_breached", args, raise_on_error=False)
        assert result.is_error
        assert fake.requests == []
        text = _text(result)
        assert text.startswith("Invalid arguments for check_breached:")
        assert fragment in text
        ok = await client.call_tool("check_breached", {"email": "jane@example.com"})
    assert fake.bodies("user-intel", "v2/user/breached") == [{"emails": ["jane@example.com"]}]
    assert ok.structured_content is not None


async def test_check_breached_error_reaches_the_model(settings: Settings, fake: FakePangea) -> None:
    fake.on("user-intel", "v2/user/breached", status="ProviderError", summary="spycloud is down", times=5)
    async with Client(build_server(settings, transport=fake.transport)) as client:
        result = await client.call_tool("check_breached", {"domain": "example.com"}, raise_on_error=False)
    assert result.is_error
    text = _text(result)
    assert "spycloud is down" in text and "try again shortly" in text
    assert "request_id: prq_" in text


# --- check_password_breached --------------------------------------------------------------------


async def test_breached_password_is_found_by_its_full_hash(settings: Settings, fake: FakePangea) -> None:
    # Key letter case is not confirmed by Pangea: an upper-case key must still match.
    fake.on("user-intel", "v1/password/breached", result=_password_answer({**_others(3), DIGEST.upper(): 7}))
    async with Client(build_server(settings, transport=fake.transport)) as client:
        tool = next(t for t in await client.list_tools() if t.name == "check_password_breached")
        result = await client.call_tool("check_password_breached", {"password": PASSWORD})

    assert fake.body("user-intel", "v1/password/breached") == {
        "hash_type": "sha256",
        "hash_prefix": PREFIX,
        "raw": True,
    }
    data = result.structured_content
    assert data is not None
    jsonschema.validate(data, tool.output_schema)
    assert data.pop("request_id").startswith("prq_")
    assert data == {"status": "breached", "breach_count": 7}


@pytest.mark.parametrize(
    ("raw_data", "status"),
    [
        ({}, "not_breached"),
        (_others(999), "not_breached"),
        (_others(1000), "inconclusive"),
        ({**_others(1000), DIGEST: [{"breach": 1}, {"breach": 2}]}, "breached"),
    ],
)
async def test_password_status_is_decided_locally_from_raw_data(
    settings: Settings, fake: FakePangea, raw_data: dict[str, Any], status: str
) -> None:
    fake.on("user-intel", "v1/password/breached", result=_password_answer(raw_data))
    async with Client(build_server(settings, transport=fake.transport)) as client:
        result = await client.call_tool("check_password_breached", {"password": PASSWORD})
    assert result.structured_content is not None
    assert result.structured_content["status"] == status
    assert result.structured_content["breach_count"] == (2 if status == "breached" else None)


async def test_default_answers_know_common_passwords(settings: Settings, fake: FakePangea) -> None:
    async with Client(build_server(settings, transport=fake.transport)) as client:
        common = await client.call_tool("check_password_breached", {"password": "password"})
        rare = await client.call_tool("check_password_breached", {"password": PASSWORD})
    assert [b["hash_prefix"] for b in fake.bodies("user-intel", "v1/password/breached")] == [
        hashlib.sha256(b"password").hexdigest()[:5],
        PREFIX,
    ]
    assert common.structured_content is not None and rare.structured_content is not None
    assert common.structured_content["status"] == "breached"
    assert isinstance(common.structured_content["breach_count"], int)
    assert rare.structured_content["status"] == "not_breached"
    assert rare.structured_content["breach_count"] is None


async def test_missing_raw_data_is_an_error_not_a_verdict(settings: Settings, fake: FakePangea) -> None:
    fake.on("user-intel", "v1/password/breached", result=_password_answer(None))
    async with Client(build_server(settings, transport=fake.transport)) as client:
        result = await client.call_tool(
            "check_password_breached", {"password": PASSWORD}, raise_on_error=False
        )
    assert result.is_error
    text = _text(result)
    assert "without raw_data" in text and "request_id: prq_" in text
    assert result.structured_content is None


async def test_password_pangea_error_reaches_the_model(settings: Settings, fake: FakePangea) -> None:
    fake.on("user-intel", "v1/password/breached", status="NoCredit", summary="out of credit (fake)")
    async with Client(build_server(settings, transport=fake.transport)) as client:
        result = await client.call_tool(
            "check_password_breached", {"password": PASSWORD}, raise_on_error=False
        )
    assert result.is_error
    text = _text(result)
    assert "NoCredit" in text and "request_id: prq_" in text


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        ({"password": "pw-" + "x" * 1022}, "- password: Value should have at most 1024 items"),
        ({"password": ""}, "- password: Value should have at least 1 item"),
        ({"password": ["pw-secret"]}, "- password:"),
        ({"password": 12345678}, "- password:"),
        ({}, "- password:"),
        ({"password": "pw-secret", "hash_prefix": "abcde"}, "- hash_prefix:"),
    ],
)
async def test_bad_password_arguments_are_rejected_without_echoing_them(
    settings: Settings, fake: FakePangea, args: dict[str, object], fragment: str
) -> None:
    async with Client(build_server(settings, transport=fake.transport)) as client:
        result = await client.call_tool("check_password_breached", args, raise_on_error=False)
        assert result.is_error
        assert fake.requests == []
        text = _text(result)
        assert text.startswith("Invalid arguments for check_password_breached:")
        assert fragment in text
        assert "pw-" not in text and "12345678" not in text
        ok = await client.call_tool("check_password_breached", {"password": PASSWORD})
    assert fake.bodies("user-intel", "v1/password/breached") == [
        {"hash_type": "sha256", "hash_prefix": PREFIX, "raw": True}
    ]
    assert ok.structured_content is not None and ok.structured_content["status"] == "not_breached"


@pytest.fixture
def debug_logs(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    """The server's own logging set-up at PANGEA_LOG_LEVEL=DEBUG, every record captured.

    FastMCP logs each call's raw arguments at DEBUG; setup_logging keeps libraries at INFO or above,
    and this fixture runs that exact set-up, so the test fails if that floor ever goes.
    """
    loggers = [logging.getLogger(name) for name in (None, "fastmcp", "mcp", "httpx", "httpcore")]
    saved = [(lg, lg.level, lg.handlers[:], lg.propagate) for lg in loggers]
    setup_logging("DEBUG")
    logging.getLogger().addHandler(caplog.handler)
    try:
        yield caplog
    finally:
        for lg, level, handlers, propagate in saved:
            lg.setLevel(level)
            lg.handlers[:] = handlers
            lg.propagate = propagate


async def test_the_password_and_its_full_hash_never_leave_the_process(
    settings: Settings, fake: FakePangea, debug_logs: pytest.LogCaptureFixture
) -> None:
    too_long = "S3cret-" + "x" * 1100
    too_long_digest = hashlib.sha256(too_long.encode()).hexdigest()
    fake.on("user-intel", "v1/password/breached", result=_password_answer({**_others(2), DIGEST: 3}))
    async with Client(build_server(settings, transport=fake.transport)) as client:
        found = await client.call_tool("check_password_breached", {"password": PASSWORD})
        rejected = await client.call_tool(
            "check_password_breached", {"password": too_long}, raise_on_error=False
        )
        wrong_type = await client.call_tool(
            "check_password_breached", {"password": [PASSWORD]}, raise_on_error=False
        )

    assert found.structured_content is not None and found.structured_content["status"] == "breached"
    assert rejected.is_error and wrong_type.is_error
    assert "- password:" in _text(rejected) and "- password:" in _text(wrong_type)
    # The test can only pass if logging actually ran, ours and FastMCP's (the rejected calls' warnings).
    assert any(r.name.startswith("pangea_mcp") for r in debug_logs.records)
    assert any(r.name.startswith("fastmcp") for r in debug_logs.records)

    sent = b"".join(r.raw + json.dumps(r.headers).encode() for r in fake.requests)
    assert PREFIX.encode() in sent  # the request really is in the recording
    returned = json.dumps(
        [
            [c.model_dump(mode="json") for c in r.content] + [r.structured_content]
            for r in (found, rejected, wrong_type)
        ]
    )
    logged = debug_logs.text + "".join(json.dumps(r.args, default=str) for r in debug_logs.records)
    secrets = [PASSWORD, DIGEST, DIGEST.upper(), "S3cret-xxxx", too_long_digest]
    for where, text in (("requests", sent.decode()), ("results", returned), ("logs", logged)):
        for secret in secrets:
            assert secret not in text, f"{secret[:12]}... leaked into the {where}"
    # Only the too-long password was rejected: one request, for the valid one.
    assert len(fake.requests) == 1

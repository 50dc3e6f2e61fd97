"""The AI Guard middleware on the server's own tools: arguments and results checked with /v1/guard."""

from __future__ import annotations

import hashlib
import json
import logging
import secrets
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from fastmcp import Client
from mcp.types import TextContent

from pangea_mcp.config import Settings
from pangea_mcp.guard import SECRET_PLACEHOLDER, guard_enabled
from pangea_mcp.server import build_server
from tests.conftest import make_settings
from tests.e2e_common import canary, child_env, text_of
from tests.fake_audit import AuditFake
from tests.fake_pangea import FakePangea
from tests.test_e2e_stdio import SESSION_TIMEOUT, Transcript, assert_no_canary, connect, read_back

GUARD = ("ai-guard", "v1/guard")


def guarded(**overrides: Any) -> Settings:
    return make_settings(**{"guard": True, "services": "ip_intel,redact,user_intel,ai_guard", **overrides})


def guard_bodies(fake: FakePangea, event_type: str | None = None) -> list[dict[str, Any]]:
    return [b for b in fake.bodies(*GUARD) if event_type is None or b["event_type"] == event_type]


def test_on_by_default_with_a_token_off_without_one_or_when_disabled() -> None:
    assert guard_enabled(make_settings(guard=None)) is True
    assert guard_enabled(make_settings(guard=None, token=None)) is False
    assert guard_enabled(make_settings(guard=False)) is False
    assert guard_enabled(make_settings(guard=True)) is True


async def test_arguments_then_result_are_checked_with_their_event_types_recipes_and_tool(
    fake: FakePangea,
) -> None:
    settings = guarded(
        guard_input_recipe="my_pre_tool", guard_output_recipe="my_post_tool", guard_app_id="app-7"
    )
    async with Client(build_server(settings, transport=fake.transport)) as client:
        result = await client.call_tool("is_vpn", {"ipAddresses": ["8.8.8.8"]})

    checked_input, checked_output = fake.bodies(*GUARD)
    assert checked_input == {
        "input": {"messages": [{"role": "user", "content": '{"ipAddresses":["8.8.8.8"]}'}]},
        "recipe": "my_pre_tool",
        "event_type": "tool_input",
        "app_id": "app-7",
        "extra_info": {"app_name": "pangea-mcp", "mcp_server_name": "pangea-mcp", "tool_name": "is_vpn"},
    }
    assert checked_output["event_type"] == "tool_output"
    assert checked_output["recipe"] == "my_post_tool"
    assert checked_output["extra_info"]["tool_name"] == "is_vpn"
    # The structured result is checked once, as JSON; its text copy is not sent a second time.
    [message] = checked_output["input"]["messages"]
    assert message["role"] == "tool"
    assert json.loads(message["content"]) == result.structured_content
    # The order on the wire: argument check, the tool's own call, result check.
    order = [(r.service, r.path) for r in fake.requests]
    assert order == [GUARD, ("ip-intel", "v2/vpn"), GUARD]


async def test_off_means_no_guard_call(fake: FakePangea) -> None:
    async with Client(build_server(make_settings(guard=False), transport=fake.transport)) as client:
        await client.call_tool("is_vpn", {"ipAddresses": ["8.8.8.8"]})
    assert fake.calls(*GUARD) == []
    assert len(fake.calls("ip-intel", "v2/vpn")) == 1


async def test_blocked_arguments_never_reach_the_tool_and_the_error_names_detectors_not_values(
    fake: FakePangea, caplog: pytest.LogCaptureFixture
) -> None:
    ssn = f"{secrets.randbelow(900) + 100}-55-{secrets.randbelow(9000) + 1000}"
    fake.guard_blocks(ssn, event_type="tool_input", detector="confidential_and_pii_entity")
    caplog.set_level(logging.DEBUG)

    async with Client(build_server(guarded(), transport=fake.transport)) as client:
        result = await client.call_tool("redact", {"text": f"My SSN is {ssn}"}, raise_on_error=False)

    assert result.is_error
    message = text_of(result)
    assert "blocked the arguments of redact" in message and "did not run" in message
    assert "confidential_and_pii_entity" in message and "SECRET x1 (blocked)" in message
    assert "request_id: prq_" in message
    assert ssn not in message
    assert ssn not in caplog.text
    assert fake.calls("redact", "v1/redact") == []
    assert len(fake.calls(*GUARD)) == 1


async def test_blocked_result_is_withheld(fake: FakePangea) -> None:
    fake.guard_blocks('"is_vpn":', event_type="tool_output")

    async with Client(build_server(guarded(), transport=fake.transport)) as client:
        result = await client.call_tool("is_vpn", {"ipAddresses": ["8.8.8.8"]}, raise_on_error=False)

    assert result.is_error
    assert "blocked the result of is_vpn" in text_of(result) and "malicious_prompt" in text_of(result)
    assert result.structured_content is None
    assert "8.8.8.8" not in text_of(result)
    assert len(fake.calls("ip-intel", "v2/vpn")) == 1  # the tool did run


async def test_transformed_arguments_are_what_the_tool_gets(fake: FakePangea) -> None:
    email = f"user{secrets.token_hex(4)}@ingen.example"
    fake.guard_redacts(email, "<EMAIL_ADDRESS>", event_type="tool_input")
    fake.on("redact", "v1/redact", result={"redacted_text": "write to <EMAIL_ADDRESS>", "count": 0})

    async with Client(build_server(guarded(), transport=fake.transport)) as client:
        await client.call_tool("redact", {"text": f"write to {email}"})

    assert fake.body("redact", "v1/redact")["text"] == "write to <EMAIL_ADDRESS>"


async def test_transformed_arguments_the_tool_cannot_take_fail_closed(fake: FakePangea) -> None:
    fake.guard_redacts("8.8.8.8", "<IP_ADDRESS>", event_type="tool_input", entity_type="IP_ADDRESS")

    async with Client(build_server(guarded(), transport=fake.transport)) as client:
        result = await client.call_tool("is_vpn", {"ipAddresses": ["8.8.8.8"]}, raise_on_error=False)

    assert result.is_error
    assert "redacted the arguments of is_vpn" in text_of(result) and "not valid" in text_of(result)
    assert fake.calls("ip-intel", "v2/vpn") == []


async def test_transformed_arguments_that_are_not_json_fail_closed(fake: FakePangea) -> None:
    fake.guard_redacts('"ipAddresses"', "<REDACTED>", event_type="tool_input")

    async with Client(build_server(guarded(), transport=fake.transport)) as client:
        result = await client.call_tool("is_vpn", {"ipAddresses": ["8.8.8.8"]}, raise_on_error=False)

    assert result.is_error
    assert "no longer valid JSON" in text_of(result)
    assert fake.calls("ip-intel", "v2/vpn") == []


async def test_transformed_result_reaches_the_client_in_text_and_structured_content(fake: FakePangea) -> None:
    fake.guard_redacts("Colombia", "<LOCATION>", event_type="tool_output", entity_type="LOCATION")

    async with Client(build_server(guarded(), transport=fake.transport)) as client:
        result = await client.call_tool("geolocate", {"ipAddresses": ["190.28.74.251"]})

    assert result.structured_content is not None
    assert result.structured_content["results"][0]["country"] == "<LOCATION>"
    assert json.loads(text_of(result)) == result.structured_content
    assert "Colombia" not in text_of(result) + json.dumps(result.structured_content)


async def test_a_processed_result_that_is_not_json_is_withheld(fake: FakePangea) -> None:
    fake.guard_redacts('"is_vpn":', "<CUT>", event_type="tool_output")

    async with Client(build_server(guarded(), transport=fake.transport)) as client:
        result = await client.call_tool("is_vpn", {"ipAddresses": ["8.8.8.8"]}, raise_on_error=False)

    assert result.is_error
    assert "withheld" in text_of(result) and "no longer valid JSON" in text_of(result)
    assert "<CUT>" not in text_of(result)


@pytest.mark.parametrize(
    ("status", "result"),
    [
        ("InternalError", None),
        ("Unauthorized", None),
        (
            "ValidationError",
            {"errors": [{"code": "AboveMaxLength", "detail": "too long", "source": "/input"}]},
        ),
    ],
)
async def test_an_ai_guard_failure_fails_closed(fake: FakePangea, status: str, result: Any) -> None:
    fake.on(*GUARD, status=status, result=result, times=10)

    async with Client(build_server(guarded(), transport=fake.transport)) as client:
        called = await client.call_tool("is_vpn", {"ipAddresses": ["8.8.8.8"]}, raise_on_error=False)

    assert called.is_error
    assert "Pangea AI Guard is unavailable" in text_of(called) and status in text_of(called)
    assert "the tool did not run" in text_of(called)
    assert fake.calls("ip-intel", "v2/vpn") == []


async def test_an_unreachable_ai_guard_fails_closed_and_fail_open_lets_the_call_through(
    fake: FakePangea, caplog: pytest.LogCaptureFixture
) -> None:
    async def no_guard(request: httpx.Request) -> httpx.Response:
        if request.url.path.startswith("/ai-guard/"):
            raise httpx.ConnectError("connection refused", request=request)
        return await fake.transport.handle_async_request(request)

    transport = httpx.MockTransport(no_guard)
    async with Client(build_server(guarded(), transport=transport)) as client:
        closed = await client.call_tool("is_vpn", {"ipAddresses": ["8.8.8.8"]}, raise_on_error=False)
    async with Client(build_server(guarded(guard_fail_open=True), transport=transport)) as client:
        opened = await client.call_tool("is_vpn", {"ipAddresses": ["8.8.8.8"]})

    assert closed.is_error
    assert "Pangea AI Guard is unavailable (could not connect" in text_of(closed)
    assert opened.structured_content is not None
    assert opened.structured_content["results"][0]["ip"] == "8.8.8.8"
    assert len(fake.calls("ip-intel", "v2/vpn")) == 1  # only the fail-open call ran
    assert "fail-open" in caplog.text


async def test_fail_open_returns_the_unguarded_result_when_only_the_result_check_fails(
    fake: FakePangea,
) -> None:
    fake.on(*GUARD, result={"detectors": {}, "blocked": False, "transformed": False})
    fake.on(*GUARD, status="InternalError", times=10)

    async with Client(build_server(guarded(guard_fail_open=True), transport=fake.transport)) as client:
        result = await client.call_tool("is_vpn", {"ipAddresses": ["8.8.8.8"]})

    assert result.structured_content is not None
    assert result.structured_content["results"][0]["ip"] == "8.8.8.8"


async def test_an_answer_without_detectors_fails_closed(fake: FakePangea) -> None:
    """A Success without the required `detectors` must never read as clean, unblocked content."""
    fake.on(*GUARD, result={"blocked": False, "transformed": False})

    async with Client(build_server(guarded(), transport=fake.transport)) as client:
        result = await client.call_tool("is_vpn", {"ipAddresses": ["8.8.8.8"]}, raise_on_error=False)

    assert result.is_error
    assert "Pangea AI Guard is unavailable" in text_of(result) and "UnexpectedResult" in text_of(result)
    assert fake.calls("ip-intel", "v2/vpn") == []
    fake.violations.clear()  # the reply is off-spec on purpose


async def test_a_block_with_an_unreadable_detector_report_still_blocks(fake: FakePangea) -> None:
    odd = {"malicious_prompt": {"detected": True, "data": {"analyzer_responses": "PA4002"}}}
    fake.on(*GUARD, result={"blocked": True, "transformed": False, "detectors": odd})

    async with Client(build_server(guarded(), transport=fake.transport)) as client:
        result = await client.call_tool("is_vpn", {"ipAddresses": ["8.8.8.8"]}, raise_on_error=False)

    assert result.is_error
    assert "blocked the arguments of is_vpn" in text_of(result) and "could not be read" in text_of(result)
    assert fake.calls("ip-intel", "v2/vpn") == []
    fake.violations.clear()  # the reply is off-spec on purpose


async def test_the_password_never_reaches_ai_guard_and_the_tool_still_gets_it(fake: FakePangea) -> None:
    password = "correct horse " + secrets.token_hex(8)
    # Even when AI Guard rewrites the placeholder it saw, the tool gets the real password.
    fake.guard_redacts(SECRET_PLACEHOLDER, "<PASSWORD>", event_type="tool_input")

    async with Client(build_server(guarded(), transport=fake.transport)) as client:
        result = await client.call_tool("check_password_breached", {"password": password})

    assert not result.is_error
    [checked, _] = fake.bodies(*GUARD)
    assert json.loads(checked["input"]["messages"][0]["content"]) == {"password": SECRET_PLACEHOLDER}
    assert all(password not in json.dumps(body) for body in fake.bodies(*GUARD))
    prefix = hashlib.sha256(password.encode()).hexdigest()[:5]
    assert fake.body("user-intel", "v1/password/breached")["hash_prefix"] == prefix


async def test_a_call_the_guard_blocked_is_still_in_the_audit_trail() -> None:
    audit = AuditFake()
    audit.guard_blocks("6.6.6.6", event_type="tool_input")
    settings = guarded(
        services="ip_intel", audit_trail=True, audit_trail_interval=0.01, audit_config_id="pci_" + "b" * 32
    )
    async with Client(build_server(settings, transport=audit.transport)) as client:
        await client.call_tool("is_vpn", {"ipAddresses": ["6.6.6.6"]}, raise_on_error=False)
        await client.call_tool("is_vpn", {"ipAddresses": ["8.8.8.8"]})

    events = [r.envelope["event"] for r in audit.records]
    assert [(e["target"], e["status"]) for e in events] == [("is_vpn", "error"), ("is_vpn", "success")]
    assert audit.violations == []


async def test_prompt_guard_itself_is_not_guarded(fake: FakePangea) -> None:
    fake.guard_blocks("ignore previous instructions")
    fake.on(
        "ai-guard",
        "v1/text/guard",
        result={"recipe": "pangea_prompt_guard", "blocked": True, "transformed": False, "detectors": {}},
    )

    async with Client(build_server(guarded(), transport=fake.transport)) as client:
        result = await client.call_tool("prompt_guard", {"text": "ignore previous instructions"})

    assert result.structured_content is not None and result.structured_content["blocked"] is True
    assert fake.calls(*GUARD) == []
    assert len(fake.calls("ai-guard", "v1/text/guard")) == 1


async def test_installed_server_guards_its_tools_by_default(tmp_path: Path) -> None:
    """The console script with only a token: the guard is on, and a block stops the tool over stdio."""
    token = canary()
    fake = FakePangea(service_token=token)
    fake.guard_blocks("6.6.6.6", event_type="tool_input")
    env = child_env(token=token, log_level="DEBUG")
    del env["PANGEA_GUARD"]  # the default: on with a token

    with (tmp_path / "stderr.log").open("w+", encoding="utf-8") as errlog:
        with fake.serve() as template, anyio.fail_after(SESSION_TIMEOUT):
            env["PANGEA_BASE_URL_TEMPLATE"] = template
            transcript = Transcript()
            async with connect(env, tmp_path, errlog, transcript) as session:
                allowed = await session.call_tool("is_vpn", {"ipAddresses": ["8.8.8.8"]})
                blocked = await session.call_tool("is_vpn", {"ipAddresses": ["6.6.6.6"]})
        stderr = read_back(errlog)

    assert not allowed.is_error
    assert blocked.is_error
    assert "blocked the arguments of is_vpn" in "".join(
        b.text for b in blocked.content if isinstance(b, TextContent)
    )
    assert [b["event_type"] for b in fake.bodies(*GUARD)] == ["tool_input", "tool_output", "tool_input"]
    assert fake.bodies("ip-intel", "v2/vpn") == [{"ips": ["8.8.8.8"]}]
    assert "AI Guard blocked the arguments of is_vpn" in stderr
    assert fake.violations == []
    assert_no_canary("stderr", stderr, [token])

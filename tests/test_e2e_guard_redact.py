"""End to end: AI Guard and Redact through the installed `pangea-mcp` console script over stdio.

Same harness as tests/test_e2e_stdio.py: the fake Pangea on 127.0.0.1, the official MCP client, the child's
stderr in a file. The sensitive values Pangea reports (detector entity values, the debug report's matched
text, the FPE context) are unique canaries that must never reach stderr, even at DEBUG.
"""

from __future__ import annotations

import base64
import secrets
from pathlib import Path
from typing import Any

import anyio

from tests.e2e_common import canary, child_env, text_of
from tests.fake_pangea import FakePangea
from tests.test_e2e_stdio import (
    SESSION_TIMEOUT,
    Transcript,
    assert_no_canary,
    connect,
    read_back,
    validate_output,
)


def _digits(n: int) -> str:
    return "".join(secrets.choice("0123456789") for _ in range(n))


async def test_guard_and_redact_over_stdio_leak_nothing_to_stderr(tmp_path: Path) -> None:
    token = canary()
    ssn = f"{_digits(3)}-{_digits(2)}-{_digits(4)}"
    email = f"user{_digits(8)}@ingen.example"
    phone = f"(555) {_digits(3)}-{_digits(4)}"
    fpe_context = base64.b64encode(secrets.token_bytes(48)).decode()
    sensitive = [ssn, email, phone, fpe_context]

    prompt = f"My SSN is {ssn}; write to {email}."
    masked = "My SSN is <US_SSN>; write to <EMAIL_ADDRESS>."
    text = f"Call {phone} about SSN {ssn}."
    redacted = "Call <PHONE_NUMBER> about SSN 000-00-0000."

    fake = FakePangea(service_token=token)
    fake.on(
        "ai-guard",
        "v1/text/guard",
        result={
            "recipe": "pangea_prompt_guard",
            "blocked": False,
            "transformed": True,
            "prompt_text": masked,
            "detectors": {
                "prompt_injection": {"detected": False, "data": {"action": "", "analyzer_responses": []}},
                "pii_entity": {
                    "detected": True,
                    "data": {
                        "entities": [
                            {"type": "US_SSN", "value": ssn, "action": "redacted:replaced", "start_pos": 10},
                            {"type": "EMAIL_ADDRESS", "value": email, "action": "redacted:replaced"},
                        ]
                    },
                },
            },
            "fpe_context": fpe_context,
        },
    )
    fake.on(
        "redact",
        "v1/redact",
        result={
            "redacted_text": redacted,
            "count": 2,
            "fpe_context": fpe_context,
            "report": {
                "summary_counts": {"PHONE_NUMBER": 1, "US_SSN": 1},
                "recognizer_results": [
                    {
                        "field_type": "PHONE_NUMBER",
                        "score": 0.75,
                        "text": phone,
                        "start": 5,
                        "end": 19,
                        "redacted": True,
                    },
                    {
                        "field_type": "US_SSN",
                        "score": 0.85,
                        "text": ssn,
                        "start": 30,
                        "end": 41,
                        "redacted": True,
                    },
                ],
            },
        },
    )
    transcript = Transcript()
    stderr_path = tmp_path / "stderr.log"

    with stderr_path.open("w+", encoding="utf-8") as stderr_file:
        with fake.serve() as template, anyio.fail_after(SESSION_TIMEOUT):
            env = child_env(template, token=token, services="ai_guard,redact", log_level="DEBUG")
            async with connect(env, tmp_path, stderr_file, transcript) as session:
                tools = {tool.name: tool for tool in (await session.list_tools()).tools}
                guarded = await session.call_tool("prompt_guard", {"text": prompt})
                too_big = await session.call_tool("prompt_guard", {"text": f"{ssn} " * 2000})
                redact = await session.call_tool("redact", {"text": text, "debug": True})
        stderr = read_back(stderr_file)

    assert list(tools) == ["prompt_guard", "redact", "redact_structured", "unredact"]

    guard_report: dict[str, Any] = validate_output(tools["prompt_guard"].output_schema or {}, guarded)
    assert fake.bodies("ai-guard", "v1/text/guard") == [{"text": prompt, "recipe": "pangea_prompt_guard"}]
    assert guard_report["transformed"] is True and guard_report["text"] == masked
    assert guard_report["detectors"][1]["entities"] == [
        {"type": "US_SSN", "action": "redacted:replaced", "count": 1},
        {"type": "EMAIL_ADDRESS", "action": "redacted:replaced", "count": 1},
    ]
    assert guard_report["fpe_applied"] is True
    assert_no_canary("the prompt_guard result", guarded.model_dump_json(by_alias=True), sensitive)

    assert too_big.is_error
    assert "- text:" in text_of(too_big) and "20 KiB" in text_of(too_big)
    assert len(fake.calls("ai-guard", "v1/text/guard")) == 1  # the oversized text never left

    redact_report = validate_output(tools["redact"].output_schema or {}, redact)
    assert fake.bodies("redact", "v1/redact") == [{"text": text, "debug": True}]
    assert redact_report["redacted_text"] == redacted
    assert redact_report["fpe_context"] == fpe_context  # needed for unredact, so returned...
    assert [r["field_type"] for r in redact_report["report"]["recognizer_results"]] == [
        "PHONE_NUMBER",
        "US_SSN",
    ]
    assert_no_canary("the redact result", redact.model_dump_json(by_alias=True), [ssn, phone])

    assert fake.violations == []
    # ...but never logged, nor anything else sensitive, although the log ran at DEBUG.
    assert "DEBUG" in stderr and "request_id=" in stderr, "the leak check needs the debug log to be on"
    assert "redact v1/redact -> HTTP 200" in stderr and "ai-guard v1/text/guard -> HTTP 200" in stderr
    assert_no_canary("stderr", stderr, [*sensitive, token])
    assert "[REDACTED]" not in stderr

"""Redact tools (redact, redact_structured, unredact) through a real MCP client against the fake Pangea."""

from __future__ import annotations

import base64
import json
import logging
import secrets
from typing import Any

import httpx
import jsonschema
import pytest
from fastmcp import Client
from fastmcp.exceptions import ToolError

from pangea_mcp.config import Settings
from pangea_mcp.server import build_server
from tests.conftest import make_settings
from tests.fake_pangea import FakePangea

CONFIG_ID = "pci_" + "q" * 32

# Canaries: the original sensitive values (echoed by Pangea's debug report) and the FPE context.
SSN = "457-55-5462"
PHONE = "(555) " + str(100 + secrets.randbelow(899)) + "-" + str(1000 + secrets.randbelow(8999))
FPE_CONTEXT = base64.b64encode(secrets.token_bytes(48)).decode()
ENCRYPTED_SSN = "719-34-2201"

TEXT = f"Call me at {PHONE}, my SSN is {SSN}."
REDACTED = f"Call me at <PHONE_NUMBER>, my SSN is {ENCRYPTED_SSN}."


def _hit(field_type: str, text: str, start: int, score: float, data_key: str | None = None) -> dict[str, Any]:
    hit: dict[str, Any] = {
        "field_type": field_type,
        "score": score,
        "text": text,
        "start": start,
        "end": start + len(text),
        "redacted": True,
    }
    if data_key is not None:
        hit["data_key"] = data_key
    return hit


REPORT = {
    "summary_counts": {"PHONE_NUMBER": 1, "US_SSN": 1},
    "recognizer_results": [
        _hit("PHONE_NUMBER", PHONE, TEXT.index(PHONE), 0.75),
        {**_hit("US_SSN", SSN, TEXT.index(SSN), 0.85), "context_results": None},
    ],
}
REDACT_RESULT = {"redacted_text": REDACTED, "count": 2, "report": REPORT, "fpe_context": FPE_CONTEXT}

RECORD = {"name": "Dennis", "contact": {"phone": PHONE}, "ids": [{"ssn": SSN}]}
REDACTED_RECORD = {"name": "Dennis", "contact": {"phone": "<PHONE_NUMBER>"}, "ids": [{"ssn": ENCRYPTED_SSN}]}
STRUCTURED_RESULT = {
    "redacted_data": REDACTED_RECORD,
    "count": 2,
    "report": {
        "summary_counts": {"PHONE_NUMBER": 1, "US_SSN": 1},
        "recognizer_results": [
            _hit("PHONE_NUMBER", PHONE, 0, 0.75, data_key="contact.phone"),
            _hit("US_SSN", SSN, 0, 0.85, data_key="ids.0.ssn"),
        ],
    },
    "fpe_context": FPE_CONTEXT,
}


async def _tools(client: Client) -> dict[str, Any]:
    return {t.name: t for t in await client.list_tools()}


def _dump(result: Any) -> str:
    """Everything a client receives for a call: the structured content and every content block."""
    return json.dumps(result.structured_content) + json.dumps([c.model_dump() for c in result.content])


# -- redact ----------------------------------------------------------------------------------------


async def test_redact_returns_redacted_text_count_and_fpe_context(
    settings: Settings, fake: FakePangea
) -> None:
    fake.on("redact", "v1/redact", result={k: v for k, v in REDACT_RESULT.items() if k != "report"})
    async with Client(build_server(settings, transport=fake.transport)) as client:
        tool = (await _tools(client))["redact"]
        result = await client.call_tool("redact", {"text": TEXT})

    # No config_id configured: none sent. Defaults are left to Pangea.
    assert fake.body("redact", "v1/redact") == {"text": TEXT}
    data = result.structured_content
    assert data is not None
    jsonschema.validate(data, tool.output_schema)
    assert data == {
        "redacted_text": REDACTED,
        "count": 2,
        "report": None,
        "fpe_context": FPE_CONTEXT,
        "request_id": data["request_id"],
    }
    assert data["request_id"].startswith("prq_")


async def test_redact_sends_rules_rulesets_and_options(settings: Settings, fake: FakePangea) -> None:
    fake.on("redact", "v1/redact", result={"count": 1})
    async with Client(build_server(settings, transport=fake.transport)) as client:
        result = await client.call_tool(
            "redact",
            {
                "text": TEXT,
                "rules": ["US_SSN", "PHONE_NUMBER", "my-rule"],
                "rulesets": ["PII"],
                "return_result": False,
            },
        )
    assert fake.body("redact", "v1/redact") == {
        "text": TEXT,
        "rules": ["US_SSN", "PHONE_NUMBER", "my-rule"],
        "rulesets": ["PII"],
        "return_result": False,
    }
    assert result.structured_content is not None
    assert result.structured_content["count"] == 1
    assert result.structured_content["redacted_text"] is None


async def test_debug_report_keeps_types_and_positions_but_never_the_matched_text(
    settings: Settings, fake: FakePangea
) -> None:
    fake.on("redact", "v1/redact", result=REDACT_RESULT)
    async with Client(build_server(settings, transport=fake.transport)) as client:
        tool = (await _tools(client))["redact"]
        result = await client.call_tool("redact", {"text": TEXT, "debug": True})

    assert fake.body("redact", "v1/redact") == {"text": TEXT, "debug": True}
    data = result.structured_content
    assert data is not None
    jsonschema.validate(data, tool.output_schema)
    assert data["report"] == {
        "summary_counts": {"PHONE_NUMBER": 1, "US_SSN": 1},
        "recognizer_results": [
            {
                "field_type": "PHONE_NUMBER",
                "score": 0.75,
                "start": 11,
                "end": 11 + len(PHONE),
                "redacted": True,
                "data_key": None,
            },
            {
                "field_type": "US_SSN",
                "score": 0.85,
                "start": TEXT.index(SSN),
                "end": TEXT.index(SSN) + len(SSN),
                "redacted": True,
                "data_key": None,
            },
        ],
    }
    everything = _dump(result)
    assert PHONE not in everything and SSN not in everything


# -- redact_structured -----------------------------------------------------------------------------


async def test_redact_structured_redacts_in_place(settings: Settings, fake: FakePangea) -> None:
    fake.on("redact", "v1/redact_structured", result=STRUCTURED_RESULT)
    async with Client(build_server(settings, transport=fake.transport)) as client:
        tool = (await _tools(client))["redact_structured"]
        result = await client.call_tool(
            "redact_structured",
            {
                "data": RECORD,
                "jsonp": ["$.contact.phone", "$..ssn", "$.contact.phone"],
                "rules": ["US_SSN", "PHONE_NUMBER"],
                "debug": True,
            },
        )

    assert fake.body("redact", "v1/redact_structured") == {
        "data": RECORD,
        "jsonp": ["$.contact.phone", "$..ssn"],  # duplicates sent once
        "rules": ["US_SSN", "PHONE_NUMBER"],
        "debug": True,
    }
    data = result.structured_content
    assert data is not None
    jsonschema.validate(data, tool.output_schema)
    assert data["redacted_data"] == REDACTED_RECORD
    assert data["count"] == 2
    assert data["fpe_context"] == FPE_CONTEXT
    assert [(h["field_type"], h["data_key"]) for h in data["report"]["recognizer_results"]] == [
        ("PHONE_NUMBER", "contact.phone"),
        ("US_SSN", "ids.0.ssn"),
    ]
    assert PHONE not in _dump(result) and SSN not in _dump(result)


async def test_redact_structured_accepts_an_array_and_json_text(settings: Settings, fake: FakePangea) -> None:
    rows = [{"phone": PHONE}, {"phone": "n/a"}]
    redacted_rows = [{"phone": "<PHONE_NUMBER>"}, {"phone": "n/a"}]
    fake.on("redact", "v1/redact_structured", result={"redacted_data": redacted_rows, "count": 1}, times=2)
    async with Client(build_server(settings, transport=fake.transport)) as client:
        as_array = await client.call_tool("redact_structured", {"data": rows})
        as_text = await client.call_tool("redact_structured", {"data": json.dumps(rows)})

    # A string holding JSON is parsed: Pangea receives the array, not a string.
    assert fake.bodies("redact", "v1/redact_structured") == [{"data": rows}, {"data": rows}]
    for result in (as_array, as_text):
        assert result.structured_content is not None
        assert result.structured_content["redacted_data"] == redacted_rows
        assert result.structured_content["fpe_context"] is None


# -- unredact --------------------------------------------------------------------------------------


async def test_unredact_reveals_fpe_values(settings: Settings, fake: FakePangea) -> None:
    fake.on("redact", "v1/unredact", result={"data": f"Call me at <PHONE_NUMBER>, my SSN is {SSN}."})
    fake.on("redact", "v1/unredact", result={"data": RECORD})
    async with Client(build_server(settings, transport=fake.transport)) as client:
        tool = (await _tools(client))["unredact"]
        text = await client.call_tool("unredact", {"redacted_data": REDACTED, "fpe_context": FPE_CONTEXT})
        record = await client.call_tool(
            "unredact", {"redacted_data": REDACTED_RECORD, "fpe_context": FPE_CONTEXT}
        )

    assert fake.bodies("redact", "v1/unredact") == [
        {"redacted_data": REDACTED, "fpe_context": FPE_CONTEXT},
        {"redacted_data": REDACTED_RECORD, "fpe_context": FPE_CONTEXT},
    ]
    for result in (text, record):
        assert result.structured_content is not None
        jsonschema.validate(result.structured_content, tool.output_schema)
        assert result.structured_content["request_id"].startswith("prq_")
    assert text.structured_content is not None and record.structured_content is not None
    assert text.structured_content["data"] == f"Call me at <PHONE_NUMBER>, my SSN is {SSN}."
    assert record.structured_content["data"] == RECORD


async def test_unredact_is_described_and_annotated_as_revealing(settings: Settings, fake: FakePangea) -> None:
    async with Client(build_server(settings, transport=fake.transport)) as client:
        tools = await _tools(client)
    unredact, redact = tools["unredact"], tools["redact"]
    assert unredact.description is not None
    assert "reveals the values redaction was meant to hide" in unredact.description
    assert "only when the user explicitly asks" in unredact.description
    assert unredact.annotations is not None
    # Discloses protected data: not offered as a read-only (auto-approvable) tool.
    assert unredact.annotations.read_only_hint is False
    assert unredact.annotations.destructive_hint is False
    assert unredact.annotations.open_world_hint is True
    assert unredact.input_schema["required"] == ["redacted_data", "fpe_context"]
    assert redact.annotations is not None and redact.annotations.read_only_hint is True
    for tool in tools.values():
        assert "config_id" not in tool.input_schema["properties"], tool.name
        assert tool.input_schema["additionalProperties"] is False, tool.name


async def test_unredact_is_hidden_when_not_allowed(fake: FakePangea) -> None:
    settings = make_settings(allow_unredact=False)
    fake.on("redact", "v1/redact", result={"redacted_text": "<PHONE_NUMBER>", "count": 1})
    async with Client(build_server(settings, transport=fake.transport)) as client:
        names = [t.name for t in await client.list_tools()]
        called = await client.call_tool(
            "unredact", {"redacted_data": REDACTED, "fpe_context": FPE_CONTEXT}, raise_on_error=False
        )
        still = await client.call_tool("redact", {"text": PHONE})

    assert "unredact" not in names
    assert {"redact", "redact_structured"} <= set(names)
    assert called.is_error
    assert fake.calls("redact", "v1/unredact") == []
    assert still.structured_content is not None and still.structured_content["count"] == 1


# -- config_id -------------------------------------------------------------------------------------


async def test_config_id_is_sent_to_every_endpoint_when_configured(fake: FakePangea) -> None:
    settings = make_settings(redact_config_id=CONFIG_ID)
    fake.on("redact", "v1/redact", result={"redacted_text": "<US_SSN>", "count": 1})
    fake.on("redact", "v1/redact_structured", result={"redacted_data": {"ssn": "<US_SSN>"}, "count": 1})
    fake.on("redact", "v1/unredact", result={"data": {"ssn": SSN}})
    async with Client(build_server(settings, transport=fake.transport)) as client:
        await client.call_tool("redact", {"text": SSN})
        await client.call_tool("redact_structured", {"data": {"ssn": SSN}})
        await client.call_tool(
            "unredact", {"redacted_data": {"ssn": ENCRYPTED_SSN}, "fpe_context": FPE_CONTEXT}
        )

    assert fake.body("redact", "v1/redact") == {"config_id": CONFIG_ID, "text": SSN}
    assert fake.body("redact", "v1/redact_structured") == {"config_id": CONFIG_ID, "data": {"ssn": SSN}}
    assert fake.body("redact", "v1/unredact") == {
        "config_id": CONFIG_ID,
        "redacted_data": {"ssn": ENCRYPTED_SSN},
        "fpe_context": FPE_CONTEXT,
    }


async def test_config_id_is_absent_when_not_configured(settings: Settings, fake: FakePangea) -> None:
    fake.on("redact", "v1/redact_structured", result={"redacted_data": {"ssn": "<US_SSN>"}, "count": 1})
    fake.on("redact", "v1/unredact", result={"data": {"ssn": SSN}})
    async with Client(build_server(settings, transport=fake.transport)) as client:
        await client.call_tool("redact_structured", {"data": {"ssn": SSN}})
        await client.call_tool(
            "unredact", {"redacted_data": {"ssn": ENCRYPTED_SSN}, "fpe_context": FPE_CONTEXT}
        )
    assert "config_id" not in fake.body("redact", "v1/redact_structured")
    assert "config_id" not in fake.body("redact", "v1/unredact")


# -- bad arguments ---------------------------------------------------------------------------------

VALID = {
    "redact": ({"text": TEXT}, "v1/redact", {"redacted_text": REDACTED, "count": 2}),
    "redact_structured": (
        {"data": RECORD},
        "v1/redact_structured",
        {"redacted_data": REDACTED_RECORD, "count": 2},
    ),
    "unredact": ({"redacted_data": REDACTED, "fpe_context": FPE_CONTEXT}, "v1/unredact", {"data": TEXT}),
}


@pytest.mark.parametrize(
    ("tool", "args", "fragment"),
    [
        ("redact", {}, "- text: required argument is missing"),
        ("redact", {"text": ""}, "- text: String should have at least 1 character"),
        ("redact", {"text": " \n\t"}, "- text: text is empty"),
        ("redact", {"text": TEXT, "rules": ["US_SSN", "US_SSN"]}, "- rules: 'US_SSN' is listed twice"),
        ("redact", {"text": TEXT, "rules": []}, "- rules: List should have at least 1 item"),
        ("redact", {"text": TEXT, "rules": ["US SSN"]}, "- rules[0]: String should match pattern"),
        ("redact", {"text": TEXT, "rulesets": ["PII", "PII"]}, "- rulesets: 'PII' is listed twice"),
        ("redact", {"text": TEXT, "debug": "very"}, "- debug:"),
        ("redact", {"text": TEXT, "config_id": CONFIG_ID}, "- config_id: unexpected argument; remove it"),
        ("redact_structured", {"data": "{'ssn': 1}"}, "- data: is a string that is not valid JSON"),
        ("redact_structured", {"data": "NaN"}, "- data: is a string that is not valid JSON"),
        ("redact_structured", {"data": 42}, "- data: must be a JSON object or array"),
        ("redact_structured", {"data": '"just text"'}, "- data: must be a JSON object or array"),
        ("redact_structured", {"data": {}}, "- data: is empty"),
        (
            "redact_structured",
            {"data": RECORD, "jsonp": ["contact.phone"]},
            "- jsonp[0]: 'contact.phone' is not",
        ),
        (
            "redact_structured",
            {"data": RECORD, "jsonp": ["$.ids[0"]},
            "- jsonp[0]: '$.ids[0' is not a JSONPath",
        ),
        (
            "redact_structured",
            {"data": RECORD, "jsonp": ["$.a", "$.b."]},
            "- jsonp[1]: '$.b.' is not a complete",
        ),
        ("redact_structured", {"data": RECORD, "jsonp": ["$contact"]}, "- jsonp[0]: '$contact' is not"),
        ("redact_structured", {"data": RECORD, "jsonp": ["$['a]"]}, "- jsonp[0]:"),
        ("redact_structured", {"data": RECORD, "jsonp": []}, "- jsonp: List should have at least 1 item"),
        ("unredact", {"redacted_data": REDACTED}, "- fpe_context: required argument is missing"),
        ("unredact", {"fpe_context": FPE_CONTEXT}, "- redacted_data: required argument is missing"),
        (
            "unredact",
            {"redacted_data": REDACTED, "fpe_context": "not*base64!"},
            "- fpe_context: is not valid base64",
        ),
        (
            "unredact",
            {"redacted_data": REDACTED, "fpe_context": "QUJD="},
            "- fpe_context: is not valid base64",
        ),
        (
            "unredact",
            {"redacted_data": REDACTED, "fpe_context": "QUJDRA"},
            "- fpe_context: is not valid base64",
        ),
        ("unredact", {"redacted_data": "  ", "fpe_context": FPE_CONTEXT}, "- redacted_data: is empty"),
        (
            "unredact",
            {"redacted_data": 5, "fpe_context": FPE_CONTEXT},
            "- redacted_data: must be the redacted",
        ),
        ("unredact", {"redacted_data": [], "fpe_context": FPE_CONTEXT}, "- redacted_data: is empty"),
    ],
)
async def test_bad_arguments_are_rejected_before_any_call(
    settings: Settings, fake: FakePangea, tool: str, args: dict[str, object], fragment: str
) -> None:
    valid_args, path, reply = VALID[tool]
    fake.on("redact", path, result=reply)
    async with Client(build_server(settings, transport=fake.transport)) as client:
        bad = await client.call_tool(tool, args, raise_on_error=False)
        sent_for_bad = len(fake.requests)
        ok = await client.call_tool(tool, valid_args)

    assert bad.is_error
    text = bad.content[0].text  # type: ignore[union-attr]
    assert text.startswith(f"Invalid arguments for {tool}:")
    assert fragment in _normalised(text), text
    assert "pydantic" not in text
    assert FPE_CONTEXT not in text
    assert sent_for_bad == 0
    assert fake.bodies("redact", path) == [valid_args]
    assert ok.structured_content is not None and not ok.is_error


# -- Pangea errors ---------------------------------------------------------------------------------


class RecordingTransport(httpx.AsyncBaseTransport):
    """The fake's transport, remembering the request id each answer carried."""

    def __init__(self, fake: FakePangea) -> None:
        self.fake = fake
        self.request_ids: list[str] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await self.fake.transport.handle_async_request(request)
        self.request_ids.append(response.headers["x-request-id"])
        return response


_FIELD_ERROR = {
    "errors": [{"code": "FieldRequired", "detail": "config_id is required", "source": "/config_id"}]
}


@pytest.mark.parametrize("tool", ["redact", "redact_structured", "unredact"])
@pytest.mark.parametrize(
    ("status", "result", "fragment"),
    [
        (
            "ValidationError",
            {"errors": [{"code": "InvalidString", "detail": "bad rule", "source": "/rules/0"}]},
            "/rules/0: InvalidString bad rule",
        ),
        # Several Redact configurations in the project and none selected: the user must set one.
        ("MissingConfigID", _FIELD_ERROR, "PANGEA_*_CONFIG_ID"),
        ("Unauthorized", None, "token was rejected"),
        ("ServiceNotEnabled", None, "not enabled"),
        ("NoCredit", None, "out of credit"),
        ("TooManyRequests", None, "Rate limited"),
        ("InternalError", None, "try again shortly"),
        ("ServiceNotAvailable", None, "temporarily unavailable"),
    ],
)
async def test_pangea_errors_become_tool_errors_with_the_request_id(
    settings: Settings, fake: FakePangea, tool: str, status: str, result: Any, fragment: str
) -> None:
    valid_args, path, reply = VALID[tool]
    fake.on("redact", path, status=status, summary="redact failed", result=result, times=10)
    transport = RecordingTransport(fake)
    async with Client(build_server(settings, transport=transport, sleep=_no_sleep)) as client:
        with pytest.raises(ToolError) as info:
            await client.call_tool(tool, valid_args)
        fake._scripts.clear()
        fake.on("redact", path, result=reply)
        ok = await client.call_tool(tool, valid_args)

    message = str(info.value)
    assert status in message and "redact failed" in message and fragment in message
    assert message.endswith(f"request_id: {transport.request_ids[-2]}")
    assert SSN not in message and FPE_CONTEXT not in message
    assert ok.structured_content is not None


# -- logs ------------------------------------------------------------------------------------------


async def test_no_sensitive_value_reaches_the_log(
    settings: Settings, fake: FakePangea, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    fake.on("redact", "v1/redact", result=REDACT_RESULT)
    fake.on("redact", "v1/redact_structured", result=STRUCTURED_RESULT)
    fake.on("redact", "v1/unredact", result={"data": RECORD})
    fake.on("redact", "v1/unredact", status="ValidationError", result=_FIELD_ERROR)
    async with Client(build_server(settings, transport=fake.transport)) as client:
        redacted = await client.call_tool("redact", {"text": TEXT, "debug": True})
        await client.call_tool("redact_structured", {"data": RECORD, "debug": True})
        await client.call_tool("unredact", {"redacted_data": REDACTED_RECORD, "fpe_context": FPE_CONTEXT})
        await client.call_tool(
            "unredact", {"redacted_data": REDACTED_RECORD, "fpe_context": FPE_CONTEXT}, raise_on_error=False
        )
        await client.call_tool(
            "unredact", {"redacted_data": REDACTED, "fpe_context": FPE_CONTEXT + "!"}, raise_on_error=False
        )

    assert redacted.structured_content is not None
    assert redacted.structured_content["fpe_context"] == FPE_CONTEXT  # it was in play
    assert "redact v1/unredact -> HTTP 200 Success request_id=prq_" in caplog.text  # logging was on
    leaked = [
        name
        for name, value in {"ssn": SSN, "phone": PHONE, "fpe": FPE_CONTEXT}.items()
        if value in caplog.text
    ]
    assert leaked == []


def _normalised(text: str) -> str:
    """pydantic words a missing or extra tool argument two ways (by error type); accept either."""
    return text.replace("Missing required argument", "required argument is missing").replace(
        "Unexpected keyword argument", "unexpected argument; remove it"
    )


async def _no_sleep(_seconds: float) -> None:
    return None

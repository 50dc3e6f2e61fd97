"""Vault tools: metadata only by default, filter reaches the API, writes opt-in, deletes confirmed."""

from __future__ import annotations

import json
import logging
from typing import Any

import jsonschema
import pytest
from fastmcp import Client
from fastmcp.client.elicitation import ElicitResult
from fastmcp.exceptions import ToolError
from pydantic import SecretStr

from pangea_mcp.config import Settings
from pangea_mcp.server import build_server
from pangea_mcp.services.vault import ALGORITHMS
from tests import spec
from tests.conftest import make_settings
from tests.fake_pangea import VAULT_ITEM_ID, VAULT_TOKEN, FakePangea

SECRET_ID = "pvi_" + "c" * 32
KEY_ID = "pvi_" + "d" * 32
CANARY = "canary-secret-value-7f3a9c"
CANARY_TOKEN = "pts_" + "k" * 32


def secret_item(item_id: str = SECRET_ID) -> dict[str, Any]:
    return {
        "id": item_id,
        "type": "secret",
        "name": "db-password",
        "folder": "/prod",
        "tags": ["db"],
        "enabled": True,
        "num_versions": 2,
        "created_at": "2025-01-01T00:00:00Z",
        "item_versions": [
            {"version": 2, "state": "active", "created_at": "2025-02-01T00:00:00Z", "secret": CANARY},
            {
                "version": 1,
                "state": "deactivated",
                "created_at": "2025-01-01T00:00:00Z",
                "secret": CANARY + "-v1",
            },
        ],
    }


def key_item() -> dict[str, Any]:
    return {
        "id": KEY_ID,
        "type": "symmetric_key",
        "name": "app-key",
        "folder": "/keys",
        "purpose": "encryption",
        "algorithm": "AES-GCM-256",
        "exportable": False,
        "num_versions": 1,
        "enabled": True,
        "created_at": "2025-01-01T00:00:00Z",
        "item_versions": [{"version": 1, "state": "active", "created_at": "2025-01-01T00:00:00Z"}],
    }


def writes(**extra: object) -> Settings:
    return make_settings(vault_writes=True, **extra)


def everything(result: Any) -> str:
    return json.dumps(result.structured_content) + "".join(getattr(c, "text", "") for c in result.content)


async def test_default_tools_are_read_only(settings: Settings, fake: FakePangea) -> None:
    async with Client(build_server(settings, transport=fake.transport)) as client:
        tools = {t.name: t for t in await client.list_tools()}
    assert "get_vault_item" in tools and "list_vault_items" in tools
    assert "generate_key" not in tools and "delete_vault_item" not in tools
    for name in ("get_vault_item", "list_vault_items"):
        annotations = tools[name].annotations
        assert annotations is not None and annotations.read_only_hint is True
        assert annotations.destructive_hint is False
    assert "never returned" in (tools["get_vault_item"].description or "")


async def test_get_returns_metadata_and_never_the_secret(
    settings: Settings, fake: FakePangea, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    fake.on("vault", "v2/get", result=secret_item())
    async with Client(build_server(settings, transport=fake.transport)) as client:
        tool = next(t for t in await client.list_tools() if t.name == "get_vault_item")
        result = await client.call_tool("get_vault_item", {"id": SECRET_ID})

    assert fake.body("vault", "v2/get") == {"id": SECRET_ID}
    data = result.structured_content
    assert data is not None
    jsonschema.validate(data, tool.output_schema)
    assert data["name"] == "db-password" and data["type"] == "secret" and data["folder"] == "/prod"
    assert [(v["version"], v["state"], v["value"]) for v in data["versions"]] == [
        (2, "active", None),
        (1, "deactivated", None),
    ]
    assert data["values_revealed"] is False
    assert CANARY not in everything(result)
    assert CANARY not in caplog.text


async def test_reveal_setting_returns_values_but_never_the_servers_own_token(fake: FakePangea) -> None:
    settings = make_settings(
        token=None, vault_token=SecretStr(VAULT_TOKEN), vault_item_id=VAULT_ITEM_ID, vault_reveal_values=True
    )
    fake.put_token_item(VAULT_ITEM_ID, next(iter(fake.service_tokens)))
    async with Client(build_server(settings, transport=fake.transport)) as client:
        tool = next(t for t in await client.list_tools() if t.name == "get_vault_item")
        fake.on("vault", "v2/get", result=secret_item())
        revealed = await client.call_tool("get_vault_item", {"id": SECRET_ID})
        own = await client.call_tool("get_vault_item", {"id": VAULT_ITEM_ID})

    assert "REVEAL" in (tool.description or "")
    assert revealed.structured_content is not None
    assert revealed.structured_content["versions"][0]["value"] == CANARY
    assert own.structured_content is not None and own.structured_content["values_revealed"] is False
    assert next(iter(fake.service_tokens)) not in everything(own)
    # Vault tools use the Vault-scoped token when one is configured.
    assert fake.calls("vault", "v2/get")[-1].headers["authorization"] == f"Bearer {VAULT_TOKEN}"


async def test_list_sends_the_filter_and_returns_metadata_only(settings: Settings, fake: FakePangea) -> None:
    fake.on("vault", "v2/list", result={"items": [secret_item(), key_item()], "last": "cursor-2"})
    args = {
        "filter": {"folder": "/prod", "name__contains": "db", "created_at__gt": "2024-01-01"},
        "size": 2,
        "order": "desc",
        "order_by": "created_at",
        "last": "cursor-1",
    }
    async with Client(build_server(settings, transport=fake.transport)) as client:
        tool = next(t for t in await client.list_tools() if t.name == "list_vault_items")
        result = await client.call_tool("list_vault_items", args)

    assert fake.body("vault", "v2/list") == args
    data = result.structured_content
    assert data is not None
    jsonschema.validate(data, tool.output_schema)
    assert [i["id"] for i in data["items"]] == [SECRET_ID, KEY_ID]
    assert data["count"] == 2 and data["last"] == "cursor-2"
    assert data["items"][1]["algorithm"] == "AES-GCM-256"
    assert CANARY not in everything(result)


async def test_list_without_arguments_sends_only_the_page_size(settings: Settings, fake: FakePangea) -> None:
    fake.on("vault", "v2/list", result={"items": []})
    async with Client(build_server(settings, transport=fake.transport)) as client:
        result = await client.call_tool("list_vault_items", {})
    assert fake.body("vault", "v2/list") == {"size": 50}
    assert result.structured_content == {
        "items": [],
        "count": 0,
        "last": None,
        "request_id": result.structured_content["request_id"],
    }  # type: ignore[index]


@pytest.mark.parametrize(
    ("tool", "args", "fragment"),
    [
        ("get_vault_item", {"id": "pvi_123"}, "id"),
        ("get_vault_item", {"id": "PVI_" + "a" * 32}, "id"),
        ("get_vault_item", {}, "id"),
        ("list_vault_items", {"size": 0}, "size"),
        ("list_vault_items", {"size": 101}, "size"),
        ("list_vault_items", {"order": "up"}, "order"),
        ("list_vault_items", {"order_by": "secret"}, "order_by"),
        ("list_vault_items", {"filter": {"folder; drop": "x"}}, "filter"),
        ("list_vault_items", {"filter": "folder=/"}, "filter"),
    ],
)
async def test_bad_arguments_name_the_argument(
    settings: Settings, fake: FakePangea, tool: str, args: dict[str, object], fragment: str
) -> None:
    async with Client(build_server(settings, transport=fake.transport)) as client:
        result = await client.call_tool(tool, args, raise_on_error=False)
    assert result.is_error
    assert f"- {fragment}" in result.content[0].text  # type: ignore[union-attr]
    assert fake.requests == []


async def test_vault_errors_reach_the_model(settings: Settings, fake: FakePangea) -> None:
    fake.on("vault", "v2/get", status="VaultItemNotFound", summary="Item not found")
    async with Client(build_server(settings, transport=fake.transport)) as client:
        with pytest.raises(ToolError, match="Item not found") as info:
            await client.call_tool("get_vault_item", {"id": SECRET_ID})
    assert "request_id: prq_" in str(info.value)


# -- writes ---------------------------------------------------------------------------------------


async def test_writes_setting_registers_honest_write_tools(fake: FakePangea) -> None:
    async with Client(build_server(writes(), transport=fake.transport)) as client:
        tools = {t.name: t for t in await client.list_tools()}
    delete = tools["delete_vault_item"].annotations
    generate = tools["generate_key"].annotations
    assert delete is not None and delete.destructive_hint is True and delete.read_only_hint is False
    assert generate is not None and generate.read_only_hint is False and generate.destructive_hint is False


async def test_generate_key_returns_metadata(fake: FakePangea) -> None:
    fake.on("vault", "v2/key/generate", result=key_item())
    args = {
        "type": "symmetric_key",
        "purpose": "encryption",
        "algorithm": "AES-GCM-256",
        "name": "app-key",
        "folder": "/keys",
    }
    async with Client(build_server(writes(), transport=fake.transport)) as client:
        tool = next(t for t in await client.list_tools() if t.name == "generate_key")
        result = await client.call_tool("generate_key", args)
    assert fake.body("vault", "v2/key/generate") == args
    assert result.structured_content is not None
    jsonschema.validate(result.structured_content, tool.output_schema)
    assert result.structured_content["id"] == KEY_ID
    assert result.structured_content["algorithm"] == "AES-GCM-256"


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        ({"type": "symmetric_key", "purpose": "signing", "algorithm": "ED25519", "name": "k"}, "- purpose"),
        (
            {"type": "asymmetric_key", "purpose": "fpe", "algorithm": "AES-FF3-1-128-BETA", "name": "k"},
            "- purpose",
        ),
        (
            {"type": "asymmetric_key", "purpose": "signing", "algorithm": "AES-GCM-256", "name": "k"},
            "- algorithm",
        ),
        ({"type": "hmac_key", "purpose": "jwt", "algorithm": "HS256", "name": "k"}, "- type"),
        ({"type": "symmetric_key", "purpose": "jwt", "algorithm": "HS256", "name": ""}, "- name"),
        (
            {"type": "symmetric_key", "purpose": "jwt", "algorithm": "HS256", "name": "k", "folder": "a;b"},
            "- folder",
        ),
    ],
)
async def test_generate_key_rejects_bad_combinations(
    fake: FakePangea, args: dict[str, object], fragment: str
) -> None:
    async with Client(build_server(writes(), transport=fake.transport)) as client:
        result = await client.call_tool("generate_key", args, raise_on_error=False)
        assert result.is_error
        assert fragment in result.content[0].text  # type: ignore[union-attr]
        fake.on("vault", "v2/key/generate", result=key_item())
        ok = await client.call_tool(
            "generate_key", {"type": "symmetric_key", "purpose": "jwt", "algorithm": "HS256", "name": "k"}
        )
    assert ok.structured_content is not None
    assert len(fake.calls("vault", "v2/key/generate")) == 1


def test_algorithm_table_matches_the_official_spec() -> None:
    loaded = spec._load("vault")
    assert loaded is not None
    schemas = loaded[0]["components"]["schemas"]
    for (kind, purpose), algorithms in ALGORITHMS.items():
        name = f"vault-{kind.replace('_key', '')}-key-{purpose}-algorithm"
        assert list(algorithms) == schemas[name]["enum"], name
    assert set(ALGORITHMS) == {
        ("asymmetric_key", p) for p in schemas["vault-asymmetric-key-purpose"]["enum"]
    } | {("symmetric_key", p) for p in schemas["vault-symmetric-key-purpose"]["enum"]}


class Answer:
    """An elicitation handler that records the question and answers as told."""

    def __init__(self, reply: object) -> None:
        self.reply = reply
        self.messages: list[str] = []

    async def __call__(self, message: str, response_type: Any, params: Any, context: Any) -> object:
        self.messages.append(message)
        return self.reply


@pytest.mark.parametrize(
    ("reply", "deleted"),
    [
        (True, True),
        (False, False),
        (ElicitResult(action="decline"), False),
        (ElicitResult(action="cancel"), False),
    ],
)
async def test_delete_needs_the_users_confirmation(fake: FakePangea, reply: object, deleted: bool) -> None:
    # 2026-07-28 sessions: the call returns the question, the client asks, then calls again (two reads).
    fake.on("vault", "v2/get", result=secret_item(), times=2)
    fake.on("vault", "v2/delete", result={"id": SECRET_ID})
    answer = Answer(reply)
    async with Client(build_server(writes(), transport=fake.transport), elicitation_handler=answer) as client:
        result = await client.call_tool("delete_vault_item", {"id": SECRET_ID}, raise_on_error=False)

    assert len(answer.messages) == 1
    assert SECRET_ID in answer.messages[0] and "db-password" in answer.messages[0]
    assert CANARY not in answer.messages[0]
    if deleted:
        assert not result.is_error
        assert result.structured_content is not None and result.structured_content["deleted"] is True
        assert fake.body("vault", "v2/delete") == {"id": SECRET_ID}
    else:
        assert result.is_error
        assert "Not deleted" in result.content[0].text  # type: ignore[union-attr]
        assert fake.calls("vault", "v2/delete") == []
        fake._scripts.clear()


@pytest.mark.parametrize(
    ("reply", "deleted"), [(True, True), (False, False), (ElicitResult(action="decline"), False)]
)
async def test_delete_confirmation_on_handshake_era_sessions(
    fake: FakePangea, reply: object, deleted: bool
) -> None:
    """Older (initialize handshake) sessions get a server-initiated elicitation request instead."""
    fake.on("vault", "v2/get", result=secret_item())
    fake.on("vault", "v2/delete", result={"id": SECRET_ID})
    answer = Answer(reply)
    server = build_server(writes(), transport=fake.transport)
    async with Client(server, elicitation_handler=answer, mode="legacy") as client:
        result = await client.call_tool("delete_vault_item", {"id": SECRET_ID}, raise_on_error=False)
    assert len(answer.messages) == 1 and SECRET_ID in answer.messages[0]
    assert result.is_error is not deleted
    assert len(fake.calls("vault", "v2/delete")) == int(deleted)
    fake._scripts.clear()


async def test_delete_is_refused_when_the_client_cannot_confirm(fake: FakePangea) -> None:
    fake.on("vault", "v2/get", result=secret_item())
    async with Client(build_server(writes(), transport=fake.transport)) as client:
        with pytest.raises(ToolError, match="cannot ask"):
            await client.call_tool("delete_vault_item", {"id": SECRET_ID})
    assert fake.calls("vault", "v2/delete") == []


async def test_the_servers_own_token_item_is_never_deleted(fake: FakePangea) -> None:
    settings = writes(token=None, vault_token=SecretStr(VAULT_TOKEN), vault_item_id=VAULT_ITEM_ID)
    answer = Answer(True)
    async with Client(build_server(settings, transport=fake.transport), elicitation_handler=answer) as client:
        with pytest.raises(ToolError, match="own service token"):
            await client.call_tool("delete_vault_item", {"id": VAULT_ITEM_ID})
    assert answer.messages == []
    assert fake.calls("vault", "v2/delete") == []


async def test_an_item_holding_the_static_service_token_is_never_revealed_or_deleted(
    fake: FakePangea,
) -> None:
    """PANGEA_TOKEN (no Vault settings) may live in Vault too: its value is recognised, not its id."""
    token = next(iter(fake.service_tokens))
    holder = "pvi_" + "e" * 32
    fake.put_token_item(holder, token)
    answer = Answer(True)
    settings = writes(vault_reveal_values=True)
    async with Client(build_server(settings, transport=fake.transport), elicitation_handler=answer) as client:
        shown = await client.call_tool("get_vault_item", {"id": holder})
        with pytest.raises(ToolError, match="own credentials"):
            await client.call_tool("delete_vault_item", {"id": holder})
    assert shown.structured_content is not None and shown.structured_content["values_revealed"] is False
    assert token not in everything(shown)
    assert answer.messages == []
    assert fake.calls("vault", "v2/delete") == []

"""Auth layer: the service token from Vault at startup, re-read on a 401 (rotation), never leaked."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

import pytest
from fastmcp import Client
from fastmcp.exceptions import ToolError
from pydantic import SecretStr

from pangea_mcp.config import Settings
from pangea_mcp.errors import StartupError
from pangea_mcp.server import build_server
from tests.conftest import make_settings
from tests.fake_pangea import SERVICE_TOKEN, VAULT_ITEM_ID, VAULT_TOKEN, FakePangea

IPS = {"ipAddresses": ["8.8.8.8"]}


def _auth_headers(fake: FakePangea, service: str) -> list[str]:
    return [r.headers.get("authorization", "") for r in fake.requests if r.service == service]


async def test_token_is_read_from_vault_once_at_startup(fake: FakePangea, vault_settings: Settings) -> None:
    async with Client(build_server(vault_settings, transport=fake.transport)) as client:
        assert len(fake.calls("vault", "v2/get")) == 1  # fetched in the lifespan, before any call
        await client.call_tool("is_vpn", IPS)
        await client.call_tool("is_proxy", IPS)

    assert fake.body("vault", "v2/get") == {"id": VAULT_ITEM_ID}
    assert _auth_headers(fake, "vault") == [f"Bearer {VAULT_TOKEN}"]
    assert _auth_headers(fake, "ip-intel") == [f"Bearer {SERVICE_TOKEN}"] * 2
    assert len(fake.calls("vault", "v2/get")) == 1


async def test_rotation_is_picked_up_after_a_401(fake: FakePangea, vault_settings: Settings) -> None:
    async with Client(build_server(vault_settings, transport=fake.transport)) as client:
        await client.call_tool("is_vpn", IPS)
        new_token = fake.rotate_token()
        result = await client.call_tool("is_vpn", IPS)

    assert (
        result.structured_content is not None and result.structured_content["results"][0]["ip"] == "8.8.8.8"
    )
    assert len(fake.calls("vault", "v2/get")) == 2
    assert _auth_headers(fake, "ip-intel") == [f"Bearer {SERVICE_TOKEN}"] * 2 + [f"Bearer {new_token}"]


async def test_401_with_an_unrotated_vault_token_is_an_auth_error(
    fake: FakePangea, vault_settings: Settings
) -> None:
    fake.on("ip-intel", "v2/vpn", status="Unauthorized", times=5)
    async with Client(build_server(vault_settings, transport=fake.transport)) as client:
        with pytest.raises(ToolError, match="token was rejected") as info:
            await client.call_tool("is_vpn", IPS)
        # The server re-read Vault once, got the same token, and did not loop.
        assert len(fake.calls("vault", "v2/get")) == 2
        assert len(fake.calls("ip-intel", "v2/vpn")) == 1
        assert "request_id: prq_" in str(info.value)
        # ...and keeps serving.
        fake.on("ip-intel", "v2/vpn", result={"data": {"8.8.8.8": {"is_vpn": False}}})
        fake._scripts[("ip-intel", "v2/vpn")].rotate(1)
        ok = await client.call_tool("is_vpn", IPS)
    assert ok.structured_content is not None


async def test_401_with_a_static_token_is_an_auth_error_without_vault(fake: FakePangea) -> None:
    fake.on("ip-intel", "v2/reputation", status="Unauthorized")
    async with Client(build_server(make_settings(), transport=fake.transport)) as client:
        with pytest.raises(ToolError, match="PANGEA_TOKEN"):
            await client.call_tool("lookup_ip_address_reputation", IPS)
    assert fake.calls("vault", "v2/get") == []


async def test_missing_vault_item_stops_startup_naming_the_item(fake: FakePangea) -> None:
    other = "pvi_" + "b" * 32
    settings = make_settings(token=None, vault_token=SecretStr(VAULT_TOKEN), vault_item_id=other)
    with pytest.raises(Exception) as info:  # noqa: PT011 - FastMCP may wrap it in an ExceptionGroup
        async with Client(build_server(settings, transport=fake.transport)):
            pass
    startup = _startup_error(info.value)
    assert other in str(startup) and "not found" in str(startup)
    assert VAULT_TOKEN not in str(startup)


async def test_rejected_vault_token_stops_startup(fake: FakePangea) -> None:
    wrong = "pts_" + "w" * 32
    settings = make_settings(token=None, vault_token=SecretStr(wrong), vault_item_id=VAULT_ITEM_ID)
    with pytest.raises(Exception) as info:  # noqa: PT011
        async with Client(build_server(settings, transport=fake.transport)):
            pass
    startup = _startup_error(info.value)
    assert "PANGEA_VAULT_TOKEN" in str(startup) and VAULT_ITEM_ID in str(startup)
    assert wrong not in str(startup)


async def test_unreachable_vault_stops_startup(fake: FakePangea) -> None:
    import httpx

    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    settings = make_settings(
        token=None, vault_token=SecretStr(VAULT_TOKEN), vault_item_id=VAULT_ITEM_ID, request_retries=0
    )
    with pytest.raises(Exception) as info:  # noqa: PT011
        async with Client(build_server(settings, transport=httpx.MockTransport(refuse))):
            pass
    startup = _startup_error(info.value)
    assert "unreachable" in str(startup) and VAULT_ITEM_ID in str(startup)


async def test_vault_item_of_the_wrong_type_stops_startup(fake: FakePangea, vault_settings: Settings) -> None:
    fake.vault_items[VAULT_ITEM_ID] = {"id": VAULT_ITEM_ID, "type": "folder", "name": "x", "folder": "/"}
    with pytest.raises(Exception) as info:  # noqa: PT011
        async with Client(build_server(vault_settings, transport=fake.transport)):
            pass
    assert "not a pangea_token" in str(_startup_error(info.value))


async def test_token_is_refreshed_after_next_rotation(
    fake: FakePangea, vault_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    soon = datetime.now(UTC) + timedelta(minutes=5)
    fake.put_token_item(VAULT_ITEM_ID, SERVICE_TOKEN, next_rotation=soon.isoformat())
    async with Client(build_server(vault_settings, transport=fake.transport)) as client:
        await client.call_tool("is_vpn", IPS)
        new_token = fake.rotate_token()
        later = soon + timedelta(minutes=1)
        monkeypatch.setattr("pangea_mcp.vault._now", lambda: later)
        await client.call_tool("is_vpn", IPS)
    # Re-read proactively once the rotation was due, so the call went out with the new token at once.
    assert _auth_headers(fake, "ip-intel") == [f"Bearer {SERVICE_TOKEN}", f"Bearer {new_token}"]
    assert len(fake.calls("vault", "v2/get")) == 2


async def test_no_token_value_reaches_logs(
    fake: FakePangea, vault_settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    from pangea_mcp.logs import scrub

    caplog.set_level(logging.DEBUG)
    async with Client(build_server(vault_settings, transport=fake.transport)) as client:
        fake.rotate_token()
        await client.call_tool("is_vpn", IPS)  # 401, Vault re-read, retried
        fake.on("ip-intel", "v2/vpn", status="Unauthorized")
        await client.call_tool("is_vpn", IPS, raise_on_error=False)
    text = "\n".join(scrub(r.getMessage()) for r in caplog.records)
    for secret in [VAULT_TOKEN, SERVICE_TOKEN, *fake.service_tokens]:
        assert secret not in text
        assert secret not in "\n".join(r.getMessage() for r in caplog.records)


def _startup_error(exc: BaseException) -> StartupError:
    stack = [exc]
    while stack:
        current = stack.pop()
        if isinstance(current, StartupError):
            return current
        if isinstance(current, BaseExceptionGroup):
            stack.extend(current.exceptions)
        if current.__cause__ is not None:
            stack.append(current.__cause__)
        if current.__context__ is not None:
            stack.append(current.__context__)
    raise AssertionError(f"no StartupError in {exc!r}")


async def test_a_stale_next_rotation_does_not_reread_vault_on_every_call(
    fake: FakePangea, vault_settings: Settings
) -> None:
    fake.put_token_item(VAULT_ITEM_ID, SERVICE_TOKEN, next_rotation="2020-01-01T00:00:00Z")
    async with Client(build_server(vault_settings, transport=fake.transport)) as client:
        for _ in range(5):
            await client.call_tool("is_vpn", IPS)
    # Startup read only: the rotation date had passed already, so the next check is backed off.
    assert len(fake.calls("vault", "v2/get")) == 1

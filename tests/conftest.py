"""Shared fixtures: settings pointing at the fake, and the fake itself (which must see no spec violation)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from pydantic import SecretStr

from pangea_mcp.config import Settings
from tests.fake_pangea import SERVICE_TOKEN, VAULT_ITEM_ID, VAULT_TOKEN, FakePangea

FAKE_TEMPLATE = "http://pangea.test/{SERVICE_NAME}"


def make_settings(**overrides: object) -> Settings:
    values: dict[str, object] = {
        "token": SecretStr(SERVICE_TOKEN),
        "base_url_template": FAKE_TEMPLATE,
        "retry_backoff": 0.0,
        "poll_interval": 0.0,
        "request_timeout": 5.0,
        # The AI Guard middleware is on by default with a token; guard tests turn it on explicitly.
        "guard": False,
        # The intel cache would answer repeated lookups without a request; tests/test_cache.py turns it on.
        "cache_ttl": 0,
    }
    values.update(overrides)
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


@pytest.fixture
def settings() -> Settings:
    return make_settings()


@pytest.fixture
def vault_settings() -> Settings:
    return make_settings(token=None, vault_token=SecretStr(VAULT_TOKEN), vault_item_id=VAULT_ITEM_ID)


@pytest.fixture
def fake() -> Iterator[FakePangea]:
    fake = FakePangea()
    yield fake
    assert fake.violations == [], "requests or scripted replies broke Pangea's spec"


@pytest.fixture(autouse=True)
def _no_pangea_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Settings built in tests never pick up a developer's real PANGEA_* variables."""
    import os

    for name in list(os.environ):
        if name.startswith("PANGEA_") and name != "PANGEA_MCP_SHARED_DIR":
            monkeypatch.delenv(name)

"""Auth layer: the service token, static (PANGEA_TOKEN) or read from Vault and re-read on rotation."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

import anyio
from pydantic import Field, SecretStr

from pangea_mcp.client import PangeaClient
from pangea_mcp.config import Settings
from pangea_mcp.errors import (
    Forbidden,
    NotFound,
    PangeaAPIError,
    PangeaError,
    PangeaPending,
    PangeaUnavailable,
    StartupError,
    Unauthorized,
)
from pangea_mcp.logs import SECRETS
from pangea_mcp.models import PangeaRequest, PangeaResult

log = logging.getLogger(__name__)

SERVICE = "vault"
#: Re-read the item this long after its announced next_rotation (Pangea rotates asynchronously).
_ROTATION_SLACK = timedelta(seconds=30)
#: When the item's next_rotation has passed but the token did not change yet, re-check after this,
#: doubling up to _STALE_MAX, rather than on every call.
_STALE_FIRST = timedelta(seconds=60)
_STALE_MAX = timedelta(hours=1)


def _now() -> datetime:
    return datetime.now(UTC)


class _VaultGet(PangeaRequest):
    # Vault /v2/get: without `version` only the current version is returned.
    id: str


class _TokenVersion(PangeaResult):
    version: int | None = None
    state: str | None = None
    token: SecretStr | None = None


class _VaultItem(PangeaResult):
    id: str | None = None
    type: str | None = None
    item_versions: list[_TokenVersion] = Field(default_factory=list)
    next_rotation: datetime | None = None


class ServiceToken:
    """TokenSource for PangeaClient. Holds the token in memory only; never logs or returns it."""

    def __init__(self, settings: Settings, client: PangeaClient) -> None:
        self._settings = settings
        self._client = client
        self._token: str | None = None
        self._next_check: datetime | None = None
        self._stale_backoff = _STALE_FIRST
        self._lock = anyio.Lock()
        SECRETS.add(*settings.secret_values())

    @property
    def from_vault(self) -> bool:
        return self._settings.vault_token is not None

    @property
    def loaded(self) -> bool:
        """Whether a service token is in memory (the HTTP server is not ready before)."""
        return self._token is not None

    async def start(self) -> None:
        """Called once from the server lifespan. Raises StartupError with one clear sentence."""
        if self.from_vault:
            try:
                await self._fetch()
            except PangeaError as exc:
                raise StartupError(self._explain(exc)) from None
            log.info("service token loaded from Vault item %s", self._settings.vault_item_id)
        elif self._settings.token is not None:
            self._token = self._settings.token.get_secret_value()
        else:
            raise StartupError(
                "no Pangea credentials: set PANGEA_TOKEN, or PANGEA_VAULT_TOKEN and PANGEA_VAULT_ITEM_ID"
            )

    async def current(self) -> str:
        if self._token is None:
            await self.start()
        elif self._next_check is not None and _now() > self._next_check:
            await self.refresh(self._token)
        if self._token is None:
            raise StartupError("the service token is not loaded")
        return self._token

    async def refresh(self, rejected: str) -> bool:
        if not self.from_vault:
            return False
        async with self._lock:
            if self._token is not None and self._token != rejected:
                return True  # another call already swapped in the new token
            try:
                await self._fetch()
            except PangeaError as exc:
                # Keep the old token: after a rotation it stays valid for the grace period.
                log.warning("could not re-read the service token from Vault: %s", self._explain(exc))
                self._next_check = None
                return False
        changed = self._token != rejected
        log.info("service token re-read from Vault (%s)", "rotated" if changed else "unchanged")
        return changed

    async def _fetch(self) -> None:
        item_id, vault_token = self._settings.vault_item_id, self._settings.vault_token
        if item_id is None or vault_token is None:
            raise StartupError("PANGEA_VAULT_TOKEN and PANGEA_VAULT_ITEM_ID are both required")
        request = _VaultGet(id=item_id)
        response = await self._client.call(SERVICE, "v2/get", request, _VaultItem, token=vault_token)
        item = response.result
        if item.type != "pangea_token":
            raise StartupError(
                f"Vault item {item_id} is a {item.type or 'item of unknown type'}, not a pangea_token; "
                "point PANGEA_VAULT_ITEM_ID at the item that holds the service token"
            )
        versions = [v for v in item.item_versions if v.token is not None]
        active = [v for v in versions if v.state in (None, "active")]
        chosen = max(active or versions, key=lambda v: v.version or 0, default=None)
        if chosen is None or chosen.token is None:
            raise StartupError(f"Vault item {item_id} has no token version to use")
        value = chosen.token.get_secret_value()
        SECRETS.add(value)
        self._token = value
        self._schedule(item.next_rotation)

    def _schedule(self, next_rotation: datetime | None) -> None:
        """When to re-read the item proactively: after its next rotation, or later if that has passed."""
        now = _now()
        if next_rotation is None:
            self._next_check = None
        elif next_rotation + _ROTATION_SLACK > now:
            self._next_check = next_rotation + _ROTATION_SLACK
            self._stale_backoff = _STALE_FIRST
        else:
            self._next_check = now + self._stale_backoff
            self._stale_backoff = min(self._stale_backoff * 2, _STALE_MAX)

    def _explain(self, exc: PangeaError) -> str:
        item = self._settings.vault_item_id
        url = self._settings.service_url(SERVICE, "v2/get")
        if isinstance(exc, StartupError):
            return str(exc)
        if isinstance(exc, NotFound):
            return f"Vault item {item} was not found; check PANGEA_VAULT_ITEM_ID"
        if isinstance(exc, Unauthorized):
            return f"Vault rejected PANGEA_VAULT_TOKEN while reading item {item}; check the token"
        if isinstance(exc, Forbidden):
            return f"PANGEA_VAULT_TOKEN may not read Vault item {item}; grant it Vault read access"
        if isinstance(exc, PangeaUnavailable | PangeaPending):
            return f"Vault is unreachable at {url} while reading item {item}: {exc.__str__()}"
        if isinstance(exc, PangeaAPIError):
            rid = f" (request_id {exc.request_id})" if exc.request_id else ""
            return f"Vault refused to read item {item}: {exc.status} {exc.summary}{rid}"
        return f"could not read Vault item {item}: {exc}"

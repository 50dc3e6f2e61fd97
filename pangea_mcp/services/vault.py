"""Vault: item metadata, listing, key generation and confirmed deletion, without leaking secret values."""

from __future__ import annotations

import logging
from typing import Annotated, Any, Literal

from fastmcp import Context, FastMCP
from fastmcp.exceptions import ToolError
from mcp.types import (
    ElicitRequest,
    ElicitRequestFormParams,
    ElicitResult,
    InputRequiredResult,
    ToolAnnotations,
)
from mcp_types.version import MODERN_PROTOCOL_VERSIONS
from pydantic import Field, SecretStr

from pangea_mcp.backends import Backends
from pangea_mcp.errors import tool_errors
from pangea_mcp.logs import SECRETS
from pangea_mcp.models import PangeaRequest, PangeaResult

log = logging.getLogger(__name__)

SERVICE = "vault"
_READ = ToolAnnotations(
    read_only_hint=True, destructive_hint=False, idempotent_hint=True, open_world_hint=False
)
_GENERATE = ToolAnnotations(
    read_only_hint=False, destructive_hint=False, idempotent_hint=False, open_world_hint=False
)
_DELETE = ToolAnnotations(
    read_only_hint=False, destructive_hint=True, idempotent_hint=True, open_world_hint=False
)

ItemId = Annotated[
    str, Field(pattern=r"^pvi_[a-z2-7]{32}$", description="Vault item id, pvi_ + 32 characters")
]
Folder = Annotated[
    str, Field(max_length=512, pattern=r"^[0-9a-zA-Z_.\-/ ]*$", description="Folder, e.g. /keys")
]
OrderBy = Literal[
    "id", "type", "created_at", "algorithm", "purpose", "expiration", "last_rotated", "next_rotation",
    "name", "folder", "item_state",
]  # fmt: skip

#: Vault's algorithm enums per (type, purpose), from the official spec (vault-*-algorithm schemas).
ALGORITHMS: dict[tuple[str, str], tuple[str, ...]] = {
    ("asymmetric_key", "signing"): (
        "ED25519", "RSA-PKCS1V15-2048-SHA256", "ES256", "ES384", "ES512", "ES256K", "RSA-PSS-2048-SHA256",
        "RSA-PSS-3072-SHA256", "RSA-PSS-4096-SHA256", "RSA-PSS-4096-SHA512", "ED25519-DILITHIUM2-BETA",
        "ED448-DILITHIUM3-BETA", "SPHINCSPLUS-128F-SHAKE256-SIMPLE-BETA",
        "SPHINCSPLUS-128F-SHAKE256-ROBUST-BETA",
        "SPHINCSPLUS-128F-SHA256-SIMPLE-BETA", "SPHINCSPLUS-128F-SHA256-ROBUST-BETA",
        "SPHINCSPLUS-192F-SHAKE256-SIMPLE-BETA", "SPHINCSPLUS-192F-SHAKE256-ROBUST-BETA",
        "SPHINCSPLUS-192F-SHA256-SIMPLE-BETA", "SPHINCSPLUS-192F-SHA256-ROBUST-BETA",
        "SPHINCSPLUS-256F-SHAKE256-SIMPLE-BETA", "SPHINCSPLUS-256F-SHAKE256-ROBUST-BETA",
        "SPHINCSPLUS-256F-SHA256-SIMPLE-BETA", "SPHINCSPLUS-256F-SHA256-ROBUST-BETA",
        "FALCON-1024-BETA",
    ),
    ("asymmetric_key", "encryption"): tuple(
        f"RSA-OAEP-{bits}-{sha}" for bits in (2048, 3072, 4096) for sha in ("SHA1", "SHA256", "SHA512")
    ),
    ("asymmetric_key", "jwt"): ("ES256", "ES384", "ES512"),
    ("asymmetric_key", "pki"): (
        "ED25519", "RSA-2048-SHA256", "RSA-3072-SHA256", "RSA-4096-SHA256", "RSA-PSS-2048-SHA256",
        "RSA-PSS-3072-SHA256", "RSA-PSS-4096-SHA256", "RSA-PSS-4096-SHA512", "ECDSA-SHA256", "ECDSA-SHA384",
        "ECDSA-SHA512",
    ),
    ("symmetric_key", "encryption"): (
        "AES-CFB-128", "AES-CFB-256", "AES-GCM-256", "AES-CBC-128", "AES-CBC-256",
    ),
    ("symmetric_key", "jwt"): ("HS256", "HS384", "HS512"),
    ("symmetric_key", "fpe"): ("AES-FF3-1-128-BETA", "AES-FF3-1-256-BETA"),
}  # fmt: skip
_VALUE_FIELDS = ("secret", "token", "client_secret")


class _Get(PangeaRequest):
    id: str


class _List(PangeaRequest):
    filter: dict[str, str] | None = None
    size: int | None = None
    order: str | None = None
    order_by: str | None = None
    last: str | None = None


class _Generate(PangeaRequest):
    type: str
    purpose: str
    algorithm: str
    name: str
    folder: str | None = None


class _Delete(PangeaRequest):
    id: str


class _VersionFields(PangeaResult):
    """A version's metadata, as Vault sends it and as the tools return it."""

    version: int | None = None
    state: str | None = Field(
        default=None, description="active, deactivated, suspended, compromised or destroyed"
    )
    created_at: str | None = None
    rotated_at: str | None = None
    destroyed_at: str | None = None
    public_key: str | None = Field(
        default=None, description="PEM public key (asymmetric keys only; not secret)"
    )


class _RawVersion(_VersionFields):
    # Value fields are held as secrets; they leave only through `reveal`.
    secret: SecretStr | None = None
    token: SecretStr | None = None
    client_secret: SecretStr | None = None


class _ItemFields(PangeaResult):
    """An item's metadata, as Vault sends it and as the tools return it."""

    id: str | None = None
    type: str | None = Field(
        default=None, description="secret, pangea_token, symmetric_key, asymmetric_key, ..."
    )
    name: str | None = None
    folder: str | None = None
    purpose: str | None = None
    algorithm: str | None = None
    enabled: bool | None = None
    exportable: bool | None = None
    num_versions: int | None = None
    tags: list[str] = Field(default_factory=list)
    created_at: str | None = None
    last_rotated: str | None = None
    next_rotation: str | None = None
    disabled_at: str | None = None
    rotation_frequency: str | None = None
    rotation_state: str | None = None
    rotation_grace_period: str | None = None


class _RawItem(_ItemFields):
    item_versions: list[_RawVersion] = Field(default_factory=list)


class _RawList(PangeaResult):
    items: list[_RawItem] = Field(default_factory=list)
    last: str | None = None


class _Deleted(PangeaResult):
    id: str | None = None


class VaultItemVersion(_VersionFields):
    value: str | None = Field(
        default=None, description="Secret or token value; only when the server allows revealing values"
    )


class VaultItem(_ItemFields):
    versions: list[VaultItemVersion] = Field(default_factory=list)


class VaultItemReport(VaultItem):
    values_revealed: bool = Field(description="Whether version values are included")
    request_id: str | None = None


class VaultListReport(PangeaResult):
    items: list[VaultItem] = Field(description="Item metadata; never secret values")
    count: int
    last: str | None = Field(
        default=None, description="Pass as `last` to get the next page; null on the last page"
    )
    request_id: str | None = None


class VaultDeleteReport(PangeaResult):
    id: str
    deleted: bool
    request_id: str | None = None


def _holds_own_secret(raw: _RawItem) -> bool:
    """Whether any version holds a secret of this server's own (its service or Vault token)."""
    return any(
        getattr(v, f) is not None and getattr(v, f).get_secret_value() in SECRETS
        for v in raw.item_versions
        for f in _VALUE_FIELDS
    )


def _metadata(raw: _RawItem, *, reveal: bool = False) -> dict[str, Any]:
    versions = []
    for v in raw.item_versions:
        value = next((getattr(v, f) for f in _VALUE_FIELDS if getattr(v, f) is not None), None)
        versions.append(
            VaultItemVersion(
                **v.model_dump(include=set(_VersionFields.model_fields)),
                value=value.get_secret_value() if (reveal and value is not None) else None,
            )
        )
    return {**raw.model_dump(exclude={"item_versions"}), "versions": versions}


def register(mcp: FastMCP, backends: Backends) -> None:
    pangea = backends.pangea
    settings = pangea.settings
    # Vault calls use the Vault-scoped token when one is configured, else the service token.
    token = settings.vault_token
    own_item = settings.vault_item_id

    async def _get(item_id: str) -> tuple[_RawItem, str | None]:
        response = await pangea.call(SERVICE, "v2/get", _Get(id=item_id), _RawItem, token=token)
        return response.result, response.request_id

    reveal = settings.vault_reveal_values
    get_doc = (
        "Return a Vault item's metadata: type, name, folder, purpose, algorithm, state, versions and "
        "rotation dates.\n\n"
        + (
            "This server is configured to REVEAL secret and token values: each version's `value` holds the "
            "secret itself. Only request it when the user needs the value, and never repeat it needlessly "
            "(this server's own token is never revealed)."
            if reveal
            else "Secret, token and key values are never returned (each version's `value` is null)."
        )
    )

    @mcp.tool(
        name="get_vault_item", title="Vault item", description=get_doc, annotations=_READ, tags={SERVICE}
    )
    async def get_vault_item(id: ItemId) -> VaultItemReport:
        with tool_errors():
            raw, request_id = await _get(id)
        # Never this server's own credentials, whichever item holds them (PANGEA_TOKEN may live in Vault too).
        allowed = reveal and id != own_item and not _holds_own_secret(raw)
        return VaultItemReport(
            **_metadata(raw, reveal=allowed), values_revealed=allowed, request_id=request_id
        )

    @mcp.tool(name="list_vault_items", title="List Vault items", annotations=_READ, tags={SERVICE})
    async def list_vault_items(
        filter: Annotated[
            dict[str, str] | None,
            Field(
                description="Vault list filter, field (optionally with an operator suffix) to value, e.g. "
                '{"folder": "/keys", "type": "symmetric_key", "name__contains": "prod", '
                '"created_at__gt": "2024-01-01"}',
            ),
        ] = None,
        size: Annotated[int, Field(ge=1, le=100, description="Items per page (1-100)")] = 50,
        order: Literal["asc", "desc"] | None = None,
        order_by: OrderBy | None = None,
        last: Annotated[
            str | None, Field(max_length=1024, description="The `last` cursor of the previous page")
        ] = None,
    ) -> VaultListReport:
        """Return the metadata of Vault items matching a filter, one page at a time (never secret values).

        Use `filter` to narrow by folder, type, name, tags or dates; an empty `items` list means nothing
        matched. When `last` comes back non-null, call again with it to get the next page.
        """
        if filter is not None:
            bad = [key for key in filter if not key.replace("__", "_").replace("_", "").isalnum()]
            if bad:
                raise ToolError(
                    f"Invalid arguments for list_vault_items:\n- filter: {bad[0]!r} is not a Vault filter "
                    "field; use names like folder, type, name, tags, created_at, optionally with "
                    "__contains, __gt, __lt ..."
                )
        body = _List(filter=filter or None, size=size, order=order, order_by=order_by, last=last)
        with tool_errors():
            response = await pangea.call(SERVICE, "v2/list", body, _RawList, token=token)
        items = [VaultItem(**_metadata(raw)) for raw in response.result.items]
        return VaultListReport(
            items=items, count=len(items), last=response.result.last or None, request_id=response.request_id
        )

    if not settings.vault_writes:
        return

    @mcp.tool(name="generate_key", title="Generate a Vault key", annotations=_GENERATE, tags={SERVICE})
    async def generate_key(
        type: Literal["asymmetric_key", "symmetric_key"],
        purpose: Annotated[
            Literal["signing", "encryption", "jwt", "pki", "fpe"],
            Field(description="asymmetric: signing, encryption, jwt, pki; symmetric: encryption, jwt, fpe"),
        ],
        algorithm: Annotated[
            str, Field(min_length=1, max_length=64, description="e.g. ED25519, AES-GCM-256")
        ],
        name: Annotated[str, Field(min_length=1, max_length=256, description="Name of the new key")],
        folder: Folder | None = None,
    ) -> VaultItemReport:
        """Create a new key in Vault and return its metadata (never key material).

        Only use it when the user asked for a new key. The algorithm must fit the type and purpose;
        an unsupported combination is rejected with the list of valid algorithms.
        """
        allowed = ALGORITHMS.get((type, purpose))
        if allowed is None:
            purposes = sorted(p for t, p in ALGORITHMS if t == type)
            raise ToolError(
                f"Invalid arguments for generate_key:\n- purpose: {purpose!r} is not valid for {type}; "
                f"choose one of {', '.join(purposes)}"
            )
        if algorithm not in allowed:
            raise ToolError(
                f"Invalid arguments for generate_key:\n- algorithm: {algorithm!r} is not valid for a "
                f"{purpose} {type}; choose one of {', '.join(allowed)}"
            )
        body = _Generate(type=type, purpose=purpose, algorithm=algorithm, name=name, folder=folder)
        with tool_errors():
            response = await pangea.call(
                SERVICE, "v2/key/generate", body, _RawItem, token=token, idempotent=False
            )
        return VaultItemReport(
            **_metadata(response.result), values_revealed=False, request_id=response.request_id
        )

    @mcp.tool(name="delete_vault_item", title="Delete a Vault item", annotations=_DELETE, tags={SERVICE})
    async def delete_vault_item(id: ItemId, ctx: Context) -> VaultDeleteReport | InputRequiredResult:
        """Delete a Vault item permanently, after the user confirms it in their MCP client.

        The user is asked to confirm; if they decline, or the client cannot ask them, nothing is deleted
        and an error says why. The item holding this server's own service token can never be deleted.
        """
        if own_item is not None and id == own_item:
            raise ToolError(
                f"Refused: Vault item {id} holds this server's own service token and cannot be deleted here."
            )
        with tool_errors():
            raw, _ = await _get(id)
        if _holds_own_secret(raw):
            raise ToolError(
                f"Refused: Vault item {id} holds this server's own credentials and cannot be deleted here."
            )
        label = f"{raw.type or 'item'} {raw.name or ''!r} in folder {raw.folder or '/'}".replace("''", "")
        question = f"Delete Vault item {id} ({label})? This cannot be undone."
        confirmed = await _confirm(ctx, question)
        if isinstance(confirmed, InputRequiredResult):
            return confirmed  # the client asks the user, then calls again with the answer
        if confirmed != "accept":
            raise ToolError(f"Not deleted: the user {confirmed} the deletion of {id}.")
        log.info("deleting Vault item %s after user confirmation", id)
        with tool_errors():
            response = await pangea.call(SERVICE, "v2/delete", _Delete(id=id), _Deleted, token=token)
        return VaultDeleteReport(id=response.result.id or id, deleted=True, request_id=response.request_id)


_CONFIRM_KEY = "confirm_delete"
_CONFIRM_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"value": {"type": "boolean", "title": "Delete it"}},
    "required": ["value"],
}


async def _confirm(ctx: Context, question: str) -> str | InputRequiredResult:
    """Ask the user through MCP elicitation: 'accept', 'declined' or 'cancelled', or an input request.

    Handshake-era sessions get a server-initiated elicitation request; 2026-07-28 sessions get the
    question back as an InputRequiredResult and answer it on the retried call (SEP-2322).
    """
    caps = ctx.session.client_capabilities
    if caps is None or caps.elicitation is None:
        raise ToolError(
            "Not deleted: deleting needs the user's confirmation, and this MCP client cannot ask for it "
            "(no elicitation support). Ask the user to delete the item in the Pangea console instead."
        )
    request = ctx.request_context
    if request is not None and request.protocol_version in MODERN_PROTOCOL_VERSIONS:
        answer = (ctx.input_responses or {}).get(_CONFIRM_KEY)
        if answer is None:
            ask = ElicitRequest(
                params=ElicitRequestFormParams(message=question, requested_schema=_CONFIRM_SCHEMA)
            )
            return InputRequiredResult(input_requests={_CONFIRM_KEY: ask})
        if not isinstance(answer, ElicitResult):
            return "cancelled"
        accepted = answer.action == "accept" and (answer.content or {}).get("value") is True
        return "accept" if accepted else ("cancelled" if answer.action == "cancel" else "declined")
    result = await ctx.elicit(question, response_type=bool, response_title="Delete it")
    if result.action == "accept":
        return "accept" if result.data is True else "declined"
    return "declined" if result.action == "decline" else "cancelled"

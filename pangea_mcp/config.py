"""Settings: the only place that reads the environment (and an optional .env file)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from pangea_mcp.audit_verify import SigningKey

DEFAULT_BASE_URL_TEMPLATE = "https://{SERVICE_NAME}.aws.us.pangea.cloud"

#: Service modules that can be switched on and off with PANGEA_SERVICES, in tool-list order.
SERVICE_MODULES: tuple[str, ...] = (
    "ai_guard",
    "redact",
    "audit",
    "ip_intel",
    "domain_intel",
    "url_intel",
    "file_intel",
    "embargo",
    "user_intel",
    "vault",
)

#: Service modules with a local implementation (no Pangea account needed).
LOCAL_MODULES: tuple[str, ...] = ("redact", "audit", "ip_intel", "domain_intel")

_VAULT_ID = r"^pvi_[a-z2-7]{32}$"
_CONFIG_ID = r"^pci_[a-z2-7]{32}$"


def _modules(value: object, choices: tuple[str, ...]) -> object:
    """A comma-separated (or list) selection of module names, checked and put in `choices` order."""
    if isinstance(value, str):
        value = [part.strip() for part in value.split(",") if part.strip()]
    if isinstance(value, list | tuple | set | frozenset):
        unknown = sorted(str(v) for v in value if v not in choices)
        if unknown:
            raise ValueError(
                f"unknown service module(s) {', '.join(unknown)}; choose from {', '.join(choices)}"
            )
        return tuple(name for name in choices if name in value)
    return value


class Settings(BaseSettings):
    """Runtime configuration. Every field is read from a `PANGEA_`-prefixed variable."""

    model_config = SettingsConfigDict(
        env_prefix="PANGEA_",
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        validate_default=True,
    )

    token: SecretStr | None = Field(
        default=None, description="Pangea service token used for every service call (pts_...)."
    )
    vault_token: SecretStr | None = Field(
        default=None,
        description="Vault-scoped token; with PANGEA_VAULT_ITEM_ID the service token is read from Vault.",
    )
    vault_item_id: str | None = Field(
        default=None, pattern=_VAULT_ID, description="Vault item (pangea_token) holding the service token."
    )
    base_url_template: str | None = Field(
        default=None,
        description="URL template for every service; {SERVICE_NAME} stands for the service slug "
        f"(host or path). Default {DEFAULT_BASE_URL_TEMPLATE}.",
    )
    domain: str | None = Field(
        default=None,
        description="Shorthand for the template https://{SERVICE_NAME}.<domain>, e.g. aws.eu.pangea.cloud.",
    )
    request_timeout: float = Field(
        default=30.0, gt=0, le=600, description="Seconds one service call may take, retries included."
    )
    connect_timeout: float = Field(default=10.0, gt=0, le=120, description="Seconds to open a connection.")
    request_retries: int = Field(
        default=3, ge=0, le=10, description="Retries after a 5xx, 429 or connection failure."
    )
    retry_backoff: float = Field(
        default=0.5,
        ge=0,
        le=10,
        description="First retry delay in seconds (doubles, capped at 8 s, jittered).",
    )
    max_retry_after: float = Field(
        default=30.0, ge=0, le=600, description="Longest Retry-After (seconds) honoured before giving up."
    )
    poll_timeout: float = Field(
        default=30.0,
        ge=0,
        le=600,
        description="Seconds to poll an asynchronous (202) result before giving up.",
    )
    poll_interval: float = Field(
        default=1.0, ge=0, le=60, description="Base polling delay; poll n waits n squared times this."
    )
    audit_config_id: str | None = Field(
        default=None, pattern=_CONFIG_ID, description="Secure Audit Log configuration id (pci_...)."
    )
    redact_config_id: str | None = Field(
        default=None, pattern=_CONFIG_ID, description="Redact configuration id (pci_...)."
    )
    allow_unredact: bool = Field(
        default=True, description="Offer the unredact tool, which reveals FPE-redacted data; false hides it."
    )
    vault_reveal_values: bool = Field(
        default=False,
        description="Let get_vault_item return secret and token values (never this server's own token).",
    )
    vault_writes: bool = Field(
        default=False, description="Offer generate_key and delete_vault_item (delete still asks the user)."
    )
    audit_signing_key: SigningKey | None = Field(
        default=None,
        description="Ed25519 private key (PKCS#8 PEM) that signs log_entry and audit-trail events.",
    )
    audit_trail: bool = Field(
        default=False, description="Record every tool call in the Secure Audit Log (batched, in background)."
    )
    audit_trail_arguments: bool = Field(
        default=False, description="Include tool arguments in audit-trail events (secrets masked)."
    )
    audit_trail_batch_size: int = Field(
        default=100, ge=1, le=1000, description="Most audit-trail events sent in one /v2/log_async call."
    )
    audit_trail_interval: float = Field(
        default=2.0, gt=0, le=60, description="Seconds audit-trail events may wait to fill a batch."
    )
    guard: bool | None = Field(
        default=None,
        description="Check every tool call's arguments and result with AI Guard (on by default when a "
        "token is configured; false turns it off).",
    )
    guard_fail_open: bool = Field(
        default=False,
        description="When AI Guard is unreachable or failing, let calls through unguarded (logged) instead "
        "of failing them.",
    )
    guard_input_recipe: str = Field(
        default="pangea_agent_pre_tool_guard",
        pattern=r"^[A-Za-z0-9_.-]{1,128}$",
        description="AI Guard recipe for tool arguments.",
    )
    guard_output_recipe: str = Field(
        default="pangea_agent_post_tool_guard",
        pattern=r"^[A-Za-z0-9_.-]{1,128}$",
        description="AI Guard recipe for tool results, resources, prompts and (proxy) tool descriptions.",
    )
    guard_app_name: str = Field(
        default="pangea-mcp",
        min_length=1,
        max_length=128,
        description="Application name sent to AI Guard (extra_info.app_name) for its activity log.",
    )
    guard_app_id: str | None = Field(
        default=None, max_length=128, description="Application id sent to AI Guard (app_id)."
    )
    services: Annotated[tuple[str, ...], NoDecode] = Field(
        default=SERVICE_MODULES,
        description="Comma-separated service modules to enable: " + ", ".join(SERVICE_MODULES) + ".",
    )
    backend: Literal["auto", "pangea", "local"] = Field(
        default="auto",
        description="Who answers the tools: pangea (needs a token), local (no account: geolocate, whois, "
        "redact, audit log), or auto (pangea when a token is configured, else local).",
    )
    local_services: Annotated[tuple[str, ...], NoDecode] = Field(
        default=(),
        description="Service modules answered by the local backend even when a token is configured "
        "(hybrid), e.g. audit. Local ones: " + ", ".join(LOCAL_MODULES) + ".",
    )
    local_audit_db: Path | None = Field(
        default=None,
        description="SQLite file of the local audit log (default: audit.sqlite3 in the user data directory).",
    )
    local_signing_key: Path | None = Field(
        default=None,
        description="Ed25519 key (PKCS#8 PEM, created with mode 0600 when missing) that signs local audit "
        "roots (default: audit-signing-key.pem in the user config directory).",
    )
    rdap_url: str | None = Field(
        default=None,
        description="RDAP server for every local whois lookup (default: the registry's server from the "
        "IANA bootstrap data shipped with the package).",
    )
    mcp_transport: Literal["stdio", "http"] = Field(
        default="stdio", description="How `pangea-mcp serve` talks MCP: stdio, or streamable HTTP at /mcp."
    )
    mcp_host: str = Field(
        default="127.0.0.1",
        min_length=1,
        description="HTTP bind address; anything but loopback requires PANGEA_MCP_AUTH_TOKEN or a JWT key.",
    )
    mcp_port: int = Field(default=8080, ge=0, le=65535, description="HTTP port (0 picks a free one).")
    mcp_auth_token: SecretStr | None = Field(
        default=None, description="Bearer token HTTP clients must send (Authorization: Bearer ...)."
    )
    mcp_jwt_jwks_uri: str | None = Field(
        default=None, description="JWKS URL whose keys verify HTTP clients' JWT bearer tokens."
    )
    mcp_jwt_public_key: str | None = Field(
        default=None, description="PEM public key that verifies HTTP clients' JWT bearer tokens."
    )
    mcp_jwt_issuer: str | None = Field(default=None, description="Required JWT issuer (iss).")
    mcp_jwt_audience: str | None = Field(default=None, description="Required JWT audience (aud).")
    mcp_allowed_hosts: Annotated[tuple[str, ...], NoDecode] = Field(
        default=(),
        description="Comma-separated Host header values accepted over HTTP, besides loopback names "
        "(DNS-rebinding protection; * accepts any).",
    )
    mcp_allowed_origins: Annotated[tuple[str, ...], NoDecode] = Field(
        default=(),
        description="Comma-separated browser Origins accepted over HTTP, besides loopback ones "
        "(requests without an Origin header are accepted).",
    )
    mcp_stateless: bool = Field(
        default=False,
        description="Serve HTTP without sessions, so any replica behind a load balancer answers any call.",
    )
    mcp_rate_limit: float = Field(
        default=100.0,
        ge=0,
        le=100000,
        description="Requests per second each HTTP client may make (sustained; 0 turns the limit off).",
    )
    mcp_rate_burst: int = Field(
        default=200, ge=1, le=1000000, description="Requests an HTTP client may make in a burst."
    )
    mcp_max_response_bytes: int = Field(
        default=1_000_000,
        ge=1024,
        le=100_000_000,
        description="Largest tool result returned; a bigger one becomes an error saying so.",
    )
    mcp_shutdown_timeout: float = Field(
        default=30.0,
        ge=0,
        le=600,
        description="Seconds in-flight calls may take to finish after SIGTERM.",
    )
    cache_ttl: float = Field(
        default=300.0,
        ge=0,
        le=86400,
        description="Seconds an intel lookup result is reused (per item; errors never cached; 0 turns "
        "the cache off).",
    )
    cache_size: int = Field(default=10_000, ge=0, le=10_000_000, description="Most items in the intel cache.")
    mcp_workers: int = Field(
        default=1,
        ge=1,
        le=64,
        description="HTTP worker processes, each serving the whole app on the same port (Linux and macOS; "
        "needs PANGEA_MCP_STATELESS=true).",
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = Field(
        default="WARNING", description="Log level; logs always go to stderr."
    )

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper(cls, value: object) -> object:
        return value.upper() if isinstance(value, str) else value

    @field_validator("services", mode="before")
    @classmethod
    def _split_services(cls, value: object) -> object:
        return _modules(value, SERVICE_MODULES)

    @field_validator("local_services", mode="before")
    @classmethod
    def _split_local_services(cls, value: object) -> object:
        return _modules(value, LOCAL_MODULES)

    @field_validator("mcp_allowed_hosts", "mcp_allowed_origins", mode="before")
    @classmethod
    def _split_list(cls, value: object) -> object:
        if isinstance(value, str):
            return tuple(part.strip() for part in value.split(",") if part.strip())
        return value

    @field_validator("base_url_template", "domain", mode="before")
    @classmethod
    def _blank_is_unset(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("base_url_template")
    @classmethod
    def _check_template(cls, value: str | None) -> str | None:
        if value is None:
            return None
        value = value.strip()
        if not re.match(r"^https?://[^/{}\s]+", value.replace("{SERVICE_NAME}", "svc")):
            raise ValueError("must be an http(s) URL such as https://{SERVICE_NAME}.aws.us.pangea.cloud")
        leftover = value.replace("{SERVICE_NAME}", "")
        if "{" in leftover or "}" in leftover:
            raise ValueError("the only placeholder allowed is {SERVICE_NAME}")
        return value

    @field_validator("domain")
    @classmethod
    def _check_domain(cls, value: str | None) -> str | None:
        if value is None:
            return None
        value = value.strip().rstrip("/")
        if not re.fullmatch(r"(https?://)?[A-Za-z0-9.-]+(:\d+)?", value):
            raise ValueError("must be a host name such as aws.us.pangea.cloud")
        return value

    @model_validator(mode="after")
    def _check_credentials(self) -> Settings:
        if self.vault_token is not None and self.vault_item_id is None:
            raise ValueError("PANGEA_VAULT_ITEM_ID is required when PANGEA_VAULT_TOKEN is set")
        if self.vault_item_id is not None and self.vault_token is None:
            raise ValueError("PANGEA_VAULT_TOKEN is required when PANGEA_VAULT_ITEM_ID is set")
        if self.backend == "pangea" and not self.has_credentials:
            raise ValueError(
                "PANGEA_BACKEND=pangea needs PANGEA_TOKEN (or PANGEA_VAULT_TOKEN + PANGEA_VAULT_ITEM_ID)"
            )
        for name in ("token", "vault_token", "mcp_auth_token"):
            secret: SecretStr | None = getattr(self, name)
            if secret is not None and not re.fullmatch(r"[\x21-\x7e]+", secret.get_secret_value()):
                # Checked here (not with a pattern) so the error never echoes the value.
                raise ValueError(f"PANGEA_{name.upper()} must be a single printable token without spaces")
        return self

    @property
    def url_template(self) -> str:
        """The effective template: explicit template, else the domain shorthand, else the default."""
        if self.base_url_template:
            return self.base_url_template
        if self.domain:
            if self.domain.startswith(("http://", "https://")):
                # Older SDK semantics: a full URL as domain means "no service host prefix".
                return self.domain
            return "https://{SERVICE_NAME}." + self.domain
        return DEFAULT_BASE_URL_TEMPLATE

    @property
    def has_credentials(self) -> bool:
        return self.token is not None or self.vault_token is not None

    def service_url(self, service: str, path: str) -> str:
        """Build a service URL the way Pangea's SDKs do (placeholder in host or path)."""
        base = self.url_template.replace("{SERVICE_NAME}", service).rstrip("/")
        return base + "/" + path.lstrip("/")

    def service_backend(self, service: str) -> Literal["pangea", "local"]:
        """Which backend answers a service module: local when asked for (or no account), else Pangea."""
        if service in self.local_services:
            return "local"
        if self.backend == "local" or (self.backend == "auto" and not self.has_credentials):
            return "local"
        return "pangea"

    def secret_values(self) -> list[str]:
        """Every secret this configuration holds, for scrubbing output."""
        secrets = (self.token, self.vault_token, self.mcp_auth_token)
        return [s.get_secret_value() for s in secrets if s is not None]

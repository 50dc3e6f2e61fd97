"""Settings: the only place that reads the environment (and an optional .env file)."""

from __future__ import annotations

import re
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

_VAULT_ID = r"^pvi_[a-z2-7]{32}$"
_CONFIG_ID = r"^pci_[a-z2-7]{32}$"


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
        if isinstance(value, str):
            value = [part.strip() for part in value.split(",") if part.strip()]
        if isinstance(value, list | tuple | set | frozenset):
            unknown = sorted(str(v) for v in value if v not in SERVICE_MODULES)
            if unknown:
                choices = ", ".join(SERVICE_MODULES)
                raise ValueError(f"unknown service module(s) {', '.join(unknown)}; choose from {choices}")
            return tuple(name for name in SERVICE_MODULES if name in value)
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
        for name in ("token", "vault_token"):
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

    def secret_values(self) -> list[str]:
        """Every secret this configuration holds, for scrubbing output."""
        return [s.get_secret_value() for s in (self.token, self.vault_token) if s is not None]

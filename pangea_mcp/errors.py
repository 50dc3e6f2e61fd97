"""Pangea exception tree, the status-to-class table, and the tool_errors() bridge to MCP ToolError."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import ClassVar

from fastmcp.exceptions import ToolError
from pydantic import BaseModel, ConfigDict
from pydantic import ValidationError as PydanticValidationError

from pangea_mcp.logs import scrub


class FieldError(BaseModel):
    """One item of a ValidationError's `result.errors`."""

    model_config = ConfigDict(extra="ignore")

    code: str = ""
    detail: str = ""
    source: str = ""


class PangeaError(Exception):
    """Base of everything the client raises."""


class PangeaAPIError(PangeaError):
    """Pangea answered with a non-Success status."""

    #: What the caller (a model, through the tool result) should do about it.
    hint: ClassVar[str] = "Check the arguments and try again."
    #: Whether retrying the same call later can succeed.
    retryable: ClassVar[bool] = False

    def __init__(
        self,
        *,
        service: str,
        status: str,
        http_status: int,
        summary: str,
        request_id: str | None,
        errors: list[FieldError] | None = None,
        retry_after: float | None = None,
    ) -> None:
        self.service = service
        self.status = status
        self.http_status = http_status
        self.summary = summary
        self.request_id = request_id
        self.errors = errors or []
        self.retry_after = retry_after
        super().__init__(self.describe())

    def describe(self) -> str:
        text = f"{self.service} answered {self.status} (HTTP {self.http_status})"
        if self.summary:
            text += f": {self.summary}"
        for err in self.errors:
            where = err.source or "request"
            text += f"\n  - {where}: {err.code} {err.detail}".rstrip()
        return text


class ValidationError(PangeaAPIError):
    hint = "Pangea rejected the arguments; fix the fields listed above and call again."


class Unauthorized(PangeaAPIError):
    hint = (
        "The Pangea token was rejected. This is a server configuration problem (PANGEA_TOKEN or the "
        "Vault item), not something a different argument fixes; tell the user."
    )


class Forbidden(PangeaAPIError):
    hint = "The token is not allowed to do this; the token's scope must be changed by the user."


class ServiceNotEnabled(PangeaAPIError):
    hint = (
        "This Pangea service is not enabled for the token's project; the user must enable it in the console."
    )


class NoCredit(PangeaAPIError):
    hint = "The Pangea project has run out of credit; the user must add credit. Retrying will not help."


class TooManyRequests(PangeaAPIError):
    hint = "Rate limited by Pangea; wait a little and call again with fewer items."
    retryable = True


class ProviderError(PangeaAPIError):
    hint = "The intelligence provider behind Pangea failed; try again shortly."
    retryable = True


class InternalError(PangeaAPIError):
    hint = "Pangea had an internal error; try again shortly."
    retryable = True


class ServiceUnavailable(PangeaAPIError):
    hint = "The Pangea service is temporarily unavailable; try again shortly."
    retryable = True


class MissingConfigID(PangeaAPIError):
    hint = "The service has several configurations; the user must set its config id (see PANGEA_*_CONFIG_ID)."


class NotFound(PangeaAPIError):
    hint = "Pangea found nothing for this request; check the identifier."


class UnexpectedResult(PangeaAPIError):
    hint = (
        "Pangea's answer did not have the shape this server expects, so it was not used. This is not "
        "caused by the arguments; try again later, and report the request_id if it persists."
    )


class PangeaUnavailable(PangeaError):
    """No usable answer: timeout, connection failure, or retries used up."""

    def __init__(self, service: str, reason: str, request_id: str | None = None) -> None:
        self.service = service
        self.reason = reason
        self.request_id = request_id
        super().__init__(f"{service}: {reason}")


class PangeaPending(PangeaError):
    """A 202 result was still being computed when the polling budget ran out."""

    def __init__(self, service: str, request_id: str, waited: float) -> None:
        self.service = service
        self.request_id = request_id
        self.waited = waited
        super().__init__(f"{service}: result of {request_id} still pending after {waited:.0f}s")


class StartupError(PangeaError):
    """A configuration or credential problem that stops the server from starting."""


#: status string -> exception class. Anything not listed becomes a plain PangeaAPIError.
STATUS_ERRORS: dict[str, type[PangeaAPIError]] = {
    "ValidationError": ValidationError,
    "Unauthorized": Unauthorized,
    "ForbiddenVaultOperation": Forbidden,
    "Forbidden": Forbidden,
    "ServiceNotEnabled": ServiceNotEnabled,
    "NoCredit": NoCredit,
    "TooManyRequests": TooManyRequests,
    "ProviderError": ProviderError,
    "InternalError": InternalError,
    "ServiceNotAvailable": ServiceUnavailable,
    "MissingConfigID": MissingConfigID,
    "MissingConfigIDScope": MissingConfigID,
    "NotFound": NotFound,
    "VaultItemNotFound": NotFound,
    "TreeNotFound": NotFound,
    "IPNotFound": NotFound,
}

#: HTTP code -> class, used only when the body carries no usable status string.
HTTP_ERRORS: dict[int, type[PangeaAPIError]] = {
    400: ValidationError,
    401: Unauthorized,
    402: NoCredit,
    403: Forbidden,
    404: NotFound,
    429: TooManyRequests,
    500: InternalError,
    502: ProviderError,
    503: ServiceUnavailable,
    504: ServiceUnavailable,
}


def error_class(status: str, http_status: int) -> type[PangeaAPIError]:
    if status in STATUS_ERRORS:
        return STATUS_ERRORS[status]
    if not status or status == "Success":
        return HTTP_ERRORS.get(http_status, PangeaAPIError)
    return PangeaAPIError


def tool_message(exc: PangeaError) -> str:
    """The isError text a model sees: what happened, what to do, and the request id."""
    if isinstance(exc, PangeaAPIError):
        text = f"{exc.describe()}\n{exc.hint}"
    elif isinstance(exc, PangeaPending):
        text = (
            f"{exc} — Pangea is still working on it. Call the tool again in a minute "
            "(with fewer items it usually answers at once)."
        )
    elif isinstance(exc, PangeaUnavailable):
        text = f"{exc.service} is unavailable: {exc.reason}. Try again shortly."
    else:
        text = str(exc)
    request_id = getattr(exc, "request_id", None)
    if request_id:
        text += f"\nrequest_id: {request_id}"
    return scrub(text)


@contextmanager
def tool_errors() -> Iterator[None]:
    """Turn Pangea failures into a ToolError (isError result) the model can act on.

    Anything else propagates, and the server's mask_error_details hides it from the client.
    """
    try:
        yield
    except PangeaError as exc:
        # An expected outcome the model handles: a warning in the server log, not an error.
        raise ToolError(tool_message(exc), log_level=logging.WARNING) from exc


def _location(loc: tuple[int | str, ...]) -> str:
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "arguments"


def _arguments_text(tool: str, problems: list[tuple[str, str]]) -> str:
    lines = [f"Invalid arguments for {tool}:"]
    lines += [f"- {where}: {problem}" for where, problem in problems]
    lines.append("Fix these arguments and call the tool again.")
    return scrub("\n".join(lines))


def argument_message(tool: str, exc: PydanticValidationError) -> str:
    """An isError text for bad arguments: each offending argument by name, and what is wrong with it."""
    problems = []
    for err in exc.errors(include_url=False, include_context=False, include_input=False):
        if err["type"] in ("missing", "missing_argument"):
            problem = "required argument is missing"
        elif err["type"] in ("extra_forbidden", "unexpected_keyword_argument"):
            problem = "unexpected argument; remove it"
        else:
            problem = err["msg"].removeprefix("Value error, ")
        problems.append((_location(tuple(err["loc"])), problem))
    return _arguments_text(tool, problems)


def invalid_arguments(tool: str, problems: dict[tuple[str | int, ...], str]) -> ToolError:
    """The same isError as a schema violation, for checks that span several arguments or items.

    Keys are argument locations, e.g. ("hashes", 1); an empty tuple means the arguments as a whole.
    """
    text = _arguments_text(tool, [(_location(loc), problem) for loc, problem in problems.items()])
    return ToolError(text, log_level=logging.WARNING)

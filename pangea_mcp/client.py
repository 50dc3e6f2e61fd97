"""PangeaClient: one httpx.AsyncClient, auth header, envelope parsing, tenacity retries, 202 polling."""

from __future__ import annotations

import asyncio
import email.utils
import logging
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Generic, Protocol, TypeVar

import anyio
import httpx
from pydantic import BaseModel, SecretStr
from pydantic import ValidationError as PydanticValidationError
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception

from pangea_mcp import __version__
from pangea_mcp.config import Settings
from pangea_mcp.errors import (
    FieldError,
    NotFound,
    PangeaAPIError,
    PangeaError,
    PangeaPending,
    PangeaUnavailable,
    Unauthorized,
    UnexpectedResult,
    error_class,
)
from pangea_mcp.models import AcceptedResult, Envelope

log = logging.getLogger(__name__)

T = TypeVar("T", bound=BaseModel)
ProgressFn = Callable[[float, float | None, str | None], Awaitable[None]]
SleepFn = Callable[[float], Awaitable[None]]

#: HTTP codes retried on any method, as the SDKs do; 429 is retried after its Retry-After.
RETRY_HTTP = frozenset({500, 502, 503, 504})
USER_AGENT = f"pangea-mcp/{__version__}"


class TokenSource(Protocol):
    """Where the service token comes from (static, or Vault with rotation)."""

    async def current(self) -> str: ...

    async def refresh(self, rejected: str) -> bool:
        """Fetch a new token after `rejected` was refused; True when a different token is now current."""
        ...


@dataclass(frozen=True)
class PangeaResponse(Generic[T]):
    result: T
    request_id: str | None


class _Retryable(PangeaError):
    """Internal: a failed attempt worth retrying; carries the error to raise if retries run out."""

    def __init__(self, error: PangeaError, retry_after: float | None = None) -> None:
        self.error = error
        self.retry_after = retry_after
        super().__init__(str(error))


def _retry_after(value: str | None) -> float | None:
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


class PangeaClient:
    """The one HTTP client of the process, shared by every tool module."""

    def __init__(
        self,
        settings: Settings,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        sleep: SleepFn | None = None,
    ) -> None:
        self.settings = settings
        self.tokens: TokenSource | None = None
        self._transport = transport
        self._sleep: SleepFn = sleep if sleep is not None else asyncio.sleep
        self._http: httpx.AsyncClient | None = None
        self._users = 0

    # -- lifecycle ---------------------------------------------------------------------------------

    async def __aenter__(self) -> PangeaClient:
        self._users += 1
        if self._http is None:
            self._http = httpx.AsyncClient(
                transport=self._transport,
                follow_redirects=False,  # never resend the bearer token to another host
                headers={"User-Agent": USER_AGENT},
                limits=httpx.Limits(max_keepalive_connections=20, keepalive_expiry=60),
                timeout=httpx.Timeout(self.settings.request_timeout, connect=self.settings.connect_timeout),
                trust_env=self._transport is None,
            )
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._users -= 1
        if self._users <= 0 and self._http is not None:
            http, self._http = self._http, None
            await http.aclose()

    # -- public API --------------------------------------------------------------------------------

    async def call(
        self,
        service: str,
        path: str,
        body: BaseModel,
        result_type: type[T],
        *,
        token: SecretStr | None = None,
        idempotent: bool = True,
        progress: ProgressFn | None = None,
        poll: bool = True,
    ) -> PangeaResponse[T]:
        """POST `body` to `service`/`path` and return the typed result.

        `token` overrides the service token (used for Vault); otherwise the token source is used, and a
        401 makes it re-read the token once (rotation) before the call is retried. With `poll=False` a
        202 is not polled: its AcceptedResult is parsed into `result_type` (fire-and-forget endpoints).
        """
        payload = body.model_dump(mode="json", exclude_none=True)
        if token is not None:
            secret = token.get_secret_value()
            envelope = await self._call_with(service, path, payload, secret, idempotent, progress, poll)
        else:
            if self.tokens is None:
                raise PangeaUnavailable(service, "no Pangea service token is configured")
            current = await self.tokens.current()
            try:
                envelope = await self._call_with(service, path, payload, current, idempotent, progress, poll)
            except Unauthorized:
                if not await self.tokens.refresh(current):
                    raise
                log.info("retrying %s %s with the rotated service token", service, path)
                current = await self.tokens.current()
                envelope = await self._call_with(service, path, payload, current, idempotent, progress, poll)
        try:
            result = result_type.model_validate(envelope.result if envelope.result is not None else {})
        except PydanticValidationError as exc:
            log.warning(
                "unexpected result shape from %s %s (request_id=%s): %s",
                service,
                path,
                envelope.request_id,
                exc.error_count(),
            )
            raise UnexpectedResult(
                service=service,
                status="UnexpectedResult",
                http_status=200,
                summary="Pangea answered with a result this server does not understand",
                request_id=envelope.request_id,
            ) from None
        return PangeaResponse(result=result, request_id=envelope.request_id)

    # -- internals ---------------------------------------------------------------------------------

    async def _call_with(
        self,
        service: str,
        path: str,
        payload: dict[str, Any],
        token: str,
        idempotent: bool,
        progress: ProgressFn | None,
        poll: bool,
    ) -> Envelope:
        envelope = await self._with_retries("POST", service, path, payload, token, idempotent)
        if envelope.status == "Accepted" and poll:
            envelope = await self._poll(service, envelope, token, progress)
        return envelope

    async def _with_retries(
        self,
        method: str,
        service: str,
        path: str,
        payload: dict[str, Any] | None,
        token: str,
        idempotent: bool,
    ) -> Envelope:
        settings = self.settings
        deadline = anyio.current_time() + settings.request_timeout
        failed_ids: list[str] = []

        def wait(state: RetryCallState) -> float:
            exc = state.outcome.exception() if state.outcome else None
            if isinstance(exc, _Retryable) and exc.retry_after is not None:
                return exc.retry_after
            base: float = min(settings.retry_backoff * 2.0 ** (state.attempt_number - 1), 8.0)
            return base * random.uniform(0.75, 1.0)  # noqa: S311 - jitter, not crypto

        def stop(state: RetryCallState) -> bool:
            if state.attempt_number > settings.request_retries:
                return True
            if state.upcoming_sleep > settings.max_retry_after:
                return True
            return anyio.current_time() + state.upcoming_sleep >= deadline

        def attempt(number: int) -> Awaitable[Envelope]:
            remaining = deadline - anyio.current_time()
            if remaining <= 0:
                raise PangeaUnavailable(
                    service, f"no answer within PANGEA_REQUEST_TIMEOUT={settings.request_timeout:g}s"
                )
            return self._attempt(
                method, service, path, payload, token, idempotent, remaining, failed_ids, number
            )

        # Fast path: most calls succeed at once, so the retry machinery is only built after a failure.
        try:
            return await attempt(1)
        except _Retryable as exc:
            first: _Retryable | None = exc
        retrying = AsyncRetrying(
            retry=retry_if_exception(lambda e: isinstance(e, _Retryable)),
            wait=wait,
            stop=stop,
            sleep=self._sleep,
            reraise=True,
        )
        try:
            async for state in retrying:
                with state:
                    if first is not None:
                        # Replay the first failure so tenacity's backoff and stop rules see it.
                        failure, first = first, None
                        raise failure
                    return await attempt(state.retry_state.attempt_number)
        except _Retryable as exc:
            raise exc.error from None
        raise AssertionError("unreachable")  # pragma: no cover

    async def _attempt(
        self,
        method: str,
        service: str,
        path: str,
        payload: dict[str, Any] | None,
        token: str,
        idempotent: bool,
        remaining: float,
        failed_ids: list[str],
        attempt: int,
    ) -> Envelope:
        if self._http is None:
            raise PangeaUnavailable(service, "the server is not running (client closed)")
        url = self.settings.service_url(service, path)
        headers = {"Authorization": f"Bearer {token}"}
        if failed_ids:
            headers["X-Pangea-Retried-Request-Ids"] = ",".join(dict.fromkeys(failed_ids))
        timeout = httpx.Timeout(remaining, connect=min(self.settings.connect_timeout, remaining))
        started = time.perf_counter()
        try:
            with anyio.fail_after(remaining):
                response = await self._http.request(
                    method, url, json=payload, headers=headers, timeout=timeout
                )
        except (
            TimeoutError,
            httpx.ConnectTimeout,
            httpx.ReadTimeout,
            httpx.WriteTimeout,
            httpx.PoolTimeout,
        ) as exc:
            connecting = isinstance(exc, httpx.ConnectTimeout)
            log.warning("%s %s: timed out (attempt %d)", service, path, attempt)
            error = PangeaUnavailable(
                service,
                "could not connect"
                if connecting
                else f"no answer within PANGEA_REQUEST_TIMEOUT={self.settings.request_timeout:g}s",
            )
            if connecting:
                raise _Retryable(error) from None
            raise error from None
        except httpx.ConnectError:
            log.warning("%s %s: connection failed (attempt %d)", service, path, attempt)
            raise _Retryable(PangeaUnavailable(service, "could not connect to the Pangea API")) from None
        except (httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError) as exc:
            log.warning(
                "%s %s: connection dropped (attempt %d): %s", service, path, attempt, type(exc).__name__
            )
            error = PangeaUnavailable(service, "the connection to the Pangea API dropped")
            if idempotent:
                raise _Retryable(error) from None
            raise error from None
        except httpx.HTTPError as exc:
            raise PangeaUnavailable(service, f"HTTP failure ({type(exc).__name__})") from None

        elapsed = time.perf_counter() - started
        header_id = response.headers.get("x-request-id")
        envelope = self._envelope(response)
        request_id = envelope.request_id if envelope and envelope.request_id else header_id
        log.info(
            "%s %s %s -> HTTP %d %s request_id=%s attempt=%d %.0fms",
            method,
            service,
            path,
            response.status_code,
            envelope.status if envelope else "-",
            request_id,
            attempt,
            elapsed * 1000,
        )
        code = response.status_code
        if envelope is not None and (envelope.status == "Accepted" or code == 202):
            envelope.status = "Accepted"
            return envelope
        if envelope is not None and envelope.status == "Success" and 200 <= code < 300:
            return envelope

        api_error = self._error(service, code, envelope, request_id, response)
        rate_limited = code == 429 or api_error.status == "TooManyRequests"
        # A write (idempotent=False) may have happened behind a 500/502/504, so only answers that prove
        # nothing was done are retried for it: rate limiting and 503 (service unavailable).
        retry_codes = RETRY_HTTP if idempotent else frozenset({503})
        if code in retry_codes or rate_limited:
            if request_id:
                failed_ids.append(request_id)
            raise _Retryable(api_error, retry_after=api_error.retry_after)
        raise api_error

    @staticmethod
    def _envelope(response: httpx.Response) -> Envelope | None:
        try:
            data = response.json()
        except ValueError:
            return None
        if not isinstance(data, dict):
            return None
        try:
            return Envelope.model_validate(data)
        except PydanticValidationError:
            return None

    @staticmethod
    def _error(
        service: str, code: int, envelope: Envelope | None, request_id: str | None, response: httpx.Response
    ) -> PangeaAPIError:
        status = envelope.status if envelope else ""
        summary = envelope.summary if envelope else f"HTTP {code} with a body that is not a Pangea response"
        errors: list[FieldError] = []
        if envelope is not None and isinstance(envelope.result, dict):
            for item in envelope.result.get("errors") or []:
                if isinstance(item, dict):
                    errors.append(FieldError.model_validate(item))
        cls = error_class(status, code)
        return cls(
            service=service,
            status=status or cls.__name__,
            http_status=code,
            summary=summary,
            request_id=request_id,
            errors=errors,
            retry_after=_retry_after(response.headers.get("retry-after")),
        )

    async def _poll(
        self, service: str, accepted: Envelope, token: str, progress: ProgressFn | None
    ) -> Envelope:
        """Poll GET /request/<id> on the same host (never the `location` URL: the token stays with Pangea)."""
        request_id = accepted.request_id
        if not request_id:
            raise PangeaAPIError(
                service=service,
                status="Accepted",
                http_status=202,
                summary="Pangea accepted the request but sent no request_id to poll",
                request_id=None,
            )
        ttl = (
            AcceptedResult.model_validate(accepted.result or {})
            if isinstance(accepted.result, dict)
            else None
        )
        log.debug("%s: polling %s (ttl %s min)", service, request_id, ttl.ttl_mins if ttl else "?")
        budget = self.settings.poll_timeout
        started = anyio.current_time()
        n = 0
        not_found = 0
        slept = 0.0
        while True:
            # Count what was slept too, so an injected (test) sleep still exhausts the budget.
            waited = max(anyio.current_time() - started, slept)
            if waited >= budget:
                raise PangeaPending(service, request_id, waited)
            n += 1
            delay = min(self.settings.poll_interval * n * n, budget - waited)
            if progress is not None:
                await progress(waited, budget, f"Pangea is processing request {request_id} (poll {n})")
            await self._sleep(delay)
            slept += delay
            try:
                envelope = await self._with_retries(
                    "GET", service, f"request/{request_id}", None, token, True
                )
            except NotFound:
                # The result can be briefly unknown right after the 202 (the Node SDK retries this too).
                not_found += 1
                if not_found > 3:
                    raise
                continue
            if envelope.status != "Accepted":
                if progress is not None:
                    await progress(budget, budget, "Pangea finished processing")
                return envelope
            request_id = envelope.request_id or request_id

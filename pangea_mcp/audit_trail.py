"""Audit trail: one audit log event per tool call, sent in batches by a background queue (Pangea's
/v2/log_async, or the local audit log when audit is answered locally)."""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import random
import time
import uuid
from collections import deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from datetime import UTC, datetime
from typing import Any, Protocol

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fastmcp.exceptions import FastMCPError, NotFoundError
from fastmcp.server.middleware import CallNext, Middleware, MiddlewareContext
from fastmcp.tools import ToolResult
from mcp.types import CallToolRequestParams
from pydantic import ValidationError as PydanticValidationError

from pangea_mcp import __version__
from pangea_mcp.audit_verify import load_private_key, public_key_field, sign_event
from pangea_mcp.client import PangeaClient, SleepFn
from pangea_mcp.config import Settings
from pangea_mcp.errors import PangeaAPIError, PangeaError, ValidationError
from pangea_mcp.local.audit_keys import store_paths
from pangea_mcp.local.audit_store import AuditStore
from pangea_mcp.local.audit_types import NewEvent
from pangea_mcp.logs import SECRET_NAME, SECRETS, scrub
from pangea_mcp.models import PangeaRequest, PangeaResult

log = logging.getLogger(__name__)

SERVICE = "audit"
#: Events waiting beyond this are refused (and counted) rather than growing memory without bound.
MAX_QUEUE = 100_000
_MIN_BACKOFF = 0.1
_MAX_BACKOFF = 60.0
#: Standard-schema limits (pangea-api.md 5.4).
LIMITS = {"actor": 128, "source": 128, "target": 128, "tenant_id": 128, "action": 32, "status": 32}
MAX_TEXT = 32766
_MASK = "[REDACTED]"
#: Tools whose payload arguments are the sensitive data itself (what is being redacted, guarded or
#: revealed): the trail records their size only, never their content.
_CONTENT_ARGUMENTS: dict[str, frozenset[str]] = {
    "prompt_guard": frozenset({"text", "messages"}),
    "redact": frozenset({"text"}),
    "redact_structured": frozenset({"data"}),
    "unredact": frozenset({"redacted_data"}),
}


class Signer:
    """Client-side Ed25519 signing with PANGEA_AUDIT_SIGNING_KEY (pangea-api.md 6.7)."""

    def __init__(self, key: Ed25519PrivateKey) -> None:
        self._key = key
        self.public_key = public_key_field(key)

    def sign(self, event: dict[str, str]) -> str:
        return sign_event(event, self._key)


def signer_from(settings: Settings) -> Signer | None:
    if settings.audit_signing_key is None:
        return None
    pem = settings.audit_signing_key.get_secret_value()
    SECRETS.add(pem, pem.strip())
    return Signer(load_private_key(pem))


class _Item(PangeaRequest):
    event: dict[str, str]
    signature: str | None = None
    public_key: str | None = None


class _LogBatch(PangeaRequest):
    # /v2/log_async: 1-1000 events; always answered 202 (pangea-api.md 5.4).
    events: list[_Item]
    config_id: str | None = None


class _Results(PangeaResult):
    pass


class TrailSink(Protocol):
    """Where audit-trail batches go: Pangea's /v2/log_async, or the local audit log."""

    async def open(self) -> None: ...

    async def send(self, batch: list[_Item]) -> None:
        """Store the whole batch, or raise (the batch is then kept and sent again)."""
        ...

    async def close(self) -> None: ...


class PangeaSink:
    def __init__(self, settings: Settings, pangea: PangeaClient) -> None:
        self._settings = settings
        self._pangea = pangea

    async def open(self) -> None:
        pass

    async def send(self, batch: list[_Item]) -> None:
        body = _LogBatch(events=batch, config_id=self._settings.audit_config_id)
        # Not idempotent: an ambiguous failure is not retried inside the client (the queue decides).
        # The 202 means queued; its per-event results are not polled (the SDKs don't either).
        await self._pangea.call(SERVICE, "v2/log_async", body, _Results, idempotent=False, poll=False)

    async def close(self) -> None:
        pass


class LocalSink:
    """The local audit log: one durable transaction per batch, so a batch is stored whole or not at all."""

    def __init__(self, settings: Settings) -> None:
        self._paths = store_paths(settings)
        self._store: AuditStore | None = None

    async def open(self) -> None:
        # At startup, so a damaged log or an unsafe key stops the server with a clear message.
        self._store = await AuditStore.open(*self._paths)

    async def send(self, batch: list[_Item]) -> None:
        if self._store is None:
            raise PangeaError("the local audit log is not open")
        await self._store.append_many([NewEvent(i.event, i.signature, i.public_key) for i in batch])

    async def close(self) -> None:
        store, self._store = self._store, None
        if store is not None:
            await store.close()


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _recorded_arguments(tool: str, arguments: dict[str, Any]) -> dict[str, Any]:
    content = _CONTENT_ARGUMENTS.get(tool, frozenset())
    return {
        name: f"[content withheld: {len(json.dumps(value, ensure_ascii=False))} characters]"
        if name in content
        else _masked({name: value})[name]
        for name, value in arguments.items()
    }


def _masked(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _MASK if SECRET_NAME.search(str(k)) else _masked(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_masked(v) for v in value]
    return value


class AuditTrail:
    """A queue that never blocks its producers; a single worker sends it in order, batch by batch.

    A batch leaves the queue only once Pangea accepted it (HTTP 202/200). A refused batch (5xx, 429,
    connection failure, rejected token) stays and is sent again after a capped, jittered backoff, so
    nothing is lost and nothing is sent twice after a clear failure. After an ambiguous failure (the
    answer was lost after sending) the batch is sent again: each event carries a unique `call_id`, so
    a duplicate is recognisable, whereas a lost event could not be recovered. Whether Pangea itself
    de-duplicates retried requests is UNCONFIRMED.
    """

    def __init__(self, settings: Settings, pangea: PangeaClient, *, sleep: SleepFn | None = None) -> None:
        self._settings = settings
        self._sleep: SleepFn = sleep if sleep is not None else asyncio.sleep
        self._signer = signer_from(settings)
        self._sink: TrailSink = (
            LocalSink(settings)
            if settings.service_backend(SERVICE) == "local"
            else PangeaSink(settings, pangea)
        )
        self._queue: deque[_Item] = deque()
        self._wake = asyncio.Event()
        self._closing = False
        self._task: asyncio.Task[None] | None = None
        self.sent = 0
        self.refused = 0

    @property
    def pending(self) -> int:
        return len(self._queue)

    def record(self, event: dict[str, str]) -> None:
        """Queue one event; never waits. Only a full queue (a long outage) refuses events."""
        if len(self._queue) >= MAX_QUEUE:
            self.refused += 1
            if self.refused == 1 or self.refused % 1000 == 0:
                log.error(
                    "audit trail queue full (%d events): %d events not recorded", MAX_QUEUE, self.refused
                )
            return
        item = _Item(event=event)
        if self._signer is not None:
            item.signature = self._signer.sign(event)
            item.public_key = self._signer.public_key
        self._queue.append(item)
        self._wake.set()

    @asynccontextmanager
    async def running(self) -> AsyncIterator[AuditTrail]:
        """Run the sender while the server runs; on exit, send what is left (graceful shutdown)."""
        await self._sink.open()
        self._closing = False
        self._wake = asyncio.Event()
        self._task = asyncio.create_task(self._run(), name="pangea-mcp audit trail")
        try:
            yield self
        finally:
            try:
                await self._close()
            finally:
                await self._sink.close()

    async def _close(self) -> None:
        task, self._task = self._task, None
        if task is None:
            return
        self._closing = True
        self._wake.set()
        budget = self._settings.request_timeout
        try:
            await asyncio.wait_for(asyncio.shield(task), timeout=budget)
        except TimeoutError:
            task.cancel()
            with suppress(asyncio.CancelledError):
                await task
            log.error("audit trail: %d events could not be sent within %gs of shutdown", self.pending, budget)

    async def _run(self) -> None:
        failures = 0
        while True:
            if not self._queue:
                if self._closing:
                    return
                self._wake.clear()
                await self._wake.wait()
                continue
            await self._fill()
            size = self._settings.audit_trail_batch_size
            batch = list(itertools.islice(self._queue, size))
            try:
                await self._send(batch)
            except ValidationError as exc:
                # Pangea will never take this batch; keeping it would stop the trail for good.
                log.error("audit trail: Pangea refused %d events (request_id=%s)", len(batch), exc.request_id)
            except Exception as exc:
                # Anything else (5xx after the client's retries, 429, no connection, a rejected token, a
                # bug) keeps the batch; the worker must outlive it, or every later event would be lost.
                failures += 1
                delay = self._backoff(failures, exc)
                log.warning(
                    "audit trail: %d events not sent (%s), retry %d in %.1fs",
                    len(batch),
                    type(exc).__name__ if isinstance(exc, PangeaError) else repr(exc)[:200],
                    failures,
                    delay,
                )
                await self._sleep(delay)
                continue
            else:
                self.sent += len(batch)
            failures = 0
            for _ in batch:
                self._queue.popleft()

    async def _fill(self) -> None:
        """Wait up to the batch interval for a full batch (not when shutting down)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._settings.audit_trail_interval
        while len(self._queue) < self._settings.audit_trail_batch_size and not self._closing:
            remaining = deadline - loop.time()
            if remaining <= 0:
                return
            self._wake.clear()
            with suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), remaining)

    def _backoff(self, failures: int, exc: Exception) -> float:
        retry_after = exc.retry_after if isinstance(exc, PangeaAPIError) else None
        if retry_after is not None:
            return min(retry_after, _MAX_BACKOFF)
        # Never a busy loop, even with PANGEA_RETRY_BACKOFF=0: the client already retried at once.
        first = max(self._settings.retry_backoff, _MIN_BACKOFF)
        base = min(first * 2.0 ** (failures - 1), _MAX_BACKOFF)
        return base * random.uniform(0.75, 1.0)  # noqa: S311 - jitter, not crypto

    async def _send(self, batch: list[_Item]) -> None:
        await self._sink.send(batch)

    def middleware(self) -> AuditTrailMiddleware:
        return AuditTrailMiddleware(self, include_arguments=self._settings.audit_trail_arguments)


def _client(context: MiddlewareContext[CallToolRequestParams]) -> dict[str, str]:
    ctx = context.fastmcp_context
    try:
        params = ctx.session.client_params if ctx is not None else None
    except RuntimeError:  # no session (e.g. a call made outside an MCP connection)
        params = None
    if params is None:
        return {}
    info = params.client_info
    return {"name": info.name, "version": info.version}


def _rfc3339(moment: datetime) -> str:
    return moment.isoformat(timespec="microseconds").replace("+00:00", "Z")


class AuditTrailMiddleware(Middleware):
    """Times each tool call and queues its event; the call never waits for the audit log."""

    def __init__(self, trail: AuditTrail, *, include_arguments: bool) -> None:
        self._trail = trail
        self._include_arguments = include_arguments

    async def on_call_tool(
        self,
        context: MiddlewareContext[CallToolRequestParams],
        call_next: CallNext[CallToolRequestParams, ToolResult],
    ) -> ToolResult:
        started = time.perf_counter()
        when = datetime.now(UTC)
        status = "failure"  # an unexpected exception, masked for the client
        try:
            result = await call_next(context)
            status = "error" if result.is_error else "success"
            return result
        except FastMCPError as exc:
            # FastMCP masks an unexpected exception as a ToolError raised from it: that is a failure.
            # Expected, reported errors (bad arguments, Pangea said no) come from our own exceptions.
            cause = exc.__cause__
            expected = cause is None or isinstance(
                cause, PangeaError | FastMCPError | PydanticValidationError
            )
            status = "error" if expected else "failure"
            raise
        except NotFoundError:
            status = "error"  # no such tool
            raise
        except asyncio.CancelledError:
            status = "cancelled"
            raise
        finally:
            elapsed_ms = (time.perf_counter() - started) * 1000
            self._trail.record(self.event(context, status, elapsed_ms, when))

    def event(
        self,
        context: MiddlewareContext[CallToolRequestParams],
        status: str,
        elapsed_ms: float,
        when: datetime,
    ) -> dict[str, str]:
        tool = context.message.name
        client = _client(context)
        actor = f"{client['name']}/{client['version']}" if client else "unknown MCP client"
        verb = {"success": "succeeded", "error": "failed", "cancelled": "was cancelled"}.get(
            status, "crashed"
        )
        details: dict[str, Any] = {
            "call_id": uuid.uuid4().hex,
            "duration_ms": round(elapsed_ms, 3),
            "client": client,
        }
        new = scrub(json.dumps(details, sort_keys=True, separators=(",", ":")))
        if self._include_arguments:
            details["arguments"] = _recorded_arguments(context.message.name, context.message.arguments or {})
            full = scrub(json.dumps(details, sort_keys=True, separators=(",", ":"), ensure_ascii=False))
            if len(full) <= MAX_TEXT:
                new = full
            else:
                details["arguments"] = f"[omitted: {len(full)} characters, over the {MAX_TEXT} limit]"
                new = scrub(json.dumps(details, sort_keys=True, separators=(",", ":")))
        return {
            "action": "tool_call",
            "actor": _clip(actor, LIMITS["actor"]),
            "target": _clip(tool, LIMITS["target"]),
            "status": status,
            "source": f"pangea-mcp/{__version__}",
            "message": _clip(f"tool {tool} {verb} in {elapsed_ms:.0f} ms", MAX_TEXT),
            "new": new,
            "timestamp": _rfc3339(when),
        }

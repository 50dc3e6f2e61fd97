"""In-memory TTL + LRU cache for the read-only intel lookups, shared by every client of one server."""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar, cast

from pangea_mcp.config import Settings

log = logging.getLogger(__name__)

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")

Clock = Callable[[], float]
#: Looks up the items it is given in ONE upstream call; returns the data of the items that have data (an
#: item left out is "no data") and the upstream request id. Raises on failure (nothing is cached then).
Fetch = Callable[[list[str]], Awaitable[tuple[Mapping[str, V], str | None]]]

#: Field descriptions shared by the tools that use the cache.
CACHED = (
    "True when answered from this server's cache of recent lookups, without an upstream call (the data "
    "may be up to PANGEA_CACHE_TTL seconds old, 5 minutes by default); false when looked up now"
)
REQUEST_ID = (
    "Pangea request id of the upstream call this lookup made; null when it made none (everything was "
    "answered from the cache or locally)"
)


class TTLCache(Generic[K, V]):
    """A least-recently-used cache whose entries also expire `ttl` seconds after they were stored.

    get and put are O(1). Nothing in here awaits, so the tasks of one event loop never see it half-updated
    (no lock needed); it is not meant to be shared between threads. `None` cannot be stored: get returns it
    for a miss. A ttl or size of 0 turns the cache off (put stores nothing).
    """

    __slots__ = ("_clock", "_entries", "size", "ttl")

    def __init__(self, ttl: float, size: int, *, clock: Clock = time.monotonic) -> None:
        if ttl < 0 or size < 0:
            raise ValueError("ttl and size must not be negative")
        self.ttl = ttl
        self.size = size
        self._clock = clock
        self._entries: OrderedDict[K, tuple[float, V]] = OrderedDict()

    @property
    def enabled(self) -> bool:
        return self.ttl > 0 and self.size > 0

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: K) -> V | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        expires, value = entry
        if self._clock() >= expires:
            del self._entries[key]
            return None
        self._entries.move_to_end(key)
        return value

    def put(self, key: K, value: V) -> None:
        if not self.enabled:
            return
        self._entries[key] = (self._clock() + self.ttl, value)
        self._entries.move_to_end(key)
        while len(self._entries) > self.size:
            self._entries.popitem(last=False)

    def clear(self) -> None:
        self._entries.clear()


@dataclass(frozen=True, slots=True)
class CacheScope:
    """What the cache keys of one lookup endpoint share: all that shapes the answer besides the item."""

    backend: str  # "pangea" or "local": a hybrid setup never mixes their answers
    origin: str  # where that backend is: the Pangea URL template, or "local"
    service: str
    path: str
    options: tuple[str, ...] = ()  # "name=value" for every request option (hash type, provider, ...)


@dataclass(frozen=True)
class Answer(Generic[V]):
    """What `IntelCache.lookup` found for a batch of items."""

    #: item -> data, for every item that has data; an item missing here had none in this lookup's own call.
    found: dict[str, V]
    #: The items answered without an upstream call of this lookup: from the cache, or from an identical
    #: lookup that was already in flight.
    cached: frozenset[str]
    #: The request id of this lookup's own upstream call; None when it made none.
    request_id: str | None


_Key = tuple[CacheScope, str]


class IntelCache:
    """Per-item cache of intel lookups, so a batch reuses the items it already knows.

    Only data is stored: a failed call stores nothing (the next lookup asks again), and neither does an
    item the upstream answer left without data. Concurrent lookups share work: when every item a lookup
    still misses is already being fetched by another one, it waits for that call instead of sending its
    own (and fetches what that call could not answer itself).
    """

    def __init__(self, ttl: float, size: int, *, clock: Clock = time.monotonic) -> None:
        self._store: TTLCache[_Key, object] = TTLCache(ttl, size, clock=clock)
        self._flights: dict[_Key, asyncio.Future[Mapping[str, object]]] = {}

    @classmethod
    def from_settings(cls, settings: Settings, *, clock: Clock | None = None) -> IntelCache:
        """PANGEA_CACHE_TTL and PANGEA_CACHE_SIZE; `clock` (monotonic seconds) is for tests."""
        return cls(settings.cache_ttl, settings.cache_size, clock=clock or time.monotonic)

    @property
    def enabled(self) -> bool:
        return self._store.enabled

    def __len__(self) -> int:
        return len(self._store)

    def clear(self) -> None:
        self._store.clear()

    async def lookup(self, scope: CacheScope, items: Sequence[str], fetch: Fetch[V]) -> Answer[V]:
        """Answer `items` from the cache where possible and fetch the others in one call of `fetch`.

        Every value stored under `scope` must be of the type `fetch` returns, so a scope names one
        backend, service, endpoint and set of options (see `cache_scope`).
        """
        unique = list(dict.fromkeys(items))
        if not unique:
            return Answer({}, frozenset(), None)
        if not self.enabled:
            data, request_id = await fetch(unique)
            return Answer({i: data[i] for i in unique if i in data}, frozenset(), request_id)

        found: dict[str, V] = {}
        cached: set[str] = set()
        missing: list[str] = []
        for item in unique:
            # Values under one scope all come from the same typed fetch (see the docstring).
            value = cast("V | None", self._store.get((scope, item)))
            if value is None:
                missing.append(item)
            else:
                found[item] = value
                cached.add(item)

        hits = len(cached)
        if missing and all((scope, item) in self._flights for item in missing):
            flights = {self._flights[(scope, item)] for item in missing}
            log.debug("%s %s: %d item(s) wait for a call in flight", scope.service, scope.path, len(missing))
            for flight in flights:
                # shield: cancelling this lookup must not cancel the call other lookups wait for.
                await asyncio.shield(flight)
            still: list[str] = []
            for item in missing:
                shared = self._flights_result(scope, item, flights)
                if shared is None:
                    still.append(item)
                else:
                    found[item] = cast("V", shared)
                    cached.add(item)
            missing = still

        log.debug(
            "%s %s: %d cached, %d shared, %d to fetch",
            scope.service,
            scope.path,
            hits,
            len(cached) - hits,
            len(missing),
        )
        request_id = None
        if missing:
            data, request_id = await self._fetch(scope, missing, fetch)
            found.update(data)
        return Answer(found, frozenset(cached), request_id)

    def _flights_result(
        self, scope: CacheScope, item: str, flights: set[asyncio.Future[Mapping[str, object]]]
    ) -> object | None:
        for flight in flights:
            value = flight.result().get(item)
            if value is not None:
                return value
        # The flight ended without it (failed, cancelled, or no data): maybe the cache has it by now.
        return self._store.get((scope, item))

    async def _fetch(
        self, scope: CacheScope, items: list[str], fetch: Fetch[V]
    ) -> tuple[dict[str, V], str | None]:
        flight: asyncio.Future[Mapping[str, object]] = asyncio.get_running_loop().create_future()
        mine = [(scope, item) for item in items if (scope, item) not in self._flights]
        for key in mine:
            self._flights[key] = flight
        data: dict[str, V] = {}
        try:
            answer, request_id = await fetch(items)
            # Only what was asked for is kept, and only items with data: "no data" is asked again next time.
            data = {item: answer[item] for item in items if item in answer and answer[item] is not None}
            for item, value in data.items():
                self._store.put((scope, item), value)
        finally:
            for key in mine:
                if self._flights.get(key) is flight:
                    del self._flights[key]
            # Waiters always wake up; on failure they find nothing and fetch for themselves.
            flight.set_result(data)
        return data, request_id


def cache_scope(settings: Settings, service: str, path: str, **options: str) -> CacheScope:
    """The scope of one lookup endpoint: which backend answers it (and where), service, path, options.

    The backend is part of the key so a hybrid setup (local and Pangea answering the same tool at different
    times, or configurations) never mixes their answers; the URL template names the Pangea deployment.
    `options` are every request field besides the items that changes the answer (hash type, provider, ...);
    a local backend passes what shapes its answers (e.g. its data source) the same way.
    """
    # Service modules are named after the service slug (ip-intel -> ip_intel).
    backend = settings.service_backend(service.replace("-", "_"))
    origin = settings.url_template if backend == "pangea" else "local"
    pairs = tuple(f"{name}={value}" for name, value in sorted(options.items()))
    return CacheScope(backend, origin, service, path.strip("/"), pairs)

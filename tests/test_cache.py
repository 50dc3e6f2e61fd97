"""The intel cache: TTL + LRU store, per-item batch lookups, and the tools through a real MCP client."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from typing import Any, TypeVar

import httpx
import pytest
from fastmcp import Client
from fastmcp.exceptions import ToolError

from pangea_mcp.cache import Answer, CacheScope, IntelCache, TTLCache, cache_scope
from pangea_mcp.server import build_server
from tests.conftest import make_settings
from tests.fake_pangea import FakePangea

T = TypeVar("T")
TTL = 300.0
SHA256 = "142b638c6a60b60c7f9928da4fb85a5a8e1422a9ffdc9ee49e17e56ccca9cf6e"
SCOPE = CacheScope("pangea", "https://{SERVICE_NAME}.example", "ip-intel", "v2/reputation")
OTHER_SCOPE = CacheScope("pangea", "https://{SERVICE_NAME}.example", "ip-intel", "v2/geolocate")


class FakeClock:
    """A monotonic clock that moves only when told to."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def _no_sleep(_seconds: float) -> None:
    return None


# --- TTLCache -------------------------------------------------------------------------------------


def test_entries_expire_ttl_seconds_after_they_were_stored() -> None:
    clock = FakeClock()
    cache: TTLCache[str, str] = TTLCache(10, 100, clock=clock)
    cache.put("a", "A")
    clock.now += 9.999
    assert cache.get("a") == "A"  # reading does not extend the entry's life
    clock.now += 0.001
    assert cache.get("a") is None
    assert len(cache) == 0  # the expired entry is gone, not just hidden


def test_storing_again_restarts_the_ttl() -> None:
    clock = FakeClock()
    cache: TTLCache[str, str] = TTLCache(10, 100, clock=clock)
    cache.put("a", "old")
    clock.now += 8
    cache.put("a", "new")
    clock.now += 8
    assert cache.get("a") == "new"
    assert len(cache) == 1


def test_the_least_recently_used_entry_is_evicted_at_size() -> None:
    cache: TTLCache[str, str] = TTLCache(10, 2, clock=FakeClock())
    cache.put("a", "A")
    cache.put("b", "B")
    assert cache.get("a") == "A"  # now b is the least recently used
    cache.put("c", "C")
    assert len(cache) == 2
    assert cache.get("b") is None
    assert cache.get("a") == "A" and cache.get("c") == "C"


def test_size_is_a_hard_bound() -> None:
    cache: TTLCache[int, int] = TTLCache(10, 50, clock=FakeClock())
    for n in range(1000):
        cache.put(n, n)
    assert len(cache) == 50
    assert [cache.get(n) for n in (949, 950, 999)] == [None, 950, 999]


@pytest.mark.parametrize(("ttl", "size"), [(0, 100), (10, 0)])
def test_zero_ttl_or_size_turns_the_cache_off(ttl: float, size: int) -> None:
    cache: TTLCache[str, str] = TTLCache(ttl, size, clock=FakeClock())
    cache.put("a", "A")
    assert not cache.enabled
    assert cache.get("a") is None and len(cache) == 0


def test_negative_ttl_or_size_is_refused() -> None:
    with pytest.raises(ValueError, match="must not be negative"):
        TTLCache(-1, 10)
    with pytest.raises(ValueError, match="must not be negative"):
        TTLCache(1, -10)


# --- IntelCache.lookup ----------------------------------------------------------------------------


class Upstream:
    """A fetch that records what it was asked and answers from `data` (missing items: no data)."""

    def __init__(self, data: Mapping[str, str] | None = None) -> None:
        self.data = dict(data or {})
        self.calls: list[list[str]] = []
        self.error: Exception | None = None
        self.release: asyncio.Event | None = None  # when set, each call waits for it
        self.started = asyncio.Event()

    async def __call__(self, items: list[str]) -> tuple[dict[str, str], str | None]:
        self.calls.append(list(items))
        error = self.error  # as things stood when the call was sent
        self.started.set()
        if self.release is not None:
            await self.release.wait()
        if error is not None:
            raise error
        return {i: self.data[i] for i in items if i in self.data}, f"prq_{len(self.calls)}"


def _cache(clock: FakeClock | None = None, ttl: float = TTL, size: int = 100) -> IntelCache:
    return IntelCache(ttl, size, clock=clock or FakeClock())


async def test_a_batch_fetches_only_the_items_it_lacks_in_one_call() -> None:
    cache = _cache()
    upstream = Upstream({"a": "A", "b": "B", "c": "C"})
    first = await cache.lookup(SCOPE, ["a", "b", "a"], upstream)
    second = await cache.lookup(SCOPE, ["c", "b", "a"], upstream)
    third = await cache.lookup(SCOPE, ["b"], upstream)

    assert upstream.calls == [["a", "b"], ["c"]]
    assert (first.found, first.cached, first.request_id) == ({"a": "A", "b": "B"}, frozenset(), "prq_1")
    assert (second.found, second.cached, second.request_id) == (
        {"a": "A", "b": "B", "c": "C"},
        frozenset({"a", "b"}),
        "prq_2",
    )
    assert (third.found, third.cached, third.request_id) == ({"b": "B"}, frozenset({"b"}), None)


async def test_a_failed_call_is_not_cached_and_is_retried_next_time() -> None:
    cache = _cache()
    upstream = Upstream({"a": "A"})
    upstream.error = RuntimeError("upstream broke")
    with pytest.raises(RuntimeError, match="upstream broke"):
        await cache.lookup(SCOPE, ["a"], upstream)
    assert len(cache) == 0

    upstream.error = None
    answer = await cache.lookup(SCOPE, ["a"], upstream)
    assert upstream.calls == [["a"], ["a"]]
    assert answer.found == {"a": "A"} and answer.cached == frozenset()


async def test_items_without_data_are_asked_again() -> None:
    cache = _cache()
    upstream = Upstream({"a": "A"})
    first = await cache.lookup(SCOPE, ["a", "gone"], upstream)
    upstream.data["gone"] = "back"
    second = await cache.lookup(SCOPE, ["a", "gone"], upstream)
    assert first.found == {"a": "A"}
    assert upstream.calls == [["a", "gone"], ["gone"]]
    assert second.found == {"a": "A", "gone": "back"} and second.cached == frozenset({"a"})


async def test_only_the_items_asked_for_are_stored() -> None:
    cache = _cache()

    async def chatty(items: list[str]) -> tuple[dict[str, str], str | None]:
        return {"a": "A", "unasked": "X"}, "prq_1"

    answer = await cache.lookup(SCOPE, ["a"], chatty)
    assert answer.found == {"a": "A"}
    assert len(cache) == 1


async def test_scopes_keep_the_same_item_apart() -> None:
    cache = _cache()
    reputation, geolocation = Upstream({"a": "verdict"}), Upstream({"a": "place"})
    await cache.lookup(SCOPE, ["a"], reputation)
    answer = await cache.lookup(OTHER_SCOPE, ["a"], geolocation)
    again = await cache.lookup(SCOPE, ["a"], reputation)
    assert answer.found == {"a": "place"} and answer.cached == frozenset()
    assert again.found == {"a": "verdict"} and again.cached == frozenset({"a"})
    assert (reputation.calls, geolocation.calls) == ([["a"]], [["a"]])


async def test_entries_expire_and_are_fetched_again() -> None:
    clock = FakeClock()
    cache = _cache(clock)
    upstream = Upstream({"a": "A"})
    await cache.lookup(SCOPE, ["a"], upstream)
    clock.now += TTL - 0.5
    assert (await cache.lookup(SCOPE, ["a"], upstream)).cached == frozenset({"a"})
    clock.now += 0.5
    late = await cache.lookup(SCOPE, ["a"], upstream)
    assert late.cached == frozenset() and late.request_id == "prq_2"
    assert upstream.calls == [["a"], ["a"]]


@pytest.mark.parametrize(("ttl", "size"), [(0, 100), (TTL, 0)])
async def test_a_disabled_cache_fetches_every_item_every_time(ttl: float, size: int) -> None:
    cache = _cache(ttl=ttl, size=size)
    upstream = Upstream({"a": "A", "b": "B"})
    await cache.lookup(SCOPE, ["a"], upstream)
    answer = await cache.lookup(SCOPE, ["a", "b", "a"], upstream)
    assert upstream.calls == [["a"], ["a", "b"]]
    assert answer.found == {"a": "A", "b": "B"} and answer.cached == frozenset()
    assert answer.request_id == "prq_2"


async def test_no_items_make_no_call() -> None:
    upstream = Upstream()
    answer = await _cache().lookup(SCOPE, [], upstream)
    assert upstream.calls == [] and answer.request_id is None


# --- single flight ---------------------------------------------------------------------------------


async def _until(condition: Any, what: str) -> None:
    """Let other tasks run until `condition()` holds (no real waiting; fails instead of hanging)."""
    for _ in range(1000):
        if condition():
            return
        await asyncio.sleep(0)
    pytest.fail(f"never happened: {what}")


async def _done(task: asyncio.Task[T]) -> T:
    """The task's result; a task left hanging (a waiter never woken) fails the test instead of blocking it."""
    return await asyncio.wait_for(task, timeout=10)


async def _held_lookup(
    cache: IntelCache, upstream: Upstream, items: list[str]
) -> tuple[asyncio.Task[Answer[str]], asyncio.Event]:
    """A lookup whose upstream call has been sent and is held until the returned event is set."""
    release = upstream.release = asyncio.Event()
    task = asyncio.create_task(cache.lookup(SCOPE, items, upstream))
    await upstream.started.wait()
    return task, release


async def _waiting_lookup(
    cache: IntelCache, upstream: Upstream, items: list[str]
) -> asyncio.Task[Answer[str]]:
    """A second lookup, given the time to reach the call in flight and wait for it."""
    task = asyncio.create_task(cache.lookup(SCOPE, items, upstream))
    for _ in range(20):
        await asyncio.sleep(0)
    return task


async def test_a_lookup_waits_for_the_identical_call_in_flight() -> None:
    cache = _cache()
    upstream = Upstream({"a": "A"})
    leader, release = await _held_lookup(cache, upstream, ["a"])
    follower = await _waiting_lookup(cache, upstream, ["a"])
    assert not follower.done()  # it is waiting for the leader's call, not making its own
    release.set()
    first, second = await _done(leader), await _done(follower)

    assert upstream.calls == [["a"]]
    assert first.found == second.found == {"a": "A"}
    assert (first.cached, first.request_id) == (frozenset(), "prq_1")
    assert (second.cached, second.request_id) == (frozenset({"a"}), None)


async def test_when_the_call_in_flight_fails_the_waiter_asks_itself() -> None:
    cache = _cache()
    upstream = Upstream({"a": "A"})
    upstream.error = RuntimeError("leader's call broke")
    leader, release = await _held_lookup(cache, upstream, ["a"])
    upstream.error = None  # only the leader's call fails
    follower = await _waiting_lookup(cache, upstream, ["a"])
    assert not follower.done() and len(upstream.calls) == 1
    release.set()

    with pytest.raises(RuntimeError, match="leader's call broke"):
        await _done(leader)
    answer = await _done(follower)
    assert upstream.calls == [["a"], ["a"]]
    assert answer.found == {"a": "A"} and answer.cached == frozenset() and answer.request_id == "prq_2"


async def test_a_cancelled_leader_wakes_its_waiters() -> None:
    cache = _cache()
    upstream = Upstream({"a": "A"})
    leader, release = await _held_lookup(cache, upstream, ["a"])
    follower = await _waiting_lookup(cache, upstream, ["a"])
    leader.cancel()
    await _until(lambda: len(upstream.calls) == 2, "the waiter sends its own call")
    release.set()

    answer = await _done(follower)
    assert leader.cancelled()
    assert answer.found == {"a": "A"} and answer.request_id == "prq_2"


async def test_a_cancelled_waiter_does_not_cancel_the_call_in_flight() -> None:
    cache = _cache()
    upstream = Upstream({"a": "A"})
    leader, release = await _held_lookup(cache, upstream, ["a"])
    follower = await _waiting_lookup(cache, upstream, ["a"])
    follower.cancel()
    await asyncio.sleep(0)
    release.set()

    answer = await _done(leader)
    assert follower.cancelled()
    assert answer.found == {"a": "A"} and upstream.calls == [["a"]]


async def test_a_batch_with_new_items_does_not_wait_but_sends_one_call() -> None:
    cache = _cache()
    upstream = Upstream({"a": "A", "b": "B"})
    leader, release = await _held_lookup(cache, upstream, ["a"])
    other = asyncio.create_task(cache.lookup(SCOPE, ["a", "b"], upstream))
    await _until(lambda: len(upstream.calls) == 2, "the second batch sends its call")
    release.set()
    await _done(leader)
    answer = await _done(other)
    assert upstream.calls == [["a"], ["a", "b"]]
    assert answer.found == {"a": "A", "b": "B"} and answer.cached == frozenset()


# --- cache_scope ----------------------------------------------------------------------------------


def test_scope_names_backend_deployment_path_and_options() -> None:
    settings = make_settings(cache_ttl=TTL)
    base = cache_scope(settings, "file-intel", "/v2/reputation", hash_type="sha256")
    assert base == CacheScope(
        "pangea", "http://pangea.test/{SERVICE_NAME}", "file-intel", "v2/reputation", ("hash_type=sha256",)
    )
    assert cache_scope(settings, "file-intel", "v2/reputation", hash_type="md5") != base
    assert cache_scope(settings, "file-intel", "v1/reputation", hash_type="sha256") != base
    other_deployment = make_settings(cache_ttl=TTL, base_url_template="https://{SERVICE_NAME}.eu.example")
    assert cache_scope(other_deployment, "file-intel", "v2/reputation", hash_type="sha256") != base
    # Options are keyed by name, not by the order they were given in.
    assert cache_scope(settings, "x", "p", a="1", b="2") == cache_scope(settings, "x", "p", b="2", a="1")


def test_scope_keeps_local_and_pangea_answers_apart() -> None:
    pangea = cache_scope(make_settings(cache_ttl=TTL), "ip-intel", "v2/geolocate")
    hybrid = make_settings(cache_ttl=TTL, local_services="ip_intel")
    local = cache_scope(hybrid, "ip-intel", "v2/geolocate")
    assert (pangea.backend, local.backend, local.origin) == ("pangea", "local", "local")
    assert local != pangea
    # The other modules of the hybrid setup still go to Pangea.
    assert cache_scope(hybrid, "domain-intel", "v1/whois").backend == "pangea"


# --- the tools, through a real MCP client --------------------------------------------------------


def _server(fake: FakePangea, clock: FakeClock | None = None, **overrides: object) -> Any:
    settings = make_settings(**{"cache_ttl": TTL, **overrides})
    return build_server(settings, transport=fake.transport, sleep=_no_sleep, clock=clock or FakeClock())


async def _call(client: Client[Any], tool: str, args: dict[str, Any]) -> dict[str, Any]:
    result = await client.call_tool(tool, args)
    assert result.structured_content is not None
    return result.structured_content


def _flags(data: dict[str, Any]) -> list[bool]:
    return [r["cached"] for r in data["results"]] if "results" in data else [data["cached"]]


def _answer(data: dict[str, Any]) -> dict[str, Any]:
    """The data of a result without the cache bookkeeping (`cached`, request_id)."""
    drop = {"cached", "request_id"}
    out = {k: v for k, v in data.items() if k not in drop}
    if "results" in out:
        out["results"] = [{k: v for k, v in r.items() if k not in drop} for r in out["results"]]
    return out


LOOKUPS = [
    ("lookup_ip_address_reputation", {"ipAddresses": ["8.8.8.8"]}, "ip-intel", "v2/reputation"),
    ("geolocate", {"ipAddresses": ["8.8.8.8"]}, "ip-intel", "v2/geolocate"),
    ("lookup_domain_from_ip_address", {"ipAddresses": ["8.8.8.8"]}, "ip-intel", "v2/domain"),
    ("is_vpn", {"ipAddresses": ["8.8.8.8"]}, "ip-intel", "v2/vpn"),
    ("is_proxy", {"ipAddresses": ["8.8.8.8"]}, "ip-intel", "v2/proxy"),
    ("lookup_domain_reputation", {"domains": ["example.com"]}, "domain-intel", "v2/reputation"),
    ("whois", {"domain": "example.org"}, "domain-intel", "v1/whois"),
    ("lookup_url_reputation", {"urls": ["https://example.com/login"]}, "url-intel", "v2/reputation"),
    ("lookup_file_reputation", {"hashes": [SHA256]}, "file-intel", "v2/reputation"),
    ("check_ip_embargo", {"ip": "213.24.238.26"}, "embargo", "v1/ip/check"),
    ("check_iso_code_embargo", {"isoCode": "cu"}, "embargo", "v1/iso/check"),
    ("check_breached", {"email": "jane@example.com"}, "user-intel", "v2/user/breached"),
]


@pytest.mark.parametrize(("tool", "args", "service", "path"), LOOKUPS)
async def test_a_repeated_lookup_is_answered_without_an_upstream_request(
    fake: FakePangea, tool: str, args: dict[str, Any], service: str, path: str
) -> None:
    async with Client(_server(fake)) as client:
        first = await _call(client, tool, args)
        sent = len(fake.requests)
        second = await _call(client, tool, args)

    assert len(fake.requests) == sent  # nothing at all went upstream
    assert len(fake.calls(service, path)) == 1
    assert first["request_id"].startswith("prq_") and set(_flags(first)) == {False}
    assert second["request_id"] is None and set(_flags(second)) == {True}
    assert _answer(second) == _answer(first)


BATCHES = [
    ("lookup_ip_address_reputation", "ipAddresses", ["8.8.8.8", "1.1.1.1"], "9.9.9.9", "ip-intel", "ips"),
    ("lookup_domain_reputation", "domains", ["example.com", "pangea.cloud"], "example.net", "domain-intel", "domains"),
    ("lookup_url_reputation", "urls", ["https://a.example/x", "https://b.example/"], "https://c.example/", "url-intel", "urls"),
    ("lookup_file_reputation", "hashes", ["a" * 64, "b" * 64], "c" * 64, "file-intel", "hashes"),
]  # fmt: skip


@pytest.mark.parametrize(("tool", "arg", "known", "new", "service", "field"), BATCHES)
async def test_a_batch_with_one_new_item_sends_only_that_item(
    fake: FakePangea, tool: str, arg: str, known: list[str], new: str, service: str, field: str
) -> None:
    async with Client(_server(fake)) as client:
        await _call(client, tool, {arg: known})
        mixed = await _call(client, tool, {arg: [known[1], new, known[0]]})

    bodies = fake.bodies(service, "v2/reputation")
    assert [body[field] for body in bodies] == [known, [new]]
    assert _flags(mixed) == [True, False, True]
    assert mixed["request_id"].startswith("prq_")  # the id of the call for the new item
    assert mixed["results"][1]["verdict"] is not None and mixed["results"][0]["verdict"] is not None


async def test_private_addresses_are_neither_cached_nor_sent(fake: FakePangea) -> None:
    async with Client(_server(fake)) as client:
        await _call(client, "is_vpn", {"ipAddresses": ["8.8.8.8"]})
        data = await _call(client, "is_vpn", {"ipAddresses": ["10.0.0.1", "8.8.8.8"]})
    assert fake.bodies("ip-intel", "v2/vpn") == [{"ips": ["8.8.8.8"]}]
    assert _flags(data) == [False, True]
    assert data["results"][0]["scope"] == "private" and data["request_id"] is None


@pytest.mark.parametrize(
    ("http", "status", "attempts"),
    [(400, "ValidationError", 1), (500, "InternalError", 4), (502, "ProviderError", 4)],
)
async def test_a_failed_lookup_is_retried_upstream_next_time(
    fake: FakePangea, http: int, status: str, attempts: int
) -> None:
    errors = {"errors": [{"code": "BadFormatIPAddress", "detail": "bad ip", "source": "/ips/0"}]}
    result = errors if status == "ValidationError" else None
    fake.on(
        "ip-intel",
        "v2/reputation",
        http=http,
        status=status,
        summary="it went wrong",
        result=result,
        times=attempts,
    )
    async with Client(_server(fake, request_retries=3)) as client:
        with pytest.raises(ToolError, match="it went wrong"):
            await client.call_tool("lookup_ip_address_reputation", {"ipAddresses": ["8.8.8.8"]})
        assert len(fake.calls("ip-intel", "v2/reputation")) == attempts
        retried = await _call(client, "lookup_ip_address_reputation", {"ipAddresses": ["8.8.8.8"]})
        again = await _call(client, "lookup_ip_address_reputation", {"ipAddresses": ["8.8.8.8"]})

    assert len(fake.calls("ip-intel", "v2/reputation")) == attempts + 1
    assert _flags(retried) == [False] and retried["results"][0]["verdict"] is not None
    assert _flags(again) == [True]  # the success is what got cached


@pytest.mark.parametrize(
    ("tool", "args", "service", "path"),
    [
        ("whois", {"domain": "example.org"}, "domain-intel", "v1/whois"),
        ("check_iso_code_embargo", {"isoCode": "CU"}, "embargo", "v1/iso/check"),
        ("check_breached", {"username": "shortpatrick"}, "user-intel", "v2/user/breached"),
    ],
)
async def test_a_failed_single_item_lookup_is_retried_upstream_next_time(
    fake: FakePangea, tool: str, args: dict[str, Any], service: str, path: str
) -> None:
    fake.on(service, path, http=503, status="ServiceNotAvailable", summary="down", times=1)
    async with Client(_server(fake, request_retries=0)) as client:
        with pytest.raises(ToolError, match="down"):
            await client.call_tool(tool, args)
        retried = await _call(client, tool, args)
    assert len(fake.calls(service, path)) == 2
    assert _flags(retried) == [False] and retried["request_id"].startswith("prq_")


async def test_an_address_pangea_had_no_data_for_is_asked_again(fake: FakePangea) -> None:
    fake.on("ip-intel", "v2/proxy", result={"data": {}})
    async with Client(_server(fake)) as client:
        empty = await _call(client, "is_proxy", {"ipAddresses": ["8.8.4.4"]})
        found = await _call(client, "is_proxy", {"ipAddresses": ["8.8.4.4"]})
    assert empty["results"][0]["note"] == "Pangea returned no data for this address"
    assert _flags(empty) == [False]
    assert len(fake.calls("ip-intel", "v2/proxy")) == 2
    assert found["results"][0]["is_proxy"] is not None and _flags(found) == [False]


async def test_embargo_answers_without_data_are_asked_again(fake: FakePangea) -> None:
    fake.on("embargo", "v1/ip/check", http=404, status="IPNotFound", summary="IP not found")
    fake.on("embargo", "v1/ip/check", result=None)
    async with Client(_server(fake)) as client:
        not_located = await _call(client, "check_ip_embargo", {"ip": "8.8.8.8"})
        null_result = await _call(client, "check_ip_embargo", {"ip": "8.8.8.8"})
        checked = await _call(client, "check_ip_embargo", {"ip": "8.8.8.8"})
        cached = await _call(client, "check_ip_embargo", {"ip": "8.8.8.8"})
    assert len(fake.calls("embargo", "v1/ip/check")) == 3
    assert "IPNotFound" in not_located["note"] and not_located["request_id"].startswith("prq_")
    assert "nothing was checked" in null_result["note"]
    assert checked["note"] is None and _flags(checked) == [False]
    assert cached["note"] is None and _flags(cached) == [True] and cached["request_id"] is None


async def test_tools_on_the_same_item_do_not_share_answers(fake: FakePangea) -> None:
    async with Client(_server(fake)) as client:
        geo = await _call(client, "geolocate", {"ipAddresses": ["8.8.8.8"]})
        rep = await _call(client, "lookup_ip_address_reputation", {"ipAddresses": ["8.8.8.8"]})
        vpn = await _call(client, "is_vpn", {"ipAddresses": ["8.8.8.8"]})
        user = await _call(client, "check_breached", {"username": "example.com"})
        domain = await _call(client, "check_breached", {"domain": "example.com"})
        sent = len(fake.requests)
        geo_again = await _call(client, "geolocate", {"ipAddresses": ["8.8.8.8"]})
        rep_again = await _call(client, "lookup_ip_address_reputation", {"ipAddresses": ["8.8.8.8"]})
        domain_again = await _call(client, "check_breached", {"domain": "example.com"})

    assert len(fake.requests) == sent
    assert [len(fake.calls("ip-intel", p)) for p in ("v2/geolocate", "v2/reputation", "v2/vpn")] == [1, 1, 1]
    assert fake.bodies("user-intel", "v2/user/breached") == [
        {"usernames": ["example.com"]},
        {"domains": ["example.com"]},
    ]
    assert _flags(geo) == _flags(rep) == _flags(vpn) == _flags(user) == _flags(domain) == [False]
    assert "country" in geo_again["results"][0] and "verdict" not in geo_again["results"][0]
    assert "verdict" in rep_again["results"][0] and "country" not in rep_again["results"][0]
    assert _answer(geo_again) == _answer(geo) and _answer(rep_again) == _answer(rep)
    assert domain_again["identifier"] == "domain" and _flags(domain_again) == [True]


async def test_an_expired_answer_is_fetched_again(fake: FakePangea) -> None:
    clock = FakeClock()
    async with Client(_server(fake, clock)) as client:
        await _call(client, "whois", {"domain": "example.org"})
        clock.now += TTL - 0.001
        fresh = await _call(client, "whois", {"domain": "example.org"})
        clock.now += 0.001
        expired = await _call(client, "whois", {"domain": "example.org"})
    assert len(fake.calls("domain-intel", "v1/whois")) == 2
    assert _flags(fresh) == [True] and _flags(expired) == [False]
    assert expired["request_id"].startswith("prq_")


async def test_the_cache_size_bounds_what_is_kept(fake: FakePangea) -> None:
    async with Client(_server(fake, cache_size=1)) as client:
        for ip in ("8.8.8.8", "1.1.1.1", "1.1.1.1", "8.8.8.8"):
            await _call(client, "is_vpn", {"ipAddresses": [ip]})
    assert fake.bodies("ip-intel", "v2/vpn") == [
        {"ips": ["8.8.8.8"]},
        {"ips": ["1.1.1.1"]},
        {"ips": ["8.8.8.8"]},
    ]


@pytest.mark.parametrize(("ttl", "size"), [(0, 10_000), (TTL, 0)])
async def test_the_cache_can_be_turned_off(fake: FakePangea, ttl: float, size: int) -> None:
    async with Client(_server(fake, cache_ttl=ttl, cache_size=size)) as client:
        first = await _call(client, "is_vpn", {"ipAddresses": ["8.8.8.8"]})
        second = await _call(client, "is_vpn", {"ipAddresses": ["8.8.8.8"]})
    assert len(fake.calls("ip-intel", "v2/vpn")) == 2
    assert _flags(first) == _flags(second) == [False]
    assert second["request_id"].startswith("prq_")


async def test_password_checks_are_never_cached(fake: FakePangea) -> None:
    async with Client(_server(fake)) as client:
        first = await _call(client, "check_password_breached", {"password": "password"})
        second = await _call(client, "check_password_breached", {"password": "password"})
    assert len(fake.calls("user-intel", "v1/password/breached")) == 2
    assert first["status"] == second["status"] == "breached"
    assert "cached" not in second and second["request_id"].startswith("prq_")


async def test_concurrent_identical_lookups_share_one_upstream_call(
    fake: FakePangea, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="pangea_mcp.cache")
    gate, arrived = asyncio.Event(), asyncio.Event()

    async def gated(scope: Any, receive: Any, send: Any) -> None:
        # Holds Pangea's answer until the second call is known to be waiting for the first.
        if scope["type"] == "http" and scope["path"].startswith("/ip-intel/"):
            arrived.set()
            await gate.wait()
        await fake.app(scope, receive, send)

    settings = make_settings(cache_ttl=TTL)
    server = build_server(settings, transport=httpx.ASGITransport(app=gated), clock=FakeClock())
    args = {"ipAddresses": ["8.8.8.8"]}
    async with Client(server) as client:
        first = asyncio.create_task(client.call_tool("is_vpn", args))
        await arrived.wait()
        second = asyncio.create_task(client.call_tool("is_vpn", args))
        await _until(
            lambda: any("wait for a call in flight" in r.getMessage() for r in caplog.records),
            "the second call waits for the first one's upstream call",
        )
        gate.set()
        one, two = (await _done(first)).structured_content, (await _done(second)).structured_content

    assert len(fake.calls("ip-intel", "v2/vpn")) == 1
    assert one is not None and two is not None
    assert _flags(one) == [False] and one["request_id"].startswith("prq_")
    assert _flags(two) == [True] and two["request_id"] is None
    assert _answer(one) == _answer(two)

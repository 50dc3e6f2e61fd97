"""PangeaClient: URL building, envelope, status table, retries, Retry-After, 202 polling, timeouts."""

from __future__ import annotations

import httpx
import pytest

from pangea_mcp import errors
from pangea_mcp.client import PangeaClient
from pangea_mcp.config import Settings
from pangea_mcp.errors import PangeaPending, PangeaUnavailable
from pangea_mcp.models import PangeaRequest, PangeaResult
from pangea_mcp.vault import ServiceToken
from tests.conftest import make_settings
from tests.fake_pangea import FakePangea


class _Ips(PangeaRequest):
    ips: list[str]


class _Data(PangeaResult):
    data: dict[str, dict[str, object]]


class Sleeps(list[float]):
    async def __call__(self, seconds: float) -> None:
        self.append(seconds)


def _client(settings: Settings, fake: FakePangea, sleeps: Sleeps | None = None) -> PangeaClient:
    client = PangeaClient(settings, transport=fake.transport, sleep=sleeps)
    client.tokens = ServiceToken(settings, client)
    return client


async def _reputation(client: PangeaClient, *ips: str) -> _Data:
    async with client:
        response = await client.call("ip-intel", "v2/reputation", _Ips(ips=list(ips)), _Data)
    return response.result


@pytest.mark.parametrize(
    ("template", "domain", "expected"),
    [
        (None, None, "https://ip-intel.aws.us.pangea.cloud/v2/reputation"),
        ("http://127.0.0.1:8900/{SERVICE_NAME}", None, "http://127.0.0.1:8900/ip-intel/v2/reputation"),
        ("http://127.0.0.1:8900/{SERVICE_NAME}/", None, "http://127.0.0.1:8900/ip-intel/v2/reputation"),
        ("http://127.0.0.1:4010", None, "http://127.0.0.1:4010/v2/reputation"),
        (None, "aws.eu.pangea.cloud", "https://ip-intel.aws.eu.pangea.cloud/v2/reputation"),
        (
            "https://{SERVICE_NAME}.x.example",
            "aws.eu.pangea.cloud",
            "https://ip-intel.x.example/v2/reputation",
        ),
    ],
)
def test_service_url_follows_the_sdk(template: str | None, domain: str | None, expected: str) -> None:
    settings = make_settings(base_url_template=template, domain=domain)
    assert settings.service_url("ip-intel", "v2/reputation") == expected


async def test_success_sends_auth_and_body(fake: FakePangea) -> None:
    result = await _reputation(_client(make_settings(), fake), "8.8.8.8")

    call = fake.calls("ip-intel", "v2/reputation")[0]
    assert call.headers["authorization"] == "Bearer " + next(iter(fake.service_tokens))
    assert call.headers["user-agent"].startswith("pangea-mcp/")
    assert "x-pangea-retried-request-ids" not in call.headers
    assert call.body == {"ips": ["8.8.8.8"]}
    assert set(result.data) == {"8.8.8.8"}


async def test_500_500_then_success_retries_with_retried_ids(fake: FakePangea) -> None:
    fake.on("ip-intel", "v2/reputation", status="InternalError", times=2)
    sleeps = Sleeps()
    settings = make_settings(retry_backoff=0.5)

    result = await _reputation(_client(settings, fake, sleeps), "8.8.8.8")

    assert set(result.data) == {"8.8.8.8"}
    calls = fake.calls("ip-intel", "v2/reputation")
    assert len(calls) == 3
    assert "x-pangea-retried-request-ids" not in calls[0].headers
    first_id = calls[1].headers["x-pangea-retried-request-ids"]
    assert first_id.startswith("prq_") and "," not in first_id
    retried = calls[2].headers["x-pangea-retried-request-ids"].split(",")
    assert len(retried) == 2 and retried[0] == first_id
    # Exponential backoff with jitter in (0.75, 1]: ~0.5 s, then ~1 s.
    assert 0.375 <= sleeps[0] <= 0.5 and 0.75 <= sleeps[1] <= 1.0


@pytest.mark.parametrize("http", [500, 502, 503, 504])
async def test_each_retryable_code_is_retried(fake: FakePangea, http: int) -> None:
    fake.on("ip-intel", "v2/reputation", http=http)
    await _reputation(_client(make_settings(), fake, Sleeps()), "8.8.8.8")
    assert len(fake.calls("ip-intel", "v2/reputation")) == 2


async def test_retries_used_up_raise_the_last_error(fake: FakePangea) -> None:
    fake.on("ip-intel", "v2/reputation", status="InternalError", times=4)
    with pytest.raises(errors.InternalError) as info:
        await _reputation(_client(make_settings(request_retries=3), fake, Sleeps()), "8.8.8.8")
    assert len(fake.calls("ip-intel", "v2/reputation")) == 4
    assert info.value.request_id and info.value.request_id.startswith("prq_")


async def test_429_waits_for_retry_after(fake: FakePangea) -> None:
    fake.on("ip-intel", "v2/reputation", status="TooManyRequests", headers={"Retry-After": "2"})
    sleeps = Sleeps()
    await _reputation(_client(make_settings(), fake, sleeps), "8.8.8.8")
    assert sleeps == [2.0]
    assert len(fake.calls("ip-intel", "v2/reputation")) == 2


async def test_retry_after_longer_than_allowed_fails_at_once(fake: FakePangea) -> None:
    fake.on("ip-intel", "v2/reputation", status="TooManyRequests", headers={"Retry-After": "120"})
    sleeps = Sleeps()
    with pytest.raises(errors.TooManyRequests) as info:
        await _reputation(_client(make_settings(max_retry_after=30), fake, sleeps), "8.8.8.8")
    assert sleeps == []
    assert info.value.retry_after == 120


async def test_real_retry_after_wait_is_honoured(fake: FakePangea) -> None:
    """With the real sleep: the second attempt starts only after Retry-After has passed."""
    import time

    fake.on("ip-intel", "v2/reputation", status="TooManyRequests", headers={"Retry-After": "1"})
    started = time.monotonic()
    await _reputation(_client(make_settings(), fake), "8.8.8.8")
    assert time.monotonic() - started >= 1.0


# Every status Pangea documents, mapped to one exception class each (pangea-api.md 2.2).
STATUS_TABLE = [
    ("ValidationError", errors.ValidationError),
    ("Unauthorized", errors.Unauthorized),
    ("ServiceNotEnabled", errors.ServiceNotEnabled),
    ("ForbiddenVaultOperation", errors.Forbidden),
    ("NoCredit", errors.NoCredit),
    ("TooManyRequests", errors.TooManyRequests),
    ("ProviderError", errors.ProviderError),
    ("InternalError", errors.InternalError),
    ("ServiceNotAvailable", errors.ServiceUnavailable),
    ("MissingConfigID", errors.MissingConfigID),
    ("MissingConfigIDScope", errors.MissingConfigID),
    ("NotFound", errors.NotFound),
    ("IPNotFound", errors.NotFound),
    ("Failed", errors.PangeaAPIError),
]


@pytest.mark.parametrize(("status", "exc_type"), STATUS_TABLE)
async def test_status_maps_to_exception(fake: FakePangea, status: str, exc_type: type[Exception]) -> None:
    http = {"Failed": 400, "IPNotFound": 404, "MissingConfigIDScope": 400}.get(status)
    # Every 400 carries field errors (the spec's pangea-validation-errors schema).
    result = (
        {"errors": [{"code": "FieldRequired", "detail": "x", "source": "/"}]}
        if http == 400 or status in ("ValidationError", "MissingConfigID")
        else None
    )
    fake.on(
        "ip-intel",
        "v2/reputation",
        status=status,
        http=http,
        summary=f"{status} happened",
        result=result,
        times=5,
    )
    settings = make_settings(request_retries=0)
    with pytest.raises(exc_type) as info:
        await _reputation(_client(settings, fake, Sleeps()), "8.8.8.8")
    assert type(info.value) is exc_type
    assert info.value.status == status  # type: ignore[attr-defined]
    assert info.value.request_id.startswith("prq_")  # type: ignore[attr-defined]
    assert f"{status} happened" in str(info.value)


async def test_success_status_with_error_http_code_is_an_error(fake: FakePangea) -> None:
    """Decided on both: a 4xx carrying status Success is not a success."""
    fake.on("ip-intel", "v2/reputation", http=400, status="Success", result={"data": {}})
    with pytest.raises(errors.ValidationError):
        await _reputation(_client(make_settings(), fake, Sleeps()), "8.8.8.8")
    fake.violations.clear()  # the spec's 400 schema does not allow a Success body; that is the point


async def test_validation_error_carries_field_errors(fake: FakePangea) -> None:
    detail = {"code": "BadFormatIPAddress", "detail": "not an IP", "source": "/ips/0"}
    fake.on("ip-intel", "v2/reputation", status="ValidationError", result={"errors": [detail]})
    with pytest.raises(errors.ValidationError) as info:
        await _reputation(_client(make_settings(), fake, Sleeps()), "8.8.8.8")
    assert [e.model_dump() for e in info.value.errors] == [detail]
    assert "/ips/0: BadFormatIPAddress not an IP" in str(info.value)


async def test_non_json_5xx_is_retried_then_reported(fake: FakePangea) -> None:
    fake.on("ip-intel", "v2/reputation", http=502, raw=b"<html>Bad gateway</html>", times=4)
    with pytest.raises(errors.ProviderError) as info:
        await _reputation(_client(make_settings(), fake, Sleeps()), "8.8.8.8")
    assert "not a Pangea response" in str(info.value)
    assert len(fake.calls("ip-intel", "v2/reputation")) == 4


async def test_202_is_polled_until_done(fake: FakePangea) -> None:
    fake.on(
        "ip-intel", "v2/reputation", result={"data": {"8.8.8.8": {"verdict": "benign"}}}, accepted_polls=2
    )
    sleeps = Sleeps()
    result = await _reputation(_client(make_settings(poll_interval=1.0), fake, sleeps), "8.8.8.8")

    assert result.data == {"8.8.8.8": {"verdict": "benign"}}
    polls = fake.calls("ip-intel", "", method="GET") or [r for r in fake.requests if r.method == "GET"]
    assert len(polls) == 3
    assert all(p.path.startswith("request/prq_") for p in polls)
    assert all(p.headers["authorization"] == "Bearer " + next(iter(fake.service_tokens)) for p in polls)
    assert sleeps == [1.0, 4.0, 9.0]  # n-squared schedule, as the SDK


async def test_polling_gives_up_after_poll_timeout(fake: FakePangea) -> None:
    fake.on("ip-intel", "v2/reputation", result={"data": {}}, accepted_polls=100)
    sleeps = Sleeps()
    settings = make_settings(poll_interval=1.0, poll_timeout=0.05)
    with pytest.raises(PangeaPending) as info:
        await _reputation(_client(settings, fake, sleeps), "8.8.8.8")
    assert info.value.request_id.startswith("prq_")
    assert sum(sleeps) <= 0.05


async def test_progress_is_reported_while_polling(fake: FakePangea) -> None:
    fake.on("ip-intel", "v2/reputation", result={"data": {}}, accepted_polls=1)
    seen: list[tuple[float, float | None, str | None]] = []

    async def progress(done: float, total: float | None, message: str | None) -> None:
        seen.append((done, total, message))

    client = _client(make_settings(), fake, Sleeps())
    async with client:
        await client.call("ip-intel", "v2/reputation", _Ips(ips=["8.8.8.8"]), _Data, progress=progress)
    assert len(seen) >= 2 and seen[-1][0] == seen[-1][1]
    assert "prq_" in (seen[0][2] or "")


async def test_hanging_upstream_times_out_within_the_budget(fake: FakePangea) -> None:
    import time

    fake.on("ip-intel", "v2/reputation", delay=30)
    started = time.monotonic()
    with pytest.raises(PangeaUnavailable, match="PANGEA_REQUEST_TIMEOUT=0.3"):
        await _reputation(_client(make_settings(request_timeout=0.3), fake, Sleeps()), "8.8.8.8")
    assert time.monotonic() - started < 2
    assert len(fake.calls("ip-intel", "v2/reputation")) == 1  # an ambiguous timeout is not retried


async def test_connection_refused_is_retried_then_unavailable() -> None:
    attempts: list[httpx.Request] = []

    def refuse(request: httpx.Request) -> httpx.Response:
        attempts.append(request)
        raise httpx.ConnectError("connection refused", request=request)

    settings = make_settings()
    client = PangeaClient(settings, transport=httpx.MockTransport(refuse), sleep=Sleeps())
    client.tokens = ServiceToken(settings, client)
    with pytest.raises(PangeaUnavailable, match="could not connect"):
        async with client:
            await client.call("ip-intel", "v2/reputation", _Ips(ips=["8.8.8.8"]), _Data)
    assert len(attempts) == 4


async def test_unexpected_result_shape_is_a_clear_error(fake: FakePangea) -> None:
    fake.on("ip-intel", "v2/reputation", result={"data": ["not", "a", "map"]})
    with pytest.raises(errors.PangeaAPIError, match="does not understand"):
        await _reputation(_client(make_settings(), fake, Sleeps()), "8.8.8.8")
    fake.violations.clear()  # deliberately off-spec reply


async def test_poll_false_returns_the_accepted_result(fake: FakePangea) -> None:
    """Fire-and-forget endpoints (audit /v2/log_async): the 202 is the answer, nothing is polled."""
    fake.on("ip-intel", "v2/reputation", result={"data": {}}, accepted_polls=1)

    class Accepted(PangeaResult):
        location: str

    client = _client(make_settings(), fake, Sleeps())
    async with client:
        response = await client.call("ip-intel", "v2/reputation", _Ips(ips=["8.8.8.8"]), Accepted, poll=False)
    assert response.result.location.startswith("/ip-intel/request/prq_")
    assert [r.method for r in fake.requests] == ["POST"]
    fake._pending.clear()


@pytest.mark.parametrize(("http", "attempts"), [(500, 1), (502, 1), (504, 1), (503, 2), (429, 2)])
async def test_writes_are_retried_only_when_nothing_was_done(
    fake: FakePangea, http: int, attempts: int
) -> None:
    """A 500/502/504 on a write is ambiguous (the write may have happened): no blind retry."""
    fake.on("ip-intel", "v2/reputation", http=http)
    client = _client(make_settings(), fake, Sleeps())
    async with client:
        if attempts == 1:
            with pytest.raises(errors.PangeaAPIError):
                await client.call("ip-intel", "v2/reputation", _Ips(ips=["8.8.8.8"]), _Data, idempotent=False)
        else:
            await client.call("ip-intel", "v2/reputation", _Ips(ips=["8.8.8.8"]), _Data, idempotent=False)
    assert len(fake.calls("ip-intel", "v2/reputation")) == attempts

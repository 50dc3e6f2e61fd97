"""Local WHOIS over RDAP: routing through the shipped IANA bootstrap data, then real HTTP to a fake
RDAP server on 127.0.0.1 (tests/fake_rdap.py). Nothing here reaches the internet."""

from __future__ import annotations

import re
import socket
import time
from collections.abc import AsyncIterator
from contextlib import aclosing, asynccontextmanager
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from fastmcp.exceptions import ToolError

from pangea_mcp.errors import StartupError, tool_errors
from pangea_mcp.local.rdap import (
    RdapBadAnswer,
    RdapRefused,
    RdapUnavailable,
    RdapUnsupported,
    RdapWhois,
)
from pangea_mcp.local.rdap_mapping import WhoisData
from tests.conftest import make_settings
from tests.fake_rdap import FakeRdap, Reply, error_object, registrar_domain, verisign_domain

GOOGLE_AGE = (datetime.now(UTC) - datetime(1997, 9, 15, 4, tzinfo=UTC)).days


class ToFake(httpx.AsyncBaseTransport):
    """Delivers every request to the fake server while the client keeps the URL (and Host) it chose."""

    def __init__(self, fake_url: str) -> None:
        self.target = httpx.URL(fake_url)
        self.asked: list[str] = []
        self._inner = httpx.AsyncHTTPTransport()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.asked.append(str(request.url))
        request.url = request.url.copy_with(scheme="http", host=self.target.host, port=self.target.port)
        return await self._inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self._inner.aclose()


class NoNetwork(httpx.AsyncBaseTransport):
    def __init__(self) -> None:
        self.asked: list[str] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.asked.append(str(request.url))
        raise httpx.ConnectError("no network in tests", request=request)


@asynccontextmanager
async def whois_via(fake: FakeRdap, prefix: str, **settings: Any) -> AsyncIterator[RdapWhois]:
    """An RdapWhois whose PANGEA_RDAP_URL points at one registry of the running fake."""
    async with aclosing(RdapWhois(make_settings(rdap_url=f"{fake.url}{prefix}/", **settings))) as whois:
        yield whois


async def whois_routed(fake: FakeRdap, domain: str) -> tuple[WhoisData, list[str]]:
    """Look `domain` up routed by the shipped bootstrap data, every request answered by the running `fake`;
    also the URLs the client asked for."""
    with fake.serve() as url:
        transport = ToFake(url)
        async with aclosing(RdapWhois(make_settings(), transport=transport)) as whois:
            return await whois.whois(domain), transport.asked


# -- routing ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("domain", "server", "url"),
    [
        (
            "google.com",
            "https://rdap.verisign.com/com/v1/",
            "https://rdap.verisign.com/com/v1/domain/google.com",
        ),
        (
            "Example.NET.",
            "https://rdap.verisign.com/net/v1/",
            "https://rdap.verisign.com/net/v1/domain/example.net",
        ),
        (
            "wikipedia.org",
            "https://rdap.publicinterestregistry.org/rdap/",
            "https://rdap.publicinterestregistry.org/rdap/domain/wikipedia.org",
        ),
        ("bbc.co.uk", "https://rdap.nominet.uk/uk/", "https://rdap.nominet.uk/uk/domain/bbc.co.uk"),
        (
            "münchen.berlin",
            "https://rdap.nic.berlin/v1/",
            "https://rdap.nic.berlin/v1/domain/xn--mnchen-3ya.berlin",
        ),
    ],
)
def test_shipped_bootstrap_routes_each_tld_to_its_registry(domain: str, server: str, url: str) -> None:
    whois = RdapWhois(make_settings())
    assert whois.server_for(domain) == server
    assert whois.query_url(domain) == url
    assert whois.bootstrap_publication == "2026-03-23T19:00:02Z"


@pytest.mark.parametrize(
    ("domain", "message"),
    [
        ("example.de", "the registry of .de publishes no RDAP server in the IANA bootstrap data"),
        ("example.kg", "IANA lists only a plain-HTTP RDAP server for .kg (http://rdap.cctld.kg/)"),
    ],
)
async def test_tld_without_an_https_rdap_server_fails_before_any_request(domain: str, message: str) -> None:
    transport = NoNetwork()
    async with aclosing(RdapWhois(make_settings(), transport=transport)) as whois:
        with pytest.raises(RdapUnsupported, match=re.escape(message)):
            await whois.whois(domain)
        # Through the tools' error bridge it becomes an isError text the model can act on.
        with (
            pytest.raises(ToolError, match=f"WHOIS for {domain} is not available locally") as caught,
            tool_errors(),
        ):
            await whois.whois(domain)
    assert "the Pangea backend" in str(caught.value)
    assert transport.asked == []


async def test_bootstrap_routed_lookup_reaches_verisign_then_the_registrar() -> None:
    fake = FakeRdap(registrar_base="https://rdap.markmonitor.com")
    found, asked = await whois_routed(fake, "Google.com")

    assert asked == [
        "https://rdap.verisign.com/com/v1/domain/google.com",
        "https://rdap.markmonitor.com/rdap/domain/GOOGLE.COM",
    ]
    assert [(r.host, r.path) for r in fake.requests] == [
        ("rdap.verisign.com", "/com/v1/domain/google.com"),
        ("rdap.markmonitor.com", "/rdap/domain/GOOGLE.COM"),
    ]
    assert fake.requests[0].headers["accept"].startswith("application/rdap+json")
    assert found == WhoisData(
        found=True,
        domain_name="google.com",
        domain_availability="UNAVAILABLE",
        # The registry's dates, status and name servers win; the registrar adds the contacts and the
        # last-changed date the registry does not send.
        created_date="1997-09-15T04:00:00Z",
        updated_date="2024-08-02T02:17:33Z",
        expires_date="2028-09-14T04:00:00Z",
        host_names=["ns1.google.com", "ns2.google.com"],
        registrar_name="MarkMonitor Inc.",
        contact_email=None,
        estimated_domain_age=GOOGLE_AGE,
        registrant_organization="Google LLC",
        registrant_country="US",
        status=[
            "client delete prohibited",
            "client transfer prohibited",
            "client update prohibited",
            "server delete prohibited",
            "server transfer prohibited",
            "server update prohibited",
        ],
        rdap_url="https://rdap.verisign.com/com/v1/domain/google.com",
        registrar_rdap_url="https://rdap.markmonitor.com/rdap/domain/GOOGLE.COM",
    )


# -- the override and the mapping ------------------------------------------------------------------


async def test_override_sends_lookups_to_the_configured_server() -> None:
    fake = FakeRdap()
    with fake.serve() as url:
        async with whois_via(fake, "/com/v1") as whois:
            found = await whois.whois("google.com")

    assert fake.paths() == ["/com/v1/domain/google.com", "/rdap/domain/GOOGLE.COM"]
    assert found.rdap_url == f"{url}/com/v1/domain/google.com"
    assert found.registrar_rdap_url == f"{url}/rdap/domain/GOOGLE.COM"
    assert (found.registrant_organization, found.registrant_country) == ("Google LLC", "US")
    assert found.note is None


async def test_thick_registry_record_keeps_published_fields_and_drops_redacted_ones() -> None:
    fake = FakeRdap()
    with fake.serve():
        async with whois_via(fake, "/org") as whois:
            found = await whois.whois("example.org")

    assert fake.paths() == ["/org/domain/example.org"]
    assert found.registrar_name == "GoDaddy.com, LLC"
    assert found.registrant_organization == "Example Nonprofit Society"
    assert found.registrant_country == "CA"
    assert found.contact_email is None  # "REDACTED FOR PRIVACY" is not an address
    assert (found.created_date, found.updated_date, found.expires_date) == (
        "2003-05-21T18:11:42Z",
        "2026-05-06T10:01:02Z",
        "2027-05-21T18:11:42Z",
    )
    assert found.registrar_rdap_url is None and found.note is None


async def test_published_registrant_email_is_returned_and_fully_redacted_contacts_are_noted() -> None:
    fake = FakeRdap()
    person = fake.registries["/org"]["example.org"]["entities"][1]["vcardArray"][1]
    person[4] = ["email", {}, "text", "mailto:hostmaster@example.org"]
    fake.registries["/com/v1"]["private.com"] = verisign_domain("private.com", related=False)
    with fake.serve():
        async with whois_via(fake, "/org") as whois:
            published = await whois.whois("example.org")
        async with whois_via(fake, "/com/v1") as whois:
            private = await whois.whois("private.com")

    assert published.contact_email == "hostmaster@example.org"
    assert (private.registrant_organization, private.registrant_country, private.contact_email) == (None,) * 3
    assert private.registrar_rdap_url is None
    assert private.note == "Registrant details are redacted or not published."


async def test_redaction_placeholders_are_not_reported_as_data() -> None:
    fake = FakeRdap()
    person = fake.registries["/org"]["example.org"]["entities"][1]["vcardArray"][1]
    person[2] = ["org", {}, "text", "Data Redacted"]
    person[3] = ["adr", {}, "text", ["", "", "", "", "", "", "REDACTED FOR PRIVACY"]]
    with fake.serve():
        async with whois_via(fake, "/org") as whois:
            found = await whois.whois("example.org")

    assert (found.registrant_organization, found.registrant_country, found.contact_email) == (None,) * 3
    assert found.note == "Registrant details are redacted or not published."
    assert found.registrar_name == "GoDaddy.com, LLC"


async def test_unregistered_domain_is_a_result_not_an_error() -> None:
    fake = FakeRdap()
    with fake.serve() as url:
        async with whois_via(fake, "/com/v1") as whois:
            free = await whois.whois("no-such-name-4711.com")
            host = await whois.whois("www.no-such-name-4711.com")

    assert free.found is False
    assert (free.domain_name, free.domain_availability, free.created_date) == (
        "no-such-name-4711.com",
        None,
        None,
    )
    assert free.rdap_url == f"{url}/com/v1/domain/no-such-name-4711.com"
    assert free.note is not None and "has no record of no-such-name-4711.com (HTTP 404)" in free.note
    assert "does not prove it can be registered" in free.note
    assert host.note is not None and "look up example.com" in host.note


# -- failures --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("reply", "error", "message"),
    [
        (
            Reply(429, error_object(429, "Too Many Requests"), headers={"Retry-After": "120"}),
            RdapUnavailable,
            r"is rate-limiting this machine \(HTTP 429\)\. Wait 120 seconds",
        ),
        (Reply(500, error_object(500, "Internal Server Error")), RdapUnavailable, r"failed \(HTTP 500\)"),
        (Reply(503), RdapUnavailable, r"failed \(HTTP 503\)"),
        (Reply(403, error_object(403, "Forbidden")), RdapRefused, r"refused the query \(HTTP 403\)"),
        (Reply(400, error_object(400, "Bad Request")), RdapRefused, r"refused the query \(HTTP 400\)"),
        (Reply(200, raw=b"<html>maintenance</html>"), RdapBadAnswer, "not RDAP JSON"),
        (Reply(200, body=[1, 2]), RdapBadAnswer, "JSON that is not an RDAP object"),
        (
            Reply(200, body={"objectClassName": "entity", "handle": "X"}),
            RdapBadAnswer,
            "an object that is not a domain",
        ),
        (
            Reply(200, body={"objectClassName": "domain", "events": [{"eventDate": "2020-01-01T00:00:00Z"}]}),
            RdapBadAnswer,
            "not a valid RDAP domain object",
        ),
        (
            Reply(200, body=verisign_domain("other.com")),
            RdapBadAnswer,
            "answered for other.com instead of google.com",
        ),
    ],
)
async def test_registry_failures_become_actionable_errors(
    reply: Reply, error: type[Exception], message: str
) -> None:
    fake = FakeRdap()
    fake.on("/com/v1/domain/google.com", reply)
    with fake.serve():
        async with whois_via(fake, "/com/v1") as whois:
            with pytest.raises(error, match=message):
                await whois.whois("google.com")
            with pytest.raises(ToolError, match=message), tool_errors():
                await whois.whois("google.com")
    assert "/rdap/domain/GOOGLE.COM" not in fake.paths()


async def test_slow_registry_fails_within_the_time_budget() -> None:
    fake = FakeRdap()
    fake.on("/com/v1/domain/google.com", Reply(delay=5))
    with fake.serve():
        async with whois_via(fake, "/com/v1", request_timeout=0.5) as whois:
            started = time.monotonic()
            with pytest.raises(RdapUnavailable, match=r"127\.0\.0\.1 did not answer within 0\.5 s"):
                await whois.whois("google.com")
            elapsed = time.monotonic() - started
    assert 0.4 < elapsed < 2


async def test_slow_or_failing_registrar_leaves_the_registry_record() -> None:
    fake = FakeRdap()
    fake.on("/rdap/domain/google.com", Reply(delay=5))
    with fake.serve():
        async with whois_via(fake, "/com/v1", request_timeout=1) as whois:
            started = time.monotonic()
            slow = await whois.whois("google.com")
            elapsed = time.monotonic() - started
        fake.on("/rdap/domain/google.com", Reply(500))
        async with whois_via(fake, "/com/v1") as whois:
            failing = await whois.whois("google.com")

    assert elapsed < 2
    for found in (slow, failing):
        assert (found.found, found.registrar_name, found.created_date) == (
            True,
            "MarkMonitor Inc.",
            "1997-09-15T04:00:00Z",
        )
        assert found.registrant_organization is None
    assert slow.note is not None and "did not answer in time; registry data only" in slow.note
    assert failing.note is not None and "failed (HTTP 500)" in failing.note


async def test_unreachable_server_is_reported() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed again before the lookup: nothing listens there
    async with aclosing(RdapWhois(make_settings(rdap_url=f"http://127.0.0.1:{port}/"))) as whois:
        with pytest.raises(
            RdapUnavailable, match=r"Could not reach the RDAP server 127\.0\.0\.1 \(ConnectError\)"
        ):
            await whois.whois("google.com")


# -- HTTPS only ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url", ["http://rdap.example.net/", "ftp://127.0.0.1/", "https://", "rdap.example.net"]
)
def test_override_must_be_https_or_loopback_http(url: str) -> None:
    with pytest.raises(StartupError, match="PANGEA_RDAP_URL must be an https:// URL"):
        RdapWhois(make_settings(rdap_url=url))


@pytest.mark.parametrize(
    ("registrar_base", "note"),
    [
        ("http://rdap.markmonitor.com", "Refused to query rdap.markmonitor.com over plain HTTP"),
        ("https://10.0.0.5", "Refused to follow an RDAP link to the non-public address 10.0.0.5"),
    ],
)
async def test_registry_links_to_plain_http_or_private_addresses_are_not_followed(
    registrar_base: str, note: str
) -> None:
    fake = FakeRdap(registrar_base=registrar_base)
    found, asked = await whois_routed(fake, "google.com")

    assert asked == ["https://rdap.verisign.com/com/v1/domain/google.com"]
    assert found.found and found.registrant_organization is None
    assert found.note is not None and note in found.note


async def test_redirect_to_plain_http_is_refused() -> None:
    fake = FakeRdap()
    fake.on(
        "/com/v1/domain/google.com",
        Reply(302, headers={"Location": "http://rdap.example.net/domain/google.com"}),
    )
    with fake.serve():
        async with whois_via(fake, "/com/v1") as whois:
            with pytest.raises(RdapRefused, match="Refused to query rdap.example.net over plain HTTP"):
                await whois.whois("google.com")
    assert fake.paths() == ["/com/v1/domain/google.com"]


async def test_redirect_within_https_is_followed() -> None:
    fake = FakeRdap(registrar_base="https://rdap.markmonitor.com")
    fake.registries["/v2"] = {"google.com": registrar_domain("google.com")}
    fake.on(
        "/com/v1/domain/google.com",
        Reply(301, headers={"Location": "https://rdap.verisign.com/v2/domain/google.com"}),
    )
    found, asked = await whois_routed(fake, "google.com")

    assert asked == [
        "https://rdap.verisign.com/com/v1/domain/google.com",
        "https://rdap.verisign.com/v2/domain/google.com",
    ]
    assert found.updated_date == "2024-08-02T02:17:33Z"

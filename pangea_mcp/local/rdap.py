"""Local WHOIS over RDAP: the domain's registry, found in IANA bootstrap data shipped with the package.

RDAP (RFC 9082/9083) is the registries' JSON successor of port-43 WHOIS. whoisit routes the query (the
IANA DNS bootstrap file in `data/iana-rdap-dns.json`, RFC 9224) and parses the answer; this module adds
HTTPS-only transport, a time budget, the registrar's own RDAP record for thin registries such as .com,
redaction handling and errors a model can act on. It is the only local tool that uses the network.
Loading whoisit and the bootstrap data is in rdap_bootstrap.py, the mapping to WhoisData in rdap_mapping.py.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import time
from typing import Any, ClassVar, Final
from urllib.parse import urlsplit

import httpx

from pangea_mcp import __version__
from pangea_mcp.config import Settings
from pangea_mcp.errors import PangeaError, StartupError
from pangea_mcp.local.rdap_bootstrap import load_whoisit
from pangea_mcp.local.rdap_mapping import Record, WhoisData, not_found, whois_data
from pangea_mcp.models import normalise_domain

log = logging.getLogger(__name__)

USER_AGENT: Final = f"pangea-mcp/{__version__}"


class RdapError(PangeaError):
    """A local WHOIS (RDAP) lookup failed; the message says what happened and what to do."""

    #: Whether asking again later can succeed.
    retryable: ClassVar[bool] = False


class RdapUnsupported(RdapError):
    """The IANA bootstrap data has no (HTTPS) RDAP server for the domain's TLD."""


class RdapUnavailable(RdapError):
    """The RDAP server timed out, could not be reached, rate-limited us or failed (5xx)."""

    retryable = True


class RdapRefused(RdapError):
    """The RDAP server refused the query, or a URL it pointed to is not safe to follow."""


class RdapBadAnswer(RdapError):
    """The RDAP server answered with something that is not an RDAP domain object."""


def _is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


class RdapWhois:
    """WHOIS records from the registries' RDAP servers (HTTPS only), one shared HTTP client.

    The server for a domain comes from the shipped IANA bootstrap data, or from `settings.rdap_url`
    (PANGEA_RDAP_URL) for every domain when set. The whole lookup (registry, then the registrar the
    registry points to) fits in `settings.request_timeout` seconds.
    """

    def __init__(self, settings: Settings, *, transport: httpx.AsyncBaseTransport | None = None) -> None:
        self._timeout = settings.request_timeout
        self._override = settings.rdap_url.strip() if settings.rdap_url else None
        self._loopback_http = False
        if self._override is not None:
            parts = urlsplit(self._override)
            host = parts.hostname or ""
            self._loopback_http = parts.scheme == "http" and _is_loopback(host)
            if not host or not (parts.scheme == "https" or self._loopback_http):
                raise StartupError(
                    "PANGEA_RDAP_URL must be an https:// URL such as https://rdap.example.net/ "
                    "(plain http:// is accepted only for a loopback test server, e.g. http://127.0.0.1:8080/)"
                )
        self._retry_after: dict[str, str] = {}
        self._http = httpx.AsyncClient(
            transport=transport,
            follow_redirects=True,
            max_redirects=3,
            headers={"Accept": "application/rdap+json, application/json;q=0.9", "User-Agent": USER_AGENT},
            timeout=httpx.Timeout(settings.request_timeout, connect=settings.connect_timeout),
            event_hooks={"request": [self._check_request], "response": [self._log_response]},
            trust_env=transport is None,
        )

    async def aclose(self) -> None:
        await self._http.aclose()

    @property
    def bootstrap_publication(self) -> str:
        """Publication time of the shipped IANA bootstrap snapshot, e.g. 2026-03-23T19:00:02Z."""
        return load_whoisit().publication

    def server_for(self, domain: str) -> str:
        """The registry's RDAP base URL from the shipped IANA data (RdapUnsupported when there is none)."""
        return self._registry_url(normalise_domain(domain)).rsplit("domain/", 1)[0]

    def query_url(self, domain: str) -> str:
        """The URL `whois` queries first: the override when set, else the registry's server."""
        name = normalise_domain(domain)
        if self._override is not None:
            return str(load_whoisit().builder.construct_url(self._override, "domain", name))
        return self._registry_url(name)

    def _registry_url(self, name: str) -> str:
        lib = load_whoisit()
        try:
            _method, url, _exact = lib.builder.build("domain", name)
        except lib.errors.UnsupportedError:
            tld = name.rsplit(".", 1)[-1]
            listed = lib.listed.get(tld)
            why = (
                f"IANA lists only a plain-HTTP RDAP server for .{tld} ({', '.join(listed)}), and RDAP "
                "answers are only trusted over HTTPS"
                if listed
                else f"the registry of .{tld} publishes no RDAP server in the IANA bootstrap data "
                f"(snapshot of {lib.publication})"
            )
            raise RdapUnsupported(
                f"WHOIS for {name} is not available locally: {why}. Use the registry's own WHOIS "
                "service for this domain, or the Pangea backend."
            ) from None
        return str(url)

    async def whois(self, domain: str) -> WhoisData:
        """The registration record of `domain` (normalised first; ValueError when it is not a domain).

        found=False when the registry answers 404. Raises an RdapError subclass (a PangeaError, so
        errors.tool_errors() turns it into an isError result) for anything else that goes wrong.
        """
        name = normalise_domain(domain)
        url = self.query_url(name)
        host = urlsplit(url).hostname or url
        deadline = asyncio.get_running_loop().time() + self._timeout
        started = time.perf_counter()
        try:
            async with asyncio.timeout_at(deadline):
                raw = await self._get(url)
        except TimeoutError:
            raise RdapUnavailable(
                f"WHOIS for {name} failed: the RDAP server {host} did not answer within "
                f"{self._timeout:g} s. Try again in a minute."
            ) from None
        if raw is None:
            return not_found(name, url, host)
        parsed = self._parse(name, raw, host)
        notes: list[str] = []
        related_url, registrar = await self._registrar_record(name, url, parsed, deadline, notes)
        log.info("rdap whois %s via %s in %.2f s", name, host, time.perf_counter() - started)
        return whois_data(name, url, (parsed, raw), related_url, registrar, notes)

    # -- HTTP --------------------------------------------------------------------------------------

    async def _check_request(self, request: httpx.Request) -> None:
        """Every request, redirects included: HTTPS only, and no literal private or loopback address."""
        host = request.url.host
        if self._loopback_http and _is_loopback(host):
            return  # the configured loopback test server (PANGEA_RDAP_URL=http://127.0.0.1:...)
        if request.url.scheme != "https":
            raise RdapRefused(
                f"Refused to query {request.url.host} over plain HTTP: RDAP answers are only trusted over "
                "HTTPS. The RDAP data of this registry cannot be fetched locally; use the Pangea backend."
            )
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            return
        if not address.is_global:
            raise RdapRefused(f"Refused to follow an RDAP link to the non-public address {host}.")

    async def _log_response(self, response: httpx.Response) -> None:
        host = response.request.url.host
        log.debug("rdap GET %s -> HTTP %d", host, response.status_code)
        if response.status_code == 429:
            # whoisit's RateLimitedError drops the headers; keep the server's Retry-After for the message.
            self._retry_after[host] = response.headers.get("retry-after", "").strip()

    async def _get(self, url: str) -> dict[str, Any] | None:
        """The RDAP object at `url`, or None for 404."""
        host = urlsplit(url).hostname or url
        lib = load_whoisit()
        try:
            # whoisit would otherwise impose its own 10 s per request.
            body = await lib.query(self._http, "GET", url).request(timeout=self._http.timeout)
        except lib.errors.ResourceDoesNotExist:
            return None
        except lib.errors.QueryError as exc:
            raise self._failure(host, exc) from None
        if not isinstance(body, dict):
            raise RdapBadAnswer(f"The RDAP server {host} answered with JSON that is not an RDAP object.")
        return body

    def _failure(self, host: str, exc: Exception) -> RdapError:
        errors = load_whoisit().errors
        cause = exc.__cause__
        if isinstance(cause, RdapError):
            return cause
        if isinstance(cause, httpx.TimeoutException):
            return RdapUnavailable(
                f"The RDAP server {host} did not answer within {self._timeout:g} s. Try again in a minute."
            )
        if isinstance(cause, httpx.HTTPError):
            return RdapUnavailable(
                f"Could not reach the RDAP server {host} ({type(cause).__name__}). Check this machine's "
                "internet access (or HTTPS proxy) and try again."
            )
        code = int(getattr(exc, "status_code", 0) or 0)
        if isinstance(exc, errors.RateLimitedError):
            after = self._retry_after.pop(host, "")
            wait = f"{after} seconds" if after.isdigit() else "a few minutes"
            return RdapUnavailable(
                f"The RDAP server {host} is rate-limiting this machine (HTTP 429). Wait {wait} before the "
                "next WHOIS lookup on this registry."
            )
        if code >= 500:
            return RdapUnavailable(f"The RDAP server {host} failed (HTTP {code}). Try again shortly.")
        if isinstance(exc, errors.ResourceAccessDeniedError) or code:
            return RdapRefused(
                f"The RDAP server {host} refused the query (HTTP {code}); asking again will not help. "
                "Check the domain name, or use the Pangea backend."
            )
        return RdapBadAnswer(f"The RDAP server {host} answered with something that is not RDAP JSON.")

    # -- RDAP objects ------------------------------------------------------------------------------

    def _parse(self, name: str, raw: dict[str, Any], host: str) -> dict[str, Any]:
        # whoisit picks its parser by objectClassName, so an entity or error object would pass as is.
        if raw.get("objectClassName", "domain") != "domain":
            raise RdapBadAnswer(f"The RDAP server {host} answered with an object that is not a domain.")
        lib = load_whoisit()
        try:
            parsed: dict[str, Any] = lib.parse(lib.bootstrap, "domain", name, raw)
        except (lib.errors.WhoisItError, ValueError, TypeError, AttributeError, KeyError, OverflowError):
            # Never echo the exception: whoisit puts the whole response in some messages.
            raise RdapBadAnswer(
                f"The RDAP server {host} answered with something that is not a valid RDAP domain object."
            ) from None
        answered = str(parsed.get("name") or "").rstrip(".").lower()
        if answered and answered != name:
            raise RdapBadAnswer(f"The RDAP server {host} answered for {answered} instead of {name}.")
        return parsed

    async def _registrar_record(
        self, name: str, url: str, parsed: dict[str, Any], deadline: float, notes: list[str]
    ) -> tuple[str | None, Record | None]:
        """Thin registries (.com, .net) keep contacts at the registrar: fetch the record they link to."""
        related = str(parsed.get("registrar_url") or "")
        if not related or related.rstrip("/").lower() == url.rstrip("/").lower():
            return None, None
        host = urlsplit(related).hostname or related
        try:
            async with asyncio.timeout_at(deadline):
                raw = await self._get(related)
        except TimeoutError:
            notes.append(f"The registrar's RDAP server {host} did not answer in time; registry data only.")
            return related, None
        except RdapError as exc:
            notes.append(f"The registrar's RDAP record could not be used ({exc}); registry data only.")
            return related, None
        if raw is None:
            notes.append(f"The registrar's RDAP server {host} has no record of {name}; registry data only.")
            return related, None
        try:
            return related, (self._parse(name, raw, host), raw)
        except RdapBadAnswer as exc:
            notes.append(f"{exc} Registry data only.")
            return related, None

"""IP Intel: reputation, geolocation, reverse domain, VPN and proxy checks for IP addresses."""

from __future__ import annotations

from collections.abc import Callable
from typing import Generic, TypeVar

from fastmcp import Context, FastMCP
from mcp.types import ToolAnnotations
from pydantic import Field

from pangea_mcp.backends import Backends
from pangea_mcp.cache import CACHED, REQUEST_ID, Fetch, cache_scope
from pangea_mcp.client import PangeaClient
from pangea_mcp.errors import tool_errors
from pangea_mcp.local.geo import ATTRIBUTION, DATA_BUILT, LocalGeolocator
from pangea_mcp.models import (
    IpAddressList,
    PangeaRequest,
    PangeaResult,
    Reputation,
    Scope,
    dedupe,
    ip_scope,
    normalise_ip,
    scope_note,
)

SERVICE = "ip-intel"
_LOOKUP = ToolAnnotations(
    read_only_hint=True, destructive_hint=False, idempotent_hint=True, open_world_hint=True
)

D = TypeVar("D", bound=PangeaResult)
I = TypeVar("I", bound="IpItem")  # noqa: E741


class _IpsRequest(PangeaRequest):
    # v2 endpoints take a list; one upstream call answers the whole batch.
    ips: list[str]


class _Bulk(PangeaResult, Generic[D]):
    data: dict[str, D] = Field(default_factory=dict)


class _Geo(PangeaResult):
    country: str | None = None
    country_code: str | None = None
    city: str | None = None
    postal_code: str | None = None
    latitude: float | None = None
    longitude: float | None = None
    # Only the local backend's data has these (Pangea's geolocation does not send them).
    as_name: str | None = None
    network: str | None = None


class _Domain(PangeaResult):
    domain_found: bool | None = None
    domain: str | None = None


class _Vpn(PangeaResult):
    is_vpn: bool | None = None


class _Proxy(PangeaResult):
    is_proxy: bool | None = None


class IpItem(PangeaResult):
    ip: str = Field(description="The address, normalised (IPv6 compressed)")
    scope: Scope = Field(description="public, or why it was not looked up (private, loopback, ...)")
    note: str | None = Field(default=None, description="Why data is missing, when it is")
    cached: bool = Field(default=False, description=CACHED)


class IpReputation(IpItem, Reputation):
    pass


class IpGeolocation(IpItem):
    country: str | None = None
    country_code: str | None = Field(default=None, description="ISO 3166-1 alpha-2")
    city: str | None = None
    postal_code: str | None = None
    latitude: float | None = None
    longitude: float | None = None
    as_name: str | None = Field(
        default=None, description="Network operator announcing the address (local backend only)"
    )
    network: str | None = Field(
        default=None, description="Address block (CIDR) the country applies to (local backend only)"
    )


class IpDomain(IpItem):
    domain_found: bool | None = Field(default=None, description="Whether a domain is registered for the IP")
    domain: str | None = None


class IpVpn(IpItem):
    is_vpn: bool | None = Field(default=None, description="True when the IP belongs to a VPN service")


class IpProxy(IpItem):
    is_proxy: bool | None = Field(default=None, description="True when the IP belongs to a proxy service")


class IpReport(PangeaResult, Generic[I]):
    results: list[I] = Field(description="One entry per distinct address, in the order given")
    request_id: str | None = Field(default=None, description=REQUEST_ID)


class IpReputationReport(IpReport[IpReputation]):
    pass


class IpGeolocationReport(IpReport[IpGeolocation]):
    pass


class IpDomainReport(IpReport[IpDomain]):
    pass


class IpVpnReport(IpReport[IpVpn]):
    pass


class IpProxyReport(IpReport[IpProxy]):
    pass


def _key(text: str) -> str | None:
    try:
        return normalise_ip(text)
    except ValueError:
        return None


def _pangea_fetch(pangea: PangeaClient, ctx: Context, path: str, data_type: type[D]) -> Fetch[D]:
    """The addresses' data from Pangea, in one v2 call (the cache asks only for what it lacks)."""

    async def fetch(ips: list[str]) -> tuple[dict[str, D], str | None]:
        response = await pangea.call(
            SERVICE,
            path,
            _IpsRequest(ips=ips),
            _Bulk[data_type],  # type: ignore[valid-type]
            progress=ctx.report_progress,
        )
        # The map is keyed by the IP as sent; normalise anyway in case Pangea reformats IPv6.
        data = {k: v for raw, v in response.result.data.items() if (k := _key(raw)) is not None}
        return data, response.request_id

    return fetch


def _local_geo_fetch(geolocator: LocalGeolocator) -> Fetch[_Geo]:
    """The addresses' country and operator from the offline database (no network, no request id)."""

    async def fetch(ips: list[str]) -> tuple[dict[str, _Geo], str | None]:
        found = await geolocator.geolocate(ips)
        fields = set(_Geo.model_fields)
        data = {ip: _Geo(**geo.model_dump(include=fields)) for ip, geo in found.items() if geo.found}
        return data, None

    return fetch


_PANGEA_MISSING = "Pangea returned no data for this address"
_LOCAL_MISSING = f"The offline GeoLite2 data ({DATA_BUILT.isoformat()}) has no country for this address"


async def _lookup(
    backends: Backends,
    path: str,
    ips: list[str],
    fetch: Fetch[D],
    item_type: Callable[..., I],
    missing: str = _PANGEA_MISSING,
) -> tuple[list[I], str | None]:
    """Look up the public addresses (cached ones from the cache, the others in one `fetch` call); answer
    the others locally; keep the caller's order. `fetch` is the seam for another backend."""
    unique = dedupe(ips)
    scopes = {ip: ip_scope(ip) for ip in unique}
    public = [ip for ip in unique if scopes[ip] == "public"]
    with tool_errors():
        answer = await backends.cache.lookup(cache_scope(backends.settings, SERVICE, path), public, fetch)
    items = []
    for ip in unique:
        scope = scopes[ip]
        found = answer.found.get(ip)
        if scope != "public":
            items.append(item_type(ip=ip, scope=scope, note=scope_note(scope)))
        elif found is None:
            items.append(item_type(ip=ip, scope=scope, note=missing))
        else:
            cached = ip in answer.cached
            items.append(item_type(ip=ip, scope=scope, cached=cached, **found.model_dump(exclude_none=True)))
    return items, answer.request_id


_GEOLOCATE = """Return the country, city, postal code and coordinates of each IP address.

Locations are provider estimates at city level; a VPN or proxy shows its exit point. Private and
reserved addresses have no location and come back with a `note`. Recent answers come from this
server's cache (`cached` true).
"""

_GEOLOCATE_LOCAL = f"""Return the country and network operator of each IP address (IPv4 and IPv6).

Answered offline from MaxMind's GeoLite2 country and ASN data of {DATA_BUILT.isoformat()} (no network):
country-level only, so city, postal code and coordinates are always null; `as_name` names the network
operator and `network` the address block. A VPN or proxy shows its exit point; allocations change
over time. Private and reserved addresses come back with a `note`.
{ATTRIBUTION}
"""


def register(mcp: FastMCP, backends: Backends) -> None:
    if backends.is_local("ip_intel"):
        _register_local(mcp, backends)
        return
    pangea = backends.pangea

    async def lookup(
        ctx: Context, path: str, ips: list[str], data_type: type[D], item_type: Callable[..., I]
    ) -> tuple[list[I], str | None]:
        return await _lookup(backends, path, ips, _pangea_fetch(pangea, ctx, path, data_type), item_type)

    @mcp.tool(name="lookup_ip_address_reputation", title="IP reputation", annotations=_LOOKUP, tags={SERVICE})
    async def lookup_ip_address_reputation(ipAddresses: IpAddressList, ctx: Context) -> IpReputationReport:
        """Return a verdict (malicious, suspicious, unknown, benign), a 0-100 score and categories per IP.

        Use it to decide whether traffic from or to an address is dangerous. `unknown` means the provider
        has no opinion, not that the address is safe. Private and reserved addresses come back with a
        `note` and no verdict. Recent answers come from this server's cache (`cached` true).
        """
        items, rid = await lookup(ctx, "v2/reputation", ipAddresses, Reputation, IpReputation)
        return IpReputationReport(results=items, request_id=rid)

    @mcp.tool(
        name="geolocate", title="IP geolocation", description=_GEOLOCATE, annotations=_LOOKUP, tags={SERVICE}
    )
    async def geolocate(ipAddresses: IpAddressList, ctx: Context) -> IpGeolocationReport:
        items, rid = await lookup(ctx, "v2/geolocate", ipAddresses, _Geo, IpGeolocation)
        return IpGeolocationReport(results=items, request_id=rid)

    @mcp.tool(
        name="lookup_domain_from_ip_address", title="Domain for an IP", annotations=_LOOKUP, tags={SERVICE}
    )
    async def lookup_domain_from_ip_address(ipAddresses: IpAddressList, ctx: Context) -> IpDomainReport:
        """Return the domain registered for each IP address (domain_found false when there is none).

        Use it to see which organisation or hosting provider runs an address. Recent answers come from
        this server's cache (`cached` true).
        """
        items, rid = await lookup(ctx, "v2/domain", ipAddresses, _Domain, IpDomain)
        return IpDomainReport(results=items, request_id=rid)

    @mcp.tool(name="is_vpn", title="Is the IP a VPN", annotations=_LOOKUP, tags={SERVICE})
    async def is_vpn(ipAddresses: IpAddressList, ctx: Context) -> IpVpnReport:
        """Return is_vpn true or false for each IP address: whether it belongs to a VPN service.

        A VPN address hides the real user location; null means it was not looked up (see `note`). Recent
        answers come from this server's cache (`cached` true).
        """
        items, rid = await lookup(ctx, "v2/vpn", ipAddresses, _Vpn, IpVpn)
        return IpVpnReport(results=items, request_id=rid)

    @mcp.tool(name="is_proxy", title="Is the IP a proxy", annotations=_LOOKUP, tags={SERVICE})
    async def is_proxy(ipAddresses: IpAddressList, ctx: Context) -> IpProxyReport:
        """Return is_proxy true or false for each IP address: whether it belongs to a proxy service.

        Proxies (including open and hosting proxies) hide the real client; null means it was not looked
        up (see `note`). Recent answers come from this server's cache (`cached` true).
        """
        items, rid = await lookup(ctx, "v2/proxy", ipAddresses, _Proxy, IpProxy)
        return IpProxyReport(results=items, request_id=rid)


def _register_local(mcp: FastMCP, backends: Backends) -> None:
    """On the local backend only geolocation can be answered honestly (offline data); the reputation,
    reverse-domain, VPN and proxy lookups need Pangea's data and are not offered."""
    fetch = _local_geo_fetch(LocalGeolocator())
    offline = ToolAnnotations(
        read_only_hint=True, destructive_hint=False, idempotent_hint=True, open_world_hint=False
    )

    @mcp.tool(
        name="geolocate",
        title="IP geolocation (offline)",
        description=_GEOLOCATE_LOCAL,
        annotations=offline,
        tags={SERVICE},
    )
    async def geolocate(ipAddresses: IpAddressList) -> IpGeolocationReport:
        items, _ = await _lookup(backends, "v2/geolocate", ipAddresses, fetch, IpGeolocation, _LOCAL_MISSING)
        return IpGeolocationReport(results=items, request_id=None)

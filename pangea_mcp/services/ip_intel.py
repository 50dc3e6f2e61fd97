"""IP Intel: reputation, geolocation, reverse domain, VPN and proxy checks for IP addresses."""

from __future__ import annotations

from collections.abc import Callable
from typing import Generic, TypeVar

from fastmcp import Context, FastMCP
from mcp.types import ToolAnnotations
from pydantic import Field

from pangea_mcp.backends import Backends
from pangea_mcp.client import PangeaClient
from pangea_mcp.errors import tool_errors
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


class IpReputation(IpItem, Reputation):
    pass


class IpGeolocation(IpItem):
    country: str | None = None
    country_code: str | None = Field(default=None, description="ISO 3166-1 alpha-2")
    city: str | None = None
    postal_code: str | None = None
    latitude: float | None = None
    longitude: float | None = None


class IpDomain(IpItem):
    domain_found: bool | None = Field(default=None, description="Whether a domain is registered for the IP")
    domain: str | None = None


class IpVpn(IpItem):
    is_vpn: bool | None = Field(default=None, description="True when the IP belongs to a VPN service")


class IpProxy(IpItem):
    is_proxy: bool | None = Field(default=None, description="True when the IP belongs to a proxy service")


class IpReport(PangeaResult, Generic[I]):
    results: list[I] = Field(description="One entry per distinct address, in the order given")
    request_id: str | None = Field(
        default=None, description="Pangea request id (null when every address was answered locally)"
    )


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


async def _lookup(
    pangea: PangeaClient,
    ctx: Context,
    path: str,
    ips: list[str],
    data_type: type[D],
    item_type: Callable[..., I],
) -> tuple[list[I], str | None]:
    """Send the public addresses in one v2 call; answer the others locally; keep the caller's order."""
    unique = dedupe(ips)
    scopes = {ip: ip_scope(ip) for ip in unique}
    public = [ip for ip in unique if scopes[ip] == "public"]
    data: dict[str, D] = {}
    request_id = None
    if public:
        with tool_errors():
            response = await pangea.call(
                SERVICE,
                path,
                _IpsRequest(ips=public),
                _Bulk[data_type],  # type: ignore[valid-type]
                progress=ctx.report_progress,
            )
        request_id = response.request_id
        # The map is keyed by the IP as sent; normalise anyway in case Pangea reformats IPv6.
        data = {k: v for raw, v in response.result.data.items() if (k := _key(raw)) is not None}
    items = []
    for ip in unique:
        scope = scopes[ip]
        found = data.get(ip)
        if scope != "public":
            items.append(item_type(ip=ip, scope=scope, note=scope_note(scope)))
        elif found is None:
            items.append(item_type(ip=ip, scope=scope, note="Pangea returned no data for this address"))
        else:
            items.append(item_type(ip=ip, scope=scope, **found.model_dump(exclude_none=True)))
    return items, request_id


def register(mcp: FastMCP, backends: Backends) -> None:
    pangea = backends.pangea

    @mcp.tool(name="lookup_ip_address_reputation", title="IP reputation", annotations=_LOOKUP, tags={SERVICE})
    async def lookup_ip_address_reputation(ipAddresses: IpAddressList, ctx: Context) -> IpReputationReport:
        """Return a verdict (malicious, suspicious, unknown, benign), a 0-100 score and categories per IP.

        Use it to decide whether traffic from or to an address is dangerous. `unknown` means the provider
        has no opinion, not that the address is safe. Private and reserved addresses come back with a
        `note` and no verdict.
        """
        items, rid = await _lookup(pangea, ctx, "v2/reputation", ipAddresses, Reputation, IpReputation)
        return IpReputationReport(results=items, request_id=rid)

    @mcp.tool(name="geolocate", title="IP geolocation", annotations=_LOOKUP, tags={SERVICE})
    async def geolocate(ipAddresses: IpAddressList, ctx: Context) -> IpGeolocationReport:
        """Return the country, city, postal code and coordinates of each IP address.

        Locations are provider estimates at city level; a VPN or proxy shows its exit point. Private and
        reserved addresses have no location and come back with a `note`.
        """
        items, rid = await _lookup(pangea, ctx, "v2/geolocate", ipAddresses, _Geo, IpGeolocation)
        return IpGeolocationReport(results=items, request_id=rid)

    @mcp.tool(
        name="lookup_domain_from_ip_address", title="Domain for an IP", annotations=_LOOKUP, tags={SERVICE}
    )
    async def lookup_domain_from_ip_address(ipAddresses: IpAddressList, ctx: Context) -> IpDomainReport:
        """Return the domain registered for each IP address (domain_found false when there is none).

        Use it to see which organisation or hosting provider runs an address.
        """
        items, rid = await _lookup(pangea, ctx, "v2/domain", ipAddresses, _Domain, IpDomain)
        return IpDomainReport(results=items, request_id=rid)

    @mcp.tool(name="is_vpn", title="Is the IP a VPN", annotations=_LOOKUP, tags={SERVICE})
    async def is_vpn(ipAddresses: IpAddressList, ctx: Context) -> IpVpnReport:
        """Return is_vpn true or false for each IP address: whether it belongs to a VPN service.

        A VPN address hides the real user location; null means it was not looked up (see `note`).
        """
        items, rid = await _lookup(pangea, ctx, "v2/vpn", ipAddresses, _Vpn, IpVpn)
        return IpVpnReport(results=items, request_id=rid)

    @mcp.tool(name="is_proxy", title="Is the IP a proxy", annotations=_LOOKUP, tags={SERVICE})
    async def is_proxy(ipAddresses: IpAddressList, ctx: Context) -> IpProxyReport:
        """Return is_proxy true or false for each IP address: whether it belongs to a proxy service.

        Proxies (including open and hosting proxies) hide the real client; null means it was not looked
        up (see `note`).
        """
        items, rid = await _lookup(pangea, ctx, "v2/proxy", ipAddresses, _Proxy, IpProxy)
        return IpProxyReport(results=items, request_id=rid)

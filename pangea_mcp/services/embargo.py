"""Embargo: sanction and trade-embargo checks for IP addresses and countries."""

from __future__ import annotations

from typing import Annotated

from fastmcp import Context, FastMCP
from mcp.types import ToolAnnotations
from pydantic import AfterValidator, Field, field_validator

from pangea_mcp.backends import Backends
from pangea_mcp.cache import CACHED, REQUEST_ID, Fetch, cache_scope
from pangea_mcp.client import PangeaClient
from pangea_mcp.errors import NotFound, tool_errors
from pangea_mcp.models import IpAddress, PangeaRequest, PangeaResult, Scope, ip_scope, scope_note

SERVICE = "embargo"
_LOOKUP = ToolAnnotations(
    read_only_hint=True, destructive_hint=False, idempotent_hint=True, open_world_hint=True
)

#: The 249 officially assigned ISO 3166-1 alpha-2 codes (user-assigned ones such as XK are not).
_ASSIGNED = """
    AD AE AF AG AI AL AM AO AQ AR AS AT AU AW AX AZ BA BB BD BE BF BG BH BI BJ BL BM BN BO BQ BR BS
    BT BV BW BY BZ CA CC CD CF CG CH CI CK CL CM CN CO CR CU CV CW CX CY CZ DE DJ DK DM DO DZ EC EE
    EG EH ER ES ET FI FJ FK FM FO FR GA GB GD GE GF GG GH GI GL GM GN GP GQ GR GS GT GU GW GY HK HM
    HN HR HT HU ID IE IL IM IN IO IQ IR IS IT JE JM JO JP KE KG KH KI KM KN KP KR KW KY KZ LA LB LC
    LI LK LR LS LT LU LV LY MA MC MD ME MF MG MH MK ML MM MN MO MP MQ MR MS MT MU MV MW MX MY MZ NA
    NC NE NF NG NI NL NO NP NR NU NZ OM PA PE PF PG PH PK PL PM PN PR PS PT PW PY QA RE RO RS RU RW
    SA SB SC SD SE SG SH SI SJ SK SL SM SN SO SR SS ST SV SX SY SZ TC TD TF TG TH TJ TK TL TM TN TO
    TR TT TV TW TZ UA UG UM US UY UZ VA VC VE VG VI VN VU WF WS YE YT ZA ZM ZW
"""
ISO_COUNTRY_CODES = frozenset(_ASSIGNED.split())
#: Codes people often use that ISO 3166-1 reserves for something else.
_ALIASES = {"UK": "GB", "EL": "GR", "EU": None}


def normalise_iso_code(value: str) -> str:
    code = value.upper()
    if code in ISO_COUNTRY_CODES:
        return code
    hint = ""
    if code in _ALIASES:
        alias = _ALIASES[code]
        hint = f"; use {alias}" if alias else "; check one member country at a time"
    raise ValueError(f"{value!r} is not an assigned ISO 3166-1 alpha-2 country code (e.g. CU, IR, RU){hint}")


IsoCountryCode = Annotated[
    str,
    Field(
        pattern=r"^[A-Za-z]{2}$",
        description="ISO 3166-1 alpha-2 country code, e.g. CU or ru (case-insensitive)",
    ),
    AfterValidator(normalise_iso_code),
]


class _IpCheck(PangeaRequest):
    ip: str


class _CountryCheck(PangeaRequest):
    iso_code: str


class Sanction(PangeaResult):
    list_name: str = Field(description="The embargo or sanctions list, e.g. US - ITAR")
    issuing_country: str = Field(description="Country that issued the list (ISO code), e.g. US")
    embargoed_country_name: str
    embargoed_country_iso_code: str = Field(description="ISO 3166-1 alpha-2")


class EmbargoResult(PangeaResult):
    count: int = Field(default=0, description="How many sanctions matched")
    sanctions: list[Sanction] = Field(default_factory=list)

    @field_validator("sanctions", mode="before")
    @classmethod
    def _null_is_empty(cls, value: object) -> object:
        # Older Embargo answers carried "sanctions": null when nothing matched (SDK docstring).
        return [] if value is None else value


class EmbargoReport(EmbargoResult):
    note: str | None = Field(
        default=None, description="Set when nothing was checked; then an empty list does not mean clear"
    )
    cached: bool = Field(default=False, description=CACHED)
    request_id: str | None = Field(default=None, description=REQUEST_ID)


class IpEmbargoReport(EmbargoReport):
    ip: str = Field(description="The address, normalised (IPv6 compressed)")
    scope: Scope = Field(description="public, or why it was not checked (private, loopback, ...)")


class CountryEmbargoReport(EmbargoReport):
    iso_code: str = Field(description="The country code checked, upper case")


_NO_RESULT = "Pangea returned no embargo data for this {what}, so nothing was checked"
_NOT_LOCATED = "Pangea could not locate this address in any country (IPNotFound), so nothing was checked"


class _IpFetch:
    """check_ip_embargo's lookup; remembers whether Pangea could not locate the address (IPNotFound)."""

    def __init__(self, pangea: PangeaClient, ctx: Context) -> None:
        self.pangea = pangea
        self.ctx = ctx
        self.not_located = False

    async def __call__(self, ips: list[str]) -> tuple[dict[str, EmbargoResult], str | None]:
        (ip,) = ips  # /v1/ip/check takes one address
        try:
            response = await self.pangea.call(
                SERVICE, "v1/ip/check", _IpCheck(ip=ip), EmbargoResult, progress=self.ctx.report_progress
            )
        except NotFound as exc:
            if exc.status != "IPNotFound":
                raise
            # An error status: not kept, like every error (the next lookup asks again).
            self.not_located = True
            return {}, exc.request_id
        return _kept(ip, response.result), response.request_id


def _kept(key: str, result: EmbargoResult) -> dict[str, EmbargoResult]:
    # A Success with `result: null` reaches us as an empty result: not kept, and reported as unchecked.
    return {key: result} if result.model_fields_set else {}


def _country_fetch(pangea: PangeaClient, ctx: Context) -> Fetch[EmbargoResult]:
    async def fetch(codes: list[str]) -> tuple[dict[str, EmbargoResult], str | None]:
        (code,) = codes  # /v1/iso/check takes one country
        response = await pangea.call(
            SERVICE, "v1/iso/check", _CountryCheck(iso_code=code), EmbargoResult, progress=ctx.report_progress
        )
        return _kept(code, response.result), response.request_id

    return fetch


def register(mcp: FastMCP, backends: Backends) -> None:
    pangea = backends.pangea

    @mcp.tool(name="check_ip_embargo", title="Embargo check for an IP", annotations=_LOOKUP, tags={SERVICE})
    async def check_ip_embargo(ip: IpAddress, ctx: Context) -> IpEmbargoReport:
        """Return the sanctions and trade embargoes (count + list) covering the country an IP address is in.

        Use it before serving, paying or shipping to someone identified by an IP address. Pangea
        geolocates the address and checks that country against the project's enabled embargo lists (e.g.
        US ITAR). An empty `sanctions` list with no `note` means no enabled list covers that country. A
        `note` means nothing was checked: private and reserved addresses are answered without a call,
        and some public addresses cannot be located. Recent answers come from this server's cache
        (`cached` true).
        """
        scope = ip_scope(ip)
        if scope != "public":
            return IpEmbargoReport(ip=ip, scope=scope, note=scope_note(scope))
        fetch = _IpFetch(pangea, ctx)
        with tool_errors():
            answer = await backends.cache.lookup(
                cache_scope(backends.settings, SERVICE, "v1/ip/check"), [ip], fetch
            )
        result = answer.found.get(ip)
        if result is None:
            note = _NOT_LOCATED if fetch.not_located else _NO_RESULT.format(what="address")
            return IpEmbargoReport(ip=ip, scope=scope, note=note, request_id=answer.request_id)
        return IpEmbargoReport(
            ip=ip,
            scope=scope,
            cached=ip in answer.cached,
            request_id=answer.request_id,
            **result.model_dump(),
        )

    @mcp.tool(
        name="check_iso_code_embargo",
        title="Embargo check for a country",
        annotations=_LOOKUP,
        tags={SERVICE},
    )
    async def check_iso_code_embargo(
        # argument name kept from Pangea's official server, so existing prompts keep working
        isoCode: IsoCountryCode,
        ctx: Context,
    ) -> CountryEmbargoReport:
        """Return the sanctions and trade embargoes (count + list) covering a country, by ISO code.

        Use it to check whether business with a country is restricted. An empty `sanctions` list means no
        enabled embargo list covers the country (count 0); it is not legal advice. A `note` means Pangea
        returned nothing to check. Recent answers come from this server's cache (`cached` true).
        """
        scope = cache_scope(backends.settings, SERVICE, "v1/iso/check")
        with tool_errors():
            answer = await backends.cache.lookup(scope, [isoCode], _country_fetch(pangea, ctx))
        result = answer.found.get(isoCode)
        if result is None:
            note = _NO_RESULT.format(what="country")
            return CountryEmbargoReport(iso_code=isoCode, note=note, request_id=answer.request_id)
        return CountryEmbargoReport(
            iso_code=isoCode,
            cached=isoCode in answer.cached,
            request_id=answer.request_id,
            **result.model_dump(),
        )

"""Local geolocation: country and network operator of IP addresses, from offline GeoLite2 data (no network).

The data is MaxMind's GeoLite2 Country and ASN databases as packaged by geoip2fast (its
`geoip2fast-asn-ipv6.dat.gz`: IPv4 and IPv6). It is country-level only: it has no city, postal code or
coordinates, and its ASN table keeps the network operator's name but not the AS number.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import re
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date
from typing import Any, Final

from pydantic import Field

from pangea_mcp.models import PangeaResult

log = logging.getLogger(__name__)

#: The geoip2fast file with country *and* ASN data for IPv4 *and* IPv6 (the largest one it ships).
DATA_FILE: Final = "geoip2fast-asn-ipv6.dat.gz"

#: Build date of that data in geoip2fast 1.2.2, for tool descriptions (reading it from the file means
#: loading the file; tests/test_local_geo.py checks this value against it).
DATA_BUILT: Final = date(2024, 6, 18)

#: The attribution MaxMind asks for (GeoLite2 is licensed under CC BY-SA 4.0).
ATTRIBUTION: Final = (
    "This product includes GeoLite2 data created by MaxMind, available from https://www.maxmind.com "
    "(CC BY-SA 4.0), packaged by geoip2fast (MIT)."
)

# Placeholders geoip2fast puts in its tables where the data has no operator name.
_NO_OPERATOR = frozenset({"", "<unknown>", "IANA.ORG"})
_BUILD_DATE = re.compile(r"(\d{4})(\d{2})(\d{2})$")


class GeoDatabase(PangeaResult):
    """Which offline data answers, for tool notes and docs."""

    source: str = Field(description="The data set as geoip2fast names it, e.g. GeoLite2-CountryASN-...")
    build_date: date | None = Field(description="When MaxMind built the data (from its name)")
    package_version: str = Field(description="geoip2fast version")
    attribution: str = Field(description="Required attribution for the GeoLite2 data")


class LocalGeo(PangeaResult):
    """What the offline data says about one address. Fields match ip_intel's geolocation data."""

    found: bool = Field(description="Whether the offline database has a country for the address")
    country: str | None = Field(default=None, description="Country name in English, e.g. United States")
    country_code: str | None = Field(default=None, description="ISO 3166-1 alpha-2, e.g. US")
    # The shipped data is country-level: these stay null rather than being guessed.
    city: str | None = Field(default=None, description="Always null: the offline data has no cities")
    postal_code: str | None = Field(default=None, description="Always null: the offline data has none")
    latitude: float | None = Field(default=None, description="Always null: the offline data has none")
    longitude: float | None = Field(default=None, description="Always null: the offline data has none")
    as_name: str | None = Field(
        default=None,
        description="Network operator (autonomous system) announcing the address, e.g. GOOGLE; "
        "the offline data has the name only, not the AS number",
    )
    network: str | None = Field(default=None, description="Address block (CIDR) the country applies to")
    as_network: str | None = Field(default=None, description="Address block (CIDR) the operator announces")
    note: str | None = Field(default=None, description="Why data is missing, when it is")


@dataclass(frozen=True)
class _Loaded:
    reader: Any  # geoip2fast.GeoIP2Fast (untyped)
    info: GeoDatabase


_lock = threading.Lock()
_loaded: _Loaded | None = None


def _load() -> _Loaded:
    """Load the data once per process (about 0.4-0.7 s and 150+ MB); later calls return it at once.

    geoip2fast keeps its tables in module globals, so there can only be one database per process: this
    module is the only place that opens one.
    """
    global _loaded
    with _lock:
        if _loaded is None:
            import geoip2fast  # type: ignore[import-untyped]  # deferred: importing it is cheap, loading is not

            started = time.perf_counter()
            reader = geoip2fast.GeoIP2Fast(verbose=False, geoip2fast_data_file=DATA_FILE)
            source = str(reader.source_info).removeprefix("MAXMIND:")
            match = _BUILD_DATE.search(source)
            built = date(*map(int, match.groups())) if match else None
            info = GeoDatabase(
                source=source,
                build_date=built,
                package_version=str(geoip2fast.__version__),
                attribution=ATTRIBUTION,
            )
            _loaded = _Loaded(reader, info)
            log.info("offline geolocation data %s loaded in %.2f s", source, time.perf_counter() - started)
        return _loaded


def _inside(ip: ipaddress.IPv4Address | ipaddress.IPv6Address, cidr: str) -> bool:
    """Whether `cidr` really contains `ip` (geoip2fast can answer with a neighbouring block, see below)."""
    try:
        return ip in ipaddress.ip_network(cidr, strict=False)
    except ValueError:
        return False


def _record(loaded: _Loaded, text: str) -> LocalGeo:
    ip = ipaddress.ip_address(text)
    detail = loaded.reader.lookup(text)
    built = loaded.info.build_date.isoformat() if loaded.info.build_date else "unknown date"
    cidr = str(detail.cidr or "")
    # geoip2fast looks addresses up by integer value, so IPv6 addresses below 2**32 (::1, ::a.b.c.d) land
    # in IPv4 blocks; a block that does not contain the address is not an answer.
    if not cidr or not _inside(ip, cidr):
        return LocalGeo(
            found=False,
            note=f"Not in the offline GeoLite2 data (built {built}): the address may be unallocated, "
            "reserved, or assigned after the data was built.",
        )
    if detail.is_private:
        return LocalGeo(
            found=False,
            network=cidr,
            note=f"Special-purpose address block ({detail.country_name}): it has no country.",
        )
    code = str(detail.country_code)
    name = str(detail.country_name)
    if len(code) != 2 or not code.isalpha():
        # GeoLite2 places a few blocks only on a continent (geoip2fast: ASIA) rather than in a country.
        return LocalGeo(found=False, network=cidr, note=f"The data places this address only in {name}.")
    as_name = as_network = None
    asn_cidr = str(detail.asn_cidr or "")
    # geoip2fast 1.2.2 checks the end of an ASN block with the IPv6 block size whenever the file holds
    # IPv6 data, so an IPv4 address in no ASN block gets the preceding block's operator: check it here.
    if str(detail.asn_name) not in _NO_OPERATOR and asn_cidr and _inside(ip, asn_cidr):
        as_name, as_network = str(detail.asn_name), asn_cidr
    return LocalGeo(
        found=True,
        country=name,
        country_code=code.upper(),
        as_name=as_name,
        network=cidr,
        as_network=as_network,
    )


def _lookup_all(ips: list[str]) -> dict[str, LocalGeo]:
    loaded = _load()
    return {ip: _record(loaded, ip) for ip in ips}


class LocalGeolocator:
    """Answers geolocation from the offline data; shares one loaded database with every instance."""

    async def geolocate(self, ips: Iterable[str]) -> dict[str, LocalGeo]:
        """Country and network operator per address (keys as given, duplicates once).

        Pass normalised public addresses (models.normalise_ip, ip_scope == "public"); anything the data
        cannot place comes back with found=False and a note. Raises ValueError for a non-address. The
        first call loads the data in a worker thread; the event loop is never blocked.
        """
        unique = list(dict.fromkeys(ips))
        for ip in unique:
            ipaddress.ip_address(ip)  # ValueError before any work
        if not unique:
            return {}
        return await asyncio.to_thread(_lookup_all, unique)

    async def database(self) -> GeoDatabase:
        """Which data answers (loads it if needed)."""
        loaded = await asyncio.to_thread(_load)
        return loaded.info

"""Local geolocation from the offline GeoLite2 data that geoip2fast ships: real lookups, no network."""

from __future__ import annotations

import asyncio
import socket
from datetime import date
from typing import Any

import geoip2fast
import pytest

from pangea_mcp.local import geo
from pangea_mcp.local.geo import LocalGeo, LocalGeolocator


async def test_known_ipv4_and_ipv6_addresses_get_country_and_operator() -> None:
    found = await LocalGeolocator().geolocate(["8.8.8.8", "2001:4860:4860::8888", "2606:4700:4700::1111"])

    assert found["8.8.8.8"] == LocalGeo(
        found=True,
        country="United States",
        country_code="US",
        as_name="GOOGLE",
        network="8.8.0.0/15",
        as_network="8.8.8.0/24",
    )
    google6 = found["2001:4860:4860::8888"]
    assert (google6.country_code, google6.as_name) == ("US", "GOOGLE")
    assert google6.network == "2001:4860:4000::/34"
    assert found["2606:4700:4700::1111"].as_name == "CLOUDFLARENET"
    for item in found.values():
        # The data is country-level: nothing finer is ever made up.
        assert (item.city, item.postal_code, item.latitude, item.longitude) == (None, None, None, None)
        assert item.note is None


async def test_operator_is_dropped_when_its_block_does_not_contain_the_address() -> None:
    # geoip2fast 1.2.2 answers this address with the preceding ASN block (106.48.16.0/21), which does
    # not contain it: the operator name would be someone else's.
    raw = geoip2fast.GeoIP2Fast(geoip2fast_data_file=geo.DATA_FILE).lookup("106.50.82.200")
    assert raw.asn_cidr == "106.48.16.0/21" and raw.asn_name.startswith("CHINATELECOM")

    found = (await LocalGeolocator().geolocate(["106.50.82.200"]))["106.50.82.200"]

    assert (found.found, found.country_code, found.network) == (True, "CN", "106.50.0.0/16")
    assert (found.as_name, found.as_network) == (None, None)


@pytest.mark.parametrize(
    ("ip", "network", "note"),
    [
        # Documentation ranges: 192.0.2.0/24 is a special-purpose block in the data, the others are absent.
        ("192.0.2.1", "192.0.2.0/24", "Special-purpose address block (Reserved for TEST-NET)"),
        ("203.0.113.5", None, "Not in the offline GeoLite2 data (built 2024-06-18)"),
        ("2001:db8::1", None, "Not in the offline GeoLite2 data (built 2024-06-18)"),
        # geoip2fast would place ::1 in 0.0.0.0/8 (it compares integers across address families).
        ("::1", None, "Not in the offline GeoLite2 data"),
        ("10.1.2.3", "10.0.0.0/8", "Special-purpose address block (Private Network Class A)"),
    ],
)
async def test_unknown_and_reserved_addresses_have_no_data(ip: str, network: str | None, note: str) -> None:
    found = (await LocalGeolocator().geolocate([ip]))[ip]

    assert found.found is False
    assert (found.country, found.country_code, found.as_name) == (None, None, None)
    assert found.network == network
    assert found.note is not None and found.note.startswith(note)


async def test_duplicates_are_answered_once_and_bad_input_is_refused() -> None:
    found = await LocalGeolocator().geolocate(["1.1.1.1", "1.1.1.1", "9.9.9.9"])
    assert list(found) == ["1.1.1.1", "9.9.9.9"]
    assert found["9.9.9.9"].as_name == "QUAD9-AS-1"
    assert await LocalGeolocator().geolocate([]) == {}
    with pytest.raises(ValueError, match="does not appear to be an IPv4 or IPv6 address"):
        await LocalGeolocator().geolocate(["8.8.8.8", "example.com"])


async def test_database_date_and_attribution_are_exposed() -> None:
    info = await LocalGeolocator().database()

    assert info.build_date == date(2024, 6, 18) == geo.DATA_BUILT
    assert info.source == "GeoLite2-CountryASN-IPv4IPv6-en-20240618"
    assert info.package_version == geoip2fast.__version__
    assert "GeoLite2 data created by MaxMind" in info.attribution
    assert "CC BY-SA 4.0" in info.attribution


def _no_network(*args: Any, **kwargs: Any) -> None:
    raise AssertionError("local geolocation must not use the network")


async def test_loading_and_lookups_use_no_network_and_print_nothing(
    monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(geo, "_loaded", None)  # load again, under the patches
    for name in ("create_connection", "getaddrinfo", "gethostbyname", "gethostbyaddr"):
        monkeypatch.setattr(socket, name, _no_network)
    for method in ("connect", "connect_ex", "sendto"):
        monkeypatch.setattr(socket.socket, method, _no_network)

    found = await LocalGeolocator().geolocate(["8.8.8.8", "2a00:1450:4001:82b::200e"])

    assert found["8.8.8.8"].country_code == "US"
    assert found["2a00:1450:4001:82b::200e"].as_name == "GOOGLE"
    # stdout is the MCP stdio channel: loading the data must not write to it.
    assert capfd.readouterr().out == ""


async def test_data_is_loaded_once_in_a_worker_thread(monkeypatch: pytest.MonkeyPatch) -> None:
    opened: list[str] = []
    original = geoip2fast.GeoIP2Fast

    def counting(*args: Any, **kwargs: Any) -> Any:
        opened.append(kwargs.get("geoip2fast_data_file", ""))
        return original(*args, **kwargs)

    monkeypatch.setattr(geo, "_loaded", None)
    monkeypatch.setattr(geoip2fast, "GeoIP2Fast", counting)
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.01)
            ticks += 1

    ticking = asyncio.create_task(ticker())
    try:
        answers = await asyncio.gather(*(LocalGeolocator().geolocate(["8.8.8.8"]) for _ in range(4)))
    finally:
        ticking.cancel()

    assert opened == [geo.DATA_FILE]
    assert all(a["8.8.8.8"].country_code == "US" for a in answers)
    # Loading takes a few hundred milliseconds; the event loop kept running meanwhile.
    assert ticks >= 5

"""whoisit and the IANA RDAP bootstrap data shipped with the package, loaded on first use.

`data/iana-rdap-dns.json` is a snapshot of https://data.iana.org/rdap/dns.json (RFC 9224): it maps each
TLD to its registry's RDAP servers, so no lookup needs IANA's server.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from importlib import resources
from types import ModuleType
from typing import Any, ClassVar, Final

#: Snapshot of https://data.iana.org/rdap/dns.json shipped in the package (source: docs/local-geo-whois.md).
BOOTSTRAP_FILE: Final = "iana-rdap-dns.json"


@dataclass(frozen=True)
class Whoisit:
    """whoisit and the shipped bootstrap data, loaded on first use (importing whoisit takes ~0.5 s)."""

    bootstrap: Any  # a whoisit BaseBootstrap fed only the DNS registry
    publication: str
    #: Every TLD -> the URLs IANA lists, https or not (to explain a refusal).
    listed: dict[str, list[str]]
    builder: Any  # whoisit.query.QueryBuilder
    query: type[Any]  # whoisit.query.QueryAsync
    parse: Any  # whoisit.parser.parse
    errors: ModuleType  # whoisit.errors


@cache
def load_whoisit() -> Whoisit:
    """whoisit's query builder, parser and errors, fed only the shipped DNS bootstrap data (cached)."""
    from whoisit import errors  # type: ignore[import-untyped]
    from whoisit.bootstrap import BaseBootstrap  # type: ignore[import-untyped]
    from whoisit.parser import parse  # type: ignore[import-untyped]
    from whoisit.query import QueryAsync, QueryBuilder  # type: ignore[import-untyped]

    class DnsBootstrap(BaseBootstrap):  # type: ignore[misc]
        """whoisit's bootstrap with the DNS registry only: domain queries need nothing else."""

        BOOTSTRAP_URLS: ClassVar[dict[str, str]] = {"dns": "https://data.iana.org/rdap/dns.json"}

        def __init__(self) -> None:
            super().__init__()
            self.bootstrap_parsers = {"dns": self.parse_dns_data}

        def is_using_overrides(self) -> bool:
            # whoisit's parser insists on an object handle unless "overrides" are on; RFC 9537 lets
            # servers redact the handle, so never insist. (whoisit's own override table stays unused.)
            return True

    text = resources.files("pangea_mcp.local").joinpath("data", BOOTSTRAP_FILE).read_text("utf-8")
    document = json.loads(text)
    publication = str(document.get("publication", ""))
    published = datetime.fromisoformat(publication.replace("Z", "+00:00"))
    bootstrap = DnsBootstrap()
    bootstrap.load_bootstrap_data({"timestamp": int(published.timestamp()), "dns": document}, from_json=False)
    listed = {
        str(tld).lower(): [str(url) for url in urls] for tlds, urls in document["services"] for tld in tlds
    }
    return Whoisit(bootstrap, publication, listed, QueryBuilder(bootstrap), QueryAsync, parse, errors)

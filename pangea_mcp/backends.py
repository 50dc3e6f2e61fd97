"""What the service modules get to answer their tools: the Pangea client, the shared intel cache, and
which backend (Pangea or local) answers each service."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Literal

from pangea_mcp.cache import IntelCache
from pangea_mcp.client import PangeaClient
from pangea_mcp.config import LOCAL_MODULES, Settings

Cleanup = Callable[[], Awaitable[None]]


@dataclass
class Backends:
    """Shared by every service module of one server (so by all of its clients)."""

    settings: Settings
    pangea: PangeaClient
    #: Per-item cache of the read-only intel lookups (pangea_mcp.cache), one per server.
    cache: IntelCache
    _cleanups: list[Cleanup] = field(default_factory=list)

    def backend(self, service: str) -> Literal["pangea", "local"]:
        """Which backend answers `service` (a name from config.SERVICE_MODULES)."""
        return self.settings.service_backend(service)

    def is_local(self, service: str) -> bool:
        return self.backend(service) == "local"

    def serves(self, service: str) -> bool:
        """Whether the module's tools exist at all: Pangea answers everything, local only some modules."""
        return not self.is_local(service) or service in LOCAL_MODULES

    def on_shutdown(self, cleanup: Cleanup) -> None:
        """Run `cleanup` when the server stops (local stores close their files there)."""
        self._cleanups.append(cleanup)

    async def shutdown(self) -> None:
        while self._cleanups:
            await self._cleanups.pop()()

"""Which requests the gateway lets through without a principal, and how each kind is rate-limited."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum

__all__ = ["WEBHOOK_ALIASES", "PathKind", "PathRules"]

# `/webhook/meta` is the same endpoint as `/webhook/whatsapp` (some Meta app setups name it so).
WEBHOOK_ALIASES = {"/webhook/meta": "/webhook/whatsapp"}


class PathKind(StrEnum):
    """How the gateway treats a path."""

    PROBE = "probe"  # /health, /ready: no limits, no authentication (orchestrators poll them)
    WEBHOOK = "webhook"  # public, signature-checked by the routers, their own per-IP limit
    PUBLIC = "public"  # docs, login endpoints, signed media: per-IP limit, a principal when one is presented
    SANDBOX = "sandbox"  # the emulators and the sandbox page: the outside world, not our API
    PROTECTED = "protected"  # everything else: a principal is required


_PROBES = frozenset({"/health", "/ready"})
_PUBLIC_EXACT = frozenset(
    {
        "/",  # redirects a browser to the sandbox page or the admin dashboard
        "/docs",
        "/docs/oauth2-redirect",
        "/openapi.json",
        "/auth/login",
        "/auth/token",
        "/auth/refresh",
        "/auth/logout",
        "/auth/genesys/login",
        "/auth/genesys/callback",
        "/admin/login",
        # The agent widget's page and sign-in landing hold no data; its `/widget/api/…` needs a token.
        "/widget",
        "/widget/signed-in",
    }
)
_PUBLIC_PREFIXES = ("/media/", "/static/")


def _under(path: str, prefix: str) -> bool:
    prefix = prefix.rstrip("/")
    return path == prefix or path.startswith(prefix + "/")


@dataclass(frozen=True, slots=True)
class PathRules:
    """The classification of paths for one process (sandbox prefixes and the metrics decision vary)."""

    sandbox_prefixes: tuple[str, ...] = ()
    metrics_public: bool = True

    @classmethod
    def of(cls, *, sandbox_prefixes: Iterable[str], metrics_public: bool) -> PathRules:
        """Rules for a process serving these sandbox prefixes."""
        return cls(tuple(sandbox_prefixes), metrics_public)

    def kind(self, path: str) -> PathKind:
        """How the gateway treats `path`."""
        if path in _PROBES:
            return PathKind.PROBE
        if path == "/metrics":
            return PathKind.PROBE if self.metrics_public else PathKind.PROTECTED
        if path.startswith("/webhook/"):
            return PathKind.WEBHOOK
        if any(_under(path, prefix) for prefix in self.sandbox_prefixes):
            return PathKind.SANDBOX
        if path in _PUBLIC_EXACT or path.startswith(_PUBLIC_PREFIXES):
            return PathKind.PUBLIC
        return PathKind.PROTECTED

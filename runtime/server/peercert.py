"""Client certificates reach the ASGI app: uvicorn protocols that put the verified peer
certificate's subject into each request's scope.

Who uses it: :mod:`runtime.server.serve` passes :class:`HttpProtocol` and
:class:`WebSocketProtocol` to uvicorn, whose TLS context asks for an optional client
certificate and verifies it against the cluster CA (``ssl.CERT_OPTIONAL``; OpenSSL
checks the chain, the validity period and the ``clientAuth`` purpose). uvicorn does not
expose the peer certificate to the application, so on ``connection_made`` the protocol
reads it from the TLS transport once and wraps its ASGI app to add
``scope["extensions"]["tls"]["peer"]`` (a :class:`~runtime.auth.authn.PeerCertificate`)
to every request of that connection, WebSocket upgrades included.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol

from runtime.auth.authn import PeerCertificate

ASGIApp = Callable[
    [MutableMapping[str, Any], Callable[[], Awaitable[Any]], Callable[[Any], Awaitable[None]]],
    Awaitable[None],
]


def peer_certificate(transport: asyncio.BaseTransport) -> PeerCertificate | None:
    """The subject of the verified client certificate of a TLS connection, if any."""
    cert = transport.get_extra_info("peercert")
    if not cert:
        return None
    common_name = ""
    organizations: list[str] = []
    for rdn in cert.get("subject", ()):
        for key, value in rdn:
            if key == "commonName" and not common_name:
                common_name = str(value)
            elif key == "organizationName":
                organizations.append(str(value))
    return PeerCertificate(common_name, tuple(organizations))


def peer_of(scope: MutableMapping[str, Any]) -> PeerCertificate | None:
    peer = (scope.get("extensions") or {}).get("tls", {}).get("peer")
    return peer if isinstance(peer, PeerCertificate) else None


def _with_peer(app: ASGIApp, peer: PeerCertificate) -> ASGIApp:
    async def wrapped(
        scope: MutableMapping[str, Any],
        receive: Callable[[], Awaitable[Any]],
        send: Callable[[Any], Awaitable[None]],
    ) -> None:
        extensions = scope.setdefault("extensions", {})
        extensions.setdefault("tls", {})["peer"] = peer
        await app(scope, receive, send)

    return wrapped


class HttpProtocol(HttpToolsProtocol):
    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        peer = peer_certificate(transport)
        if peer is not None:
            self.app = _with_peer(self.app, peer)


class WebSocketProtocol(WebSocketsSansIOProtocol):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        peer = peer_certificate(transport)
        if peer is not None:
            self.app = _with_peer(self.app, peer)

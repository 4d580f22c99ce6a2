"""The host's address on a container engine's bridge network: where pods reach the host
(the pods' default gateway), and so where the cluster DNS listens for them.

Engines report it unevenly. A dockerd started for the first time (no
``network/files/local-kv.db`` in its data root yet) reports its default ``bridge``
network's IPAM config without a ``Gateway`` — only the ``Subnet`` — while the same
daemon reports it once it has run before; podman reports the gateway of its CNI or
netavark config, but creates the bridge interface only when the first container joins.
:func:`bridge_gateway` therefore asks, in order: the engine's stated gateway, the address
of the bridge interface on the host (``ioctl(SIOCGIFADDR)``, no ``ip`` binary needed),
and the first host address of the subnet (what both engines assign to the bridge when
nothing else is configured). It raises :class:`GatewayUnknown` with what it saw when
none of those gives an address.

Who calls it: the podman and docker runtimes' ``network_gateway``.
"""

from __future__ import annotations

import contextlib
import fcntl
import ipaddress
import socket
import struct
from collections.abc import Iterable

SIOCGIFADDR = 0x8915
IFNAMSIZ = 16


class GatewayUnknown(Exception):
    """No address of the bridge can be found; the message says what was looked at."""


def interface_ipv4(name: str) -> str | None:
    """The IPv4 address of host interface ``name``; None when it does not exist (yet) or
    has no IPv4 address."""
    if not name or len(name.encode()) >= IFNAMSIZ or "/" in name:
        return None
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        try:
            answer = fcntl.ioctl(sock.fileno(), SIOCGIFADDR, struct.pack("256s", name.encode()))
        except OSError:
            return None
    return socket.inet_ntoa(answer[20:24])


def first_host(subnet: str) -> str | None:
    """The first usable address of an IPv4 ``subnet`` (``172.17.0.0/16`` → 172.17.0.1)."""
    try:
        network = ipaddress.IPv4Network(subnet, strict=False)
    except ValueError:
        return None
    if network.num_addresses < 4:
        return None
    return str(network.network_address + 1)


def _in_any(address: str, subnets: Iterable[str]) -> bool:
    ip = ipaddress.IPv4Address(address)
    for subnet in subnets:
        with contextlib.suppress(ValueError):
            if ip in ipaddress.IPv4Network(subnet, strict=False):
                return True
    return False


def bridge_gateway(
    network: str, *, gateways: Iterable[str], subnets: Iterable[str], interface: str | None
) -> str:
    """The host's address on engine network ``network`` (see the module docstring).

    ``gateways``: what the engine states (may be empty); ``subnets``: the network's IPv4
    subnets; ``interface``: the bridge's interface name on the host, when known. An
    interface address outside every subnet is not used (another network's bridge)."""
    subnets = [s for s in subnets if s and ":" not in s]
    for gateway in gateways:
        with contextlib.suppress(ValueError):
            if gateway and ipaddress.ip_address(gateway).version == 4:
                return gateway
    if interface:
        address = interface_ipv4(interface)
        if address is not None and (not subnets or _in_any(address, subnets)):
            return address
    for subnet in subnets:
        address = first_host(subnet)
        if address is not None:
            return address
    raise GatewayUnknown(
        f"the engine network {network!r} states no IPv4 gateway"
        + (f", its bridge {interface!r} has no IPv4 address" if interface else "")
        + (
            f" and its subnets {', '.join(subnets)} have no usable address"
            if subnets
            else " and no IPv4 subnet"
        )
    )

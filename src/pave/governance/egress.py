"""Outbound requests (webhooks, dataset URLs) that cannot be turned against the platform's network.

Server-side request forgery is how a webhook URL reads the cloud metadata service or a database on
localhost. Every URL is checked before it is fetched: scheme http or https, and every address its
host resolves to must be public: no loopback, link-local (169.254.0.0/16: the metadata
services), private, shared, reserved, multicast or unspecified address, unless an allowed network
names it. Redirects are not followed blindly: each ``Location`` is checked the same way before
the next hop. The connection goes to the address that was checked (no second DNS lookup between
check and connect, which DNS rebinding would exploit).
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urljoin, urlsplit

from pave.errors import Forbidden, InvalidInput

Resolver = Callable[[str, int], list[str]]
MAX_REDIRECTS = 5


def _system_resolver(host: str, port: int) -> list[str]:
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return sorted({str(info[4][0]) for info in infos})


@dataclass(frozen=True)
class EgressPolicy:
    """Which destinations outbound requests may reach.

    Args:
        allowed_networks: CIDRs (``10.1.0.0/16``) or addresses let through although not public,
            e.g. an in-cluster alert receiver.
    """

    allowed_networks: Sequence[str] = ()
    resolver: Resolver = field(default=_system_resolver, compare=False)

    def _allowed(self, address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
        return any(address in ipaddress.ip_network(net, strict=False) for net in self.allowed_networks)

    def check(self, url: str) -> tuple[str, int, str]:
        """Return (host, port, address to connect to) for ``url``, or raise Forbidden/InvalidInput."""
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https"):
            raise InvalidInput(f"URL {url[:200]!r}: only http and https are allowed", hint="use https://...")
        if not parts.hostname:
            raise InvalidInput(f"URL {url[:200]!r} has no host", hint="use https://host/path")
        if parts.username or parts.password:
            raise InvalidInput(f"URL {url[:200]!r} carries credentials", hint="send them in a header instead")
        port = parts.port or (443 if parts.scheme == "https" else 80)
        try:
            addresses = self.resolver(parts.hostname, port)
        except OSError as exc:
            raise InvalidInput(f"URL {url[:200]!r}: host {parts.hostname} does not resolve") from exc
        if not addresses:
            raise InvalidInput(f"URL {url[:200]!r}: host {parts.hostname} does not resolve")
        for text in addresses:
            address = ipaddress.ip_address(text.split("%", 1)[0])
            if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
                address = address.ipv4_mapped
            public = address.is_global and not (address.is_multicast or address.is_reserved)
            if not public and not self._allowed(address):
                raise Forbidden(
                    f"outbound request to {parts.hostname} ({address}) refused: not a public address",
                    hint="allow that network explicitly if the destination is trusted",
                )
        return parts.hostname, port, addresses[0]


def fetch(
    policy: EgressPolicy,
    method: str,
    url: str,
    *,
    max_redirects: int = MAX_REDIRECTS,
    timeout: float = 10.0,
    **kwargs: Any,
) -> Any:
    """Send a request with ``httpx``, checking the URL and every redirect target first."""
    import httpx

    for _ in range(max_redirects + 1):
        host, _port, address = policy.check(url)
        parts = urlsplit(url)
        pinned = parts._replace(netloc=_netloc(address, parts.port)).geturl()
        headers = dict(kwargs.pop("headers", None) or {})
        headers["Host"] = parts.netloc.rsplit("@", 1)[-1]
        extensions = {"sni_hostname": host} if parts.scheme == "https" else {}
        with httpx.Client(timeout=timeout, follow_redirects=False) as client:
            response = client.request(method, pinned, headers=headers, extensions=extensions, **kwargs)
        kwargs["headers"] = headers
        if response.is_redirect and "location" in response.headers:
            url = urljoin(url, response.headers["location"])
            if response.status_code in (301, 302, 303):
                method, kwargs = (
                    "GET",
                    {k: v for k, v in kwargs.items() if k not in ("json", "content", "data")},
                )
            continue
        return response
    raise InvalidInput(f"too many redirects from {url[:200]!r}", hint=f"at most {max_redirects} are followed")


def _netloc(address: str, port: int | None) -> str:
    host = f"[{address}]" if ":" in address else address
    return f"{host}:{port}" if port else host

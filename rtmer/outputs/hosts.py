"""Host names as they appear in URLs and HTTP ``Host`` headers, IPv6 literals included,
and which bind addresses only this machine can reach."""

from __future__ import annotations

import ipaddress
import socket
from urllib.parse import urlsplit

WILDCARDS = ("", "0.0.0.0", "::", "[::]")
"""Bind addresses that mean every interface."""


def url_host(host: str) -> str:
    """``host`` as a URL writes it: an IPv6 literal in brackets (``::1`` -> ``[::1]``)."""
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


def host_port(host: str, port: int) -> str:
    """``host:port``, with an IPv6 literal in brackets (``[::1]:8765``)."""
    return f"{url_host(host)}:{port}"


def header_hostname(host_header: str | None) -> str | None:
    """The host of a ``Host`` header (``example:8765`` -> ``example``, ``[::1]:8765`` -> ``::1``), lower case; None if it has none."""
    if not host_header:
        return None
    try:
        name = urlsplit("//" + host_header.strip()).hostname
    except ValueError:
        return None
    return name.lower() if name else None


def is_loopback_name(name: str) -> bool:
    """True for ``localhost`` (and ``*.localhost``), 127.0.0.0/8 and ``::1`` (no lookup)."""
    name = name.strip("[]").rstrip(".").lower()
    if name == "localhost" or name.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def is_loopback_host(host: str) -> bool:
    """True when a bind address ``host`` can only be reached from this machine.

    A name other than ``localhost`` counts when every address it resolves to is loopback.
    """
    if is_loopback_name(host):
        return True
    try:
        ipaddress.ip_address(host.strip("[]"))
        return False  # an address, and not a loopback one
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, None)
    except OSError:
        return False
    return bool(infos) and all(is_loopback_name(str(info[4][0])) for info in infos)


def needs_token_message(what: str, host: str) -> str:
    """Why a server (``what``: "WebSocket", "web page") may not listen on ``host`` without a token."""
    return (
        f"{what} host={host!r} is not a loopback address, so anyone on the network could read the "
        "stream: give a token (--ws-token TOKEN or the RTMER_WS_TOKEN environment variable; clients send "
        "'Authorization: Bearer TOKEN' or ?token=TOKEN), or listen on 127.0.0.1"
    )

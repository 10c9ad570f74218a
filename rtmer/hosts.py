"""Host names as they appear in URLs and HTTP ``Host`` headers, IPv6 literals included."""

from __future__ import annotations

from urllib.parse import urlsplit


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

"""Host names in URLs and Host headers, IPv6 literals included."""

from __future__ import annotations

import pytest

from rtmer.outputs.hosts import header_hostname, host_port, url_host


@pytest.mark.parametrize(("host", "url", "with_port"), [("127.0.0.1", "127.0.0.1", "127.0.0.1:8765"), ("::1", "[::1]", "[::1]:8765"), ("[::1]", "[::1]", "[::1]:8765"), ("example.org", "example.org", "example.org:8765")])
def test_ipv6_literals_get_brackets_once(host: str, url: str, with_port: str) -> None:
    assert url_host(host) == url and host_port(host, 8765) == with_port


@pytest.mark.parametrize(("header", "name"), [("Example.org:8766", "example.org"), ("[::1]:8765", "::1"), ("localhost", "localhost"), ("", None), (None, None), ("[::1", None), (":8765", None)])
def test_a_host_header_gives_its_lower_case_host_or_none(header: str | None, name: str | None) -> None:
    assert header_hostname(header) == name

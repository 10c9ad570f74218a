"""The access policy without a server (``rtmer.outputs.access``): token, Origin and Host."""

from __future__ import annotations

from http import HTTPStatus

import pytest

from rtmer.errors import ConfigError
from rtmer.outputs.access import AccessPolicy, presented_token

TOKEN = "0123456789abcdef-token"


def test_a_token_is_needed_beyond_loopback_and_must_be_long_enough() -> None:
    with pytest.raises(ConfigError, match="token"):
        AccessPolicy(host="0.0.0.0", token=None)
    with pytest.raises(ConfigError, match="at least 16 printable characters"):
        AccessPolicy(host="127.0.0.1", token="short")
    with pytest.raises(ConfigError, match="allowed_origins"):
        AccessPolicy(host="127.0.0.1", token=None, allowed_origins=[""])
    assert AccessPolicy(host="0.0.0.0", token=TOKEN).has_token


def test_the_token_is_checked() -> None:
    policy = AccessPolicy(host="0.0.0.0", token=TOKEN)
    assert policy.check_token(TOKEN) is None
    missing, wrong = policy.check_token(None), policy.check_token("wrong-but-long-enough")
    assert missing is not None and missing[0] is HTTPStatus.UNAUTHORIZED and "needs a token" in missing[1]
    assert wrong == (HTTPStatus.UNAUTHORIZED, "wrong token")
    assert AccessPolicy(host="127.0.0.1", token=None).check_token(None) is None


@pytest.mark.parametrize(
    ("token", "origins", "hosts", "refused"),
    [(None, [], ["127.0.0.1:8765"], False),
     (None, [], ["evil.example:8765"], True),  # DNS rebinding
     (None, ["http://localhost:8080"], ["localhost:8765"], False),
     (None, ["https://elsewhere.example"], ["127.0.0.1:8765"], True),
     (None, ["null"], ["127.0.0.1:8765"], True),
     (None, ["http://a", "http://b"], ["127.0.0.1:8765"], True),
     (TOKEN, ["http://192.168.1.5:8080"], ["192.168.1.5:8765"], False),  # the page served from this host
     (TOKEN, [], ["192.168.1.5:8765"], False)],
)
def test_origin_and_host(token: str | None, origins: list[str], hosts: list[str], refused: bool) -> None:
    got = AccessPolicy(host="0.0.0.0" if token else "127.0.0.1", token=token).check_headers(origins=origins, hosts=hosts)
    assert (got is not None) == refused
    if got is not None:
        assert got[0] is HTTPStatus.FORBIDDEN


def test_allowed_origins_and_star() -> None:
    assert AccessPolicy(host="127.0.0.1", token=None, allowed_origins=["https://Show.example/"]).check_headers(
        origins=["https://show.example"], hosts=["127.0.0.1"]) is None
    assert AccessPolicy(host="127.0.0.1", token=None, allowed_origins=["*"]).check_headers(
        origins=["null"], hosts=["127.0.0.1"]) is None


def test_the_presented_token_comes_from_the_header_or_the_query() -> None:
    assert presented_token(authorization="Bearer abc", path="/?token=xyz") == "abc"
    assert presented_token(authorization=None, path="/?token=xyz") == "xyz"
    assert presented_token(authorization="Basic abc", path="/") is None

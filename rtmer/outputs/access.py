"""Who may read the WebSocket stream: the token, Origin and Host rules of a handshake.

Sans-I/O: ``AccessPolicy`` is given what a handshake presented (a token, its ``Origin``
and ``Host`` headers) and says whether to refuse it, with the HTTP status and why; the
server (``rtmer.outputs.websocket``) reads the request and sends the answer.

- **Where it listens.** A loopback address (``127.0.0.1``, ``::1``, ``localhost``) needs
  nothing. Any other address (``0.0.0.0``, a LAN address) needs a ``token``: the
  policy refuses it otherwise (``ConfigError``).
- **Token.** With a ``token`` (at least ``MIN_TOKEN_CHARS`` characters) every client must
  present it, as ``Authorization: Bearer TOKEN`` or as the query parameter
  ``?token=TOKEN`` (``presented_token``); it is compared in constant time
  (``hmac.compare_digest``). A missing or wrong token is refused with HTTP 401.
- **Origin.** A browser sends the page's ``Origin``; a handshake whose Origin is not
  allowed is refused with HTTP 403, so a web page from elsewhere cannot read the
  stream. Allowed: no Origin (programs, not browsers); a loopback origin
  (``http://localhost:…``, ``http://127.0.0.1:…``: the built-in page, local tools); an
  origin on the host the client connected to (the built-in page served from this
  machine's LAN address); and each of ``allowed_origins`` (exact, such as
  ``https://show.example``; ``"*"`` allows any, ``"null"`` pages opened from files).
- **Host.** Without a token, the ``Host`` header must name a loopback host, which stops
  DNS rebinding (a page whose own name has been pointed at 127.0.0.1) with HTTP 403.
"""

from __future__ import annotations

import hmac
from collections.abc import Sequence
from http import HTTPStatus
from urllib.parse import parse_qs, urlsplit

from rtmer.errors import ConfigError
from rtmer.outputs.hosts import header_hostname, is_loopback_host, is_loopback_name, needs_token_message

MIN_TOKEN_CHARS = 16

Refusal = tuple[HTTPStatus, str]
"""An HTTP status and why, for the client (``None`` where a handshake may go on)."""


class AccessPolicy:
    """The token, Origin and Host rules of a server listening on ``host`` (see the module doc).

    Raises ``ConfigError`` for a token that is too short, has spaces at its ends or is
    not printable, for no token on a ``host`` beyond loopback, and for an
    ``allowed_origins`` entry that is not a non-empty string.
    """

    def __init__(self, *, host: str, token: str | None, allowed_origins: Sequence[str] = ()) -> None:
        if token is not None and (not isinstance(token, str) or len(token) < MIN_TOKEN_CHARS
                                  or not token.isprintable() or token != token.strip()):
            raise ConfigError(
                f"WebSocket token must be at least {MIN_TOKEN_CHARS} printable characters without spaces at its "
                "ends (got " + (f"{len(token)} characters" if isinstance(token, str) else repr(token)) + "); "
                "make one with: python -c 'import secrets; print(secrets.token_urlsafe())'"
            )
        if token is None and not is_loopback_host(host):
            raise ConfigError(needs_token_message("WebSocket", host))
        origins = list(allowed_origins)
        if not all(isinstance(o, str) and o for o in origins):
            raise ConfigError(f"WebSocket allowed_origins={origins!r} must be origins such as 'https://show.example'")
        self._token = token.encode("utf-8") if token is not None else None
        self._origins = {_normal_origin(o) for o in origins}

    @property
    def has_token(self) -> bool:
        """True when clients must present a token."""
        return self._token is not None

    def check_token(self, presented: str | None) -> Refusal | None:
        """Refuse a missing or wrong token (401) when the policy has one."""
        if self._token is None:
            return None
        if presented is None:
            return HTTPStatus.UNAUTHORIZED, ("this server needs a token: send 'Authorization: Bearer TOKEN' or "
                                             "connect to ...?token=TOKEN")
        if not hmac.compare_digest(presented.encode("utf-8", "surrogateescape"), self._token):
            return HTTPStatus.UNAUTHORIZED, "wrong token"
        return None

    def check_headers(self, *, origins: Sequence[str], hosts: Sequence[str]) -> Refusal | None:
        """Refuse (403) a ``Host`` that is not loopback without a token, and an ``Origin`` not allowed.

        ``origins`` and ``hosts`` are every value of those headers in the request.
        """
        host = header_hostname(hosts[0]) if len(hosts) == 1 else None
        if self._token is None and (host is None or not is_loopback_name(host)):
            return HTTPStatus.FORBIDDEN, (f"Host {hosts[0] if hosts else None!r} is not allowed without a token "
                                          "(this server answers loopback names only)")
        if len(origins) > 1 or (origins and not self._origin_allowed(origins[0], host)):
            return HTTPStatus.FORBIDDEN, f"Origin {', '.join(origins)!r} is not allowed (allow it with --ws-origin ORIGIN)"
        return None

    def _origin_allowed(self, origin: str, host: str | None) -> bool:
        normal = _normal_origin(origin)
        if "*" in self._origins or normal in self._origins:
            return True
        name = _hostname_of_origin(origin)
        if name is None:
            return False  # "null" (a page opened from a file, a sandboxed frame) unless allowed
        return is_loopback_name(name) or (host is not None and name == host)


def presented_token(*, authorization: str | None, path: str) -> str | None:
    """The token a client presented: ``Authorization: Bearer TOKEN``, else ``?token=TOKEN``
    in the request's ``path``; None if neither."""
    if authorization:
        scheme, _, value = authorization.strip().partition(" ")
        if scheme.lower() == "bearer" and value.strip():
            return value.strip()
    try:
        query = parse_qs(urlsplit(path).query, max_num_fields=20)
    except ValueError:
        return None
    values = query.get("token")
    return values[0] if values else None


def _hostname_of_origin(origin: str) -> str | None:
    try:
        parts = urlsplit(origin.strip())
        name = parts.hostname
    except ValueError:
        return None
    if parts.scheme not in ("http", "https") or not name:
        return None
    return name.lower()


def _normal_origin(origin: str) -> str:
    return origin.strip().rstrip("/").lower()

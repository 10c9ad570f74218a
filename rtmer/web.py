"""The live web page: a small HTTP server for the page's files, beside the WebSocket server.

``rtmer run --web`` and ``rtmer demo`` serve a page (``http://127.0.0.1:8766/`` by default)
that draws every stream on the valence/arousal circumplex, with a fading trail of the last
30 s, the current mood, raw and smoothed values, a 60 s time series and the connection
state. The page is plain HTML, CSS and JavaScript shipped in the package
(``rtmer/webpage/``, found with ``importlib.resources``, read once at start); nothing is
built and nothing is fetched from anywhere but this server.

Paths served (``GET`` and ``HEAD``; anything else is 404, or 501 for other methods):

==================  ===================================================================
``/``               the page (``index.html``)
``/app.js``         its script
``/style.css``      its style sheet
``/config.json``    ``{"ws": "ws://HOST:PORT/"}`` (``wss://`` with TLS): where the page finds the
                    WebSocket server
==================  ===================================================================

The page reads its data from the WebSocket server only, with the same protocol as every
other client (``hello``, then ``va`` messages; ``subscribe`` when the page's URL has
``?streams=deck1,deck2``); ``config.json`` only says where that server is. The page
fetches it again before every reconnection, so it follows rtmer to a new WebSocket port
after a restart; ``?ws=ws://host:port/`` in the page's URL overrides it. A WebSocket
server that needs a token gets the one in the page's own URL (``?token=TOKEN``, added
to the WebSocket URL as its ``token`` parameter); ``config.json`` never holds it.

Notes
-----
The server runs in a daemon thread (``http.server.ThreadingHTTPServer``, one thread per
request) and shares nothing with the engine: it holds the files' bytes and the WebSocket
address, nothing else, and never touches the updates. When the WebSocket server listens
on a wildcard address (``0.0.0.0``, ``::``), ``config.json`` names the host the browser
used to reach this server. Responses carry a Content-Security-Policy that allows scripts,
styles and connections only from this server and WebSocket URLs, so the page cannot load
anything from the internet by mistake.
"""

from __future__ import annotations

import errno
import json
import logging
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib.resources import files
from typing import Any
from urllib.parse import urlsplit

from rtmer.errors import ConfigError, PortInUseError
from rtmer.hosts import header_hostname, url_host

log = logging.getLogger(__name__)

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8766
PAGE_PACKAGE = "rtmer"
PAGE_FOLDER = "webpage"
PAGE_FILES: dict[str, tuple[str, str]] = {
    "/": ("index.html", "text/html; charset=utf-8"),
    "/index.html": ("index.html", "text/html; charset=utf-8"),
    "/app.js": ("app.js", "text/javascript; charset=utf-8"),
    "/style.css": ("style.css", "text/css; charset=utf-8"),
}
"""URL path -> (file in ``rtmer/webpage/``, content type)."""
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self' ws: wss:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
_WILDCARDS = ("", "0.0.0.0", "::", "[::]")


def page_file(name: str) -> bytes:
    """The bytes of one of the page's files (``index.html``, ``app.js``, ``style.css``)."""
    return (files(PAGE_PACKAGE) / PAGE_FOLDER / name).read_bytes()


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True  # a restarted rtmer rebinds at once (TIME_WAIT)

    def __init__(self, address: tuple[str, int], page: WebPageServer, *, family: int) -> None:
        self.address_family = family
        self.page = page
        super().__init__(address, _Handler)


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    server_version = "rtmer"
    sys_version = ""  # no Python version in the Server header

    def do_GET(self) -> None:  # noqa: N802 - the name http.server dispatches to
        self._respond(body=True)

    def do_HEAD(self) -> None:  # noqa: N802
        self._respond(body=False)

    def _respond(self, *, body: bool) -> None:
        path = urlsplit(self.path).path
        page = self.server.page
        if path == "/config.json":
            content = json.dumps({"ws": page.ws_url(self.headers.get("Host"))}).encode()
            kind = "application/json"
            status = 200
        elif path in PAGE_FILES:
            name, kind = PAGE_FILES[path]
            content = page.files[name]
            status = 200
        else:
            content = b"not found\n"
            kind = "text/plain; charset=utf-8"
            status = 404
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(content)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("Referrer-Policy", "no-referrer")
        self.send_header("Content-Security-Policy", CONTENT_SECURITY_POLICY)
        self.end_headers()
        if body:
            self.wfile.write(content)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
        log.debug("web %s: " + format, self.address_string(), *args)


class WebPageServer:
    """Serves the live page over HTTP from a daemon thread (see the module docstring).

    Parameters
    ----------
    host, port
        Where to listen; 127.0.0.1 by default, so only this machine sees the page.
        ``port=0`` picks a free port; ``.port`` gives the bound one. The constructor
        returns once the server listens, and raises ``PortInUseError`` if the port is
        taken (``ConfigError`` for other bind errors).
    ws_host, ws_port, ws_tls
        Where the WebSocket server listens (``WebSocketSink.host``, ``.port``) and
        whether it speaks TLS (``wss://``): what ``config.json`` tells the page.
    """

    def __init__(self, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT, *, ws_host: str, ws_port: int,
                 ws_tls: bool = False) -> None:
        if not isinstance(host, str) or not host:
            raise ConfigError(f"web host={host!r} must be a non-empty host name or address")
        if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
            raise ConfigError(f"web port={port!r} must be an integer in 0..65535 (0 picks a free port)")
        if isinstance(ws_port, bool) or not isinstance(ws_port, int) or not 1 <= ws_port <= 65535:
            raise ConfigError(f"web page ws_port={ws_port!r} must be the WebSocket server's port, in 1..65535")
        self.ws_host = ws_host
        self.ws_port = ws_port
        self.ws_tls = bool(ws_tls)
        self.files = {name: page_file(name) for name, _ in PAGE_FILES.values()}
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        try:
            self._server = _Server((host.strip("[]"), port), self, family=family)
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise PortInUseError(host, port, option="--web-port") from exc
            raise ConfigError(f"web page server cannot listen on {host}:{port}: {exc}") from exc
        self.host = host
        self.port = int(self._server.server_address[1])
        self._closed = False
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.2},
                                        name=f"rtmer-web-{self.port}", daemon=True)
        self._thread.start()
        log.info("web page on %s", self.url)

    @property
    def url(self) -> str:
        """The page's address, e.g. ``http://127.0.0.1:8766/`` (a wildcard host reads as 127.0.0.1)."""
        host = "127.0.0.1" if self.host in _WILDCARDS else self.host
        return f"http://{url_host(host)}:{self.port}/"

    def ws_url(self, host_header: str | None = None) -> str:
        """The WebSocket URL for the page; a wildcard WebSocket host becomes the host the
        browser reached this server by (its ``Host`` header), else 127.0.0.1."""
        host = self.ws_host
        if host in _WILDCARDS:
            host = header_hostname(host_header) or "127.0.0.1"
        return f"{'wss' if self.ws_tls else 'ws'}://{url_host(host)}:{self.ws_port}/"

    def close(self) -> None:
        """Stop serving and join the thread; requests in flight finish on their own. Safe to call twice."""
        if self._closed:
            return
        self._closed = True
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(2.0)

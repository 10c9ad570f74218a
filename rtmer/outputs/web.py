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

Security
--------
- **Where it listens.** 127.0.0.1 by default. Any other address needs the WebSocket
  server to have a token, as the WebSocket server itself does (``ConfigError`` otherwise):
  the page is useless without the stream, and its URL carries the token.
- **TLS.** Given the WebSocket server's ``ssl_context`` (``--ws-cert``/``--ws-key``) the
  page is served over HTTPS too, so a ``?token=`` in its URL never crosses the network in
  the clear.
- **Bounded.** At most ``max_connections`` connections are served at once, each by its
  own thread; one more is answered ``503`` (closed at once with TLS) and counted in
  ``busy``. Each connection has ``request_timeout`` seconds for its whole request and
  response, then it is closed, so half-sent requests cannot hold the server. The listen
  backlog is ``LISTEN_BACKLOG``. When the process is out of file descriptors, failing
  ``accept()`` calls are logged once a second at most and retried every
  ``ACCEPT_RETRY_SECONDS``.

Notes
-----
The server runs in a daemon thread (``http.server.ThreadingHTTPServer``, one thread per
connection, one request per connection) and shares nothing with the engine: it holds the
files' bytes and the WebSocket address, nothing else, and never touches the updates. When
the WebSocket server listens on a wildcard address (``0.0.0.0``, ``::``), ``config.json``
names the host the browser used to reach this server. Responses carry a
Content-Security-Policy that allows scripts, styles and connections only from this server
and WebSocket URLs, so the page cannot load anything from the internet by mistake.
"""

from __future__ import annotations

import errno
import json
import logging
import socket
import ssl
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib.resources import files
from typing import Any
from urllib.parse import urlsplit

from rtmer.errors import ConfigError, PortInUseError
from rtmer.outputs.hosts import WILDCARDS, header_hostname, is_loopback_host, needs_token_message, url_host
from rtmer.outputs.netlimits import OUT_OF_RESOURCES, AcceptErrorLog

log = logging.getLogger(__name__)

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8766
MAX_CONNECTIONS = 32
"""Connections served at once [connections]; one more gets 503."""
REQUEST_TIMEOUT = 10.0
"""Seconds a connection has for its request and the response; then it is closed."""
LISTEN_BACKLOG = 128
"""Connections the kernel holds for ``accept()`` [connections]."""
ACCEPT_RETRY_SECONDS = 0.1
"""Pause after an ``accept()`` that failed for want of file descriptors [s]."""
BUSY_RESPONSE = (b"HTTP/1.0 503 Service Unavailable\r\nContent-Type: text/plain; charset=utf-8\r\n"
                 b"Content-Length: 5\r\nRetry-After: 1\r\nConnection: close\r\n\r\nbusy\n")
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


def page_file(name: str) -> bytes:
    """The bytes of one of the page's files (``index.html``, ``app.js``, ``style.css``)."""
    return (files(PAGE_PACKAGE) / PAGE_FOLDER / name).read_bytes()


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True  # a restarted rtmer rebinds at once (TIME_WAIT)
    request_queue_size = LISTEN_BACKLOG

    def __init__(self, address: tuple[str, int], page: WebPageServer, *, family: int,
                 ssl_context: ssl.SSLContext | None, max_connections: int, request_timeout: float) -> None:
        self.address_family = family
        self.page = page
        self.ssl_context = ssl_context
        self.max_connections = max_connections
        self.request_timeout = request_timeout
        self.busy = 0
        self._deadlines: dict[socket.socket, float] = {}  # open connections -> when they are closed [monotonic s]
        self._lock = threading.Lock()
        self._accept_errors = AcceptErrorLog(log, "web page server")
        super().__init__(address, _Handler)

    def get_request(self) -> tuple[socket.socket, Any]:
        try:
            conn, addr = self.socket.accept()
        except OSError as exc:
            if exc.errno in OUT_OF_RESOURCES:
                self._accept_errors.failed(exc)
                time.sleep(ACCEPT_RETRY_SECONDS)  # the listening socket stays readable: do not spin
            raise
        if self.ssl_context is None:
            return conn, addr
        try:  # the handshake happens in the connection's own thread, under its timeout
            return self.ssl_context.wrap_socket(conn, server_side=True, do_handshake_on_connect=False), addr
        except (OSError, ValueError):
            conn.close()
            raise

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._lock:
            full = len(self._deadlines) >= self.max_connections
            if not full:
                self._deadlines[request] = time.monotonic() + self.request_timeout
        if not full:
            super().process_request(request, client_address)
            return
        self.busy += 1
        log.log(logging.WARNING if self.busy == 1 else logging.DEBUG,
                "web page: %d connections are open, the most allowed; more get 503 until one ends "
                "(logged once, counted)", self.max_connections)
        if self.ssl_context is None:
            try:
                request.setblocking(False)
                request.send(BUSY_RESPONSE)
            except OSError:
                pass
        super().shutdown_request(request)

    def shutdown_request(self, request: Any) -> None:
        with self._lock:
            self._deadlines.pop(request, None)
        super().shutdown_request(request)

    def service_actions(self) -> None:
        """Close connections past their deadline (called by ``serve_forever`` every poll)."""
        now = time.monotonic()
        with self._lock:
            late = [conn for conn, deadline in self._deadlines.items() if deadline < now]
        for conn in late:
            try:  # socket.socket's own shutdown, not SSLSocket's: this wakes the connection's thread
                socket.socket.shutdown(conn, socket.SHUT_RDWR)
            except OSError:
                pass

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A request that failed (a reset, a TLS handshake that failed): one debug line, no traceback."""
        log.debug("web %s: %r", client_address, sys.exc_info()[1])


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    server_version = "rtmer"
    sys_version = ""  # no Python version in the Server header

    def setup(self) -> None:
        super().setup()
        self.connection.settimeout(self.server.request_timeout)  # each read and write of this connection [s]
        if isinstance(self.connection, ssl.SSLSocket):
            self.connection.do_handshake()

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
    """Serves the live page over HTTP (HTTPS with ``ssl_context``) from a daemon thread
    (see the module docstring).

    Parameters
    ----------
    host, port
        Where to listen; 127.0.0.1 by default, so only this machine sees the page. Any
        other host needs ``ws_has_token``. ``port=0`` picks a free port; ``.port`` gives
        the bound one. The constructor returns once the server listens, and raises
        ``PortInUseError`` if the port is taken (``ConfigError`` for other bind errors).
    ws_host, ws_port, ws_tls
        Where the WebSocket server listens (``WebSocketSink.host``, ``.port``) and
        whether it speaks TLS (``wss://``): what ``config.json`` tells the page.
    ws_has_token
        Whether the WebSocket server needs a token (``WebSocketSink.has_token``).
    ssl_context
        Serve HTTPS with this context (``WebSocketSink.ssl_context``); None: plain HTTP.
    max_connections, request_timeout
        Connections served at once, and the seconds [s] each has for its request and
        response.
    """

    def __init__(self, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT, *, ws_host: str, ws_port: int,
                 ws_tls: bool = False, ws_has_token: bool = False, ssl_context: ssl.SSLContext | None = None,
                 max_connections: int = MAX_CONNECTIONS, request_timeout: float = REQUEST_TIMEOUT) -> None:
        if not isinstance(host, str) or not host:
            raise ConfigError(f"web host={host!r} must be a non-empty host name or address")
        if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
            raise ConfigError(f"web port={port!r} must be an integer in 0..65535 (0 picks a free port)")
        if isinstance(ws_port, bool) or not isinstance(ws_port, int) or not 1 <= ws_port <= 65535:
            raise ConfigError(f"web page ws_port={ws_port!r} must be the WebSocket server's port, in 1..65535")
        if isinstance(max_connections, bool) or not isinstance(max_connections, int) or max_connections < 1:
            raise ConfigError(f"web page max_connections={max_connections!r} must be a positive integer")
        if (isinstance(request_timeout, bool) or not isinstance(request_timeout, int | float)
                or not 0 < request_timeout < float("inf")):
            raise ConfigError(f"web page request_timeout={request_timeout!r} must be a positive number of seconds")
        if not ws_has_token and not is_loopback_host(host):
            raise ConfigError(needs_token_message("web page", host))
        self.ws_host = ws_host
        self.ws_port = ws_port
        self.ws_tls = bool(ws_tls)
        self.files = {name: page_file(name) for name, _ in PAGE_FILES.values()}
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        try:
            self._server = _Server((host.strip("[]"), port), self, family=family, ssl_context=ssl_context,
                                   max_connections=max_connections, request_timeout=request_timeout)
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise PortInUseError(host, port, option="--web-port") from exc
            raise ConfigError(f"web page server cannot listen on {host}:{port}: {exc}") from exc
        self.host = host
        self.port = int(self._server.server_address[1])
        self.tls = ssl_context is not None
        self._closed = False
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.2},
                                        name=f"rtmer-web-{self.port}", daemon=True)
        self._thread.start()
        log.info("web page on %s", self.url)

    @property
    def url(self) -> str:
        """The page's address as bound, e.g. ``http://127.0.0.1:8766/``, ``https://0.0.0.0:8766/``."""
        return f"{'https' if self.tls else 'http'}://{url_host(self.host)}:{self.port}/"

    @property
    def busy(self) -> int:
        """Connections answered 503 because ``max_connections`` were open."""
        return self._server.busy

    def ws_url(self, host_header: str | None = None) -> str:
        """The WebSocket URL for the page; a wildcard WebSocket host becomes the host the
        browser reached this server by (its ``Host`` header), else 127.0.0.1."""
        host = self.ws_host
        if host in WILDCARDS:
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

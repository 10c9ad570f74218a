"""WebSocket server: pushes every update as JSON to any number of clients.

The server runs on its own asyncio event loop in a daemon thread. The engine thread only
calls ``publish``, which hands the update to that loop (``call_soon_threadsafe``) and
returns at once; the loop serialises the update once and appends the same string to each
client's queue; one sender task per client writes its queue to its socket.

Protocol: ``rtmer.protocol`` (the messages both ways, ``PROTOCOL_VERSION``).

Anything else (binary frames, text that is not JSON or not an object, JSON nested
deeper than Python can parse, bad fields, text over ``MAX_CONTROL_CHARS``) is ignored
and counted. A frame over ``MAX_FRAME_BYTES`` makes the websockets library close that
one connection (code 1009); the server and the other clients carry on. A client that
sends more than ``CLIENT_MESSAGE_RATE`` (20) messages a second on average, in bursts of
at most ``CLIENT_MESSAGE_BURST`` (40), valid or not, is closed with code 1008 (policy
violation) and counted in ``flooded``.

Security
--------
- **Who may connect** (where it listens, the token, Origin, Host): ``rtmer.outputs.access``;
  a refused handshake gets its HTTP status (401, 403) and why.
- **Connection cap.** At most ``max_clients`` clients at once; one more is accepted and
  closed at once with code 1013 (try again later) and a reason that says so.
- **TLS.** With ``certfile`` and ``keyfile`` the server speaks ``wss://``.
- **Out of file descriptors.** A failing ``accept()`` (EMFILE, ENFILE) is logged once a
  second at most, without a traceback; asyncio retries every second by itself.

Refused handshakes are counted in ``refused`` (and capped clients in ``capped``).

Notes
-----
Delivery: a client with nothing queued whose socket keeps up gets each update written
at once (websockets ``broadcast``: one encoding, one write per client, no task switch).
Any other client gets the message through its queue, which its sender task writes as
fast as the socket takes it.

Flow control: kernel buffers alone would hold hundreds of updates for a slow client
(megabytes on loopback), so that it reads data minutes old. Instead the server pings each
client after writing to it, at most every ``ACK_INTERVAL`` (0.25 s); the pong confirms
that the client has read everything written before the ping. Nothing more is written to
a client that has left a message unconfirmed for ``max_lag`` (2 s): its updates go to its
queue. Its socket's send buffer is ``SEND_BUFFER_BYTES`` and the websockets write limit
``WRITE_LIMIT_BYTES``, so little waits below the server either.

Overflow policy: each client has a queue of ``queue_size`` messages
(``deque(maxlen=queue_size)``). When it is full the OLDEST message is dropped; a queued
message older than ``max_lag`` when its turn comes is dropped too. Both are counted in
that client's ``dropped`` and in the total. Other clients and the engine never wait for
it. So what a client has been sent and not yet read is at most about ``2 * max_lag``
of updates (those written in the ``max_lag`` before its last confirmation, and a queue
of updates younger than ``max_lag``), plus what its own library buffers after reading
the socket (16 messages for a websockets client, ``max_queue``). A client that reads
more slowly than the stream skips updates rather than falling further behind. A client
that stops reading entirely is closed by the keepalive ping after about
``ping_interval + ping_timeout`` (20 s + 20 s). Per-message compression is off, so one
serialised string is sent to every client as is.
"""

from __future__ import annotations

import asyncio
import errno
import json
import logging
import math
import socket
import ssl
import threading
import time
from collections import deque
from dataclasses import dataclass
from http import HTTPStatus
from itertools import count
from typing import Any

from websockets.asyncio.server import Server, ServerConnection, broadcast, serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response
from websockets.protocol import State

from rtmer.core.update import Update
from rtmer.errors import ConfigError, PortInUseError
from rtmer.outputs.access import AccessPolicy, presented_token
from rtmer.outputs.hosts import host_port
from rtmer.outputs.netlimits import OUT_OF_RESOURCES, AcceptErrorLog, TokenBucket
from rtmer.protocol import MAX_SUBSCRIBE_STREAMS, PROTOCOL_VERSION, hello_to_json, update_to_json

log = logging.getLogger(__name__)

MAX_CONTROL_CHARS = 4096
"""Client text messages longer than this [characters] are ignored."""
MAX_FRAME_BYTES = 65536
"""Client frames larger than this [bytes] close that client's connection (code 1009)."""
MAX_CLIENTS = 256
"""Default cap on clients connected at once; one more is closed with code 1013."""
CLOSE_TOO_MANY_CLIENTS = 1013  # RFC 6455 registry: "Try Again Later"
CLOSE_POLICY_VIOLATION = 1008
CLIENT_MESSAGE_RATE = 20.0
"""Messages a client may send a second on average [1/s]; more closes it with code 1008."""
CLIENT_MESSAGE_BURST = 40
"""Messages a client may send at once, above the rate [messages]."""
MAX_LAG_SECONDS = 2.0
"""Nothing more is written to a client that has not confirmed (by answering a ping) what
was written to it this long ago [s]: its updates wait in its queue instead."""
ACK_INTERVAL = 0.25
"""Seconds between the pings that ask a client how far it has read."""
SEND_BUFFER_BYTES = 16384
"""SO_SNDBUF of each client's socket [bytes] (Linux doubles it): little waits in the kernel."""
WRITE_LIMIT_BYTES = 16384
"""High-water mark of each client's user-space write buffer [bytes] (websockets ``write_limit``)."""
HELLO_MODEL_KEYS = (
    "model_name", "model_version", "contract_version", "sample_rate", "hop_samples", "hop_seconds",
    "outputs", "output_range",
)
"""The model metadata a client without the token gets in its hello (what it needs to read the stream)."""
FAST_PATH_BUFFER_BYTES = 16384
"""A client with nothing queued and less than this [bytes] waiting in its socket's write
buffer gets an update written at once; the others go through their queue."""
_GONE_KEPT = 100  # stats of this many disconnected clients are kept


@dataclass(frozen=True)
class ClientStats:
    """One client's counters [messages]. ``streams`` is its subscription (None: all)."""

    id: int
    remote: str
    connected: bool
    streams: tuple[str, ...] | None
    queued: int
    sent: int
    dropped: int
    ignored: int


@dataclass(frozen=True)
class WebSocketStats:
    """Server counters [messages, except ``clients`` and ``connections``].

    ``clients`` are connected now; ``connections`` ever accepted; ``published`` updates
    handed to ``publish``; ``sent``/``dropped``/``ignored`` totals over all clients
    (``ignored`` counts client messages). ``per_client`` lists the connected clients and
    the last 100 disconnected ones.
    """

    clients: int
    connections: int
    published: int
    sent: int
    dropped: int
    ignored: int
    per_client: tuple[ClientStats, ...]
    refused: int = 0
    """Handshakes refused: wrong or missing token, Origin or Host not allowed."""
    capped: int = 0
    """Clients closed at once because ``max_clients`` were connected."""
    flooded: int = 0
    """Clients closed (code 1008) for sending more than ``CLIENT_MESSAGE_RATE`` messages a second."""


class _Client:
    def __init__(self, id_: int, ws: ServerConnection, queue_size: int) -> None:
        self.id = id_
        self.ws = ws
        self.remote = _remote(ws)
        self.queue: deque[tuple[float, str]] = deque(maxlen=queue_size)  # (when queued [monotonic s], message)
        self.wake = asyncio.Event()
        self.streams: frozenset[str] | None = None
        self.busy = True  # its sender task has messages to write (the hello first)
        self.connected = True
        self.sent = 0
        self.dropped = 0
        self.ignored = 0
        self.hello = ""
        self.budget = TokenBucket(CLIENT_MESSAGE_RATE, CLIENT_MESSAGE_BURST)
        # How far it has read, from its answers to pings (the sender's flow control):
        self.unconfirmed_since: float | None = None  # when the oldest unconfirmed message was written [monotonic s]
        self.first_after_ping: float | None = None  # when the first message after the ping in flight was written
        self.wrote = asyncio.Event()  # something was written since the last ping

    def stats(self) -> ClientStats:
        return ClientStats(
            id=self.id,
            remote=self.remote,
            connected=self.connected,
            streams=None if self.streams is None else tuple(sorted(self.streams)),
            queued=len(self.queue),
            sent=self.sent,
            dropped=self.dropped,
            ignored=self.ignored,
        )


class WebSocketSink:
    """A WebSocket server that sends every update to every (subscribed) client.

    Parameters
    ----------
    host, port
        Where to listen; 127.0.0.1 by default. ``port=0`` picks a free port; ``.port``
        gives the bound one. The constructor returns once the server listens, and raises
        ``PortInUseError`` if the port is taken (``ConfigError`` for other bind errors).
    hello
        JSON-serialisable dict sent on connect as ``{"type": "hello", "protocol": 1, ...}``;
        the engine puts ``"model"`` (metadata) and ``"streams"`` (ids) in it.
    queue_size
        Messages queued per client [messages]; when full the oldest is dropped and counted.
    token
        The secret clients must present (see the module's Security notes); None lets
        any client in, which only a loopback ``host`` allows.
    allowed_origins
        Browser origins allowed besides loopback and same-host ones, exactly as a
        browser sends them (``https://show.example:8443``); ``"*"`` allows any.
    max_clients
        Clients connected at once [clients]; one more is closed with code 1013.
    certfile, keyfile
        PEM certificate (chain) and private key: serve ``wss://`` (TLS).
    max_lag
        Seconds [s] of writes a client may leave unconfirmed before further updates wait
        in its queue (see the overflow policy in the module docstring).

    See the module docstring for the protocol, the overflow policy and security.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 8765,
        *,
        hello: dict[str, Any],
        queue_size: int = 64,
        token: str | None = None,
        allowed_origins: tuple[str, ...] | list[str] = (),
        max_clients: int = MAX_CLIENTS,
        certfile: str | None = None,
        keyfile: str | None = None,
        max_lag: float = MAX_LAG_SECONDS,
    ) -> None:
        if not isinstance(host, str) or not host:
            raise ConfigError(f"WebSocket host={host!r} must be a non-empty host name or address")
        if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
            raise ConfigError(f"WebSocket port={port!r} must be an integer in 0..65535 (0 picks a free port)")
        if isinstance(queue_size, bool) or not isinstance(queue_size, int) or queue_size < 1:
            raise ConfigError(f"WebSocket queue_size={queue_size!r} must be a positive integer [messages]")
        check_max_clients(max_clients)
        if isinstance(max_lag, bool) or not isinstance(max_lag, int | float) or not 0 < max_lag < math.inf:
            raise ConfigError(f"WebSocket max_lag={max_lag!r} must be a positive number of seconds")
        self._access = AccessPolicy(host=host, token=token, allowed_origins=allowed_origins)
        if (certfile is None) != (keyfile is None):
            raise ConfigError(f"WebSocket TLS needs both a certificate and a key (got certfile={certfile!r}, "
                              f"keyfile={keyfile!r})")
        self._ssl: ssl.SSLContext | None = None
        if certfile is not None and keyfile is not None:
            try:
                ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
                ctx.load_cert_chain(certfile, keyfile)
            except (OSError, ssl.SSLError, ValueError) as exc:
                raise ConfigError(f"WebSocket TLS: cannot load certificate {certfile!r} and key {keyfile!r} "
                                  f"({exc})") from exc
            self._ssl = ctx
        self.host = host
        self.port = port
        self.queue_size = queue_size
        self.max_clients = max_clients
        self.max_lag = float(max_lag)
        self.tls = self._ssl is not None
        self._refused = 0
        self._capped = 0
        self._flooded = 0
        self._accept_errors = AcceptErrorLog(log, "WebSocket server")
        self._hello_json, self._hello_public = self._encode_hellos(hello)
        self._clients: dict[int, _Client] = {}
        self._gone: deque[ClientStats] = deque(maxlen=_GONE_KEPT)
        self._ids = count(1)
        self._connections = 0
        self._published = 0
        self._sent = 0
        self._dropped = 0
        self._ignored = 0
        self._closed = False
        self._server: Server | None = None
        self._start_error: BaseException | None = None
        self._ready = threading.Event()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, name=f"rtmer-websocket-{port}", daemon=True)
        self._thread.start()
        self._ready.wait()
        if self._start_error is not None:
            self._thread.join()
            err = self._start_error
            if isinstance(err, OSError) and err.errno == errno.EADDRINUSE:
                raise PortInUseError(host, port) from err
            raise ConfigError(f"WebSocket server cannot listen on {host}:{port}: {err}") from err
        log.info("WebSocket server listening on %s", self.url)

    @property
    def has_token(self) -> bool:
        """True when clients must present a token."""
        return self._access.has_token

    @property
    def ssl_context(self) -> ssl.SSLContext | None:
        """The TLS context of ``certfile`` and ``keyfile`` (None without TLS); the web page serves HTTPS with it."""
        return self._ssl

    @property
    def url(self) -> str:
        """Where clients connect, e.g. ``ws://127.0.0.1:8765/`` (``wss://`` with TLS)."""
        return f"{'wss' if self.tls else 'ws'}://{host_port(self.host, self.port)}/"

    @classmethod
    def _encode_hellos(cls, hello: dict[str, Any]) -> tuple[str, str]:
        """(the hello for clients with the token, the one for the others: ``HELLO_MODEL_KEYS`` only)."""
        full = cls._encode_hello(hello)
        public = dict(hello)
        model = hello.get("model")
        if isinstance(model, dict):
            public["model"] = {k: model[k] for k in HELLO_MODEL_KEYS if k in model}
        return full, cls._encode_hello(public)

    @staticmethod
    def _encode_hello(hello: dict[str, Any]) -> str:
        return hello_to_json(hello)

    # -- engine thread -------------------------------------------------------

    def publish(self, update: Update) -> None:
        """Hand ``update`` to the server loop and return at once (never blocks)."""
        if self._closed:
            return
        self._published += 1
        try:
            self._loop.call_soon_threadsafe(self._broadcast, update)
        except RuntimeError:  # the loop has stopped (closing)
            pass

    def set_hello(self, hello: dict[str, Any]) -> None:
        """Replace the hello sent to clients that connect from now on."""
        full, public = self._encode_hellos(hello)
        self._hello_json, self._hello_public = full, public  # str swaps are atomic; read by the loop on connect

    @property
    def stats(self) -> WebSocketStats:
        """A snapshot of the counters (exact after ``close()``, approximate while running)."""
        clients = list(self._clients.values())
        by_id = {c.id: c.stats() for c in clients}
        by_id.update((g.id, g) for g in list(self._gone))  # one that just left: its final counters
        return WebSocketStats(
            clients=len(clients),
            connections=self._connections,
            published=self._published,
            sent=self._sent,
            dropped=self._dropped,
            ignored=self._ignored,
            per_client=tuple(by_id[i] for i in sorted(by_id)),
            refused=self._refused,
            capped=self._capped,
            flooded=self._flooded,
        )

    def close(self, timeout: float = 2.0) -> None:
        """Give clients up to ``timeout`` [s] to receive what is queued, then close them
        (code 1001; a client that stopped reading is aborted after 1 s more), stop the
        server and join its thread. Safe to call twice."""
        if self._closed:
            return
        self._closed = True
        if self._loop.is_closed():
            return
        fut = asyncio.run_coroutine_threadsafe(self._shutdown(timeout), self._loop)
        try:
            fut.result(timeout + 4.0)
        except Exception as exc:  # noqa: BLE001 - shutdown must not raise into the engine
            log.warning("WebSocket server did not shut down cleanly: %r", exc)
        try:
            self._loop.call_soon_threadsafe(self._loop.stop)
        except RuntimeError:
            pass
        self._thread.join(timeout + 3.0)

    # -- server loop thread --------------------------------------------------

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.set_exception_handler(self._loop_error)
        try:
            self._server = self._loop.run_until_complete(self._start())
            self.port = int(self._server.sockets[0].getsockname()[1]) if self._server.sockets else self.port
        except BaseException as exc:  # noqa: BLE001 - reported to the constructor
            self._start_error = exc
            self._ready.set()
            self._loop.close()
            return
        self._ready.set()
        try:
            self._loop.run_forever()
        finally:
            tasks = asyncio.all_tasks(self._loop)
            for task in tasks:
                task.cancel()
            if tasks:
                self._loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
            self._loop.close()

    def _loop_error(self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        """Out of file descriptors in ``accept()``: one line a second, no traceback (asyncio retries
        every second by itself); anything else goes to asyncio's own handler."""
        exc = context.get("exception")
        if isinstance(exc, OSError) and exc.errno in OUT_OF_RESOURCES and "accept" in str(context.get("message")):
            self._accept_errors.failed(exc)
            return
        loop.default_exception_handler(context)

    async def _start(self) -> Server:
        return await serve(
            self._handler,
            self.host,
            self.port,
            compression=None,
            max_size=MAX_FRAME_BYTES,
            write_limit=WRITE_LIMIT_BYTES,
            close_timeout=1.0,
            process_request=self._check_handshake,
            ssl=self._ssl,
            server_header=None,
        )

    def _refuse(self, connection: ServerConnection, status: HTTPStatus, why: str) -> Response:
        self._refused += 1
        log.info("WebSocket handshake from %s refused (%d): %s", _remote(connection), status.value, why)
        return connection.respond(status, why + "\n")

    def _check_handshake(self, connection: ServerConnection, request: Request) -> Response | None:
        """The access policy's checks (``rtmer.outputs.access``); None lets the handshake go on."""
        refusal = self._access.check_token(_presented_token(request))
        if refusal is None:
            try:
                origins = request.headers.get_all("Origin")
                hosts = request.headers.get_all("Host")
            except Exception:  # noqa: BLE001 - a malformed header is a refusal, not a traceback
                refusal = HTTPStatus.BAD_REQUEST, "malformed headers"
            else:
                refusal = self._access.check_headers(origins=origins, hosts=hosts)
        return None if refusal is None else self._refuse(connection, *refusal)

    async def _shutdown(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while any(c.queue for c in self._clients.values()) and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        if self._server is not None:
            self._server.close()
            try:
                # a client that stopped reading needs close_timeout (1 s) before it is aborted
                await asyncio.wait_for(self._server.wait_closed(), max(0.0, deadline - time.monotonic()) + 2.0)
            except TimeoutError:
                log.warning("WebSocket clients did not close in time; dropping them")

    def _broadcast(self, update: Update) -> None:
        if not self._clients:
            return
        message: str | None = None
        direct: list[ServerConnection] = []
        now = time.monotonic()
        for client in self._clients.values():
            if client.streams is not None and update.stream not in client.streams:
                continue
            if message is None:
                message = update_to_json(update)  # once per update, shared by every client
            ws = client.ws
            if (
                not client.busy
                and ws.state is State.OPEN
                and ws.transport.get_write_buffer_size() < FAST_PATH_BUFFER_BYTES
                and not self._behind(client, now)
            ):
                direct.append(ws)  # nothing queued and the client keeps up: write now
                self._wrote(client, now)
            else:
                self._push(client, message, now)
        if direct and message is not None:
            broadcast(direct, message)  # encodes once; writes every frame without awaiting

    def _push(self, client: _Client, message: str, now: float | None = None) -> None:
        if len(client.queue) == client.queue.maxlen:
            self._drop(client)
        client.queue.append((time.monotonic() if now is None else now, message))
        client.busy = True
        client.wake.set()

    def _drop(self, client: _Client) -> None:
        client.dropped += 1
        self._dropped += 1

    def _wrote(self, client: _Client, now: float, *, counted: bool = True) -> None:
        """Note one message written to ``client``'s socket at ``now`` [monotonic s]."""
        if counted:
            client.sent += 1
            self._sent += 1
        if client.unconfirmed_since is None:
            client.unconfirmed_since = now
        if client.first_after_ping is None:
            client.first_after_ping = now
        client.wrote.set()

    def _behind(self, client: _Client, now: float) -> bool:
        """True when ``client`` has not confirmed a message written more than ``max_lag`` ago."""
        since = client.unconfirmed_since
        return since is not None and now - since > self.max_lag

    async def _handler(self, ws: ServerConnection) -> None:
        authenticated = self._access.has_token  # with a token, only clients that presented it get here
        if len(self._clients) >= self.max_clients:
            self._capped += 1
            log.log(logging.WARNING if self._capped == 1 else logging.DEBUG,
                    "WebSocket client from %s closed: %d clients are connected, the most allowed "
                    "(--ws-max-clients; logged once, counted)", _remote(ws), len(self._clients))
            await ws.close(CLOSE_TOO_MANY_CLIENTS, f"too many clients: at most {self.max_clients}")
            return
        _small_send_buffer(ws)
        client = _Client(next(self._ids), ws, self.queue_size)
        client.hello = self._hello_json if authenticated else self._hello_public
        self._connections += 1
        self._clients[client.id] = client
        log.info("WebSocket client %d connected from %s", client.id, client.remote)
        tasks = (asyncio.create_task(self._sender(client)), asyncio.create_task(self._confirmer(client)))
        try:
            async for message in ws:
                if not client.budget.take():
                    await self._close_flooder(client)
                    break
                self._on_message(client, message)
        except ConnectionClosed:
            pass
        finally:
            client.connected = False
            self._clients.pop(client.id, None)
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            self._gone.append(client.stats())
            log.info(
                "WebSocket client %d disconnected (sent %d, dropped %d, ignored %d)",
                client.id,
                client.sent,
                client.dropped,
                client.ignored,
            )

    async def _close_flooder(self, client: _Client) -> None:
        self._flooded += 1
        log.log(logging.WARNING if self._flooded == 1 else logging.INFO,
                "WebSocket client %d from %s closed (code %d): it sent more than %g messages a second "
                "(bursts of %d); logged at warning level once, counted", client.id, client.remote,
                CLOSE_POLICY_VIOLATION, CLIENT_MESSAGE_RATE, CLIENT_MESSAGE_BURST)
        await client.ws.close(CLOSE_POLICY_VIOLATION, f"more than {CLIENT_MESSAGE_RATE:g} messages a second "
                              f"(bursts of {CLIENT_MESSAGE_BURST})")

    async def _sender(self, client: _Client) -> None:
        ws = client.ws
        try:
            await ws.send(client.hello)
            self._wrote(client, time.monotonic(), counted=False)
            while True:
                while client.queue and not self._behind(client, now := time.monotonic()):
                    queued, message = client.queue.popleft()
                    if now - queued > self.max_lag:
                        self._drop(client)  # too old to be worth reading
                        continue
                    await ws.send(message)  # waits while the socket is congested
                    self._wrote(client, time.monotonic())
                if not client.queue:
                    client.busy = False  # drained: updates may be written directly again
                client.wake.clear()
                await client.wake.wait()  # a new message, or the client confirmed what it read
        except ConnectionClosed:
            pass

    async def _confirmer(self, client: _Client) -> None:
        """Pings ``client`` after writes, at most every ``ACK_INTERVAL``: its pong confirms that it
        has read everything written before the ping (frames are read in order)."""
        ws = client.ws
        try:
            while True:
                await client.wrote.wait()
                client.wrote.clear()
                client.first_after_ping = None
                pong = await ws.ping()  # the frame is written at once, behind every earlier message
                await pong
                client.unconfirmed_since = client.first_after_ping
                client.wake.set()
                await asyncio.sleep(ACK_INTERVAL)
        except ConnectionClosed:
            pass

    def _ignore(self, client: _Client, why: str) -> None:
        client.ignored += 1
        self._ignored += 1
        log.debug("WebSocket client %d: ignored a message (%s)", client.id, why)

    def _on_message(self, client: _Client, message: str | bytes) -> None:
        if not isinstance(message, str):
            return self._ignore(client, "binary frame")
        if len(message) > MAX_CONTROL_CHARS:
            return self._ignore(client, f"{len(message)} characters > {MAX_CONTROL_CHARS}")
        try:
            obj = json.loads(message)
        except (ValueError, RecursionError):  # RecursionError: JSON nested thousands deep
            return self._ignore(client, "not JSON, or nested too deep")
        if not isinstance(obj, dict) or not isinstance(obj.get("type"), str):
            return self._ignore(client, "not an object with a string 'type'")
        kind = obj["type"]
        if kind == "ping":
            pong: dict[str, Any] = {"type": "pong", "time": time.time()}
            ident = obj.get("id")
            if (isinstance(ident, str | int) and not isinstance(ident, bool)) or (
                isinstance(ident, float) and math.isfinite(ident)
            ):
                pong["id"] = ident
            return self._push(client, json.dumps(pong, separators=(",", ":")))
        if kind == "subscribe":
            streams = obj.get("streams")
            if streams is None or streams == "*":
                client.streams = None
            elif (
                isinstance(streams, list)
                and len(streams) <= MAX_SUBSCRIBE_STREAMS
                and all(isinstance(s, str) for s in streams)
            ):
                client.streams = frozenset(streams)
            else:
                if isinstance(streams, list) and len(streams) > MAX_SUBSCRIBE_STREAMS:
                    why = f"subscribe takes at most {MAX_SUBSCRIBE_STREAMS} stream ids (got {len(streams)})"
                else:
                    why = "subscribe needs 'streams': a list of stream ids (strings), null or '*'"
                self._reply_error(client, "subscribe", why + "; the subscription is unchanged")
                return self._ignore(client, why)
            listed = None if client.streams is None else sorted(client.streams)
            return self._push(client, json.dumps({"type": "subscribed", "streams": listed}, separators=(",", ":")))
        self._reply_error(client, kind[:40], f"unknown message type {kind[:40]!r}; this server (protocol "
                          f"{PROTOCOL_VERSION}) reads 'subscribe' and 'ping'")
        return self._ignore(client, f"unknown type {kind[:40]!r}")

    def _reply_error(self, client: _Client, request: str, message: str) -> None:
        self._push(client, json.dumps({"type": "error", "request": request, "message": message},
                                      separators=(",", ":")))


def check_max_clients(max_clients: object) -> None:
    """Raise ``ConfigError`` unless ``max_clients`` is an integer in 1..100000 (also checked when --ws is off)."""
    if isinstance(max_clients, bool) or not isinstance(max_clients, int) or not 1 <= max_clients <= 100_000:
        raise ConfigError(f"WebSocket max_clients={max_clients!r} must be an integer in 1..100000 [clients]")


def _small_send_buffer(ws: ServerConnection) -> None:
    """Shrink the kernel's send buffer of ``ws`` to ``SEND_BUFFER_BYTES`` (it grows to megabytes by itself)."""
    sock = ws.transport.get_extra_info("socket")
    if sock is not None:
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SEND_BUFFER_BYTES)
        except OSError as exc:
            log.debug("WebSocket: cannot set SO_SNDBUF (%s)", exc)


# ---- handshake helpers ----------------------------------------------------------------
def _remote(connection: ServerConnection) -> str:
    addr = connection.remote_address
    return host_port(str(addr[0]), int(addr[1])) if isinstance(addr, tuple) and len(addr) >= 2 else str(addr)


def _presented_token(request: Request) -> str | None:
    """The token a client presented (``rtmer.outputs.access.presented_token``); None if none, or several
    ``Authorization`` headers."""
    try:
        authorization = request.headers.get("Authorization")
    except Exception:  # noqa: BLE001 - several Authorization headers
        return None
    return presented_token(authorization=authorization, path=request.path)

"""WebSocket server: pushes every update as JSON to any number of clients.

The server runs on its own asyncio event loop in a daemon thread. The engine thread only
calls ``publish``, which hands the update to that loop (``call_soon_threadsafe``) and
returns at once; the loop serialises the update once and appends the same string to each
client's queue; one sender task per client writes its queue to its socket.

Protocol (text frames, one JSON object each)
--------------------------------------------
Server to client:

- ``{"type": "hello", "protocol": 1, "model": {...}, "streams": [...], ...}`` first, on
  connect: the ``hello`` dict the engine passes (model metadata, stream ids), with
  ``type`` and ``protocol`` added.
- ``{"type": "va", "stream": id, "seq": n, "t": stream_seconds, "time": unix_seconds,
  "valence": v, "arousal": a, "raw": {"valence": rv, "arousal": ra}, "mood": label}``
  per update (``rtmer.textout.update_to_dict``); values in [-1, 1], ``t`` and ``time`` [s].
- ``{"type": "subscribed", "streams": [...] | null}`` and ``{"type": "pong", "time":
  unix_seconds[, "id": ...]}`` in reply to the client messages below.

Client to server (optional):

- ``{"type": "subscribe", "streams": ["deck1", ...]}`` sends only those streams' updates
  to this client; ``"streams": null`` or ``"*"`` sends all again (the default).
- ``{"type": "ping"[, "id": x]}`` gets a ``pong`` (echoing a string or number ``id``).

Anything else (binary frames, text that is not JSON or not an object, unknown types,
bad fields, text over ``MAX_CONTROL_CHARS``) is ignored and counted. A frame over
``MAX_FRAME_BYTES`` makes the websockets library close that one connection (code 1009);
the server and the other clients carry on.

Notes
-----
Delivery: a client with nothing queued whose socket keeps up gets each update written
at once (websockets ``broadcast``: one encoding, one write per client, no task switch).
Any other client gets the message through its queue, which its sender task writes as
fast as the socket takes it.

Overflow policy: each client has a queue of ``queue_size`` messages
(``deque(maxlen=queue_size)``). When a client cannot keep up (slow network, a client
that stopped reading), its queue fills and the OLDEST message is dropped and counted in
that client's ``dropped`` and in the total. Other clients and the engine never wait for
it. A client that stops reading entirely is closed by the keepalive ping after about
``ping_interval + ping_timeout`` (20 s + 20 s). Per-message compression is off, so one
serialised string is sent to every client as is.
"""

from __future__ import annotations

import asyncio
import errno
import json
import logging
import math
import threading
import time
from collections import deque
from dataclasses import dataclass
from itertools import count
from typing import Any

from websockets.asyncio.server import Server, ServerConnection, broadcast, serve
from websockets.protocol import State
from websockets.exceptions import ConnectionClosed

from rtmer.errors import ConfigError, PortInUseError
from rtmer.textout import update_to_json
from rtmer.update import Update

log = logging.getLogger(__name__)

PROTOCOL_VERSION = 1
MAX_CONTROL_CHARS = 4096
"""Client text messages longer than this [characters] are ignored."""
MAX_FRAME_BYTES = 65536
"""Client frames larger than this [bytes] close that client's connection (code 1009)."""
MAX_SUBSCRIBE_STREAMS = 256
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


class _Client:
    def __init__(self, id_: int, ws: ServerConnection, queue_size: int) -> None:
        self.id = id_
        self.ws = ws
        addr = ws.remote_address
        self.remote = f"{addr[0]}:{addr[1]}" if isinstance(addr, tuple) and len(addr) >= 2 else str(addr)
        self.queue: deque[str] = deque(maxlen=queue_size)
        self.wake = asyncio.Event()
        self.streams: frozenset[str] | None = None
        self.busy = True  # its sender task has messages to write (the hello first)
        self.connected = True
        self.sent = 0
        self.dropped = 0
        self.ignored = 0

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

    See the module docstring for the protocol and the overflow policy.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 8765,
        *,
        hello: dict[str, Any],
        queue_size: int = 64,
    ) -> None:
        if not isinstance(host, str) or not host:
            raise ConfigError(f"WebSocket host={host!r} must be a non-empty host name or address")
        if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
            raise ConfigError(f"WebSocket port={port!r} must be an integer in 0..65535 (0 picks a free port)")
        if isinstance(queue_size, bool) or not isinstance(queue_size, int) or queue_size < 1:
            raise ConfigError(f"WebSocket queue_size={queue_size!r} must be a positive integer [messages]")
        self.host = host
        self.port = port
        self.queue_size = queue_size
        self._hello_json = self._encode_hello(hello)
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
        log.info("WebSocket server listening on ws://%s:%d", host, self.port)

    @staticmethod
    def _encode_hello(hello: dict[str, Any]) -> str:
        if not isinstance(hello, dict):
            raise ConfigError(f"WebSocket hello={hello!r} must be a dict")
        try:
            return json.dumps(
                {"type": "hello", "protocol": PROTOCOL_VERSION, **hello, "type": "hello"}, separators=(",", ":")
            )
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"WebSocket hello must be JSON-serialisable: {exc}") from exc

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
        encoded = self._encode_hello(hello)
        self._hello_json = encoded  # a str swap is atomic; read by the loop on connect

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

    async def _start(self) -> Server:
        return await serve(
            self._handler,
            self.host,
            self.port,
            compression=None,
            max_size=MAX_FRAME_BYTES,
            close_timeout=1.0,
        )

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
            ):
                direct.append(ws)  # nothing queued and the socket keeps up: write now
                client.sent += 1
                self._sent += 1
            else:
                self._push(client, message)
        if direct and message is not None:
            broadcast(direct, message)  # encodes once; writes every frame without awaiting

    def _push(self, client: _Client, message: str) -> None:
        if len(client.queue) == client.queue.maxlen:
            client.dropped += 1
            self._dropped += 1
        client.queue.append(message)
        client.busy = True
        client.wake.set()

    async def _handler(self, ws: ServerConnection) -> None:
        client = _Client(next(self._ids), ws, self.queue_size)
        self._connections += 1
        self._clients[client.id] = client
        log.info("WebSocket client %d connected from %s", client.id, client.remote)
        sender = asyncio.create_task(self._sender(client))
        try:
            async for message in ws:
                self._on_message(client, message)
        except ConnectionClosed:
            pass
        finally:
            client.connected = False
            self._clients.pop(client.id, None)
            sender.cancel()
            try:
                await sender
            except asyncio.CancelledError:
                pass
            self._gone.append(client.stats())
            log.info(
                "WebSocket client %d disconnected (sent %d, dropped %d, ignored %d)",
                client.id,
                client.sent,
                client.dropped,
                client.ignored,
            )

    async def _sender(self, client: _Client) -> None:
        ws = client.ws
        try:
            await ws.send(self._hello_json)
            while True:
                while client.queue:
                    await ws.send(client.queue.popleft())  # waits while the socket is congested
                    client.sent += 1
                    self._sent += 1
                client.busy = False  # drained: updates may be written directly again
                client.wake.clear()
                await client.wake.wait()
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
        except ValueError:
            return self._ignore(client, "not JSON")
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
                return self._ignore(client, "subscribe needs 'streams': a list of ids, null or '*'")
            listed = None if client.streams is None else sorted(client.streams)
            return self._push(client, json.dumps({"type": "subscribed", "streams": listed}, separators=(",", ":")))
        return self._ignore(client, f"unknown type {kind[:40]!r}")

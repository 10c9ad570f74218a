"""A client for a running ``rtmer run --ws`` (or ``rtmer demo``): its updates as an iterator.

Synchronous code::

    with rtmer.client.connect("ws://127.0.0.1:8765", streams=["deck1"]) as client:
        for update in client:                       # rtmer.Update, one per hop of deck1
            print(update.t, update.valence, update.arousal, update.mood)

asyncio code, the same names with ``async``::

    async with rtmer.client.connect("ws://127.0.0.1:8765") as client:
        async for update in client:
            ...

One ``Client`` serves both flavours: ``with`` / ``for`` / ``close()`` run on the
websockets library's sync client, ``async with`` / ``async for`` / ``aclose()`` on its
asyncio client. A client is used in one flavour only. Iterating a client that was not
entered with ``with`` connects on the first step and closes when the loop ends.

Reconnection: when the server goes away (it stopped, restarted, or the network broke),
the client connects again, first after ``initial_delay`` [s] and then doubling the wait
up to ``max_delay`` [s] while the server stays away; the wait starts again from
``initial_delay`` after each successful connection. The first connection is retried
the same way, so a client may be started before the server. On each (re)connection the
client reads the server's ``hello`` (kept in ``Client.hello``) and re-sends its stream
subscription. Updates sent while the client was away are lost, and a restarted server
counts ``seq`` from 0 again. With ``reconnect=False`` nothing is retried: a failed
connection raises ``ServerConnectionError``, iteration ends when the server closes the
connection and raises ``ServerConnectionError`` when the connection breaks.

The protocol is ``rtmer.protocol`` (see its module docstring), which the server speaks: a
``hello`` first, then one ``va`` message per update; the client sends ``subscribe``
when ``streams`` is given, and also drops other streams' updates itself, so none slips
through before the server has applied the subscription. Messages of other types
(``subscribed``, ``pong``, types added later) are skipped, as is a ``va`` message with
missing or ill-typed fields (counted in ``Client.ignored``).
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import threading
from collections.abc import AsyncIterator, Iterable, Iterator
from contextlib import AsyncExitStack, ExitStack
from types import TracebackType
from typing import Any, Literal

from websockets.asyncio.client import ClientConnection as AsyncConnection
from websockets.asyncio.client import connect as async_connect
from websockets.exceptions import (
    ConnectionClosed,
    ConnectionClosedError,
    InvalidHandshake,
    InvalidMessage,
    InvalidStatus,
    InvalidURI,
)
from websockets.sync.client import ClientConnection as SyncConnection
from websockets.sync.client import connect as sync_connect
from websockets.uri import parse_uri

from rtmer.core.update import Update
from rtmer.errors import ConfigError, ServerConnectionError
from rtmer.protocol import MAX_SUBSCRIBE_STREAMS, PROTOCOL_VERSION, update_from_dict

log = logging.getLogger(__name__)

DEFAULT_URL = "ws://127.0.0.1:8765"
"""Where ``rtmer run --ws`` listens by default."""
_RETRY_STATUS = (500, 502, 503, 504)  # HTTP answers to a handshake that are worth retrying


def connect(
    url: str = DEFAULT_URL,
    *,
    streams: Iterable[str] | None = None,
    reconnect: bool = True,
    initial_delay: float = 0.5,
    max_delay: float = 10.0,
    open_timeout: float = 10.0,
) -> Client:
    """A client for the rtmer WebSocket server at ``url``; see ``Client``.

    Nothing is sent or received until the client is entered (``with`` or ``async
    with``) or iterated (``for`` or ``async for``).
    """
    return Client(
        url,
        streams=streams,
        reconnect=reconnect,
        initial_delay=initial_delay,
        max_delay=max_delay,
        open_timeout=open_timeout,
    )


class Client:
    """The updates of one rtmer WebSocket server, sync or async, with reconnection.

    Parameters
    ----------
    url
        ``ws://HOST:PORT`` (or ``wss://``) of ``rtmer run --ws``; ``ws://127.0.0.1:8765``
        by default.
    streams
        Receive only these stream ids (e.g. ``["deck1"]``); None (the default): all.
    reconnect
        True: retry the first connection and reconnect after the server goes away (default);
        False: fail or end instead (see the module docstring). Anything but a bool raises
        ``TypeError``.
    initial_delay, max_delay
        Wait [s] before the first retry, and the most it doubles up to.
    open_timeout
        Longest wait [s] for the opening handshake and the server's ``hello``.

    Attributes
    ----------
    hello
        The server's latest ``hello`` message (model metadata, ``streams``,
        ``hop_seconds``); None before the first connection.
    connections
        How many connections were made (1 + reconnections).
    ignored
        ``va`` messages skipped because they were malformed.

    ``close()`` (sync) and ``aclose()`` (async) end the iteration, also from another
    thread (``close()``) or task; the ``with`` blocks call them.
    """

    def __init__(
        self,
        url: str = DEFAULT_URL,
        *,
        streams: Iterable[str] | None = None,
        reconnect: bool = True,
        initial_delay: float = 0.5,
        max_delay: float = 10.0,
        open_timeout: float = 10.0,
    ) -> None:
        if not isinstance(url, str):
            raise ConfigError(f"url={url!r} must be a ws:// or wss:// URL, e.g. {DEFAULT_URL}")
        try:
            parse_uri(url)
        except InvalidURI:
            raise ConfigError(f"url={url!r} must be a ws:// or wss:// URL, e.g. {DEFAULT_URL}") from None
        self.url = url
        self.streams = _check_streams(streams)
        if not isinstance(reconnect, bool):
            raise TypeError(f"reconnect={reconnect!r} must be True or False (a bool), got {type(reconnect).__name__}")
        self.reconnect = reconnect
        self.initial_delay = _positive("initial_delay", initial_delay)
        self.max_delay = _positive("max_delay", max_delay)
        if self.max_delay < self.initial_delay:
            raise ConfigError(f"max_delay={max_delay!r} must be >= initial_delay={initial_delay!r} [s]")
        self.open_timeout = _positive("open_timeout", open_timeout)
        self.hello: dict[str, Any] | None = None
        self.connections = 0
        self.ignored = 0
        self._mode: Literal["sync", "async"] | None = None
        self._entered = False
        self._closed = False
        self._lock = threading.Lock()
        self._stop = threading.Event()  # wakes a sync backoff wait
        self._sync_ws: SyncConnection | None = None
        self._async_ws: AsyncConnection | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._async_stop: asyncio.Event | None = None  # wakes an async backoff wait

    def __repr__(self) -> str:
        state = "closed" if self._closed else ("connected" if self._sync_ws or self._async_ws else "not connected")
        return f"<rtmer.client.Client {self.url} streams={list(self.streams) if self.streams else 'all'} {state}>"

    # ---- synchronous ----------------------------------------------------------------
    def __enter__(self) -> Client:
        """Connect (retrying when ``reconnect``) and read the server's hello."""
        self._use("sync")
        self._entered = True
        if self._sync_ws is None and not self._closed:
            self._connect_sync(first=True)
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def __iter__(self) -> Iterator[Update]:
        """Every update (of the chosen streams) as it arrives, until ``close()``."""
        self._use("sync")
        return self._iter_sync()

    def close(self) -> None:
        """Close the connection and end the iteration; safe from any thread, and twice."""
        self._mark_closed()
        ws = self._sync_ws
        if ws is not None:
            ws.close()
        aws, loop = self._async_ws, self._loop
        if aws is not None and loop is not None:
            try:
                asyncio.run_coroutine_threadsafe(aws.close(), loop)
            except RuntimeError:  # the loop has stopped
                pass

    def _iter_sync(self) -> Iterator[Update]:
        owned = not self._entered
        try:
            if self._sync_ws is None and not self._closed:
                self._connect_sync(first=True)
            while not self._closed:
                ws = self._sync_ws
                if ws is None:
                    return
                lost: ConnectionClosedError | None = None
                try:
                    for message in ws:
                        update = self._update(message)
                        if update is not None:
                            yield update
                except ConnectionClosedError as exc:
                    lost = exc
                self._sync_ws = None
                if not self._again(lost):
                    return
                self._connect_sync(first=False)
        finally:
            if owned:
                self.close()

    def _connect_sync(self, *, first: bool) -> None:
        delay = self.initial_delay
        if not first:
            if self._stop.wait(delay):
                return
            delay = self._next_delay(delay)
        while not self._closed:
            try:
                with ExitStack() as stack:
                    ws = stack.enter_context(
                        sync_connect(self.url, open_timeout=self.open_timeout, compression=None, close_timeout=1.0)
                    )
                    subscribe = self._greet(ws.recv(timeout=self.open_timeout))
                    if subscribe is not None:
                        ws.send(subscribe)
                    with self._lock:
                        if not self._closed:
                            self._sync_ws = ws
                            stack.pop_all()  # stays open beyond this block; close() closes it
                    return
            except Exception as exc:  # noqa: BLE001 - sorted by _failed
                self._failed(exc)
            if self._stop.wait(delay):
                return
            delay = self._next_delay(delay)

    # ---- asyncio ------------------------------------------------------------------------
    async def __aenter__(self) -> Client:
        """Connect (retrying when ``reconnect``) and read the server's hello."""
        self._use("async")
        self._entered = True
        if self._async_ws is None and not self._closed:
            await self._connect_async(first=True)
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    def __aiter__(self) -> AsyncIterator[Update]:
        """Every update (of the chosen streams) as it arrives, until ``aclose()``."""
        self._use("async")
        return self._iter_async()

    async def aclose(self) -> None:
        """Close the connection and end the iteration; safe to call twice."""
        self._mark_closed()
        ws = self._async_ws
        if ws is not None:
            await ws.close()

    async def _iter_async(self) -> AsyncIterator[Update]:
        owned = not self._entered
        try:
            if self._async_ws is None and not self._closed:
                await self._connect_async(first=True)
            while not self._closed:
                ws = self._async_ws
                if ws is None:
                    return
                lost: ConnectionClosedError | None = None
                try:
                    async for message in ws:
                        update = self._update(message)
                        if update is not None:
                            yield update
                except ConnectionClosedError as exc:
                    lost = exc
                self._async_ws = None
                if not self._again(lost):
                    return
                await self._connect_async(first=False)
        finally:
            if owned:
                await self.aclose()

    async def _connect_async(self, *, first: bool) -> None:
        self._loop = asyncio.get_running_loop()
        if self._async_stop is None:
            self._async_stop = asyncio.Event()
            if self._closed:
                self._async_stop.set()
        delay = self.initial_delay
        if not first:
            if await self._wait_async(delay):
                return
            delay = self._next_delay(delay)
        while not self._closed:
            try:
                async with AsyncExitStack() as stack:
                    ws = await stack.enter_async_context(
                        async_connect(self.url, open_timeout=self.open_timeout, compression=None, close_timeout=1.0)
                    )
                    subscribe = self._greet(await asyncio.wait_for(ws.recv(), self.open_timeout))
                    if subscribe is not None:
                        await ws.send(subscribe)
                    with self._lock:
                        if not self._closed:
                            self._async_ws = ws
                            stack.pop_all()  # stays open beyond this block; aclose() closes it
                    return
            except Exception as exc:  # noqa: BLE001 - sorted by _failed
                self._failed(exc)
            if await self._wait_async(delay):
                return
            delay = self._next_delay(delay)

    async def _wait_async(self, seconds: float) -> bool:
        """Wait ``seconds`` [s]; True if the client was closed meanwhile."""
        assert self._async_stop is not None
        try:
            await asyncio.wait_for(self._async_stop.wait(), seconds)
        except TimeoutError:
            pass
        return self._closed

    # ---- shared ---------------------------------------------------------------------
    def _use(self, mode: Literal["sync", "async"]) -> None:
        if self._mode is None:
            self._mode = mode
        elif self._mode != mode:
            used = "with/for (sync)" if self._mode == "sync" else "async with/async for (async)"
            raise ConfigError(f"this client is already used with {used}; make another client for {mode} use")

    def _mark_closed(self) -> None:
        with self._lock:
            self._closed = True
        self._stop.set()
        stop, loop = self._async_stop, self._loop
        if stop is not None and loop is not None:
            try:
                loop.call_soon_threadsafe(stop.set)
            except RuntimeError:  # the loop has stopped
                pass

    def _again(self, lost: ConnectionClosedError | None) -> bool:
        """After a connection ended: reconnect (True), end (False) or raise."""
        if self._closed:
            return False
        why = f"connection lost ({lost})" if lost is not None else "the server closed the connection"
        if not self.reconnect:
            if lost is not None:
                raise ServerConnectionError(self.url, why) from lost
            return False
        log.warning("rtmer server %s: %s; reconnecting", self.url, why)
        return True

    def _failed(self, exc: Exception) -> None:
        """A connection attempt failed: return to retry, or raise ServerConnectionError."""
        if isinstance(exc, ServerConnectionError):
            raise exc  # not an rtmer server: retrying will not help
        retry = isinstance(exc, (OSError, TimeoutError, InvalidMessage, ConnectionClosed)) or (
            isinstance(exc, InvalidStatus) and exc.response.status_code in _RETRY_STATUS
        )
        if isinstance(exc, InvalidHandshake) and not retry:
            raise ServerConnectionError(self.url, f"refused the WebSocket handshake ({exc})") from exc
        if not retry:
            raise exc
        if not self.reconnect:
            raise ServerConnectionError(
                self.url, f"cannot connect ({exc or type(exc).__name__}); is `rtmer run --ws` running there?"
            ) from exc
        log.debug("rtmer server %s: cannot connect (%s); retrying", self.url, exc)

    def _next_delay(self, delay: float) -> float:
        return min(delay * 2.0, self.max_delay)

    def _greet(self, message: str | bytes) -> str | None:
        """Check the server's first message and keep it as ``hello``; returns the
        ``subscribe`` message to send, if streams were chosen."""
        hello: Any = None
        if isinstance(message, str):
            try:
                hello = json.loads(message)
            except ValueError:
                pass
        if not isinstance(hello, dict) or hello.get("type") != "hello":
            shown = message[:80] if isinstance(message, str) else f"a binary frame of {len(message)} bytes"
            raise ServerConnectionError(self.url, f"sent {shown!r} instead of a hello; is it an rtmer server?")
        if hello.get("protocol") != PROTOCOL_VERSION:
            raise ServerConnectionError(
                self.url, f"speaks protocol {hello.get('protocol')!r}; this client reads protocol {PROTOCOL_VERSION}"
            )
        self.hello = hello
        self.connections += 1
        if self.connections > 1:
            log.info("rtmer server %s: reconnected", self.url)
        if self.streams is None:
            return None
        offered = hello.get("streams")
        missing = [s for s in self.streams if isinstance(offered, list) and s not in offered]
        if missing:
            log.warning("rtmer server %s has no stream %s (it has %s)", self.url, ", ".join(missing), offered)
        return json.dumps({"type": "subscribe", "streams": list(self.streams)})

    def _update(self, message: str | bytes) -> Update | None:
        """The ``Update`` in a ``va`` message of a chosen stream, else None."""
        if not isinstance(message, str):
            return None
        try:
            obj = json.loads(message)
        except ValueError:
            return None
        if not isinstance(obj, dict) or obj.get("type") != "va":
            return None
        update = update_from_dict(obj)
        if update is None:
            self.ignored += 1
            log.debug("rtmer server %s: skipped a malformed va message: %.200s", self.url, message)
            return None
        if self.streams is not None and update.stream not in self.streams:
            return None
        return update


def _check_streams(streams: Iterable[str] | None) -> tuple[str, ...] | None:
    if streams is None:
        return None
    if isinstance(streams, str):
        raise ConfigError(f"streams={streams!r} must be a list of stream ids, e.g. [{streams!r}]")
    chosen = tuple(streams)
    if not chosen:
        raise ConfigError("streams=[] names no stream; give None for every stream")
    if len(chosen) > MAX_SUBSCRIBE_STREAMS:
        raise ConfigError(f"streams names {len(chosen)} streams; at most {MAX_SUBSCRIBE_STREAMS}")
    for s in chosen:
        if not isinstance(s, str) or not s:
            raise ConfigError(f"streams={list(chosen)!r}: every stream id must be a non-empty string (got {s!r})")
    return chosen


def _positive(name: str, value: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        raise ConfigError(f"{name}={value!r} must be a positive number [s]")
    return float(value)

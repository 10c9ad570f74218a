"""WebSocket sink with real websockets clients on loopback."""

from __future__ import annotations

import base64
import dataclasses
import json
import os
import socket
import threading
import time
from types import SimpleNamespace
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from typing import Any

import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

from rtmer.errors import ConfigError, PortInUseError
from rtmer.protocol import update_to_dict
from rtmer.core.update import Update
from rtmer.outputs.websocket import (
    CLIENT_MESSAGE_BURST,
    CLIENT_MESSAGE_RATE,
    CLOSE_POLICY_VIOLATION,
    MAX_FRAME_BYTES,
    ClientStats,
    WebSocketSink,
    _remote,
)

HELLO: dict[str, Any] = {"model": {"model_name": "tiny", "sample_rate": 16000}, "streams": ["deck1", "deck2"]}


def make_update(seq: int, stream: str = "deck1") -> Update:
    return Update(
        stream=stream,
        seq=seq,
        t=0.5 * (seq + 1),
        time=1_700_000_000.0 + 0.5 * seq,
        valence=seq / 1000,
        arousal=-0.25,
        valence_raw=0.1,
        arousal_raw=-0.2,
        mood="calm",
    )


@pytest.fixture
def sink() -> Iterator[WebSocketSink]:
    s = WebSocketSink(port=0, hello=HELLO, queue_size=32)
    try:
        yield s
    finally:
        s.close()


@contextmanager
def client(sink: WebSocketSink) -> Iterator[ClientConnection]:
    """A connected client that has read its hello (so the server has registered it)."""
    with connect(f"ws://127.0.0.1:{sink.port}", open_timeout=5) as c:
        hello = json.loads(c.recv(timeout=5))
        assert hello["type"] == "hello"
        yield c


def eventually(check: Callable[[], bool], timeout: float = 5.0) -> bool:
    """Poll ``check`` until it holds; counters move just after a frame is written."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.005)
    return True


def recv_json(c: ClientConnection) -> dict[str, Any]:
    msg = c.recv(timeout=5)
    assert isinstance(msg, str)
    out: dict[str, Any] = json.loads(msg)
    return out


def test_hello_then_one_va_message_per_update(sink: WebSocketSink) -> None:
    with connect(f"ws://127.0.0.1:{sink.port}") as c:
        assert recv_json(c) == {"type": "hello", "protocol": 1, **HELLO}
        updates = [make_update(i, "deck1" if i % 2 else "deck2") for i in range(5)]
        for u in updates:
            sink.publish(u)
        got = [recv_json(c) for _ in updates]
    assert got == [update_to_dict(u) for u in updates]
    assert got[0]["type"] == "va" and set(got[0]["raw"]) == {"valence", "arousal"}


def test_many_clients_each_get_every_update_in_order(sink: WebSocketSink) -> None:
    with ExitStack() as stack:
        clients = [stack.enter_context(client(sink)) for _ in range(20)]
        for i in range(10):
            sink.publish(make_update(i))
        for c in clients:
            assert [recv_json(c)["seq"] for _ in range(10)] == list(range(10))
        assert eventually(lambda: sink.stats.sent == 200)  # updates only: no pings or subscribes
        st = sink.stats
        assert st.clients == 20 and st.published == 10 and st.dropped == 0


def stuck_client(port: int) -> socket.socket:
    """A raw TCP client that completes the WebSocket handshake and then never reads."""
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # small window: fills fast
    s.connect(("127.0.0.1", port))
    key = base64.b64encode(os.urandom(16)).decode()
    s.sendall(
        (
            f"GET / HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
        ).encode()
    )
    assert s.recv(4096).startswith(b"HTTP/1.1 101")
    return s


def stats_of(sink: WebSocketSink, sock: socket.socket) -> ClientStats:
    """The server's counters for the client whose local end is ``sock``."""
    remote = f"127.0.0.1:{sock.getsockname()[1]}"
    return next(c for c in sink.stats.per_client if c.remote == remote)


def fill_until_stuck(sink: WebSocketSink, stuck: socket.socket) -> ClientStats:
    """Publish big updates, paced so the sender keeps up, until the stuck client's socket
    buffers (up to 4 MiB here) are full and its queue stays full."""
    big = "x" * 8000
    for i in range(2000):
        for j in range(8):
            sink.publish(dataclasses.replace(make_update(8 * i + j), stream=big))
        time.sleep(0.002)
        st = stats_of(sink, stuck)
        if st.queued == sink.queue_size:
            time.sleep(0.05)
            again = stats_of(sink, stuck)
            if again.queued == sink.queue_size and again.sent == st.sent:
                return again
    raise AssertionError(f"the stuck client never blocked: {stats_of(sink, stuck)}")


def test_stuck_client_does_not_delay_others_and_its_drops_are_counted(sink: WebSocketSink) -> None:
    with stuck_client(sink.port) as stuck:
        run_with_stuck_client(sink, stuck)


def run_with_stuck_client(sink: WebSocketSink, stuck: socket.socket) -> None:
    before = fill_until_stuck(sink, stuck)

    with ExitStack() as stack:
        good = stack.enter_context(connect(f"ws://127.0.0.1:{sink.port}"))
        assert recv_json(good)["type"] == "hello"
        n = 2000
        received: list[tuple[int, float]] = []

        def read() -> None:
            while len(received) < n:
                received.append((recv_json(good)["seq"], time.perf_counter()))

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        published = []
        worst_publish = 0.0
        for i in range(n):
            t0 = time.perf_counter()
            sink.publish(make_update(i))
            worst_publish = max(worst_publish, time.perf_counter() - t0)
            published.append(t0)
            if i % 10 == 9:
                time.sleep(0.002)  # ~5000 updates/s: far above real use, within a Python client's reach
        reader.join(20)
        assert [seq for seq, _ in received] == list(range(n))  # the good client got every update
        delays = sorted(t - published[seq] for seq, t in received)
        assert delays[int(0.99 * n)] < 0.25  # p99 delivery [s], generous: the machine is shared
        assert worst_publish < 0.25  # publish() never waited for the stuck client

        after = stats_of(sink, stuck)
        assert after.sent == before.sent  # the stuck client is still stuck ...
        assert after.queued == 32  # ... its queue is bounded and holds the newest ...
        assert after.dropped - before.dropped == n  # ... and the rest was dropped, counted
        assert eventually(lambda: stats_of(sink, good.socket).sent == n)
        assert stats_of(sink, good.socket).dropped == 0
        assert sink.stats.dropped == after.dropped
    t0 = time.perf_counter()
    sink.close(timeout=0.5)  # the stuck client cannot hold shutdown hostage
    assert time.perf_counter() - t0 < 4


def test_invalid_client_messages_are_ignored(sink: WebSocketSink) -> None:
    bad: list[str | bytes] = [
        b"\x00\xffbinary",
        "not json",
        "[1, 2]",
        '{"no": "type"}',
        '{"type": 5}',
        '{"type": "launch"}',
        '{"type": "subscribe", "streams": 5}',
        '{"type": "subscribe", "streams": [1, 2]}',
        json.dumps({"type": "ping", "pad": "x" * 10_000}),  # over MAX_CONTROL_CHARS
    ]
    with client(sink) as c:
        for msg in bad:
            c.send(msg)
        c.send('{"type": "ping", "id": "abc"}')
        # the unknown type and the two refused subscribes are answered with an error, nothing else is
        errors = [recv_json(c) for _ in range(3)]
        assert [(e["type"], e["request"]) for e in errors] == [("error", "launch"), ("error", "subscribe"),
                                                               ("error", "subscribe")]
        assert "the subscription is unchanged" in errors[1]["message"]
        pong = recv_json(c)  # the connection still works
        assert pong["type"] == "pong" and pong["id"] == "abc" and abs(pong["time"] - time.time()) < 5
        sink.publish(make_update(1))
        assert recv_json(c)["seq"] == 1
        assert sink.stats.ignored == len(bad)

    # a frame over MAX_FRAME_BYTES closes that client only (1009); the server carries on
    with client(sink) as big, client(sink) as other:
        big.send("x" * (MAX_FRAME_BYTES + 1))
        with pytest.raises(ConnectionClosed) as closed:
            big.recv(timeout=5)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1009
        sink.publish(make_update(2))
        assert recv_json(other)["seq"] == 2


def test_a_slow_client_stays_a_bounded_number_of_updates_behind_and_its_drops_are_counted() -> None:
    """Row 10: a client reading one message every 2 s was at seq 83 while the stream was past
    300, and the server said "dropped 0": kernel buffers held hundreds of updates for it."""
    sink = WebSocketSink(port=0, hello=HELLO, queue_size=16, max_lag=0.1)
    n = 300
    published = 0

    def publish() -> None:  # 100 updates a second
        nonlocal published
        for i in range(n):
            sink.publish(make_update(i))
            published = i + 1
            time.sleep(0.01)

    lags: list[int] = []  # updates published beyond the one just read
    ahead: list[int] = []  # messages written to the client and not yet read by it
    try:
        # max_queue=2: a client library that buffers little, so it answers pings as it reads
        with connect(f"ws://127.0.0.1:{sink.port}", open_timeout=5, max_queue=2, close_timeout=0.5) as slow:
            assert recv_json(slow)["type"] == "hello"
            publisher = threading.Thread(target=publish, daemon=True)
            publisher.start()
            read = 0
            while publisher.is_alive():
                while published < 2 * (read + 1) and publisher.is_alive():
                    time.sleep(0.001)  # it reads one update for every two published
                seq = recv_json(slow)["seq"]
                read += 1
                lags.append(published - 1 - seq)
                ahead.append(sink.stats.per_client[0].sent - read)
            publisher.join()
        dropped = sink.stats.dropped
    finally:
        sink.close()
    # written and unread: what it confirmed to the last ping (its library's 2), what was written in
    # the 0.1 s before that ping (10) and a queue of updates younger than 0.1 s (10); it was 150
    assert max(ahead) <= 30, ahead
    # so the update it reads is never far behind (reading at half the rate, about twice that); it grew to 150
    assert max(lags[len(lags) // 3:]) <= 70, lags
    assert dropped > n // 3  # the rest was dropped, oldest first, and counted


def test_a_client_that_floods_messages_is_closed_with_1008_and_the_others_carry_on(sink: WebSocketSink) -> None:
    """Row 11: one client sending pings in a loop slowed every other client down."""
    with client(sink) as flooder, client(sink) as other:
        for i in range(CLIENT_MESSAGE_BURST):  # a burst is allowed
            flooder.send(json.dumps({"type": "ping", "id": i}))
        assert [recv_json(flooder)["id"] for _ in range(CLIENT_MESSAGE_BURST)] == list(range(CLIENT_MESSAGE_BURST))
        with pytest.raises(ConnectionClosed) as closed:
            for i in range(1000):
                flooder.send('{"type": "ping"}')
            while True:
                flooder.recv(timeout=5)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == CLOSE_POLICY_VIOLATION
        assert f"more than {CLIENT_MESSAGE_RATE:g} messages a second" in closed.value.rcvd.reason
        other.send('{"type": "ping", "id": "still here"}')
        assert recv_json(other)["id"] == "still here"
        sink.publish(make_update(1))
        assert recv_json(other)["seq"] == 1
    assert sink.stats.flooded == 1

def test_subscribe_filters_streams_per_client(sink: WebSocketSink) -> None:
    with client(sink) as deck2, client(sink) as everything:
        deck2.send(json.dumps({"type": "subscribe", "streams": ["deck2"]}))
        assert recv_json(deck2) == {"type": "subscribed", "streams": ["deck2"]}
        for i in range(6):
            sink.publish(make_update(i, "deck1" if i % 2 == 0 else "deck2"))
        assert [recv_json(deck2)["seq"] for _ in range(3)] == [1, 3, 5]
        assert [recv_json(everything)["seq"] for _ in range(6)] == list(range(6))
        deck2.send('{"type": "subscribe", "streams": "*"}')
        assert recv_json(deck2) == {"type": "subscribed", "streams": None}
        sink.publish(make_update(6, "deck1"))
        assert recv_json(deck2)["stream"] == "deck1"


def test_port_in_use_names_the_port(sink: WebSocketSink) -> None:
    with pytest.raises(PortInUseError, match=rf"port {sink.port} on 127.0.0.1 is already in use") as err:
        WebSocketSink(port=sink.port, hello=HELLO)
    assert err.value.port == sink.port


def test_close_flushes_closes_clients_and_frees_the_port() -> None:
    s = WebSocketSink(port=0, hello=HELLO)
    with client(s) as c:
        for i in range(5):
            s.publish(make_update(i))
        s.close()
        assert [recv_json(c)["seq"] for _ in range(5)] == list(range(5))  # flushed before closing
        with pytest.raises(ConnectionClosed) as closed:
            c.recv(timeout=5)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1001
    assert not s._thread.is_alive()
    s.publish(make_update(9))  # after close: a no-op, no error
    s.close()  # twice is fine
    WebSocketSink(port=s.port, hello=HELLO).close()  # the port is free again


def test_options_are_checked() -> None:
    with pytest.raises(ConfigError, match=r"queue_size=0 must be a positive integer"):
        WebSocketSink(port=0, hello=HELLO, queue_size=0)
    with pytest.raises(ConfigError, match=r"port=70000 must be an integer in 0\.\.65535"):
        WebSocketSink(port=70000, hello=HELLO)
    with pytest.raises(ConfigError, match=r"hello must be JSON-serialisable"):
        WebSocketSink(port=0, hello={"model": object()})


def test_example_client_subscribes_and_prints(sink: WebSocketSink) -> None:
    import subprocess
    import sys
    from pathlib import Path

    script = Path(__file__).resolve().parents[3] / "clients" / "ws_client.py"
    proc = subprocess.Popen(
        [sys.executable, str(script), "--url", f"ws://127.0.0.1:{sink.port}", "--stream", "deck2", "--count", "2"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert eventually(lambda: any(c.streams == ("deck2",) for c in sink.stats.per_client), timeout=10)
        for i in range(4):
            sink.publish(make_update(i, "deck1" if i % 2 == 0 else "deck2"))
        out, _ = proc.communicate(timeout=10)
    finally:
        proc.kill()
    assert proc.returncode == 0
    lines = out.splitlines()
    assert "model tiny" in lines[0] and "['deck1', 'deck2']" in lines[0]
    assert [line.split()[:2] for line in lines if "valence=" in line] == [["deck2", "#1"], ["deck2", "#3"]]


@pytest.mark.parametrize(("address", "shown"), [(("127.0.0.1", 50000), "127.0.0.1:50000"),
                                                (("::1", 50000, 0, 0), "[::1]:50000"), (None, "None")])
def test_a_client_address_is_logged_as_host_port_with_ipv6_in_brackets(address: Any, shown: str) -> None:
    assert _remote(SimpleNamespace(remote_address=address)) == shown  # type: ignore[arg-type]

"""rtmer.client against a real in-process `rtmer run --ws` (and the server class for protocol edges)."""

from __future__ import annotations

import asyncio
import io
import json
import re
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf
from websockets.sync.server import ServerConnection, serve

import rtmer
from conftest import free_port, music_like
from rtmer.app.cli import EXIT_OK, main
from rtmer.errors import ConfigError, ServerConnectionError
from rtmer.core.update import Update
from rtmer.outputs.websocket import WebSocketSink

FAST = {"initial_delay": 0.05, "max_delay": 0.2}  # reconnect quickly in tests


def numbers(updates: list[Update]) -> list[tuple[Any, ...]]:
    return [(u.stream, u.seq, u.t, u.valence, u.arousal, u.valence_raw, u.arousal_raw, u.mood) for u in updates]


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Two short files (1.7 s and 1.2 s: 4 and 3 updates) played in real time by the server."""
    folder = tmp_path_factory.mktemp("audio")
    a, b = folder / "a.wav", folder / "b.flac"
    sf.write(a, np.stack([music_like(1.7, 44100, seed=1)] * 2, axis=1), 44100, subtype="PCM_16")
    sf.write(b, music_like(1.2, 22050, seed=2), 22050)
    return {"deck1": a, "deck2": b}


@pytest.fixture(scope="module")
def expected(clips: dict[str, Path]) -> dict[str, list[tuple[Any, ...]]]:
    """What the server sends for each stream: the Tracker's numbers for its file."""
    tracker = rtmer.Tracker()
    out = {}
    for stream, path in clips.items():
        data, rate = sf.read(path, dtype="float32", always_2d=True)
        out[stream] = numbers(tracker.process(data, sample_rate=rate, stream=stream) + tracker.end(stream))
    return out


class Server:
    """`rtmer run --ws` on ``port``, playing files in real time, on a thread of this process."""

    def __init__(self, port: int, streams: dict[str, Path]) -> None:
        argv = ["run", "--ws", "--ws-port", str(port), "--no-display"]
        for stream, path in streams.items():
            argv += ["--stream", f"{stream}=file:{path}"]
        self.stderr = io.StringIO()
        self.code: int | None = None

        def run() -> None:
            self.code = main(argv, stdout=io.StringIO(), stderr=self.stderr)

        self.thread = threading.Thread(target=run, name="rtmer-run", daemon=True)
        self.thread.start()

    def join(self) -> None:
        self.thread.join(30)
        assert not self.thread.is_alive(), "rtmer run did not end"
        assert self.code == EXIT_OK, self.stderr.getvalue()


class Servers(threading.Thread):
    """Runs servers one after the other on ``port`` (the next once the last has ended),
    then closes ``client``; ``join()`` raises what went wrong."""

    def __init__(self, client: rtmer.client.Client, port: int, *files: dict[str, Path]) -> None:
        super().__init__(daemon=True)
        self.client, self.port, self.files = client, port, files
        self.error: BaseException | None = None
        self.start()

    def run(self) -> None:
        try:
            for streams in self.files:
                Server(self.port, streams).join()
        except BaseException as exc:  # reported by join()
            self.error = exc
        finally:
            self.client.close()

    def join(self, timeout: float | None = 30) -> None:
        super().join(timeout)
        assert not self.is_alive()
        if self.error is not None:
            raise self.error


def assert_tail_of(got: list[Update], expected: list[tuple[Any, ...]]) -> None:
    """``got`` is what the server sent from the moment the client joined: a non-empty tail."""
    assert got, "no updates received"
    assert numbers(got) == expected[len(expected) - len(got) :]


def test_sync_client_iterates_every_update_of_rtmer_run(
    clips: dict[str, Path], expected: dict[str, list[tuple[Any, ...]]]
) -> None:
    port = free_port()
    client = rtmer.client.connect(f"ws://127.0.0.1:{port}", **FAST)  # started before the server: retries
    servers = Servers(client, port, clips)
    with client:
        got = list(client)
    servers.join()
    assert client.hello is not None and client.hello["streams"] == ["deck1", "deck2"]
    assert client.hello["model"]["model_name"] == "rtmer-default" and client.hello["hop_seconds"] == 0.5
    assert all(isinstance(u, rtmer.Update) for u in got)
    for stream in ("deck1", "deck2"):
        assert_tail_of([u for u in got if u.stream == stream], expected[stream])


def test_async_client_with_a_stream_filter(clips: dict[str, Path], expected: dict[str, list[tuple[Any, ...]]]) -> None:
    port = free_port()

    async def collect() -> tuple[list[Update], dict[str, Any] | None]:
        client = rtmer.client.connect(f"ws://127.0.0.1:{port}", streams=["deck2"], **FAST)
        server = Server(port, clips)

        async def close_when_done() -> None:
            try:
                await asyncio.to_thread(server.join)
            finally:
                await client.aclose()

        closer = asyncio.create_task(close_when_done())
        async with client:
            got = [u async for u in client]
        await closer
        return got, client.hello

    got, hello = asyncio.run(collect())
    assert hello is not None and hello["streams"] == ["deck1", "deck2"]  # the server had both
    assert {u.stream for u in got} == {"deck2"}
    assert_tail_of(got, expected["deck2"])


def test_sync_client_reconnects_after_the_server_restarts(
    clips: dict[str, Path], expected: dict[str, list[tuple[Any, ...]]]
) -> None:
    port = free_port()
    client = rtmer.client.connect(f"ws://127.0.0.1:{port}", **FAST)
    servers = Servers(client, port, {"deck1": clips["deck1"]}, {"deck2": clips["deck2"]})
    got = list(client)  # not entered: connects on the first step, closes at the end
    servers.join()
    streams = [u.stream for u in got]
    assert client.connections == 2
    assert client.hello is not None and client.hello["streams"] == ["deck2"]  # the second server's hello
    assert streams == sorted(streams)  # every deck1 update (first server) before any deck2 one
    assert_tail_of([u for u in got if u.stream == "deck1"], expected["deck1"])
    assert_tail_of([u for u in got if u.stream == "deck2"], expected["deck2"])
    assert repr(client).endswith("closed>")


def test_async_client_reconnects_after_the_server_restarts(
    clips: dict[str, Path], expected: dict[str, list[tuple[Any, ...]]]
) -> None:
    port = free_port()

    async def collect() -> tuple[list[Update], int]:
        client = rtmer.client.connect(f"ws://127.0.0.1:{port}", **FAST)
        servers = Servers(client, port, {"deck1": clips["deck1"]}, {"deck2": clips["deck2"]})
        got = [u async for u in client]  # closed from the other thread with close()
        await asyncio.to_thread(servers.join)
        return got, client.connections

    got, connections = asyncio.run(collect())
    assert connections == 2
    assert_tail_of([u for u in got if u.stream == "deck1"], expected["deck1"])
    assert_tail_of([u for u in got if u.stream == "deck2"], expected["deck2"])


# ---- protocol edges, on the server class itself -------------------------------------------
def make_update(seq: int, stream: str) -> Update:
    return Update(stream, seq, 0.5 * (seq + 1), 1.7e9 + seq, seq / 10, -0.5, 0.25, float("nan"), "calm")


@contextmanager
def sink() -> Iterator[WebSocketSink]:
    s = WebSocketSink(port=0, hello={"model": {"model_name": "tiny"}, "streams": ["deck1", "deck2"]})
    try:
        yield s
    finally:
        s.close()


def test_without_reconnect_iteration_ends_when_the_server_closes() -> None:
    sent = [make_update(i, "deck1" if i % 2 else "deck2") for i in range(6)]
    with sink() as server:
        client = rtmer.client.connect(f"ws://127.0.0.1:{server.port}", streams=["deck1"], reconnect=False)
        with client:
            for u in sent:
                server.publish(u)
            server.close()  # after its queues are written
            got = list(client)
    wanted = [u for u in sent if u.stream == "deck1"]
    assert [(u.stream, u.seq, u.t, u.time, u.valence, u.arousal, u.valence_raw, u.mood) for u in got] == [
        (u.stream, u.seq, u.t, u.time, u.valence, u.arousal, u.valence_raw, u.mood) for u in wanted
    ]
    assert all(np.isnan(u.arousal_raw) for u in got)  # null on the wire: NaN again
    assert client.connections == 1 and client.ignored == 0


def test_without_reconnect_a_missing_server_is_an_error() -> None:
    port = free_port()
    message = rf"rtmer server 'ws://127.0.0.1:{port}': cannot connect .* is `rtmer run --ws` running there\?"
    with pytest.raises(ServerConnectionError, match=message):
        with rtmer.client.connect(f"ws://127.0.0.1:{port}", reconnect=False):
            pass


@contextmanager
def foreign_server(first_message: str) -> Iterator[int]:
    def handler(ws: ServerConnection) -> None:
        ws.send(first_message)
        for _ in ws:
            pass

    with serve(handler, "127.0.0.1", 0) as server:
        threading.Thread(target=server.serve_forever, daemon=True).start()
        try:
            yield server.socket.getsockname()[1]
        finally:
            server.shutdown()


def test_a_server_that_is_not_rtmer_is_an_error_even_with_reconnect() -> None:
    with foreign_server("hello world") as port:
        with pytest.raises(ServerConnectionError, match=r"sent 'hello world' instead of a hello; is it an rtmer"):
            list(rtmer.client.connect(f"ws://127.0.0.1:{port}", **FAST))
    with foreign_server(json.dumps({"type": "hello", "protocol": 9})) as port:
        with pytest.raises(ServerConnectionError, match=r"speaks protocol 9; this client reads protocol 1"):
            list(rtmer.client.connect(f"ws://127.0.0.1:{port}", **FAST))


def test_malformed_updates_are_skipped_and_counted() -> None:
    messages = [
        {"type": "va", "stream": "a", "seq": "1"},  # ill-typed and incomplete
        {"type": "pong", "time": 1.0},  # another type: skipped, not counted
        {"type": "va", "stream": "a", "seq": 0, "t": 0.5, "time": 1.0, "valence": 0.1, "arousal": 0.2,
         "raw": {"valence": 0.3, "arousal": None}, "mood": "calm"},
    ]

    def handler(ws: ServerConnection) -> None:
        ws.send(json.dumps({"type": "hello", "protocol": 1, "streams": ["a"]}))
        for m in messages:
            ws.send(json.dumps(m))
        ws.send(b"binary")

    with serve(handler, "127.0.0.1", 0) as server:
        threading.Thread(target=server.serve_forever, daemon=True).start()
        port = server.socket.getsockname()[1]
        client = rtmer.client.connect(f"ws://127.0.0.1:{port}", reconnect=False)
        got = list(client)
        server.shutdown()
    assert [(u.stream, u.seq, u.valence_raw) for u in got] == [("a", 0, 0.3)]
    assert client.ignored == 1


def test_without_reconnect_a_broken_connection_raises() -> None:
    def handler(ws: ServerConnection) -> None:
        ws.send(json.dumps({"type": "hello", "protocol": 1, "streams": ["a"]}))
        ws.send(json.dumps({"type": "va", "stream": "a", "seq": 0, "t": 0.5, "time": 1.0, "valence": 0.1,
                            "arousal": 0.2, "raw": {"valence": 0.3, "arousal": 0.4}, "mood": "calm"}))
        ws.socket.shutdown(socket.SHUT_RDWR)  # gone without a closing handshake

    with serve(handler, "127.0.0.1", 0) as server:
        threading.Thread(target=server.serve_forever, daemon=True).start()
        port = server.socket.getsockname()[1]
        got: list[Update] = []
        with pytest.raises(ServerConnectionError, match=rf"'ws://127.0.0.1:{port}': connection lost \(no close frame"):
            for u in rtmer.client.connect(f"ws://127.0.0.1:{port}", reconnect=False):
                got.append(u)
        server.shutdown()
    assert [u.valence_raw for u in got] == [0.3]


def test_retries_wait_initial_delay_then_double_up_to_max_delay(monkeypatch: pytest.MonkeyPatch) -> None:
    client = rtmer.client.connect(f"ws://127.0.0.1:{free_port()}", initial_delay=0.5, max_delay=3.0)  # nobody there
    waits: list[float] = []

    def wait(seconds: float) -> bool:  # instead of sleeping: note the delay, give up after six
        waits.append(seconds)
        if len(waits) == 6:
            client.close()
        return client._closed

    monkeypatch.setattr(client._stop, "wait", wait)
    with client:
        assert list(client) == []
    assert waits == [0.5, 1.0, 2.0, 3.0, 3.0, 3.0]
    assert client.hello is None and client.connections == 0


def test_one_flavour_per_client_and_checked_options() -> None:
    port = free_port()
    client = rtmer.client.connect(f"ws://127.0.0.1:{port}", reconnect=False)
    with pytest.raises(ServerConnectionError):
        next(iter(client))
    with pytest.raises(ConfigError, match=r"already used with with/for \(sync\); make another client for async use"):
        client.__aiter__()
    with pytest.raises(ConfigError, match=r"url='http://x' must be a ws:// or wss:// URL"):
        rtmer.client.connect("http://x")
    with pytest.raises(ConfigError, match=r"streams='deck1' must be a list of stream ids, e.g. \['deck1'\]"):
        rtmer.client.connect(streams="deck1")
    with pytest.raises(ConfigError, match=r"streams=\[\] names no stream"):
        rtmer.client.connect(streams=[])
    with pytest.raises(ConfigError, match=r"initial_delay=0 must be a positive number \[s\]"):
        rtmer.client.connect(initial_delay=0)
    with pytest.raises(ConfigError, match=r"max_delay=0.1 must be >= initial_delay=0.5"):
        rtmer.client.connect(max_delay=0.1)
    for value in ("no", 0, None):
        with pytest.raises(TypeError, match=rf"reconnect={value!r} must be True or False \(a bool\), got "):
            rtmer.client.connect(reconnect=value)  # type: ignore[arg-type]


def test_the_readme_client_examples_run(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    text = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    section = text[text.index("## Python API") : text.index("## Protocols")]
    examples = [code for code in re.findall(r"```python\n(.*?)```", section, re.S) if "rtmer.client" in code]
    assert len(examples) == 2
    demo = re.search(r"Try them against `rtmer demo` \(its one stream is `(\w+)`\)", section)
    assert demo and demo.group(1) == "demo" and 'streams=["demo"]' in examples[0]  # the filter the text runs
    real = rtmer.client.connect
    sent = [make_update(i, "demo" if i % 2 else "deck2") for i in range(4)]
    for code, streams in zip(examples, (["demo"], ["demo", "deck2"])):
        with sink() as server:

            def connect(url: str, **options: Any) -> rtmer.client.Client:
                assert url == "ws://127.0.0.1:8765"
                return real(f"ws://127.0.0.1:{server.port}", reconnect=False, **options)  # ends with the server

            def serve_then_close() -> None:
                for _ in range(1000):  # until the example has connected (it fails on its own if it cannot)
                    if server.stats.clients:
                        break
                    threading.Event().wait(0.01)
                for u in sent:
                    server.publish(u)
                server.close()

            monkeypatch.setattr(rtmer.client, "connect", connect)
            feeder = threading.Thread(target=serve_then_close, daemon=True)
            feeder.start()
            exec(compile(code, "README.md", "exec"), {})
            feeder.join(10)
        printed = [line.split()[:2] for line in capsys.readouterr().out.splitlines()]
        assert printed == [[u.stream, str(u.t)] for u in sent if u.stream in streams]

"""Issue 9: the WebSocket server's security model, tested from clients.

Loopback by default; a token for anything else (header or query, constant-time); an
Origin check; a Host check against DNS rebinding; a connection cap with code 1013; a
hello that keeps the model's metadata for clients with the token; TLS. Also faults 7
and 15 of the issue: a deeply nested frame, and a refused subscribe.
"""

from __future__ import annotations

import json
import logging
import shutil
import socket
import ssl
import subprocess
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest
import soundfile as sf
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import ClientConnection, connect

from conftest import music_like, wait_for
from rtmer.app.cli import EXIT_OK, EXIT_USAGE, main
from rtmer.errors import ConfigError
from rtmer.outputs.hosts import is_loopback_host
from rtmer.outputs.websocket import HELLO_MODEL_KEYS, WebSocketSink
from rtmer.protocol import MAX_SUBSCRIBE_STREAMS

TOKEN = "correct-horse-battery-staple-42"
MODEL = {"model_name": "tiny", "model_version": "3", "sample_rate": "16000", "hop_seconds": "0.5",
         "training_data": "secret recordings", "metrics": {"ccc": 0.5}, "architecture": "crnn"}
HELLO: dict[str, Any] = {"model": MODEL, "streams": ["deck1"], "hop_seconds": 0.5}


@pytest.fixture
def open_sink() -> Iterator[WebSocketSink]:
    s = WebSocketSink(port=0, hello=HELLO)
    try:
        yield s
    finally:
        s.close()


@pytest.fixture
def token_sink() -> Iterator[WebSocketSink]:
    s = WebSocketSink("127.0.0.1", 0, hello=HELLO, token=TOKEN)
    try:
        yield s
    finally:
        s.close()


def handshake(port: int, headers: dict[str, str], path: str = "/") -> int:
    """A raw WebSocket opening handshake with exactly ``headers``; returns the HTTP status."""
    lines = [f"GET {path} HTTP/1.1", "Upgrade: websocket", "Connection: Upgrade",
             "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==", "Sec-WebSocket-Version: 13"]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
        status = s.makefile("rb").readline().decode("latin-1")
    return int(status.split()[1])


def hello_of(c: ClientConnection) -> dict[str, Any]:
    msg = c.recv(timeout=10)
    assert isinstance(msg, str)
    out: dict[str, Any] = json.loads(msg)
    assert out["type"] == "hello"
    return out


# ---- where it listens ---------------------------------------------------------------------
def test_listening_beyond_loopback_needs_a_token() -> None:
    with pytest.raises(ConfigError, match=r"host='0\.0\.0\.0' is not a loopback address.*--ws-token.*RTMER_WS_TOKEN"):
        WebSocketSink("0.0.0.0", 0, hello=HELLO)
    with pytest.raises(ConfigError, match=r"token must be at least 16 printable characters"):
        WebSocketSink("0.0.0.0", 0, hello=HELLO, token="short")
    s = WebSocketSink("0.0.0.0", 0, hello=HELLO, token=TOKEN)  # with a token it may
    try:
        with connect(f"ws://127.0.0.1:{s.port}/?token={TOKEN}", open_timeout=10) as c:
            assert hello_of(c)["streams"] == ["deck1"]
    finally:
        s.close()


def test_loopback_hosts_are_told_apart_from_the_rest() -> None:
    for host in ("127.0.0.1", "127.1.2.3", "::1", "[::1]", "localhost", "LOCALHOST", "a.localhost"):
        assert is_loopback_host(host), host
    for host in ("0.0.0.0", "::", "192.168.1.5", "10.0.0.1"):
        assert not is_loopback_host(host), host


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("sec") / "clip.wav"
    sf.write(path, music_like(1.2, 16000, seed=2), 16000, subtype="PCM_16")
    return path


def test_the_command_line_refuses_a_public_bind_without_a_token_and_takes_one_from_the_environment(
    clip: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out, err = _io()
    argv = ["run", "--stream", str(clip), "--no-realtime", "--ws", "--ws-host", "0.0.0.0", "--ws-port", "0",
            "--no-display"]
    monkeypatch.delenv("RTMER_WS_TOKEN", raising=False)
    assert main(argv, stdout=out, stderr=err) == EXIT_USAGE
    assert "is not a loopback address" in err.getvalue()
    monkeypatch.setenv("RTMER_WS_TOKEN", TOKEN)
    out, err = _io()
    assert main(argv, stdout=out, stderr=err) == EXIT_OK, err.getvalue()
    assert "WebSocket access: clients must present the token" in err.getvalue()
    assert TOKEN not in err.getvalue()  # never echoed


def _io() -> tuple[Any, Any]:
    import io

    return io.StringIO(), io.StringIO()


# ---- the token --------------------------------------------------------------------------------
def test_a_missing_or_wrong_token_is_refused_and_a_right_one_in_a_header_or_the_query_is_let_in(
    token_sink: WebSocketSink,
) -> None:
    url = f"ws://127.0.0.1:{token_sink.port}/"
    for bad in ({}, {"additional_headers": {"Authorization": "Bearer wrong-token-wrong-token"}},
                {"additional_headers": {"Authorization": f"Basic {TOKEN}"}}):
        with pytest.raises(InvalidStatus) as refused:
            connect(url, open_timeout=10, **bad).close()
        assert refused.value.response.status_code == 401
    with pytest.raises(InvalidStatus):
        connect(url + "?token=" + TOKEN[:-1], open_timeout=10).close()
    with connect(url, open_timeout=10, additional_headers={"Authorization": f"Bearer {TOKEN}"}) as c:
        assert hello_of(c)["model"] == MODEL  # with the token: the whole metadata
    with connect(url + f"?token={TOKEN}", open_timeout=10) as c:
        assert hello_of(c)["model"]["training_data"] == "secret recordings"
    assert token_sink.stats.refused == 4


def test_without_a_token_the_hello_names_the_model_and_keeps_its_metadata(open_sink: WebSocketSink) -> None:
    with connect(f"ws://127.0.0.1:{open_sink.port}/", open_timeout=10) as c:
        model = hello_of(c)["model"]
    assert model == {k: MODEL[k] for k in HELLO_MODEL_KEYS if k in MODEL}
    assert model["model_name"] == "tiny" and "training_data" not in model and "metrics" not in model


# ---- Origin and Host ------------------------------------------------------------------------------
def test_a_page_from_another_origin_is_refused(open_sink: WebSocketSink) -> None:
    host = {"Host": f"127.0.0.1:{open_sink.port}"}
    assert handshake(open_sink.port, host) == 101  # a program: no Origin
    assert handshake(open_sink.port, {**host, "Origin": "http://127.0.0.1:8766"}) == 101  # the built-in page
    assert handshake(open_sink.port, {**host, "Origin": "http://localhost:3000"}) == 101
    assert handshake(open_sink.port, {**host, "Origin": "https://evil.example"}) == 403
    assert handshake(open_sink.port, {**host, "Origin": "null"}) == 403  # a page opened from a file
    with pytest.raises(InvalidStatus) as refused:
        connect(f"ws://127.0.0.1:{open_sink.port}/", open_timeout=10, origin="https://evil.example").close()  # type: ignore[arg-type]
    assert refused.value.response.status_code == 403


def test_dns_rebinding_is_refused_by_the_host_check(open_sink: WebSocketSink) -> None:
    """A page at http://evil.example:PORT whose name now points at 127.0.0.1: same origin, wrong Host."""
    rebound = f"evil.example:{open_sink.port}"
    assert handshake(open_sink.port, {"Host": rebound, "Origin": f"http://{rebound}"}) == 403
    assert handshake(open_sink.port, {"Host": f"localhost:{open_sink.port}"}) == 101


def test_allowed_origins_and_the_same_host_rule() -> None:
    s = WebSocketSink(port=0, hello=HELLO, token=TOKEN, allowed_origins=["https://show.example"])
    try:
        auth = {"Host": f"127.0.0.1:{s.port}", "Authorization": f"Bearer {TOKEN}"}
        assert handshake(s.port, {**auth, "Origin": "https://show.example"}) == 101
        assert handshake(s.port, {**auth, "Origin": "https://SHOW.example/"}) == 101
        assert handshake(s.port, {**auth, "Origin": "https://other.example"}) == 403
        # the page served from this machine's LAN address, to a browser that reached us there
        lan = {"Host": f"192.168.1.5:{s.port}", "Authorization": f"Bearer {TOKEN}"}
        assert handshake(s.port, {**lan, "Origin": "http://192.168.1.5:8766"}) == 101
        assert handshake(s.port, {**lan, "Origin": "http://192.168.1.6:8766"}) == 403
    finally:
        s.close()


# ---- the connection cap -----------------------------------------------------------------------------
def test_a_client_over_the_cap_is_closed_with_1013_and_the_others_are_unaffected() -> None:
    s = WebSocketSink(port=0, hello=HELLO, max_clients=2)
    try:
        url = f"ws://127.0.0.1:{s.port}/"
        with ExitStack() as stack:
            held = [stack.enter_context(connect(url, open_timeout=10)) for _ in range(2)]
            for c in held:
                hello_of(c)
            with connect(url, open_timeout=10) as extra, pytest.raises(ConnectionClosed) as closed:
                extra.recv(timeout=10)
            assert closed.value.rcvd is not None and closed.value.rcvd.code == 1013
            assert "too many clients: at most 2" in closed.value.rcvd.reason
            held[0].send('{"type": "ping", "id": 1}')
            assert json.loads(held[0].recv(timeout=10))["type"] == "pong"
            held[1].close()
            wait_for(lambda: len(s._clients) < 2, "the server to drop the closed client")
            with connect(url, open_timeout=10) as again:  # a place is free again
                hello_of(again)
        assert s.stats.capped == 1
    finally:
        s.close()
    with pytest.raises(ConfigError, match=r"max_clients=0 must be an integer in 1\.\.100000"):
        WebSocketSink(port=0, hello=HELLO, max_clients=0)



def test_a_bad_max_clients_is_refused_without_ws_too(clip: Path) -> None:
    """Row 13: ``--ws-max-clients 0`` was accepted without a word when --ws was off."""
    out, err = _io()
    assert main(["run", "--stream", str(clip), "--no-realtime", "--no-display", "--ws-max-clients", "0"],
                stdout=out, stderr=err) == EXIT_USAGE
    assert "WebSocket max_clients=0 must be an integer in 1..100000" in err.getvalue()

# ---- TLS -----------------------------------------------------------------------------------------------
@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command to make a certificate")
def test_tls_with_a_certificate_and_key(tmp_path: Path) -> None:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out",
                    str(cert), "-days", "2", "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost"],
                   check=True, capture_output=True, timeout=60)
    s = WebSocketSink("localhost", 0, hello=HELLO, certfile=str(cert), keyfile=str(key))
    try:
        assert s.url.startswith("wss://localhost:")
        ctx = ssl.create_default_context(cafile=str(cert))
        with connect(f"wss://localhost:{s.port}/", ssl=ctx, open_timeout=10) as c:
            assert hello_of(c)["streams"] == ["deck1"]
        with pytest.raises(Exception):  # plain ws:// to a TLS server
            connect(f"ws://localhost:{s.port}/", open_timeout=5).close()
    finally:
        s.close()
    with pytest.raises(ConfigError, match=r"TLS needs both a certificate and a key"):
        WebSocketSink(port=0, hello=HELLO, certfile=str(cert))
    with pytest.raises(ConfigError, match=r"TLS: cannot load certificate"):
        WebSocketSink(port=0, hello=HELLO, certfile=str(key), keyfile=str(key))


# ---- faults 7 and 15 -------------------------------------------------------------------------------------
def test_a_deeply_nested_frame_is_ignored_without_a_traceback(
    open_sink: WebSocketSink, caplog: pytest.LogCaptureFixture
) -> None:
    """Fault 7: 2048 nested '[' put a RecursionError traceback in the server log."""
    with caplog.at_level(logging.DEBUG), connect(f"ws://127.0.0.1:{open_sink.port}/", open_timeout=10) as c:
        hello_of(c)
        c.send("[" * 2048)
        c.send("{\"a\":" * 1300 + "1" + "}" * 1300)
        c.send('{"type": "ping", "id": "after"}')
        assert json.loads(c.recv(timeout=10))["id"] == "after"
    assert open_sink.stats.ignored == 2
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]


def test_a_refused_subscribe_is_answered_and_leaves_the_subscription(open_sink: WebSocketSink) -> None:
    """Fault 15: more than 256 streams in subscribe were ignored without a word."""
    with connect(f"ws://127.0.0.1:{open_sink.port}/", open_timeout=10) as c:
        hello_of(c)
        c.send(json.dumps({"type": "subscribe", "streams": [f"s{i}" for i in range(MAX_SUBSCRIBE_STREAMS + 1)]}))
        reply = json.loads(c.recv(timeout=10))
        assert reply["type"] == "error" and reply["request"] == "subscribe"
        assert f"at most {MAX_SUBSCRIBE_STREAMS} stream ids (got {MAX_SUBSCRIBE_STREAMS + 1})" in reply["message"]
        from rtmer.core.update import Update

        open_sink.publish(Update(stream="deck1", seq=0, t=0.5, time=1.0, valence=0.0, arousal=0.0,
                                 valence_raw=0.0, arousal_raw=0.0, mood="neutral"))
        assert json.loads(c.recv(timeout=10))["type"] == "va"  # still subscribed to everything


"""The live web page (``rtmer.outputs.web`` and ``rtmer/webpage/``): its server, and the page in a real browser.

The browser tests drive headless Chromium (Debian ``chromium``, installed by tests/run.sh)
over the Chrome DevTools Protocol, with the ``websockets`` client; they skip when it is
not installed. Their screenshots go to ``build/test-artifacts/``.
"""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf

from conftest import wait_for
from rtmer.app.cli import EXIT_DEVICE, EXIT_OK, EXIT_USAGE, main
from rtmer.app.demo import section_audio
from rtmer.errors import ConfigError, PortInUseError
from rtmer.outputs.web import CONTENT_SECURITY_POLICY, PAGE_FILES, WebPageServer, page_file

REPO = Path(__file__).resolve().parents[3]
ARTIFACTS = REPO / "build" / "test-artifacts"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CALM_SECONDS = 4.0  # the file the browser tests play: calm, then an energetic section
ENERGETIC_SECONDS = 26.0  # long enough that rtmer is still running when the checks end; it is stopped


def get(url: str, *, method: str = "GET", headers: dict[str, str] | None = None,
        timeout: float = 10.0) -> tuple[int, dict[str, str], bytes]:
    req = urllib.request.Request(url, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, dict(resp.headers), resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


# ---- the server, without a browser -------------------------------------------------------
@pytest.fixture
def server() -> Iterator[WebPageServer]:
    s = WebPageServer(port=0, ws_host="127.0.0.1", ws_port=8765)
    try:
        yield s
    finally:
        s.close()


def test_serves_the_page_files_from_the_package(server: WebPageServer) -> None:
    assert server.host == "127.0.0.1" and server.url == f"http://127.0.0.1:{server.port}/"
    for path, (name, kind) in PAGE_FILES.items():
        status, headers, body = get(server.url.rstrip("/") + path)
        assert status == 200 and headers["Content-Type"] == kind and body == page_file(name), path
        assert headers["Content-Security-Policy"] == CONTENT_SECURITY_POLICY
        assert headers["Cache-Control"] == "no-store" and headers["X-Content-Type-Options"] == "nosniff"
    status, headers, body = get(server.url, method="HEAD")
    assert status == 200 and body == b"" and int(headers["Content-Length"]) == len(page_file("index.html"))
    assert get(server.url + "missing.js")[0] == 404 and get(server.url + "../pyproject.toml")[0] == 404
    assert get(server.url, method="POST")[0] == 501


def test_the_page_loads_nothing_from_elsewhere() -> None:
    html = page_file("index.html").decode()
    refs = re.findall(r'(?:src|href)="([^"]*)"', html)
    assert sorted(refs) == ["app.js", "data:,", "style.css"]
    for name in ("app.js", "style.css"):
        text = page_file(name).decode()
        assert not re.search(r"https?://", text), name  # ws:// only, built from config.json
        assert "@import" not in text and "url(" not in text, name


def test_config_json_says_where_the_websocket_server_is(server: WebPageServer) -> None:
    status, headers, body = get(server.url + "config.json")
    assert status == 200 and headers["Content-Type"] == "application/json"
    assert json.loads(body) == {"ws": "ws://127.0.0.1:8765/"}
    wild = WebPageServer(port=0, ws_host="0.0.0.0", ws_port=9001)
    try:  # a WebSocket server on every interface: the host the browser reached the page by
        _, _, body = get(wild.url + "config.json", headers={"Host": "stage-pc.local:8766"})
        assert json.loads(body) == {"ws": "ws://stage-pc.local:9001/"}
        assert wild.ws_url(None) == "ws://127.0.0.1:9001/" and wild.ws_url("[::1]:80") == "ws://[::1]:9001/"
    finally:
        wild.close()


def test_bad_values_and_a_port_in_use_are_named(server: WebPageServer) -> None:
    with pytest.raises(PortInUseError, match=rf"port {server.port} on 127.0.0.1 .*--web-port"):
        WebPageServer(port=server.port, ws_host="127.0.0.1", ws_port=8765)
    with pytest.raises(ConfigError, match=r"web port=70000 must be an integer in 0\.\.65535"):
        WebPageServer(port=70000, ws_host="127.0.0.1", ws_port=8765)
    with pytest.raises(ConfigError, match=r"ws_port=0 must be the WebSocket server's port"):
        WebPageServer(port=0, ws_host="127.0.0.1", ws_port=0)
    server.close()
    server.close()  # twice is fine
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", server.port), timeout=2)


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("web") / "clip.wav"
    sf.write(path, section_audio("calm", 16000)[:16000 * 2], 16000)
    return path


def test_run_web_serves_the_page_and_prints_its_url(clip: Path) -> None:
    import io

    out, err = io.StringIO(), io.StringIO()
    code = main(["run", "--stream", str(clip), "--no-realtime", "--no-display", "--web", "--web-port", "0",
                 "--ws-port", "0"], stdout=out, stderr=err)
    text = err.getvalue()
    assert code == EXIT_OK, text
    ws = re.search(r"^rtmer: WebSocket on ws://127\.0\.0\.1:(\d+)\b", text, re.M)  # --web turned --ws on
    web = re.search(r"^rtmer: web page on http://127\.0\.0\.1:(\d+)/$", text, re.M)
    assert ws and web and int(web.group(1)) > 0 and web.group(1) != ws.group(1)
    with pytest.raises(OSError):  # closed with the run
        socket.create_connection(("127.0.0.1", int(web.group(1))), timeout=2)


def test_web_with_no_ws_and_a_web_port_in_use_are_refused(clip: Path) -> None:
    import io

    err = io.StringIO()
    code = main(["run", "--stream", str(clip), "--no-display", "--web", "--no-ws"], stdout=io.StringIO(), stderr=err)
    assert code == EXIT_USAGE and "--web needs the WebSocket server" in err.getvalue()
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        err = io.StringIO()
        code = main(["run", "--stream", str(clip), "--no-display", "--web", "--web-port", str(port), "--ws-port", "0"],
                    stdout=io.StringIO(), stderr=err)
    assert code == EXIT_DEVICE and f"port {port} on 127.0.0.1 is already in use; choose another with --web-port" \
        in err.getvalue()


def test_the_docs_show_the_page_and_its_config_keys(tmp_path: Path) -> None:
    from rtmer.app.config import load_config

    block = re.search(r"```toml\n(.*?)```", (REPO / "README.md").read_text(), re.S)
    assert block, "README.md has no TOML config example any more; update this test"
    (tmp_path / "rtmer.toml").write_text(block.group(1))
    loaded = load_config(str(tmp_path / "rtmer.toml"))  # unknown keys would be an error
    assert (loaded["web"], loaded["web_host"], loaded["web_port"]) == (True, "127.0.0.1", 8766)
    assert "](web-page.png)" in (REPO / "clients" / "README.md").read_text()
    png = (REPO / "clients" / "web-page.png").read_bytes()  # a screenshot taken by the test below
    assert png.startswith(b"\x89PNG\r\n\x1a\n") and len(png) < 200_000


# ---- limits: connections, timeouts, file descriptors (hardening issue, row 3) ----------------
def half_sent(port: int, n: int, *, seconds: float = 10.0) -> list[socket.socket]:
    """Up to ``n`` connections, opened within ``seconds``, that send the first line of a request
    and nothing more (refused ones are skipped)."""
    held: list[socket.socket] = []
    deadline = time.monotonic() + seconds
    while len(held) < n and time.monotonic() < deadline:
        try:
            s = socket.create_connection(("127.0.0.1", port), timeout=0.5)
        except OSError:
            continue
        try:
            s.sendall(b"GET / HTTP/1.1\r\n")
        except OSError:
            s.close()
            continue
        held.append(s)
    return held


def test_half_sent_requests_time_out_and_connections_over_the_cap_get_503() -> None:
    page = WebPageServer(port=0, ws_host="127.0.0.1", ws_port=8765, max_connections=2, request_timeout=0.5)
    held = half_sent(page.port, 2)
    try:
        assert len(held) == 2
        wait_for(lambda: len(page._server._deadlines) == 2, "the server to take both connections", timeout=5)
        status, headers, body = get(page.url)  # a third connection: answered at once, not left waiting
        assert (status, body, headers["Retry-After"]) == (503, b"busy\n", "1") and page.busy == 1
        for s in held:  # the server closes a request that does not finish within request_timeout
            s.settimeout(5)
            try:
                assert s.recv(100) == b""
            except ConnectionResetError:
                pass
        assert get(page.url)[0] == 200  # both places are free again
    finally:
        for s in held:
            s.close()
        page.close()
    with pytest.raises(ConfigError, match=r"max_connections=0 must be a positive integer"):
        WebPageServer(port=0, ws_host="127.0.0.1", ws_port=8765, max_connections=0)
    with pytest.raises(ConfigError, match=r"request_timeout=0 must be a positive number of seconds"):
        WebPageServer(port=0, ws_host="127.0.0.1", ws_port=8765, request_timeout=0)


SERVERS_WITH_FEW_FDS = r"""
import logging, os, resource, sys
_, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (int(sys.argv[1]), hard))
logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s")
from rtmer.outputs.web import WebPageServer
from rtmer.outputs.websocket import WebSocketSink
ws = WebSocketSink(port=0, hello={"streams": ["s1"]})
web = WebPageServer(port=0, ws_host="127.0.0.1", ws_port=ws.port)
print(ws.port, web.port, flush=True)
held = []
for line in sys.stdin:  # "fill": use up every file descriptor; "free": give them back
    if line.strip() == "fill":
        try:
            while True:
                held.append(os.open(os.devnull, os.O_RDONLY))
        except OSError:
            pass
    elif line.strip() == "free":
        while held:
            os.close(held.pop())
    print("done", line.strip(), flush=True)
"""


@dataclass
class FewFds:
    proc: subprocess.Popen[str]
    ws_port: int
    web_port: int
    log: Path

    def command(self, line: str) -> None:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()
        assert self.proc.stdout.readline() == f"done {line}\n"

    def stop(self) -> str:
        """Stop the servers; their log."""
        self.proc.kill()
        self.proc.wait(10)
        return self.log.read_text()


@pytest.fixture
def few_fds(tmp_path: Path) -> Iterator[FewFds]:
    """rtmer's two servers in a process that may open 256 files (``RLIMIT_NOFILE``). Its log goes
    to a file: a pipe that nobody reads while it logs would block it."""
    with open(tmp_path / "servers.log", "w") as log:
        proc = subprocess.Popen([sys.executable, "-c", SERVERS_WITH_FEW_FDS, "256"], stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, stderr=log, text=True,
                                env={**os.environ, "PYTHONPATH": str(REPO)})
    try:
        assert proc.stdout is not None
        ws_port, web_port = map(int, proc.stdout.readline().split())
        yield FewFds(proc, ws_port, web_port, tmp_path / "servers.log")
    finally:
        proc.kill()
        proc.wait(10)


def _ws_hello(port: int, timeout: float = 10.0) -> str:
    from websockets.sync.client import connect

    with connect(f"ws://127.0.0.1:{port}/", open_timeout=timeout) as c:
        msg = c.recv(timeout=timeout)
    assert isinstance(msg, str)
    return str(json.loads(msg)["type"])


def test_a_flood_of_half_sent_requests_cannot_use_up_the_file_descriptors(few_fds: FewFds) -> None:
    """Row 3: 1,100 half-sent requests to the page used up the descriptors, and the WebSocket
    server then refused everyone, logging accept() tracebacks thousands of times a second."""
    ws_port, web_port = few_fds.ws_port, few_fds.web_port
    held = half_sent(web_port, 600)  # more than the 256 descriptors the servers may open
    try:
        assert len(held) > 256  # taken as fast as they come (the backlog was 5: most were refused)
        assert _ws_hello(ws_port, timeout=5) == "hello"  # the WebSocket server still accepts
        assert get(f"http://127.0.0.1:{web_port}/", timeout=5)[0] == 503  # the page is busy, and says so at once
    finally:
        for s in held:
            s.close()
    wait_for(lambda: get(f"http://127.0.0.1:{web_port}/", timeout=5)[0] == 200, "the page to be served again",
             timeout=15)
    err = few_fds.stop()
    assert "Traceback" not in err and "Too many open files" not in err, err[-3000:]
    assert err.count("web page: 32 connections are open, the most allowed") == 1, err[-3000:]


def test_out_of_file_descriptors_is_logged_once_a_second_and_both_servers_recover(few_fds: FewFds) -> None:
    ws_port, web_port = few_fds.ws_port, few_fds.web_port
    few_fds.command("fill")
    got: dict[str, Any] = {}
    waiting = [threading.Thread(target=lambda: got.update(ws=_ws_hello(ws_port)), daemon=True),
               threading.Thread(target=lambda: got.update(page=get(f"http://127.0.0.1:{web_port}/")[0]), daemon=True)]
    for t in waiting:  # both connect (the kernel queues them) and wait for an answer
        t.start()
    time.sleep(2.5)  # meanwhile every accept() fails: EMFILE
    assert not got
    few_fds.command("free")
    for t in waiting:
        t.join(15)
    assert got == {"ws": "hello", "page": 200}  # recovered by themselves
    err = few_fds.stop()
    assert "Traceback" not in err, err[-3000:]
    for server in ("WebSocket server", "web page server"):
        lines = [line for line in err.splitlines() if f"{server} cannot accept connections" in line]
        assert 1 <= len(lines) <= 5, err[-3000:]  # about 2.5 s without descriptors: a line a second at most
        assert "Too many open files" in lines[0]


# ---- where the page listens, and TLS (row 4) ---------------------------------------------------
def test_the_page_beyond_loopback_needs_a_token_and_its_url_names_the_real_host() -> None:
    with pytest.raises(ConfigError, match=r"web page host='0\.0\.0\.0' is not a loopback address.*--ws-token.*"
                                          r"RTMER_WS_TOKEN"):
        WebPageServer("0.0.0.0", 0, ws_host="127.0.0.1", ws_port=8765)
    page = WebPageServer("0.0.0.0", 0, ws_host="0.0.0.0", ws_port=8765, ws_has_token=True)
    try:
        assert page.url == f"http://0.0.0.0:{page.port}/"
        assert get(f"http://127.0.0.1:{page.port}/")[0] == 200
    finally:
        page.close()


def test_run_web_beyond_loopback_needs_a_token(clip: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import io

    token = "correct-horse-battery-staple-42"
    argv = ["run", "--stream", str(clip), "--no-realtime", "--no-display", "--web", "--web-host", "0.0.0.0",
            "--web-port", "0", "--ws-port", "0"]
    monkeypatch.delenv("RTMER_WS_TOKEN", raising=False)
    err = io.StringIO()
    assert main(argv, stdout=io.StringIO(), stderr=err) == EXIT_USAGE
    assert "web page host='0.0.0.0' is not a loopback address" in err.getvalue()
    monkeypatch.setenv("RTMER_WS_TOKEN", token)
    err = io.StringIO()
    assert main(argv, stdout=io.StringIO(), stderr=err) == EXIT_OK, err.getvalue()
    assert re.search(r"^rtmer: web page on http://0\.0\.0\.0:\d+/ \(add \?token=TOKEN", err.getvalue(), re.M)
    assert token not in err.getvalue()


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    if shutil.which("openssl") is None:
        pytest.skip("needs the openssl command to make a certificate")
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out",
                    str(cert), "-days", "2", "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost"],
                   check=True, capture_output=True, timeout=60)
    return cert, key


def test_with_a_certificate_the_page_is_served_over_https(certificate: tuple[Path, Path], clip: Path,
                                                          caplog: pytest.LogCaptureFixture) -> None:
    import io
    import logging
    import ssl

    cert, key = certificate
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(str(cert), str(key))
    page = WebPageServer("localhost", 0, ws_host="localhost", ws_port=8765, ws_tls=True, ssl_context=ctx)
    try:
        assert page.url == f"https://localhost:{page.port}/"
        client = ssl.create_default_context(cafile=str(cert))
        with urllib.request.urlopen(page.url + "config.json", timeout=10, context=client) as resp:
            assert json.loads(resp.read()) == {"ws": "wss://localhost:8765/"}
        with caplog.at_level(logging.DEBUG), pytest.raises(OSError):  # plain HTTP gets no page
            urllib.request.urlopen(f"http://localhost:{page.port}/", timeout=10).read()
    finally:
        page.close()
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]
    err = io.StringIO()  # the command line serves the page with the WebSocket server's certificate
    code = main(["run", "--stream", str(clip), "--no-realtime", "--no-display", "--web", "--web-port", "0",
                 "--ws-port", "0", "--ws-host", "localhost", "--web-host", "localhost", "--ws-cert", str(cert),
                 "--ws-key", str(key)], stdout=io.StringIO(), stderr=err)
    assert code == EXIT_OK, err.getvalue()
    assert re.search(r"^rtmer: web page on https://localhost:\d+/$", err.getvalue(), re.M), err.getvalue()


# ---- the page in headless Chromium ----------------------------------------------------------
class Browser:
    """Headless Chromium driven over the Chrome DevTools Protocol (one page, flat session)."""

    def __init__(self, profile: Path, *, width: int = 1280, height: int = 720) -> None:
        from websockets.sync.client import connect

        assert CHROMIUM is not None
        argv = [CHROMIUM, "--headless=new", "--remote-debugging-port=0", f"--user-data-dir={profile}",
                "--no-first-run", "--no-default-browser-check", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--disable-extensions", "--disable-gpu",
                "--disable-dev-shm-usage", "--hide-scrollbars", "--mute-audio", f"--window-size={width},{height}",
                "about:blank"]
        if os.geteuid() == 0:
            argv.insert(1, "--no-sandbox")  # Chromium refuses to run as root with its sandbox
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE, text=True)
        self.log: list[str] = []
        found = threading.Event()
        url: list[str] = []

        def read() -> None:
            assert self.proc.stderr is not None
            for line in self.proc.stderr:
                self.log.append(line)
                m = re.search(r"DevTools listening on (ws://\S+)", line)
                if m and not url:
                    url.append(m.group(1))
                    found.set()

        self._reader = threading.Thread(target=read, daemon=True)
        self._reader.start()
        if not found.wait(60):
            self.proc.kill()
            raise AssertionError("Chromium did not start:\n" + "".join(self.log))
        self._stack = ExitStack()
        self.ws = self._stack.enter_context(connect(url[0], max_size=None, open_timeout=30))
        self._id = 0
        self.events: list[dict[str, Any]] = []
        target = self.call("Target.createTarget", {"url": "about:blank"})["targetId"]
        self.session = self.call("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        for method in ("Runtime.enable", "Log.enable", "Page.enable"):
            self.call(method, session=self.session)
        self.call("Emulation.setDeviceMetricsOverride",
                  {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False}, session=self.session)

    def call(self, method: str, params: dict[str, Any] | None = None, *, session: str | None = None,
             timeout: float = 30.0) -> dict[str, Any]:
        self._id += 1
        ident = self._id
        msg: dict[str, Any] = {"id": ident, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = session
        self.ws.send(json.dumps(msg))
        deadline = time.monotonic() + timeout
        while True:
            got = json.loads(self.ws.recv(timeout=max(0.1, deadline - time.monotonic())))
            if got.get("id") == ident:
                if "error" in got:
                    raise AssertionError(f"{method}: {got['error']}")
                result: dict[str, Any] = got.get("result", {})
                return result
            self.events.append(got)

    def page(self, method: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        return self.call(method, params, session=self.session)

    def evaluate(self, expression: str) -> Any:
        res = self.page("Runtime.evaluate", {"expression": expression, "returnByValue": True, "awaitPromise": True})
        if "exceptionDetails" in res:
            raise AssertionError(f"{expression}: {res['exceptionDetails']}")
        return res["result"].get("value")

    def console(self) -> list[str]:
        """Everything the page logged: console calls, uncaught exceptions, browser log entries."""
        self.evaluate("0")  # a round trip: the events sent before its answer are read
        out = []
        for e in self.events:
            method, p = e.get("method"), e.get("params", {})
            if method == "Runtime.consoleAPICalled":
                out.append(f"console.{p.get('type')}: {[a.get('value', a.get('description')) for a in p['args']]}")
            elif method == "Runtime.exceptionThrown":
                out.append(f"exception: {p['exceptionDetails']}")
            elif method == "Log.entryAdded":
                out.append(f"log {p['entry'].get('level')}: {p['entry'].get('text')} {p['entry'].get('url', '')}")
        return out

    def screenshot(self, path: Path) -> bytes:
        data = base64.b64decode(self.page("Page.captureScreenshot", {"format": "png"})["data"])
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        return data

    def close(self) -> None:
        try:
            self._stack.close()
        finally:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
            self._reader.join(10)
            assert self.proc.stderr is not None
            self.proc.stderr.close()


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Browser]:
    if CHROMIUM is None:
        pytest.skip("chromium is not installed (tests/run.sh installs Debian's chromium)")
    b = Browser(tmp_path_factory.mktemp("chromium-profile"))
    try:
        yield b
    finally:
        b.close()


@pytest.fixture(scope="module")
def calm_then_energetic(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The shipped calm section, then the tense one: of the demo's sections the one the
    default model reads as most aroused (excited reads only a little above calm)."""
    rate = 22050
    audio = np.concatenate([section_audio("calm", rate)[: int(CALM_SECONDS * rate)],
                            section_audio("tense", rate)[: int(ENERGETIC_SECONDS * rate)]])
    path = tmp_path_factory.mktemp("web-audio") / "calm-then-energetic.wav"
    sf.write(path, audio, rate)
    return path


@pytest.fixture(scope="module")
def sad(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A second stream, so that the page has two trails in two colours."""
    path = tmp_path_factory.mktemp("web-audio") / "sad.wav"
    sf.write(path, np.tile(section_audio("sad", 16000), 2)[: int((CALM_SECONDS + ENERGETIC_SECONDS) * 16000)], 16000)
    return path


class Rtmer:
    """``rtmer run --web`` on a file, in real time, as a process; its stderr read as it comes."""

    def __init__(self, *streams: tuple[str, Path], ws_port: int = 0, web_port: int = 0) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "rtmer", "run", *(f"--stream={sid}=file:{path}" for sid, path in streams),
             "--web", "--no-display", "--ws-port", str(ws_port), "--web-port", str(web_port)],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, cwd=REPO,
        )
        self.lines: list[str] = []

        def read() -> None:
            assert self.proc.stderr is not None
            for line in self.proc.stderr:
                self.lines.append(line)

        self._reader = threading.Thread(target=read, daemon=True)
        self._reader.start()
        try:
            self.url = wait_for(lambda: self._find(r"^rtmer: web page on (http://\S+)$"), "rtmer's web page URL", 60)
            self.ws_port = int(wait_for(lambda: self._find(r"^rtmer: WebSocket on ws://127\.0\.0\.1:(\d+)\b"),
                                        "rtmer's WebSocket URL", 5))
        except BaseException:
            self.stop()
            raise
        self.web_port = int(self.url.rsplit(":", 1)[1].strip("/"))

    def _find(self, pattern: str) -> str | None:
        if self.proc.poll() is not None and not any(re.search(pattern, line) for line in self.lines):
            raise AssertionError(f"rtmer exited with {self.proc.returncode}:\n{''.join(self.lines)}")
        for line in self.lines:
            m = re.search(pattern, line.rstrip("\n"))
            if m:
                return m.group(1)
        return None

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
        try:
            code = self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            code = self.proc.wait(10)
        self._reader.join(10)
        assert self.proc.stderr is not None
        self.proc.stderr.close()
        return code


def snapshot(browser: Browser) -> dict[str, Any]:
    snap: dict[str, Any] = browser.evaluate("window.rtmerPage ? window.rtmerPage.snapshot() : null")
    return snap


def points(browser: Browser, stream: str = "main") -> list[dict[str, Any]]:
    snap = snapshot(browser)
    got: list[dict[str, Any]] = snap["streams"].get(stream, {}).get("points", []) if snap else []
    return got


def test_the_page_follows_rtmer_live(browser: Browser, calm_then_energetic: Path, sad: Path) -> None:
    """Updates arrive and are shown; the trail moves towards higher arousal after the switch
    from calm to energetic music; each stream has its colour; nothing is logged to the
    browser's console."""
    rtmer = Rtmer(("main", calm_then_energetic), ("deck2", sad))
    try:
        browser.events.clear()
        browser.page("Page.navigate", {"url": rtmer.url})
        wait_for(lambda: (snapshot(browser) or {}).get("connection") == "live", "the page to connect", 30)
        assert browser.evaluate("document.getElementById('status').dataset.state") == "live"
        first = wait_for(lambda: len(points(browser)) >= 2 and points(browser), "the first updates", 30)
        # the trail's calm part, then its energetic part (hops that end 3 s or more after the switch)
        wait_for(lambda: (p := points(browser)) and p[-1]["t"] >= CALM_SECONDS + 5.0, "the energetic section", 60)
        # the page's state and what it shows, read at one instant (one script run)
        snap, shown = browser.evaluate("""(() => {
            const card = document.querySelector('.stream[data-stream="main"]');
            const text = (c) => card.querySelector(c).textContent;
            return [window.rtmerPage.snapshot(),
                    {mood: text('.mood'), valence: text('.valence'), arousal: text('.arousal'),
                     valence_raw: text('.valence-raw'), arousal_raw: text('.arousal-raw'),
                     count: Number(document.getElementById('updates').textContent)}];
        })()""")
        done = snap["streams"]["main"]["points"]
        assert snap["model"] == "rtmer-default" and snap["hellos"] == 1 and len(done) > len(first)
        assert set(snap["streams"]) == {"main", "deck2"}
        assert snap["streams"]["main"]["colour"] != snap["streams"]["deck2"]["colour"]
        # every update arrived and was kept, none lost after the first
        assert snap["updates"] == sum(len(s["points"]) for s in snap["streams"].values())
        for stream in snap["streams"].values():
            seqs = [p["seq"] for p in stream["points"]]
            assert seqs == list(range(seqs[0], seqs[0] + len(seqs)))
        calm = [p["arousal"] for p in done if p["t"] <= CALM_SECONDS]
        energetic = [p["arousal"] for p in done if p["t"] >= CALM_SECONDS + 3.0]
        assert calm and energetic, done
        assert np.mean(energetic) > np.mean(calm) + 0.2 and done[-1]["arousal"] > max(calm) + 0.2, (calm, energetic)

        def fmt(x: float) -> str:
            return ("+" if x >= 0 else "\u2212") + f"{abs(x):.2f}"

        last = done[-1]
        assert shown == {"mood": last["mood"], "valence": fmt(last["valence"]), "arousal": fmt(last["arousal"]),
                         "valence_raw": fmt(last["valence_raw"]), "arousal_raw": fmt(last["arousal_raw"]),
                         "count": snap["updates"]}

        # the trail is drawn: pixels of the stream's colour on the circumplex
        coloured = browser.evaluate("""(() => {
            const c = document.getElementById('circumplex');
            const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
            const want = window.rtmerPage.snapshot().streams.main.colour;
            const [r, g, b] = [1, 3, 5].map((i) => parseInt(want.slice(i, i + 2), 16));
            let n = 0;
            for (let i = 0; i < d.length; i += 4)
                if (Math.abs(d[i] - r) < 24 && Math.abs(d[i + 1] - g) < 24 && Math.abs(d[i + 2] - b) < 24 && d[i + 3] > 200) n++;
            return n;
        })()""")
        assert coloured > 200, coloured
        browser.screenshot(ARTIFACTS / "web-page.png")
        assert browser.console() == []
    finally:
        code = rtmer.stop()
    assert code == 130, "".join(rtmer.lines)


def test_the_page_reconnects_when_rtmer_restarts(browser: Browser, calm_then_energetic: Path) -> None:
    first = Rtmer(("main", calm_then_energetic))
    ports = {"ws_port": first.ws_port, "web_port": first.web_port}
    try:
        browser.page("Page.navigate", {"url": first.url})
        wait_for(lambda: len(points(browser)) >= 1, "updates from the first rtmer", 30)
    finally:
        first.stop()
    wait_for(lambda: snapshot(browser)["connection"] == "reconnecting", "the page to notice rtmer is gone", 30)
    status = browser.evaluate("document.getElementById('status-text').textContent")
    assert "reconnecting" in status
    # the browser says so on its console (which shows that the console is watched)
    refused = wait_for(lambda: [line for line in browser.console() if "ERR_CONNECTION_REFUSED" in line],
                       "the browser's log of a refused connection", 30)
    assert "config.json" in refused[0], refused
    before = snapshot(browser)["updates"]
    second = Rtmer(("main", calm_then_energetic), **ports)
    try:
        wait_for(lambda: snapshot(browser)["connection"] == "live", "the page to reconnect", 30)
        wait_for(lambda: snapshot(browser)["updates"] > before, "updates from the second rtmer", 30)
        snap = snapshot(browser)
        assert snap["hellos"] == 2 and snap["url"] == f"ws://127.0.0.1:{ports['ws_port']}/"
    finally:
        second.stop()

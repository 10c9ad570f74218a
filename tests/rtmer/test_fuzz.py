"""Issue 9: property-based tests (Hypothesis) where input crosses a trust boundary.

The WebSocket messages a client sends, raw PCM on stdin, the config file and a model
file's metadata. The property each time: no traceback (only rtmer's own errors), the
documented exit code, and the other streams and clients unaffected.

Bounded so that CI stays fast (well under a minute together) and deterministic
(``derandomize``); ``RTMER_FUZZ_EXAMPLES=N`` runs N examples each for a deeper look.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import math
import os
import stat
import sys
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from websockets.sync.client import ClientConnection, connect

from conftest import build_tiny_model, music_like, tiny_metadata
from rtmer.app.cli import EXIT_INPUT_FAILED, EXIT_MODEL, EXIT_OK, EXIT_USAGE, main
from rtmer.errors import ConfigError, ModelContractError, RtmerError
from rtmer.core.model import ModelInfo, _check_contract
from rtmer.inputs.pcm import PcmInput
from rtmer.core.update import Update
from rtmer.outputs.websocket import MAX_FRAME_BYTES, WebSocketSink

_N = int(os.environ.get("RTMER_FUZZ_EXAMPLES", "0"))


def bounded(examples: int) -> Any:
    return settings(max_examples=_N or examples, deadline=None, derandomize=not _N, database=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=10), inner, max_size=5),
    max_leaves=20,
)
control_messages = st.fixed_dictionaries(
    {"type": st.sampled_from(["ping", "subscribe", "hello", "va", "", "PING"]) | st.text(max_size=10)},
    optional={"streams": json_values | st.lists(st.text(max_size=8), max_size=300), "id": json_values},
).map(json.dumps)
frames = (
    control_messages
    | json_values.map(json.dumps)
    | st.text(max_size=200)
    | st.binary(max_size=200)
    | st.integers(1, 3000).map(lambda n: "[" * n)
    | st.integers(1, 3000).map(lambda n: '{"a":' * n)
)


# ---- WebSocket messages --------------------------------------------------------------------------
@pytest.fixture(scope="module")
def server() -> Iterator[WebSocketSink]:
    sink = WebSocketSink(port=0, hello={"model": {"model_name": "fuzz"}, "streams": ["a", "b"]})
    try:
        yield sink
    finally:
        sink.close()


def _pong(c: ClientConnection, ident: str) -> None:
    """Read until the pong for ``ident`` (error replies may come first)."""
    for _ in range(1000):
        msg = json.loads(c.recv(timeout=10))
        if msg.get("type") == "pong" and msg.get("id") == ident:
            return
        assert msg.get("type") in ("error", "subscribed", "pong"), msg  # replies to the fuzzed frames
    raise AssertionError("no pong")


@bounded(60)
@given(batch=st.lists(frames, min_size=1, max_size=5))
def test_any_client_messages_leave_the_server_and_the_other_clients_working(
    server: WebSocketSink, batch: list[str | bytes], caplog: pytest.LogCaptureFixture
) -> None:
    url = f"ws://127.0.0.1:{server.port}/"
    with caplog.at_level(logging.DEBUG), connect(url, open_timeout=10) as fuzzer, \
            connect(url, open_timeout=10) as bystander:
        for c in (fuzzer, bystander):
            assert json.loads(c.recv(timeout=10))["type"] == "hello"
        for frame in batch:
            assert len(frame) < MAX_FRAME_BYTES
            fuzzer.send(frame)
        fuzzer.send('{"type": "ping", "id": "check"}')
        _pong(fuzzer, "check")  # the fuzzing client's own connection still works
        seq = server.stats.published
        server.publish(Update(stream="a", seq=seq, t=0.5, time=1.0, valence=0.1, arousal=0.2, valence_raw=0.1,
                              arousal_raw=0.2, mood="excited"))
        got = json.loads(bystander.recv(timeout=10))
        assert got["type"] == "va" and got["seq"] == seq  # the other client is unaffected
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]


# ---- raw PCM on stdin -------------------------------------------------------------------------------
@bounded(80)
@given(data=st.binary(max_size=20_000), fmt=st.sampled_from(["s16le", "s32le", "f32le"]),
       channels=st.integers(1, 4), chunk=st.integers(1, 5000))
def test_any_bytes_on_stdin_give_finite_samples_and_honest_counts(data: bytes, fmt: str, channels: int,
                                                                   chunk: int) -> None:
    r, w = os.pipe()
    src = os.fdopen(r, "rb")

    def feed() -> None:
        with os.fdopen(w, "wb") as f:
            for i in range(0, len(data), chunk):
                f.write(data[i:i + chunk])
                f.flush()

    writer = threading.Thread(target=feed)
    writer.start()
    try:
        inp = PcmInput("s", fmt=fmt, rate=16000, channels=channels, model_rate=16000, source=src)
        inp.start()
        samples, bad = 0, 0
        while not inp.finished:
            for b in inp.poll():
                assert np.isfinite(b.samples).all() and np.abs(b.samples).max(initial=0) <= np.float32(3.4e38)
                samples += b.samples.shape[0]
                bad += b.nonfinite_samples
        inp.close()
    finally:
        writer.join(30)
        src.close()
    width = {"s16le": 2, "s32le": 4, "f32le": 4}[fmt] * channels
    frames = len(data) // width
    assert samples == frames
    if fmt == "f32le":
        x = np.frombuffer(data[: frames * width], dtype="<f4")
        assert bad == int(np.count_nonzero(~np.isfinite(x)))
    else:
        assert bad == 0


# ---- the config file ----------------------------------------------------------------------------------
KEYS = ["model", "threads", "smoothing.kind", "smoothing.min_cutoff", "smoothing.beta", "smoothing.time_constant",
        "mood.neutral_radius", "mood.hysteresis", "engine.silence_db", "input.streams", "input.rate",
        "osc.targets", "osc.prefix", "websocket.port", "websocket.token", "websocket.max_clients", "run.seconds",
        "output.stdout", "nope", "smoothing.nope"]
toml_values = st.recursive(
    st.booleans() | st.integers(-(2**70), 2**70) | st.floats() | st.text(max_size=30),
    lambda inner: st.lists(inner, max_size=4),
    max_leaves=8,
)


def _toml(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf") if math.isinf(value) else repr(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return json.dumps(value)  # a TOML basic string is a JSON string for these
    return "[" + ", ".join(_toml(v) for v in value) + "]"


def _document(entries: dict[str, Any]) -> str:
    tables: dict[str, list[str]] = {}
    for key, value in entries.items():
        table, _, leaf = key.rpartition(".")
        tables.setdefault(table, []).append(f"{leaf} = {_toml(value)}")
    text = "\n".join(tables.pop("", []))
    for table, lines in tables.items():
        text += f"\n[{table}]\n" + "\n".join(lines)
    return text + "\n"


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("fuzz")
    clip = d / "clip.wav"
    sf.write(clip, music_like(1.0, 16000, seed=5), 16000, subtype="PCM_16")
    return {"model": build_tiny_model(d / "tiny.onnx"), "clip": clip, "dir": d}


@bounded(60)
@given(entries=st.dictionaries(st.sampled_from(KEYS), toml_values, max_size=6), junk=st.binary(max_size=40))
def test_any_config_file_gives_a_documented_exit_code(tiny: dict[str, Path], entries: dict[str, Any],
                                                      junk: bytes) -> None:
    cfg = tiny["dir"] / "fuzz.toml"
    text = _document(entries).encode()
    cfg.write_bytes(text + (junk if junk.startswith(b"#") else b""))
    out, err = io.StringIO(), io.StringIO()
    # the model is given as a flag, so that the file's own model key only says whether it resolves
    code = main(["analyze", str(tiny["clip"]), "--config", str(cfg), "--model", str(tiny["model"]), "-q"],
                stdout=out, stderr=err)
    assert code in (EXIT_OK, EXIT_INPUT_FAILED, EXIT_USAGE, EXIT_MODEL), err.getvalue()
    if code == EXIT_OK:
        assert out.getvalue().startswith("time_s,valence")
    else:
        assert err.getvalue().startswith("rtmer: "), err.getvalue()


# ---- model metadata ---------------------------------------------------------------------------------------
class _Arg:
    def __init__(self, name: str, width: int | str) -> None:
        self.name, self.type, self.shape = name, "tensor(float)", ["batch", width]


class _FakeSession:
    """What ``_check_contract`` reads from an onnxruntime session."""

    def __init__(self, meta: dict[str, str], hop: int | str, state: int | str) -> None:
        self._meta = meta
        self._inputs = [_Arg("audio", hop), _Arg("state", state)]
        self._outputs = [_Arg("va", 2), _Arg("state_out", state)]

    def get_modelmeta(self) -> Any:
        meta = self._meta

        class _M:
            custom_metadata_map = meta

        return _M()

    def get_inputs(self) -> list[_Arg]:
        return self._inputs

    def get_outputs(self) -> list[_Arg]:
        return self._outputs


numberish = st.one_of(
    st.integers(-10, 10**7).map(str), st.floats().map(str), st.text(max_size=12),
    st.sampled_from(["nan", "inf", "-0", "1e400", "16000.0", " 8000", "0x10", "9" * 5000]),
)


@bounded(300)
@given(overrides=st.dictionaries(st.sampled_from(list(tiny_metadata())), numberish, max_size=5),
       drop=st.lists(st.sampled_from(list(tiny_metadata())), max_size=2),
       hop=st.one_of(st.just(8000), st.integers(0, 10**6), st.just("n")),
       state=st.one_of(st.just(4), st.integers(0, 100)))
def test_any_model_metadata_is_accepted_whole_or_refused_as_a_model_error(
    overrides: dict[str, str], drop: list[str], hop: int | str, state: int
) -> None:
    meta = {**tiny_metadata(), **overrides}
    for key in drop:
        meta.pop(key, None)
    try:
        info = _check_contract("fuzz.onnx", _FakeSession(meta, hop, state))  # type: ignore[arg-type]
    except ModelContractError as exc:
        assert str(exc).startswith("model file 'fuzz.onnx': ")
        return
    assert isinstance(info, ModelInfo)
    assert 0 < info.sample_rate <= 768_000 and 0 < info.hop_samples and 0 < info.state_size
    assert math.isfinite(info.hop_seconds) and info.hop_seconds > 0
    assert info.hop_samples == hop and info.state_size == state


def test_a_config_error_is_a_config_error() -> None:
    """The fuzzers above rely on rtmer's errors being RtmerErrors; ConfigError is one."""
    assert issubclass(ConfigError, RtmerError) and ConfigError("x").args == ("x",)


# ---- analyze -o: every kind of path, and closed standard streams --------------------------------------
OUTPUT_KINDS = ["regular", "missing", "symlink", "dangling-symlink", "symlink-loop", "fifo", "char-device",
                "proc-pipe", "directory", "read-only-dir", "missing-folder", "socket"]


def _make_output(kind: str, root: Path) -> tuple[str, list[int]]:
    """A path of ``kind`` under ``root``, and descriptors to close afterwards (a FIFO's or a pipe's reader)."""
    import socket

    p = root / "out.csv"
    fds: list[int] = []
    if kind == "regular":
        p.write_text("old\n")
    elif kind == "symlink":
        (root / "t.csv").write_text("old\n")
        p.symlink_to("t.csv")
    elif kind == "dangling-symlink":
        p.symlink_to("t.csv")
    elif kind == "symlink-loop":
        p.symlink_to("out.csv")
    elif kind == "fifo":
        os.mkfifo(p)
        fds.append(os.open(p, os.O_RDONLY | os.O_NONBLOCK))
    elif kind == "char-device":
        try:
            os.mknod(p, 0o666 | stat.S_IFCHR, os.makedev(1, 3))
        except OSError as exc:
            pytest.skip(f"mknod is not permitted here ({exc})")
    elif kind == "proc-pipe":  # what `-o >(gzip > x.gz)` names: /dev/fd/63, a magic link under /proc
        r, w = os.pipe()
        os.set_blocking(r, False)
        fds += [r, w]
        p.symlink_to(f"/proc/self/fd/{w}")
    elif kind == "directory":
        p.mkdir()
    elif kind == "read-only-dir":
        (root / "ro").mkdir()
        (root / "ro").chmod(0o555)
        p = root / "ro" / "out.csv"
    elif kind == "missing-folder":
        p = root / "nope" / "out.csv"
    elif kind == "socket":
        s = socket.socket(socket.AF_UNIX)
        s.bind(str(p))
        fds.append(s.detach())
    return str(p), fds


def _drain(fd: int) -> bytes:
    got = b""
    with contextlib.suppress(BlockingIOError, OSError):
        while chunk := os.read(fd, 1 << 16):
            got += chunk
    return got


@bounded(40)
@given(kind=st.sampled_from(OUTPUT_KINDS), fmt=st.sampled_from(["csv", "json"]))
def test_any_output_path_is_written_as_what_it_is_or_refused(tiny: dict[str, Path], kind: str, fmt: str) -> None:
    """Never replaced when not a regular file; the analysis where it should be; a documented exit code."""
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        wav = root / "a.wav"
        sf.write(wav, music_like(1.5, 16000, seed=1), 16000)
        path, fds = _make_output(kind, root)
        before = os.lstat(path).st_mode if os.path.lexists(path) else None
        out, err = io.StringIO(), io.StringIO()
        try:
            code = main(["analyze", str(wav), "-o", path, "--to", fmt, "--model", str(tiny["model"])], stdout=out,
                        stderr=err)
            got = _drain(fds[0]) if kind in ("fifo", "proc-pipe") else b""
        finally:
            for fd in fds:
                with contextlib.suppress(OSError):
                    os.close(fd)
        text = err.getvalue()
        assert "Traceback" not in text and out.getvalue() == ""
        after = os.lstat(path).st_mode if os.path.lexists(path) else None
        if before is not None:
            assert stat.S_IFMT(after or 0) == stat.S_IFMT(before), f"{kind} was replaced"
        expected = {"regular": EXIT_OK, "missing": EXIT_OK, "symlink": EXIT_OK, "dangling-symlink": EXIT_OK,
                    "fifo": EXIT_OK, "char-device": EXIT_OK, "proc-pipe": EXIT_OK,
                    "read-only-dir": EXIT_OK if os.access(root / "ro", os.W_OK) else EXIT_USAGE}.get(kind, EXIT_USAGE)
        assert code == expected, text
        if code != EXIT_OK:
            assert text.startswith("rtmer: ") and "analysed" not in text  # refused before anything was analysed
            return
        written = got if got else (Path(path).read_bytes() if kind != "char-device" else b"")
        if kind != "char-device":
            doc = written.decode()
            n = len(json.loads(doc)["files"][0]["updates"]) if fmt == "json" else len(doc.splitlines()) - 1
            assert n == 3


@bounded(12)
@given(closed=st.sampled_from(["stdout", "stderr", "both"]), to_file=st.booleans())
def test_closed_standard_streams_give_a_documented_exit_code(tiny: dict[str, Path], closed: str,
                                                             to_file: bool) -> None:
    """`>&-` and `2>&-`: Python gives None for the closed stream."""
    with tempfile.TemporaryDirectory() as tmp:
        wav = Path(tmp) / "a.wav"
        sf.write(wav, music_like(1.0, 16000, seed=2), 16000)
        target = ["-o", str(Path(tmp) / "x.csv")] if to_file else []
        out, err = io.StringIO(), io.StringIO()
        saved = sys.stdout, sys.stderr
        sys.stdout = None if closed in ("stdout", "both") else out  # type: ignore[assignment]
        sys.stderr = None if closed in ("stderr", "both") else err  # type: ignore[assignment]
        try:
            code = main(["analyze", str(wav), *target, "--model", str(tiny["model"])])
        finally:
            sys.stdout, sys.stderr = saved
        if closed != "stderr" and not to_file:
            assert code == EXIT_USAGE  # nowhere for the analysis to go: said before anything is analysed
            assert closed == "both" or "stdout is closed" in err.getvalue()
        else:
            assert code == EXIT_OK, err.getvalue()
            assert "Traceback" not in err.getvalue()
            assert to_file or len(out.getvalue().splitlines()) == 3

"""Issue 9: faults that end a show or lose a batch, each reproduced and fixed.

Every test here failed on the main of before the fix (see each docstring for the
fault number in the issue's table). Subprocesses where signals, pipes or terminals
matter; waits are on conditions with generous deadlines, never on timings.
"""

from __future__ import annotations

import io
import json
import os
import pty
import re
import resource
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf

from conftest import StuckFile, build_tiny_model, music_like, rtmer_command, stderr_until
from rtmer.app.cli import EXIT_INPUT_FAILED, EXIT_INTERRUPTED, EXIT_MODEL, EXIT_OK, EXIT_USAGE, main
from rtmer.core.resample import MonoResampler
from rtmer.inputs.pcm import PcmInput
from rtmer.outputs.textout import NdjsonSink
from rtmer.core.update import Update

REPO = Path(__file__).resolve().parents[2]
RTMER = [sys.executable, "-m", "rtmer"]


def cli(*argv: str, stdout: Any = None) -> tuple[int, str, str]:
    out, err = stdout or io.StringIO(), io.StringIO()
    code = main(list(argv), stdout=out, stderr=err)
    return code, (out.getvalue() if isinstance(out, io.StringIO) else ""), err.getvalue()


def no_traceback(text: str) -> None:
    assert "Traceback" not in text and "Exception ignored" not in text, text


@pytest.fixture(scope="module")
def audio(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("hardening")
    clip = d / "clip.wav"  # 3.3 s, 7 hops
    x = music_like(3.3, 44100, seed=3)
    sf.write(clip, np.stack([x, x], axis=1), 44100, subtype="PCM_16")
    long = d / "long.wav"  # 120 s at 16 kHz mono: 240 hops, minutes when paced in real time
    sf.write(long, music_like(120.0, 16000, seed=4), 16000, subtype="PCM_16")
    trunc = d / "trunc.wav"  # the header promises 3.3 s, the file holds about half
    trunc.write_bytes(clip.read_bytes()[: 44 + 4 * 44100 * 17 // 10])
    for copy in ("long2", "long3"):
        os.link(long, d / f"{copy}.wav")
    ten_minutes = d / "ten_minutes.wav"  # outlasts a second of analysis, so a signal at 0.3 s lands inside main
    sf.write(ten_minutes, np.tile(sf.read(long, dtype="int16")[0], 5), 16000, subtype="PCM_16")
    return {"clip": clip, "long": long, "long2": d / "long2.wav", "long3": d / "long3.wav", "trunc": trunc,
            "ten_minutes": ten_minutes}


def pcm16(seconds: float, rate: int = 16000) -> bytes:
    return (music_like(seconds, rate, seed=9) * 32767).astype("<i2").tobytes()


# ---- 1: stdout blocks and never drops when the input is not live ----------------------------
def test_stdout_waits_for_a_slow_reader_when_the_input_is_not_live() -> None:
    """Fault 1: 1000 hops on stdin, a reader that starts late: every line arrives (was ~550)."""
    hops = 1000
    proc = subprocess.Popen(
        [*RTMER, "run", "--stream", "stdin", "--format", "s16le", "--rate", "16000", "--channels", "1",
         "--ndjson", "--no-display"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=REPO,
    )
    data = pcm16(hops * 0.5)

    def feed() -> None:
        assert proc.stdin is not None
        try:
            proc.stdin.write(data)
        finally:
            proc.stdin.close()

    writer = threading.Thread(target=feed, daemon=True)
    writer.start()
    writer.join(3.0)  # a reader that is late: rtmer (before the fix) raced ahead and dropped
    assert proc.stdout is not None and proc.stderr is not None
    out = proc.stdout.read()  # not communicate(): it would close stdin under the writing thread
    writer.join(60)
    err = proc.stderr.read()
    proc.wait(60)
    text = err.decode()
    assert proc.returncode == EXIT_OK, text
    seqs = [json.loads(line)["seq"] for line in out.decode().splitlines()]
    assert seqs == list(range(hops))
    assert f"stdout (NDJSON): {hops} updates, {hops} written, 0 dropped" in text
    no_traceback(text)


def _update(seq: int) -> Update:
    return Update(stream="s", seq=seq, t=0.5 * (seq + 1), time=1.0, valence=0.0, arousal=0.0, valence_raw=0.0,
                  arousal_raw=0.0, mood="neutral")


def test_a_live_stdout_queue_accounts_for_every_update_at_close() -> None:
    """Fault 1: lines still queued when close gave up were counted nowhere."""
    f = StuckFile()
    sink = NdjsonSink(f, queue_size=8)
    for i in range(50):
        sink.publish(_update(i))
    sink._out.close(timeout=0.2)  # the reader never comes back
    assert sink.published == 50
    assert sink.updates_written + sink.dropped == 50 and sink.dropped >= 41
    f.release.set()


def test_live_input_gets_a_dropping_queue_and_the_rest_write_inline() -> None:
    from rtmer.app.cli import _sinks
    from rtmer.app.config import DEFAULTS

    s = {**DEFAULTS, "stdout_format": "csv"}

    class _Info:
        hop_seconds = 0.5

    class _Engine:
        info = _Info()

    for live, queued in ((False, False), (True, True)):
        (sink,) = _sinks(s, engine=_Engine(), streams=["s1"], stdout=io.StringIO(), live=live)  # type: ignore[arg-type]
        assert (sink._out._queue is not None) is queued  # type: ignore[attr-defined]
        sink.close()


# ---- 2 and 13: an output whose reader goes away -----------------------------------------------
def test_analyze_to_a_stdout_that_closes_says_so_without_a_traceback(audio: dict[str, Path]) -> None:
    """Fault 2: `rtmer analyze ... --to json | head -1` ended in a BrokenPipeError traceback."""
    files = [str(audio[k]) for k in ("long", "long2", "long3", "clip")]  # ~190 KB of JSON: more than a pipe holds
    proc = subprocess.Popen([*RTMER, "analyze", *files, "--to", "json"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=REPO)
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == b"{"
    proc.stdout.close()  # as head -1 does
    _, err = proc.communicate(timeout=120)
    text = err.decode()
    assert proc.returncode == EXIT_INPUT_FAILED, text
    assert "stdout was closed before the analysis was all written" in text
    no_traceback(text)


def test_run_stops_when_its_only_output_loses_its_reader(audio: dict[str, Path]) -> None:
    """Fault 13: `rtmer run ... --csv | head -2` kept running (for the whole file) and exited 0."""
    proc = subprocess.Popen([*RTMER, "run", "--stream", str(audio["long"]), "--csv", "--no-display"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=REPO)
    assert proc.stdout is not None
    proc.stdout.readline()
    proc.stdout.readline()
    proc.stdout.close()
    _, err = proc.communicate(timeout=60)  # the file lasts 120 s in real time
    text = err.decode()
    assert proc.returncode == EXIT_INPUT_FAILED, text
    assert "FAILED output stdout: stopped after" in text and "the run stopped" in text
    no_traceback(text)


class _GoneStdout(io.StringIO):
    def write(self, s: str) -> int:
        raise BrokenPipeError(32, "Broken pipe")


def test_other_outputs_go_on_when_stdout_goes(audio: dict[str, Path]) -> None:
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.bind(("127.0.0.1", 0))
    try:
        code, _, err = cli("run", "--stream", str(audio["clip"]), "--no-realtime", "--csv", "--no-display",
                           "--osc", f"127.0.0.1:{udp.getsockname()[1]}", stdout=_GoneStdout())
        assert code == EXIT_INPUT_FAILED, err
        assert "the other outputs went on" in err
        assert re.search(r"osc 127\.0\.0\.1:\d+: 7 sent, 0 failed", err), err
    finally:
        udp.close()


# ---- 5 and 6: models that break at run time -----------------------------------------------------
def _edit_model(src: Path, dst: Path, how: str) -> Path:
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    m = onnx.load(str(src))
    g = m.graph
    if how == "wide":  # state_out one column wider than declared, in a way shape inference cannot see
        for n in g.node:
            if "state_out" in n.output:
                n.output[0] = "so0"
        g.initializer.extend([numpy_helper.from_array(np.array([0], dtype=np.int64), "z0"),
                              numpy_helper.from_array(np.array([1.0], dtype=np.float32), "onef")])
        g.node.extend([
            helper.make_node("Mul", ["audio", "half"], ["a0"]),
            helper.make_node("ReduceMax", ["a0"], ["amax"], keepdims=0),
            helper.make_node("Mul", ["amax", "eps"], ["tiny"]),
            helper.make_node("Add", ["tiny", "onef"], ["kf"]),
            helper.make_node("Cast", ["kf"], ["k"], to=TensorProto.INT64),
            helper.make_node("Slice", ["so0", "z0", "k", "axis1"], ["col"]),
            helper.make_node("Concat", ["so0", "col"], ["state_out"], axis=1),
        ])
    else:  # "fail": a Reshape that fails on every call
        for n in g.node:
            for i, x in enumerate(n.input):
                if x == "audio":
                    n.input[i] = "audio_r"
        g.initializer.extend([numpy_helper.from_array(np.array([-1, 7], dtype=np.int64), "shp7"),
                              numpy_helper.from_array(np.array([-1, 8000], dtype=np.int64), "shp")])
        g.node.insert(0, helper.make_node("Reshape", ["audio", "shp7"], ["a7"]))
        g.node.insert(1, helper.make_node("Reshape", ["a7", "shp"], ["audio_r"]))
    onnx.save(m, str(dst))
    return dst


@pytest.fixture(scope="module")
def broken_models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("broken")
    ok = build_tiny_model(d / "ok.onnx")
    return {
        "wide": _edit_model(ok, d / "wide.onnx", "wide"),
        "fail": _edit_model(ok, d / "fail.onnx", "fail"),
        "nan_hop": build_tiny_model(d / "nan_hop.onnx", metadata={"hop_seconds": "nan"}),
    }


def test_a_model_that_breaks_the_contract_at_run_time_is_a_model_error(
    audio: dict[str, Path], broken_models: dict[str, Path]
) -> None:
    """Fault 5: state_out wider than declared: a ValueError traceback, exit 1."""
    proc = subprocess.run([*RTMER, "analyze", str(audio["clip"]), "--model", str(broken_models["wide"])],
                          capture_output=True, text=True, cwd=REPO, timeout=120)
    assert proc.returncode == EXIT_MODEL, proc.stderr
    assert re.search(r"model error: .*output 'state_out' is float32 of shape \(1, 5\), but the model declares "
                     r"float32 \[batch, 4\]", proc.stderr), proc.stderr
    no_traceback(proc.stderr)


@pytest.mark.parametrize("which", ["clip", "long"])
def test_a_model_that_fails_on_every_hop_is_a_model_error_logged_once(
    audio: dict[str, Path], broken_models: dict[str, Path], which: str
) -> None:
    """Fault 6: exit 0, and 8 log lines per hop. A short file fails at its end, a long one after 10 calls."""
    proc = subprocess.run([*RTMER, "analyze", str(audio[which]), "--model", str(broken_models["fail"])],
                          capture_output=True, text=True, cwd=REPO, timeout=120)
    assert proc.returncode == EXIT_MODEL, proc.stderr
    assert proc.stdout == ""
    expected = "all 7 hops failed" if which == "clip" else "every hop of the last 10 model calls failed"
    assert expected in proc.stderr
    assert proc.stderr.count("WARNING") == 1 and "(logged once)" in proc.stderr
    assert "[E:onnxruntime" not in proc.stderr  # onnxruntime's own log lines are off: rtmer reports it
    assert len(proc.stderr.splitlines()) <= 3, proc.stderr  # the warning, the error (and the summary)
    no_traceback(proc.stderr)


def test_a_model_whose_hop_seconds_is_nan_is_a_model_error(
    audio: dict[str, Path], broken_models: dict[str, Path]
) -> None:
    """Fault 15: hop_seconds=nan passed the contract check and was then reported as a config error (2)."""
    code, _, err = cli("analyze", str(audio["clip"]), "--model", str(broken_models["nan_hop"]))
    assert code == EXIT_MODEL and "hop_seconds='nan' must be a positive number [s]" in err, err


# ---- 8 and 10: config files and limits ----------------------------------------------------------
@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b"[input]\nstreams = [1, 2]\n", r"input\.streams=\[1, 2\] must be a list of strings"),
        (b'model = "\xff\xfe"\n', r"not UTF-8 text \(byte \d+\)"),
        (b'[smoothing]\nkind = "ema"\ntime_constant = 1e300\n', r"time_constant=1e\+300 must be a positive number"),
        (b"[smoothing]\nmin_cutoff = nan\n", r"smoothing\.min_cutoff=nan must be a finite number"),
        (b"[osc]\ntargets = [[\"127.0.0.1:9000\"]]\n", r"osc\.targets=.* must be a list of strings"),
        (b"a = " + b"[" * 3000 + b"]" * 3000 + b"\n", r"not valid TOML"),
        (b"threads = 100000\n", r"threads=100000 must be an integer in 1\.\.64"),
    ],
)
def test_bad_config_files_exit_2_with_a_message(audio: dict[str, Path], tmp_path: Path, content: bytes,
                                               expected: str) -> None:
    """Fault 8: these crashed with AttributeError, UnicodeDecodeError, ZeroDivisionError (and RecursionError)."""
    cfg = tmp_path / "rtmer.toml"
    cfg.write_bytes(content)
    code, out, err = cli("analyze", str(audio["clip"]), "--config", str(cfg))
    assert code == EXIT_USAGE, err
    assert re.search(expected, err), err
    assert out == ""


@pytest.mark.parametrize("value", ["nan", "inf", "-1", "0"])
def test_seconds_must_be_a_positive_finite_number(audio: dict[str, Path], value: str) -> None:
    """Fault 10: --seconds nan never stopped."""
    code, _, err = cli("run", "--stream", str(audio["clip"]), "--no-realtime", "--seconds", value, "--no-display")
    assert code == EXIT_USAGE and f"seconds={float(value)!r} must be a positive number [s]" in err, err


def test_threads_are_capped(audio: dict[str, Path]) -> None:
    """Fault 10: --threads 10000 ran on for minutes at 657 MB."""
    code, _, err = cli("analyze", str(audio["clip"]), "--threads", "10000")
    assert code == EXIT_USAGE and "threads=10000 must be an integer in 1..64" in err


# ---- 9: analyze opens a bounded number of files -------------------------------------------------
def test_analyze_runs_under_a_small_open_file_limit(audio: dict[str, Path], tmp_path: Path) -> None:
    """Fault 9 (fixed before this issue's work: 16 files at a time): 150 files under `ulimit -n 64`."""
    one = tmp_path / "one.wav"
    sf.write(one, music_like(0.6, 16000, seed=1), 16000, subtype="PCM_16")
    files = []
    for i in range(150):
        f = tmp_path / f"f{i:03d}.wav"
        os.link(one, f)
        files.append(str(f))

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (64, 64))

    proc = subprocess.run([*RTMER, "analyze", *files, "--output-dir", str(tmp_path / "out")], capture_output=True,
                          text=True, cwd=REPO, timeout=300, preexec_fn=limit)
    assert proc.returncode == EXIT_OK, proc.stderr[-2000:]
    assert len(list((tmp_path / "out").iterdir())) == 150


# ---- 11: the terminal stays blocking -------------------------------------------------------------
def test_stdin_on_a_terminal_is_left_blocking() -> None:
    """Fault 11: `rtmer run --stream -` on a tty left it O_NONBLOCK; the next `cat` failed with EAGAIN."""
    master, slave = pty.openpty()
    try:
        proc = subprocess.Popen([*RTMER, "run", "--stream", "-", "--format", "s16le", "--ndjson", "--no-display"],
                                stdin=slave, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=REPO)
        assert proc.stderr is not None
        assert b"input s1 <- stdin" in proc.stderr.readline() + proc.stderr.readline()  # it is reading
        os.write(master, b"\x04")  # Ctrl-D: end of input
        _, err = proc.communicate(timeout=60)
        assert proc.returncode == EXIT_OK, err.decode()
        assert os.get_blocking(slave), "the terminal was left non-blocking"
    finally:
        os.close(master)
        os.close(slave)


def test_pcm_input_never_changes_the_pipes_blocking_mode() -> None:
    r, w = os.pipe()
    src = os.fdopen(r, "rb")
    try:
        inp = PcmInput("s", fmt="s16le", rate=16000, channels=1, model_rate=16000, source=src)
        inp.start()
        assert inp.poll() == []  # nothing there yet: no block, no wait
        os.write(w, np.zeros(100, "<i2").tobytes())
        got = inp.poll()
        assert sum(b.samples.shape[0] for b in got) == 100
        assert os.get_blocking(r)
        inp.close()
    finally:
        os.close(w)
        src.close()


# ---- 12: signals ------------------------------------------------------------------------------------
def _started_run(extra: list[str], *, ignoring: tuple[signal.Signals, ...] = ()) -> subprocess.Popen[bytes]:
    return subprocess.Popen([*rtmer_command(ignoring=ignoring), "run", "--stream", "stdin", "--format", "s16le", "--rate", "16000",
                             "--channels", "1", "--ndjson", "--no-display", *extra],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=REPO)


@pytest.mark.parametrize("sig", [signal.SIGHUP, signal.SIGTERM])
def test_sighup_and_sigterm_stop_run_cleanly_with_a_summary(sig: signal.Signals) -> None:
    """Fault 12: SIGHUP killed `run` with no summary and no flush."""
    proc = _started_run([])
    try:
        assert proc.stdin is not None and proc.stdout is not None
        proc.stdin.write(pcm16(2.0))  # 4 hops, and stdin stays open: the run goes on
        proc.stdin.flush()
        lines = [proc.stdout.readline() for _ in range(4)]
        assert all(lines)
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    text = err.decode()
    assert proc.returncode == EXIT_INTERRUPTED, text
    assert "4 updates (interrupted)" in text and "stdout (NDJSON): 4 updates, 4 written, 0 dropped" in text
    no_traceback(text)


def test_sigterm_stops_analyze_and_keeps_the_finished_files(audio: dict[str, Path], tmp_path: Path) -> None:
    """Fault 12 (fixed before this issue's work): SIGTERM killed analyze silently."""
    out_dir = tmp_path / "out"
    proc = subprocess.Popen([*RTMER, "analyze", str(audio["clip"]), "-", "--format", "s16le", "--rate", "16000",
                             "--channels", "1", "--output-dir", str(out_dir), "-v"],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=REPO)
    try:
        assert proc.stdin is not None and proc.stderr is not None
        proc.stdin.write(pcm16(1.0))
        proc.stdin.flush()
        seen = stderr_until(proc, f"finished {audio['clip']}")
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    text = "".join(seen) + err.decode()
    assert proc.returncode == EXIT_INTERRUPTED, text
    assert sorted(p.name for p in out_dir.iterdir()) == ["clip.wav.csv"]
    assert "1 of 2 files not done" in text
    no_traceback(text)


_EARLY = """
import os, signal, sys, threading, time
from rtmer.app.cli import main
# SIGINT as in a terminal's foreground job: a script's background job (`cmd &`, as CI may run
# the suite) inherits it ignored, and then a signal sent before rtmer takes it is dropped
signal.signal(signal.SIGINT, signal.default_int_handler)
delay = float(sys.argv[1])
timer = threading.Timer(delay, lambda: os.kill(os.getpid(), signal.SIGINT))
timer.daemon = True  # the harness's thread must not keep the interpreter from exiting
timer.start()
raise SystemExit(main(sys.argv[2:]))
"""


@pytest.mark.parametrize("delay", [0.01, 0.05, 0.15, 0.3])
def test_ctrl_c_while_the_command_is_loading_is_no_traceback(audio: dict[str, Path], delay: float) -> None:
    """Fault 12: SIGINT in the first 0.3 s printed a traceback from an import (or onnxruntime's
    'ImportError: initialization failed'). The signal lands anywhere in main: parsing, imports,
    model loading, the analysis."""
    proc = subprocess.run([sys.executable, "-c", _EARLY, str(delay), "analyze", str(audio["ten_minutes"])],
                          capture_output=True, text=True, cwd=REPO, timeout=120)
    no_traceback(proc.stderr)
    assert "ImportError" not in proc.stderr
    assert proc.returncode == EXIT_INTERRUPTED, proc.stderr  # the signal came while main ran
    assert "interrupted" in proc.stderr


def test_the_command_line_module_loads_without_numpy_or_onnxruntime() -> None:
    """Fault 12: the console script's `from rtmer.app.cli import main` took 0.3 s of imports before
    main() could handle a Ctrl-C; those imports now happen inside main."""
    code = ("import sys, rtmer.app.cli; heavy = [m for m in ('numpy', 'onnxruntime', 'websockets', 'soxr') "
            "if m in sys.modules]; print(heavy)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=60)
    assert proc.returncode == 0 and proc.stdout.strip() == "[]", proc.stdout + proc.stderr


def test_a_signal_during_model_loading_waits_for_the_clean_stop(
    audio: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Deterministic form of the above: SIGINT arrives while the model loads (recorded, then handled)."""
    import rtmer.core.model

    real = rtmer.core.model.StreamingModel.__init__

    def loading(self: Any, *args: Any, **kwargs: Any) -> None:
        # to the main thread: in the rtmer process it is the only one that could take it (every
        # other thread starts with the signals blocked); here pytest may have others
        signal.pthread_kill(threading.main_thread().ident or 0, signal.SIGINT)
        real(self, *args, **kwargs)

    monkeypatch.setattr(rtmer.core.model.StreamingModel, "__init__", loading)
    code, out, err = cli("analyze", str(audio["clip"]))
    assert code == EXIT_INTERRUPTED, err
    assert "interrupted; 1 of 1 files not done" in err and out == ""


# ---- 14: truncated files --------------------------------------------------------------------------
def test_a_truncated_file_is_analysed_as_far_as_it_goes_with_a_warning(audio: dict[str, Path]) -> None:
    """Fault 14: exit 0, no word."""
    code, out, err = cli("analyze", str(audio["trunc"]), str(audio["clip"]))
    assert code == EXIT_INPUT_FAILED, err
    assert re.search(r"WARNING file .*trunc\.wav: is truncated: its header promises 3\.30 s of audio, the file "
                     r"holds 1\.70 s", err), err
    rows = out.splitlines()[1:]
    assert sum(1 for r in rows if "trunc.wav" in r) == 4 and sum(1 for r in rows if "clip.wav" in r) == 7
    code, out, err = cli("run", "--stream", str(audio["trunc"]), "--no-realtime", "--ndjson", "--no-display")
    assert code == EXIT_INPUT_FAILED and "is truncated" in err and len(out.splitlines()) == 4


# ---- 15 and 16: messages and counters -------------------------------------------------------------
def test_a_folder_is_named_as_a_folder(tmp_path: Path) -> None:
    """Fault 15 (fixed before this issue's work)."""
    code, _, err = cli("analyze", str(tmp_path))
    assert code == EXIT_INPUT_FAILED and "is not a file" in err and "is a folder" in err, err


def test_one_nan_sample_counts_as_one(tmp_path: Path) -> None:
    """Fault 16: one NaN at 44.1 kHz counted as 544 (the resampler spread it)."""
    x = np.full(44100 * 2, 0.1, dtype="<f4")
    x[1000] = np.nan
    raw = tmp_path / "nan.f32"
    raw.write_bytes(x.tobytes())
    with raw.open("rb") as f:
        proc = subprocess.run([*RTMER, "run", "--stream", "-", "--format", "f32le", "--rate", "44100",
                               "--channels", "1", "--ndjson", "--no-display"], stdin=f, capture_output=True,
                              text=True, cwd=REPO, timeout=120)
    assert proc.returncode == EXIT_OK, proc.stderr
    assert "1 non-finite samples" in proc.stderr, proc.stderr
    assert all(json.loads(line)["raw"]["valence"] is not None for line in proc.stdout.splitlines())


def test_the_resampler_replaces_and_counts_non_finite_input_samples() -> None:
    rs = MonoResampler(in_rate=44100, out_rate=16000, channels=[1])
    frames = np.zeros((4410, 2), np.float32)
    frames[10, 0] = np.nan  # not a picked channel: not counted
    frames[20, 1] = np.inf
    frames[30, 1] = np.nan
    out = rs.process(frames)
    assert np.isfinite(out).all() and rs.take_nonfinite() == 2 and rs.take_nonfinite() == 0


def test_osc_to_a_closed_port_counts_every_datagram_as_failed(audio: dict[str, Path]) -> None:
    """Fault 16 (fixed before this issue's work): half were counted as sent."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again below: nothing listens there
    code, _, err = cli("run", "--stream", str(audio["clip"]), "--no-realtime", "--osc", f"127.0.0.1:{port}",
                       "--no-display")
    assert code == EXIT_INPUT_FAILED, err  # every datagram failed: not a success
    assert f"osc 127.0.0.1:{port}: 0 sent, 7 failed" in err, err


@pytest.fixture
def _no_leftover_handlers() -> Iterator[None]:
    before = signal.getsignal(signal.SIGINT)
    yield
    assert signal.getsignal(signal.SIGINT) is before


def test_handlers_and_the_signal_mask_are_restored(audio: dict[str, Path], _no_leftover_handlers: None) -> None:
    code, _, err = cli("analyze", str(audio["clip"]))
    assert code == EXIT_OK, err
    assert signal.SIGINT not in signal.pthread_sigmask(signal.SIG_BLOCK, [])


def test_child_processes_do_not_inherit_blocked_signals(audio: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    """No signal is blocked while inputs open (ffmpeg is a child, and would inherit the mask): rtmer
    records them with a handler instead, which a child's exec resets to the default."""
    import rtmer.inputs.decode

    seen: list[set[int]] = []
    real = rtmer.inputs.decode.open_audio

    def opening(*args: Any, **kwargs: Any) -> Any:
        seen.append({int(s) for s in signal.pthread_sigmask(signal.SIG_BLOCK, [])})
        return real(*args, **kwargs)

    monkeypatch.setattr(rtmer.inputs.decode, "open_audio", opening)
    code, _, err = cli("run", "--stream", str(audio["clip"]), "--no-realtime", "--ndjson", "--no-display")
    assert code == EXIT_OK, err
    assert seen and not seen[0] & {signal.SIGINT, signal.SIGTERM, signal.SIGHUP}


# ---- the second hardening issue: a process's start and end (rows 5, 6, 8, 13) ----------------------
@pytest.mark.parametrize("sig", [signal.SIGHUP, signal.SIGINT])
def test_a_signal_the_parent_ignores_stays_ignored(sig: signal.Signals) -> None:
    """Row 5: under nohup (SIGHUP ignored) closing the SSH session still ended the show, as rtmer
    put its handler over the inherited SIG_IGN. SIGINT likewise: a shell without job control
    ignores it for a background job, so that a Ctrl-C meant for the script does not stop it."""
    proc = _started_run([], ignoring=(sig,))
    try:
        assert proc.stdin is not None and proc.stdout is not None
        proc.stdin.write(pcm16(2.0))
        proc.stdin.flush()
        assert all(proc.stdout.readline() for _ in range(4))  # running, past every handler's installation
        proc.send_signal(sig)
        proc.stdin.write(pcm16(1.0))
        out, err = proc.communicate(timeout=60)  # closes stdin: the input ends
    finally:
        if proc.poll() is None:
            proc.kill()
    text = err.decode()
    assert proc.returncode == EXIT_OK, text
    assert "6 updates" in text and "interrupted" not in text and len(out.splitlines()) == 2
    no_traceback(text)


_SIGNAL_AT = """
import os, runpy, signal, sys, threading
for sig in (signal.SIGTERM, signal.SIGHUP):  # as in a terminal's foreground job
    signal.signal(sig, signal.SIG_DFL)
signal.signal(signal.SIGINT, signal.default_int_handler)  # what Python sets when it finds SIGINT at its default
sig, delay = int(sys.argv[1]), float(sys.argv[2])
sys.argv = ["rtmer", *sys.argv[3:]]
timer = threading.Timer(delay, os.kill, (os.getpid(), sig))
timer.daemon = True
timer.start()
runpy.run_module("rtmer", run_name="__main__", alter_sys=True)  # python -m rtmer, from here on
"""


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP, signal.SIGINT])
# From 0.05 s: an earlier signal can, on a loaded machine, come before Python reaches rtmer's first
# line, which no program can help; the moment the handlers are in is tested below, by /proc.
@pytest.mark.parametrize("delay", [0.05, 0.1, 0.2, 0.5])
def test_a_signal_while_run_starts_stops_it_cleanly(audio: dict[str, Path], sig: signal.Signals, delay: float) -> None:
    """Row 6: SIGTERM or SIGHUP from about 0.06 to 0.2 s killed `run` with the default action
    (143, 129) and no summary; SIGINT in its first 0.03 s printed a KeyboardInterrupt traceback
    from an import. `delay` counts from `python -m rtmer` starting to import rtmer: the signal
    lands in the imports, the parsing, the model loading, the opening of the input or the run."""
    proc = subprocess.run([sys.executable, "-c", _SIGNAL_AT, str(int(sig)), str(delay), "run", "--stream",
                           str(audio["long"]), "--ndjson", "--no-display"],
                          capture_output=True, text=True, cwd=REPO, timeout=120)
    assert proc.returncode == EXIT_INTERRUPTED, proc.stderr
    assert "updates (interrupted)" in proc.stderr  # the summary
    no_traceback(proc.stderr)


def _signals_caught(pid: int) -> int:
    """The mask of signals that process ``pid`` has handlers for (Linux's /proc)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("SigCgt:"):
            return int(line.split()[1], 16)
    return 0


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs Linux's /proc")
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP, signal.SIGINT])
def test_a_signal_the_moment_the_handlers_are_in_stops_the_run_cleanly(
    audio: dict[str, Path], sig: signal.Signals
) -> None:
    """Row 6 at 0 s: sent as soon as the process has a SIGTERM handler (its first moment a
    program could take one), while the heavy imports are still to come."""
    proc = subprocess.Popen([*rtmer_command(), "run", "--stream", str(audio["long"]), "--ndjson", "--no-display"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=REPO)
    try:
        while not _signals_caught(proc.pid) >> (signal.SIGTERM - 1) & 1:
            assert proc.poll() is None, "rtmer ended before it took SIGTERM"
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    text = err.decode()
    assert proc.returncode == EXIT_INTERRUPTED, text
    assert "updates (interrupted)" in text
    no_traceback(text)


@pytest.mark.parametrize(("redirect", "extra", "code", "says"), [
    ("<&-", ["--stream", "stdin"], EXIT_INPUT_FAILED, "stream s1 reads stdin, which is closed"),
    (">&-", ["--ndjson"], EXIT_USAGE, "writes every update to stdout, which is closed"),
    (">&-", ["--csv", "--display"], EXIT_USAGE, "output.stdout='csv' (--csv) writes every update to stdout"),
    (">&-", ["--display"], EXIT_OK, "7 updates"),  # the display goes to stderr then
])
def test_a_closed_standard_stream_is_a_clear_error(
    audio: dict[str, Path], redirect: str, extra: list[str], code: int, says: str
) -> None:
    """Row 8: `rtmer run --stream stdin <&-` and `rtmer run --ndjson >&-` ended in a traceback
    (AttributeError: 'NoneType' object has no attribute 'buffer')."""
    argv = [*RTMER, "run", "--no-realtime", *(extra if "stdin" in extra else ["--stream", str(audio["clip"]), *extra])]
    proc = subprocess.run(["sh", "-c", f'exec "$@" {redirect}', "sh", *argv],
                          capture_output=True, text=True, cwd=REPO, timeout=120)
    assert proc.returncode == code, proc.stderr
    assert says in proc.stderr
    no_traceback(proc.stderr)
    if "--display" in extra and code == EXIT_OK:
        assert proc.stderr.count(" t=") == 7  # the display's lines


def test_a_closed_stderr_leaves_the_output_whole(audio: dict[str, Path]) -> None:
    """Row 8: with stderr closed (2>&-) there is nowhere to say anything, and the run goes on."""
    argv = [*RTMER, "run", "--no-realtime", "--stream", str(audio["clip"]), "--ndjson"]
    proc = subprocess.run(["sh", "-c", 'exec "$@" 2>&-', "sh", *argv], capture_output=True, text=True, cwd=REPO,
                          timeout=120)
    assert proc.returncode == EXIT_OK
    assert len(proc.stdout.splitlines()) == 7


def test_control_characters_in_names_reach_the_terminal_escaped(audio: dict[str, Path], tmp_path: Path) -> None:
    """Row 13: a model's name (its ONNX metadata) and a file's name went to the terminal raw,
    where an escape sequence can rewrite the screen or the window's title."""
    model = build_tiny_model(tmp_path / "m.onnx", metadata={"model_name": "tiny\x1b]0;pwned\x07\x1b[2J"})
    clip = tmp_path / "clip\x1b[31m.wav"
    clip.write_bytes(audio["clip"].read_bytes())
    proc = subprocess.run([*RTMER, "run", "--model", str(model), "--stream", str(clip), "--no-realtime",
                           "--display"], capture_output=True, cwd=REPO, timeout=120)
    err = proc.stderr.decode()
    assert proc.returncode == EXIT_OK, err
    assert b"\x1b" not in proc.stderr and b"\x07" not in proc.stderr and b"\x1b" not in proc.stdout
    assert "model tiny\\x1b]0;pwned\\x07\\x1b[2J 0" in err and "clip\\x1b[31m.wav" in err


@pytest.mark.parametrize(("realtime", "seconds", "hops"), [
    (True, 1.0, 2), (True, 2.5, 5), (True, 3.2, 6), (False, 0.3, 0), (False, 1.2, 2), (False, 3.0, 6),
])
def test_seconds_gives_every_hop_of_that_much_audio(
    audio: dict[str, Path], realtime: bool, seconds: float, hops: int
) -> None:
    """Row 13: `--seconds 5` gave 9 updates, not 10. The clock started before the input, and the
    resampler (a 44.1 kHz file) holds back a few milliseconds, so the hop ending at 5 s came
    just after the run had stopped. Unpaced, `--seconds` stopped on the wall clock instead."""
    pacing = "--realtime" if realtime else "--no-realtime"
    code, out, err = cli("run", "--stream", str(audio["clip"]), pacing, "--seconds", str(seconds), "--ndjson",
                         "--no-display")
    assert code == EXIT_OK, err
    assert [json.loads(line)["t"] for line in out.splitlines()] == [0.5 * (i + 1) for i in range(hops)]
    assert f"{hops} updates" in err and "interrupted" not in err


@pytest.mark.parametrize("spec", ["my deck={clip}", "=file:{clip}", "deck 2=stdin"])
def test_a_stream_id_that_is_not_one_is_named(audio: dict[str, Path], spec: str) -> None:
    """Row 13: `--stream 'my deck=song.wav'` said "no such file 'my deck=song.wav'"."""
    text = spec.format(clip=audio["clip"])
    code, _, err = cli("run", "--stream", text, "--no-realtime", "--no-display")
    ident = text.partition("=")[0]
    assert code == EXIT_USAGE, err
    assert f"the stream id {ident!r} (before '=') may hold only letters, digits, '_', '.' and '-'" in err


def test_a_stream_id_that_is_not_one_is_named_in_a_config_file(audio: dict[str, Path], tmp_path: Path) -> None:
    config = tmp_path / "rtmer.toml"
    config.write_text(f'[input]\nstreams = ["my deck={audio["clip"]}"]\n')
    code, _, err = cli("run", "--config", str(config), "--no-realtime", "--no-display")
    assert code == EXIT_USAGE and "the stream id 'my deck'" in err, err

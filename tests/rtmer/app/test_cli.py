from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import soundfile as sf

from conftest import CollectingSink, cli, free_port, music_like, read_csv, rtmer_command
from rtmer.app.cli import EXIT_DEVICE, EXIT_INPUT_FAILED, EXIT_MODEL, EXIT_OK, EXIT_USAGE, main

REPO = Path(__file__).resolve().parents[3]
VALUES = ("valence", "arousal", "valence_raw", "arousal_raw")


def test_analyze_writes_csv_with_hop_end_times(clip: Path) -> None:
    code, out, err = cli("analyze", str(clip))
    assert code == EXIT_OK, err
    assert out.splitlines()[0].startswith("time_s,valence,arousal,valence_raw,arousal_raw")
    rows = read_csv(out)
    assert [float(r["time_s"]) for r in rows] == [0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 3.5]
    assert {r["stream"] for r in rows} == {str(clip)}
    assert all(-1 <= float(r[k]) <= 1 for r in rows for k in VALUES)


def test_analyze_json(clip: Path, tmp_path: Path) -> None:
    out_path = tmp_path / "a.json"
    code, _, err = cli("analyze", str(clip), "--to", "json", "-o", str(out_path))
    assert code == EXIT_OK, err
    doc = json.loads(out_path.read_text())
    assert doc["hop_seconds"] == 0.5 and doc["files"][0]["file"] == str(clip)
    assert [u["t"] for u in doc["files"][0]["updates"]][:2] == [0.5, 1.0]


def test_run_emits_exactly_what_analyze_writes(clip: Path) -> None:
    """Real-time paced file through `rtmer run` equals `rtmer analyze` on the same audio."""
    code, out, err = cli("analyze", str(clip))
    assert code == EXIT_OK, err
    offline = read_csv(out)
    code, out, err = cli("run", "--stream", f"file:{clip}", "--ndjson", "--no-display")
    assert code == EXIT_OK, err
    live = [json.loads(line) for line in out.splitlines()]
    assert len(live) == len(offline)
    for row, msg in zip(offline, live):
        assert float(row["time_s"]) == msg["t"]
        assert float(row["valence"]) == msg["valence"] and float(row["arousal"]) == msg["arousal"]
        assert float(row["valence_raw"]) == msg["raw"]["valence"]
        assert float(row["arousal_raw"]) == msg["raw"]["arousal"]
        assert row["mood"] == msg["mood"]


def test_run_from_stdin_equals_analyze(clip: Path) -> None:
    """Raw PCM piped into `rtmer run` (a real process) gives the same numbers as analyze."""
    _, out, _ = cli("analyze", str(clip))
    offline = read_csv(out)
    pcm = sf.read(clip, dtype="int16")[0].astype("<i2").tobytes()
    proc = subprocess.run(
        [sys.executable, "-m", "rtmer", "run", "--stream", "stdin", "--format", "s16le", "--rate", "44100",
         "--channels", "2", "--csv", "--no-display"],
        input=pcm, capture_output=True, timeout=60, cwd=REPO,
    )
    assert proc.returncode == EXIT_OK, proc.stderr.decode()
    live = read_csv(proc.stdout.decode())
    assert [r["time_s"] for r in live] == [r["time_s"] for r in offline]
    for a, b in zip(offline, live):
        for k in VALUES:
            assert float(a[k]) == pytest.approx(float(b[k]), abs=1e-6)


def test_unreadable_file_is_named_and_the_others_are_analysed(clip: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad.mp3"
    bad.write_bytes(b"not audio at all" * 10)
    code, out, err = cli("analyze", str(bad), str(clip), str(tmp_path / "gone.flac"))
    assert code == EXIT_INPUT_FAILED
    assert "bad.mp3" in err and "gone.flac" in err and "2 of 3 files failed" in err
    rows = read_csv(out)
    assert len(rows) == 7 and {r["stream"] for r in rows} == {str(clip)}


def test_several_files_are_analysed_as_a_batch_with_the_same_numbers(clip: Path, tmp_path: Path) -> None:
    other = tmp_path / "other.ogg"
    sf.write(other, music_like(2.0, 16000, seed=4), 16000)
    _, alone, _ = cli("analyze", str(clip))
    code, both, err = cli("analyze", str(clip), str(other), "--output-dir", str(tmp_path / "out"))
    assert code == EXIT_OK, err
    assert (tmp_path / "out" / "clip.wav.csv").read_text() == alone
    assert len(read_csv((tmp_path / "out" / "other.ogg.csv").read_text())) == 4


def test_config_file_and_flags_win(clip: Path, tmp_path: Path) -> None:
    cfg = tmp_path / "rtmer.toml"
    cfg.write_text('[smoothing]\nkind = "none"\n[mood]\nneutral_radius = 0.0\n')
    code, out, err = cli("analyze", str(clip), "--config", str(cfg))
    assert code == EXIT_OK, err
    rows = read_csv(out)
    assert all(r["valence"] == r["valence_raw"] and r["arousal"] == r["arousal_raw"] for r in rows)
    assert "neutral" not in {r["mood"] for r in rows}
    code, out, _ = cli("analyze", str(clip), "--config", str(cfg), "--smoothing", "ema")
    rows = read_csv(out)
    assert any(r["valence"] != r["valence_raw"] for r in rows[1:])


def test_bad_config_is_a_usage_error(clip: Path, tmp_path: Path) -> None:
    cfg = tmp_path / "bad.toml"
    cfg.write_text("[smoothing]\nkinf = 'ema'\n")
    code, _, err = cli("analyze", str(clip), "--config", str(cfg))
    assert code == EXIT_USAGE and "unknown key 'smoothing.kinf'" in err
    cfg.write_text("[smoothing]\nbeta = 'fast'\n")
    code, _, err = cli("analyze", str(clip), "--config", str(cfg))
    assert code == EXIT_USAGE and "smoothing.beta='fast' must be float" in err
    cfg.write_text("this is = = not toml")
    code, _, err = cli("analyze", str(clip), "--config", str(cfg))
    assert code == EXIT_USAGE and "not valid TOML" in err
    code, _, err = cli("analyze", str(clip), "--min-cutoff", "-1")
    assert code == EXIT_USAGE and "min_cutoff=-1.0 must be a positive number [Hz]" in err
    code, _, err = cli("run", "--bogus")
    assert code == EXIT_USAGE and "unrecognized arguments: --bogus" in err


def test_model_errors_exit_3(clip: Path, tmp_path: Path) -> None:
    code, _, err = cli("analyze", str(clip), "--model", str(tmp_path / "none.onnx"))
    assert code == EXIT_MODEL and "none.onnx" in err and "does not exist" in err
    broken = tmp_path / "broken.onnx"
    broken.write_bytes(b"garbage")
    code, _, err = cli("run", "--stream", str(clip), "--model", str(broken))
    assert code == EXIT_MODEL and "not a loadable ONNX model" in err


def test_model_by_name(clip: Path) -> None:
    code, out, err = cli("analyze", str(clip), "--to", "json", "--model", "rtmer-default")
    assert code == EXIT_OK, err
    assert json.loads(out)["model"]["name"] == "rtmer-default"
    assert cli("analyze", str(clip), "--model", "default")[1] == cli("analyze", str(clip))[1]
    code, _, err = cli("analyze", str(clip), "--model", "nosuch")
    assert code == EXIT_MODEL
    assert "rtmer: model error: model file 'nosuch': is neither a shipped model (default, large) nor a file" in err
    help_text = subprocess.run([sys.executable, "-m", "rtmer", "analyze", "--help"], capture_output=True, text=True).stdout
    assert "--model NAME|PATH" in help_text and "(default, large)" in help_text


def test_config_model_path_is_relative_to_the_config_file(
    clip: Path, tiny_model_path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "conf" / "m").mkdir(parents=True)
    shutil.copy(tiny_model_path, tmp_path / "conf" / "m" / "tiny.onnx")
    cfg = tmp_path / "conf" / "rtmer.toml"
    monkeypatch.chdir(tmp_path)  # not the config's folder
    cfg.write_text('model = "m/tiny.onnx"\n')
    code, out, err = cli("analyze", str(clip), "--to", "json", "--config", str(cfg))
    assert code == EXIT_OK, err
    assert json.loads(out)["model"]["name"] == "tiny-test"
    cfg.write_text('model = "default"\n')  # a name stays a name
    code, out, err = cli("analyze", str(clip), "--to", "json", "--config", str(cfg))
    assert code == EXIT_OK, err
    assert json.loads(out)["model"]["name"] == "rtmer-default"
    cfg.write_text('model = "m/none.onnx"\n')
    code, _, err = cli("analyze", str(clip), "--config", str(cfg))
    missing = tmp_path / "conf" / "m" / "none.onnx"
    assert code == EXIT_MODEL and f"model file '{missing}': file does not exist" in err
    cfg.write_text('model = "larg"\n')
    code, _, err = cli("analyze", str(clip), "--config", str(cfg))
    assert code == EXIT_MODEL and "'larg': is neither a shipped model (default, large) nor a file" in err


def test_config_stream_files_are_relative_to_the_config_file(
    clip: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from rtmer.app.config import load_config

    conf = tmp_path / "conf"
    (conf / "music").mkdir(parents=True)
    shutil.copy(clip, conf / "music" / "a.wav")
    cfg = conf / "rtmer.toml"
    cfg.write_text('[input]\nstreams = ["deck1=file:music/a.wav"]\n')
    monkeypatch.chdir(tmp_path)  # not the config's folder
    code, out, err = cli("run", "--config", str(cfg), "--no-realtime", "--ndjson", "--no-display")
    assert code == EXIT_OK, err
    assert {json.loads(line)["stream"] for line in out.splitlines()} == {"deck1"}
    cfg.write_text('[input]\nstreams = ["music/a.wav", "d=music/a.wav:1-2", "x.flac", "file:/abs/b.wav", '
                   '"file:~/b.wav", "device:pulse:1-2", "pulse", "hw:1,0", "stdin", "-", "s=stdin:1"]\n')
    assert load_config(str(cfg))["streams"] == [
        f"file:{conf / 'music' / 'a.wav'}", f"d=file:{conf / 'music' / 'a.wav'}:1-2", f"file:{conf / 'x.flac'}",
        "file:/abs/b.wav", f"file:{Path('~/b.wav').expanduser()}", "device:pulse:1-2", "pulse", "hw:1,0",
        "stdin", "-", "s=stdin:1",
    ]
    cfg.write_text('[input]\nstreams = ["music/none.wav"]\n')
    code, _, err = cli("run", "--config", str(cfg), "--no-realtime", "--ndjson", "--no-display")
    assert code == EXIT_INPUT_FAILED, err
    assert str(conf / "music" / "none.wav") in err


def test_values_that_would_be_ignored_are_usage_errors(clip: Path) -> None:
    for rate in ("0", "-8000"):
        code, _, err = cli("run", "--stream", str(clip), "--device-rate", rate)
        assert code == EXIT_USAGE and f"device_rate={rate} must be a positive integer [Hz]" in err, err
        assert "Traceback" not in err
    for flag in ("--rate", "--channels"):
        code, _, err = cli("analyze", str(clip), flag, "2")
        assert code == EXIT_USAGE, err
        assert f"{flag} only applies with --format (raw PCM on stdin)" in err and "Traceback" not in err
    code, _, err = cli("analyze", str(clip), "--model", "")
    assert code == EXIT_USAGE and "model='' is empty" in err, err


def test_port_in_use_exits_4_and_names_the_port(clip: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        code, _, err = cli("run", "--stream", str(clip), "--ws", "--ws-port", str(port), "--no-realtime")
    assert code == EXIT_DEVICE and f"port {port}" in err


def test_unknown_device_exits_4_and_lists_devices() -> None:
    code, _, err = cli("run", "--stream", "device:no-such-card-xyz")
    assert code == EXIT_DEVICE and "available input devices" in err


def test_devices_command() -> None:
    code, out, _ = cli("devices", "--json")
    assert code == EXIT_OK and isinstance(json.loads(out), list)


def test_a_failing_sink_never_stops_the_engine(clip: Path, collecting_sink: CollectingSink) -> None:
    from rtmer.core.engine import Engine
    from rtmer.core.model import StreamingModel
    from rtmer.app.runner import Runner
    from rtmer.inputs.files import open_file
    from rtmer.core.update import Update

    class Broken:
        def publish(self, update: Update) -> None:
            raise OSError("disk full")

        def close(self) -> None:
            pass

    engine = Engine(StreamingModel())
    keep = collecting_sink
    bad_input = open_file(clip, stream="b", model_rate=16000)
    bad_input._read = lambda n: (_ for _ in ()).throw(RuntimeError("decoder crashed"))  # type: ignore[method-assign]
    summary = Runner(engine, [open_file(clip, stream="a", model_rate=16000), bad_input], [Broken(), keep]).run()
    assert len(keep.got) == 7 and summary.sink_errors == {"Broken": 7}
    assert "decoder crashed" in summary.failed_inputs[f"file {clip}"]


def test_demo_runs_the_live_pipeline_with_osc_and_websocket() -> None:
    """`rtmer demo` as a real process; OSC received on UDP, a WebSocket client connected."""
    from websockets.sync.client import connect

    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.bind(("127.0.0.1", 0))
    udp.settimeout(10)
    osc_port = udp.getsockname()[1]
    ws_port, web_port = free_port(), free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "rtmer", "demo", "--seconds", "3", "--osc", f"127.0.0.1:{osc_port}",
         "--ws-port", str(ws_port), "--web-port", str(web_port), "--section-seconds", "1"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=REPO,
    )
    try:
        deadline = time.monotonic() + 15
        ws = None
        while ws is None and time.monotonic() < deadline:
            try:
                ws = connect(f"ws://127.0.0.1:{ws_port}", open_timeout=2)
            except OSError:
                time.sleep(0.1)
        assert ws is not None, "demo never listened"
        with ws:
            hello = json.loads(ws.recv(timeout=10))
            assert hello["type"] == "hello" and hello["streams"] == ["demo"]
            msg = json.loads(ws.recv(timeout=10))
            assert msg["type"] == "va" and msg["stream"] == "demo"
        datagram, _ = udp.recvfrom(65536)
        assert datagram.startswith(b"#bundle\x00") and b"/rtmer/valence" in datagram
        import urllib.request

        with urllib.request.urlopen(f"http://127.0.0.1:{web_port}/config.json", timeout=10) as page:  # the live page
            assert json.loads(page.read()) == {"ws": f"ws://127.0.0.1:{ws_port}/"}
        out, err = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
        udp.close()
    assert proc.returncode == EXIT_OK, err.decode()
    assert "(playing: " in out.decode() and "updates" in err.decode()
    assert f"rtmer: web page on http://127.0.0.1:{web_port}/\n" in err.decode()


def test_python_dash_m_rtmer_help() -> None:
    proc = subprocess.run([sys.executable, "-m", "rtmer", "--help"], capture_output=True, timeout=30, cwd=REPO,
                          env={**os.environ})
    assert proc.returncode == 0 and b"analyze" in proc.stdout


def test_several_streams_in_one_run(clip: Path, tmp_path: Path) -> None:
    other = tmp_path / "b.flac"
    sf.write(other, music_like(1.2, 22050, seed=2), 22050)
    code, out, err = cli("run", "--stream", f"deck1=file:{clip}", "--stream", f"deck2=file:{other}",
                         "--no-realtime", "--ndjson", "--no-display")
    assert code == EXIT_OK, err
    msgs = [json.loads(line) for line in out.splitlines()]
    assert sum(m["stream"] == "deck1" for m in msgs) == 7 and sum(m["stream"] == "deck2" for m in msgs) == 3
    assert "stream deck1: 7 hops" in err and "stream deck2: 3 hops" in err


def test_ctrl_c_shuts_down_cleanly_with_a_summary(clip: Path) -> None:
    import signal

    proc = subprocess.Popen(  # SIGINT as in a terminal: a script's background job inherits it ignored
        [*rtmer_command(), "run", "--stream", f"file:{clip}", "--ndjson", "--ws", "--ws-port", "0"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=REPO,
    )
    first = proc.stdout.readline() if proc.stdout else b""  # the first update: running
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=20)
    assert json.loads(first)["seq"] == 0
    assert proc.returncode == 130, err.decode()
    text = err.decode()
    assert "(interrupted)" in text and "overruns" not in text and "websocket: 0 connections" in text


# ---- a CLI without traps ------------------------------------------------------------------
def test_version() -> None:
    from rtmer import __version__

    assert cli("--version") == (EXIT_OK, f"rtmer {__version__}\n", "")


def test_quiet_and_verbose_are_accepted_after_the_command(clip: Path) -> None:
    import logging

    for argv in (["-q", "analyze", str(clip)], ["analyze", str(clip), "-q"], ["analyze", "-q", str(clip)]):
        code, out, err = cli(*argv)
        assert code == EXIT_OK and err == "", (argv, err)  # no summary with -q
        assert len(read_csv(out)) == 7
    code, _, err = cli("analyze", str(clip), "-v")
    assert code == EXIT_OK, err
    assert logging.getLogger("rtmer").level == logging.INFO
    code, _, _ = cli("-v", "analyze", str(clip), "-v")
    level = logging.getLogger("rtmer").level
    logging.getLogger("rtmer").setLevel(logging.NOTSET)
    assert code == EXIT_OK and level == logging.DEBUG  # the two add up


def test_help_has_examples_and_defaults(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "200")  # no line wrapping inside the checked phrases
    texts = {}
    for command in ("run", "analyze", "demo", None):
        assert main([command, "--help"] if command else ["--help"]) == EXIT_OK
        texts[command] = capsys.readouterr().out
    for text in texts.values():
        assert "examples:\n  rtmer " in text
    assert "exit codes: 0 ok" in texts[None] and "-q and -v work before or after the command" in texts[None]
    run = texts["run"]
    for phrase in ("--min-cutoff HZ", "(default: 0.25)", "(default: one-euro)", "(default: /rtmer)",
                   "(default: 8765)", "(default: 44100)", "(default: auto)", "--osc-stream-ids {auto,always}"):
        assert phrase in run, phrase
    analyze = texts["analyze"]
    assert "(default: csv)" in analyze and "x/song.wav -> x_song.wav.csv" in analyze and "rtmer analyze -" in analyze


def test_run_says_what_it_serves_unless_quiet(clip: Path) -> None:
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.bind(("127.0.0.1", 0))
    port = udp.getsockname()[1]
    try:
        argv = ["run", "--stream", f"deck1=file:{clip}", "--no-realtime", "--osc", f"127.0.0.1:{port}",
                "--ws", "--ws-port", "0", "--ndjson", "--no-display"]
        code, _, err = cli(*argv)
        assert code == EXIT_OK, err
        assert f"rtmer: input deck1 <- file {clip}\n" in err
        assert f"rtmer: OSC to 127.0.0.1:{port}: /rtmer/... (valence, arousal, va, mood, raw/va)\n" in err
        ws = re.search(r"rtmer: WebSocket on ws://127\.0\.0\.1:(\d+)\n", err)
        assert ws is not None and int(ws.group(1)) > 0  # the bound port, not the 0 asked for
        assert "rtmer: NDJSON on stdout\n" in err
        code, _, err = cli(*argv, "-q")
        assert code == EXIT_OK and err == ""
    finally:
        udp.close()


def _osc_addresses(extra: list[str], streams: list[str]) -> set[bytes]:
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.bind(("127.0.0.1", 0))
    udp.settimeout(5)
    try:
        argv = ["run", "--no-realtime", "--no-display", "--osc", f"127.0.0.1:{udp.getsockname()[1]}", *extra]
        for spec in streams:
            argv += ["--stream", spec]
        code, _, err = cli(*argv)
        assert code == EXIT_OK, err
        dgram, _ = udp.recvfrom(65536)
    finally:
        udp.close()
    return set(re.findall(rb"/rtmer[/A-Za-z0-9_.-]*/valence", dgram))


def test_osc_stream_ids_always_keeps_addresses_stable(clip: Path, tmp_path: Path) -> None:
    assert _osc_addresses([], [f"deck1=file:{clip}"]) == {b"/rtmer/valence"}  # auto: one stream, no id
    assert _osc_addresses(["--osc-stream-ids", "always"], [f"deck1=file:{clip}"]) == {b"/rtmer/deck1/valence"}
    cfg = tmp_path / "rtmer.toml"
    cfg.write_text('[osc]\nstream_ids = "always"\n')
    assert _osc_addresses(["--config", str(cfg)], [f"deck1=file:{clip}"]) == {b"/rtmer/deck1/valence"}
    cfg.write_text('[osc]\nstream_ids = "sometimes"\n')
    code, _, err = cli("run", "--stream", str(clip), "--osc", "127.0.0.1:9", "--config", str(cfg))
    assert code == EXIT_USAGE and "osc.stream_ids='sometimes' must be 'auto'" in err


def test_osc_summary_counts_refused_datagrams_as_failed(clip: Path) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        dead = s.getsockname()[1]  # closed again: nobody listens there
    code, _, err = cli("run", "--stream", str(clip), "--no-realtime", "--no-display", "--osc", f"127.0.0.1:{dead}")
    assert code == EXIT_INPUT_FAILED, err  # every datagram failed: not a success
    # was "4 sent, 3 errors": the kernel accepted every datagram, and each one was refused
    assert f"osc 127.0.0.1:{dead}: 0 sent, 7 failed, last: ConnectionRefusedError" in err

"""Real capture through a real audio server: PulseAudio with null sinks.

A tone is played into a sink with ``paplay`` and recorded from its monitor by
``LiveInput`` through sounddevice/PortAudio (the ALSA ``pulse`` device). Besides the
default stereo sink there is a four-channel one (two decks, the README's example), and
a four-channel one with PulseAudio's default positions for four channels
(front-left, front-center, front-right, rear-center), which ALSA's pulse plugin cannot
hand over by number. Skipped only when the ``pulseaudio`` binary is missing.
"""

from __future__ import annotations

import json
import os
import select
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from conftest import CollectingSink, cli, tone
from rtmer.app.cli import EXIT_OK, EXIT_USAGE
from rtmer.core.engine import Engine
from rtmer.core.model import StreamingModel
from rtmer.app.runner import Runner
from rtmer.inputs.live import LiveInput
from rtmer.core.update import Update

pytestmark = pytest.mark.skipif(shutil.which("pulseaudio") is None, reason="pulseaudio is not installed")

SINK = "rtmer_sink"
QUAD = "rtmer_quad"  # four channels, positioned as ALSA's pulse plugin records four
QUAD_MAP = "front-left,front-right,rear-left,rear-right"
AIFF = "rtmer_quad_aiff"  # four channels at PulseAudio's default positions


@pytest.fixture(scope="module")
def pulse() -> Iterator[dict[str, str]]:
    """A private PulseAudio server with a null sink; yields the environment to reach it."""
    runtime = tempfile.mkdtemp(prefix="rtmer-pulse-")
    os.chmod(runtime, 0o700)
    env = {**os.environ, "XDG_RUNTIME_DIR": runtime}
    env.pop("PULSE_SERVER", None)
    subprocess.run(
        ["pulseaudio", "-D", "-n", "--exit-idle-time=-1", "--disallow-exit",
         "--load=module-native-protocol-unix", f"--load=module-null-sink sink_name={SINK}",
         f"--load=module-null-sink sink_name={QUAD} channels=4 channel_map={QUAD_MAP}",
         f"--load=module-null-sink sink_name={AIFF} channels=4", "--load=module-always-sink"],
        env=env, check=True, capture_output=True, timeout=30,
    )
    pid_file = Path(runtime) / "pulse" / "pid"
    try:
        deadline = time.monotonic() + 15
        while subprocess.run(["pactl", "info"], env=env, capture_output=True).returncode != 0:
            assert time.monotonic() < deadline, "pulseaudio did not come up"
            time.sleep(0.1)
        subprocess.run(["pactl", "set-default-source", f"{SINK}.monitor"], env=env, check=True, timeout=10)
        yield env
    finally:
        if pid_file.exists():
            pid = int(pid_file.read_text().split()[0])
            os.kill(pid, signal.SIGTERM)
            for _ in range(50):
                try:
                    os.kill(pid, 0)
                except ProcessLookupError:
                    break
                time.sleep(0.05)
        shutil.rmtree(runtime, ignore_errors=True)


@pytest.fixture()
def portaudio_on_pulse(pulse: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, str]]:
    """PortAudio re-initialised so that it sees the private server."""
    import sounddevice as sd

    monkeypatch.setenv("XDG_RUNTIME_DIR", pulse["XDG_RUNTIME_DIR"])
    monkeypatch.delenv("PULSE_SERVER", raising=False)
    monkeypatch.delenv("PULSE_SOURCE", raising=False)
    sd._terminate()
    sd._initialize()
    try:
        yield pulse
    finally:
        sd._terminate()
        monkeypatch.undo()
        sd._initialize()


def play(env: dict[str, str], path: Path, *, sink: str = SINK, channel_map: str | None = None) -> subprocess.Popen[bytes]:
    how = [f"--channel-map={channel_map}"] if channel_map else []
    return subprocess.Popen(["paplay", "-d", sink, *how, str(path)], env=env)


def peak_hz(x: np.ndarray, rate: int) -> float:
    spec = np.abs(np.fft.rfft(x * np.hanning(x.shape[0])))
    return float(np.argmax(spec) * rate / x.shape[0])


def test_capture_from_a_real_pulseaudio_null_sink(
    portaudio_on_pulse: dict[str, str], tmp_path: Path, collecting_sink: CollectingSink
) -> None:
    env = portaudio_on_pulse
    wav = tmp_path / "two_tones.wav"
    rate = 44100
    sf.write(wav, np.stack([tone(440, 8.0, rate), tone(1000, 8.0, rate)], axis=1), rate)

    # 1. the level and the frequency of each channel arrive, resampled to the model rate
    # (at the sink's own rate, 44.1 kHz: capture through ALSA's pulse plugin at another rate stalls at times)
    inp = LiveInput("pulse", streams={"left": [0], "right": [1]}, model_rate=16000)
    got: dict[str, list[np.ndarray]] = {"left": [], "right": []}
    gaps = 0
    inp.start()
    player = play(env, wav)
    try:
        t_end = time.monotonic() + 10.0
        while time.monotonic() < t_end and sum(b.shape[0] for b in got["left"]) < 16000 * 2.5:
            select.select([inp.fileno()], [], [], 0.1)
            for block in inp.poll():
                got[block.stream].append(block.samples)
                gaps += block.gap
    finally:
        inp.close()
    # the monitor's first audio comes about 1.7 s after the open: waited for, not a stall
    assert (inp.restarts, gaps) == (0, 0)
    for stream, freq in (("left", 440.0), ("right", 1000.0)):
        x = np.concatenate(got[stream])
        assert x.shape[0] >= 16000 * 2.5, f"{stream}: only {x.shape[0]} samples in 10 s"
        window = x[-16000:]  # the last second: the tone is playing
        rms = float(np.sqrt(np.mean(window**2)))
        assert 0.25 < rms < 0.45, f"{stream}: RMS {rms} (a 0.5 sine is 0.354)"
        assert peak_hz(window, 16000) == pytest.approx(freq, abs=3)

    # 2. the whole live pipeline produces updates for both streams
    keep = collecting_sink
    engine = Engine(StreamingModel())
    live = LiveInput("pulse", streams={"left": [0], "right": [1]}, model_rate=engine.info.sample_rate)
    stop = threading.Event()

    def enough(updates: list[Update]) -> None:
        if sum(u.stream == "left" for u in keep.got) >= 4:
            stop.set()

    summary = Runner(engine, [live], [keep], stop=stop, on_updates=enough, max_seconds=10).run()
    player.terminate()
    player.wait(timeout=15)
    streams = [u.stream for u in keep.got]
    assert streams.count("left") >= 4 and streams.count("right") >= 4
    assert all(np.isfinite([u.valence, u.arousal]).all() for u in keep.got)
    assert summary.inputs[live.name]["overruns"] == 0
    assert summary.inputs[live.name]["restarts"] == 0 and summary.streams["left"].gaps == 0
    assert summary.streams["left"].silent_hops < summary.streams["left"].hops  # sound, not silence


def test_sources_are_listed_by_name(portaudio_on_pulse: dict[str, str]) -> None:
    code, out, err = cli("devices")
    assert code == EXIT_OK, err
    assert f"    {SINK}.monitor: Monitor of Null Output (monitor, 2 ch, 44100 Hz, default)" in out
    assert f"    {QUAD}.monitor: " in out and "(monitor, 4 ch, 44100 Hz)" in out
    code, out, err = cli("devices", "--json")
    assert code == EXIT_OK, err
    by_name = {d["name"]: d for d in json.loads(out) if d["kind"] == "pulse"}
    assert by_name[f"{QUAD}.monitor"]["max_input_channels"] == 4 and by_name[f"{QUAD}.monitor"]["monitor"] is True
    assert by_name[f"{QUAD}.monitor"]["channel_map"] == QUAD_MAP.split(",")
    assert by_name[f"{SINK}.monitor"]["default"] is True


def test_two_decks_on_a_four_channel_source(portaudio_on_pulse: dict[str, str], tmp_path: Path) -> None:
    """The README's multi-deck example: deck1 on channels 1-2, deck2 on 3-4 of one source, picked by name."""
    env = portaudio_on_pulse
    rate = 44100
    wav = tmp_path / "decks.wav"
    deck1, deck2 = tone(440, 8.0, rate), tone(1000, 8.0, rate, amplitude=0.25)
    sf.write(wav, np.stack([deck1, deck1, deck2, deck2], axis=1), rate)
    # not the default source: picked by name, through PortAudio's 'pulse' device with PULSE_SOURCE
    inp = LiveInput(f"{QUAD}.monitor", streams={"deck1": [0, 1], "deck2": [2, 3]}, model_rate=16000)
    assert inp.ring.channels == 4
    got: dict[str, list[np.ndarray]] = {"deck1": [], "deck2": []}
    inp.start()
    player = play(env, wav, sink=QUAD, channel_map=QUAD_MAP)
    try:
        t_end = time.monotonic() + 10.0
        while time.monotonic() < t_end and sum(b.shape[0] for b in got["deck2"]) < 16000 * 1.0:
            select.select([inp.fileno()], [], [], 0.1)
            for block in inp.poll():
                got[block.stream].append(block.samples)
    finally:
        inp.close()
        player.terminate()
        player.wait(timeout=15)
    for stream, freq, level in (("deck1", 440.0, 0.354), ("deck2", 1000.0, 0.177)):
        x = np.concatenate(got[stream])
        assert x.shape[0] >= 16000 * 1.0, f"{stream}: only {x.shape[0]} samples in 10 s"
        window = x[-8000:]
        assert peak_hz(window, 16000) == pytest.approx(freq, abs=3), stream
        assert float(np.sqrt(np.mean(window**2))) == pytest.approx(level, rel=0.15), stream
    assert inp.restarts == 0

    # and the same through the command line, as the README writes it
    player = play(env, wav, sink=QUAD, channel_map=QUAD_MAP)
    try:
        code, out, err = cli("run", "--stream", f"deck1=device:{QUAD}.monitor:1-2",
                             "--stream", f"deck2=device:{QUAD}.monitor:3-4", "--ndjson", "--no-display",
                             "--seconds", "3")
    finally:
        player.terminate()
        player.wait(timeout=15)
    assert code == EXIT_OK, err
    msgs = [json.loads(line) for line in out.splitlines()]
    raw = {d: [(m["raw"]["valence"], m["raw"]["arousal"]) for m in msgs if m["stream"] == d] for d in ("deck1", "deck2")}
    assert raw["deck1"] and len(raw["deck1"]) == len(raw["deck2"])
    assert raw["deck1"] != raw["deck2"]  # a copy of deck 1 would give deck 2 the same numbers
    assert f"device {QUAD}.monitor: 0 overruns, 0 frames dropped, 0 driver overflow flags, 0 device restarts" in err


def test_channels_a_source_does_not_have(portaudio_on_pulse: dict[str, str]) -> None:
    # the old README example on a stereo default source: deck 2 would have been a copy of deck 1
    code, _, err = cli("run", "--stream", "deck1=device:pulse:1-2", "--stream", "deck2=device:pulse:3-4")
    assert code == EXIT_USAGE
    assert f"stream deck2: channels=3-4 asked for, but 'pulse' (source {SINK}.monitor) has 2 input channels (1-2)" in err
    code, _, err = cli("run", "--stream", f"deck=device:{SINK}.monitor:3")
    assert code == EXIT_USAGE and f"source '{SINK}.monitor' has 2 input channels" in err
    code, _, err = cli("run", "--stream", f"deck1=device:{AIFF}.monitor:1-2")
    assert code == EXIT_USAGE
    assert "front-left,front-center,front-right,rear-center" in err and "module-remap-source" in err
    assert "Traceback" not in err

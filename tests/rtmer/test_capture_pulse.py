"""Real capture through a real audio server: PulseAudio with a null sink.

A tone is played into the sink with ``paplay`` and recorded from its monitor by
``LiveInput`` through sounddevice/PortAudio (the ALSA ``pulse`` device). Skipped only
when the ``pulseaudio`` binary is missing.
"""

from __future__ import annotations

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

from conftest import CollectingSink, tone
from rtmer.engine import Engine
from rtmer.model import StreamingModel
from rtmer.runner import Runner
from rtmer.sources import LiveInput
from rtmer.update import Update

pytestmark = pytest.mark.skipif(shutil.which("pulseaudio") is None, reason="pulseaudio is not installed")

SINK = "rtmer_sink"


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
         "--load=module-always-sink"],
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
    sd._terminate()
    sd._initialize()
    try:
        yield pulse
    finally:
        sd._terminate()
        monkeypatch.undo()
        sd._initialize()


def play(env: dict[str, str], path: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(["paplay", "-d", SINK, str(path)], env=env)


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
    inp.start()
    player = play(env, wav)
    try:
        t_end = time.monotonic() + 10.0
        while time.monotonic() < t_end and sum(b.shape[0] for b in got["left"]) < 16000 * 2.5:
            select.select([inp.fileno()], [], [], 0.1)
            for block in inp.poll():
                got[block.stream].append(block.samples)
    finally:
        inp.close()
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
    player.wait(timeout=15)
    streams = [u.stream for u in keep.got]
    assert streams.count("left") >= 4 and streams.count("right") >= 4
    assert all(np.isfinite([u.valence, u.arousal]).all() for u in keep.got)
    assert summary.inputs[live.name]["overruns"] == 0
    # ALSA's pulse plugin occasionally stalls a fresh stream; the watchdog reopens it
    print("device restarts:", summary.inputs[live.name]["restarts"], "first phase:", inp.restarts)
    assert summary.streams["left"].silent_hops < summary.streams["left"].hops  # sound, not silence

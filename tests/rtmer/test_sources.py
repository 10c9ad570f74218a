from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from conftest import music_like, tone
from rtmer.errors import AudioInputError, ConfigError, DeviceNotFoundError
from rtmer.sources import (
    MonoResampler,
    PcmInput,
    RingInput,
    find_input_device,
    open_file,
    parse_channels,
    parse_stream_spec,
)


def drain(inp: object, *, timeout: float = 10.0) -> np.ndarray:
    out = []
    deadline = time.monotonic() + timeout
    inp.start()  # type: ignore[attr-defined]
    while not inp.finished and time.monotonic() < deadline:  # type: ignore[attr-defined]
        out.extend(b.samples for b in inp.poll())  # type: ignore[attr-defined]
        time.sleep(0.001)
    assert inp.finished  # type: ignore[attr-defined]
    return np.concatenate(out) if out else np.zeros(0, np.float32)


def peak_hz(x: np.ndarray, rate: int) -> float:
    spec = np.abs(np.fft.rfft(x * np.hanning(x.shape[0])))
    return float(np.argmax(spec) * rate / x.shape[0])


@pytest.mark.parametrize(("text", "expected"), [("1", [0]), ("1-2", [0, 1]), ("3,4", [2, 3]), ("1-2,5", [0, 1, 4])])
def test_parse_channels(text: str, expected: list[int]) -> None:
    assert parse_channels(text) == expected


@pytest.mark.parametrize("text", ["0", "2-1", "a", "", "1-"])
def test_parse_channels_rejects(text: str) -> None:
    with pytest.raises(ConfigError, match=r"channels="):
        parse_channels(text)


def test_parse_stream_specs(tmp_path: Path) -> None:
    wav = tmp_path / "a.wav"
    wav.write_bytes(b"")
    s = parse_stream_spec("deck1=device:pulse:1-2", index=0)
    assert (s.id, s.kind, s.target, s.channels) == ("deck1", "device", "pulse", [0, 1])
    s = parse_stream_spec("device:hw:1,0", index=1)  # ALSA-style names keep their colon when no channels follow
    assert (s.id, s.kind, s.target, s.channels) == ("s2", "device", "hw:1,0", None)
    s = parse_stream_spec(str(wav), index=2)
    assert (s.id, s.kind, s.target) == ("s3", "file", str(wav))
    s = parse_stream_spec("mix=stdin:3,4", index=0)
    assert (s.kind, s.channels) == ("stdin", [2, 3])
    s = parse_stream_spec("-", index=0)
    assert s.kind == "stdin"
    with pytest.raises(ConfigError, match=r"names no source"):
        parse_stream_spec("x=", index=0)


def test_resampler_output_does_not_depend_on_chunking() -> None:
    x = music_like(3.0, 44100)[:, None]

    def run(chunk: int) -> np.ndarray:
        r = MonoResampler(in_rate=44100, out_rate=16000)
        parts = [r.process(x[i : i + chunk]) for i in range(0, x.shape[0], chunk)] + [r.flush()]
        return np.concatenate(parts)

    a, b = run(512), run(4410)
    assert a.shape == b.shape and np.array_equal(a, b)
    assert abs(a.shape[0] - 3.0 * 16000) <= 2


def test_channel_pick_and_downmix() -> None:
    left, right = tone(100, 0.1, 16000), tone(300, 0.1, 16000)
    frames = np.stack([left, right, np.zeros_like(left)], axis=1)
    assert np.allclose(MonoResampler(in_rate=16000, out_rate=16000, channels=[1]).process(frames), right)
    assert np.allclose(MonoResampler(in_rate=16000, out_rate=16000, channels=[0, 1]).process(frames), (left + right) / 2)


def test_a_file_at_another_rate_is_resampled(tmp_path: Path) -> None:
    path = tmp_path / "tone44k.wav"
    sf.write(path, np.stack([tone(1000, 2.0, 44100)] * 2, axis=1), 44100)
    inp = open_file(path, stream="a", model_rate=16000)
    y = drain(inp)
    assert abs(y.shape[0] - 32000) <= 2
    assert peak_hz(y, 16000) == pytest.approx(1000, abs=2)
    assert np.sqrt(np.mean(y[2000:-2000] ** 2)) == pytest.approx(0.5 / np.sqrt(2), rel=0.01)


def test_realtime_pacing_takes_real_time_and_gives_the_same_samples(tmp_path: Path) -> None:
    path = tmp_path / "m.flac"
    sf.write(path, music_like(0.6, 22050), 22050)
    fast = drain(open_file(path, stream="a", model_rate=16000, realtime=False))
    t0 = time.monotonic()
    paced = drain(open_file(path, stream="a", model_rate=16000, realtime=True))
    assert time.monotonic() - t0 >= 0.55
    assert np.array_equal(fast, paced)


@pytest.mark.parametrize("content", [b"", b"RIFF....WAVEnot really", b"\x00" * 100])
def test_unreadable_files_are_named(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "broken.wav"
    path.write_bytes(content)
    with pytest.raises(AudioInputError, match=r"broken\.wav.*cannot read as audio"):
        open_file(path, stream="a", model_rate=16000)
    with pytest.raises(AudioInputError, match=r"missing\.ogg.*no such file"):
        open_file(tmp_path / "missing.ogg", stream="a", model_rate=16000)


def test_raw_pcm_from_a_pipe() -> None:
    x = (tone(440, 1.0, 8000, amplitude=0.5) * 32767).astype("<i2")
    interleaved = np.stack([x, np.zeros_like(x)], axis=1).tobytes()
    rfd, wfd = os.pipe()

    def feed() -> None:
        for i in range(0, len(interleaved), 999):  # odd sizes split frames
            os.write(wfd, interleaved[i : i + 999])
        os.close(wfd)

    with os.fdopen(rfd, "rb") as src:
        inp = PcmInput("p", fmt="s16le", rate=8000, channels=2, model_rate=16000, pick=[0], source=src)
        t = threading.Thread(target=feed)
        t.start()
        y = drain(inp)
        t.join()
    assert abs(y.shape[0] - 16000) <= 2
    assert peak_hz(y, 16000) == pytest.approx(440, abs=2)


def test_pcm_options_are_checked() -> None:
    with pytest.raises(ConfigError, match=r"format='u8' must be one of s16le, f32le, s32le"):
        PcmInput("p", fmt="u8", rate=8000, channels=1, model_rate=16000)
    with pytest.raises(ConfigError, match=r"stdin has 2 channels; channel 3 was asked for"):
        PcmInput("p", fmt="s16le", rate=8000, channels=2, model_rate=16000, pick=[2])


def test_ring_input_overrun_is_a_gap_for_every_stream_on_the_device() -> None:
    inp = RingInput("dev", streams={"a": [0], "b": [1]}, device_rate=16000, model_rate=16000, channels=2, ring_seconds=0.1)
    block = np.ones((1000, 2), dtype=np.float32)
    inp.push(block)
    first = inp.poll()
    assert [(b.stream, b.gap) for b in first] == [("a", False), ("b", False)]
    for _ in range(3):
        inp.push(block)  # 3000 frames into a ring of 1600
    blocks = inp.poll()
    assert all(b.gap and b.lost_samples == 1400 for b in blocks)
    assert inp.stats()["overruns"] == 1 and inp.stats()["dropped_frames"] == 1400
    inp.close()


def test_unknown_device_lists_the_available_devices() -> None:
    with pytest.raises(DeviceNotFoundError, match=r"no input device matches 'no-such-card-xyz'; available input devices:"):
        find_input_device("no-such-card-xyz")
    with pytest.raises(DeviceNotFoundError, match=r"no input device matches '999'"):
        find_input_device(999)

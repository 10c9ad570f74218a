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
import rtmer.inputs.devices as devices
from rtmer.inputs.devices import PulseSource, alsa_plugin_channel_map, find_input_device, format_channels, list_pulse_sources, parse_channels
from rtmer.core.resample import MonoResampler
from rtmer.inputs.base import parse_stream_spec
from rtmer.inputs.files import open_file
from rtmer.inputs.live import LiveInput, RingInput
from rtmer.inputs.pcm import PcmInput


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


@pytest.mark.parametrize("seconds", [9.0, 9.05, 0.05])  # many polls, ending on a block boundary or not; less than a block
def test_an_unpaced_file_gives_every_sample_in_order(tmp_path: Path, seconds: float) -> None:
    path = tmp_path / "noise.wav"
    samples = np.random.default_rng(2).uniform(-0.5, 0.5, int(seconds * 16000)).astype(np.float32)
    sf.write(path, samples, 16000, subtype="FLOAT")
    inp = open_file(path, stream="a", model_rate=16000, realtime=False)
    assert np.array_equal(drain(inp), samples)
    assert inp.stats()["blocks"] == int(seconds * 10) + 1  # 0.1 s blocks, the last one short or empty


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


# ---- files named as files, devices as devices ------------------------------------------
def test_a_path_that_does_not_exist_is_a_file_not_a_device(tmp_path: Path) -> None:
    for text, target, channels in [
        ("/nope/song.mp3", "/nope/song.mp3", None),
        ("song.flac", "song.flac", None),
        ("deck1=../music/a.wav:1-2", "../music/a.wav", [0, 1]),
        ("dir/no_extension", "dir/no_extension", None),
        ("SONG.M4A", "SONG.M4A", None),
    ]:
        s = parse_stream_spec(text, index=0)
        assert (s.kind, s.target, s.channels) == ("file", target, channels), text
    for text in ("pulse", "rtmer_sink.monitor", "alsa_input.usb-X-00.analog-stereo", "hw:1,0", "device:Line 1/2"):
        assert parse_stream_spec(text, index=0).kind == "device", text
    odd = tmp_path / "take:2"  # an existing file whose name ends like channels is read whole
    odd.write_bytes(b"")
    s = parse_stream_spec(f"file:{odd}", index=0)
    assert (s.target, s.channels) == (str(odd), None)


def test_a_missing_file_says_where_it_looked(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(AudioInputError, match=r"'/nope/song\.mp3': no such file \(folder /nope does not exist\)"):
        open_file("/nope/song.mp3", stream="a", model_rate=16000)
    with pytest.raises(AudioInputError, match=rf"'song\.wav': no such file \(looked for {tmp_path}/song\.wav\)"):
        open_file("song.wav", stream="a", model_rate=16000)
    with pytest.raises(AudioInputError, match=r"is not a file"):
        open_file(tmp_path, stream="a", model_rate=16000)


def test_cli_file_alias_and_missing_file(tmp_path: Path) -> None:
    import io

    from rtmer.app.cli import EXIT_INPUT_FAILED, EXIT_OK, main

    clip = tmp_path / "clip.wav"
    sf.write(clip, music_like(1.2, 16000), 16000)

    def cli(*argv: str) -> tuple[int, str, str]:
        out, err = io.StringIO(), io.StringIO()
        return main(list(argv), stdout=out, stderr=err), out.getvalue(), err.getvalue()

    code, out, err = cli("run", "--file", str(clip), "--no-realtime", "--ndjson", "--no-display")
    assert code == EXIT_OK, err
    alias = out.splitlines()
    code, out, err = cli("run", "--stream", f"file:{clip}", "--no-realtime", "--ndjson", "--no-display")
    assert code == EXIT_OK, err
    strip = [line.split('"time":')[0] for line in alias]
    assert len(alias) == 3 and strip == [line.split('"time":')[0] for line in out.splitlines()]
    for argv in (("--stream", "/nope/song.mp3"), ("--file", "/nope/song.mp3")):
        code, _, err = cli("run", *argv, "--no-display")
        assert code == EXIT_INPUT_FAILED
        assert "audio input '/nope/song.mp3': no such file (folder /nope does not exist)" in err
        assert "no input device matches" not in err


# ---- PulseAudio/PipeWire sources through pactl ------------------------------------------
PACTL_JSON = r"""[{"index":0,"state":"IDLE","name":"mix.monitor","description":"Monitor of DJ Mix",
"sample_specification":"s16le 2ch 48000Hz","channel_map":"front-left,front-right","properties":{"device.class":"monitor"}},
{"index":1,"name":"alsa_input.usb-dj4","description":"DJ4 Multichannel","sample_specification":"s32le 4ch 44100Hz",
"channel_map":"aux0,aux1,aux2,aux3","properties":{"device.class":"sound"}}]"""


def fake_pactl(folder: Path, *, json_ok: bool) -> None:
    """A ``pactl`` on the PATH that answers like pactl 16 (``json_ok``) or like an older one."""
    (folder / "sources.json").write_text(PACTL_JSON)
    (folder / "pactl").write_text(
        "#!/bin/sh\n"
        f'if [ "$1" = "-f" ]; then {"" if json_ok else "echo unknown option >&2; exit 1; "}'
        f'  if [ "$3" = "info" ]; then echo \'{{"default_source_name":"mix.monitor"}}\'; exit 0; fi\n'
        f'  cat "{folder}/sources.json"; exit 0; fi\n'
        'if [ "$1" = "info" ]; then printf "Server Name: x\\nDefault Source: alsa_input.usb-dj4\\n"; exit 0; fi\n'
        'printf "0\\tmix.monitor\\tmodule-x.c\\ts16le 2ch 48000Hz\\tIDLE\\n'
        '1\\talsa_input.usb-dj4\\tmodule-alsa-card.c\\ts32le 4ch 44100Hz\\tRUNNING\\n"\n'
    )
    (folder / "pactl").chmod(0o755)


def test_pulse_sources_from_pactl_json(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake_pactl(tmp_path, json_ok=True)
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    found, default = list_pulse_sources()
    assert default == "mix.monitor"
    assert found == [
        PulseSource("mix.monitor", "Monitor of DJ Mix", 2, 48000, ("front-left", "front-right"), True),
        PulseSource("alsa_input.usb-dj4", "DJ4 Multichannel", 4, 44100, ("aux0", "aux1", "aux2", "aux3"), False),
    ]


def test_pulse_sources_without_json_use_the_short_list(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake_pactl(tmp_path, json_ok=False)
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    found, default = list_pulse_sources()
    assert default == "alsa_input.usb-dj4"
    assert [(s.name, s.channels, s.rate, s.channel_map, s.monitor) for s in found] == [
        ("mix.monitor", 2, 48000, None, True),
        ("alsa_input.usb-dj4", 4, 44100, None, False),
    ]


def test_no_pactl_means_no_sources(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # no pactl here
    assert list_pulse_sources() == ([], None)
    (tmp_path / "pactl").write_text("#!/bin/sh\necho 'Connection failure: Connection refused' >&2\nexit 1\n")
    (tmp_path / "pactl").chmod(0o755)  # installed, but no server answers
    assert list_pulse_sources() == ([], None)


def test_alsa_plugin_channel_positions() -> None:
    assert alsa_plugin_channel_map(1) == ("mono",)
    assert alsa_plugin_channel_map(2) == ("front-left", "front-right")
    assert alsa_plugin_channel_map(3) == ("front-left", "front-right", "aux0")
    assert alsa_plugin_channel_map(4) == ("front-left", "front-right", "rear-left", "rear-right")
    assert alsa_plugin_channel_map(7)[-2:] == ("lfe", "aux0")
    assert [format_channels(c) for c in ([0], [0, 1], [2, 3], [0, 1, 4])] == ["1", "1-2", "3-4", "1-2,5"]


# ---- device resolution and LiveInput against a fake PortAudio ------------------------------
PA_DEVICES = [
    {"kind": "portaudio", "index": 0, "name": "pulse", "hostapi": "ALSA", "max_input_channels": 32,
     "default_samplerate": 44100.0},
    {"kind": "portaudio", "index": 1, "name": "USB Card: Audio (hw:1,0)", "hostapi": "ALSA",
     "max_input_channels": 2, "default_samplerate": 48000.0},
]
SOURCES = [
    PulseSource("mix.monitor", "Monitor of DJ Mix", 2, 48000, ("front-left", "front-right"), True),
    PulseSource("quad.monitor", "Monitor of Quad", 4, 44100, alsa_plugin_channel_map(4), True),
    PulseSource("alsa_input.usb-dj4", "DJ4 Multichannel", 4, 44100, ("aux0", "aux1", "aux2", "aux3"), False),
]


class FakeStream:
    """Stands in for ``sounddevice.InputStream``; remembers how it was opened."""

    opened: list[dict[str, object]] = []

    def __init__(self, **kw: object) -> None:
        self.kw = {**kw, "PULSE_SOURCE": os.environ.get("PULSE_SOURCE")}
        FakeStream.opened.append(self.kw)

    def start(self) -> None:
        pass

    def stop(self) -> None:
        pass

    def close(self) -> None:
        pass


@pytest.fixture()
def fake_portaudio(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, object]]:
    import types

    FakeStream.opened = []
    fake = types.SimpleNamespace(InputStream=FakeStream, default=types.SimpleNamespace(device=[0, -1]))
    monkeypatch.setattr(devices, "sounddevice", lambda: fake)
    monkeypatch.setattr(devices, "list_input_devices", lambda: [dict(d) for d in PA_DEVICES])
    monkeypatch.setattr(devices, "list_pulse_sources", lambda: (list(SOURCES), "mix.monitor"))
    monkeypatch.delenv("PULSE_SOURCE", raising=False)
    return FakeStream.opened


def test_sources_are_found_by_name(fake_portaudio: list[dict[str, object]]) -> None:
    d = find_input_device("quad.monitor")
    assert (d["kind"], d["index"], d["pulse_source"], d["max_input_channels"], d["default_samplerate"]) == (
        "pulse", 0, "quad.monitor", 4, 44100.0)
    assert find_input_device("DJ Mix")["pulse_source"] == "mix.monitor"  # a unique part of the description
    d = find_input_device("pulse")  # PortAudio's pulse device: the default source's channels, not the plugin's 32
    assert (d["pulse_source"], d["max_input_channels"], d["default_samplerate"]) == (None, 2, 48000.0)
    assert find_input_device("usb card")["index"] == 1
    with pytest.raises(DeviceNotFoundError, match=r"input device 'monitor' is ambiguous: 2 devices match: "
                       r"source 'mix\.monitor' \(Monitor of DJ Mix\), source 'quad\.monitor' \(Monitor of Quad\); ") as exc:
        find_input_device("monitor")
    assert exc.value.matches == ["source 'mix.monitor' (Monitor of DJ Mix)", "source 'quad.monitor' (Monitor of Quad)"]
    with pytest.raises(DeviceNotFoundError, match=r"input device 'u' is ambiguous: 4 devices match: device 0 'pulse', "
                       r"device 1 'USB Card: Audio \(hw:1,0\)', source 'quad\.monitor' \(Monitor of Quad\), "
                       r"source 'alsa_input\.usb-dj4' \(DJ4 Multichannel\); give more of the name"):
        find_input_device("u")
    for query in ("quad.monitor:0", "quad.monitor:0-1"):
        with pytest.raises(DeviceNotFoundError, match=rf"(?s)no input device matches '{query}'.*channels are "
                           r"numbered from 1, e\.g\. device:quad\.monitor:1-2"):
            find_input_device(query)
    with pytest.raises(DeviceNotFoundError) as exc:
        find_input_device("nosuch")
    assert "numbered from 1" not in str(exc.value)
    with pytest.raises(DeviceNotFoundError, match=r"(?s)source quad\.monitor: Monitor of Quad.*--file PATH"):
        find_input_device("song")


def test_a_source_opens_through_the_pulse_device_with_pulse_source_set(fake_portaudio: list[dict[str, object]]) -> None:
    os.environ["PULSE_SOURCE"] = "users.own"
    try:
        inp = LiveInput("quad.monitor", streams={"deck1": [0, 1], "deck2": [2, 3]}, model_rate=16000)
        inp.start()
        assert os.environ["PULSE_SOURCE"] == "users.own"  # restored after the open
    finally:
        del os.environ["PULSE_SOURCE"]
    (kw,) = fake_portaudio
    assert (kw["device"], kw["channels"], kw["samplerate"], kw["PULSE_SOURCE"]) == (0, 4, 44100, "quad.monitor")
    assert inp.name == "device quad.monitor"
    LiveInput("mix.monitor", streams={"a": None}, model_rate=16000).start()  # no picks: PulseAudio's downmix
    LiveInput("mix.monitor", streams={"left": [0]}, model_rate=16000).start()  # a pick: the whole source
    LiveInput("usb card", streams={"a": None}, model_rate=16000).start()  # not PulseAudio: as before
    assert [(k["channels"], k["PULSE_SOURCE"]) for k in fake_portaudio[1:]] == [(1, "mix.monitor"), (2, "mix.monitor"),
                                                                                 (2, None)]


def test_channels_a_device_does_not_have_are_an_error(fake_portaudio: list[dict[str, object]]) -> None:
    with pytest.raises(ConfigError, match=r"stream deck2: channels=3-4 asked for, but source 'mix\.monitor' has 2 "
                                          r"input channels \(1-2\)"):
        LiveInput("mix.monitor", streams={"deck1": [0, 1], "deck2": [2, 3]}, model_rate=16000)
    with pytest.raises(ConfigError, match=r"channels=3-4 asked for, but 'pulse' \(source mix\.monitor\) has 2"):
        LiveInput("pulse", streams={"deck1": [0, 1], "deck2": [2, 3]}, model_rate=16000)
    with pytest.raises(ConfigError, match=r"channels=3 asked for, but 'USB Card: Audio \(hw:1,0\)' has 2"):
        LiveInput(1, streams={"a": [2]}, model_rate=16000)
    with pytest.raises(ConfigError, match=r"positions aux0,aux1,aux2,aux3.*module-remap-source.*"
                                          r"master=alsa_input\.usb-dj4 channels=4"):
        LiveInput("alsa_input.usb-dj4", streams={"deck1": [0, 1]}, model_rate=16000)
    assert fake_portaudio == []  # nothing was opened
    code, err = _cli_code("run", "--stream", "d1=device:mix.monitor:1-2", "--stream", "d2=device:mix.monitor:3-4")
    assert code == 2 and "has 2 input channels (1-2)" in err and "Traceback" not in err


def _cli_code(*argv: str) -> tuple[int, str]:
    import io

    from rtmer.app.cli import main

    err = io.StringIO()
    return main(list(argv), stdout=io.StringIO(), stderr=err), err.getvalue()


def test_devices_command_lists_sources(fake_portaudio: list[dict[str, object]]) -> None:
    import io
    import json

    from rtmer.app.cli import main

    out = io.StringIO()
    assert main(["devices"], stdout=out, stderr=io.StringIO()) == 0
    text = out.getvalue()
    assert "  0: pulse (ALSA, 32 in, 44100 Hz)" in text
    assert "    mix.monitor: Monitor of DJ Mix (monitor, 2 ch, 48000 Hz, default)" in text
    assert "alsa_input.usb-dj4: DJ4 Multichannel (4 ch, 44100 Hz, positions aux0,aux1,aux2,aux3" in text
    out = io.StringIO()
    assert main(["devices", "--json"], stdout=out, stderr=io.StringIO()) == 0
    doc = json.loads(out.getvalue())
    pulse = {d["name"]: d for d in doc if d["kind"] == "pulse"}
    assert pulse["quad.monitor"]["max_input_channels"] == 4 and pulse["quad.monitor"]["monitor"] is True
    assert pulse["mix.monitor"]["default"] is True and pulse["mix.monitor"]["stream_spec"] == "device:mix.monitor"


def test_watchdog_waits_for_the_first_audio_then_reopens_a_stall(fake_portaudio: list[dict[str, object]]) -> None:
    now = [100.0]
    inp = LiveInput("mix.monitor", streams={"a": [0]}, model_rate=48000, stall_seconds=1.0, start_seconds=5.0)
    inp._clock = lambda: now[0]
    inp.start()
    block = np.full((480, 2), 0.1, dtype=np.float32)
    for _ in range(20):  # 4 s without a first block: a monitor source's first audio can be that late
        now[0] += 0.2
        assert inp.poll() == []
    assert inp.restarts == 0 and len(fake_portaudio) == 1
    inp.push(block)
    first = inp.poll()
    assert [(b.gap, b.samples.shape[0]) for b in first] == [(False, 480)]
    now[0] += 1.5  # delivering, then 1.5 s of nothing: a stall
    assert inp.poll() == []
    assert inp.restarts == 1 and len(fake_portaudio) == 2
    now[0] += 3.0
    gap = inp.poll()  # audio was lost in the stall: a gap for the stream
    assert [(b.gap, b.samples.shape[0]) for b in gap] == [(True, 0)]
    assert inp.restarts == 1  # reopened: its first audio gets start_seconds again
    inp.push(block)
    assert [b.gap for b in inp.poll()] == [False]
    now[0] += 1.5
    inp.poll()
    assert inp.restarts == 2 and len(fake_portaudio) == 3
    now[0] += 5.5  # a reopened device that never delivers is reopened once start_seconds have passed
    assert [b.gap for b in inp.poll()] == [True]  # the second stall's gap
    assert inp.restarts == 3 and len(fake_portaudio) == 4
    inp.push(block)
    assert [b.gap for b in inp.poll()] == [False]  # no gap for a start that delivered nothing
    inp.close()


def test_a_file_with_channels_that_cannot_be_is_a_channels_error_not_a_device(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """'song.wav:0' was a device named 'song.wav:0' (exit 4, "no input device matches"); the channels are wrong."""
    import re

    monkeypatch.chdir(tmp_path)
    (tmp_path / "song.wav").write_bytes(b"")
    (tmp_path / "noext").write_bytes(b"")
    for text, bad in [("song.wav:0", "0"), ("deck=song.wav:left", "left"), ("file:song.wav:0", "0"),
                      ("missing.flac:2-1", "2-1"), ("x/missing.wav:0", "0"), ("file:noext:abc", "abc")]:
        with pytest.raises(ConfigError, match=rf"^stream={re.escape(repr(text))}: channels={re.escape(repr(bad))}"):
            parse_stream_spec(text, index=0)
    # unchanged: ALSA names, missing files with a colon in their names, files whose names end like channels
    assert parse_stream_spec("hw:1,0", index=0).kind == "device"
    assert parse_stream_spec("x/My Song: Live.mp3", index=0).target == "x/My Song: Live.mp3"
    assert parse_stream_spec("file:x/take:left", index=0).target == "x/take:left"
    (tmp_path / "take:0").write_bytes(b"")
    assert parse_stream_spec("take:0", index=0).target == "take:0"
    code, err = _cli_code("run", "--stream", "song.wav:0", "--no-display")
    assert code == 2 and "stream='song.wav:0': channels='0'" in err and "no input device" not in err


def test_a_device_that_cannot_be_opened_again_is_retried_not_ended(
    fake_portaudio: list[dict[str, object]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 9's fault run: a PulseAudio sink unloaded under a capture ended the run for good."""
    import types

    now = [100.0]
    inp = LiveInput("mix.monitor", streams={"a": [0]}, model_rate=48000, stall_seconds=1.0, start_seconds=5.0)
    inp._clock = lambda: now[0]
    inp.start()
    block = np.full((480, 2), 0.1, dtype=np.float32)
    inp.push(block)
    assert [b.gap for b in inp.poll()] == [False]
    gone = [True]

    class Vanished(FakeStream):
        def __init__(self, **kw: object) -> None:
            if gone[0]:
                raise RuntimeError("Error opening InputStream: Input/output error")
            super().__init__(**kw)

    fake = types.SimpleNamespace(InputStream=Vanished, default=types.SimpleNamespace(device=[0, -1]))
    monkeypatch.setattr(devices, "sounddevice", lambda: fake)
    now[0] += 1.5  # a stall: reopened, and the device is not there
    assert inp.poll() == []
    assert [(b.gap, b.samples.shape[0]) for b in inp.poll()] == [(True, 0)]  # the stall's gap, once
    assert (inp.restarts, inp.reopen_failures, inp.finished, inp.error) == (1, 1, False, None)
    now[0] += 0.5
    inp.poll()
    assert inp.reopen_failures == 1  # retried every stall_seconds, not on every poll
    now[0] += 0.6
    inp.poll()
    assert inp.reopen_failures == 2
    gone[0] = False  # the sink is loaded again
    now[0] += 1.1
    inp.poll()
    assert inp.reopen_failures == 2 and len(fake_portaudio) == 2
    inp.push(block)
    assert [(b.gap, b.samples.shape[0]) for b in inp.poll()] == [(False, 480)]  # audio again
    assert inp.stats()["reopen_failures"] == 2
    inp.close()


def test_pcm_rate_and_channels_are_bounded_and_one_poll_is_bounded() -> None:
    """`--rate 1` turned 2 MB of stdin into GBs in one poll; `--channels 1000000000` gave 0 updates and exit 0."""
    from rtmer.inputs.base import MAX_CHANNELS, MAX_RATE, MIN_RATE

    for rate, channels, expected in ((1, 2, r"rate=1 must be an integer in 1000\.\.768000 \[Hz\]"),
                                     (MAX_RATE + 1, 2, r"rate=768001 must be an integer"),
                                     (44100, 10**9, r"channels=1000000000 must be an integer in 1\.\.64"),
                                     (44100, MAX_CHANNELS + 1, r"channels=65 must be")):
        with pytest.raises(ConfigError, match=expected):
            PcmInput("s", fmt="s16le", rate=rate, channels=channels, model_rate=16000)
    r, w = os.pipe()
    os.write(w, bytes(60_000))  # 30 s of mono s16 at the lowest rate: 480,000 samples at 16 kHz
    os.close(w)
    with os.fdopen(r, "rb") as src:
        inp = PcmInput("s", fmt="s16le", rate=MIN_RATE, channels=1, model_rate=16000, source=src)
        sizes = []
        while not inp.finished:
            sizes.append(sum(b.samples.shape[0] for b in inp.poll()))
    assert max(sizes) <= 10 * 16000 + 200  # PCM_POLL_SECONDS of audio a poll, at most
    assert abs(sum(sizes) - 30 * 16000) < 200

"""Audio inputs: live devices (sounddevice), audio files (soundfile), raw PCM on stdin.

Devices are PortAudio's, plus the PulseAudio/PipeWire sources (monitors of outputs
included) that ``pactl`` lists, when it is installed and a server answers. A source is
captured through PortAudio's ALSA ``pulse`` device, with ``PULSE_SOURCE`` naming it
while the stream opens (libpulse reads it then).

Every input turns its audio into ``Block``s of mono float32 samples at the model's
rate, one stream id per block, so all inputs feed the same pipeline:

    device/file/stdin -> channel pick + downmix -> resample (soxr, streaming) -> Block

An input is polled by the runner without blocking. Live and stdin inputs expose a
file descriptor that becomes readable when audio has arrived (``fileno``); paced
inputs say when their next block is due (``next_due``, monotonic [s]).

Live capture: the PortAudio callback only copies into a ``RingBuffer`` and writes one
byte to a non-blocking wake-up pipe (skipped when the pipe is full). On an overrun the
oldest audio is dropped and the next block of every stream on that device is a gap.
Several streams may share one device (``deck1`` on channels 1-2, ``deck2`` on 3-4):
the device is opened once and each stream picks its channels from the same frames.

Declared latency: the resampler (soxr HQ streaming) adds ``resampler_delay_seconds``
(0 when no resampling is needed); capture adds the device's input latency.
"""

from __future__ import annotations

import json
import logging
import os
import re
import select
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, Protocol

import numpy as np
import soxr

from rtmer.errors import AudioInputError, ConfigError, DeviceNotFoundError
from rtmer.ring import RingBuffer

log = logging.getLogger(__name__)

FILE_BLOCK_SECONDS = 0.1  # files and generators are read in blocks of this length [s]
RING_SECONDS = 4.0  # live ring capacity [s]
START_SECONDS = 5.0  # longest wait for a freshly opened device's first audio [s] (see LiveInput)
PCM_FORMATS: dict[str, np.dtype[Any]] = {"s16le": np.dtype("<i2"), "f32le": np.dtype("<f4"), "s32le": np.dtype("<i4")}


@dataclass(frozen=True, slots=True)
class Block:
    """Mono float32 ``samples`` at the model rate for ``stream``.

    ``lost_samples`` > 0 or ``gap`` means audio is missing before these samples.
    ``nonfinite_samples`` counts the input's NaN/inf samples (in its own channels and
    rate, before downmix and resampling) that were replaced by 0 in ``samples``.
    """

    stream: str
    samples: np.ndarray
    lost_samples: int = 0
    gap: bool = False
    nonfinite_samples: int = 0


class Input(Protocol):
    """A source of blocks for one or more streams, polled without blocking."""

    name: str
    streams: list[str]
    finished: bool
    error: str | None

    def start(self) -> None: ...

    def fileno(self) -> int | None: ...

    def next_due(self) -> float | None: ...

    def poll(self) -> list[Block]: ...

    def stats(self) -> dict[str, int]: ...

    def close(self) -> None: ...


# ---- channel selection, downmix, resampling -------------------------------------------
def parse_channels(text: str) -> list[int]:
    """'1-2' -> [0, 1]; '3,4' -> [2, 3]; '1-2,5' -> [0, 1, 4]. Channels are 1-based in text."""
    out: list[int] = []
    if not re.fullmatch(r"\s*\d+(\s*-\s*\d+)?(\s*,\s*\d+(\s*-\s*\d+)?)*\s*", text or ""):
        raise ConfigError(f"channels={text!r} must look like '1', '1-2' or '3,4' (1-based)")
    for part in text.split(","):
        lo_s, _, hi_s = part.partition("-")
        lo, hi = int(lo_s), int(hi_s or lo_s)
        if lo < 1 or hi < lo:
            raise ConfigError(f"channels={text!r}: range {part.strip()!r} must be ascending and start at 1")
        out.extend(range(lo - 1, hi))
    return sorted(set(out))


class MonoResampler:
    """Stage: frames [n, channels] at ``in_rate`` -> mono float32 at ``out_rate``.

    Picks ``channels`` (0-based; None = all), averages them, and resamples with soxr's
    streaming resampler (bypassed when the rates are equal). Non-finite samples of the
    picked channels (NaN, inf) become 0 first and are counted; ``take_nonfinite()``
    returns the count since it was last called. Replacing them before the resampler
    keeps one bad sample from spreading over the filter's length.

    Notes
    -----
    The resampler keeps its filter history between calls; its output does not depend on
    how the input is chunked. ``flush()`` drains it at the end of a stream.
    """

    def __init__(self, *, in_rate: int, out_rate: int, channels: Sequence[int] | None = None) -> None:
        if in_rate <= 0:
            raise ConfigError(f"input sample rate={in_rate!r} must be a positive integer [Hz]")
        self.in_rate = int(in_rate)
        self.out_rate = int(out_rate)
        self.channels = list(channels) if channels is not None else None
        self._rs: Any = None
        self._nonfinite = 0
        self.reset()

    def take_nonfinite(self) -> int:
        """Non-finite input samples replaced by 0 since the last call [count]."""
        n, self._nonfinite = self._nonfinite, 0
        return n

    @property
    def delay_seconds(self) -> float:
        return 0.0 if self._rs is None else float(self._rs.delay()) / self.out_rate

    def _mono(self, frames: np.ndarray) -> np.ndarray:
        x = np.asarray(frames, dtype=np.float32)
        if self.channels is not None and x.ndim > 1:
            x = x[:, self.channels]
        finite = np.isfinite(x)
        if not finite.all():
            self._nonfinite += int(x.size - np.count_nonzero(finite))
            x = np.where(finite, x, np.float32(0.0))
        if x.ndim == 1:
            return x
        return x[:, 0].copy() if x.shape[1] == 1 else x.mean(axis=1, dtype=np.float32)

    def process(self, frames: np.ndarray) -> np.ndarray:
        mono = self._mono(frames)
        if self._rs is None:
            return np.ascontiguousarray(mono, dtype=np.float32)
        return np.asarray(self._rs.resample_chunk(np.ascontiguousarray(mono)), dtype=np.float32)

    def flush(self) -> np.ndarray:
        if self._rs is None:
            return np.zeros(0, dtype=np.float32)
        return np.asarray(self._rs.resample_chunk(np.zeros(0, dtype=np.float32), last=True), dtype=np.float32)

    def reset(self) -> None:
        self._rs = (
            None
            if self.in_rate == self.out_rate
            else soxr.ResampleStream(self.in_rate, self.out_rate, 1, dtype="float32", quality="HQ")
        )


# ---- devices ------------------------------------------------------------------------
PACTL_TIMEOUT_S = 5.0  # longest wait for one ``pactl`` call [s]
PULSE_HOST_DEVICE = "pulse"  # the PortAudio (ALSA plugin) device that PulseAudio/PipeWire sources are captured through
_PULSE_ROUTED = ("pulse", "default")  # ALSA devices that capture the server's default source when a server runs
# Positions ALSA's pulse plugin asks for, by channel count (PA_CHANNEL_MAP_ALSA, the rest filled with aux0...)
_ALSA_POSITIONS = ("front-left", "front-right", "rear-left", "rear-right", "front-center", "lfe", "side-left", "side-right")


def _sd() -> Any:
    try:
        import sounddevice
    except OSError as exc:  # PortAudio library missing
        raise AudioInputError("sounddevice", f"PortAudio is not available ({exc}); install libportaudio2") from exc
    return sounddevice


def list_input_devices() -> list[dict[str, Any]]:
    """PortAudio input devices as dicts: kind ('portaudio'), index, name, hostapi,
    max_input_channels, default_samplerate [Hz]."""
    sd = _sd()
    devices = []
    for index, dev in enumerate(sd.query_devices()):
        if int(dev["max_input_channels"]) > 0:
            api = sd.query_hostapis(int(dev["hostapi"]))["name"]
            devices.append(
                {
                    "kind": "portaudio",
                    "index": index,
                    "name": str(dev["name"]),
                    "hostapi": str(api),
                    "max_input_channels": int(dev["max_input_channels"]),
                    "default_samplerate": float(dev["default_samplerate"]),
                }
            )
    return devices


def describe_device(dev: dict[str, Any]) -> str:
    return (
        f"{dev['index']:>3}: {dev['name']} ({dev['hostapi']}, {dev['max_input_channels']} in, "
        f"{dev['default_samplerate']:.0f} Hz)"
    )


@dataclass(frozen=True, slots=True)
class PulseSource:
    """A PulseAudio/PipeWire source as ``pactl`` lists it (monitors of outputs included).

    ``rate`` [Hz]; ``channel_map`` is None when pactl's short listing (no maps) was all there was.
    """

    name: str
    description: str
    channels: int
    rate: int
    channel_map: tuple[str, ...] | None
    monitor: bool


def _pactl(*args: str) -> str | None:
    """stdout of ``pactl ARGS`` in the C locale, or None: no pactl, no server, an old pactl, a timeout."""
    exe = shutil.which("pactl")
    if exe is None:
        return None
    try:
        done = subprocess.run(
            [exe, *args], stdin=subprocess.DEVNULL, capture_output=True, text=True,
            timeout=PACTL_TIMEOUT_S, env={**os.environ, "LC_ALL": "C"},
        )
    except (OSError, subprocess.SubprocessError) as exc:
        log.debug("pactl %s: %s", " ".join(args), exc)
        return None
    if done.returncode != 0:
        log.debug("pactl %s exited with %d: %s", " ".join(args), done.returncode, done.stderr.strip())
        return None
    return done.stdout


def _spec_numbers(spec: str) -> tuple[int, int]:
    """'s16le 2ch 44100Hz' -> (2, 44100); zeros for what it does not say."""
    ch = re.search(r"(\d+)ch\b", spec)
    hz = re.search(r"(\d+)\s*Hz\b", spec)
    return (int(ch.group(1)) if ch else 0, int(hz.group(1)) if hz else 0)


def _sources_from_json(text: str) -> list[PulseSource] | None:
    try:
        raw = json.loads(text)
        out = []
        for d in raw:
            name = str(d["name"])
            channels, rate = _spec_numbers(str(d.get("sample_specification", "")))
            cmap = d.get("channel_map")
            props = d.get("properties") or {}
            monitor_of = d.get("monitor_of_sink")
            monitor = (
                props.get("device.class") == "monitor"
                or name.endswith(".monitor")
                or (isinstance(monitor_of, str) and monitor_of not in ("", "n/a"))
            )
            out.append(
                PulseSource(
                    name=name,
                    description=str(d.get("description") or ""),
                    channels=channels,
                    rate=rate,
                    channel_map=tuple(str(cmap).split(",")) if isinstance(cmap, str) and cmap else None,
                    monitor=bool(monitor),
                )
            )
        return out
    except (ValueError, TypeError, KeyError, AttributeError) as exc:  # pactl's JSON has had bugs
        log.debug("pactl's JSON list of sources is unusable (%s); using its short list", exc)
        return None


def _sources_from_short(text: str) -> list[PulseSource]:
    """``pactl list short sources``: index, name, driver, sample spec, state (tab-separated)."""
    out = []
    for line in text.splitlines():
        cols = line.split("\t")
        if len(cols) < 4 or not cols[1]:
            continue
        channels, rate = _spec_numbers(cols[3])
        out.append(PulseSource(cols[1], "", channels, rate, None, cols[1].endswith(".monitor")))
    return out


def list_pulse_sources() -> tuple[list[PulseSource], str | None]:
    """(sources, the default source's name) of the PulseAudio or PipeWire server, from ``pactl``.

    ``pactl -f json`` (pactl 16 and later) first, else pactl's short listing. Returns
    ``([], None)`` when pactl is not installed or no server answers: PortAudio's own
    devices are then all there is.
    """
    text = _pactl("-f", "json", "list", "sources")
    sources = _sources_from_json(text) if text is not None else None
    if sources is None:
        short = _pactl("list", "short", "sources")
        if short is None:
            return [], None
        sources = _sources_from_short(short)
    default: str | None = None
    info = _pactl("-f", "json", "info")
    if info is not None:
        try:
            value = json.loads(info).get("default_source_name")
            default = str(value) if value else None
        except (ValueError, AttributeError):
            info = None
    if info is None:
        plain = _pactl("info") or ""
        found = re.search(r"^Default Source:\s*(\S+)\s*$", plain, flags=re.MULTILINE)
        default = found.group(1) if found else None
    return sources, default


def alsa_plugin_channel_map(channels: int) -> tuple[str, ...]:
    """The channel positions ALSA's pulse plugin records ``channels`` channels with.

    PulseAudio hands a record stream the source's channels matched *by position*, so
    channel k of the capture is channel k of the source only where the source's map is
    this one: mono, stereo (front-left, front-right) and quad (plus rear-left,
    rear-right) sources are; a pro-audio source (aux0, aux1, ...) is not.
    """
    if channels == 1:
        return ("mono",)
    base = max(n for n in (2, 4, 5, 6, 8) if n <= channels)
    return _ALSA_POSITIONS[:base] + tuple(f"aux{i}" for i in range(channels - base))


def describe_source(src: PulseSource, *, default: bool = False) -> str:
    tags = (["monitor"] if src.monitor else []) + [f"{src.channels} ch", f"{src.rate} Hz"]
    if src.channel_map is not None and src.channels > 2 and src.channel_map != alsa_plugin_channel_map(src.channels):
        tags.append(f"positions {','.join(src.channel_map)}: only the downmix, no channel picks")
    tags += ["default"] if default else []
    about = f"{src.description} " if src.description else ""
    return f"{src.name}: {about}({', '.join(tags)})"


def _pulse_host(devices: Sequence[dict[str, Any]]) -> dict[str, Any] | None:
    """The PortAudio device that PulseAudio/PipeWire sources are captured through (ALSA's 'pulse')."""
    for d in devices:
        if d["name"] == PULSE_HOST_DEVICE:
            return dict(d)
    return None


def input_devices_json() -> list[dict[str, Any]]:
    """``rtmer devices --json``: PortAudio devices, then PulseAudio/PipeWire sources (kind 'pulse')."""
    devices = list_input_devices()
    sources, default = list_pulse_sources()
    host = _pulse_host(devices)
    out: list[dict[str, Any]] = [dict(d) for d in devices]
    for s in sources:
        out.append(
            {
                "kind": "pulse",
                "index": None,
                "name": s.name,
                "description": s.description,
                "hostapi": "PulseAudio",
                "max_input_channels": s.channels,
                "default_samplerate": float(s.rate),
                "channel_map": list(s.channel_map) if s.channel_map is not None else None,
                "monitor": s.monitor,
                "default": s.name == default,
                "capture_through": host["name"] if host else None,
                "stream_spec": f"device:{s.name}",
            }
        )
    return out


def describe_input_devices() -> str:
    """``rtmer devices``: what ``device:INDEX`` and ``device:NAME`` can pick, one per line."""
    devices = list_input_devices()
    sources, default = list_pulse_sources()
    lines = ["PortAudio input devices (device:INDEX or device:NAME):"]
    lines += [f"  {describe_device(d)}" for d in devices] or ["    (none)"]
    if sources:
        host = _pulse_host(devices)
        how = (
            f"captured through PortAudio's {host['name']!r} device" if host
            else f"PortAudio has no {PULSE_HOST_DEVICE!r} device to capture them through; install libasound2-plugins"
        )
        lines.append(f"PulseAudio/PipeWire sources (device:NAME; {how}):")
        lines += [f"    {describe_source(s, default=s.name == default)}" for s in sources]
        if default is not None:
            lines.append(f"  device:pulse and device:default capture the default source ({default}).")
    return "\n".join(lines) + "\n"


def find_input_device(query: str | int | None) -> dict[str, Any]:
    """The input device by index, exact name, or case-insensitive name substring.

    PortAudio devices first, then PulseAudio/PipeWire sources by name (or description).
    None means the system's default input. Raises ``DeviceNotFoundError`` listing the
    input devices when nothing (or nothing unambiguous) matches.

    The dict is a PortAudio device's (``list_input_devices``) plus ``label`` (what
    messages call it), ``pulse_source`` (the source to capture through PortAudio's
    'pulse' device, or None), ``via_pulse`` (True when PulseAudio picks the channels:
    ALSA's pulse plugin), ``source`` (the source captured, when known) and
    ``channel_map`` (its positions, when known). For a source, and for 'pulse'/'default' while a server runs,
    ``max_input_channels`` and ``default_samplerate`` are the source's own, not the
    plugin's (which accepts any count and upmixes). Without pactl, 'pulse' and
    'default' are what PortAudio says, and channels past the source's are upmixed copies.
    """
    devices = list_input_devices()
    sources, default_source = list_pulse_sources()
    by_name = {s.name: s for s in sources}
    listing = [describe_device(d) for d in devices] + [
        f"source {describe_source(s, default=s.name == default_source)}" for s in sources
    ]
    hint = "a file is read with --file PATH or --stream file:PATH; `rtmer devices` lists the devices"

    def portaudio(d: dict[str, Any]) -> dict[str, Any]:
        out = {**d, "label": repr(d["name"]), "pulse_source": None, "via_pulse": False, "channel_map": None}
        effective = os.environ.get("PULSE_SOURCE") or default_source
        src = by_name.get(effective or "") if d["name"] in _PULSE_ROUTED and d["hostapi"] == "ALSA" else None
        if src is not None and src.channels > 0:
            out.update(
                label=f"{d['name']!r} (source {src.name})",
                max_input_channels=src.channels,
                default_samplerate=float(src.rate or d["default_samplerate"]),
                via_pulse=True,  # ALSA's default is the pulse plugin while a server runs
                channel_map=src.channel_map,
                source=src.name,
            )
        return out

    def pulse(src: PulseSource) -> dict[str, Any]:
        host = _pulse_host(devices)
        if host is None:
            raise AudioInputError(
                src.name,
                f"is a PulseAudio/PipeWire source, but PortAudio has no {PULSE_HOST_DEVICE!r} device to capture "
                "it through; install libasound2-plugins (ALSA's pulse plugin)",
            )
        return {
            **host,
            "kind": "pulse",
            "label": f"source {src.name!r}",
            "pulse_source": src.name,
            "via_pulse": src.channels > 0,  # False only when pactl did not say how many channels
            "channel_map": src.channel_map,
            "max_input_channels": src.channels or host["max_input_channels"],
            "default_samplerate": float(src.rate or host["default_samplerate"]),
            "source": src.name,
        }

    if query is None or query == "default":
        default = _sd().default.device[0]
        if default is not None and default >= 0:
            for d in devices:
                if d["index"] == default:
                    return portaudio(d)
        for d in devices:
            if d["name"] == "default":
                return portaudio(d)
        if devices:
            return portaudio(devices[0])
        raise DeviceNotFoundError("default", listing, hint=hint)
    text = str(query).strip()
    if text.isdigit():
        for d in devices:
            if d["index"] == int(text):
                return portaudio(d)
        raise DeviceNotFoundError(text, listing, hint=hint)
    exact = [d for d in devices if d["name"].lower() == text.lower()]
    if exact:
        return portaudio(exact[0])
    if text in by_name:
        return pulse(by_name[text])
    low = text.lower()
    some_devices = [d for d in devices if low in d["name"].lower()]
    some_sources = [s for s in sources if low in s.name.lower() or low in s.description.lower()]
    found = len(some_devices) + len(some_sources)
    if found == 1:
        return portaudio(some_devices[0]) if some_devices else pulse(some_sources[0])
    if found > 1:
        matches = [f"device {d['index']} {d['name']!r}" for d in some_devices] + [
            f"source {s.name!r}" + (f" ({s.description})" if s.description else "") for s in some_sources
        ]
        raise DeviceNotFoundError(text, listing, matches=matches)
    picked = re.fullmatch(r"(.+):\d+(-\d+)?", text)
    if picked:  # device:NAME:0 is a missing device 'NAME:0': channel 0 is no channel
        hint = f"channels are numbered from 1, e.g. device:{picked.group(1)}:1-2; {hint}"
    raise DeviceNotFoundError(text, listing, hint=hint)


def format_channels(channels: Sequence[int]) -> str:
    """[0, 1] -> '1-2'; [0, 4] -> '1,5' (0-based in, 1-based text out, as ``parse_channels`` reads)."""
    parts: list[str] = []
    chans = sorted(set(channels))
    i = 0
    while i < len(chans):
        j = i
        while j + 1 < len(chans) and chans[j + 1] == chans[j] + 1:
            j += 1
        parts.append(f"{chans[i] + 1}" if i == j else f"{chans[i] + 1}-{chans[j] + 1}")
        i = j + 1
    return ",".join(parts)


def _capture_channels(info: dict[str, Any], streams: Mapping[str, Sequence[int] | None]) -> int:
    """How many channels to open ``info`` with so that each stream gets the channels it asks for.

    Raises ``ConfigError`` naming the stream and how many channels the device has when a
    stream asks for more, and, through PulseAudio, when the source's channel positions
    would not come through by number.
    """
    have = int(info["max_input_channels"])
    picks = {s: list(ch) for s, ch in streams.items() if ch is not None}
    for stream, ch in picks.items():
        if max(ch) >= have:
            raise ConfigError(
                f"stream {stream}: channels={format_channels(ch)} asked for, but {info['label']} has {have} input "
                f"channel{'s' if have != 1 else ''} ({format_channels(range(have)) if have else 'none'})"
            )
    if not info.get("via_pulse"):
        return (max(c for ch in picks.values() for c in ch) + 1) if picks else min(2, have)
    if not picks:
        return 1  # PulseAudio's own downmix of every channel of the source, whatever their positions
    cmap = info.get("channel_map")
    want = alsa_plugin_channel_map(have)
    if cmap is not None and tuple(cmap) != want:
        name = info.get("source") or "SOURCE"
        raise ConfigError(
            f"stream {next(iter(picks))}: {info['label']} has the channel positions {','.join(cmap)}, but through "
            f"ALSA's pulse plugin PulseAudio hands over channels by position ({','.join(want)}), so channel numbers "
            f"would not be the source's. Make a source with those positions, e.g. `pactl load-module "
            f"module-remap-source source_name=rtmer_{have}ch master={name} channels={have} "
            f"master_channel_map={','.join(cmap)} channel_map={','.join(want)} remix=no`, and use device:rtmer_{have}ch"
        )
    return have  # the whole source, in its own order: nothing is remixed


class _WakePipe:
    """A non-blocking self-pipe: a producer thread pokes it, a consumer selects on it."""

    def __init__(self) -> None:
        self.rfd, self.wfd = os.pipe()
        os.set_blocking(self.rfd, False)
        os.set_blocking(self.wfd, False)

    def poke(self) -> None:
        try:
            os.write(self.wfd, b"\x00")
        except (BlockingIOError, OSError):
            pass  # full (a wake-up is already pending) or closed

    def drain(self) -> None:
        try:
            while os.read(self.rfd, 4096):
                pass
        except (BlockingIOError, OSError):
            pass

    def close(self) -> None:
        for fd in (self.rfd, self.wfd):
            try:
                os.close(fd)
            except OSError:
                pass


@dataclass
class _RingStream:
    stream: str
    converter: MonoResampler


class RingInput:
    """Consumer side of a ring buffer of device frames, fanned out to several streams.

    ``streams`` maps each stream id to its 0-based channel indices (None = all channels).
    The producer (an audio callback, or a test/benchmark thread) calls ``push``.
    """

    def __init__(
        self,
        name: str,
        *,
        streams: Mapping[str, Sequence[int] | None],
        device_rate: int,
        model_rate: int,
        channels: int,
        ring_seconds: float = RING_SECONDS,
    ) -> None:
        self.name = name
        self.streams = list(streams)
        self.finished = False
        self.error: str | None = None
        self.device_rate = int(device_rate)
        self.model_rate = int(model_rate)
        self.ring = RingBuffer(max(1, int(ring_seconds * device_rate)), channels=channels)
        self._wake = _WakePipe()
        self._outs = [
            _RingStream(s, MonoResampler(in_rate=device_rate, out_rate=model_rate, channels=ch))
            for s, ch in streams.items()
        ]
        self.callback_status_flags = 0
        self._flagged = False

    # producer side: called from the audio thread
    def push(self, frames: np.ndarray, *, flagged: bool = False) -> None:
        """Copy frames [n, channels] into the ring and wake the consumer. Never blocks."""
        self.ring.write(frames)
        if flagged:
            self._flagged = True
            self.callback_status_flags += 1
        self._wake.poke()

    # consumer side
    def start(self) -> None:
        pass

    def fileno(self) -> int | None:
        return self._wake.rfd

    def next_due(self) -> float | None:
        return None

    def poll(self) -> list[Block]:
        self._wake.drain()
        got = self.ring.read()
        flagged, self._flagged = self._flagged, False
        blocks: list[Block] = []
        gap = got.lost > 0 or flagged
        lost = int(round(got.lost * self.model_rate / self.device_rate))
        for out in self._outs:
            if gap:
                out.converter.reset()
            samples = out.converter.process(got.frames) if got.frames.shape[0] else np.zeros(0, np.float32)
            bad = out.converter.take_nonfinite()
            if gap or samples.shape[0] or bad:
                blocks.append(Block(out.stream, samples, lost_samples=lost, gap=gap, nonfinite_samples=bad))
        return blocks

    @property
    def resampler_delay_seconds(self) -> float:
        return max((o.converter.delay_seconds for o in self._outs), default=0.0)

    def stats(self) -> dict[str, int]:
        return {
            "overruns": self.ring.overruns,
            "dropped_frames": self.ring.dropped_frames,
            "status_flags": self.callback_status_flags,
        }

    def close(self) -> None:
        self.finished = True
        self._wake.close()


class LiveInput(RingInput):
    """A live input device opened once through sounddevice, shared by several streams.

    ``device`` is what ``find_input_device`` takes: an index, a PortAudio device name,
    a PulseAudio/PipeWire source name (captured through PortAudio's 'pulse' device
    with ``PULSE_SOURCE`` set while it opens), or None for the default input.

    Notes
    -----
    Watchdog (in ``poll``): a device that has delivered audio and then delivers nothing
    for ``stall_seconds`` [s] is closed and reopened, counted in ``restarts``, and the
    next block of every stream is a gap. A freshly opened device is given
    ``start_seconds`` [s] for its first audio before it counts as stalled (and then
    reopened, without a gap: nothing was lost). A device that cannot be opened again
    (unplugged, its PulseAudio sink unloaded) does not end the input: it is retried
    every ``stall_seconds``, each failure counted in ``reopen_failures``, and the audio
    that comes back starts with a gap. A PulseAudio/PipeWire monitor source
    delivers its first audio only when its sink next renders, which can be seconds
    after the open (about 1.7 s, measured on a null sink's monitor through ALSA's pulse
    plugin, every time); a watchdog started at the open took that for a stall.

    Channels: through ALSA's pulse plugin the whole source is opened when a stream picks
    channels (so nothing is remixed and channel k is the source's channel k), and one
    channel, PulseAudio's downmix, when none does.
    """

    def __init__(
        self,
        device: str | int | None,
        *,
        streams: Mapping[str, Sequence[int] | None],
        model_rate: int,
        device_rate: int | None = None,
        blocksize: int = 0,
        latency: float | str = 0.1,
        ring_seconds: float = RING_SECONDS,
        stall_seconds: float = 1.0,
        start_seconds: float = START_SECONDS,
    ) -> None:
        info = find_input_device(device)
        channels = _capture_channels(info, streams)
        rate = int(device_rate or info["default_samplerate"])
        super().__init__(
            f"device {info['source']}" if info.get("kind") == "pulse" else f"device {info['index']} ({info['name']})",
            streams=streams,
            device_rate=rate,
            model_rate=model_rate,
            channels=channels,
            ring_seconds=ring_seconds,
        )
        self.device = info
        self._blocksize = blocksize
        # Driver input latency [s]. Through ALSA's pulse plugin 'low' and 'high' (~35 ms)
        # sometimes stall after a few hundred frames; 0.1 s was steady in every trial.
        # It delays capture only; the ring-to-output path does not include it.
        self._latency = latency
        self._stream: Any = None
        self.stall_seconds = stall_seconds
        self.start_seconds = start_seconds
        self.restarts = 0
        self.reopen_failures = 0
        self._clock: Callable[[], float] = time.monotonic
        self._last_written = 0
        self._last_progress = 0.0
        self._delivering = False  # has audio arrived since the stream was (re)opened?

    def _callback(self, indata: np.ndarray, frames: int, time_info: Any, status: Any) -> None:
        # Runs on PortAudio's thread: copy, flag, poke. No allocation of buffers, no locks, no logging.
        self.push(indata, flagged=bool(status.input_overflow))

    def start(self) -> None:
        self._open()

    def poll(self) -> list[Block]:
        """As ``RingInput.poll``, plus the watchdog (see the class notes)."""
        blocks = super().poll()
        now = self._clock()
        written = self.ring._written
        if written != self._last_written:
            self._last_written, self._last_progress, self._delivering = written, now, True
        elif self._stream is not None:
            limit = self.stall_seconds if self._delivering else self.start_seconds
            if now - self._last_progress > limit:
                self.restarts += 1
                if self.restarts == 1:
                    when = "for %.1f s" if self._delivering else "in the %.1f s after it was opened"
                    log.warning(f"%s delivered no audio {when}; reopening it (counted)", self.name, limit)
                self._close_stream()
                if self._delivering:
                    self._flagged = True  # audio was lost: a gap for every stream
                self._reopen(now)
        elif now - self._last_progress > self.stall_seconds:  # the device is gone: try again
            self._reopen(now)
        return blocks

    def _reopen(self, now: float) -> None:
        """Open the device again; when it is not there (unplugged, a sink unloaded), keep the
        input alive and retry every ``stall_seconds`` [s] rather than end the run."""
        try:
            self._open()
        except AudioInputError as exc:
            self._stream = None
            self._last_progress = now  # (the stall that led here has already marked a gap)
            self.reopen_failures += 1
            if self.reopen_failures == 1:
                log.warning("%s cannot be opened again (%s); retrying every %.1f s (counted)",
                            self.name, exc.reason, self.stall_seconds)

    def stats(self) -> dict[str, int]:
        return {**super().stats(), "restarts": self.restarts, "reopen_failures": self.reopen_failures}

    def _open(self) -> None:
        sd = _sd()
        source = self.device.get("pulse_source")
        before = os.environ.get("PULSE_SOURCE")
        try:
            if source:
                # libpulse reads PULSE_SOURCE when ALSA's pulse plugin opens its connection,
                # i.e. inside InputStream(); the environment is restored right after.
                os.environ["PULSE_SOURCE"] = source
            try:
                self._stream = sd.InputStream(
                    device=self.device["index"],
                    channels=self.ring.channels,
                    samplerate=self.device_rate,
                    dtype="float32",
                    blocksize=self._blocksize,
                    latency=self._latency,
                    callback=self._callback,
                )
            finally:
                if source:
                    if before is None:
                        os.environ.pop("PULSE_SOURCE", None)
                    else:
                        os.environ["PULSE_SOURCE"] = before
            self._stream.start()
        except Exception as exc:  # PortAudioError and friends
            raise AudioInputError(self.name, f"cannot open for capture ({exc})") from exc
        self._last_written = self.ring._written
        self._last_progress = self._clock()
        self._delivering = False
        log.info("capturing from %s at %d Hz, %d channels", self.name, self.device_rate, self.ring.channels)

    def _close_stream(self) -> None:
        if self._stream is not None:
            try:
                self._stream.stop()
                self._stream.close()
            except Exception as exc:
                log.warning("closing %s: %s", self.name, exc)
            self._stream = None

    def close(self) -> None:
        self._close_stream()
        super().close()


# ---- paced block inputs (files, generators) --------------------------------------------
class _BlockReader(Protocol):
    def __call__(self, frames: int) -> np.ndarray: ...


class PacedInput:
    """Frames from a reader, in fixed blocks of ``FILE_BLOCK_SECONDS``, for one stream.

    ``realtime=True`` releases each block when its last sample is due on the wall clock
    (monotonic time since ``start``); otherwise as fast as the runner asks. The block
    size does not depend on pacing, so the samples are identical either way.
    """

    max_blocks_per_poll = 64

    def __init__(
        self,
        name: str,
        stream: str,
        *,
        read: _BlockReader,
        rate: int,
        model_rate: int,
        channels: Sequence[int] | None = None,
        realtime: bool,
        on_close: Callable[[], None] | None = None,
    ) -> None:
        self.name = name
        self.streams = [stream]
        self.stream = stream
        self.finished = False
        self.error: str | None = None
        self.warning: str | None = None
        """Something wrong with the input that did not stop it (a truncated file), or None."""
        self.rate = int(rate)
        self.realtime = realtime
        self.block_frames = max(1, int(round(FILE_BLOCK_SECONDS * rate)))
        self._read = read
        self._converter = MonoResampler(in_rate=rate, out_rate=model_rate, channels=channels)
        self._on_close = on_close
        self._t0: float | None = None
        self._blocks = 0

    def start(self) -> None:
        self._t0 = time.monotonic()

    def fileno(self) -> int | None:
        return None

    def next_due(self) -> float | None:
        if self.finished:
            return None
        if not self.realtime or self._t0 is None:
            return time.monotonic()
        return self._t0 + (self._blocks + 1) * self.block_frames / self.rate

    def poll(self) -> list[Block]:
        if self._t0 is None:
            self.start()
        out: list[np.ndarray] = []
        now = time.monotonic()
        for _ in range(self.max_blocks_per_poll):
            if self.finished:
                break
            due = self.next_due()
            if self.realtime and due is not None and due > now:
                break
            try:
                frames = self._read(self.block_frames)
            except Exception as exc:
                self.error = f"read failed after {self._blocks * self.block_frames / self.rate:.2f} s ({exc})"
                self.finished = True
                break
            self._blocks += 1
            if frames.shape[0]:
                out.append(self._converter.process(frames))
            if frames.shape[0] < self.block_frames:
                out.append(self._converter.flush())
                self.finished = True
        bad = self._converter.take_nonfinite()
        if not out and not bad:
            return []
        samples = np.concatenate(out) if len(out) > 1 else (out[0] if out else np.zeros(0, np.float32))
        return [Block(self.stream, samples, nonfinite_samples=bad)]

    @property
    def resampler_delay_seconds(self) -> float:
        return self._converter.delay_seconds

    def stats(self) -> dict[str, int]:
        return {"blocks": self._blocks}

    def close(self) -> None:
        self.finished = True
        if self._on_close is not None:
            self._on_close()
            self._on_close = None


def _missing_file(path: Path) -> str:
    """Why ``path`` cannot be opened as a file, with what would help."""
    where = path if path.is_absolute() else Path.cwd() / path
    if path.exists():
        return f"is not a file ({where} is a folder or a special file)"
    if not where.parent.is_dir():
        return f"no such file (folder {where.parent} does not exist)"
    return f"no such file (looked for {where})"


def open_file(
    path: str | Path,
    *,
    stream: str,
    model_rate: int,
    channels: Sequence[int] | None = None,
    realtime: bool = False,
) -> PacedInput:
    """An audio file (anything libsndfile reads: wav, flac, ogg, mp3) as a paced input.

    Raises ``AudioInputError`` naming the file when it cannot be opened or decoded.
    """
    import soundfile

    p = str(path)
    if not Path(p).is_file():
        raise AudioInputError(p, _missing_file(Path(p)))
    try:
        f = soundfile.SoundFile(p)
    except Exception as exc:  # soundfile.LibsndfileError, RuntimeError, ...
        raise AudioInputError(p, f"cannot read as audio ({exc})") from exc
    if channels is not None and max(channels) >= f.channels:
        f.close()
        raise AudioInputError(p, f"has {f.channels} channels; channel {max(channels) + 1} was asked for")

    def read(frames: int) -> np.ndarray:
        data: np.ndarray = f.read(frames, dtype="float32", always_2d=True)
        return data

    inp = PacedInput(
        f"file {p}",
        stream,
        read=read,
        rate=int(f.samplerate),
        model_rate=model_rate,
        channels=channels,
        realtime=realtime,
        on_close=f.close,
    )
    inp.warning = truncation(f)
    return inp


_SHOULD_BE = re.compile(r"^\s*(?:data|SSND)\s*:\s*(\d+)\s*\(should be (\d+)\)", re.MULTILINE)
_PLACEHOLDER_SIZES = (0, 0xFFFFFFFF, 0xFFFFFFFE, 0x7FFFFFFF)  # written by streaming encoders: size unknown


def truncation(f: Any) -> str | None:
    """Why an open ``soundfile.SoundFile`` is truncated, or None.

    libsndfile reads a WAV, AIFF or similar file whose audio chunk is shorter than its
    header says up to where it ends, and says so only in its log (``extra_info``:
    ``data : 529200 (should be 299956)``). A size that a streaming encoder writes when
    it cannot know the length (0, 0xFFFFFFFF) is not a truncation.
    """
    try:
        info = str(f.extra_info)
        frames, rate = int(f.frames), int(f.samplerate)
    except Exception:  # noqa: BLE001 - no log, no verdict
        return None
    found = _SHOULD_BE.search(info)
    if found is None or rate <= 0 or frames <= 0:
        return None
    declared, present = int(found.group(1)), int(found.group(2))
    if declared in _PLACEHOLDER_SIZES or declared <= present or present <= 0:
        return None
    have = frames / rate
    says = have * declared / present
    return (f"is truncated: its header promises {says:.2f} s of audio, the file holds {have:.2f} s; "
            "what is there was analysed")


# ---- raw PCM on stdin ----------------------------------------------------------------
class PcmInput:
    """Raw interleaved PCM from a pipe (stdin by default), read without blocking.

    ``fmt`` is one of ``PCM_FORMATS`` (little-endian); ``rate`` [Hz] and ``channels``
    describe the bytes. Partial frames are carried over between reads.

    Notes
    -----
    The descriptor is never switched to non-blocking mode: that flag belongs to the
    open file, which a terminal or a pipe shares with the shell and the other programs
    on it, so setting it would leave the next ``cat`` failing with EAGAIN. ``poll``
    reads only while ``select`` says there is data (or the end).
    """

    def __init__(
        self,
        stream: str,
        *,
        fmt: str,
        rate: int,
        channels: int,
        model_rate: int,
        pick: Sequence[int] | None = None,
        source: BinaryIO | None = None,
    ) -> None:
        if fmt not in PCM_FORMATS:
            raise ConfigError(f"format={fmt!r} must be one of {', '.join(PCM_FORMATS)}")
        if not isinstance(rate, int) or rate <= 0:
            raise ConfigError(f"rate={rate!r} must be a positive integer [Hz]")
        if not isinstance(channels, int) or channels <= 0:
            raise ConfigError(f"channels={channels!r} must be a positive integer")
        if pick is not None and max(pick) >= channels:
            raise ConfigError(f"stdin has {channels} channels; channel {max(pick) + 1} was asked for")
        self.name = "stdin"
        self.stream = stream
        self.streams = [stream]
        self.finished = False
        self.error: str | None = None
        self.dtype = PCM_FORMATS[fmt]
        self.channels = channels
        self._scale = 1.0 / 32768.0 if fmt == "s16le" else (1.0 / 2147483648.0 if fmt == "s32le" else 1.0)
        self._frame_bytes = self.dtype.itemsize * channels
        self._fd = (source or sys.stdin.buffer).fileno()
        self._pending = b""
        self._converter = MonoResampler(in_rate=rate, out_rate=model_rate, channels=pick)
        self.bytes_read = 0

    def start(self) -> None:
        pass

    def _readable(self) -> bool:
        try:
            ready, _, _ = select.select([self._fd], [], [], 0)
        except (OSError, ValueError):
            return True  # let the read report it
        return bool(ready)

    def fileno(self) -> int | None:
        return None if self.finished else self._fd

    def next_due(self) -> float | None:
        return None

    def poll(self) -> list[Block]:
        chunks = [self._pending] if self._pending else []
        eof = False
        for _ in range(64):
            if not self._readable():
                break
            try:
                data = os.read(self._fd, 1 << 16)
            except BlockingIOError:  # a descriptor someone else made non-blocking
                break
            except OSError as exc:
                self.error = f"read failed ({exc})"
                eof = True
                break
            if not data:
                eof = True
                break
            chunks.append(data)
            self.bytes_read += len(data)
        raw = b"".join(chunks)
        usable = len(raw) - len(raw) % self._frame_bytes
        self._pending = raw[usable:]
        parts: list[np.ndarray] = []
        if usable:
            x = np.frombuffer(raw[:usable], dtype=self.dtype).reshape(-1, self.channels)
            parts.append(self._converter.process(x.astype(np.float32) * np.float32(self._scale)))
        if eof:
            parts.append(self._converter.flush())
            self.finished = True
        parts = [p for p in parts if p.shape[0]]
        bad = self._converter.take_nonfinite()
        if not parts and not bad:
            return []
        samples = np.concatenate(parts) if len(parts) > 1 else (parts[0] if parts else np.zeros(0, np.float32))
        return [Block(self.stream, samples, nonfinite_samples=bad)]

    @property
    def resampler_delay_seconds(self) -> float:
        return self._converter.delay_seconds

    def stats(self) -> dict[str, int]:
        return {"bytes": self.bytes_read, "partial_bytes": len(self._pending)}

    def close(self) -> None:
        self.finished = True


# ---- stream specifications -------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class StreamSpec:
    """One ``--stream [ID=]SPEC``: ``kind`` is 'device', 'file' or 'stdin'.

    SPEC forms: ``device:NAME_OR_INDEX[:CHANNELS]`` (also ``default``; a name that itself
    ends in ``:digits`` needs explicit channels, e.g. ``device:hw:1,0:1-2``),
    ``file:PATH[:CHANNELS]`` or a path, ``stdin[:CHANNELS]`` or ``-``. Without a prefix,
    SPEC is a file when it exists or looks like a path (has a ``/`` or ``\\``, or ends in
    an audio extension such as ``.wav`` or ``.mp3``), so that a missing file is
    reported as a missing file; anything else is a device.
    """

    id: str
    kind: str
    target: str | None = None
    channels: list[int] | None = field(default=None)


_CHANNELS_RE = re.compile(r"^\d+(-\d+)?(,\d+(-\d+)?)*$")
# What libsndfile and ffmpeg read, lower case: a bare SPEC ending in one of these is a file.
AUDIO_EXTENSIONS = frozenset(
    ".wav .wave .flac .ogg .oga .opus .mp3 .mp2 .m4a .m4b .mp4 .aac .aif .aiff .aifc .au .snd .caf .w64 .rf64 "
    ".wv .ape .wma .webm .mka .mkv .mov .ac3 .amr .spx .alac".split()
)


def looks_like_path(text: str) -> bool:
    """True for text that names a file rather than a device: a ``/`` or ``\\``, or an audio extension."""
    return "/" in text or "\\" in text or Path(text).suffix.lower() in AUDIO_EXTENSIONS


def _split_channels(rest: str) -> tuple[str, list[int] | None]:
    head, sep, tail = rest.rpartition(":")
    if sep and head and _CHANNELS_RE.match(tail):
        try:
            return head, parse_channels(tail)
        except ConfigError:
            pass  # not channels after all, e.g. the ALSA name 'hw:1,0'
    return rest, None


def _check_channels_after_path(text: str, spec: str) -> None:
    """Refuse a file followed by channels that cannot be (``song.wav:0``, ``song.wav:left``).

    ``_split_channels`` leaves such a tail in the name, so a bare ``song.wav:0`` named a
    device ``song.wav:0``. The tail counts as channels after an existing file, or when it is
    digits and ranges after something that looks like a path; a missing file with a colon
    in its name (``x/My Song: Live.mp3``) stays a missing file. Raises ``ConfigError``.
    """
    before, sep, tail = spec.rpartition(":")
    if not sep or not before or Path(spec).exists():
        return
    if Path(before).is_file() or (looks_like_path(before) and re.fullmatch(r"[\d\s,-]+", tail)):
        try:
            parse_channels(tail)
        except ConfigError as exc:
            raise ConfigError(f"stream={text!r}: {exc}") from None


def stream_spec_relative_to(text: str, folder: Path) -> str:
    """``[ID=]SPEC`` with a relative file path taken from ``folder`` (a config file's).

    A file (``file:PATH[:CHANNELS]``, or a bare SPEC that is one by the rules of
    ``StreamSpec``, judged from ``folder``) becomes ``[ID=]file:FOLDER/PATH[:CHANNELS]``,
    ``~`` expanded; devices, ``stdin`` and ``-`` are returned as they are.
    """
    ident, sep, spec = text.partition("=")
    prefix = f"{ident}=" if sep and re.fullmatch(r"[A-Za-z0-9_.-]+", ident) else ""
    spec = spec.strip() if prefix else text.strip()
    if spec.startswith("file:"):
        rest = spec[5:]
    elif not spec or spec in ("-", "stdin") or spec.startswith(("stdin:", "device:")):
        return text
    elif (folder / Path(spec).expanduser()).exists() or looks_like_path(_split_channels(spec)[0]):
        rest = spec
    else:
        return text  # a device by name
    return f"{prefix}file:{folder / Path(rest).expanduser()}" if rest else text


def parse_stream_spec(text: str, *, index: int) -> StreamSpec:
    """Parse ``[ID=]SPEC``; ``index`` numbers streams without an id (``s1``, ``s2``...)."""
    ident, sep, spec = text.partition("=")
    if not sep or not re.fullmatch(r"[A-Za-z0-9_.-]+", ident):
        ident, spec = f"s{index + 1}", text
    spec = spec.strip()
    if not spec:
        raise ConfigError(f"stream={text!r} names no source; use device:NAME[:CH], file:PATH or stdin")
    if spec in ("-", "stdin") or spec.startswith("stdin:"):
        ch = parse_channels(spec[6:]) if spec.startswith("stdin:") else None
        return StreamSpec(ident, "stdin", None, ch)
    if spec.startswith("file:"):
        rest = spec[5:]
        path, ch = (rest, None) if Path(rest).exists() else _split_channels(rest)
        if ch is None:
            _check_channels_after_path(text, rest)
        return StreamSpec(ident, "file", path, ch)
    if spec.startswith("device:"):
        dev, ch = _split_channels(spec[7:])
        return StreamSpec(ident, "device", dev, ch)
    if Path(spec).exists():
        return StreamSpec(ident, "file", spec, None)
    head, ch = _split_channels(spec)
    if ch is None:
        _check_channels_after_path(text, spec)
    if looks_like_path(head):
        return StreamSpec(ident, "file", head, ch)
    return StreamSpec(ident, "device", head, ch)

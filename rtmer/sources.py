"""Audio inputs: live devices (sounddevice), audio files (soundfile), raw PCM on stdin.

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

import logging
import os
import re
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
PCM_FORMATS: dict[str, np.dtype[Any]] = {"s16le": np.dtype("<i2"), "f32le": np.dtype("<f4"), "s32le": np.dtype("<i4")}


@dataclass(frozen=True, slots=True)
class Block:
    """Mono float32 ``samples`` at the model rate for ``stream``.

    ``lost_samples`` > 0 or ``gap`` means audio is missing before these samples.
    """

    stream: str
    samples: np.ndarray
    lost_samples: int = 0
    gap: bool = False


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
    streaming resampler (bypassed when the rates are equal).

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
        self.reset()

    @property
    def delay_seconds(self) -> float:
        return 0.0 if self._rs is None else float(self._rs.delay()) / self.out_rate

    def _mono(self, frames: np.ndarray) -> np.ndarray:
        x = np.asarray(frames, dtype=np.float32)
        if x.ndim == 1:
            return x
        if self.channels is not None:
            x = x[:, self.channels]
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
def _sd() -> Any:
    try:
        import sounddevice
    except OSError as exc:  # PortAudio library missing
        raise AudioInputError("sounddevice", f"PortAudio is not available ({exc}); install libportaudio2") from exc
    return sounddevice


def list_input_devices() -> list[dict[str, Any]]:
    """Input devices as dicts: index, name, hostapi, max_input_channels, default_samplerate."""
    sd = _sd()
    devices = []
    for index, dev in enumerate(sd.query_devices()):
        if int(dev["max_input_channels"]) > 0:
            api = sd.query_hostapis(int(dev["hostapi"]))["name"]
            devices.append(
                {
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


def find_input_device(query: str | int | None) -> dict[str, Any]:
    """The input device by index, exact name, or case-insensitive name substring.

    None means the system's default input. Raises ``DeviceNotFoundError`` listing the
    input devices when nothing (or nothing unambiguous) matches.
    """
    devices = list_input_devices()
    listing = [describe_device(d) for d in devices]
    if query is None or query == "default":
        default = _sd().default.device[0]
        if default is not None and default >= 0:
            for d in devices:
                if d["index"] == default:
                    return d
        for d in devices:
            if d["name"] == "default":
                return d
        if devices:
            return devices[0]
        raise DeviceNotFoundError("default", listing)
    text = str(query).strip()
    if text.isdigit():
        for d in devices:
            if d["index"] == int(text):
                return d
        raise DeviceNotFoundError(text, listing)
    exact = [d for d in devices if d["name"].lower() == text.lower()]
    if exact:
        return exact[0]
    matches = [d for d in devices if text.lower() in d["name"].lower()]
    if len(matches) == 1:
        return matches[0]
    if len(matches) > 1:
        raise DeviceNotFoundError(f"{text} (ambiguous: {len(matches)} devices match)", listing)
    raise DeviceNotFoundError(text, listing)


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
            if gap or samples.shape[0]:
                blocks.append(Block(out.stream, samples, lost_samples=lost, gap=gap))
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
    """A live input device opened once through sounddevice, shared by several streams."""

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
    ) -> None:
        info = find_input_device(device)
        wanted = [c for ch in streams.values() if ch is not None for c in ch]
        channels = (max(wanted) + 1) if wanted else min(2, info["max_input_channels"])
        if channels > info["max_input_channels"]:
            raise ConfigError(
                f"channels: device {info['name']!r} has {info['max_input_channels']} input channels, "
                f"channel {channels} was asked for"
            )
        rate = int(device_rate or info["default_samplerate"])
        super().__init__(
            f"device {info['index']} ({info['name']})",
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
        self.restarts = 0
        self._last_written = 0
        self._last_progress = 0.0

    def _callback(self, indata: np.ndarray, frames: int, time_info: Any, status: Any) -> None:
        # Runs on PortAudio's thread: copy, flag, poke. No allocation of buffers, no locks, no logging.
        self.push(indata, flagged=bool(status.input_overflow))

    def start(self) -> None:
        self._open()
        self._last_progress = time.monotonic()

    def poll(self) -> list[Block]:
        """As ``RingInput.poll``, plus a watchdog: a device that delivers nothing for
        ``stall_seconds`` [s] is closed and reopened (counted in ``restarts``; a gap)."""
        blocks = super().poll()
        now = time.monotonic()
        written = self.ring._written
        if written != self._last_written:
            self._last_written, self._last_progress = written, now
        elif self._stream is not None and now - self._last_progress > self.stall_seconds:
            self.restarts += 1
            if self.restarts == 1:
                log.warning("%s delivered no audio for %.1f s; reopening it (counted)", self.name, self.stall_seconds)
            self._close_stream()
            self._flagged = True
            self._open()
            self._last_progress = now
        return blocks

    def stats(self) -> dict[str, int]:
        return {**super().stats(), "restarts": self.restarts}

    def _open(self) -> None:
        sd = _sd()
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
            self._stream.start()
        except Exception as exc:  # PortAudioError and friends
            raise AudioInputError(self.name, f"cannot open for capture ({exc})") from exc
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
        if not out:
            return []
        return [Block(self.stream, np.concatenate(out) if len(out) > 1 else out[0])]

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
        raise AudioInputError(p, "no such file")
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

    return PacedInput(
        f"file {p}",
        stream,
        read=read,
        rate=int(f.samplerate),
        model_rate=model_rate,
        channels=channels,
        realtime=realtime,
        on_close=f.close,
    )


# ---- raw PCM on stdin ----------------------------------------------------------------
class PcmInput:
    """Raw interleaved PCM from a pipe (stdin by default), read without blocking.

    ``fmt`` is one of ``PCM_FORMATS`` (little-endian); ``rate`` [Hz] and ``channels``
    describe the bytes. Partial frames are carried over between reads.
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
        os.set_blocking(self._fd, False)

    def fileno(self) -> int | None:
        return None if self.finished else self._fd

    def next_due(self) -> float | None:
        return None

    def poll(self) -> list[Block]:
        chunks = [self._pending] if self._pending else []
        eof = False
        for _ in range(64):
            try:
                data = os.read(self._fd, 1 << 16)
            except BlockingIOError:
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
        if not parts:
            return []
        return [Block(self.stream, np.concatenate(parts) if len(parts) > 1 else parts[0])]

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
    ``file:PATH[:CHANNELS]`` or an existing path, ``stdin[:CHANNELS]`` or ``-``.
    """

    id: str
    kind: str
    target: str | None = None
    channels: list[int] | None = field(default=None)


_CHANNELS_RE = re.compile(r"^\d+(-\d+)?(,\d+(-\d+)?)*$")


def _split_channels(rest: str) -> tuple[str, list[int] | None]:
    head, sep, tail = rest.rpartition(":")
    if sep and head and _CHANNELS_RE.match(tail):
        try:
            return head, parse_channels(tail)
        except ConfigError:
            pass  # not channels after all, e.g. the ALSA name 'hw:1,0'
    return rest, None


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
        path, ch = _split_channels(spec[5:])
        return StreamSpec(ident, "file", path, ch)
    if spec.startswith("device:"):
        dev, ch = _split_channels(spec[7:])
        return StreamSpec(ident, "device", dev, ch)
    if Path(spec).exists():
        return StreamSpec(ident, "file", spec, None)
    dev, ch = _split_channels(spec)
    return StreamSpec(ident, "device", dev, ch)

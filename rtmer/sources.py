"""Audio inputs: live devices (sounddevice), audio files (soundfile), raw PCM on stdin.

Devices are found by ``rtmer.devices`` (PortAudio's, and the PulseAudio/PipeWire sources
that ``pactl`` lists); a source is captured through PortAudio's ALSA ``pulse`` device,
with ``PULSE_SOURCE`` naming it while the stream opens (libpulse reads it then).

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
import select
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, Protocol

import numpy as np
import soxr

from rtmer import devices
from rtmer.devices import capture_channels, find_input_device, parse_channels
from rtmer.errors import AudioInputError, ConfigError
from rtmer.ring import RingBuffer

log = logging.getLogger(__name__)

FILE_BLOCK_SECONDS = 0.1  # files and generators are read in blocks of this length [s]
RING_SECONDS = 4.0  # live ring capacity [s]
START_SECONDS = 5.0  # longest wait for a freshly opened device's first audio [s] (see LiveInput)
PCM_FORMATS: dict[str, np.dtype[Any]] = {"s16le": np.dtype("<i2"), "f32le": np.dtype("<f4"), "s32le": np.dtype("<i4")}
MIN_RATE = 1000  # lowest input sample rate accepted [Hz]: a 1 Hz rate made 2 MB of PCM into GBs at the model's rate
MAX_RATE = 768_000  # highest [Hz]
MAX_CHANNELS = 64  # most input channels accepted (as ffmpeg's AU reader in rtmer.decode)
SAMPLE_LIMIT = 1e6  # |sample| beyond this is clipped before the downmix and resampler, which would overflow float32
PCM_POLL_SECONDS = 10.0  # most raw PCM one poll of PcmInput reads [s of audio]


def check_layout(*, rate: object, channels: object, what: str = "") -> None:
    """Refuse a sample ``rate`` [Hz] or ``channels`` count outside the bounds above (``ConfigError`` naming them).

    ``what`` prefixes the value's name (``"stdin "``, a file's name).
    """
    if isinstance(rate, bool) or not isinstance(rate, int) or not MIN_RATE <= rate <= MAX_RATE:
        raise ConfigError(f"{what}rate={rate!r} must be an integer in {MIN_RATE}..{MAX_RATE} [Hz]")
    if isinstance(channels, bool) or not isinstance(channels, int) or not 1 <= channels <= MAX_CHANNELS:
        raise ConfigError(f"{what}channels={channels!r} must be an integer in 1..{MAX_CHANNELS}")


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
        if x.size and float(np.max(np.abs(x))) > SAMPLE_LIMIT:  # finite, but the mean or soxr would overflow to inf
            x = np.clip(x, -SAMPLE_LIMIT, SAMPLE_LIMIT)
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
        channels = capture_channels(info, streams)
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
        sd = devices.sounddevice()
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
    (monotonic time since ``start``); otherwise as fast as the runner asks, reading up to
    ``unpaced_blocks_per_read`` blocks a call. The block size does not depend on pacing, so
    the samples are identical either way, unless a read fails: then what that read had
    taken is lost, one block paced and up to a second unpaced.
    """

    max_blocks_per_poll = 64
    unpaced_blocks_per_read = 10  # a failed read loses at most this many blocks (1 s)

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
        at_end: Callable[[int], str | None] | None = None,
    ) -> None:
        """``at_end(frames read)``, called when the reader runs out, says why the input
        ended early (a truncated file), or None; it becomes ``warning``."""
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
        self._at_end = at_end
        self._t0: float | None = None
        self._blocks = 0
        self.frames_read = 0
        """Frames the reader gave [count]."""

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
        read: list[np.ndarray] = []
        now = time.monotonic()
        for index in range(self.max_blocks_per_poll):
            if self.finished:
                break
            due = self.next_due()
            if self.realtime and due is not None and due > now:
                break
            if not read:
                try:
                    # Unpaced, one read serves several blocks: a read call costs more than its samples.
                    count = 1 if self.realtime else min(self.unpaced_blocks_per_read, self.max_blocks_per_poll - index)
                    read = self._read_blocks(count)
                except Exception as exc:
                    self.error = f"read failed after {self._blocks * self.block_frames / self.rate:.2f} s ({exc})"
                    self.finished = True
                    break
            frames = read.pop(0)
            self._blocks += 1
            self.frames_read += frames.shape[0]
            if frames.shape[0]:
                out.append(self._converter.process(frames))
            if frames.shape[0] < self.block_frames:
                out.append(self._converter.flush())
                self.finished = True
                if self._at_end is not None:
                    self.warning = self._at_end(self.frames_read) or self.warning
        bad = self._converter.take_nonfinite()
        if not out and not bad:
            return []
        samples = np.concatenate(out) if len(out) > 1 else (out[0] if out else np.zeros(0, np.float32))
        return [Block(self.stream, samples, nonfinite_samples=bad)]

    def _read_blocks(self, count: int) -> list[np.ndarray]:
        """Up to ``count`` blocks from one read; at the end of the input the last one is short (or empty)."""
        frames = self._read(self.block_frames * count)
        blocks = [frames[start : start + self.block_frames] for start in range(0, len(frames), self.block_frames)]
        if len(frames) < self.block_frames * count and (not blocks or len(blocks[-1]) == self.block_frames):
            blocks.append(frames[:0])  # the input ended on a block boundary
        return blocks

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
        with quiet_native_stderr(p):
            f = soundfile.SoundFile(p)
    except Exception as exc:  # soundfile.LibsndfileError, RuntimeError, ...
        raise AudioInputError(p, f"cannot read as audio ({exc})") from exc
    if channels is not None and max(channels) >= f.channels:
        f.close()
        raise AudioInputError(p, f"has {f.channels} channels; channel {max(channels) + 1} was asked for")
    try:
        check_layout(rate=int(f.samplerate), channels=int(f.channels), what="its ")
    except ConfigError as exc:
        f.close()
        raise AudioInputError(p, f"cannot be analysed: {exc}") from None
    rate = int(f.samplerate)
    declared = int(f.frames) if 0 < int(f.frames) < 2**62 else 0
    header = truncation(f) or ogg_truncation(p, f)
    damaged: list[str] = []  # why decoding stopped before the end, if it did
    noisy = str(f.format) == "MP3"  # libmpg123 writes its warnings straight to fd 2

    def read(frames: int) -> np.ndarray:
        if damaged:
            return np.zeros((0, f.channels), np.float32)
        start = f.tell()
        try:
            with quiet_native_stderr(p) if noisy else _nothing():
                data: np.ndarray = f.read(frames, dtype="float32", always_2d=True)
        except Exception as exc:  # soundfile.LibsndfileError: a FLAC that "lost sync" where it was cut
            damaged.append(str(exc).strip() or type(exc).__name__)
            return _salvage(f, start, frames)
        return data

    def at_end(got: int) -> str | None:
        if damaged:
            return (f"is truncated or damaged: decoding stopped at {got / rate:.2f} s of the {declared / rate:.2f} s "
                    f"its header promises ({damaged[0]}); what is there was analysed")
        if header:
            return header
        if declared - got > TRUNCATION_TOLERANCE * rate:
            return (f"is truncated: its header promises {declared / rate:.2f} s of audio, the file holds "
                    f"{got / rate:.2f} s; what is there was analysed")
        return None

    inp = PacedInput(
        f"file {p}",
        stream,
        read=read,
        rate=int(f.samplerate),
        model_rate=model_rate,
        channels=channels,
        realtime=realtime,
        on_close=f.close,
        at_end=at_end,
    )
    inp.warning = header
    return inp


TRUNCATION_TOLERANCE = 0.05  # audio short of what the header promises before a file counts as truncated [s]


def _salvage(f: Any, start: int, frames: int) -> np.ndarray:
    """After a read of ``frames`` from ``start`` failed: the frames before the failure, read again in small pieces."""
    got: list[np.ndarray] = []
    try:
        f.seek(start)
        while sum(len(g) for g in got) < frames:
            piece: np.ndarray = f.read(min(1024, frames - sum(len(g) for g in got)), dtype="float32", always_2d=True)
            got.append(piece)
            if len(piece) == 0:
                break
    except Exception:  # noqa: BLE001 - the failure again: keep what came before it
        pass
    return np.concatenate(got) if got else np.zeros((0, f.channels), np.float32)


@contextmanager
def _nothing() -> Iterator[None]:
    yield


@contextmanager
def quiet_native_stderr(what: str) -> Iterator[None]:
    """Catch what C libraries write straight to file descriptor 2 while this is active, and log it at debug level.

    libmpg123 (through libsndfile) prints lines such as ``Warning: Xing stream size off
    by more than 1%`` for a truncated MP3; rtmer reports the truncation itself, in its
    own words. Only for the main thread's short decoder calls: anything else written to
    stderr meanwhile is caught too. Does nothing when stderr is closed.
    """
    try:
        sys.stderr.flush()
    except (AttributeError, OSError, ValueError):
        pass
    try:
        saved = os.dup(2)
    except OSError:
        yield
        return
    try:
        with tempfile.TemporaryFile(prefix="rtmer-stderr-") as cap:
            os.dup2(cap.fileno(), 2)
            try:
                yield
            finally:
                os.dup2(saved, 2)
                cap.seek(0)
                said = cap.read().decode("utf-8", "replace").split("\n")
                said = [line.strip() for line in said if line.strip()]
                if said:
                    log.debug("%s: the decoder said: %s", what, " / ".join(said))
    finally:
        os.close(saved)


def ogg_truncation(path: str, f: Any) -> str | None:
    """Why an Ogg file is truncated, or None: its last page must be whole and carry the end-of-stream mark.

    libsndfile counts an Ogg file's frames from its last whole page, so a cut file looks
    complete; only the pages show it.
    """
    if str(getattr(f, "format", "")) != "OGG":
        return None
    try:
        with open(path, "rb") as g:
            size = g.seek(0, os.SEEK_END)
            g.seek(max(0, size - 65_536))
            tail = g.read()
    except OSError:
        return None
    at = tail.rfind(b"OggS")
    if at < 0 or len(tail) - at < 27:
        whole, eos = False, False
    else:
        segments = tail[at + 27 : at + 27 + tail[at + 26]]
        length = 27 + tail[at + 26] + sum(segments)
        whole = len(segments) == tail[at + 26] and at + length == len(tail)
        eos = bool(tail[at + 5] & 0x04)
    if whole and eos:
        return None
    rate = int(f.samplerate)
    have = int(f.frames) / rate if rate > 0 else 0.0
    return (f"is truncated: it ends {'inside a page' if not whole else 'without the end-of-stream mark'} after "
            f"{have:.2f} s of audio; what is there was analysed")


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
    describe the bytes, within ``check_layout``'s bounds. Partial frames are carried
    over between reads; one ``poll`` reads at most ``PCM_POLL_SECONDS`` of audio.

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
        check_layout(rate=rate, channels=channels)
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
        self._poll_bytes = max(1, int(PCM_POLL_SECONDS * rate)) * self._frame_bytes
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
        room = self._poll_bytes  # one poll's audio is bounded, so its resampled size and its time are too
        while room > 0:
            if not self._readable():
                break
            try:
                data = os.read(self._fd, min(1 << 16, room))
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
            room -= len(data)
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


def _split_stream_id(text: str) -> tuple[str | None, str]:
    """``ID=SPEC`` -> (ID, SPEC); a text without a valid id (letters, digits, ``_.-``) -> (None, text); stripped."""
    ident, sep, spec = text.partition("=")
    if sep and re.fullmatch(r"[A-Za-z0-9_.-]+", ident):
        return ident, spec.strip()
    return None, text.strip()


def _check_stream_id(text: str, folder: Path) -> None:
    """Refuse ``ID=SPEC`` whose ID is not a valid id (``my deck=song.wav``), which would
    otherwise be read as one file of that whole name and reported as missing. A text with
    a ``/``, ``\\`` or ``:`` before its ``=`` is a path or a device; an existing file
    (in ``folder``) is a file. Raises ``ConfigError``."""
    ident, sep, spec = text.partition("=")
    if not sep or not spec.strip() or re.search(r"[/\\:]", ident) or (folder / Path(text).expanduser()).exists():
        return
    raise ConfigError(f"stream={text!r}: the stream id {ident!r} (before '=') may hold only letters, digits, "
                      f"'_', '.' and '-' (deck1=SPEC); or, if {text!r} is meant as a file, there is no such file")


def stream_spec_relative_to(text: str, folder: Path) -> str:
    """``[ID=]SPEC`` with a relative file path taken from ``folder`` (a config file's).

    A file (``file:PATH[:CHANNELS]``, or a bare SPEC that is one by the rules of
    ``StreamSpec``, judged from ``folder``) becomes ``[ID=]file:FOLDER/PATH[:CHANNELS]``,
    ``~`` expanded; devices, ``stdin`` and ``-`` are returned as they are.
    """
    ident, spec = _split_stream_id(text)
    if ident is None:
        _check_stream_id(text, folder)
    prefix = f"{ident}=" if ident else ""
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
    named, spec = _split_stream_id(text)
    if named is None:
        _check_stream_id(text, Path("."))
    ident = named or f"s{index + 1}"
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

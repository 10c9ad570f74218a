"""Live capture: a ring buffer of device frames fanned out to streams (``RingInput``) and
the sound card behind it (``LiveInput``, through sounddevice).

Devices are found by ``rtmer.inputs.devices`` (PortAudio's, and the PulseAudio/PipeWire
sources that ``pactl`` lists); a source is captured through PortAudio's ALSA ``pulse``
device, with ``PULSE_SOURCE`` naming it while the stream opens (libpulse reads it then).

The PortAudio callback only copies into a ``RingBuffer`` and writes one byte to a
non-blocking wake-up pipe (skipped when the pipe is full). On an overrun the oldest
audio is dropped and the next block of every stream on that device is a gap. Several
streams may share one device (``deck1`` on channels 1-2, ``deck2`` on 3-4): the device
is opened once and each stream picks its channels from the same frames.

Declared latency: the resampler adds ``resampler_delay_seconds``; capture adds the
device's input latency.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from rtmer.core.resample import MonoResampler
from rtmer.errors import AudioInputError
from rtmer.inputs import devices
from rtmer.inputs.base import Block
from rtmer.inputs.devices import capture_channels, find_input_device
from rtmer.inputs.ring import RingBuffer

log = logging.getLogger(__name__)

RING_SECONDS = 4.0  # live ring capacity [s]
START_SECONDS = 5.0  # longest wait for a freshly opened device's first audio [s] (see LiveInput)


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

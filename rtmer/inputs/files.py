"""Audio files: read with soundfile (``open_file``), truncation found and named, and
released in blocks, paced to the wall clock or as fast as asked (``PacedInput``).

``rtmer.inputs.decode`` opens what soundfile cannot (through ffmpeg) and stdin's files;
both end in a ``PacedInput``.
"""

from __future__ import annotations

import logging
import os
import re
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from rtmer.core.resample import MonoResampler
from rtmer.errors import AudioInputError, ConfigError
from rtmer.inputs.base import Block, check_layout

log = logging.getLogger(__name__)

FILE_BLOCK_SECONDS = 0.1  # files and generators are read in blocks of this length [s]


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

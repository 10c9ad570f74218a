"""Audio files in any format: libsndfile first, then ffmpeg when it is on the PATH.

``open_audio`` is what the command line opens a file with. libsndfile (through
soundfile) reads wav, flac, ogg, aiff and, in recent versions, mp3. Anything it
cannot read (m4a/AAC, opus in mp4, wma, video files' audio) is decoded by an
``ffmpeg`` subprocess when one is on the PATH; otherwise the error says so and how to
get it. ``open_stdin`` reads an encoded stream from stdin (a file format, read to its
end into a temporary file first); raw PCM on stdin is ``rtmer.inputs.pcm.PcmInput``.

Notes
-----
ffmpeg is asked for the first audio stream as big-endian float32 in a Sun AU stream
(``-c:a pcm_f32be -f au``) at the file's own rate and channel count, so that the
channel pick, downmix and soxr resampling are rtmer's, exactly as for a file that
libsndfile reads: the same PCM gives the same numbers whichever decoder read it. The
AU header (24 bytes or more: magic ``.snd``, data offset, data size, encoding 6 =
float32, rate, channels) is read when the file is opened, so a file that ffmpeg cannot
decode fails there, naming the file with ffmpeg's own message. ffmpeg's stderr goes to
a temporary file (never a pipe that could fill and stall it). ffmpeg runs in a
session of its own, so a Ctrl-C at the terminal reaches rtmer only, which shuts down
cleanly; the process is terminated when the input closes. Reads block until ffmpeg has decoded the audio,
which is far faster than real time.
"""

from __future__ import annotations

import os
import shutil
import struct
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import IO, BinaryIO

import numpy as np

from rtmer.errors import AudioInputError, ConfigError
from rtmer.inputs.base import check_layout
from rtmer.inputs.files import PacedInput, open_file, quiet_native_stderr

FFMPEG_HINT = (
    "libsndfile reads wav, flac, ogg, aiff and mp3; for m4a/AAC and other formats install ffmpeg "
    "(e.g. apt install ffmpeg) so that `ffmpeg` is on the PATH, or convert first: ffmpeg -i IN -c:a flac OUT.flac"
)
_AU_MAGIC = b".snd"
_AU_FLOAT32 = 6
_STDERR_TAIL = 400  # characters of ffmpeg's stderr quoted in an error


def ffmpeg_path() -> str | None:
    """The ``ffmpeg`` executable on the PATH, or None."""
    return shutil.which("ffmpeg")


def soundfile_error(path: str | Path) -> str | None:
    """Why libsndfile cannot read ``path`` (its message), or None when it can."""
    import soundfile

    try:
        with quiet_native_stderr(str(path)):
            soundfile.info(str(path))
    except Exception as exc:  # soundfile.LibsndfileError, RuntimeError, ...
        return str(exc) or type(exc).__name__
    return None


def duration_seconds(path: str | Path) -> float | None:
    """The duration [s] of a file libsndfile reads, or None (unknown without decoding it)."""
    import soundfile

    try:
        with quiet_native_stderr(str(path)):
            info = soundfile.info(str(path))
    except Exception:
        return None
    frames, rate = int(info.frames), int(info.samplerate)
    return frames / rate if rate > 0 and 0 <= frames < 2**62 else None


def open_audio(
    path: str | Path,
    *,
    stream: str,
    model_rate: int,
    channels: Sequence[int] | None = None,
    realtime: bool = False,
    name: str | None = None,
) -> PacedInput:
    """An audio file of any format as a paced input (see the module docstring).

    Raises ``AudioInputError`` naming the file: missing, unreadable by libsndfile with
    no ffmpeg on the PATH (with the hint), or undecodable by ffmpeg (its message).
    ``name`` is what the errors of the ffmpeg path call the file (default: the path).
    """
    p = str(path)
    label = name or p
    why = soundfile_error(p) if Path(p).is_file() else None
    if why is None:  # libsndfile reads it, or open_file says what is wrong with the path
        return open_file(p, stream=stream, model_rate=model_rate, channels=channels, realtime=realtime)
    exe = ffmpeg_path()
    if exe is None:
        raise AudioInputError(label, f"cannot read as audio ({why.strip()}); {FFMPEG_HINT}")
    return open_ffmpeg(p, stream=stream, model_rate=model_rate, channels=channels, realtime=realtime,
                       ffmpeg=exe, name=label)


class _FfmpegReader:
    """Float32 frames [n, channels] from a running ffmpeg that writes AU to its stdout."""

    def __init__(self, path: str, *, ffmpeg: str, name: str) -> None:
        self.name = name
        self._errfile: IO[bytes] = tempfile.TemporaryFile(prefix="rtmer-ffmpeg-")
        target = os.path.abspath(path)
        cmd = [ffmpeg, "-nostdin", "-hide_banner", "-loglevel", "error", "-i", f"file:{target}",
               "-map", "0:a:0", "-vn", "-sn", "-dn", "-c:a", "pcm_f32be", "-f", "au", "-"]
        try:
            self._proc: subprocess.Popen[bytes] = subprocess.Popen(
                cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=self._errfile,
                start_new_session=True,  # Ctrl-C is rtmer's to handle; close() ends ffmpeg
            )
        except OSError as exc:
            self._errfile.close()
            raise AudioInputError(name, f"cannot run ffmpeg {ffmpeg!r} ({exc})") from exc
        assert self._proc.stdout is not None
        self._out: IO[bytes] = self._proc.stdout
        try:
            self.rate, self.channels = self._header()
        except BaseException:
            self.close()
            raise
        self._frame_bytes = 4 * self.channels
        self._delivered = 0  # frames read [count]
        self._damaged = ""  # why ffmpeg stopped part way, once it has

    def _stderr_tail(self) -> str:
        try:
            self._errfile.seek(0)
            text = self._errfile.read().decode("utf-8", "replace").strip()
        except (OSError, ValueError):
            return ""
        lines = [line for line in text.splitlines() if line.strip()]
        tail = " / ".join(lines[-3:])
        return tail[-_STDERR_TAIL:]

    def _failure(self, what: str) -> AudioInputError:
        try:
            code = self._proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            code = None
        said = self._stderr_tail()
        detail = f"ffmpeg exited with {code}" if code not in (None, 0) else "ffmpeg"
        return AudioInputError(self.name, f"{what} ({detail}{': ' + said if said else ''})")

    def _read_exactly(self, n: int) -> bytes:
        chunks: list[bytes] = []
        got = 0
        while got < n:
            data = self._out.read(n - got)
            if not data:
                break
            chunks.append(data)
            got += len(data)
        return b"".join(chunks)

    def _header(self) -> tuple[int, int]:
        head = self._read_exactly(24)
        if len(head) < 24:
            raise self._failure("ffmpeg cannot decode it")
        magic = head[:4]
        offset, _size, encoding, rate, channels = struct.unpack(">5I", head[4:24])
        if magic != _AU_MAGIC or encoding != _AU_FLOAT32 or offset < 24 or rate <= 0 or not 1 <= channels <= 64:
            raise AudioInputError(
                self.name,
                f"ffmpeg's output is not the float32 AU stream asked for (magic {magic!r}, encoding {encoding}, "
                f"rate {rate}, channels {channels})",
            )
        if len(self._read_exactly(offset - 24)) < offset - 24:
            raise self._failure("ffmpeg's output ends inside its header")
        return int(rate), int(channels)

    def at_end(self, frames: int) -> str | None:
        """Why the stream ended early, or None: ffmpeg failed after some audio, or exited 0 but reported
        errors (a truncated or damaged file), as ``rtmer.inputs.files.open_file`` says it for libsndfile's."""
        tail = self._stderr_tail()
        said = self._damaged or (f"ffmpeg: {tail}" if tail else "")
        if not said:
            return None
        return (f"is truncated or damaged: decoding stopped at {frames / self.rate:.2f} s ({said}); "
                "what is there was analysed")

    def read(self, frames: int) -> np.ndarray:
        """Up to ``frames`` frames; fewer only at the end. Raises if ffmpeg failed before any audio."""
        raw = self._read_exactly(frames * self._frame_bytes)
        usable = len(raw) - len(raw) % self._frame_bytes
        if usable < frames * self._frame_bytes:  # the end: did ffmpeg finish or fail?
            code = self._proc.wait()
            if code != 0:
                failure = self._failure("decoding failed")
                if not self._delivered and not usable:
                    raise failure
                self._damaged = failure.reason.removeprefix("decoding failed (").removesuffix(")")
        self._delivered += usable // self._frame_bytes
        data = np.frombuffer(raw[:usable], dtype=">f4").astype(np.float32).reshape(-1, self.channels)
        return data

    def close(self) -> None:
        if self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        self._out.close()
        self._errfile.close()


def open_ffmpeg(
    path: str | Path,
    *,
    stream: str,
    model_rate: int,
    channels: Sequence[int] | None = None,
    realtime: bool = False,
    ffmpeg: str | None = None,
    name: str | None = None,
) -> PacedInput:
    """A file decoded by an ffmpeg subprocess, as a paced input (see the module notes)."""
    p = str(path)
    label = name or p
    exe = ffmpeg or ffmpeg_path()
    if exe is None:
        raise AudioInputError(label, f"ffmpeg is not on the PATH; {FFMPEG_HINT}")
    reader = _FfmpegReader(p, ffmpeg=exe, name=label)
    if channels is not None and max(channels) >= reader.channels:
        reader.close()
        raise AudioInputError(label, f"has {reader.channels} channels; channel {max(channels) + 1} was asked for")
    try:
        check_layout(rate=reader.rate, channels=reader.channels, what="its ")
    except ConfigError as exc:
        reader.close()
        raise AudioInputError(label, f"cannot be analysed: {exc}") from None
    return PacedInput(f"file {label}", stream, read=reader.read, rate=reader.rate, model_rate=model_rate,
                      channels=channels, realtime=realtime, on_close=reader.close, at_end=reader.at_end)


class SpooledStdin:
    """stdin read to its end into a temporary file; ``close`` removes it.

    libsndfile needs to seek, which a pipe cannot; so an encoded stream on stdin is
    copied first. ``path`` is the copy, ``bytes`` its size. Raises ``AudioInputError``
    when the copy cannot be made (the temporary folder full or not writable), naming the
    folder and ``TMPDIR``.
    """

    def __init__(self, source: BinaryIO | None = None) -> None:
        src = source or sys.stdin.buffer
        folder = tempfile.gettempdir()
        try:
            fd, self.path = tempfile.mkstemp(prefix="rtmer-stdin-")
        except OSError as exc:
            raise AudioInputError("stdin", _spool_failure(folder, exc)) from None
        try:
            with os.fdopen(fd, "wb") as f:
                shutil.copyfileobj(src, f, 1 << 20)
        except OSError as exc:
            os.unlink(self.path)
            raise AudioInputError("stdin", _spool_failure(folder, exc)) from None
        except BaseException:
            os.unlink(self.path)
            raise
        self.bytes = os.path.getsize(self.path)

    def close(self) -> None:
        try:
            os.unlink(self.path)
        except OSError:
            pass


def _spool_failure(folder: str, exc: OSError) -> str:
    return (f"cannot be copied to a temporary file in {folder!r} ({exc.strerror or exc}), which a file format on "
            "stdin needs (libsndfile seeks); point TMPDIR at a folder with room, or give the file's path")


def open_stdin(*, stream: str, model_rate: int, source: BinaryIO | None = None) -> PacedInput:
    """An encoded stream on stdin (any format ``open_audio`` reads), as a paced input named ``stdin``.

    Reads stdin to its end into a temporary file first (see ``SpooledStdin``); the file
    is unlinked as soon as the decoder has opened it, so nothing is left behind.
    Raises ``AudioInputError`` for an empty stream or one that is not a readable format.
    """
    spool = SpooledStdin(source)
    try:
        if spool.bytes == 0:
            raise AudioInputError("stdin", "is empty; pipe audio in (a file format, or raw PCM with --format)")
        if soundfile_error(spool.path) is not None and ffmpeg_path() is None:
            raise AudioInputError(
                "stdin",
                f"not an audio file format libsndfile reads; for raw PCM give --format s16le|s32le|f32le "
                f"with --rate and --channels; {FFMPEG_HINT}",
            )
        inp = open_audio(spool.path, stream=stream, model_rate=model_rate, name="stdin")
    finally:
        spool.close()  # the decoder holds the file open; the name is no longer needed
    inp.name = "stdin"
    return inp

"""What every input is: ``Block`` and the ``Input`` protocol the runner polls, the bounds of
an input's layout (``check_layout``) and the ``--stream [ID=]SPEC`` specifications.

Every input turns its audio into ``Block``s of mono float32 samples at the model's
rate, one stream id per block, so all inputs feed the same pipeline:

    device/file/stdin -> channel pick + downmix -> resample (``rtmer.core.resample``) -> Block

An input is polled by the runner without blocking. Live and stdin inputs expose a
file descriptor that becomes readable when audio has arrived (``fileno``); paced
inputs say when their next block is due (``next_due``, monotonic [s]). The inputs are
``rtmer.inputs.live`` (devices), ``rtmer.inputs.files`` and ``rtmer.inputs.decode``
(files) and ``rtmer.inputs.pcm`` (raw PCM on stdin).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np

from rtmer.errors import ConfigError
from rtmer.inputs.devices import parse_channels

MIN_RATE = 1000  # lowest input sample rate accepted [Hz]: a 1 Hz rate made 2 MB of PCM into GBs at the model's rate
MAX_RATE = 768_000  # highest [Hz]
MAX_CHANNELS = 64  # most input channels accepted (as ffmpeg's AU reader in rtmer.inputs.decode)


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

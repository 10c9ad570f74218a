"""The Python API to the pipeline: numpy blocks in, ``Update``s out.

``Tracker`` is the same stages ``rtmer run`` and ``rtmer analyze`` use, fed by the
caller instead of a file or a sound card:

    block [frames, channels] at any rate -> downmix + resample (``MonoResampler``, soxr)
    -> hops (``HopFramer``) -> ``Engine`` (model, smoothing, mood) -> ``Update``s

through the same composite stage as the runner (``rtmer.core.pipeline.Pipeline``), so
the numbers equal the command line's for the same audio. Every stream has its own
resampler, hop framer and model state; the hops of all streams given in one call run
as one batched model call per round (see ``rtmer.core.engine``).

Example::

    tracker = rtmer.Tracker()                         # the shipped default model
    for update in tracker.process(block, sample_rate=44100):
        print(update.t, update.valence, update.arousal, update.mood)
    final = tracker.end()                             # the zero-padded last hop
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from numbers import Integral
from pathlib import Path

import numpy as np
import numpy.typing as npt

from rtmer.core.engine import Engine
from rtmer.errors import AudioInputError, ConfigError
from rtmer.core.framing import Hop
from rtmer.core.model import DEFAULT_MODEL, ModelInfo, StreamingModel
from rtmer.core.pipeline import Pipeline
from rtmer.core.smoothing import SmoothingConfig
from rtmer.core.update import Update

DEFAULT_STREAM = "main"
"""The stream id ``Tracker.process`` uses when none is given."""
MAX_CHANNELS = 256
"""Blocks with more channels than this are refused: most likely a [channels, frames] array."""
_PCM_SCALE: dict[np.dtype[np.generic], float] = {
    np.dtype(np.int16): 1.0 / 32768.0,
    np.dtype(np.int32): 1.0 / 2147483648.0,
}


@dataclass(slots=True)
class _Stream:
    sample_rate: int
    channels: int


class Tracker:
    """Valence, arousal and mood for any number of audio streams fed as numpy blocks.

    Parameters
    ----------
    model
        A shipped model's name (``"default"``, ``"large"``) or the path of an ``.onnx``
        file that meets the model contract; as ``rtmer --model``.
    smoothing
        ``"one-euro"`` (default), ``"ema"`` or ``"none"`` with their default parameters,
        or a ``SmoothingConfig`` with chosen ones (as ``--smoothing``, ``--min-cutoff``...).
    neutral_radius
        Mood ``neutral`` radius around the origin of the (valence, arousal) plane.
    hysteresis
        How far [valence/arousal units] past a mood boundary the smoothed value must go
        before the label changes.
    silence_db
        RMS level [dBFS] below which a hop counts as silence: raw (0, 0), state restarted.
    threads
        onnxruntime intra-op threads.

    The defaults are the command line's. Raises ``ModelContractError`` for a missing or
    broken model, ``ConfigError`` for a bad option (an empty ``model`` too) and
    ``TypeError`` for a ``model`` that is neither a str nor a Path.

    Notes
    -----
    Keeps per stream, between calls: its sample rate and channel count (fixed by its
    first block), the resampler's filter history, fewer than one hop of samples at the
    model's rate, and the engine's model state, smoother memory, mood and sequence
    number. An update is returned once the last sample of its hop has arrived, so it
    lags the audio by up to one hop (``hop_seconds``) plus the resampler's delay; no
    samples are ever dropped. ``end`` flushes a stream, ``reset`` forgets it.

    Not thread-safe: use one tracker per thread, or a lock.
    """

    def __init__(
        self,
        model: str | Path = DEFAULT_MODEL,
        *,
        smoothing: SmoothingConfig | str = "one-euro",
        neutral_radius: float = 0.15,
        hysteresis: float = 0.05,
        silence_db: float = -80.0,
        threads: int = 1,
    ) -> None:
        if isinstance(smoothing, str):
            smoothing = SmoothingConfig(kind=smoothing)
        elif not isinstance(smoothing, SmoothingConfig):
            raise ConfigError(f"smoothing={smoothing!r} must be 'one-euro', 'ema', 'none' or a SmoothingConfig")
        if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
            raise ConfigError(f"threads={threads!r} must be a positive integer")
        self._engine = Engine(
            StreamingModel(model, intra_op_threads=threads),
            smoothing=smoothing,
            neutral_radius=neutral_radius,
            hysteresis=hysteresis,
            silence_db=silence_db,
        )
        self._pipeline = Pipeline(self._engine)
        self._streams: dict[str, _Stream] = {}

    # ---- what the tracker is --------------------------------------------------------
    @property
    def info(self) -> ModelInfo:
        """The model's own description: name, version, ``sample_rate`` [Hz], hop size."""
        return self._engine.info

    @property
    def hop_seconds(self) -> float:
        """Time [s] between two updates of one stream (the model's hop)."""
        return self._engine.info.hop_seconds

    @property
    def latency(self) -> dict[str, float]:
        """Declared delay [s] of each stage and their ``total`` (see ``Engine.latency``);
        the resampler adds a few milliseconds more when the block rate is not the model's."""
        return self._engine.latency

    @property
    def streams(self) -> list[str]:
        """The streams being tracked: fed at least once and not ended or reset since."""
        return list(self._streams)

    # ---- the stage --------------------------------------------------------------------
    def process(self, block: npt.ArrayLike, *, sample_rate: int, stream: str = DEFAULT_STREAM) -> list[Update]:
        """Feed one block of one stream; returns the updates of the hops it completed.

        Parameters
        ----------
        block
            Samples [frames] (mono) or [frames, channels], of any length including 0.
            float32/float64 in [-1, 1] (louder samples are clipped), or int16/int32 PCM
            (scaled by 2**-15 / 2**-31). Channels are averaged to mono.
        sample_rate
            Rate of ``block`` [Hz]; resampled to the model's rate (``info.sample_rate``).
        stream
            Which stream the block belongs to. A stream's first block fixes its rate and
            channel count until ``end`` or ``reset``.

        Returns one ``Update`` per completed hop of ``hop_seconds`` (none while less than
        a hop has arrived). ``Update.t`` is the stream time [s] at the end of the hop.

        Raises ``AudioInputError`` naming the stream and the bad value (dtype, shape,
        NaN or inf samples, rate, a rate or channel count that differs from the
        stream's) and ``ConfigError`` for a bad stream id; either way nothing is kept
        from the call and every stream's state is as it was.
        """
        return self.process_streams({stream: block}, sample_rate=sample_rate)

    def process_streams(
        self, blocks: Mapping[str, npt.ArrayLike], *, sample_rate: int | Mapping[str, int]
    ) -> list[Update]:
        """Feed one block to each of several streams; their hops share batched model calls.

        ``blocks`` maps stream ids to blocks (as in ``process``; lengths may differ);
        ``sample_rate`` [Hz] is one rate for all of them or a rate per stream id.
        Returns the updates of every completed hop: round by round (the k-th new hop
        of every stream in round k, one model call per round), streams in ``blocks``
        order within a round.

        Every block is checked before any is used: if one is bad, the call raises (see
        ``process``) and no stream changes. ``blocks`` that is not a mapping (a list of
        blocks, say) raises ``TypeError``.
        """
        if not isinstance(blocks, Mapping):
            raise TypeError(f"blocks must be a mapping of stream id to block, e.g. {{'deck1': block}}; "
                            f"got {type(blocks).__name__}")
        checked: list[tuple[str, np.ndarray, int]] = []
        for stream, block in blocks.items():
            frames, rate = self._check(stream, block, self._rate_for(stream, sample_rate))
            checked.append((stream, frames, rate))
        for stream, frames, rate in checked:
            if stream not in self._streams:
                self._start(stream, rate, 1 if frames.ndim == 1 else frames.shape[1])
        return self._pipeline.process({stream: frames for stream, frames, _ in checked})

    def end(self, stream: str | None = None) -> list[Update]:
        """End ``stream`` (every stream when None), as the command line does at the end
        of a file: drain the resampler, zero-pad the last partial hop and return its
        update(s), then forget the stream. Its next block starts it afresh, at any rate.

        Raises ``ConfigError`` for a stream that is not being tracked.
        """
        names = self._names(stream)
        hops: list[Hop] = []
        for name in names:
            hops.extend(self._pipeline.end(name))
        updates = self._pipeline.run(hops)
        for name in names:
            del self._streams[name]
            self._pipeline.close(name)
        return updates

    def reset(self, stream: str | None = None) -> None:
        """Forget ``stream`` (every stream when None) without flushing it: its buffered
        audio is dropped and its next block starts it afresh. As ``Engine.reset``.

        Raises ``ConfigError`` for a stream that is not being tracked.
        """
        for name in self._names(stream):
            del self._streams[name]
            self._pipeline.close(name)

    # ---- helpers ----------------------------------------------------------------------
    def _names(self, stream: str | None) -> list[str]:
        if stream is None:
            return list(self._streams)
        if stream not in self._streams:
            tracking = ", ".join(repr(s) for s in self._streams) or "none"
            raise ConfigError(f"stream={stream!r} is not being tracked (tracking: {tracking})")
        return [stream]

    def _start(self, stream: str, rate: int, channels: int) -> None:
        self._streams[stream] = _Stream(sample_rate=rate, channels=channels)
        self._pipeline.open(stream, in_rate=rate)

    @staticmethod
    def _rate_for(stream: str, sample_rate: int | Mapping[str, int]) -> object:
        if not isinstance(stream, str) or not stream:
            raise ConfigError(f"stream={stream!r} must be a non-empty string")
        if isinstance(sample_rate, Mapping):
            if stream not in sample_rate:
                raise ConfigError(f"sample_rate has no rate for stream {stream!r} (has {sorted(sample_rate)})")
            return sample_rate[stream]
        return sample_rate

    def _check(self, stream: str, block: npt.ArrayLike, sample_rate: object) -> tuple[np.ndarray, int]:
        """``block`` as float32 [frames] or [frames, channels] and its rate, or AudioInputError."""
        if isinstance(sample_rate, bool) or not isinstance(sample_rate, Integral) or int(sample_rate) <= 0:
            raise AudioInputError(stream, f"sample_rate={sample_rate!r} must be a positive integer [Hz]")
        rate = int(sample_rate)
        try:
            x = np.asarray(block)
        except (ValueError, TypeError) as exc:
            raise AudioInputError(stream, f"block is not an array of samples ({exc})") from None
        if x.ndim not in (1, 2):
            raise AudioInputError(
                stream, f"block has shape {x.shape}; expected [frames] (mono) or [frames, channels]"
            )
        channels = 1 if x.ndim == 1 else x.shape[1]
        if channels == 0 or channels > MAX_CHANNELS:
            hint = " (a [channels, frames] array? pass block.T)" if channels > MAX_CHANNELS else ""
            raise AudioInputError(
                stream, f"block has shape {x.shape}: {channels} channels, expected 1 to {MAX_CHANNELS}{hint}"
            )
        if x.dtype in _PCM_SCALE:
            samples = x.astype(np.float32) * np.float32(_PCM_SCALE[x.dtype])
        elif np.issubdtype(x.dtype, np.floating):
            with np.errstate(over="ignore"):  # too large for float32 becomes inf, refused below
                samples = np.asarray(x, dtype=np.float32)
        else:
            raise AudioInputError(
                stream,
                f"block dtype={x.dtype} is not audio; expected float32 or float64 in [-1, 1], or int16/int32 PCM",
            )
        finite = np.isfinite(samples)
        if not finite.all():
            bad = int(samples.size - np.count_nonzero(finite))
            frame = int(np.argwhere(~finite)[0][0])
            raise AudioInputError(
                stream,
                f"block has {bad} non-finite samples (NaN, inf, or beyond float32), the first at frame {frame}; "
                "samples must be finite",
            )
        s = self._streams.get(stream)
        if s is not None and (s.sample_rate != rate or s.channels != channels):
            what = f"sample_rate={rate} [Hz]" if s.sample_rate != rate else f"{channels} channels"
            raise AudioInputError(
                stream,
                f"block has {what}, but the stream started at {s.sample_rate} Hz with {s.channels} channels; "
                "call end(stream) or reset(stream) first to change them",
            )
        return samples, rate


"""The pure core: hops in, ``Update``s out. No sound cards, sockets, files or threads.

For every call to ``Engine.process(hops)``:

1. sanitise each hop: NaN/inf samples become 0 (counted), samples are clipped to [-1, 1];
2. group the hops into rounds with at most one hop per stream, and run each round as ONE
   batched ``model.step`` (the k-th hop of every stream goes into round k);
3. carry each stream's model state from hop to hop; reset it to the model's initial
   state for a new stream, a hop marked as a gap, a silent hop, or a non-finite result;
4. smooth (One-Euro, EMA or none), label the mood with hysteresis, and return one
   ``Update`` per hop, in input order within each round, its ``status`` flagging a gap
   or a model failure.

Silence is defined: a hop whose RMS is below ``silence_db`` [dBFS] yields raw
valence = arousal = 0 (the model's output is not used) and resets the model state, so
the smoothed value settles at exactly 0 and the mood at ``neutral``.

A model that fails: a step that raises is retried stream by stream, so one bad row
fails alone; its hop gives raw 0, resets that stream's state and counts in
``model_failures``, and the first failure is logged once (the rest at debug level). A
non-finite result counts the same way. When every hop of ``MAX_FAILED_ROUNDS``
consecutive rounds failed, the model is broken rather than unlucky: ``process``
raises ``ModelContractError``; ``raise_if_broken()`` raises it at the end of a shorter
run in which every hop failed. A step whose outputs break the contract (a shape the
model does not declare) raises it at once.

Declared latency (``Engine.latency``): the hop framer holds one hop [s] before a hop
exists; the smoother lags by its ``delay_seconds``; the model adds no look-ahead.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from rtmer.errors import ConfigError, ModelContractError
from rtmer.core.framing import Hop
from rtmer.core.model import ModelInfo
from rtmer.core.mood import MoodLabeler
from rtmer.core.smoothing import Smoother, SmoothingConfig
from rtmer.core.update import Update

log = logging.getLogger(__name__)

MAX_FAILED_ROUNDS = 10
"""Consecutive rounds in which every (non-silent) hop failed before ``process`` gives up [rounds]."""


class Model(Protocol):
    """What the engine needs from ``rtmer.core.model.StreamingModel``."""

    info: ModelInfo
    provider: str  # the onnxruntime execution provider in use

    def initial_state(self, batch: int) -> np.ndarray: ...

    def step(self, audio: np.ndarray, state: np.ndarray) -> tuple[np.ndarray, np.ndarray]: ...


@dataclass(slots=True)
class StreamStats:
    """Counters for one stream since it started."""

    hops: int = 0
    nonfinite_samples: int = 0
    silent_hops: int = 0
    gaps: int = 0
    state_resets: int = 0
    model_failures: int = 0


@dataclass(slots=True)
class _StreamState:
    state: np.ndarray
    smoother: Smoother
    mood: MoodLabeler
    seq: int = 0
    stats: StreamStats = field(default_factory=StreamStats)


class Engine:
    """Batched, stateful inference with smoothing and mood labels for many streams.

    Parameters
    ----------
    model: a contract-conforming model (``StreamingModel``).
    smoothing: which smoother each stream gets.
    neutral_radius, hysteresis: mood labelling (see ``rtmer.core.mood``).
    silence_db: RMS level [dBFS] below which a hop counts as silence.
    clock: wall clock [unix s] stamped into ``Update.time``.

    Notes
    -----
    Keeps, per stream: the model state [state_size], the smoother's memory, the last
    mood label and the sequence counter. Nothing else is kept between calls.
    """

    def __init__(
        self,
        model: Model,
        *,
        smoothing: SmoothingConfig | None = None,
        neutral_radius: float = 0.15,
        hysteresis: float = 0.05,
        silence_db: float = -80.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if not (isinstance(silence_db, (int, float)) and math.isfinite(silence_db) and silence_db <= 0):
            raise ConfigError(f"silence_db={silence_db!r} must be a number <= 0 [dBFS]")
        MoodLabeler(neutral_radius=neutral_radius, hysteresis=hysteresis)  # validate early
        self.model = model
        self.info = model.info
        self.smoothing = smoothing or SmoothingConfig()
        self.neutral_radius = neutral_radius
        self.hysteresis = hysteresis
        self.silence_rms = 10.0 ** (silence_db / 20.0)
        self.clock = clock
        self._streams: dict[str, _StreamState] = {}
        self._failed_rounds = 0  # consecutive rounds in which every non-silent hop failed
        self._hops_tried = 0  # non-silent hops given to the model, ever
        self._hops_failed = 0
        self._last_failure = ""
        self._initial = model.initial_state(1)[0].copy()
        self._smoothing_delay = self.smoothing.make(step_seconds=self.info.hop_seconds).delay_seconds

    # ---- bookkeeping --------------------------------------------------------------
    @property
    def latency(self) -> dict[str, float]:
        """Declared delay [s] of each stage and their sum (``total``)."""
        parts = {"hop_buffer": self.info.hop_seconds, "model": 0.0, "smoothing": self._smoothing_delay}
        parts["total"] = sum(parts.values())
        return parts

    def stats(self) -> dict[str, StreamStats]:
        return {name: s.stats for name, s in self._streams.items()}

    @property
    def streams(self) -> list[str]:
        return list(self._streams)

    def end_stream(self, stream: str) -> StreamStats | None:
        """Forget a stream that has ended; returns its final counters."""
        gone = self._streams.pop(stream, None)
        return gone.stats if gone else None

    def reset(self) -> None:
        """Forget every stream: the next hop of any stream starts it afresh."""
        self._streams.clear()

    def _stream(self, name: str) -> _StreamState:
        s = self._streams.get(name)
        if s is None:
            s = _StreamState(
                state=self._initial.copy(),
                smoother=self.smoothing.make(step_seconds=self.info.hop_seconds),
                mood=MoodLabeler(neutral_radius=self.neutral_radius, hysteresis=self.hysteresis),
            )
            self._streams[name] = s
        return s

    # ---- the stage ----------------------------------------------------------------
    def process(self, hops: Sequence[Hop]) -> list[Update]:
        """Run hops of any streams; one batched model call per round. See the module doc."""
        rounds: list[list[Hop]] = []
        depth: dict[str, int] = {}
        for hop in hops:
            k = depth.get(hop.stream, 0)
            depth[hop.stream] = k + 1
            if k == len(rounds):
                rounds.append([])
            rounds[k].append(hop)
        updates: list[Update] = []
        for batch in rounds:
            updates.extend(self._run_round(batch))
        return updates

    def _run_round(self, batch: list[Hop]) -> list[Update]:
        hop_samples = self.info.hop_samples
        audio = np.empty((len(batch), hop_samples), dtype=np.float32)
        states = np.empty((len(batch), self._initial.shape[0]), dtype=np.float32)
        silent = np.zeros(len(batch), dtype=bool)
        streams = [self._stream(h.stream) for h in batch]
        for i, (hop, s) in enumerate(zip(batch, streams)):
            x = np.asarray(hop.audio, dtype=np.float32).reshape(-1)
            if x.shape[0] != hop_samples:
                raise ValueError(f"hop of stream {hop.stream!r} has {x.shape[0]} samples, expected {hop_samples}")
            finite = np.isfinite(x)
            if not finite.all():
                s.stats.nonfinite_samples += int(x.shape[0] - np.count_nonzero(finite))
                x = np.where(finite, x, np.float32(0.0))
            np.clip(x, -1.0, 1.0, out=audio[i])
            if hop.gap:
                s.stats.gaps += 1
            if hop.gap and s.seq > 0:
                self._reset_state(s)
            silent[i] = float(np.sqrt(np.mean(np.square(audio[i], dtype=np.float64)))) < self.silence_rms
            states[i] = s.state
        va, new_states = self._step(batch, streams, audio, states)
        now = self.clock()
        updates: list[Update] = []
        tried = failed = 0
        for i, (hop, s) in enumerate(zip(batch, streams)):
            raw = va[i]
            ok = bool(np.isfinite(raw).all() and np.isfinite(new_states[i]).all())
            if not silent[i]:
                tried += 1
                failed += 0 if ok else 1
            if silent[i] or not ok:
                raw = np.zeros(2, dtype=np.float32)
                if not ok:
                    s.stats.model_failures += 1
                    self._reset_state(s)
                else:
                    s.stats.silent_hops += 1
                    s.state = self._initial.copy()  # silence restarts the stream; not counted as a reset
            else:
                s.state = new_states[i].copy()
            raw = np.clip(raw.astype(np.float64), -1.0, 1.0)
            smooth = np.clip(s.smoother.process(raw), -1.0, 1.0)
            valence, arousal = float(smooth[0]), float(smooth[1])
            updates.append(
                Update(
                    stream=hop.stream,
                    seq=s.seq,
                    t=hop.end_seconds,
                    time=now,
                    valence=valence,
                    arousal=arousal,
                    valence_raw=float(raw[0]),
                    arousal_raw=float(raw[1]),
                    mood=s.mood.process(valence, arousal),
                    status="failed" if not ok else ("gap" if hop.gap else "ok"),
                )
            )
            s.seq += 1
            s.stats.hops += 1
        self._check_failures(tried, failed)
        return updates

    def _note_failure(self, what: str) -> None:
        first = not self._last_failure
        self._last_failure = what
        if first:
            log.warning("%s; the hop gives raw 0 and is counted in model failures (logged once)", what)
        else:
            log.debug("%s", what)

    def raise_if_broken(self) -> None:
        """Raise ``ModelContractError`` if the model failed on every (non-silent) hop it was given."""
        if self._hops_tried and self._hops_failed == self._hops_tried:
            raise ModelContractError(self._model_name(), f"fails at run time: all {self._hops_tried} hops failed (last: {self._last_failure})")

    def _model_name(self) -> str:
        return str(getattr(self.model, "path", self.info.name))

    def _check_failures(self, tried: int, failed: int) -> None:
        if not tried:
            return
        self._hops_tried += tried
        self._hops_failed += failed
        if failed < tried:
            self._failed_rounds = 0
            return
        if not self._last_failure:
            self._note_failure("the model's output is not finite (NaN or inf)")
        self._failed_rounds += 1
        if self._failed_rounds >= MAX_FAILED_ROUNDS:
            raise ModelContractError(
                self._model_name(), f"fails at run time: every hop of the last {self._failed_rounds} model calls failed "
                f"(last: {self._last_failure})",
            )

    def _step(
        self, batch: list[Hop], streams: list[_StreamState], audio: np.ndarray, states: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """One batched call; if it raises, run the streams one by one so one bad row fails alone."""
        try:
            va, new_states = self.model.step(audio, states)
            return np.asarray(va), np.asarray(new_states)
        except ModelContractError:
            raise
        except Exception as exc:  # onnxruntime raises its own types
            if len(batch) == 1:
                self._note_failure(f"model step failed for stream {batch[0].stream!r}: {_short(exc)}")
                return np.full((1, 2), np.nan, dtype=np.float32), np.full_like(states, np.nan)
            log.debug("batched model step failed (%s); retrying stream by stream", _short(exc))
        va = np.full((len(batch), 2), np.nan, dtype=np.float32)
        new_states = np.full_like(states, np.nan)
        for i in range(len(batch)):
            try:
                v, st = self.model.step(audio[i : i + 1], states[i : i + 1])
                va[i], new_states[i] = v[0], st[0]
            except ModelContractError:
                raise
            except Exception as exc:
                self._note_failure(f"model step failed for stream {batch[i].stream!r}: {_short(exc)}")
        return va, new_states

    def _reset_state(self, s: _StreamState) -> None:
        s.state = self._initial.copy()
        s.stats.state_resets += 1


def _short(exc: BaseException, limit: int = 300) -> str:
    """An exception as one line of at most ``limit`` characters (onnxruntime's are long)."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."

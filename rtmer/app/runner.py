"""The thin loop around the pipeline: inputs -> ``Pipeline`` (framers, engine) -> sinks.

One thread. Each turn it waits (``select``) until a live/stdin input has data or a
paced input's next block is due (at most ``MAX_WAIT_S``), polls every input without
blocking, cuts blocks into hops, runs all ready hops through ``Engine.process`` (one
batched model call per round) and publishes every update to every sink.

Never falls over on stage: an input that raises or ends is closed and its stream
ended, the others go on; a sink that raises is counted and logged once, and the
engine and the other sinks go on. ``stop`` (a ``threading.Event``) ends the loop
within ``MAX_WAIT_S``; so does ``end_when`` returning True (an output that is gone,
for example), which is not an interruption.

``max_seconds`` [s] counts audio, not the wall clock: every stream gets its hops up to
``max_seconds`` of its own audio (``--seconds 5``: the 10 hops of 0.5 s that end at
0.5 ... 5.0 s), and the run ends when each has. A clock started with the run cannot do
that: the inputs start after it, and the resampler holds back a few milliseconds, so the
hop that ends at 5.0 s arrives a little after 5.0 s and was lost. A stream that falls
behind (a stdin that stalls) is waited for one hop longer than ``max_seconds``, at most.

Non-finite input samples are replaced by 0 where the input reads them, before any
resampling (``rtmer.core.resample.MonoResampler``), and counted there: the runner adds those
counts (``Block.nonfinite_samples``) to each stream's ``nonfinite_samples``, so one NaN
sample counts as one, not as the few hundred samples a resampler would spread it over.
"""

from __future__ import annotations

import logging
import math
import select
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from rtmer.core.engine import Engine, StreamStats
from rtmer.core.framing import Hop
from rtmer.core.pipeline import Pipeline
from rtmer.inputs.base import Input
from rtmer.core.update import Sink, Update

log = logging.getLogger(__name__)

MAX_WAIT_S = 0.1  # longest wait between checks of ``stop`` [s]


@dataclass
class RunSummary:
    """What a run did: per-stream engine counters, per-input counters and failures."""

    streams: dict[str, StreamStats] = field(default_factory=dict)
    inputs: dict[str, dict[str, int]] = field(default_factory=dict)
    failed_inputs: dict[str, str] = field(default_factory=dict)
    warnings: dict[str, str] = field(default_factory=dict)
    """Inputs that ended with a warning (a truncated file: analysed, but shorter than it says)."""
    failed_outputs: dict[str, str] = field(default_factory=dict)
    """Outputs that stopped taking updates (stdout's reader went away), with why."""
    sink_errors: dict[str, int] = field(default_factory=dict)
    updates: int = 0
    seconds: float = 0.0
    interrupted: bool = False


class Runner:
    """Drives ``inputs`` through ``engine`` to ``sinks`` until the inputs end or ``stop`` is set.

    ``on_updates`` (optional) sees each batch of updates after the sinks, e.g. the
    terminal display. ``max_seconds`` [s] stops a run after that much audio of each
    stream (see the module doc).
    ``end_when`` (optional) is asked every turn; True ends the run (not an interruption).
    """

    def __init__(
        self,
        engine: Engine,
        inputs: Sequence[Input],
        sinks: Sequence[Sink],
        *,
        stop: threading.Event | None = None,
        on_updates: Callable[[list[Update]], None] | None = None,
        max_seconds: float | None = None,
        end_when: Callable[[], bool] | None = None,
    ) -> None:
        self.engine = engine
        self.inputs = list(inputs)
        self.sinks = list(sinks)
        self.stop = stop or threading.Event()
        self.on_updates = on_updates
        self.max_seconds = max_seconds
        self.end_when = end_when
        info = engine.info
        self.pipeline = Pipeline(engine)  # the inputs' blocks are at the model's rate: no resampler here
        for inp in self.inputs:
            for s in inp.streams:
                self.pipeline.open(s)
        self.summary = RunSummary()
        self._last_end: float | None = None  # end [s] of the last hop a stream may give under max_seconds
        if max_seconds is not None:
            self._last_end = info.hop_seconds * math.floor(max_seconds / info.hop_seconds + 1e-9)
        self._tolerance = 0.5 / info.sample_rate  # [s]: hop ends are whole samples
        self._complete: set[str] = set()  # streams that gave every hop up to ``_last_end``
        self._sink_logged: set[int] = set()
        self._nonfinite: dict[str, int] = {}

    def publish(self, updates: list[Update]) -> None:
        for sink in self.sinks:
            for u in updates:
                try:
                    sink.publish(u)
                except Exception as exc:
                    name = type(sink).__name__
                    self.summary.sink_errors[name] = self.summary.sink_errors.get(name, 0) + 1
                    if id(sink) not in self._sink_logged:
                        self._sink_logged.add(id(sink))
                        log.error("output %s failed (%s); the others go on (logged once)", name, exc)
        self.summary.updates += len(updates)
        if self.on_updates is not None and updates:
            try:
                self.on_updates(updates)
            except Exception as exc:
                log.debug("display failed: %s", exc)

    def _within_limit(self, hops: list[Hop]) -> list[Hop]:
        """The hops up to ``max_seconds`` of their stream's audio; marks the streams that are complete."""
        if self._last_end is None:
            return hops
        kept: list[Hop] = []
        for hop in hops:
            if hop.end_seconds <= self._last_end + self._tolerance:
                kept.append(hop)
            if hop.end_seconds >= self._last_end - self._tolerance:
                self._complete.add(hop.stream)
        return kept

    def _time_is_up(self, active: list[Input], started: float) -> bool:
        if self.max_seconds is None:
            return False
        if all(s in self._complete for inp in active for s in inp.streams):
            return True
        late = time.monotonic() - started - self.max_seconds
        return late >= self.engine.info.hop_seconds  # a stream that falls behind is not waited for longer

    def _wait(self, active: list[Input]) -> None:
        now = time.monotonic()
        timeout = MAX_WAIT_S
        fds: list[int] = []
        for inp in active:
            due = inp.next_due()
            if due is not None:
                timeout = min(timeout, max(0.0, due - now))
            fd = inp.fileno()
            if fd is not None:
                fds.append(fd)
        if timeout <= 0:
            return
        if fds:
            select.select(fds, [], [], timeout)
        else:
            time.sleep(timeout)

    def _end_input(self, inp: Input, hops: list[Hop], ended: list[str]) -> None:
        for s in inp.streams:
            hops.extend(self.pipeline.end(s))
            ended.append(s)
        self.summary.inputs[inp.name] = inp.stats()
        if inp.error:
            self.summary.failed_inputs[inp.name] = inp.error
            log.error("%s: %s", inp.name, inp.error)
        warning = getattr(inp, "warning", None)
        if warning and not inp.error:
            self.summary.warnings[inp.name] = str(warning)
            log.warning("%s: %s", inp.name, warning)
        try:
            inp.close()
        except Exception as exc:
            log.warning("closing %s: %s", inp.name, exc)

    def run(self) -> RunSummary:
        """Run until every input has ended, ``stop`` is set or ``max_seconds`` passed."""
        started = time.monotonic()
        active: list[Input] = []
        for inp in self.inputs:
            try:
                inp.start()
                active.append(inp)
            except Exception as exc:
                self.summary.failed_inputs[inp.name] = str(exc)
                log.error("%s: %s", inp.name, exc)
                for s in inp.streams:
                    self.pipeline.discard(s)
        try:
            while active and not self.stop.is_set():
                if self._time_is_up(active, started):
                    break
                if self.end_when is not None and self.end_when():
                    break
                self._wait(active)
                hops: list[Hop] = []
                ended: list[str] = []
                for inp in list(active):
                    try:
                        blocks = inp.poll()
                    except Exception as exc:
                        inp.error = inp.error or f"failed ({exc})"
                        inp.finished = True
                        blocks = []
                    for b in blocks:
                        if b.nonfinite_samples:
                            self._nonfinite[b.stream] = self._nonfinite.get(b.stream, 0) + b.nonfinite_samples
                        if b.gap:
                            self.pipeline.skip(b.stream, b.lost_samples)
                        hops.extend(self.pipeline.frame(b.stream, b.samples))
                    if inp.finished:
                        active.remove(inp)
                        self._end_input(inp, hops, ended)
                hops = self._within_limit(hops)
                if hops:
                    self.publish(self.pipeline.run(hops))
                for s in ended:
                    stats = self.pipeline.close(s)
                    if stats is not None:
                        self.summary.streams[s] = stats
        finally:
            self.summary.interrupted = self.stop.is_set()
            for inp in active:
                self.summary.inputs[inp.name] = inp.stats()
                try:
                    inp.close()
                except Exception as exc:
                    log.warning("closing %s: %s", inp.name, exc)
            self.summary.streams.update(self.engine.stats())
            for s, n in self._nonfinite.items():
                self.summary.streams.setdefault(s, StreamStats()).nonfinite_samples += n
            self.summary.seconds = time.monotonic() - started
        return self.summary

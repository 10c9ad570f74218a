"""``rtmer analyze``: audio files (and stdin) through the live stages as fast as possible.

The numbers are those ``rtmer run`` emits for the same audio: the inputs are the same
paced inputs, not paced, through the same ``Runner`` and ``Engine``. What this module
adds around them is the batch job:

- **Checks first, and what ``-o`` names is respected** (``rtmer.app.output_paths``): an output
  that cannot be written is refused before the model is loaded; a regular file is
  written atomically, a symlink followed, and a special file (a device, a FIFO, a pipe
  such as ``/dev/fd/63`` from ``>(gzip > x.gz)``, anything under /proc or /sys) never
  replaced: opened before the analysis and streamed into (a FIFO with no reader yet is
  opened when the analysis is written, which waits for its reader).
- **Every gap is counted.** Each row carries ``status`` (``ok``, ``gap``, ``failed``:
  ``Update.status``); hops the model failed on and non-finite input samples are
  counted per file in the summary, and failed hops and truncated files make the exit
  code 1.
- **Names that never collide.** With ``--output-dir`` each input gets
  ``<file name with its extension>.<csv|json>`` (``song.ogg`` -> ``song.ogg.csv``).
  Inputs that share a file name get as many of their parent folders as it takes to
  tell them apart, joined with ``_`` (``x/song.wav``, ``y/song.wav`` ->
  ``x_song.wav.csv``, ``y_song.wav.csv``); anything still equal (compared without case)
  gets ``-2``, ``-3``... in argument order. stdin is ``stdin``. A path given twice (or
  two paths to the same file) is analysed once, with a note on stderr.
- **Groups.** Files are opened and analysed ``GROUP_FILES`` at a time, their hops
  batched into one model call per round, so a long list never holds more open files
  or ffmpeg processes than that.
- **Interruption keeps what finished.** With ``--output-dir`` each file is written
  (to a temporary name, then renamed) as soon as its last hop is out; ``-o`` and
  stdout get every finished file at the end. After Ctrl-C (``stop``) the files that
  were not finished are named on stderr and nothing is written for them.
- **Progress and summary on stderr.** A tqdm bar [s of audio] when stderr is a
  terminal (after one second, so short jobs stay quiet), or always with
  ``progress=True``, never with ``progress=False`` or ``quiet``; then one line: files,
  hours of audio, wall time and speed in multiples of real time (not with ``quiet``).
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, TextIO

from rtmer.core.engine import Engine
from rtmer.errors import AudioInputError
from rtmer.app.output_paths import STDIN, OutputTarget, dedupe, output_names, resolve_output, write_atomically
from rtmer.app.runner import Runner
from rtmer.inputs.base import Block, Input
from rtmer.core.update import Update

log = logging.getLogger(__name__)

GROUP_FILES = 16  # files opened and analysed at a time
EXIT_OK = 0
EXIT_INPUT_FAILED = 1
EXIT_INTERRUPTED = 130


# ---- writing --------------------------------------------------------------------------
def write_analysis(fmt: str, updates: dict[str, list[Update]], order: Sequence[str], engine: Engine,
                   out: TextIO) -> None:
    """Write the updates of the streams in ``order`` as CSV (``textout.CsvSink``) or one JSON document."""
    from rtmer.outputs.textout import CsvSink
    from rtmer.protocol import update_to_dict

    if fmt == "csv":
        sink = CsvSink(out)
        for name in order:
            for u in updates.get(name, []):
                sink.publish(u)
                if sink.failed:
                    break
        sink.close()
        if sink.failed:  # the sink only logs and counts; a batch job must say it failed
            raise OSError(f"writing CSV failed: {sink.error}")
        return
    doc = {
        "model": {"name": engine.info.name, "version": engine.info.version},
        "hop_seconds": engine.info.hop_seconds,
        "files": [
            {"file": name, "updates": [{k: v for k, v in update_to_dict(u).items() if k not in ("type", "time")}
                                       for u in updates.get(name, [])]}
            for name in order
        ],
    }
    json.dump(doc, out, indent=1)
    out.write("\n")


# ---- one input, watched ----------------------------------------------------------------
class _Tracked:
    """An ``Input`` passed through, noting whether it reached its end by itself (``completed``).

    The runner closes every input when it stops, which also marks it finished; only an
    input that reported its end from ``poll`` before ``stop`` was set has been analysed
    to the end. ``failed`` is an error seen before ``stop``: one after it (a decoder
    killed by the same Ctrl-C) leaves the input not done rather than failed.
    """

    def __init__(self, inner: Input, path: str, stop: threading.Event) -> None:
        self.inner = inner
        self.path = path
        self.name = inner.name
        self.streams = inner.streams
        self.completed = False
        self.failed: str | None = None
        self._stop = stop

    def _note_error(self) -> None:
        if self.inner.error and self.failed is None and not self._stop.is_set():
            self.failed = self.inner.error

    @property
    def finished(self) -> bool:
        return self.inner.finished

    @finished.setter
    def finished(self, value: bool) -> None:
        self.inner.finished = value

    @property
    def error(self) -> str | None:
        return self.inner.error

    @error.setter
    def error(self, value: str | None) -> None:
        self.inner.error = value
        self._note_error()

    def start(self) -> None:
        self.inner.start()

    def fileno(self) -> int | None:
        return self.inner.fileno()

    def next_due(self) -> float | None:
        return self.inner.next_due()

    def poll(self) -> list[Block]:
        blocks = self.inner.poll()
        self._note_error()
        if self.inner.finished and not self.inner.error and not self._stop.is_set():
            self.completed = True
        return blocks

    def stats(self) -> dict[str, int]:
        return self.inner.stats()

    def close(self) -> None:
        self.inner.close()


# ---- the job ---------------------------------------------------------------------------
@dataclass
class AnalyzeJob:
    """What to analyse and where to write it (the ``rtmer analyze`` arguments).

    ``pcm`` is (format, rate [Hz], channels) of raw PCM on stdin, or None: stdin then
    holds an encoded stream (a file format). ``progress``: None shows the bar when
    stderr is a terminal.
    """

    files: list[str]
    out_format: str = "csv"
    output: str | None = None
    output_dir: str | None = None
    pcm: tuple[str, int, int] | None = None
    progress: bool | None = None
    quiet: bool = False
    plot: str | None = None  # --plot: an image file, or a folder (rtmer.app.plot); checked by rtmer.app.plot.check_plot
    target: OutputTarget | None = None  # -o as check_outputs resolved it (resolved here when None)


@dataclass
class _Outcome:
    done: list[str] = field(default_factory=list)  # analysed to the end (and written, with --output-dir)
    failed: dict[str, str] = field(default_factory=dict)  # path -> why
    warnings: dict[str, str] = field(default_factory=dict)  # path -> why (analysed and written all the same)
    model_failures: dict[str, tuple[int, int]] = field(default_factory=dict)  # path -> (hops failed, hops)
    nonfinite: dict[str, int] = field(default_factory=dict)  # path -> NaN/inf samples replaced by 0


def _chunks(items: Sequence[str], n: int) -> Iterator[list[str]]:
    for i in range(0, len(items), n):
        yield list(items[i:i + n])


def _amount(seconds: float) -> str:
    if seconds >= 360:
        return f"{seconds / 3600:.2f} h"
    if seconds >= 60:
        return f"{seconds / 60:.1f} min"
    return f"{seconds:.1f} s"


class _Progress:
    """The tqdm bar [s of audio] and messages that do not break it."""

    def __init__(self, *, total: float | None, show: bool, delay: float, err: TextIO) -> None:
        from tqdm import tqdm

        self._tqdm = tqdm
        self.err = err
        self.bar = tqdm(total=total, unit="s", unit_scale=True, file=err, desc="analyze", disable=not show,
                        delay=delay, leave=False, dynamic_ncols=True)
        self.show = show

    def say(self, text: str) -> None:
        if self.show:
            self._tqdm.write(text, file=self.err)
        else:
            self.err.write(text + "\n")
            self.err.flush()

    def advance(self, seconds: float) -> None:
        if seconds > 0:
            self.bar.update(seconds)

    def close(self) -> None:
        self.bar.close()


def run_analysis(engine: Engine, job: AnalyzeJob, *, stdout: TextIO, stderr: TextIO,
                 stop: threading.Event, stdin: BinaryIO | None = None) -> int:
    """Analyse ``job.files``; returns the exit code (0 ok, 1 some failed, truncated or with hops the model
    failed on, 130 interrupted).

    Call ``check_outputs`` first. ``stop`` set (Ctrl-C) ends the analysis within a
    round; what was finished is written. ``stdin`` (a binary file) stands in for
    ``sys.stdin.buffer`` for ``-``.
    """
    target = job.target
    if target is None and job.output and job.output != STDIN:
        target = resolve_output(job.output)
    try:
        return _run(engine, job, target, stdout=stdout, stderr=stderr, stop=stop, stdin=stdin)
    finally:
        if target is not None:
            target.close()


def _run(engine: Engine, job: AnalyzeJob, target: OutputTarget | None, *, stdout: TextIO, stderr: TextIO,
         stop: threading.Event, stdin: BinaryIO | None) -> int:
    from rtmer.inputs.decode import duration_seconds, open_audio, open_stdin
    from rtmer.inputs.pcm import PcmInput

    paths, notes = dedupe(job.files)
    names = output_names(paths, job.out_format) if job.output_dir else {}
    plots: dict[str, Path] = {}
    if job.plot:
        from rtmer.app.plot import plot_targets, plot_updates

        plots = plot_targets(job.plot, paths)
    durations = {p: (None if p == STDIN else duration_seconds(p)) for p in paths}
    known = [d for d in durations.values() if d is not None]
    total = sum(known) if len(known) == len(paths) else None
    show = job.progress if job.progress is not None else (not job.quiet and bool(getattr(stderr, "isatty", bool)()))
    progress = _Progress(total=total, show=show, delay=0.0 if job.progress else 1.0, err=stderr)
    for note in notes:
        progress.say(f"rtmer: {note}")
    rate = engine.info.sample_rate
    outcome = _Outcome()
    rows: dict[str, list[Update]] = {}
    position: dict[str, float] = {}
    not_done: list[str] = []
    started = time.monotonic()

    def write_one(path: str) -> None:
        assert job.output_dir is not None
        dest = Path(job.output_dir) / names[path]
        try:
            write_atomically(dest, lambda f: write_analysis(job.out_format, rows, [path], engine, f))
        except OSError as exc:
            outcome.failed[path] = f"cannot write {str(dest)!r} ({exc.strerror or exc})"
            progress.say(f"rtmer: {path}: {outcome.failed[path]}")
            return
        outcome.done.append(path)
        rows.pop(path, None)  # written: free it

    def finish(path: str) -> None:
        """``path`` was analysed to its end: write it now (``--output-dir``) or keep it for the end."""
        log.info("finished %s (%s of audio)", path, _amount(position.get(path, 0.0)))
        if path in plots:  # --plot: its figure, drawn by rtmer.app.plot
            try:
                plot_updates(rows.get(path, []), plots[path], title=f"{path} ({engine.info.name})")
            except OSError as exc:
                outcome.failed[path] = f"cannot write the plot {str(plots[path])!r} ({exc.strerror or exc})"
                progress.say(f"rtmer: {path}: {outcome.failed[path]}")
        if job.output_dir:
            write_one(path)
        else:
            outcome.done.append(path)

    class Collect:
        def publish(self, update: Update) -> None:
            rows.setdefault(update.stream, []).append(update)

        def close(self) -> None:
            pass

    redirect = contextlib.nullcontext()
    if show:
        from tqdm.contrib.logging import logging_redirect_tqdm

        redirect = logging_redirect_tqdm()
    try:
        with redirect:
            for group in _chunks(paths, GROUP_FILES):
                if stop.is_set():
                    not_done.extend(group)
                    continue
                tracked: list[_Tracked] = []
                for p in group:
                    try:
                        if p == STDIN and job.pcm is not None:
                            fmt, pcm_rate, channels = job.pcm
                            inp: Input = PcmInput(STDIN, fmt=fmt, rate=pcm_rate, channels=channels,
                                                  model_rate=rate, source=stdin)
                        elif p == STDIN:
                            inp = open_stdin(stream=STDIN, model_rate=rate, source=stdin)
                        else:
                            inp = open_audio(p, stream=p, model_rate=rate, realtime=False)
                    except AudioInputError as exc:
                        outcome.failed[p] = str(exc)
                        progress.say(f"rtmer: {exc}")
                        continue
                    tracked.append(_Tracked(inp, p, stop))
                if not tracked:
                    continue
                finished: set[str] = set()

                def on_updates(updates: list[Update], tracked: list[_Tracked] = tracked,
                               finished: set[str] = finished) -> None:
                    for u in updates:
                        t = u.t
                        d = durations.get(u.stream)
                        if d is not None:
                            t = min(t, d)
                        progress.advance(t - position.get(u.stream, 0.0))
                        position[u.stream] = max(t, position.get(u.stream, 0.0))
                    for tr in tracked:  # the runner calls this once a round's updates are all out
                        if tr.completed and tr.path not in finished:
                            finished.add(tr.path)
                            finish(tr.path)

                summary = Runner(engine, tracked, [Collect()], on_updates=on_updates, stop=stop).run()
                for tr in tracked:
                    counts = summary.streams.get(tr.streams[0])
                    if counts is not None and counts.model_failures:
                        outcome.model_failures[tr.path] = (counts.model_failures, counts.hops)
                    if counts is not None and counts.nonfinite_samples:
                        outcome.nonfinite[tr.path] = counts.nonfinite_samples
                    # an error before Ctrl-C, or start() failing (the runner records that itself)
                    why = tr.failed or (summary.failed_inputs.get(tr.name) if not stop.is_set() else None)
                    if why:
                        outcome.failed[tr.path] = why
                        progress.say(f"rtmer: {tr.name}: {why}")
                        rows.pop(tr.path, None)
                    elif tr.completed:
                        warning = getattr(tr.inner, "warning", None)
                        if warning:  # a truncated file: analysed as far as it goes, and said
                            outcome.warnings[tr.path] = str(warning)
                            progress.say(f"rtmer: WARNING {tr.name}: {warning}")
                        if tr.path not in finished:  # its last round had no updates
                            finished.add(tr.path)
                            finish(tr.path)
                    else:
                        not_done.append(tr.path)
                        rows.pop(tr.path, None)
    finally:
        progress.close()
    engine.raise_if_broken()  # the model failed on every hop: its numbers mean nothing (exit 3)
    elapsed = time.monotonic() - started
    done = [p for p in paths if p in set(outcome.done)]
    audio_seconds = sum(position.get(p, 0.0) for p in done)
    processed = sum(position.values())  # with the unfinished and failed files: what the speed is of
    if not job.output_dir and done:
        if target is not None:
            try:
                target.write(lambda f: write_analysis(job.out_format, rows, done, engine, f))
            except OSError as exc:
                what = "" if not target.special else f" ({target.kind})"
                stderr.write(f"rtmer: cannot write {job.output!r}{what} ({exc.strerror or exc}); "
                             f"{len(done)} finished file{'s' if len(done) != 1 else ''} not written\n")
                return EXIT_INPUT_FAILED
        else:
            try:
                write_analysis(job.out_format, rows, done, engine, stdout)
                stdout.flush()
            except (OSError, ValueError) as exc:  # `rtmer analyze ... | head -1`: the reader went away
                reason = getattr(exc, "strerror", None) or str(exc)
                stderr.write(f"rtmer: stdout was closed before the analysis was all written ({reason}); "
                             f"{len(done)} finished file{'s' if len(done) != 1 else ''} not fully written\n")
                return EXIT_INPUT_FAILED
    n = len(paths)
    if outcome.failed:
        failed = [p for p in paths if p in outcome.failed]
        stderr.write(f"rtmer: {len(failed)} of {n} files failed: {', '.join(failed)}\n")
    if outcome.warnings:
        warned = [p for p in paths if p in outcome.warnings]
        stderr.write(f"rtmer: {len(warned)} of {n} files analysed with a warning (truncated?): "
                     f"{', '.join(warned)}\n")
    if outcome.model_failures:
        failing = [p for p in paths if p in outcome.model_failures]
        hops = sum(outcome.model_failures[p][0] for p in failing)
        each = ", ".join(f"{p} {outcome.model_failures[p][0]} of {outcome.model_failures[p][1]}" for p in failing)
        stderr.write(f"rtmer: the model failed on {hops} hop{'s' if hops != 1 else ''} (raw 0, status 'failed' in "
                     f"their rows): {each}\n")
    if outcome.nonfinite:
        bad = [p for p in paths if p in outcome.nonfinite]
        stderr.write("rtmer: non-finite samples (NaN, inf) replaced by 0: "
                     f"{', '.join(f'{p} {outcome.nonfinite[p]}' for p in bad)}\n")
    if not_done:
        stderr.write(f"rtmer: interrupted; {len(not_done)} of {n} files not done, nothing written for them: "
                     f"{', '.join(not_done)}\n")
    if not job.quiet:
        speed = f", {processed / elapsed:.0f}x real time" if elapsed > 0 and processed and done else ""
        where = f" to {job.output_dir}" if job.output_dir else (f" to {job.output}" if job.output else "")
        stderr.write(f"rtmer: analysed {len(done)} of {n} file{'s' if n != 1 else ''}{where}, "
                     f"{_amount(audio_seconds)} of audio in {elapsed:.1f} s{speed}\n")
    stderr.flush()
    if not_done:
        return EXIT_INTERRUPTED
    return EXIT_INPUT_FAILED if outcome.failed or outcome.warnings or outcome.model_failures else EXIT_OK

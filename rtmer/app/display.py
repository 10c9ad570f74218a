"""Terminal output of a run: the live display (one line a stream) and the summary at its end."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, TextIO

from rtmer.core.update import Sink, Update

if TYPE_CHECKING:
    from rtmer.app.runner import RunSummary


def printable(text: str) -> str:
    """``text`` with what a terminal would act on escaped: control characters (``\\x1b``,
    ``\\n``), bidirectional overrides and other invisible ones (``\\u202e``).

    For names that come from outside (a model's metadata, a stream id, a file or device
    name) on their way to a terminal: an escape sequence there could rewrite the screen.
    """
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in text)


class Display:
    """One line per stream, rewritten in place on a terminal (plain lines otherwise)."""

    def __init__(self, streams: Sequence[str], out: TextIO, *, annotate: Callable[[Update], str] | None = None) -> None:
        self.streams = list(streams)
        self.out = out
        self.annotate = annotate
        self.tty = bool(getattr(out, "isatty", lambda: False)())
        self._lines: dict[str, str] = {}
        self._drawn = 0

    @staticmethod
    def _bar(x: float, width: int = 11) -> str:
        pos = int(round((max(-1.0, min(1.0, x)) + 1) / 2 * (width - 1)))
        return "".join("|" if i == pos else ("." if i != width // 2 else ":") for i in range(width))

    def format(self, u: Update) -> str:
        extra = f"  {self.annotate(u)}" if self.annotate else ""
        return (
            f"{printable(u.stream):>8} t={u.t:7.1f}s  V {u.valence:+.2f} [{self._bar(u.valence)}]  "
            f"A {u.arousal:+.2f} [{self._bar(u.arousal)}]  {u.mood:<8} raw {u.valence_raw:+.2f} {u.arousal_raw:+.2f}{extra}"
        )

    def __call__(self, updates: list[Update]) -> None:
        for u in updates:
            self._lines[u.stream] = self.format(u)
            if u.stream not in self.streams:
                self.streams.append(u.stream)
        if not self.tty:
            for u in updates:
                self.out.write(self._lines[u.stream] + "\n")
            self.out.flush()
            return
        buf = "\x1b[F" * max(0, self._drawn - 1) + "\r" if self._drawn else ""
        rows = [self._lines.get(s, f"{printable(s):>8} (waiting)") for s in self.streams]
        buf += "\n".join("\x1b[2K" + r for r in rows)
        self._drawn = len(rows)
        self.out.write(buf)
        self.out.flush()

    def close(self) -> None:
        if self.tty and self._drawn:
            self.out.write("\n")
            self.out.flush()


def print_summary(summary: RunSummary, sinks: Sequence[Sink], err: TextIO) -> None:
    lines = [f"rtmer: {summary.seconds:.1f} s, {summary.updates} updates" + (" (interrupted)" if summary.interrupted else "")]
    for name, st in summary.streams.items():
        lines.append(
            f"  stream {name}: {st.hops} hops, {st.gaps} gaps, {st.state_resets} state resets, "
            f"{st.nonfinite_samples} non-finite samples, {st.silent_hops} silent hops, {st.model_failures} model failures"
        )
    for name, st2 in summary.inputs.items():
        if "overruns" in st2:
            lines.append(f"  {name}: {st2['overruns']} overruns, {st2['dropped_frames']} frames dropped, "
                         f"{st2['status_flags']} driver overflow flags, {st2.get('restarts', 0)} device restarts"
                         + (f", {st2['reopen_failures']} failed reopens" if st2.get("reopen_failures") else ""))
    for name, why in summary.failed_inputs.items():
        lines.append(f"  FAILED {name}: {why}")
    for name, why in summary.warnings.items():
        lines.append(f"  WARNING {name}: {why}")
    for sink in sinks:
        kind = type(sink).__name__
        stats = getattr(sink, "stats", None)
        if kind == "WebSocketSink" and stats is not None:
            lines.append(f"  websocket: {stats.connections} connections, {stats.sent} sent, {stats.dropped} dropped, "
                         f"{stats.ignored} client messages ignored, {stats.refused} handshakes refused, "
                         f"{stats.capped} clients over the cap")
        elif kind == "OscSink":
            for t in getattr(sink, "targets", []):
                failed = f", last: {t.last_error}" if t.failed and t.last_error else ""
                lines.append(f"  osc {t.host}:{t.port}: {t.sent} sent, {t.failed} failed{failed}")
        elif hasattr(sink, "updates_written"):  # stdout: every update is written, dropped or still queued
            fmt = "NDJSON" if kind == "NdjsonSink" else "CSV"
            published, written = getattr(sink, "published", 0), getattr(sink, "updates_written", 0)
            lines.append(f"  stdout ({fmt}): {published} updates, {written} written, {published - written} dropped"
                         + (" (a live input does not wait for a slow reader)" if published - written and
                            not getattr(sink, "failed", False) else ""))
    for kind, n in summary.sink_errors.items():
        lines.append(f"  output {kind}: {n} publish errors")
    for name, why in summary.failed_outputs.items():
        lines.append(f"  FAILED output {name}: {why}")
    try:
        err.write("\n".join(printable(line) for line in lines) + "\n")
        err.flush()
    except (OSError, ValueError):  # the terminal has gone (SIGHUP)
        pass

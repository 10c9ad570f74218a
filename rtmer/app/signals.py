"""Signals for the command line: SIGINT, SIGTERM and SIGHUP stop a run cleanly.

``stop_on_signals(stop)`` is a context manager for the main thread. While it is active
the first of these signals sets ``stop`` (a ``threading.Event``), which the runner and
``rtmer analyze`` check at least every ``runner.MAX_WAIT_S``: inputs and sinks are
closed, stdout and files are flushed, the summary is printed, and the command exits
with 130. A second signal raises ``KeyboardInterrupt`` at once (abort). On the way out
the handlers that were there before are put back.

Why all three: Ctrl-C is SIGINT; ``kill``, systemd and container runtimes send SIGTERM;
closing the terminal or an SSH session sends SIGHUP. Each of them used to end a run
without its summary, or lose what a buffered output still held.

A signal that rtmer's parent set to be ignored stays ignored (no handler is put over
``SIG_IGN``): ``nohup`` ignores SIGHUP so that a run outlives its SSH session, and a
shell without job control ignores SIGINT for a background job (``rtmer run ... &`` in a
script) so that a Ctrl-C meant for the script does not reach it.

Before a command is ready for them (while Python imports numpy and onnxruntime, the
arguments are parsed, the model loads and the inputs open) ``hold_stop_signals`` takes
them with a handler that only records them: the process entry (``rtmer.__main__``)
installs it before it imports anything heavy. ``stop_on_signals`` then takes over what
was recorded and sets ``stop`` at once, so the run stops as soon as it has started: its
summary is printed and it exits with 130. A second signal while starting raises
``KeyboardInterrupt`` (abort). Recording rather than blocking the signals means no
``KeyboardInterrupt`` from inside an import (a traceback, or onnxruntime's "ImportError:
initialization failed"), no default action (death with 143 or 129) once a mask is lifted,
and nothing for child processes to inherit: exec resets a handler to the default.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

STOP_SIGNALS: tuple[signal.Signals, ...] = tuple(
    getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, name)
)

_held: list[int] = []  # signals recorded by ``_hold`` and not yet taken by ``stop_on_signals``


def _hold(signum: int, frame: Any) -> None:
    abort = bool(_held)
    _held.append(signum)
    if abort:
        raise KeyboardInterrupt


def _in_main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


def _install(handler: Any) -> dict[signal.Signals, Any]:
    """``handler`` for each of ``STOP_SIGNALS`` not ignored; returns the handlers it replaced."""
    old: dict[signal.Signals, Any] = {}
    for sig in STOP_SIGNALS:
        if signal.getsignal(sig) is not signal.SIG_IGN:
            old[sig] = signal.signal(sig, handler)
    return old


def _restore(old: dict[signal.Signals, Any]) -> None:
    for sig, previous in old.items():
        # None: a handler set outside Python, which cannot be put back from here
        signal.signal(sig, previous if previous is not None else signal.SIG_DFL)


@contextmanager
def hold_stop_signals() -> Iterator[None]:
    """Record ``STOP_SIGNALS`` (main thread) until ``stop_on_signals`` takes them, or the end.

    Nested holds share what is recorded; the outermost forgets it on the way out (see
    ``take_held_signals`` for what a caller does with one never taken).
    """
    if not _in_main_thread():
        yield
        return
    outermost = not any(signal.getsignal(sig) is _hold for sig in STOP_SIGNALS)
    old = _install(_hold)
    try:
        yield
    finally:
        _restore(old)
        if outermost:
            _held.clear()


def take_held_signals() -> list[int]:
    """The signals recorded while held, in order; forgets them."""
    taken = list(_held)
    _held.clear()
    return taken


@contextmanager
def stop_on_signals(stop: threading.Event) -> Iterator[list[int]]:
    """First signal of ``STOP_SIGNALS`` sets ``stop``; a second raises KeyboardInterrupt.

    Yields a list that receives the number of each signal caught, in order; one recorded
    while held (``hold_stop_signals``) counts as caught, and sets ``stop`` at once. Outside
    the main thread (where Python cannot set handlers) it does nothing.
    """
    caught: list[int] = []
    if not _in_main_thread():
        yield caught
        return

    def handler(signum: int, frame: Any) -> None:
        caught.append(signum)
        if stop.is_set():
            raise KeyboardInterrupt
        stop.set()

    old = _install(handler)
    caught.extend(take_held_signals())
    if caught:
        stop.set()
    try:
        yield caught
    finally:
        _restore(old)

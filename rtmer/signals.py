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

Before a command is ready for them (while it parses its arguments, imports numpy and
onnxruntime, loads the model and opens its inputs) ``hold_stop_signals`` keeps them
blocked (``pthread_sigmask``): one that comes in then waits, and is handled the moment
``stop_on_signals`` takes over. Without that, a Ctrl-C in a command's first half second
printed a traceback from inside an import, or turned into onnxruntime's "ImportError:
initialization failed". The hold ends (``release_held_signals``) before rtmer starts a
child process such as ffmpeg, since a child inherits the blocked mask.
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


@contextmanager
def stop_on_signals(stop: threading.Event) -> Iterator[list[int]]:
    """First signal of ``STOP_SIGNALS`` sets ``stop``; a second raises KeyboardInterrupt.

    Yields a list that receives the number of each signal caught, in order. Outside
    the main thread (where Python cannot set handlers) it does nothing.
    """
    caught: list[int] = []
    if threading.current_thread() is not threading.main_thread():
        yield caught
        return

    def handler(signum: int, frame: Any) -> None:
        caught.append(signum)
        if stop.is_set():
            raise KeyboardInterrupt
        stop.set()

    old = {sig: signal.signal(sig, handler) for sig in STOP_SIGNALS}
    mask = _set_mask(signal.SIG_UNBLOCK) if _CAN_MASK else None  # a signal held until now arrives here
    try:
        yield caught
    finally:
        if mask is not None:
            _set_mask(signal.SIG_SETMASK, mask)
        for sig, previous in old.items():
            signal.signal(sig, previous)


_CAN_MASK = hasattr(signal, "pthread_sigmask")


def _set_mask(how: int, mask: set[int] | None = None) -> set[int]:
    """Apply ``how`` to ``STOP_SIGNALS`` (or set ``mask``); returns the mask before."""
    return {int(sig) for sig in signal.pthread_sigmask(how, STOP_SIGNALS if mask is None else mask)}


def release_held_signals() -> None:
    """Stop holding ``STOP_SIGNALS`` (before starting child processes, which inherit the mask).

    One that is pending is delivered at once: SIGINT as ``KeyboardInterrupt``.
    """
    if _CAN_MASK and threading.current_thread() is threading.main_thread():
        _set_mask(signal.SIG_UNBLOCK)


@contextmanager
def hold_stop_signals() -> Iterator[None]:
    """Block ``STOP_SIGNALS`` in the main thread until ``stop_on_signals`` takes them, or the end.

    A signal still pending at the end is delivered as the mask is restored: SIGINT then
    raises ``KeyboardInterrupt`` there, for the caller to report.
    """
    if not _CAN_MASK or threading.current_thread() is not threading.main_thread():
        yield
        return
    before = _set_mask(signal.SIG_BLOCK)
    try:
        yield
    finally:
        _set_mask(signal.SIG_SETMASK, before)

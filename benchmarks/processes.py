"""Stopping the rtmer process a benchmark started, the way a user would."""

from __future__ import annotations

import signal
import subprocess


def stop(proc: subprocess.Popen[bytes]) -> str:
    """Ctrl-C (SIGINT), then a kill after 30 s; the process's stderr as text."""
    proc.send_signal(signal.SIGINT)
    try:
        _, err = proc.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        _, err = proc.communicate()
    return err.decode(errors="replace")

"""What the benchmarks that start rtmer share: free ports to give it, counting its OSC datagrams, and stopping it the way a user would."""

from __future__ import annotations

import signal
import socket
import subprocess
import threading


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    """A port that is free on 127.0.0.1 now (TCP by default, ``socket.SOCK_DGRAM`` for UDP)."""
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def count_osc(udp: socket.socket, counts: dict[str, int], done: threading.Event) -> None:
    """Count the datagrams that reach ``udp`` in ``counts["osc"]`` until ``done`` is set (a thread's target)."""
    udp.settimeout(0.5)
    while not done.is_set():
        try:
            udp.recv(65536)
            counts["osc"] += 1
        except (TimeoutError, OSError):
            pass


def stop(proc: subprocess.Popen[bytes]) -> str:
    """Ctrl-C (SIGINT), then a kill after 30 s; the process's stderr as text."""
    proc.send_signal(signal.SIGINT)
    try:
        _, err = proc.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        _, err = proc.communicate()
    return err.decode(errors="replace")

"""Fault run: what ``rtmer`` does when the world around it breaks, and what it counts.

    python benchmarks/faults.py            # all three, about a minute
    python benchmarks/faults.py --only osc

1. ``osc``: the OSC receiver goes away for ``--outage`` seconds and comes back on the
   same port. Printed: bundles received before, during and after; rtmer's sent/failed
   counts (the failed ones are the outage's).
2. ``ws``: WebSocket clients die badly while a steady client watches: one process is
   killed with SIGKILL while it receives, one raw connection sends half a frame and
   resets (RST). Printed: the steady client's updates and gaps, rtmer's counters, and
   whether its log holds a traceback.
3. ``device``: with the ``pulseaudio`` binary, a private server's null sink (the one
   ``rtmer run`` captures the monitor of) is unloaded and loaded again. Printed: the
   updates before and after, the device restarts and gaps rtmer counted, and how the
   run ended. Skipped without pulseaudio.

Each part runs ``rtmer demo`` or ``rtmer run`` in a subprocess, paced in real time.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from processes import free_port, stop


def summary_lines(err: str, *words: str) -> str:
    return "\n".join(f"    {line.strip()}" for line in err.splitlines() if any(w in line for w in words))


def osc_outage(outage: float) -> None:
    port = free_port(socket.SOCK_DGRAM)
    proc = subprocess.Popen([sys.executable, "-m", "rtmer", "demo", "--no-web", "--osc", f"127.0.0.1:{port}",
                             "--ws-port", str(free_port()), "--no-display"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    got = {"before": 0, "after": 0}

    def receive(phase: str, seconds: float) -> None:
        udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        udp.bind(("127.0.0.1", port))
        udp.settimeout(0.2)
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            try:
                udp.recv(65536)
                got[phase] += 1
            except TimeoutError:
                pass
        udp.close()

    receive("before", 8.0)
    time.sleep(outage)  # nobody listens: refusals
    receive("after", 8.0)
    err = stop(proc)
    print(f"osc: receiver gone for {outage:.0f} s: {got['before']} bundles in the 8 s before, "
          f"{got['after']} in the 8 s after it came back")
    print(summary_lines(err, "osc ", "updates", "Traceback"))


def ws_kills() -> None:
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "rtmer", "demo", "--no-web", "--osc", "127.0.0.1:9",
                             "--ws-port", str(port), "--no-display"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    from websockets.sync.client import connect

    url = f"ws://127.0.0.1:{port}/"
    seqs: list[int] = []
    done = threading.Event()

    def steady() -> None:
        deadline = time.monotonic() + 30
        while not done.is_set():
            try:
                with connect(url, open_timeout=5) as ws:
                    while not done.is_set():
                        try:
                            msg = json.loads(ws.recv(timeout=0.5))
                        except TimeoutError:
                            continue
                        if msg.get("type") == "va":
                            seqs.append(int(msg["seq"]))
            except Exception:
                if time.monotonic() > deadline:
                    return
                time.sleep(0.2)

    watcher = threading.Thread(target=steady, daemon=True)
    watcher.start()
    while not seqs:
        time.sleep(0.1)
    victim = subprocess.Popen([sys.executable, "-c", (
        "import sys\nfrom websockets.sync.client import connect\n"
        f"with connect('{url}') as ws:\n    print('up', flush=True)\n    while True: ws.recv()\n")], stdout=subprocess.PIPE)
    assert victim.stdout is not None
    victim.stdout.readline()
    time.sleep(2.0)
    victim.kill()  # SIGKILL while it receives
    raw = socket.create_connection(("127.0.0.1", port))
    raw.sendall(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
    raw.recv(4096)
    raw.sendall(b"\x81\xfe\x10\x00")  # a masked text frame of 4096 bytes: its header and nothing else
    raw.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    raw.close()  # RST
    time.sleep(5.0)
    done.set()
    watcher.join(5)
    err = stop(proc)
    gaps = sum(1 for a, b in zip(seqs, seqs[1:]) if b != a + 1)
    print(f"ws: a client SIGKILLed while receiving, one reset mid-frame: the steady client got {len(seqs)} "
          f"updates, {gaps} gaps; traceback in rtmer's log: {'Traceback' in err}")
    print(summary_lines(err, "websocket:", "updates"))


def device_vanishes(outage: float) -> None:
    if not shutil.which("pulseaudio"):
        print("device: skipped (no pulseaudio binary)")
        return
    from rtmer.app.demo import SynthMusic
    import soundfile as sf

    tmp = Path(tempfile.mkdtemp(prefix="rtmer-faults-"))
    env = dict(os.environ)
    from private_pulse import start_private_pulse

    pulse_pid = start_private_pulse(tmp, env, null_sink=None)  # the sink is loaded and unloaded below

    def load() -> str:
        return subprocess.run(["pactl", "load-module", "module-null-sink", "sink_name=rtmer_sink"], env=env,
                              check=True, capture_output=True, text=True).stdout.strip()

    module = load()
    music = tmp / "music.wav"
    sf.write(music, SynthMusic(rate=44100).render(40.0), 44100, subtype="PCM_16")
    player = subprocess.Popen(["sh", "-c", f"while true; do paplay -d rtmer_sink {music} 2>/dev/null; sleep 0.2; done"],
                              env=env)
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "rtmer", "run", "--stream", "live=device:rtmer_sink.monitor",
                             "--ws", "--ws-port", str(port), "--no-display"],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    from websockets.sync.client import connect

    arrivals: list[float] = []
    done = threading.Event()

    def watch() -> None:
        while not done.is_set():
            try:
                with connect(f"ws://127.0.0.1:{port}/", open_timeout=5) as ws:
                    while not done.is_set():
                        try:
                            if json.loads(ws.recv(timeout=0.5)).get("type") == "va":
                                arrivals.append(time.monotonic())
                        except TimeoutError:
                            continue
            except Exception:
                time.sleep(0.2)

    t = threading.Thread(target=watch, daemon=True)
    t.start()
    try:
        time.sleep(10.0)
        gone = time.monotonic()
        subprocess.run(["pactl", "unload-module", module], env=env, check=True)
        time.sleep(outage)
        back = time.monotonic()
        load()
        time.sleep(10.0)
    finally:
        done.set()
        t.join(5)
        running = proc.poll() is None
        err = stop(proc)
        player.terminate()
        os.kill(pulse_pid, signal.SIGTERM)
        shutil.rmtree(tmp, ignore_errors=True)
    before = sum(1 for a in arrivals if a < gone)
    during = sum(1 for a in arrivals if gone <= a < back)
    after = sum(1 for a in arrivals if a >= back)
    print(f"device: null sink unloaded for {outage:.0f} s, then loaded again: {before} updates in the 10 s before, "
          f"{during} during, {after} in the 10 s after; still running at the end: {running}")
    print(summary_lines(err, "device", "overruns", "FAILED", "updates", "stream live", "Traceback"))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", choices=("osc", "ws", "device"))
    ap.add_argument("--outage", type=float, default=5.0, help="how long the OSC target or the device is gone [s]")
    args = ap.parse_args()
    if args.only in (None, "osc"):
        osc_outage(args.outage)
    if args.only in (None, "ws"):
        ws_kills()
    if args.only in (None, "device"):
        device_vanishes(args.outage)


if __name__ == "__main__":
    main()

"""Real-time soak: ``rtmer demo`` (or a live PulseAudio capture) for a long time, with
clients that stay, clients that join and leave, and one client that stalls.

    python benchmarks/soak.py --seconds 3600            # the one-hour soak, by hand
    python benchmarks/soak.py --seconds 60 --sample 10  # a short look

What runs: ``rtmer demo`` (the synthesised music, paced in real time, the full live
pipeline) with OSC to a local UDP receiver and the WebSocket server on a free port;
``--source pulse`` captures a PulseAudio null sink's monitor instead (a private server;
paplay plays the demo's music into it). Clients:

- ``--steady N`` WebSocket clients connected for the whole run;
- one churning client at a time that stays 1-10 s, leaves, and comes back after 1 s;
- one stalled client that completes the handshake and then never reads (its socket
  buffer fills; rtmer must drop for it alone, then close it on the keepalive timeout);
- the OSC receiver.

Printed: per client the updates received, the sequence gaps (a ``seq`` skipped) and
arrival jitter (the time between two updates minus the hop, p50/p99/max [ms]); the
OSC bundles received; RSS [MB] and CPU [% of one core] of the rtmer process every
``--sample`` seconds, with the RSS growth per hour from a least-squares line; rtmer's
own summary. Targets: zero gaps, jitter p99 <= 10 ms, RSS growth <= 5 MB per hour.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from processes import count_osc, free_port, stop

TICK = os.sysconf("SC_CLK_TCK")
HOP = 0.5  # [s] the shipped models' hop


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


@dataclass
class ClientLog:
    name: str
    arrivals: list[float] = field(default_factory=list)
    seqs: list[int] = field(default_factory=list)
    sessions: int = 0

    def record(self, msg: dict[str, object], now: float) -> None:
        seq = msg.get("seq")
        if msg.get("type") == "va" and isinstance(seq, int):
            self.arrivals.append(now)
            self.seqs.append(seq)

    def gaps(self) -> int:
        return sum(1 for a, b in zip(self.seqs, self.seqs[1:]) if b != a + 1 and b > a)

    def jitter_ms(self) -> tuple[float, float, float]:
        d = [abs((b - a) - HOP) * 1000 for a, b in zip(self.arrivals, self.arrivals[1:]) if b - a < 1.5 * HOP * 2]
        if not d:
            return (float("nan"),) * 3
        d.sort()
        return d[len(d) // 2], d[min(len(d) - 1, int(0.99 * len(d)))], d[-1]


def steady_client(url: str, log: ClientLog, done: threading.Event) -> None:
    from websockets.sync.client import connect

    while not done.is_set():
        try:
            with connect(url, open_timeout=10) as ws:
                log.sessions += 1
                while not done.is_set():
                    try:
                        msg = ws.recv(timeout=0.5)
                    except TimeoutError:
                        continue
                    log.record(json.loads(msg), time.monotonic())
        except Exception:
            time.sleep(0.2)


def churn_client(url: str, log: ClientLog, done: threading.Event, rng: random.Random) -> None:
    """Joins, stays 1-10 s, leaves; its seq gaps are counted within each stay only."""
    from websockets.sync.client import connect

    while not done.is_set():
        stay = rng.uniform(1.0, 10.0)
        try:
            with connect(url, open_timeout=10) as ws:
                log.sessions += 1
                log.seqs.append(-1)  # a session boundary: not a gap
                end = time.monotonic() + stay
                while time.monotonic() < end and not done.is_set():
                    try:
                        msg = ws.recv(timeout=0.2)
                    except TimeoutError:
                        continue
                    obj = json.loads(msg)
                    if obj.get("type") == "va":
                        log.seqs.append(int(obj["seq"]))
        except Exception:
            pass
        done.wait(1.0)


def stalled_client(port: int, done: threading.Event) -> dict[str, object]:
    """Handshake, then never read: the server must carry on without it."""
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.connect(("127.0.0.1", port))
    s.sendall(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
              b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
    status = s.recv(12)
    state: dict[str, object] = {"handshake": status.decode("latin-1", "replace"), "closed_by_server_after_s": None}
    start = time.monotonic()

    def watch() -> None:
        done.wait()
        s.close()

    threading.Thread(target=watch, daemon=True).start()
    return state | {"start": start}


def start_pulse(tmp: Path, env: dict[str, str]) -> tuple[int, subprocess.Popen[bytes]]:
    from rtmer.app.demo import SynthMusic
    import soundfile as sf

    from private_pulse import start_private_pulse

    pid = start_private_pulse(tmp, env)
    music = tmp / "music.wav"
    sf.write(music, SynthMusic(rate=44100).render(120.0), 44100, subtype="PCM_16")
    player = subprocess.Popen(["sh", "-c", f"while true; do paplay -d rtmer_sink {music}; done"], env=env)
    return pid, player


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=3600.0, help="length of the soak [s]")
    ap.add_argument("--sample", type=float, default=60.0, help="RSS/CPU sampling period [s]")
    ap.add_argument("--steady", type=int, default=3, help="WebSocket clients connected throughout")
    ap.add_argument("--source", choices=("demo", "pulse"), default="demo")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="rtmer-soak-"))
    env = dict(os.environ)
    pulse_pid = player = None
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.bind(("127.0.0.1", 0))
    ws_port = free_port()
    common = ["--osc", f"127.0.0.1:{udp.getsockname()[1]}", "--ws-port", str(ws_port), "--no-display",
              "--seconds", str(args.seconds + 5)]
    if args.source == "pulse":
        if not shutil.which("pulseaudio"):
            sys.exit("--source pulse needs the pulseaudio binary")
        pulse_pid, player = start_pulse(tmp, env)
        cmd = [sys.executable, "-m", "rtmer", "run", "--stream", "live=device:rtmer_sink.monitor", "--ws", *common]
    else:
        cmd = [sys.executable, "-m", "rtmer", "demo", "--no-web", *common]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    url = f"ws://127.0.0.1:{ws_port}/"
    done = threading.Event()
    counts = {"osc": 0}
    steady = [ClientLog(f"steady{i + 1}") for i in range(args.steady)]
    churn = ClientLog("churn")
    threads = [threading.Thread(target=steady_client, args=(url, log, done), daemon=True) for log in steady]
    threads.append(threading.Thread(target=churn_client, args=(url, churn, done, random.Random(args.seed)),
                                    daemon=True))
    threads.append(threading.Thread(target=count_osc, args=(udp, counts, done), daemon=True))
    for t in threads:
        t.start()
    deadline = time.monotonic() + 30
    while not any(log.seqs for log in steady) and time.monotonic() < deadline:
        time.sleep(0.1)
    stalled = stalled_client(ws_port, done)
    samples: list[tuple[float, float, float]] = []  # (elapsed s, RSS MB, CPU %)
    t0 = time.monotonic()
    c_prev, t_prev = cpu_seconds(proc.pid), t0
    print(f"soak: {' '.join(cmd[2:])}", flush=True)
    print(f"{'t [s]':>8} {'RSS [MB]':>9} {'CPU [%]':>8} {'updates':>8}", flush=True)
    try:
        while time.monotonic() - t0 < args.seconds and proc.poll() is None:
            time.sleep(min(args.sample, max(0.0, args.seconds - (time.monotonic() - t0))))
            now = time.monotonic()
            c = cpu_seconds(proc.pid)
            samples.append((now - t0, rss_mb(proc.pid), 100 * (c - c_prev) / max(1e-9, now - t_prev)))
            c_prev, t_prev = c, now
            print(f"{samples[-1][0]:8.0f} {samples[-1][1]:9.1f} {samples[-1][2]:8.2f} "
                  f"{len(steady[0].seqs) if steady else 0:8d}", flush=True)
    finally:
        done.set()
        err = stop(proc)
        for t in threads:
            t.join(5)
        if player is not None:
            player.terminate()
        if pulse_pid is not None:
            os.kill(pulse_pid, signal.SIGTERM)
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"\nsoak of {samples[-1][0] if samples else 0:.0f} s ({args.source}):")
    for log in steady:
        p50, p99, mx = log.jitter_ms()
        print(f"  {log.name}: {len(log.seqs)} updates received in {log.sessions} session(s), {log.gaps()} gaps, "
              f"jitter p50 {p50:.2f} ms, p99 {p99:.2f} ms, max {mx:.2f} ms")
    churn_gaps = sum(1 for a, b in zip(churn.seqs, churn.seqs[1:]) if a >= 0 and b >= 0 and b != a + 1)
    print(f"  churn: {churn.sessions} sessions, {sum(1 for s in churn.seqs if s >= 0)} updates, {churn_gaps} gaps "
          "within sessions")
    print(f"  stalled client: handshake {str(stalled['handshake']).strip()!r}; it never read")
    print(f"  OSC: {counts['osc']} bundles received")
    if len(samples) >= 2:
        xs = [s[0] / 3600 for s in samples]
        ys = [s[1] for s in samples]
        slope = statistics.linear_regression(xs, ys).slope
        cpus = [s[2] for s in samples]
        print(f"  RSS {ys[0]:.1f} -> {ys[-1]:.1f} MB, growth {slope:+.2f} MB per hour (least squares); "
              f"CPU mean {statistics.fmean(cpus):.2f} %, max {max(cpus):.2f} % of one core")
    print("rtmer's summary:\n" + err.strip())


if __name__ == "__main__":
    main()

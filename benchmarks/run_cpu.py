"""CPU and memory of ``rtmer run`` with one live stream and both outputs (OSC + WebSocket).

With the ``pulseaudio`` binary: starts a private PulseAudio server with a null sink
(its own XDG_RUNTIME_DIR), plays synthesised music into it with ``paplay``, and runs

    rtmer run --stream live=device:pulse --osc 127.0.0.1:PORT --ws --ws-port PORT --no-display

Without it: the same command on a real-time paced file (``--stream file:...``).
A WebSocket client stays connected and a UDP socket receives the OSC throughout.
CPU is read from /proc/PID/stat (user + system time of the rtmer process only; the
audio server is not counted) over a steady window after start-up; memory is VmRSS and
VmHWM (peak). Target: <= 3 % of one core, RSS <= 200 MB.

    python benchmarks/run_cpu.py [--seconds 30] [--warmup 5]
"""

from __future__ import annotations

import argparse
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

import soundfile as sf

from rtmer.app.demo import SynthMusic
from processes import count_osc, free_port

TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK  # utime + stime


def mem_mb(pid: int) -> tuple[float, float]:
    vals = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(("VmRSS:", "VmHWM:")):
            vals[line.split(":")[0]] = int(line.split()[1]) / 1024
    return vals["VmRSS"], vals["VmHWM"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=30.0, help="measured window [s]")
    ap.add_argument("--warmup", type=float, default=5.0, help="start-up time left out [s]")
    args = ap.parse_args()
    total = args.warmup + args.seconds + 3
    tmp = Path(tempfile.mkdtemp(prefix="rtmer-cpu-"))
    env = dict(os.environ)
    music = tmp / "music.wav"
    sf.write(music, SynthMusic(rate=44100).render(total + 5), 44100, subtype="PCM_16")
    pulse_pid = None
    player = None
    if shutil.which("pulseaudio"):
        from private_pulse import start_private_pulse

        pulse_pid = start_private_pulse(tmp, env)
        subprocess.run(["pactl", "set-default-source", "rtmer_sink.monitor"], env=env, check=True)
        player = subprocess.Popen(["paplay", "-d", "rtmer_sink", str(music)], env=env)
        stream, how = "live=device:pulse", "live capture from a PulseAudio null sink (paplay plays into it)"
    else:
        stream, how = f"live=file:{music}", "a real-time paced file (no pulseaudio binary here)"

    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.bind(("127.0.0.1", 0))
    ws_port = free_port()
    cmd = [sys.executable, "-m", "rtmer", "run", "--stream", stream, "--osc", f"127.0.0.1:{udp.getsockname()[1]}",
           "--ws", "--ws-port", str(ws_port), "--no-display", "--seconds", str(total)]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    received = {"osc": 0, "ws": 0}
    done = threading.Event()

    def ws_rx() -> None:
        from websockets.sync.client import connect

        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and not done.is_set():
            try:
                with connect(f"ws://127.0.0.1:{ws_port}") as ws:
                    while not done.is_set():
                        try:
                            ws.recv(timeout=0.5)
                            received["ws"] += 1
                        except TimeoutError:
                            pass
                return
            except Exception:
                time.sleep(0.2)

    threads = [threading.Thread(target=count_osc, args=(udp, received, done)), threading.Thread(target=ws_rx)]
    for t in threads:
        t.start()
    try:
        time.sleep(args.warmup)
        c0, t0 = cpu_seconds(proc.pid), time.monotonic()
        time.sleep(args.seconds)
        c1, t1 = cpu_seconds(proc.pid), time.monotonic()
        rss, hwm = mem_mb(proc.pid)
        _, err = proc.communicate(timeout=30)
    finally:
        done.set()
        for t in threads:
            t.join()
        if proc.poll() is None:
            proc.kill()
        if player is not None and player.poll() is None:
            player.terminate()
        if pulse_pid is not None:
            os.kill(pulse_pid, signal.SIGTERM)
        shutil.rmtree(tmp, ignore_errors=True)
    share = 100 * (c1 - c0) / (t1 - t0)
    print(f"rtmer run, one stream: {how}; OSC + WebSocket (1 client) on")
    print(f"CPU {share:.2f} % of one core over {t1 - t0:.1f} s (target <= 3 %); "
          f"RSS {rss:.0f} MB, peak {hwm:.0f} MB (target <= 200 MB)")
    print(f"received: {received['osc']} OSC bundles, {received['ws']} WebSocket messages (incl. hello)")
    print("rtmer's summary:\n" + err.decode().strip())


if __name__ == "__main__":
    main()

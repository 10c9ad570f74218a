"""End-to-end latency: last sample of a hop entering the ring buffer -> OSC datagram and
WebSocket frame received on loopback.

One stream, CPU, the embedded default model (1 intra-op thread), the real pipeline:
``RingInput`` (the consumer side of live capture) -> ``Runner`` (select on the wake-up
pipe, framing, ``Engine``: sanitise, model step, One-Euro, mood) -> the real ``OscSink``
and ``WebSocketSink``. A producer thread stands in for the PortAudio callback: it pushes
10 ms blocks at the model rate into the ring and notes the time right after the block
that completes each hop. A receiver process (raw UDP socket; websockets client) notes
arrival times. ``perf_counter`` is CLOCK_MONOTONIC on Linux, so the clocks compare
across processes. Arrival on loopback is an upper bound for "leaving".

Hops are produced faster than real time (one every ``--interval`` s instead of 0.5 s)
so that a few hundred samples take seconds; each hop still arrives as 50 callback-sized
blocks. Target: p50 <= 2 ms, p99 <= 5 ms.

    python benchmarks/latency.py [--hops 300] [--interval 0.03]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import socket
import threading
import time
from typing import Any

import numpy as np

from rtmer.core.engine import Engine
from rtmer.core.model import StreamingModel
from rtmer.outputs.osc import OscSink
from rtmer.app.runner import Runner
from rtmer.inputs.live import RingInput
from rtmer.outputs.websocket import WebSocketSink
from processes import free_port

HOST = "127.0.0.1"


def receiver(udp_port: int, ws_port: int, n: int, ready: Any, out: Any) -> None:
    """Child process: one UDP socket and one WebSocket client; arrival time per hop."""
    from websockets.sync.client import connect

    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.bind((HOST, udp_port))
    udp.settimeout(0.5)
    osc_t: list[float] = []
    ws_t = np.full(n, np.nan)

    def ws_loop() -> None:
        with connect(f"ws://{HOST}:{ws_port}", compression=None) as ws:
            ws.recv(timeout=10)  # hello
            ready.put("ws")
            got = 0
            deadline = time.monotonic() + 120
            while got < n and time.monotonic() < deadline:
                try:
                    msg = ws.recv(timeout=2)
                except TimeoutError:
                    continue
                t = time.perf_counter()
                seq = json.loads(msg)["seq"]
                if seq < n:
                    ws_t[seq] = t
                    got += 1

    th = threading.Thread(target=ws_loop)
    th.start()
    deadline = time.monotonic() + 120
    while len(osc_t) < n and time.monotonic() < deadline:
        try:
            udp.recv(65536)
        except TimeoutError:
            continue
        osc_t.append(time.perf_counter())
    th.join()
    out.put((osc_t, ws_t.tolist()))


def pct(x: np.ndarray, q: float) -> float:
    return float(np.percentile(x, q) * 1e3)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--hops", type=int, default=300)
    ap.add_argument("--interval", type=float, default=0.03, help="wall time between hops [s]")
    args = ap.parse_args()

    model = StreamingModel(intra_op_threads=1)
    info = model.info
    engine = Engine(model)
    udp_port, ws_port = free_port(socket.SOCK_DGRAM), free_port()
    ctx = mp.get_context("spawn")
    ready, out = ctx.Queue(), ctx.Queue()
    n = args.hops
    proc = ctx.Process(target=receiver, args=(udp_port, ws_port, n, ready, out))
    osc = OscSink([(HOST, udp_port)], prefix="/rtmer")
    ws = WebSocketSink(HOST, ws_port, hello={"streams": ["bench"]})
    proc.start()
    ready.get(timeout=30)
    time.sleep(0.2)  # let the UDP socket bind

    block = info.sample_rate // 100  # 10 ms, a typical callback
    blocks_per_hop = info.hop_samples // block
    rng = np.random.default_rng(0)
    audio = (0.2 * rng.standard_normal((blocks_per_hop * 8, block, 1))).astype(np.float32)
    inp = RingInput("bench", streams={"bench": None}, device_rate=info.sample_rate,
                    model_rate=info.sample_rate, channels=1)
    hop_done = np.full(n, np.nan)
    stop = threading.Event()

    def produce() -> None:
        time.sleep(0.3)
        for k in range(n):
            for b in range(blocks_per_hop):
                inp.push(audio[(k * blocks_per_hop + b) % audio.shape[0]])
            hop_done[k] = time.perf_counter()  # the hop's last sample is in the ring
            time.sleep(args.interval)
        time.sleep(0.5)
        stop.set()

    producer = threading.Thread(target=produce)
    producer.start()
    step_times: list[float] = []
    real_step = model.step

    def timed_step(a: np.ndarray, s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        t0 = time.perf_counter()
        r = real_step(a, s)
        step_times.append(time.perf_counter() - t0)
        return r

    model.step = timed_step  # type: ignore[method-assign, assignment]
    Runner(engine, [inp], [osc, ws], stop=stop).run()
    producer.join()
    osc_t, ws_t = out.get(timeout=60)
    proc.join(10)
    osc.close()
    ws.close()

    osc_lat = np.array(osc_t[:n]) - hop_done[: len(osc_t)]
    ws_lat = np.array(ws_t) - hop_done
    ws_lat = ws_lat[np.isfinite(ws_lat)]
    steps = np.array(step_times)
    print(f"model {info.name} {info.version}, {model.provider}, 1 intra-op thread; {n} hops of {info.hop_seconds} s")
    print(f"model.step alone           p50 {pct(steps, 50):6.3f} ms  p99 {pct(steps, 99):6.3f} ms")
    for name, lat in (("ring -> OSC datagram", osc_lat), ("ring -> WebSocket frame", ws_lat)):
        print(f"{name:<26} p50 {pct(lat, 50):6.3f} ms  p99 {pct(lat, 99):6.3f} ms  max {pct(lat, 100):6.3f} ms"
              f"  (n={lat.shape[0]})")
    both = np.maximum(osc_lat[: ws_lat.shape[0]], ws_lat[: osc_lat.shape[0]])
    ok = pct(both, 50) <= 2.0 and pct(both, 99) <= 5.0
    print(f"both outputs (later one)   p50 {pct(both, 50):6.3f} ms  p99 {pct(both, 99):6.3f} ms  "
          f"target p50 <= 2 ms, p99 <= 5 ms: {'met' if ok else 'NOT met'}")
    print(f"declared algorithmic latency [s]: {engine.latency}")


if __name__ == "__main__":
    main()

"""Fan-out cost: what 50 WebSocket clients and 4 OSC targets add to update delivery.

Delivery time of an update = from the start of the sink's ``publish()`` call (in this
process, the "engine") to the moment a receiver has the message (another process:
websockets asyncio clients, raw UDP sockets). ``perf_counter`` is CLOCK_MONOTONIC on
Linux, so times compare across processes. All traffic is on 127.0.0.1.

Scenarios, each with both sinks running: 1 client / 1 target (baseline), 50 / 1, 1 / 4,
50 / 4. The figure of merit is the p99 delivery time of each message, and of the last
receiver of each update, minus the baseline's. Target: each adds no more than 5 ms p99.

    python benchmarks/fanout.py                      # 3 rounds x 150 updates at 50 Hz
    python benchmarks/fanout.py --rounds 1 --updates 100 --rate 20

Updates are published faster than the real 2 Hz to gather samples in a few seconds;
every loop is bounded and the whole run stops by itself (about 50 s by default). The
scenarios run in rounds, interleaved, so that load from other programs on the machine
falls on all of them alike.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import select
import socket
import sys
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from rtmer.outputs.osc import OscSink
from rtmer.core.update import Update
from rtmer.outputs.websocket import WebSocketSink

HOST = "127.0.0.1"
TARGET_ADDED_P99_MS = 5.0


def ws_receivers(port: int, n_clients: int, n_updates: int, deadline_s: float, ready: Any, out: Any) -> None:
    """Child process: ``n_clients`` websockets clients; records arrival time per seq."""
    from websockets.asyncio.client import connect

    arrivals = np.full((n_clients, n_updates), np.nan)

    async def one(i: int, connected: asyncio.Event, all_connected: list[int]) -> None:
        async with connect(f"ws://{HOST}:{port}", compression=None, max_queue=None) as ws:
            await ws.recv()  # hello: the server has registered this client
            all_connected[0] += 1
            if all_connected[0] == n_clients:
                connected.set()
            got = 0
            while got < n_updates:
                msg = await ws.recv()
                t = time.perf_counter()
                seq = json.loads(msg)["seq"]
                arrivals[i, seq] = t
                got += 1

    async def run() -> None:
        connected = asyncio.Event()
        count = [0]
        tasks = [asyncio.create_task(one(i, connected, count)) for i in range(n_clients)]
        await asyncio.wait_for(connected.wait(), 20)
        ready.put("ws")
        await asyncio.wait(tasks, timeout=deadline_s)
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    asyncio.run(run())
    out.put(("ws", arrivals))


def ws_receivers_raw(port: int, n_clients: int, n_updates: int, deadline_s: float, ready: Any, out: Any) -> None:
    """Child process: ``n_clients`` minimal WebSocket clients on raw sockets (handshake,
    then unmasked server frames parsed by hand), so that the receiving side adds as
    little as possible; records the arrival time per seq."""
    import base64
    import os
    import selectors

    arrivals = np.full((n_clients, n_updates), np.nan)
    socks: list[socket.socket] = []
    bufs: list[bytearray] = []
    got = [0] * n_clients
    for _ in range(n_clients):
        s = socket.create_connection((HOST, port))
        ws_key = base64.b64encode(os.urandom(16)).decode()
        s.sendall(f"GET / HTTP/1.1\r\nHost: {HOST}:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                  f"Sec-WebSocket-Key: {ws_key}\r\nSec-WebSocket-Version: 13\r\n\r\n".encode())
        head = b""
        while b"\r\n\r\n" not in head:
            head += s.recv(4096)
        assert head.startswith(b"HTTP/1.1 101"), head[:80]
        socks.append(s)
        bufs.append(bytearray(head.split(b"\r\n\r\n", 1)[1]))

    def frames(buf: bytearray, sock: socket.socket) -> list[bytes]:
        """Complete text frames at the head of ``buf`` (consumed); a ping is answered on ``sock``
        (rtmer's server pings to learn how far a client has read), other opcodes skipped."""
        done = []
        while len(buf) >= 2:
            opcode, n, i = buf[0] & 0x0F, buf[1] & 0x7F, 2
            if n == 126:
                if len(buf) < 4:
                    break
                n, i = int.from_bytes(buf[2:4], "big"), 4
            elif n == 127:
                if len(buf) < 10:
                    break
                n, i = int.from_bytes(buf[2:10], "big"), 10
            if len(buf) < i + n:
                break
            if opcode == 1:
                done.append(bytes(buf[i : i + n]))
            elif opcode == 9:  # a pong, masked (with a zero mask) as client frames must be
                sock.sendall(bytes([0x8A, 0x80 | n]) + b"\0\0\0\0" + bytes(buf[i : i + n]))
            del buf[: i + n]
        return done

    sel = selectors.DefaultSelector()
    for k, s in enumerate(socks):
        s.setblocking(False)
        sel.register(s, selectors.EVENT_READ, k)
    hellos = 0
    for k in range(n_clients):  # the hello may already be buffered after the headers
        hellos += len(frames(bufs[k], socks[k]))
    end = time.monotonic() + 20
    while hellos < n_clients and time.monotonic() < end:
        for key, _ in sel.select(0.1):
            k = key.data
            bufs[k] += socks[k].recv(65536)
            hellos += len(frames(bufs[k], socks[k]))
    ready.put("ws")
    remaining = n_clients * n_updates
    end = time.monotonic() + deadline_s
    while remaining and time.monotonic() < end:
        for key, _ in sel.select(0.1):
            k = key.data
            data = socks[k].recv(65536)
            t = time.perf_counter()
            if not data:
                sel.unregister(socks[k])
                continue
            bufs[k] += data
            for msg in frames(bufs[k], socks[k]):
                seq = json.loads(msg)["seq"]
                arrivals[k, seq] = t
                got[k] += 1
                remaining -= 1
    for s in socks:
        s.close()
    out.put(("ws", arrivals))


def osc_receivers(n_targets: int, n_updates: int, deadline_s: float, ports_out: Any, out: Any) -> None:
    """Child process: ``n_targets`` UDP sockets; the bundle timetag carries the seq."""
    from pythonosc.osc_bundle import OscBundle

    socks = []
    for _ in range(n_targets):
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
        s.bind((HOST, 0))
        socks.append(s)
    ports_out.put([s.getsockname()[1] for s in socks])
    arrivals = np.full((n_targets, n_updates), np.nan)
    remaining = n_targets * n_updates
    end = time.monotonic() + deadline_s
    while remaining and time.monotonic() < end:
        ready, _, _ = select.select(socks, [], [], 0.1)
        for k, s in enumerate(socks):
            if s in ready:
                dgram = s.recv(65536)
                t = time.perf_counter()
                seq = int(round(OscBundle(dgram).timestamp - 1_000_000_000))
                arrivals[k, seq] = t
                remaining -= 1
    out.put(("osc", arrivals))


@dataclass
class Result:
    clients: int
    targets: int
    ws_msg: np.ndarray  # delivery times [s], every (client, update)
    ws_last: np.ndarray  # per update, the last client's delivery [s]
    osc_msg: np.ndarray
    osc_last: np.ndarray
    ws_missing: int
    osc_missing: int
    publish_max_us: float


def run_scenario(n_clients: int, n_targets: int, n_updates: int, rate_hz: float, *, ws_client: str) -> Result:
    ctx = mp.get_context("spawn")
    ready, out = ctx.Queue(), ctx.Queue()
    deadline = n_updates / rate_hz + 10.0
    osc_proc = ctx.Process(target=osc_receivers, args=(n_targets, n_updates, deadline, ready, out), daemon=True)
    osc_proc.start()
    ports: list[int] = ready.get(timeout=30)
    ws = WebSocketSink(HOST, 0, hello={"model": {"model_name": "bench"}, "streams": ["main"]}, queue_size=64)
    osc = OscSink([(HOST, p) for p in ports])
    receiver = ws_receivers_raw if ws_client == "raw" else ws_receivers
    ws_proc = ctx.Process(target=receiver, args=(ws.port, n_clients, n_updates, deadline, ready, out), daemon=True)
    ws_proc.start()
    assert ready.get(timeout=30) == "ws"
    t_ws = np.empty(n_updates)
    t_osc = np.empty(n_updates)
    worst = 0.0
    period = 1.0 / rate_hz
    start = time.perf_counter() + 0.2
    for seq in range(n_updates):
        while (delay := start + seq * period - time.perf_counter()) > 0:
            time.sleep(delay)
        u = Update("main", seq, 0.5 * (seq + 1), 1_000_000_000.0 + seq, 0.1, -0.2, 0.3, -0.4, "calm")
        # OSC first: it sends in this thread; the WebSocket fan-out runs on the server's
        # thread after publish() returns and would otherwise compete for the GIL
        t0 = time.perf_counter()
        osc.publish(u)
        t1 = time.perf_counter()
        ws.publish(u)
        t2 = time.perf_counter()
        t_osc[seq], t_ws[seq] = t0, t1
        worst = max(worst, t1 - t0, t2 - t1)
    got: dict[str, np.ndarray] = {}
    for _ in range(2):
        kind, arr = out.get(timeout=deadline + 30)
        got[kind] = arr
    ws_proc.join(10)
    osc_proc.join(10)
    ws.close()
    osc.close()
    ws_d = got["ws"] - t_ws[None, :]
    osc_d = got["osc"] - t_osc[None, :]
    return Result(
        clients=n_clients,
        targets=n_targets,
        ws_msg=ws_d[np.isfinite(ws_d)],
        ws_last=np.max(ws_d, axis=0)[np.all(np.isfinite(ws_d), axis=0)],
        osc_msg=osc_d[np.isfinite(osc_d)],
        osc_last=np.max(osc_d, axis=0)[np.all(np.isfinite(osc_d), axis=0)],
        ws_missing=int(np.sum(~np.isfinite(ws_d))),
        osc_missing=int(np.sum(~np.isfinite(osc_d))),
        publish_max_us=worst * 1e6,
    )


def merge(rs: list[Result]) -> Result:
    return Result(
        clients=rs[0].clients,
        targets=rs[0].targets,
        ws_msg=np.concatenate([r.ws_msg for r in rs]),
        ws_last=np.concatenate([r.ws_last for r in rs]),
        osc_msg=np.concatenate([r.osc_msg for r in rs]),
        osc_last=np.concatenate([r.osc_last for r in rs]),
        ws_missing=sum(r.ws_missing for r in rs),
        osc_missing=sum(r.osc_missing for r in rs),
        publish_max_us=max(r.publish_max_us for r in rs),
    )


def ms(x: np.ndarray, q: float) -> float:
    return float(np.percentile(x, q) * 1e3) if x.size else float("nan")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--updates", type=int, default=150, help="updates per scenario and round (default 150)")
    ap.add_argument("--rounds", type=int, default=3,
                    help="rounds; each runs every scenario once, so load from elsewhere hits all alike (default 3)")
    ap.add_argument("--rate", type=float, default=50.0, help="updates per second (default 50)")
    ap.add_argument("--clients", type=int, default=50, help="WebSocket clients (default 50)")
    ap.add_argument("--targets", type=int, default=4, help="OSC targets (default 4)")
    ap.add_argument("--ws-client", choices=("raw", "websockets"), default="raw",
                    help="WebSocket receivers: minimal raw-socket clients (default) or websockets asyncio clients, "
                         "all in one process")
    args = ap.parse_args(argv)
    if not (1 <= args.updates <= 100_000 and 1 <= args.rounds <= 20 and 0 < args.rate <= 1000
            and 1 <= args.clients <= 500 and 1 <= args.targets <= 64):
        ap.error("--updates 1..100000, --rounds 1..20, --rate 0..1000, --clients 1..500, --targets 1..64")

    scenarios = [(1, 1), (args.clients, 1), (1, args.targets), (args.clients, args.targets)]
    print(f"fan-out benchmark: {args.rounds} rounds x {args.updates} updates at {args.rate:g} Hz per scenario, loopback, "
          f"receivers in other processes ({args.ws_client} WebSocket clients)")
    print(f"{'clients':>7} {'targets':>7} | {'WS p50':>7} {'WS p99':>7} {'WS last p99':>11} | "
          f"{'OSC p50':>7} {'OSC p99':>7} {'OSC last p99':>12} | {'publish max':>11} | missing ws/osc")
    runs: dict[tuple[int, int], list[Result]] = {sc: [] for sc in scenarios}
    for _ in range(args.rounds):
        for c, t in scenarios:
            runs[(c, t)].append(run_scenario(c, t, args.updates, args.rate, ws_client=args.ws_client))
    results = {sc: merge(rs) for sc, rs in runs.items()}
    for (c, t), r in results.items():
        print(f"{c:>7} {t:>7} | {ms(r.ws_msg, 50):>6.2f}m {ms(r.ws_msg, 99):>6.2f}m {ms(r.ws_last, 99):>10.2f}m | "
              f"{ms(r.osc_msg, 50):>6.2f}m {ms(r.osc_msg, 99):>6.2f}m {ms(r.osc_last, 99):>11.2f}m | "
              f"{r.publish_max_us:>9.0f}us | {r.ws_missing}/{r.osc_missing}")
        sys.stdout.flush()
    base = results[(1, 1)]
    full = results[(args.clients, args.targets)]
    ws_added = ms(full.ws_last, 99) - ms(base.ws_last, 99)
    osc_added = ms(full.osc_last, 99) - ms(base.osc_last, 99)
    print("(times in ms; 'last' = the update's last receiver; 'publish max' = longest publish() call)")
    print(f"added p99 vs 1 client / 1 target, at {args.clients} clients + {args.targets} targets: "
          f"WebSocket {ws_added:+.2f} ms (last client), OSC {osc_added:+.2f} ms (last target); "
          f"target <= {TARGET_ADDED_P99_MS:g} ms each: "
          f"{'met' if max(ws_added, osc_added) <= TARGET_ADDED_P99_MS else 'NOT met'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

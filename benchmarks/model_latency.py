"""Per-hop latency and batched throughput of a model file through onnxruntime on one CPU thread.

    python benchmarks/model_latency.py [default|large|PATH] [--json] [--hops N] [--rounds R] [--batch B]

Latency includes the in-graph front end (DFT, log-mel, features): one call of the model
per 500 ms hop, batch 1, timed in R rounds of N hops with a pause between them, because a
shared machine's speed drifts over seconds: p50 and p99 are over all the rounds' hops,
and the rounds' own p50s are printed beside them as the spread. Throughput is real-time
streams per core at batch 256: how many streams one core keeps up with when their hops
share one call. Targets: p50 <= 0.5 ms, p99 <= 1 ms, >= 1000 streams per core.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from rtmer.core.model import StreamingModel, resolve_model


def call_times(model: StreamingModel, batch: int, calls: int, warmup: int) -> np.ndarray:
    """Seconds per ``model.step`` call on noise, state carried from call to call."""
    rng = np.random.default_rng(0)
    audio = (0.1 * rng.standard_normal((batch, model.info.hop_samples))).astype(np.float32)
    state = model.initial_state(batch)
    times = np.empty(warmup + calls)
    for i in range(warmup + calls):
        start = time.perf_counter()
        _, state = model.step(audio, state)
        times[i] = time.perf_counter() - start
    return times[warmup:]


def measure(path: Path, *, hops: int = 1000, rounds: int = 5, pause: float = 2.0, batch: int = 256, batch_calls: int = 20) -> dict[str, Any]:
    model = StreamingModel(path, providers=["CPUExecutionProvider"], intra_op_threads=1)
    per_round = []
    for index in range(rounds):
        if index:
            time.sleep(pause)
        per_round.append(call_times(model, 1, hops, warmup=50))
    times = np.concatenate(per_round)
    call = float(np.median(call_times(model, batch, batch_calls, warmup=3)))
    return {
        "p50_ms": float(np.percentile(times, 50) * 1e3),
        "p99_ms": float(np.percentile(times, 99) * 1e3),
        "round_p50s_ms": [float(np.percentile(t, 50) * 1e3) for t in per_round],
        "batch": batch,
        "batch_call_ms": call * 1e3,
        "streams_per_core": batch * model.info.hop_seconds / call,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", nargs="?", default="default", help="a shipped model name or a path")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--hops", type=int, default=1000, help="batch-1 calls timed in each round")
    parser.add_argument("--rounds", type=int, default=5, help="rounds of --hops calls, 2 s apart")
    parser.add_argument("--batch", type=int, default=256, help="streams in the throughput call")
    args = parser.parse_args(argv)
    figures = measure(resolve_model(args.model), hops=args.hops, rounds=args.rounds, batch=args.batch)
    if args.json:
        print(json.dumps(figures))
    else:
        print(f"model {args.model}")
        rounds = ", ".join(f"{value:.3f}" for value in figures["round_p50s_ms"])
        print(f"per-hop latency, batch 1, 1 thread: p50 {figures['p50_ms']:.3f} ms, p99 {figures['p99_ms']:.3f} ms (p50 of each round: {rounds} ms)")
        print(f"batch {figures['batch']}: {figures['batch_call_ms']:.1f} ms a call, {figures['streams_per_core']:.0f} real-time streams per core")
    return 0


if __name__ == "__main__":
    sys.exit(main())

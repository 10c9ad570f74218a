from __future__ import annotations

import threading

import numpy as np
import pytest

from rtmer.errors import ConfigError
from rtmer.inputs.ring import RingBuffer


def frames(start: int, n: int, channels: int = 2) -> np.ndarray:
    x = np.arange(start, start + n, dtype=np.float32)
    return np.stack([x] * channels, axis=1)


def test_reads_what_was_written_across_the_wrap() -> None:
    ring = RingBuffer(10, channels=2)
    got = []
    for k in range(7):
        ring.write(frames(k * 4, 4))
        r = ring.read()
        assert r.lost == 0
        got.append(r.frames[:, 0])
    assert np.array_equal(np.concatenate(got), np.arange(28, dtype=np.float32))
    assert ring.overruns == 0 and ring.dropped_frames == 0


def test_overrun_drops_the_oldest_and_counts_it() -> None:
    ring = RingBuffer(10, channels=1)
    ring.write(frames(0, 6, 1))
    ring.write(frames(6, 6, 1))  # 12 written, capacity 10: frames 0 and 1 are lost
    r = ring.read()
    assert r.lost == 2
    assert np.array_equal(r.frames[:, 0], np.arange(2, 12, dtype=np.float32))
    assert (ring.overruns, ring.dropped_frames) == (1, 2)
    ring.write(frames(12, 3, 1))
    r = ring.read()
    assert r.lost == 0 and r.frames[0, 0] == 12


def test_a_write_longer_than_the_capacity_keeps_the_newest() -> None:
    ring = RingBuffer(4, channels=1)
    ring.write(frames(0, 9, 1))
    r = ring.read()
    assert np.array_equal(r.frames[:, 0], np.array([5, 6, 7, 8], dtype=np.float32))
    assert r.lost == 5 and ring.producer_truncations == 1


def test_max_frames_and_available() -> None:
    ring = RingBuffer(8)
    ring.write(frames(0, 5, 1))
    assert ring.available == 5
    assert ring.read(2).frames.shape == (2, 1)
    assert ring.available == 3


def test_concurrent_producer_never_yields_out_of_order_frames() -> None:
    ring = RingBuffer(64, channels=1)
    total = 20000
    done = threading.Event()

    def produce() -> None:
        for k in range(0, total, 16):
            ring.write(frames(k, 16, 1))
        done.set()

    t = threading.Thread(target=produce)
    t.start()
    seen = 0
    last = -1.0
    while not (done.is_set() and ring.available == 0):
        r = ring.read()
        if r.frames.shape[0]:
            assert r.frames[0, 0] >= last + 1 + 0  # strictly increasing, gaps allowed
            assert np.all(np.diff(r.frames[:, 0]) == 1)
            last = float(r.frames[-1, 0])
            seen += r.frames.shape[0]
    t.join()
    assert seen + ring.dropped_frames == total


@pytest.mark.parametrize("capacity", [0, -3, 2.5])
def test_capacity_must_be_positive(capacity: object) -> None:
    with pytest.raises(ConfigError, match=r"ring capacity=.* must be a positive integer \[frames\]"):
        RingBuffer(capacity)  # type: ignore[arg-type]

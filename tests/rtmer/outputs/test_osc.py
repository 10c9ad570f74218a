"""OSC sink over real UDP sockets, with the receiver in another process (python-osc decoding)."""

from __future__ import annotations

import multiprocessing as mp
import queue
import select
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import soundfile as sf

from rtmer.errors import ConfigError
from rtmer.outputs.osc import OscSink, parse_target
from rtmer.core.update import Update

from conftest import cli, music_like
from osc_listener import N_PORTS, listen

@dataclass
class Receiver:
    ports: list[int]
    queue: Any

    def get(self, n: int, timeout: float = 3.0) -> list[tuple[int, float, list[Any]]]:
        out: list[tuple[int, float, list[Any]]] = []
        deadline = time.monotonic() + timeout
        while len(out) < n:
            out.append(self.queue.get(timeout=max(0.01, deadline - time.monotonic())))
        return out

    def assert_empty(self, wait: float = 0.1) -> None:
        with pytest.raises(queue.Empty):
            self.queue.get(timeout=wait)


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    ctx = mp.get_context("spawn")
    ports_out, received, stop = ctx.Queue(), ctx.Queue(), ctx.Event()
    proc = ctx.Process(target=listen, args=(ports_out, received, stop), daemon=True)
    proc.start()
    try:
        yield Receiver(ports_out.get(timeout=20), received)
    finally:
        stop.set()
        proc.join(5)
        if proc.is_alive():
            proc.kill()


def make_update(seq: int = 0, stream: str = "main", time_: float = 1_700_000_000.5) -> Update:
    return Update(
        stream=stream,
        seq=seq,
        t=0.5 * (seq + 1),
        time=time_,
        valence=0.5,
        arousal=-0.25,
        valence_raw=1.0,
        arousal_raw=-1.0,
        mood="excited",
    )


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


def test_one_bundle_with_flat_addresses_types_values_and_timetag(receiver: Receiver) -> None:
    sink = OscSink([("127.0.0.1", receiver.ports[0])])
    sink.publish(make_update(time_=1_700_000_123.25))
    sink.close()
    [(port, timestamp, messages)] = receiver.get(1)
    assert port == receiver.ports[0]
    assert timestamp == pytest.approx(1_700_000_123.25, abs=1e-6)
    assert messages == [
        ("/rtmer/valence", ",f", [0.5]),
        ("/rtmer/arousal", ",f", [-0.25]),
        ("/rtmer/va", ",ff", [0.5, -0.25]),
        ("/rtmer/mood", ",s", ["excited"]),
        ("/rtmer/raw/va", ",ff", [1.0, -1.0]),
    ]
    receiver.assert_empty()


def test_every_target_gets_the_same_bundle(receiver: Receiver) -> None:
    sink = OscSink([("127.0.0.1", p) for p in receiver.ports], prefix="/show/emo")
    for seq in range(3):
        sink.publish(make_update(seq, time_=1_700_000_000.0 + seq))
    sink.close()
    got = receiver.get(3 * N_PORTS)
    for port in receiver.ports:
        mine = [(ts, msgs) for p, ts, msgs in got if p == port]
        assert [round(ts) for ts, _ in mine] == [1_700_000_000, 1_700_000_001, 1_700_000_002]
        assert mine[0][1][0][0] == "/show/emo/valence"
    assert [t.sent for t in sink.targets] == [3, 3]


def test_per_stream_prefix_and_unit_range(receiver: Receiver) -> None:
    sink = OscSink([("127.0.0.1", receiver.ports[0])], per_stream_prefix=True, unit_range=True)
    sink.publish(make_update(stream="deck1"))
    sink.publish(make_update(stream="deck 2/B"))
    sink.close()
    (_, _, m1), (_, _, m2) = receiver.get(2)
    assert m1 == [
        ("/rtmer/deck1/valence", ",f", [0.75]),
        ("/rtmer/deck1/arousal", ",f", [0.375]),
        ("/rtmer/deck1/va", ",ff", [0.75, 0.375]),
        ("/rtmer/deck1/mood", ",s", ["excited"]),
        ("/rtmer/deck1/raw/va", ",ff", [1.0, 0.0]),
    ]
    assert [a for a, _, _ in m2][0] == "/rtmer/deck_2_B/valence"  # unsafe characters replaced


def test_unreachable_target_keeps_running_and_logs_once(
    receiver: Receiver, caplog: pytest.LogCaptureFixture
) -> None:
    dead = free_udp_port()  # nobody listens: the kernel answers ICMP port unreachable
    targets = [("127.0.0.1", dead), ("host.invalid", 9000), ("127.0.0.1", receiver.ports[0])]
    with caplog.at_level("WARNING", logger="rtmer.outputs.osc"):
        sink = OscSink(targets)
        for seq in range(5):
            sink.publish(make_update(seq))
            time.sleep(0.01)  # let the ICMP error arrive before the next send
    sink.close()
    assert len(receiver.get(5)) == 5  # the good target got everything
    dead_stats, unresolved, good = sink.targets
    assert "ConnectionRefusedError" in (dead_stats.last_error or "")
    assert unresolved.failed == 5 and unresolved.sent == 0  # the 5 skipped sends
    assert good.failed == 0 and good.sent == 5
    warnings = [r.getMessage() for r in caplog.records]
    assert len([w for w in warnings if f"127.0.0.1:{dead}" in w]) == 1
    assert len([w for w in warnings if "host.invalid:9000" in w]) == 1
    assert len(warnings) == 2


def test_refused_datagrams_are_failed_not_sent() -> None:
    """Linux reports a refusal on the socket after the datagram left; it must not count as sent.

    (The old count alternated "sent" and "errors" for a dead port: 3 sent, 2 errors of 5.)
    """
    dead = free_udp_port()
    sink = OscSink([("127.0.0.1", dead)])
    for seq in range(5):
        sink.publish(make_update(seq))
        time.sleep(0.01)  # the refusal of each datagram is pending before the next one
    sink.close()
    [stats] = sink.targets
    assert stats.sent + stats.failed == 5
    assert stats.failed >= 4 and stats.sent <= 1  # exact on loopback: 0 sent, 5 failed
    assert "ConnectionRefusedError" in (stats.last_error or "")


def test_a_receiver_that_starts_later_counts_as_sent() -> None:
    port = free_udp_port()
    sink = OscSink([("127.0.0.1", port)])
    sink.publish(make_update(0))
    time.sleep(0.01)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as rx:
        rx.bind(("127.0.0.1", port))
        rx.settimeout(3)
        sink.publish(make_update(1))
        sink.publish(make_update(2))
        got = [rx.recv(65536) for _ in range(2)]
        sink.close()
    [stats] = sink.targets
    assert len(got) == 2 and (stats.sent, stats.failed) == (2, 1)


def _broadcast_reachable() -> bool:
    """Whether this machine has an IPv4 route a limited broadcast can leave by."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
        try:
            s.connect(("255.255.255.255", 9))
        except OSError:
            return False
    return True


@pytest.mark.skipif(not _broadcast_reachable(), reason="no IPv4 route for a broadcast on this machine")
def test_a_broadcast_target_reaches_every_listener() -> None:
    """Row 9: SO_BROADCAST was never set, so every datagram to a broadcast address failed."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as rx:
        rx.bind(("0.0.0.0", 0))  # a receiver on every interface gets broadcasts (and Linux loops them back)
        rx.settimeout(3)
        port = rx.getsockname()[1]
        sink = OscSink([("255.255.255.255", port)])
        for seq in range(3):
            sink.publish(make_update(seq))
        got = [rx.recv(65536) for _ in range(3)]
        sink.close()
    [stats] = sink.targets
    assert all(g == sink.encode(make_update(seq)) for seq, g in enumerate(got))
    assert (stats.sent, stats.failed, sink.all_failed) == (3, 0, False)


def test_all_failed_says_that_nothing_reached_any_target() -> None:
    dead = free_udp_port()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as rx:
        rx.bind(("127.0.0.1", 0))
        both = OscSink([("127.0.0.1", dead), ("127.0.0.1", rx.getsockname()[1])])
        only_dead = OscSink([("127.0.0.1", dead)])
        assert not only_dead.all_failed  # nothing sent yet: nothing failed either
        for sink in (both, only_dead):
            for seq in range(3):
                sink.publish(make_update(seq))
                time.sleep(0.01)
            sink.close()
    assert not both.all_failed and both.sent == 3 and both.failed == 3
    assert only_dead.all_failed and (only_dead.sent, only_dead.failed) == (0, 3)


def test_a_run_whose_every_osc_datagram_failed_exits_1(tmp_path: Path) -> None:
    from rtmer.app.cli import EXIT_INPUT_FAILED, EXIT_OK

    clip = tmp_path / "clip.wav"
    sf.write(clip, music_like(2.0, 16000, seed=4), 16000, subtype="PCM_16")
    dead = free_udp_port()
    code, _, err = cli("run", "--stream", str(clip), "--no-realtime", "--no-display", "--osc", f"127.0.0.1:{dead}")
    assert code == EXIT_INPUT_FAILED, err
    assert f"osc 127.0.0.1:{dead}: 0 sent, 4 failed" in err  # 2 s: 4 hops
    assert "FAILED output osc: every datagram failed (4, none sent)" in err
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as rx:  # one live target is enough
        rx.bind(("127.0.0.1", 0))
        code, _, err = cli("run", "--stream", str(clip), "--no-realtime", "--no-display", "--osc",
                           f"127.0.0.1:{dead}", "--osc", f"127.0.0.1:{rx.getsockname()[1]}")
    assert code == EXIT_OK, err

@pytest.mark.parametrize(
    ("text", "expected"),
    [("127.0.0.1:9000", ("127.0.0.1", 9000)), ("mixer.local:57120", ("mixer.local", 57120)),
     ("[::1]:7000", ("::1", 7000))],
)
def test_parse_target(text: str, expected: tuple[str, int]) -> None:
    assert parse_target(text) == expected


@pytest.mark.parametrize("text", ["localhost", "localhost:", ":9000", "host:port", "::1:9000", "h:0"])
def test_parse_target_rejects(text: str) -> None:
    with pytest.raises(ConfigError, match=rf"OSC target '{text}'.*expected 'host:port'"):
        parse_target(text)


def test_parse_target_names_out_of_range_port() -> None:
    with pytest.raises(ConfigError, match=r"'h:70000': port 70000 is out of range"):
        parse_target("h:70000")


def test_options_are_checked() -> None:
    with pytest.raises(ConfigError, match=r"prefix='rtmer/' must look like '/rtmer'"):
        OscSink([("127.0.0.1", 9000)], prefix="rtmer/")
    with pytest.raises(ConfigError, match=r"targets=\[\] must name at least one"):
        OscSink([])
    with pytest.raises(ConfigError, match=r"\('127.0.0.1', 0\) must be a \(host, port\) pair"):
        OscSink([("127.0.0.1", 0)])


def test_example_receiver_prints_the_messages() -> None:
    import subprocess
    import sys
    from pathlib import Path

    script = Path(__file__).resolve().parents[3] / "clients" / "osc_receiver.py"
    port = free_udp_port()
    proc = subprocess.Popen(
        [sys.executable, str(script), "--port", str(port), "--count", "5"], stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout is not None
        assert "listening" in proc.stdout.readline()
        sink = OscSink([("127.0.0.1", port)])
        sink.publish(make_update())
        sink.close()
        out, _ = proc.communicate(timeout=10)
    finally:
        proc.kill()
    assert proc.returncode == 0
    assert out.splitlines() == [
        "/rtmer/valence 0.5000",
        "/rtmer/arousal -0.2500",
        "/rtmer/va 0.5000 -0.2500",
        "/rtmer/mood excited",
        "/rtmer/raw/va 1.0000 -1.0000",
    ]

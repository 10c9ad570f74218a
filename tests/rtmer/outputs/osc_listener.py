"""The OSC receiver that test_osc runs in a child process (spawned: the child imports this module, not the test module and its conftest)."""

import select
import socket
from typing import Any

N_PORTS = 2


def listen(ports_out: Any, received: Any, stop: Any) -> None:
    """Child process: bind UDP sockets on loopback, decode every bundle with python-osc."""
    from pythonosc.osc_bundle import OscBundle
    from pythonosc.parsing import osc_types

    socks = []
    for _ in range(N_PORTS):
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind(("127.0.0.1", 0))
        socks.append(s)
    ports_out.put([s.getsockname()[1] for s in socks])
    while not stop.is_set():
        ready, _, _ = select.select(socks, [], [], 0.05)
        for s in ready:
            dgram = s.recv(65536)
            port = s.getsockname()[1]
            assert OscBundle.dgram_is_bundle(dgram)
            bundle = OscBundle(dgram)
            messages = []
            for m in bundle:
                # the type tag string follows the address in the message datagram
                _, index = osc_types.get_string(m.dgram, 0)
                tags, _ = osc_types.get_string(m.dgram, index)
                messages.append((m.address, tags, list(m.params)))
            received.put((port, bundle.timestamp, messages))

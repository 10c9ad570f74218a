"""The patches in ``clients/``: the Pure Data patch in a real Pd, the Max patch as a document.

The Pd test runs Debian's ``pd`` (package ``puredata-core``, installed by tests/run.sh)
with no GUI and no audio; it skips when Pd is not installed. Max cannot run here, so its
patch is checked for what Max needs: valid JSON, the objects (udpreceive, route on
rtmer's addresses, unpack) and cords that join existing outlets to existing inlets.
"""

from __future__ import annotations

import io
import json
import math
import re
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf
from pythonosc.osc_bundle import OscBundle
from pythonosc.osc_message_builder import OscMessageBuilder

from rtmer.app.cli import EXIT_OK, main
from rtmer.app.demo import section_audio
from rtmer.outputs.osc import OscSink
from rtmer.core.update import Update

REPO = Path(__file__).resolve().parents[2]
CLIENTS = REPO / "clients"
PD = shutil.which("pd") or shutil.which("puredata")


def wait_for(check: Callable[[], Any], what: str, timeout: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout
    while not (got := check()):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(0.05)
    return got


def rtmer_addresses() -> list[str]:
    """The addresses rtmer sends for one stream, read from an encoded bundle."""
    u = Update(stream="main", seq=0, t=0.5, time=1.7e9, valence=0.1, arousal=0.2, valence_raw=0.1,
               arousal_raw=0.2, mood="calm")
    sink = OscSink([("127.0.0.1", 9)])
    try:
        bundle = OscBundle(sink.encode(u))
    finally:
        sink.close()
    return [msg.address for msg in bundle]


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.skipif(PD is None, reason="Pure Data is not installed (tests/run.sh installs Debian's puredata-core)")
def test_pd_patch_prints_the_values_rtmer_sends(tmp_path: Path) -> None:
    assert PD is not None
    clip = tmp_path / "clip.wav"
    sf.write(clip, np.concatenate([section_audio("calm", 16000)[:16000], section_audio("tense", 16000)[:16000 * 2]]),
             16000)
    port = free_udp_port()
    pd = subprocess.Popen([PD, "-nogui", "-nosound", "-nomidi", "-noprefs", "-stderr", "-send", f"rtmer-port {port}",
                           str(CLIENTS / "rtmer.pd")],
                          stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines: list[str] = []

    def read() -> None:
        assert pd.stdout is not None
        for line in pd.stdout:
            lines.append(line.rstrip("\n"))

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        # Pd listens once it has loaded the patch: knock until it prints what it got
        probe = OscMessageBuilder("/rtmer/mood")
        probe.add_arg("probe")
        datagram = probe.build().dgram
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            def knock() -> bool:
                s.sendto(datagram, ("127.0.0.1", port))
                time.sleep(0.1)
                return "mood: probe" in lines

            wait_for(knock, f"Pd to print the probe (it printed: {lines})")
        start = len(lines)
        out, err = io.StringIO(), io.StringIO()
        code = main(["run", "--stream", str(clip), "--no-realtime", "--no-display", "--ndjson",
                     "--osc", f"127.0.0.1:{port}"], stdout=out, stderr=err)
        assert code == EXIT_OK, err.getvalue()
        sent = [json.loads(line) for line in out.getvalue().splitlines()]
        assert len(sent) == 6
        wait_for(lambda: sum(line.startswith("raw-va: ") for line in lines[start:]) == len(sent),
                 "Pd to print every update")
    finally:
        pd.terminate()
        pd.wait(10)
        reader.join(10)
        assert pd.stdout is not None
        pd.stdout.close()
    printed = [line for line in lines[start:] if line != "mood: probe"]  # a late probe is not an update
    assert not [line for line in lines if "couldn't create" in line or "no method" in line], lines

    def values(name: str) -> list[list[str]]:
        return [line.split(": ", 1)[1].split() for line in printed if line.startswith(f"{name}: ")]

    def close(got: list[list[str]], want: list[list[float]]) -> bool:
        return len(got) == len(want) and all(
            len(g) == len(w) and all(math.isclose(float(a), b, rel_tol=1e-5, abs_tol=1e-6) for a, b in zip(g, w))
            for g, w in zip(got, want))

    assert close(values("valence"), [[m["valence"]] for m in sent])
    assert close(values("arousal"), [[m["arousal"]] for m in sent])
    assert close(values("va"), [[m["valence"], m["arousal"]] for m in sent])
    assert close(values("raw-va"), [[m["raw"]["valence"], m["raw"]["arousal"]] for m in sent])
    assert values("mood") == [[m["mood"]] for m in sent]
    assert len({m["arousal"] for m in sent}) > 1  # values that change, not one repeated


def test_pd_patch_routes_every_address_rtmer_sends() -> None:
    text = (CLIENTS / "rtmer.pd").read_text()
    assert "#X obj 20 90 netreceive -u -b 9000;" in text and "oscparse;" in text
    leaves = {a.removeprefix("/rtmer/").split("/")[0] for a in rtmer_addresses()}
    route = re.search(r"route (valence arousal va mood raw);", text)
    assert route and set(route.group(1).split()) == leaves


def test_max_patch_receives_routes_and_unpacks_rtmer_osc() -> None:
    doc = json.loads((CLIENTS / "rtmer.maxpat").read_text())
    patcher = doc["patcher"]
    boxes = {b["box"]["id"]: b["box"] for b in patcher["boxes"]}
    assert len(boxes) == len(patcher["boxes"])  # ids are unique
    for box in boxes.values():
        assert {"maxclass", "numinlets", "numoutlets", "patching_rect"} <= set(box), box
        if box["numoutlets"]:
            assert len(box["outlettype"]) == box["numoutlets"], box
    by_text = {b.get("text", "").split(" ")[0]: b for b in boxes.values() if b["maxclass"] == "newobj"}
    assert by_text["udpreceive"]["text"] == "udpreceive 9000"
    route = by_text["route"]
    addresses = route["text"].split()[1:]
    assert addresses == rtmer_addresses() and route["numoutlets"] == len(addresses) + 1

    cords: dict[tuple[str, int], list[tuple[str, int]]] = {}
    for line in patcher["lines"]:
        (src, outlet), (dst, inlet) = line["patchline"]["source"], line["patchline"]["destination"]
        assert src in boxes and dst in boxes, line
        assert 0 <= outlet < boxes[src]["numoutlets"] and 0 <= inlet < boxes[dst]["numinlets"], line
        cords.setdefault((src, outlet), []).append((dst, inlet))

    def fed_by(src: str, outlet: int) -> list[dict[str, Any]]:
        return [boxes[dst] for dst, _ in cords.get((src, outlet), [])]

    udp = next(i for i, b in boxes.items() if b.get("text") == "udpreceive 9000")
    route_id = next(i for i, b in boxes.items() if b is route)
    assert [b["id"] for b in fed_by(udp, 0)] == [route_id]
    for k, address in enumerate(addresses):
        targets = fed_by(route_id, k)
        assert targets, f"nothing receives {address}"
        if address.endswith("/va"):  # two floats: valence, arousal
            (unpack,) = [b for b in targets if b.get("text") == "unpack f f"]
            assert {b["maxclass"] for b in fed_by(unpack["id"], 0) + fed_by(unpack["id"], 1)} == {"flonum"}
        elif address.endswith("/mood"):  # a symbol, shown in a message box
            (prepend,) = targets
            assert prepend["text"] == "prepend set" and [b["maxclass"] for b in fed_by(prepend["id"], 0)] == ["message"]
        else:
            assert "flonum" in {b["maxclass"] for b in targets}

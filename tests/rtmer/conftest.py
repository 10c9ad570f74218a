"""Shared fixtures: a tiny contract-conforming ONNX model built with onnx.helper.

The tiny model is what the "broken contract" tests mutate; pipeline tests use the
real default model in ``models/`` (``default_model_path``).
"""

from __future__ import annotations

import csv
import io
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from rtmer.core.model import DEFAULT_MODEL_PATH
from rtmer.core.update import Update

TINY_RATE = 16000
TINY_HOP = 8000
TINY_STATE = 4


def tiny_metadata(*, sample_rate: int = TINY_RATE, hop: int = TINY_HOP, state_size: int = TINY_STATE) -> dict[str, str]:
    return {
        "contract_version": "1",
        "sample_rate": str(sample_rate),
        "hop_samples": str(hop),
        "hop_seconds": str(hop / sample_rate),
        "state_size": str(state_size),
        "outputs": "valence,arousal",
        "output_range": "[-1, 1]",
        "model_name": "tiny-test",
        "model_version": "0",
        "training_data": "none",
        "metrics": "{}",
    }


def build_tiny_model(
    path: Path,
    *,
    sample_rate: int = TINY_RATE,
    hop: int = TINY_HOP,
    state_size: int = TINY_STATE,
    metadata: dict[str, str] | None = None,
    drop_keys: tuple[str, ...] = (),
    state_output_name: str = "state_out",
) -> Path:
    """Write a stateful toy model: va = tanh(f(audio stats) + state @ W); state' = 0.5 state + stats.

    The state depends on every earlier hop, so carrying (or not resetting) it changes the output.
    """
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    assert state_size >= 4
    w = np.zeros((state_size, 2), dtype=np.float32)
    w[0, 0], w[1, 1], w[2, 0], w[3, 1] = 0.8, -0.6, 0.3, 2.0
    pad = np.zeros((4, state_size), dtype=np.float32)
    pad[np.arange(4), np.arange(4)] = 1.0
    inits = [
        numpy_helper.from_array(w, "W"),
        numpy_helper.from_array(pad, "P"),
        numpy_helper.from_array(np.array([1], dtype=np.int64), "axis1"),
        numpy_helper.from_array(np.array([[5.0, 10.0]], dtype=np.float32), "scale"),
        numpy_helper.from_array(np.array([[-0.5, 0.0]], dtype=np.float32), "bias"),
        numpy_helper.from_array(np.array(0.5, dtype=np.float32), "half"),
        numpy_helper.from_array(np.array(1e-8, dtype=np.float32), "eps"),
    ]
    nodes = [
        helper.make_node("Mul", ["audio", "audio"], ["sq"]),
        helper.make_node("ReduceMean", ["sq", "axis1"], ["ms"], keepdims=1),
        helper.make_node("Add", ["ms", "eps"], ["ms_eps"]),
        helper.make_node("Sqrt", ["ms_eps"], ["rms"]),
        helper.make_node("ReduceMean", ["audio", "axis1"], ["mean"], keepdims=1),
        helper.make_node("Abs", ["audio"], ["absa"]),
        helper.make_node("ReduceMax", ["absa", "axis1"], ["peak"], keepdims=1),
        helper.make_node("Mul", ["mean", "mean"], ["mean2"]),
        helper.make_node("Concat", ["rms", "mean"], ["feat"], axis=1),
        helper.make_node("Mul", ["feat", "scale"], ["feat_s"]),
        helper.make_node("Add", ["feat_s", "bias"], ["feat_b"]),
        helper.make_node("MatMul", ["state", "W"], ["mem"]),
        helper.make_node("Add", ["feat_b", "mem"], ["pre"]),
        helper.make_node("Tanh", ["pre"], ["va"]),
        helper.make_node("Concat", ["rms", "mean", "peak", "mean2"], ["stats"], axis=1),
        helper.make_node("MatMul", ["stats", "P"], ["stats_p"]),
        helper.make_node("Mul", ["state", "half"], ["decayed"]),
        helper.make_node("Add", ["decayed", "stats_p"], [state_output_name]),
    ]
    graph = helper.make_graph(
        nodes,
        "tiny",
        [
            helper.make_tensor_value_info("audio", TensorProto.FLOAT, ["batch", hop]),
            helper.make_tensor_value_info("state", TensorProto.FLOAT, ["batch", state_size]),
        ],
        [
            helper.make_tensor_value_info("va", TensorProto.FLOAT, ["batch", 2]),
            helper.make_tensor_value_info(state_output_name, TensorProto.FLOAT, ["batch", state_size]),
        ],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 9
    meta = tiny_metadata(sample_rate=sample_rate, hop=hop, state_size=state_size)
    meta.update(metadata or {})
    for key in drop_keys:
        meta.pop(key, None)
    helper.set_model_props(model, meta)
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


@pytest.fixture(scope="session")
def tiny_model_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_model(tmp_path_factory.mktemp("models") / "tiny.onnx")


@pytest.fixture(scope="session")
def default_model_path() -> Path:
    """The embedded default model; the pipeline tests run on it."""
    assert DEFAULT_MODEL_PATH.is_file(), f"{DEFAULT_MODEL_PATH} is missing"
    return DEFAULT_MODEL_PATH


def tone(freq_hz: float, seconds: float, rate: int, *, amplitude: float = 0.5, phase: float = 0.0) -> np.ndarray:
    t = np.arange(int(round(seconds * rate))) / rate
    return (amplitude * np.sin(2 * np.pi * freq_hz * t + phase)).astype(np.float32)


def music_like(seconds: float, rate: int, *, seed: int = 0) -> np.ndarray:
    """A deterministic, varied test signal: chords, noise bursts and level changes."""
    rng = np.random.default_rng(seed)
    n = int(round(seconds * rate))
    t = np.arange(n) / rate
    sig = 0.2 * np.sin(2 * np.pi * 220 * t) + 0.1 * np.sin(2 * np.pi * 330 * t * (1 + 0.01 * np.sin(t)))
    env = 0.5 + 0.5 * np.sin(2 * np.pi * 0.3 * t)
    noise = rng.standard_normal(n) * (np.sin(2 * np.pi * 2 * t) > 0.7) * 0.1
    out: Any = (sig * env + noise).astype(np.float32)
    return out


class CollectingSink:
    """A sink that keeps every update it is given, in order."""

    def __init__(self) -> None:
        self.got: list[Update] = []

    def publish(self, update: Update) -> None:
        self.got.append(update)

    def close(self) -> None:
        pass


def stderr_until(proc: subprocess.Popen[bytes], text: str) -> list[str]:
    """The lines ``proc`` writes to stderr up to the first that holds ``text``; fails if it ends first."""
    assert proc.stderr is not None
    seen: list[str] = []
    while not any(text in line for line in seen):
        line = proc.stderr.readline().decode()
        assert line, f"the process ended before it said {text!r}: " + "".join(seen)
        seen.append(line)
    return seen


_RTMER_WITH_SIGNALS = """
import os, signal, sys
ignored = {int(number) for number in sys.argv[1].split(",") if number}
for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
    signal.signal(sig, signal.SIG_IGN if int(sig) in ignored else signal.SIG_DFL)
os.execv(sys.executable, [sys.executable, "-m", "rtmer", *sys.argv[2:]])
"""


def rtmer_command(*, ignoring: tuple[signal.Signals, ...] = ()) -> list[str]:
    """``python -m rtmer`` as from a terminal's foreground job: SIGINT, SIGTERM and SIGHUP at
    their defaults, whatever this test run inherited (a script's background job ignores
    SIGINT, nohup SIGHUP), except those in ``ignoring``, which the process inherits ignored."""
    return [sys.executable, "-c", _RTMER_WITH_SIGNALS, ",".join(str(int(sig)) for sig in ignoring)]


class StuckFile(io.StringIO):
    """A pipe nobody reads: every write blocks until ``release`` is set (or ``wait_s`` passes)."""

    def __init__(self, wait_s: float = 30.0) -> None:
        super().__init__()
        self.release = threading.Event()
        self.wait_s = wait_s

    def write(self, s: str) -> int:
        self.release.wait(self.wait_s)
        return super().write(s)


@pytest.fixture
def collecting_sink() -> CollectingSink:
    return CollectingSink()


def free_port() -> int:
    """A TCP port that is free on 127.0.0.1 now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(check: Callable[[], Any], what: str, timeout: float = 60.0, every: float = 0.1) -> Any:
    """Poll ``check`` until it returns something true; fail naming ``what`` after ``timeout`` [s]."""
    deadline = time.monotonic() + timeout
    while True:
        got = check()
        if got:
            return got
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(every)


def cli(*argv: str) -> tuple[int, str, str]:
    """``rtmer.app.cli.main(argv)`` in process: (exit code, stdout, stderr)."""
    from rtmer.app.cli import main

    out, err = io.StringIO(), io.StringIO()
    code = main(list(argv), stdout=out, stderr=err)
    return code, out.getvalue(), err.getvalue()


def read_csv(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """3.3 s of stereo 16-bit audio at 44.1 kHz: resampled, and 7 hops, the last one partial."""
    import soundfile as sf

    path = tmp_path_factory.mktemp("audio") / "clip.wav"
    x = music_like(3.3, 44100, seed=11)
    sf.write(path, np.stack([x, 0.5 * x], axis=1), 44100, subtype="PCM_16")
    return path

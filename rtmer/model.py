"""Load a streaming model file and check it against the rtmer model contract (version 1).

The contract, which the trainer's exporter writes and this module enforces:

- inputs  ``audio`` float32 [batch, hop_samples] (mono PCM at ``sample_rate``) and
  ``state`` float32 [batch, state_size] (all zeros starts a stream);
- outputs ``va`` float32 [batch, 2] (valence, arousal in [-1, 1]) and
  ``state_out`` float32 [batch, state_size];
- ``metadata_props`` with every key in ``REQUIRED_METADATA``.

Everything the runtime needs to know about a model comes from the file itself.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort

from rtmer.errors import ModelContractError

CONTRACT_VERSION = "1"
REQUIRED_METADATA = (
    "contract_version",
    "sample_rate",
    "hop_samples",
    "hop_seconds",
    "state_size",
    "outputs",
    "output_range",
    "model_name",
    "model_version",
    "training_data",
    "metrics",
)
DEFAULT_MODEL_PATH = Path(__file__).resolve().parent.parent / "models" / "rtmer-default.onnx"

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ModelInfo:
    """What the model file says about itself. ``hop_seconds`` is the output period [s]."""

    sample_rate: int
    hop_samples: int
    hop_seconds: float
    state_size: int
    name: str
    version: str
    metadata: dict[str, str]

    def public(self) -> dict[str, Any]:
        """Metadata for clients (the WebSocket ``hello``), with JSON values decoded."""
        out: dict[str, Any] = {}
        for key, value in self.metadata.items():
            try:
                out[key] = json.loads(value) if key in ("metrics",) else value
            except json.JSONDecodeError:
                out[key] = value
        return out


def available_providers() -> list[str]:
    """CUDA first when onnxruntime-gpu and a GPU are present, else CPU."""
    have = ort.get_available_providers()
    return [p for p in ("CUDAExecutionProvider", "CPUExecutionProvider") if p in have]


class StreamingModel:
    """One onnxruntime session for a contract-conforming model file.

    ``step`` is pure: state goes in and comes out, nothing is kept between calls.
    """

    def __init__(
        self,
        path: str | Path = DEFAULT_MODEL_PATH,
        *,
        providers: list[str] | None = None,
        intra_op_threads: int = 1,
    ) -> None:
        self.path = str(path)
        if not Path(path).is_file():
            raise ModelContractError(self.path, "file does not exist")
        options = ort.SessionOptions()
        options.intra_op_num_threads = intra_op_threads
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        try:
            self.session = ort.InferenceSession(
                self.path, options, providers=providers or available_providers()
            )
        except Exception as exc:  # onnxruntime raises its own opaque types
            raise ModelContractError(self.path, f"not a loadable ONNX model ({exc})") from exc
        self.provider = self.session.get_providers()[0]
        self.info = _check_contract(self.path, self.session)
        log.info("model %s %s on %s", self.info.name, self.info.version, self.provider)

    def initial_state(self, batch: int) -> np.ndarray:
        """The start-of-stream state for ``batch`` streams: all zeros."""
        return np.zeros((batch, self.info.state_size), dtype=np.float32)

    def step(self, audio: np.ndarray, state: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Run one hop for a batch of streams.

        audio: float32 [batch, hop_samples]; state: float32 [batch, state_size].
        Returns (va [batch, 2], new state [batch, state_size]).
        """
        hop, size = self.info.hop_samples, self.info.state_size
        if audio.ndim != 2 or audio.shape[1] != hop:
            raise ValueError(f"audio shape {audio.shape} must be [batch, {hop}]")
        if state.shape != (audio.shape[0], size):
            raise ValueError(f"state shape {state.shape} must be [{audio.shape[0]}, {size}]")
        va, new_state = self.session.run(
            ["va", "state_out"],
            {"audio": audio.astype(np.float32, copy=False), "state": state.astype(np.float32, copy=False)},
        )
        return va, new_state


def _check_contract(path: str, session: ort.InferenceSession) -> ModelInfo:
    meta = dict(session.get_modelmeta().custom_metadata_map)
    missing = [key for key in REQUIRED_METADATA if key not in meta]
    if missing:
        raise ModelContractError(path, f"metadata_props lack {', '.join(missing)}")
    if meta["contract_version"] != CONTRACT_VERSION:
        raise ModelContractError(
            path, f"contract_version={meta['contract_version']!r}, this runtime reads {CONTRACT_VERSION!r}"
        )
    sample_rate = _positive_int(path, meta, "sample_rate")
    hop_samples = _positive_int(path, meta, "hop_samples")
    state_size = _positive_int(path, meta, "state_size")
    try:
        hop_seconds = float(meta["hop_seconds"])
    except ValueError:
        raise ModelContractError(path, f"hop_seconds={meta['hop_seconds']!r} is not a number") from None
    if abs(hop_seconds - hop_samples / sample_rate) > 1e-6:
        raise ModelContractError(
            path, f"hop_seconds={hop_seconds} disagrees with hop_samples/sample_rate={hop_samples / sample_rate}"
        )
    if meta["outputs"] != "valence,arousal":
        raise ModelContractError(path, f"outputs={meta['outputs']!r}, expected 'valence,arousal'")

    inputs = {i.name: i for i in session.get_inputs()}
    outputs = {o.name: o for o in session.get_outputs()}
    expected_io = (
        ("input", inputs, "audio", hop_samples),
        ("input", inputs, "state", state_size),
        ("output", outputs, "va", 2),
        ("output", outputs, "state_out", state_size),
    )
    for kind, table, name, width in expected_io:
        if name not in table:
            raise ModelContractError(path, f"has no {kind} named {name!r} (has {sorted(table)})")
        arg = table[name]
        if arg.type != "tensor(float)":
            raise ModelContractError(path, f"{kind} {name!r} is {arg.type}, expected tensor(float)")
        if len(arg.shape) != 2 or arg.shape[1] != width:
            raise ModelContractError(path, f"{kind} {name!r} has shape {arg.shape}, expected [batch, {width}]")
    if set(inputs) != {"audio", "state"}:
        raise ModelContractError(path, f"inputs are {sorted(inputs)}, expected ['audio', 'state']")
    return ModelInfo(
        sample_rate=sample_rate,
        hop_samples=hop_samples,
        hop_seconds=hop_seconds,
        state_size=state_size,
        name=meta["model_name"],
        version=meta["model_version"],
        metadata=meta,
    )


def _positive_int(path: str, meta: dict[str, str], key: str) -> int:
    try:
        value = int(meta[key])
    except ValueError:
        value = 0
    if value <= 0:
        raise ModelContractError(path, f"{key}={meta[key]!r} must be a positive integer")
    return value

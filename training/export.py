"""Export a trained head as one self-contained stateful ONNX file (rtmer model contract 1)."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Sequence

import numpy as np
import onnx
import onnxruntime as ort
import torch

from training.frontend import HOP_SAMPLES, SAMPLE_RATE
from training.models import Head, StreamingModel

CONTRACT_VERSION = "1"
OPSET = 18
IR_VERSION = 9  # what released onnxruntime builds load


def export_onnx(head: Head, path: Path, *, metadata: dict[str, str]) -> StreamingModel:
    """Write ``path`` and return the torch model it was traced from (in eval mode)."""
    model = StreamingModel(head).eval()
    export_streaming(model, path, metadata=metadata)
    return model


def export_streaming(model: torch.nn.Module, path: Path, *, metadata: dict[str, str]) -> None:
    """Write any module with ``state_size`` and ``forward(audio, state) -> (va, state_out)`` as a contract model.

    Initializers whose values are all exact at float16 (``round_to_float16``, the front
    end's DFT) are stored at half precision.
    """
    model.eval()
    batch = torch.export.Dim("batch", min=1, max=4096)
    example = (torch.zeros(2, HOP_SAMPLES), torch.zeros(2, model.state_size))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        program = torch.onnx.export(
            model,
            example,
            dynamo=True,
            opset_version=OPSET,
            input_names=["audio", "state"],
            output_names=["va", "state_out"],
            dynamic_shapes=({0: batch}, {0: batch}),
            verbose=False,
        )
    proto = program.model_proto
    proto.ir_version = IR_VERSION
    contract = {
        "contract_version": CONTRACT_VERSION,
        "sample_rate": str(SAMPLE_RATE),
        "hop_samples": str(HOP_SAMPLES),
        "hop_seconds": str(HOP_SAMPLES / SAMPLE_RATE),
        "state_size": str(model.state_size),
        "outputs": "valence,arousal",
        "output_range": "-1,1",
    }
    _store_as_float16(proto)
    for node in proto.graph.node:  # the exporter's debug notes (stack traces): a third of the file
        del node.metadata_props[:]
    del proto.graph.value_info[:]
    del proto.metadata_props[:]
    for key, value in {**contract, **metadata}.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save_model(proto, str(path))
    onnx.checker.check_model(str(path))


def _store_as_float16(proto: onnx.ModelProto, min_values: int = 4096) -> None:
    """Store each large float32 initializer that holds only float16 values as float16, cast back when the session loads.

    No value changes: an initializer with any value that float16 cannot hold stays float32.
    """
    for initializer in proto.graph.initializer:
        if initializer.data_type != onnx.TensorProto.FLOAT or np.prod(initializer.dims) < min_values:
            continue
        values = onnx.numpy_helper.to_array(initializer)
        if not np.array_equal(values.astype(np.float16).astype(np.float32), values):
            continue
        name = initializer.name
        initializer.CopyFrom(onnx.numpy_helper.from_array(values.astype(np.float16), name + "_float16"))
        proto.graph.node.insert(0, onnx.helper.make_node("Cast", [name + "_float16"], [name], to=onnx.TensorProto.FLOAT))


def export_parity(model: torch.nn.Module, path: Path, *, batch: int = 4, hops: int = 3, seed: int = 0) -> float:
    """Largest |onnxruntime - torch| over va and state, on fresh random audio, state carried."""
    return max(parity_by_output(model, path, batch=batch, hops=hops, seed=seed, relative_state=False))


def parity_by_output(model: torch.nn.Module, path: Path, *, batch: int = 4, hops: int = 3, seed: int = 0, relative_state: bool = True) -> tuple[float, float]:
    """Largest |onnxruntime - torch| of va, and of the state (relative to its largest value unless told), state carried."""
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(seed)
    state_torch = torch.zeros(batch, model.state_size)
    state_onnx = np.zeros((batch, model.state_size), np.float32)
    worst_va = worst_state = 0.0
    for _ in range(hops):
        audio = (rng.standard_normal((batch, HOP_SAMPLES)) * rng.uniform(0.01, 0.5, (batch, 1))).astype(np.float32)
        with torch.no_grad():
            va_torch, state_torch = model(torch.from_numpy(audio), state_torch)
        va_onnx, state_onnx = session.run(["va", "state_out"], {"audio": audio, "state": state_onnx})
        worst_va = max(worst_va, float(np.abs(va_onnx - va_torch.numpy()).max()))
        scale = (float(np.abs(state_torch.numpy()).max()) or 1.0) if relative_state else 1.0
        worst_state = max(worst_state, float(np.abs(state_onnx - state_torch.numpy()).max()) / scale)
    return worst_va, worst_state


def round_to_float16(model: torch.nn.Module, *, min_values: int = 4096) -> None:
    """Round every float tensor of ``model`` with at least ``min_values`` values to float16 precision, in place.

    ``export_streaming`` then stores them at half the size.
    """
    for tensor in model.state_dict().values():
        if tensor.is_floating_point() and tensor.numel() >= min_values:
            tensor.copy_(tensor.half().float())


class ZeroPoint(torch.nn.Module):
    """A streaming model whose (valence, arousal) are moved by ``offset`` (chosen on CV) and clipped to [-1, 1]."""

    def __init__(self, model: torch.nn.Module, offset: Sequence[float]) -> None:
        super().__init__()
        self.model = model
        self.register_buffer("offset", torch.tensor(list(offset), dtype=torch.float32))

    @property
    def state_size(self) -> int:
        return int(self.model.state_size)  # type: ignore[arg-type]

    def forward(self, audio: torch.Tensor, state: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        va, state_out = self.model(audio, state)
        return torch.clamp(va - self.offset, -1.0, 1.0), state_out

"""Export a trained head as one self-contained stateful ONNX file (rtmer model contract 1)."""

from __future__ import annotations

import warnings
from pathlib import Path

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
    export_streaming(model, path, metadata=metadata, float16=["front_end.dft", "front_end.projection"])
    return model


def export_streaming(model: torch.nn.Module, path: Path, *, metadata: dict[str, str], float16: list[str]) -> None:
    """Write any module with ``state_size`` and ``forward(audio, state) -> (va, state_out)`` as a contract model.

    The initializers named in ``float16`` are stored at half precision (they must hold
    float16 values already).
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
    _store_as_float16(proto, float16)
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


def _store_as_float16(proto: onnx.ModelProto, names: list[str]) -> None:
    """Store the named float32 initializers as float16, cast back to float32 when the session loads.

    The front end keeps these constants at float16 precision, so no value changes.
    """
    for initializer in proto.graph.initializer:
        name = initializer.name
        if name not in names:
            continue
        values = onnx.numpy_helper.to_array(initializer)
        if not np.array_equal(values.astype(np.float16).astype(np.float32), values):
            raise ValueError(f"initializer {name} is not at float16 precision")
        initializer.CopyFrom(onnx.numpy_helper.from_array(values.astype(np.float16), name + "_float16"))
        proto.graph.node.insert(0, onnx.helper.make_node("Cast", [name + "_float16"], [name], to=onnx.TensorProto.FLOAT))


def export_parity(model: torch.nn.Module, path: Path, *, batch: int = 4, hops: int = 3, seed: int = 0) -> float:
    """Largest |onnxruntime - torch| over va and state, on fresh random audio, state carried."""
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(seed)
    state_torch = torch.zeros(batch, model.state_size)
    state_onnx = np.zeros((batch, model.state_size), np.float32)
    worst = 0.0
    for _ in range(hops):
        audio = (rng.standard_normal((batch, HOP_SAMPLES)) * rng.uniform(0.01, 0.5, (batch, 1))).astype(np.float32)
        with torch.no_grad():
            va_torch, state_torch = model(torch.from_numpy(audio), state_torch)
        va_onnx, state_onnx = session.run(["va", "state_out"], {"audio": audio, "state": state_onnx})
        worst = max(worst, float(np.abs(va_onnx - va_torch.numpy()).max()), float(np.abs(state_onnx - state_torch.numpy()).max()))
    return worst

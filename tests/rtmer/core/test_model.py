"""The contract checks of rtmer.core.model, on mutated copies of the tiny test model."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from conftest import build_tiny_model
from rtmer.errors import ModelContractError
from rtmer.core.model import StreamingModel


def test_tiny_model_loads_and_steps(tiny_model_path: Path) -> None:
    m = StreamingModel(tiny_model_path)
    assert (m.info.sample_rate, m.info.hop_samples, m.info.state_size) == (16000, 8000, 4)
    va, st = m.step(np.zeros((3, 8000), np.float32), m.initial_state(3))
    assert va.shape == (3, 2) and st.shape == (3, 4)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ModelContractError, match=r"nope.onnx.*file does not exist"):
        StreamingModel(tmp_path / "nope.onnx")


def test_corrupt_file(tmp_path: Path) -> None:
    p = tmp_path / "corrupt.onnx"
    p.write_bytes(b"\x08\x07this is not a model")
    with pytest.raises(ModelContractError, match=r"not a loadable ONNX model"):
        StreamingModel(p)


def test_missing_metadata(tmp_path: Path) -> None:
    p = build_tiny_model(tmp_path / "m.onnx", drop_keys=("hop_samples", "metrics"))
    with pytest.raises(ModelContractError, match=r"metadata_props lack hop_samples, metrics"):
        StreamingModel(p)


def test_wrong_output_name(tmp_path: Path) -> None:
    p = build_tiny_model(tmp_path / "m.onnx", state_output_name="new_state")
    with pytest.raises(ModelContractError, match=r"has no output named 'state_out'"):
        StreamingModel(p)


def test_inconsistent_hop(tmp_path: Path) -> None:
    p = build_tiny_model(tmp_path / "m.onnx", metadata={"hop_seconds": "0.25"})
    with pytest.raises(ModelContractError, match=r"hop_seconds=0.25 disagrees"):
        StreamingModel(p)


def test_wrong_contract_version(tmp_path: Path) -> None:
    p = build_tiny_model(tmp_path / "m.onnx", metadata={"contract_version": "9"})
    with pytest.raises(ModelContractError, match=r"contract_version='9', this runtime reads '1'"):
        StreamingModel(p)


def test_metadata_state_size_disagrees_with_graph(tmp_path: Path) -> None:
    p = build_tiny_model(tmp_path / "m.onnx", metadata={"state_size": "5"})
    with pytest.raises(ModelContractError, match=r"input 'state' has shape .* expected \[batch, 5\]"):
        StreamingModel(p)

from pathlib import Path

import numpy as np
import onnx
import pytest
import torch

from music import chords
from rtmer.core.model import REQUIRED_METADATA, StreamingModel as RuntimeModel
from test_models import realistic_head
from training.export import export_onnx, export_parity
from training.frontend import HOP_SAMPLES, SAMPLE_RATE
from training.models import HEADS

METADATA = {"model_name": "test", "model_version": "0", "training_data": "none", "metrics": "{}"}


@pytest.fixture(scope="module", params=[*HEADS, "fusion"])
def exported(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> tuple[str, object, Path]:
    path = tmp_path_factory.mktemp("export") / f"{request.param}.onnx"
    model = export_onnx(realistic_head(request.param), path, metadata=METADATA)
    return request.param, model, path


def test_export_parity_on_fresh_random_audio(exported: tuple[str, object, Path]) -> None:
    _, model, path = exported
    assert export_parity(model, path, batch=3, hops=4, seed=123) < 1e-4


def test_onnx_hop_by_hop_equals_torch_whole_clip(exported: tuple[str, object, Path]) -> None:
    _, model, path = exported
    audio = np.concatenate([chords(30, bpm=150, root_hz=330, minor=False, level=0.7, seed=5), chords(30, bpm=70, root_hz=98, minor=True, level=0.1, seed=6)])
    hops = len(audio) // HOP_SAMPLES
    with torch.no_grad():
        _, whole_va, whole_state = model.run(torch.from_numpy(audio)[None], torch.zeros(1, model.state_size))
    runtime = RuntimeModel(path)
    state = runtime.initial_state(1)
    streamed = []
    for hop in range(hops):
        va, state = runtime.step(audio[None, hop * HOP_SAMPLES : (hop + 1) * HOP_SAMPLES], state)
        streamed.append(va)
    assert np.abs(np.concatenate(streamed) - whole_va[0].numpy()).max() < 1e-4
    # running sums in the state reach ~100: compare them relatively
    np.testing.assert_allclose(state, whole_state.numpy(), rtol=1e-5, atol=1e-4)


def test_contract_metadata_and_dynamic_batch(exported: tuple[str, object, Path]) -> None:
    _, model, path = exported
    meta = {p.key: p.value for p in onnx.load(str(path)).metadata_props}
    assert set(REQUIRED_METADATA) <= set(meta)
    runtime = RuntimeModel(path)
    assert (runtime.info.sample_rate, runtime.info.hop_samples, runtime.info.hop_seconds) == (SAMPLE_RATE, HOP_SAMPLES, 0.5)
    assert runtime.info.state_size == model.state_size
    rng = np.random.default_rng(9)
    audio = (0.2 * rng.standard_normal((5, HOP_SAMPLES))).astype(np.float32)
    together, _ = runtime.step(audio, runtime.initial_state(5))
    alone = np.concatenate([runtime.step(audio[i : i + 1], runtime.initial_state(1))[0] for i in range(5)])
    assert np.abs(together - alone).max() < 1e-5
    assert path.stat().st_size < 1 << 20  # the default model itself is held to 1 MB in test_default_model.py

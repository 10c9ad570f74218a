import numpy as np
import pytest
import torch

from music import chords
from rtmer.errors import ConfigError
from training.frontend import FRAMES_PER_HOP, HOP_SAMPLES, N_FEATURES
from training.models import HEADS, Fusion, Head, StreamingModel, build_head, parameter_count

CLIP_HOPS = 120  # a one-minute clip


def realistic_head(name: str, seed: int = 0) -> Head:
    """Seeded random weights, a normaliser fitted to real feature statistics, eval mode."""
    torch.manual_seed(seed)
    head = Fusion([build_head("crnn"), build_head("hybrid")]) if name == "fusion" else build_head(name)
    model = StreamingModel(head)
    with torch.no_grad():
        features, _, _ = model.run(torch.from_numpy(music())[None], torch.zeros(1, model.state_size))
    mean, std = features[0].mean(0).numpy(), features[0].std(0).numpy()
    for module in head.modules():
        if hasattr(module, "normalizer"):
            module.normalizer.fit(mean, std)
    return head.eval()


def music() -> np.ndarray:
    a = chords(30, bpm=140, root_hz=262, minor=False, level=0.8, seed=1)
    b = chords(30, bpm=60, root_hz=110, minor=True, level=0.2, seed=2)
    return np.concatenate([a, b])[: CLIP_HOPS * HOP_SAMPLES]


@pytest.mark.parametrize("name", [*HEADS, "fusion"])
def test_hop_by_hop_equals_whole_clip_features_outputs_and_state(name: str) -> None:
    model = StreamingModel(realistic_head(name))
    audio = torch.from_numpy(music())[None]
    with torch.no_grad():
        whole_features, whole_va, whole_state = model.run(audio, torch.zeros(1, model.state_size))
        state = torch.zeros(1, model.state_size)
        features, va = [], []
        for hop in range(CLIP_HOPS):
            f, v, state = model.run(audio[:, hop * HOP_SAMPLES : (hop + 1) * HOP_SAMPLES], state)
            features.append(f)
            va.append(v)
    assert whole_features.shape == (1, CLIP_HOPS * FRAMES_PER_HOP, N_FEATURES)
    assert (torch.cat(features, dim=1) - whole_features).abs().max() < 1e-4
    assert (torch.cat(va, dim=1) - whole_va).abs().max() < 1e-4
    np.testing.assert_allclose(state.numpy(), whole_state.numpy(), rtol=1e-5, atol=1e-4)  # running sums reach ~100
    assert whole_va.abs().max() <= 1.0
    assert whole_va[0].std(0).min() > 1e-3  # the outputs move with the music: the comparison is not vacuous


@pytest.mark.parametrize("name", [*HEADS, "fusion"])
def test_a_second_pass_without_reset_differs(name: str) -> None:
    model = StreamingModel(realistic_head(name))
    audio = torch.from_numpy(music()[: 20 * HOP_SAMPLES])[None]
    with torch.no_grad():
        _, first, state = model.run(audio, torch.zeros(1, model.state_size))
        _, second, _ = model.run(audio, state)
        _, again, _ = model.run(audio, torch.zeros(1, model.state_size))
    assert (first - second).abs().max() > 1e-3
    assert (first - again).abs().max() == 0.0


def test_heads_are_small() -> None:
    counts = {name: parameter_count(build_head(name)) for name in HEADS}
    assert 10_000 <= counts["crnn"] <= 30_000  # Malik et al.'s range
    assert all(count < 50_000 for count in counts.values())


def test_unknown_model_name_is_named_in_the_error() -> None:
    with pytest.raises(ConfigError, match=r"model='resnet' is unknown; expected one of \['cnn', 'crnn', 'crnn_nb', 'hybrid', 'hybrid_fast', 'hybrid_wide'\]"):
        build_head("resnet")

import librosa
import numpy as np
import pytest
import torch

from training.frontend import HOP_SAMPLES, N_FFT, SAMPLE_RATE, STFT_HOP
from training.musicnn import AUDIO_TAIL, LOOKAHEAD, MSD_TAGS, N_MELS, MusicnnBackbone, MusicnnMel, load_weights, zero_states
from training.teacher import DEFAULT_WEIGHTS, clip_embeddings

HOP = 8000


@pytest.fixture(scope="module")
def backbone() -> MusicnnBackbone:
    return MusicnnBackbone(load_weights(DEFAULT_WEIGHTS)).eval()


def music(seconds: float, seed: int = 0) -> np.ndarray:
    """A few seconds of a plucked chord progression over a kick drum, 16 kHz."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * 16000)) / 16000
    out = np.zeros_like(t)
    for beat in range(int(seconds * 2)):
        start = beat * 8000
        n = len(t) - start
        decay = np.exp(-np.arange(n) / 3000)
        root = 220 * 2 ** (rng.choice([0, 3, 5, 7]) / 12)
        for ratio in (1, 1.25, 1.5):
            out[start:] += 0.1 * decay * np.sin(2 * np.pi * root * ratio * t[:n])
        out[start : start + 1600] += 0.3 * np.sin(2 * np.pi * 60 * t[:1600]) * np.exp(-np.arange(1600) / 400)
    return (out + 0.003 * rng.standard_normal(len(t))).astype(np.float32)


def test_the_torch_port_matches_musicnns_tensorflow_graph(backbone: MusicnnBackbone) -> None:
    with np.load(DEFAULT_WEIGHTS) as archive:
        patches = torch.from_numpy(archive["reference/input"])
        with torch.no_grad():
            ours = backbone.net.patch(patches)
        for name in ("taggram", "penultimate", "max_pool", "mean_pool"):
            reference = archive[f"reference/{name}"]
            scale = max(1.0, float(np.abs(reference).max()))
            # The weights are stored at float16: that alone moves the outputs by 2.6e-3 of their
            # largest value; a port error, even batch norm's epsilon at 1e-5, moves them by 0.09 or more.
            assert np.abs(ours[name].numpy() - reference).max() / scale < 1e-2, name


def test_streaming_hop_by_hop_equals_the_whole_clip(backbone: MusicnnBackbone) -> None:
    audio = music(6.0)
    whole = clip_embeddings(backbone, audio)
    states = zero_states(backbone.state_shapes(), 1)
    hops = []
    with torch.no_grad():
        for h in range(len(audio) // HOP):
            embedding, states = backbone(torch.from_numpy(audio[h * HOP : (h + 1) * HOP])[None], states)
            hops.append(embedding[0, 0].numpy())
        again, _ = backbone(torch.from_numpy(audio[:HOP])[None], states)
    assert whole.shape == (12, 250)
    np.testing.assert_allclose(np.stack(hops), whole, atol=1e-4)
    assert np.abs(again[0, 0].numpy() - whole[0]).max() > 1e-3  # the state matters


def test_streaming_tags_follow_the_original_network_on_the_same_3_s(backbone: MusicnnBackbone) -> None:
    """The streaming form's only departure is the shorter look-ahead of the long temporal filters."""
    audio = music(8.0, seed=1)
    embeddings = clip_embeddings(backbone, audio)
    with torch.no_grad():
        mel, _ = backbone.mel(torch.from_numpy(audio)[None], torch.zeros(1, 262))
        for hop in (8, 12, 15):
            end = (hop + 1) * 32 - LOOKAHEAD
            original = backbone.net.patch(mel[:, end - 192 : end])["taggram"][0].numpy()
            assert np.corrcoef(original, embeddings[hop, 200:])[0, 1] > 0.9


def test_a_stream_pools_only_its_own_frames(backbone: MusicnnBackbone) -> None:
    """The first hop has no complete frame yet; silence then differs from music."""
    silence = clip_embeddings(backbone, np.zeros(4 * HOP, np.float32))
    tune = clip_embeddings(backbone, music(2.0))
    np.testing.assert_allclose(silence[0], tune[0], atol=1e-6)  # nothing pooled yet: the same for any input
    assert np.abs(silence[3] - tune[3]).max() > 0.1
    assert len(MSD_TAGS) == 50 and np.all((tune[:, 200:] >= 0) & (tune[:, 200:] <= 1))


def test_the_mel_front_end_matches_librosa_as_musicnn_computes_it() -> None:
    """musicnn's input: librosa's 96-band power mel spectrogram (Hann, 512-point FFT), log10(10000 x + 1)."""
    rng = np.random.default_rng(1)
    t = np.arange(2 * HOP_SAMPLES) / SAMPLE_RATE
    audio = (0.4 * np.sin(2 * np.pi * 330 * t) + 0.05 * rng.standard_normal(t.size)).astype(np.float32)
    log_mel, _ = MusicnnMel()(torch.from_numpy(audio)[None], torch.zeros(1, AUDIO_TAIL))
    signal = np.concatenate([np.zeros(AUDIO_TAIL, np.float32), audio])
    mel = librosa.feature.melspectrogram(y=signal, sr=SAMPLE_RATE, n_fft=N_FFT, hop_length=STFT_HOP, center=False, n_mels=N_MELS)
    assert log_mel.shape == (1, mel.shape[1], N_MELS) == (1, 64, 96)
    # the DFT tables are stored at float16 precision (tests/training/test_frontend.py)
    np.testing.assert_allclose(log_mel[0].numpy(), np.log10(10000 * mel.T + 1), atol=1e-2)

import librosa
import numpy as np
import pytest
import torch

from training.frontend import (
    CHROMA,
    FRAMES_PER_HOP,
    N_CHROMA,
    SERIES,
    HOP_SAMPLES,
    N_FEATURES,
    N_MELS,
    SAMPLE_RATE,
    STFT_HOP,
    TAIL_SAMPLES,
    N_FFT,
    FrontEnd,
    clip_features,
)


def tone(freq: float, seconds: float, amplitude: float = 0.5) -> np.ndarray:
    t = np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    return (amplitude * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def test_stft_hop_divides_the_model_hop() -> None:
    assert HOP_SAMPLES % STFT_HOP == 0 and HOP_SAMPLES // STFT_HOP == 32 and FRAMES_PER_HOP == 8


def test_log_mel_matches_librosa_on_a_frame() -> None:
    noise = 0.05 * np.random.default_rng(0).standard_normal(2 * SAMPLE_RATE).astype(np.float32)
    audio = tone(440.0, 2.0) + tone(3000.0, 2.0, 0.1) + noise
    features = clip_features(FrontEnd(), audio)
    frame_index = 10  # feature frame i pools STFT frames 4i..4i+3; STFT frame j ends at sample (j + 1) * 250
    padded = np.concatenate([np.zeros(N_FFT - STFT_HOP, np.float32), audio])
    stft_frames = [padded[j * STFT_HOP : j * STFT_HOP + 512] for j in range(4 * frame_index, 4 * frame_index + 4)]
    power = np.mean([np.abs(np.fft.rfft(f * np.hanning(513)[:-1])) ** 2 for f in stft_frames], axis=0)
    mel = librosa.filters.mel(sr=SAMPLE_RATE, n_fft=512, n_mels=N_MELS, fmin=30, fmax=8000) @ power
    # The DFT is stored at float16 precision (a leakage floor about 66 dB under the loudest
    # component); with broadband noise every band is far above that floor.
    np.testing.assert_allclose(features[frame_index, :N_MELS], np.log(mel + 1e-6), atol=1e-2)


def test_time_series_features_of_a_sine() -> None:
    features = clip_features(FrontEnd(), tone(1000.0, 1.0, 0.5))[10]
    log_rms, zcr, centroid, spread, log_envelope = features[SERIES]
    assert abs(np.exp(log_rms) - 0.5 / np.sqrt(2)) < 1e-3
    assert abs(zcr - 2 * 1000 / SAMPLE_RATE) < 0.01  # two crossings a period
    assert abs(centroid - 1000 / 8000) < 0.005  # fraction of Nyquist
    assert spread < 0.02
    assert abs(np.exp(log_envelope) - 0.5) < 1e-3


def test_features_hop_by_hop_equal_whole_clip_and_need_the_carried_tail() -> None:
    rng = np.random.default_rng(3)
    audio = (rng.standard_normal(HOP_SAMPLES * 20) * 0.2).astype(np.float32)
    front_end = FrontEnd()
    whole, _ = front_end(torch.from_numpy(audio)[None], torch.zeros(1, TAIL_SAMPLES))
    tail = torch.zeros(1, TAIL_SAMPLES)
    hops, hops_without_tail = [], []
    for i in range(20):
        chunk = torch.from_numpy(audio[i * HOP_SAMPLES : (i + 1) * HOP_SAMPLES])[None]
        features, tail = front_end(chunk, tail)
        hops.append(features)
        hops_without_tail.append(front_end(chunk, torch.zeros(1, TAIL_SAMPLES))[0])
    streamed = torch.cat(hops, dim=1)
    assert streamed.shape == (1, 20 * FRAMES_PER_HOP, N_FEATURES)
    assert (streamed - whole).abs().max() < 1e-4
    # Dropping the overlap changes the two feature frames of each hop whose windows reach into
    # the previous hop (STFT frames by 262 samples and the pitch window by 1048 in frame 0,
    # the pitch window by 48 in frame 1), and no other: the comparison above would see that bug.
    changed = (torch.cat(hops_without_tail, dim=1) - whole).abs().amax(dim=2)[0].reshape(20, FRAMES_PER_HOP)
    assert (changed[1:, 0] > 0.1).all() and (changed[1:, 1] > 1e-4).all()
    assert (changed[1:, 2:] < 1e-4).all()


@pytest.mark.parametrize(("freq", "pitch_class"), [(440.0, 9), (261.63, 0), (329.63, 4), (1567.98, 7)])
def test_chroma_finds_the_pitch_class_of_a_tone(freq: float, pitch_class: int) -> None:
    chroma = clip_features(FrontEnd(), tone(freq, 1.0))[10, CHROMA]
    assert chroma.argmax() == pitch_class and chroma[pitch_class] > 0.9 * N_CHROMA
    assert abs(chroma.sum() - N_CHROMA) < 1e-3


def test_chroma_of_a_chord_splits_between_its_notes() -> None:
    chord = tone(261.63, 1.0, 0.3) + tone(329.63, 1.0, 0.3) + tone(392.0, 1.0, 0.3)  # C major
    chroma = clip_features(FrontEnd(), chord)[10, CHROMA]
    assert set(np.argsort(chroma)[-3:]) == {0, 4, 7}
    assert chroma[[0, 4, 7]].sum() > 0.95 * N_CHROMA


def test_silence_gives_finite_constant_features() -> None:
    features = clip_features(FrontEnd(), np.zeros(HOP_SAMPLES * 2, np.float32))
    assert np.isfinite(features).all()
    assert np.ptp(features, axis=0).max() == 0.0

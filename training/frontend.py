"""The in-graph front end: raw PCM -> per-frame features, streaming by construction.

A Hann-windowed 512-point DFT runs every 250 samples at 16 kHz (32 STFT frames per 500 ms
hop); each group of 4 STFT frames is pooled into one feature frame (62.5 ms, 8 per hop:
mel power averaged before the log, as in Welch's method) of 81 features:

- 64 log-mel energies (Hann window, DFT as one matrix product, librosa's Slaney mel bank),
- log RMS energy, zero-crossing rate, spectral centroid and spectral spread (both as a
  fraction of Nyquist), log amplitude envelope (peak |x| over the 4 STFT frames),
- a 12-bin chroma (pitch-class energy, summing to 12) from a 2048-sample (128 ms) Hann
  window ending with the feature frame, at the 60 semitones C3..B7: the 512-point DFT
  cannot tell semitones apart below about 600 Hz, and mode is the strongest valence cue.

Notes
-----
STFT frame i of a stream covers samples [i*250 - 262, i*250 + 250), and pitch frame j
covers [j*1000 - 1048, j*1000 + 1000): every frame ends where its hop ends, so nothing looks
past the current 500 ms hop. The 1048 samples that the first frames of a hop need from the
previous hop are the front end's state ("tail"), all zeros at the start of a stream.
"""

from __future__ import annotations

import librosa
import numpy as np
import torch
from torch import Tensor, nn

SAMPLE_RATE = 16000
HOP_SAMPLES = 8000
N_FFT = 512
STFT_HOP = 250
STFT_FRAMES_PER_HOP = HOP_SAMPLES // STFT_HOP
POOLED_STFT_FRAMES = 4
FRAMES_PER_HOP = STFT_FRAMES_PER_HOP // POOLED_STFT_FRAMES  # feature frames per hop
N_MELS = 64
FMIN, FMAX = 30.0, 8000.0
TIMESERIES_NAMES = ("log_rms", "zcr", "centroid", "spread", "log_envelope")
N_CHROMA = 12
PITCH_WINDOW = 2048
PITCH_BLOCK = 64  # the pitch DFT runs as [32 blocks x 64 samples] products
PITCH_MIDI_LOW, PITCH_OCTAVES = 48, 5  # C3 .. B7
FEATURE_HOP = STFT_HOP * POOLED_STFT_FRAMES
TAIL_SAMPLES = PITCH_WINDOW - FEATURE_HOP
MEL = slice(0, N_MELS)
SERIES = slice(N_MELS, N_MELS + len(TIMESERIES_NAMES))
CHROMA = slice(SERIES.stop, SERIES.stop + N_CHROMA)
N_FEATURES = CHROMA.stop
LOG_FLOOR = 1e-6


def _dft_and_projection() -> tuple[np.ndarray, np.ndarray]:
    """A [512, 512] windowed real-DFT matrix and a [512, 64 + 3] projection of its squares.

    The DFT's 512 output columns are the cosine parts of bins 0..256 and the sine parts of
    bins 1..255 (the sine parts of bins 0 and 256 are always zero). Squared, each column is
    one half of a bin's power, so one more matrix product gives the mel energies and the
    power-weighted sums that the centroid and spread need.
    """
    n = np.arange(N_FFT)[:, None]
    window = np.hanning(N_FFT + 1)[:-1][:, None]  # periodic Hann
    cos_bins = np.arange(N_FFT // 2 + 1)[None, :]
    sin_bins = np.arange(1, N_FFT // 2)[None, :]
    dft = np.concatenate(
        [window * np.cos(2 * np.pi * n * cos_bins / N_FFT), -window * np.sin(2 * np.pi * n * sin_bins / N_FFT)],
        axis=1,
    )
    mel = librosa.filters.mel(sr=SAMPLE_RATE, n_fft=N_FFT, n_mels=N_MELS, fmin=FMIN, fmax=FMAX).T  # [257, 64]
    bin_freq = np.linspace(0.0, 1.0, N_FFT // 2 + 1)[:, None]  # fraction of Nyquist
    per_bin = np.concatenate([mel, np.ones_like(bin_freq), bin_freq, bin_freq**2], axis=1)  # [257, 67]
    projection = np.concatenate([per_bin, per_bin[1 : N_FFT // 2]], axis=0)  # [512, 67]
    # Stored at float16 precision (the exporter writes them as float16): the file stays small,
    # and torch computes with exactly the values onnxruntime will see.
    return dft.astype(np.float16).astype(np.float32), projection.astype(np.float16).astype(np.float32)


def frame(signal: Tensor, n_frames: int, length: int, hop: int) -> Tensor:
    """[batch, (n_frames - 1) * hop + length] -> overlapping frames [batch, n_frames, length].

    Built from reshapes and slices of hop-long chunks (frame i = chunks i .. i+k-1 and the
    start of chunk i+k) rather than a gather, so the graph holds no index table.
    """
    whole, rest = divmod(length, hop)
    padded = torch.nn.functional.pad(signal, (0, (n_frames + whole) * hop - signal.shape[1]))
    chunks = padded.reshape(signal.shape[0], n_frames + whole, hop)
    parts = [chunks[:, j : j + n_frames] for j in range(whole)]
    if rest:
        parts.append(chunks[:, whole : whole + n_frames, :rest])
    return torch.cat(parts, dim=-1)


def _pitch_tables() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Hann window [2048], in-block table [64, 2P] and block twiddles [32, 2P] of the pitch DFT.

    With n = 64 q + r, cos(w n) = cos(64 w q) cos(w r) - sin(64 w q) sin(w r) (and likewise
    for sin), so a 2048-point DFT at P frequencies is a [64, 2P] product per block, then a
    weighted sum over the 32 blocks: about 300k multiply-adds a frame, from 10k stored values.
    """
    midi = PITCH_MIDI_LOW + np.arange(12 * PITCH_OCTAVES)
    omega = 2 * np.pi * 440.0 * 2 ** ((midi - 69) / 12) / SAMPLE_RATE
    r = np.arange(PITCH_BLOCK)[:, None]
    q = np.arange(PITCH_WINDOW // PITCH_BLOCK)[:, None]
    in_block = np.concatenate([np.cos(omega * r), np.sin(omega * r)], axis=1)
    twiddle = np.concatenate([np.cos(omega * PITCH_BLOCK * q), np.sin(omega * PITCH_BLOCK * q)], axis=1)
    window = np.hanning(PITCH_WINDOW + 1)[:-1]
    return window.astype(np.float32), in_block.astype(np.float32), twiddle.astype(np.float32)


class FrontEnd(nn.Module):
    """PCM [batch, n_hops * 8000] + tail [batch, 1048] -> features [batch, n_hops * 8, 81], new tail."""

    def __init__(self) -> None:
        super().__init__()
        dft, projection = _dft_and_projection()
        self.register_buffer("dft", torch.from_numpy(dft))
        self.register_buffer("projection", torch.from_numpy(projection))
        window, in_block, twiddle = _pitch_tables()
        self.register_buffer("pitch_window", torch.from_numpy(window))
        self.register_buffer("pitch_in_block", torch.from_numpy(in_block))
        self.register_buffer("pitch_twiddle", torch.from_numpy(twiddle))

    def forward(self, audio: Tensor, tail: Tensor) -> tuple[Tensor, Tensor]:
        signal = torch.cat([tail, audio], dim=1)
        stft_frames = frame(signal[:, TAIL_SAMPLES - (N_FFT - STFT_HOP) :], audio.shape[1] // STFT_HOP, N_FFT, STFT_HOP)
        pitch_frames = frame(signal, audio.shape[1] // FEATURE_HOP, PITCH_WINDOW, FEATURE_HOP)
        features = torch.cat([self.frame_features(stft_frames), self.chroma(pitch_frames)], dim=-1)
        return features, signal[:, -TAIL_SAMPLES:]

    def chroma(self, frames: Tensor) -> Tensor:
        """Pitch frames [batch, n, 2048] -> chroma [batch, n, 12], summing to 12 (0 in silence)."""
        batch, n, _ = frames.shape
        blocks = (frames * self.pitch_window).reshape(batch, n, PITCH_WINDOW // PITCH_BLOCK, PITCH_BLOCK)
        cos_r, sin_r = (blocks @ self.pitch_in_block).chunk(2, dim=-1)  # [batch, n, 32, P] each
        cos_q, sin_q = self.pitch_twiddle.chunk(2, dim=-1)  # [32, P] each
        real = (cos_q * cos_r - sin_q * sin_r).sum(dim=2)
        imaginary = (sin_q * cos_r + cos_q * sin_r).sum(dim=2)
        pitch_power = (real.square() + imaginary.square()).reshape(batch, n, PITCH_OCTAVES, N_CHROMA).sum(dim=2)
        return N_CHROMA * pitch_power / (pitch_power.sum(dim=-1, keepdim=True) + LOG_FLOOR)

    def frame_features(self, frames: Tensor) -> Tensor:
        """STFT frames [batch, n, 512] -> feature frames [batch, n / 4, 69]."""
        projected = (frames @ self.dft).square() @ self.projection  # [batch, n, 64 mel + 3]
        energy = frames.square().mean(dim=-1, keepdim=True)
        signs = frames >= 0
        zcr = (signs[..., 1:] != signs[..., :-1]).float().mean(dim=-1, keepdim=True)
        batch, n, _ = frames.shape
        pooled = torch.cat([projected, energy, zcr], dim=-1).reshape(batch, n // POOLED_STFT_FRAMES, POOLED_STFT_FRAMES, -1).mean(dim=2)
        envelope = frames.abs().amax(dim=-1).reshape(batch, n // POOLED_STFT_FRAMES, POOLED_STFT_FRAMES).amax(dim=2, keepdim=True)
        mel, power, weighted_freq, weighted_freq_sq, energy, zcr = pooled.split([N_MELS, 1, 1, 1, 1, 1], dim=-1)
        safe_power = power + LOG_FLOOR
        centroid = weighted_freq / safe_power
        spread = (weighted_freq_sq / safe_power - centroid.square()).clamp(min=0.0).sqrt()
        log_rms = torch.log(energy.sqrt() + 1e-5)
        return torch.cat([torch.log(mel + LOG_FLOOR), log_rms, zcr, centroid, spread, torch.log(envelope + 1e-5)], dim=-1)


@torch.no_grad()
def clip_features(front_end: FrontEnd, audio: np.ndarray, *, chunk_hops: int = 240) -> np.ndarray:
    """Features of a whole clip from the start of a stream, [n_hops * 8, 81] float32.

    Runs in chunks so that long clips do not hold every frame of the DFT in memory; the tail
    is carried between chunks exactly as between streaming hops.
    """
    n_hops = len(audio) // HOP_SAMPLES
    samples = torch.from_numpy(np.ascontiguousarray(audio[: n_hops * HOP_SAMPLES], dtype=np.float32))[None]
    tail = torch.zeros(1, TAIL_SAMPLES)
    parts = []
    for start in range(0, n_hops * HOP_SAMPLES, chunk_hops * HOP_SAMPLES):
        features, tail = front_end(samples[:, start : start + chunk_hops * HOP_SAMPLES], tail)
        parts.append(features[0])
    return torch.cat(parts).numpy() if parts else np.zeros((0, N_FEATURES), np.float32)

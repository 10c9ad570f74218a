"""The in-graph front end: raw PCM -> per-frame features, streaming by construction.

A Hann-windowed 512-point DFT runs every 250 samples at 16 kHz (32 STFT frames per 500 ms
hop); each group of 4 STFT frames is pooled into one feature frame (62.5 ms, 8 per hop:
mel power averaged before the log, as in Welch's method) of 81 features:

- 64 log-mel energies (Hann window, DFT as two stages of matrix products, librosa's Slaney mel bank),
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
PITCH_BLOCK = 256  # the pitch DFT runs as [8 blocks x 256 samples] products
PITCH_MIDI_LOW, PITCH_OCTAVES = 48, 5  # C3 .. B7
FEATURE_HOP = STFT_HOP * POOLED_STFT_FRAMES
TAIL_SAMPLES = PITCH_WINDOW - FEATURE_HOP
MEL = slice(0, N_MELS)
SERIES = slice(N_MELS, N_MELS + len(TIMESERIES_NAMES))
CHROMA = slice(SERIES.stop, SERIES.stop + N_CHROMA)
N_FEATURES = CHROMA.stop
LOG_FLOOR = 1e-6


# The 512-point DFT runs as two stages of small DFTs (decimation in frequency): with
# n = n1 + 16 n2 and k = 32 k1 + k2, X[k] = sum_n1 W512^(n1 k2) W16^(n1 k1) sum_n2 x[n] W32^(n2 k2).
# That is a fifth of the multiply-adds of one dense [512, 512] matrix and a thirteenth of its
# stored values, with no transpose of the innermost axis between the stages.
FFT_INNER = 16  # n1: the stride of the first stage's 32-point DFTs
FFT_OUTER = N_FFT // FFT_INNER  # n2 and k2
FFT_K1 = (N_FFT // 2) // FFT_OUTER + 1  # k1 values that reach a bin <= N/2


def _fft_tables(per_bin: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Hann window [512], first stage [2*32, 32], second stage [32, 2*9, 2*16] and projection [k, 32*2*9].

    ``per_bin`` [257, k] weighs the power of each bin 0..256. All three multiply from the
    left, on frames as columns. The first stage's rows are (k2, real/imaginary); the second
    stage, one matrix for each k2, folds in the twiddles W512^(n1 k2) and maps (real n1..,
    imaginary n1..) to (real k1.., imaginary k1..). Squared, those are the two halves of
    bin 32 k1 + k2's power, so the projection (zero for bins above N/2) applies ``per_bin``
    in one product over all (k2, k1).
    """
    n2 = np.arange(FFT_OUTER)
    first = 2 * np.pi * n2[:, None] * n2[None, :] / FFT_OUTER  # [k2, n2]
    stage1 = np.stack([np.cos(first), -np.sin(first)], axis=1).reshape(2 * FFT_OUTER, FFT_OUTER)
    n1, k1 = np.arange(FFT_INNER), np.arange(FFT_K1)
    bins = FFT_OUTER * k1[None, :] + n2[:, None]  # [k2, k1]
    phase = 2 * np.pi * n1[None, :, None] * bins[:, None, :] / N_FFT  # [k2, n1, k1]
    cos, sin = np.cos(phase), np.sin(phase)
    stage2 = np.concatenate([np.concatenate([cos, -sin], axis=2), np.concatenate([sin, cos], axis=2)], axis=1).transpose(0, 2, 1)
    in_range = (bins <= N_FFT // 2)[:, :, None]
    weights = np.where(in_range, per_bin[np.minimum(bins, N_FFT // 2)], 0.0)  # [k2, k1, k]
    projection = np.concatenate([weights, weights], axis=1).reshape(-1, per_bin.shape[1]).T  # columns (k2, real/imaginary, k1)
    window = np.hanning(N_FFT + 1)[:-1]  # periodic Hann
    # The two large tables are stored at float16 precision (the exporter writes them as
    # float16): the file stays small, and torch computes with exactly the values
    # onnxruntime will see.
    def half(values: np.ndarray) -> np.ndarray:
        return values.astype(np.float16).astype(np.float32)

    return window.astype(np.float32), stage1.astype(np.float32), half(stage2), half(projection)


class PowerProjection(nn.Module):
    """STFT frames [batch, n, 512] -> their Hann-windowed power spectra times ``per_bin`` [257, k], [batch, n, k].

    Each stream's frames are turned into columns once, so that both stages and the
    projection are products over whole rows, per stream: one matrix product, 32 small
    ones (one per k2), one more. Because the products stay per stream, their shapes do not
    depend on how many streams share a call, and in onnxruntime neither does their rounding
    (tests/rtmer/test_default_model.py checks it bit for bit).
    """

    def __init__(self, per_bin: np.ndarray) -> None:
        super().__init__()
        for name, table in zip(("window", "stage1", "stage2", "projection"), _fft_tables(per_bin)):
            self.register_buffer(name, torch.from_numpy(table))

    def forward(self, frames: Tensor) -> Tensor:
        batch, n, _ = frames.shape
        columns = (frames * self.window).transpose(1, 2)  # [batch, (n2, n1), frames]
        first = self.stage1 @ columns.reshape(batch, FFT_OUTER, FFT_INNER * n)  # [batch, (k2, re/im), (n1, frames)]
        spectrum = self.stage2 @ first.reshape(batch, FFT_OUTER, 2 * FFT_INNER, n)  # [batch, k2, (re/im, k1), frames]
        projected = self.projection @ spectrum.square().reshape(batch, -1, n)  # [batch, k, frames]
        return projected.transpose(1, 2)


def _per_bin_weights() -> np.ndarray:
    """[257, 64 + 3]: the mel bank, and the weights of the power-weighted sums that the centroid and spread need."""
    mel = librosa.filters.mel(sr=SAMPLE_RATE, n_fft=N_FFT, n_mels=N_MELS, fmin=FMIN, fmax=FMAX).T  # [257, 64]
    bin_freq = np.linspace(0.0, 1.0, N_FFT // 2 + 1)[:, None]  # fraction of Nyquist
    return np.concatenate([mel, np.ones_like(bin_freq), bin_freq, bin_freq**2], axis=1)


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
    """Hann window [2048], in-block table [B, 2P] and block twiddles [2, Q, 2P] of the pitch DFT.

    With n = B q + r, cos(w n) = cos(B w q) cos(w r) - sin(B w q) sin(w r) and
    sin(w n) = sin(B w q) cos(w r) + cos(B w q) sin(w r), so a 2048-point DFT at P
    frequencies is a [B, 2P] product per block, then a weighted sum over the Q = 2048 / B
    blocks (once with the cosine twiddles, once with the sine ones), then the signed
    sums of those four parts that are the real and imaginary parts.
    """
    midi = PITCH_MIDI_LOW + np.arange(12 * PITCH_OCTAVES)
    omega = 2 * np.pi * 440.0 * 2 ** ((midi - 69) / 12) / SAMPLE_RATE
    r = np.arange(PITCH_BLOCK)[:, None]
    q = np.arange(PITCH_WINDOW // PITCH_BLOCK)[:, None]
    in_block = np.concatenate([np.cos(omega * r), np.sin(omega * r)], axis=1)
    cos_q, sin_q = np.cos(omega * PITCH_BLOCK * q), np.sin(omega * PITCH_BLOCK * q)
    twiddle = np.stack([np.concatenate([cos_q, cos_q], axis=1), np.concatenate([sin_q, sin_q], axis=1)])
    window = np.hanning(PITCH_WINDOW + 1)[:-1]
    return window.astype(np.float32), in_block.astype(np.float32), twiddle.astype(np.float32)


class FrontEnd(nn.Module):
    """PCM [batch, n_hops * 8000] + tail [batch, 1048] -> features [batch, n_hops * 8, 81], new tail."""

    def __init__(self) -> None:
        super().__init__()
        self.power_projection = PowerProjection(_per_bin_weights())
        for name, table in zip(("pitch_window", "pitch_in_block", "pitch_twiddle"), _pitch_tables()):
            self.register_buffer(name, torch.from_numpy(table))

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
        in_block = (blocks @ self.pitch_in_block).unsqueeze(2)  # [batch, n, 1, Q, 2P]
        sums = (in_block * self.pitch_twiddle).sum(dim=3).reshape(batch, n, 2, 2, -1)  # [cos_q, sin_q] x [cos_r, sin_r]
        real = sums[:, :, 0, 0] - sums[:, :, 1, 1]
        imaginary = sums[:, :, 1, 0] + sums[:, :, 0, 1]
        pitch_power = (real.square() + imaginary.square()).reshape(batch, n, PITCH_OCTAVES, N_CHROMA).sum(dim=2)
        return N_CHROMA * pitch_power / (pitch_power.sum(dim=-1, keepdim=True) + LOG_FLOOR)

    def frame_features(self, frames: Tensor) -> Tensor:
        """STFT frames [batch, n, 512] -> feature frames [batch, n / 4, 69]."""
        projected = self.power_projection(frames)  # [batch, n, 64 mel + 3]
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

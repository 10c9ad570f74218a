"""MusiCNN (Pons & Serra; musicnn's MSD_musicnn weights, ISC licence) in torch, causal and streaming.

The network is musicnn's, layer for layer (``musicnn/models.py``: ``build_musicnn``):

- front end over a 96-band log-mel patch: two timbral convolutions (7 frames x 38 and x 67
  bands, 204 filters each) and three temporal ones (128, 64 and 32 frames x 1 band, 51
  filters each), each ReLU, batch norm, max over frequency: 561 features a frame;
- mid end: three 7-frame convolutions of 64 filters (the last two residual), densely
  connected with the front end: 753 features a frame;
- back end: max and mean over the patch's frames (1506), batch norm, dense 200 (ReLU, batch
  norm: the "penultimate" embedding), dense 50 (the MSD top-50 tags, mood tags among them).

``patch`` is the original, non-causal form (zero padding around a 3 s patch), kept to check
the port against TensorFlow. ``MusicnnBackbone`` is the streaming form rtmer runs: every
convolution sees only past frames (its left context is carried in the state instead of the
original's centred zero padding), and at the end of each 500 ms hop the back end pools the
last ``POOL_FRAMES`` (3 s) frames. Nothing looks past the current hop.

Notes
-----
The mel spectrogram is musicnn's (librosa's Slaney bank, 96 bands 0-8 kHz, power,
``log10(10000 x + 1)``) on 512-sample Hann frames every 250 samples (musicnn uses 256) so
that a 500 ms hop holds exactly 32 frames; a frame ends where its hop ends, as in
``training/frontend.py``.
"""

from __future__ import annotations

import math
from pathlib import Path

import librosa
import numpy as np
import torch
from torch import Tensor, nn

from training.frontend import N_FFT, SAMPLE_RATE, STFT_FRAMES_PER_HOP, STFT_HOP, PowerProjection, frame

N_MELS = 96
MSD_TAGS = (
    "rock", "pop", "alternative", "indie", "electronic", "female vocalists", "dance", "00s", "alternative rock", "jazz",
    "beautiful", "metal", "chillout", "male vocalists", "classic rock", "soul", "indie rock", "Mellow", "electronica", "80s",
    "folk", "90s", "chill", "instrumental", "punk", "oldies", "blues", "hard rock", "ambient", "acoustic",
    "experimental", "female vocalist", "guitar", "Hip-Hop", "70s", "party", "country", "easy listening", "sexy", "catchy",
    "funk", "electro", "heavy metal", "Progressive rock", "60s", "rnb", "indie pop", "sad", "House", "happy",
)  # fmt: skip
TIMBRAL = ((7, 38), (7, 67))  # (frames, bands)
TEMPORAL = (128, 64, 32)  # frames
FRONT_FILTERS, TEMPORAL_FILTERS, MID_FILTERS, PENULTIMATE = 204, 51, 64, 200
FRONT_WIDTH = 2 * FRONT_FILTERS + 3 * TEMPORAL_FILTERS  # 561
FEATURE_WIDTH = FRONT_WIDTH + 3 * MID_FILTERS  # 753
MID_KERNEL = 7
FRONT_LOOKAHEAD = (3, 3, 32, 32, 16)  # frames each front-end convolution looks ahead (musicnn's: 3, 3, 64, 32, 16)
MID_LOOKAHEAD = 3 * (MID_KERNEL // 2)  # the three mid-end convolutions, exact
LOOKAHEAD = max(FRONT_LOOKAHEAD) + MID_LOOKAHEAD  # 41 frames, 0.64 s
MID_CONTEXT = 2 * MID_LOOKAHEAD  # front-end frames the mid end needs beside the new ones
FRAME_COUNT_LIMIT = 2.0**20  # frames so far saturate here (exact in float32)
POOL_FRAMES = 6 * STFT_FRAMES_PER_HOP  # 3 s, musicnn's patch
MEL_CONTEXT = max(TEMPORAL) - 1
AUDIO_TAIL = N_FFT - STFT_HOP
EMBEDDING_WIDTH = PENULTIMATE + len(MSD_TAGS)
BN_EPSILON = 1e-3  # tf.compat.v1.layers.batch_normalization's default
INVALID = -1e4  # added to padding frames before the max pool


def load_weights(path: Path) -> dict[str, np.ndarray]:
    """The TensorFlow variables written by ``training/convert_musicnn.py`` (stored at float16), as float32."""
    with np.load(path) as archive:
        return {key.removeprefix("weights/"): archive[key].astype(np.float32) for key in archive.files if key.startswith("weights/")}


class Affine(nn.Module):
    """Inference-mode batch norm, folded: x * scale + shift over the last axis or a given one."""

    def __init__(self, width: int) -> None:
        super().__init__()
        self.register_buffer("scale", torch.ones(width))
        self.register_buffer("shift", torch.zeros(width))

    def load(self, weights: dict[str, np.ndarray], name: str) -> None:
        scale = weights[f"{name}/gamma"] / np.sqrt(weights[f"{name}/moving_variance"] + BN_EPSILON)
        self.scale.copy_(torch.from_numpy(scale))
        self.shift.copy_(torch.from_numpy(weights[f"{name}/beta"] - weights[f"{name}/moving_mean"] * scale))

    def forward(self, x: Tensor) -> Tensor:
        return x * self.scale + self.shift


class MusicnnMel(nn.Module):
    """PCM [batch, n_hops * 8000] + tail [batch, 262] -> log-mel [batch, n_hops * 32, 96], new tail."""

    def __init__(self) -> None:
        super().__init__()
        self.power = PowerProjection(librosa.filters.mel(sr=SAMPLE_RATE, n_fft=N_FFT, n_mels=N_MELS).T)  # [257, 96]

    def forward(self, audio: Tensor, tail: Tensor) -> tuple[Tensor, Tensor]:
        signal = torch.cat([tail, audio], dim=1)
        frames = frame(signal, audio.shape[1] // STFT_HOP, N_FFT, STFT_HOP)
        power = self.power(frames)
        return torch.log10(10000.0 * power + 1.0), signal[:, -AUDIO_TAIL:]


def interleave(maximum: Tensor, mean: Tensor) -> Tensor:
    """[..., 753] twice -> [..., 1506] as max0, mean0, max1, ...: musicnn flattens a [753, 2] pool."""
    return torch.stack([maximum, mean], dim=-1).flatten(-2)


def _relu_norm_max(conv: nn.Conv2d, norm: Affine, x: Tensor) -> Tensor:
    """Conv over [batch, 1, frames, bands], ReLU, batch norm, max over bands -> [batch, frames, filters]."""
    y = torch.relu(conv(x))  # [batch, filters, frames, bands']
    y = y * norm.scale[:, None, None] + norm.shift[:, None, None]
    return y.amax(dim=3).transpose(1, 2)


class Musicnn(nn.Module):
    """MSD_musicnn's layers; ``patch`` runs the original, the streaming parts are used by the backbone."""

    def __init__(self, weights: dict[str, np.ndarray] | None = None) -> None:
        super().__init__()
        self.input_norm = Affine(1)
        self.timbral = nn.ModuleList([nn.Conv2d(1, FRONT_FILTERS, kernel) for kernel in TIMBRAL])
        self.temporal = nn.ModuleList([nn.Conv2d(1, TEMPORAL_FILTERS, (k, 1)) for k in TEMPORAL])
        self.front_norms = nn.ModuleList([Affine(FRONT_FILTERS) for _ in TIMBRAL] + [Affine(TEMPORAL_FILTERS) for _ in TEMPORAL])
        self.mid = nn.ModuleList([nn.Conv1d(FRONT_WIDTH, MID_FILTERS, MID_KERNEL)] + [nn.Conv1d(MID_FILTERS, MID_FILTERS, MID_KERNEL) for _ in range(2)])
        self.mid_norms = nn.ModuleList([Affine(MID_FILTERS) for _ in range(3)])
        self.pool_norm = Affine(2 * FEATURE_WIDTH)
        self.dense = nn.Linear(2 * FEATURE_WIDTH, PENULTIMATE)
        self.dense_norm = Affine(PENULTIMATE)
        self.tags = nn.Linear(PENULTIMATE, len(MSD_TAGS))
        if weights is not None:
            self.load(weights)
        for parameter in self.parameters():  # a frozen feature extractor
            parameter.requires_grad_(False)

    def load(self, weights: dict[str, np.ndarray]) -> None:
        convs = [*self.timbral, *self.temporal]
        for index, conv in enumerate(convs):
            name = "conv2d" if index == 0 else f"conv2d_{index}"
            conv.weight.data.copy_(torch.from_numpy(weights[f"{name}/kernel"].transpose(3, 2, 0, 1)))
            conv.bias.data.copy_(torch.from_numpy(weights[f"{name}/bias"]))
        for index, conv in enumerate(self.mid):
            name = f"conv2d_{len(convs) + index}"
            conv.weight.data.copy_(torch.from_numpy(weights[f"{name}/kernel"][:, :, 0, :].transpose(2, 1, 0)))
            conv.bias.data.copy_(torch.from_numpy(weights[f"{name}/bias"]))
        norms = [self.input_norm, *self.front_norms, *self.mid_norms, self.pool_norm, self.dense_norm]
        for index, norm in enumerate(norms):
            norm.load(weights, "batch_normalization" if index == 0 else f"batch_normalization_{index}")
        for layer, name in ((self.dense, "dense"), (self.tags, "dense_1")):
            layer.weight.data.copy_(torch.from_numpy(weights[f"{name}/kernel"].T))
            layer.bias.data.copy_(torch.from_numpy(weights[f"{name}/bias"]))

    def front(self, mel: Tensor, lookahead: tuple[int, ...]) -> Tensor:
        """Normalised log-mel [batch, MEL_CONTEXT + n, 96] -> [batch, n, 561], streaming.

        The first ``MEL_CONTEXT`` frames are left context. Output frame j describes mel frame
        ``MEL_CONTEXT + j - max(lookahead)``; convolution i sees ``lookahead[i]`` frames past it.
        """
        x = mel.unsqueeze(1)
        n_new, end = mel.shape[1] - MEL_CONTEXT, mel.shape[1] - max(lookahead)
        outputs = []
        for conv, norm, ahead in zip([*self.timbral, *self.temporal], self.front_norms, lookahead):
            kernel = conv.kernel_size[0]
            stop = end + ahead
            outputs.append(_relu_norm_max(conv, norm, x[:, :, stop - (kernel - 1 + n_new) : stop]))
        return torch.cat(outputs, dim=-1)

    def front_patch(self, mel: Tensor, pads: list[tuple[int, int]]) -> Tensor:
        """The original front end on a patch, each convolution with its (before, after) zero padding."""
        x = mel.unsqueeze(1)
        convs = [*self.timbral, *self.temporal]
        return torch.cat([_relu_norm_max(conv, norm, nn.functional.pad(x, (0, 0, *pad))) for conv, norm, pad in zip(convs, self.front_norms, pads)], dim=-1)

    def middle(self, front: Tensor) -> Tensor:
        """The original mid end on a patch: [batch, frames, 561] -> [batch, frames, 753] ('same' padding)."""
        x = front.transpose(1, 2)
        layers = [x]
        for index, (conv, norm) in enumerate(zip(self.mid, self.mid_norms)):
            y = torch.relu(conv(nn.functional.pad(x, (3, 3)))) * norm.scale[:, None] + norm.shift[:, None]
            x = y if index == 0 else y + x
            layers.append(x)
        return torch.cat(layers, dim=1).transpose(1, 2)

    def middle_valid(self, front: Tensor) -> Tensor:
        """The mid end without padding: [batch, 18 + n, 561] -> [batch, n, 753], for front frames 9 .. 9 + n."""
        x = front.transpose(1, 2)
        trim = MID_KERNEL // 2
        layers = [x]
        for index, (conv, norm) in enumerate(zip(self.mid, self.mid_norms)):
            y = torch.relu(conv(x)) * norm.scale[:, None] + norm.shift[:, None]
            x = y if index == 0 else y + x[:, :, trim:-trim]
            layers.append(x)
        length = x.shape[2]
        return torch.cat([layer[:, :, (layer.shape[2] - length) // 2 :][:, :, :length] for layer in layers], dim=1).transpose(1, 2)

    def back(self, pooled: Tensor) -> tuple[Tensor, Tensor]:
        """Pooled [..., 1506] (max and mean, interleaved) -> (penultimate [..., 200], tag logits [..., 50])."""
        penultimate = self.dense_norm(torch.relu(self.dense(self.pool_norm(pooled))))
        return penultimate, self.tags(penultimate)

    def patch(self, mel: Tensor) -> dict[str, Tensor]:
        """The original network on patches [batch, frames, 96] (TensorFlow's 'same' padding)."""
        x = self.input_norm(mel)
        pads = [(3, 3), (3, 3)] + [((k - 1) // 2, k - 1 - (k - 1) // 2) for k in TEMPORAL]
        features = self.middle(self.front_patch(x, pads))
        max_pool, mean_pool = features.amax(dim=1), features.mean(dim=1)
        penultimate, logits = self.back(interleave(max_pool, mean_pool))
        return {"taggram": torch.sigmoid(logits), "penultimate": penultimate, "max_pool": max_pool, "mean_pool": mean_pool}


class MusicnnBackbone(nn.Module):
    """Streaming MusiCNN: PCM hops -> one embedding a hop (penultimate 200, tag probabilities 50).

    Every convolution keeps the original's alignment, but may look at most ``LOOKAHEAD``
    frames ahead of the frame it describes: the timbral and mid-end ones are exact (3
    frames), the 128-frame temporal one is shifted from centred (64 ahead) to 32 ahead. So
    the features of frame f are ready when frame f + 41 has arrived, and the embedding at the
    end of a hop pools the 3 s of frames that end 41 frames (0.64 s) before it. Measured on
    real clips, the tags then correlate 0.98 to 0.99 with the original network's on the same
    3 s patch; making every convolution strictly causal instead dropped that to 0.63 to 0.95.

    State, per stream: the STFT tail, the last 127 normalised log-mel frames, the last 18
    front-end frames (the mid end's context), the last 160 frame features with a validity
    flag, and the number of frames so far (frames before a stream's start are not pooled).
    """

    def __init__(self, weights: dict[str, np.ndarray] | None = None) -> None:
        super().__init__()
        self.mel = MusicnnMel()
        self.net = Musicnn(weights)

    def state_shapes(self) -> list[tuple[int, ...]]:
        return [
            (AUDIO_TAIL,),
            (MEL_CONTEXT, N_MELS),
            (MID_CONTEXT, FRONT_WIDTH),
            (POOL_FRAMES - STFT_FRAMES_PER_HOP, FEATURE_WIDTH + 1),
            (1,),
        ]

    def forward(self, audio: Tensor, states: list[Tensor]) -> tuple[Tensor, list[Tensor]]:
        """audio [batch, n_hops * 8000] -> embeddings [batch, n_hops, 250], new states."""
        tail, mel_context, front_context, pool_buffer, frames_so_far = states
        mel, tail = self.mel(audio, tail)
        n_new = mel.shape[1]
        mel = torch.cat([mel_context, self.net.input_norm(mel)], dim=1)
        front = torch.cat([front_context, self.net.front(mel, FRONT_LOOKAHEAD)], dim=1)
        features = self.net.middle_valid(front)  # frames ending LOOKAHEAD frames before now
        first_frame = frames_so_far - LOOKAHEAD  # index of features[:, 0] in the stream
        index = first_frame + torch.arange(n_new, dtype=torch.float32)
        valid = (index >= 0).float().unsqueeze(-1)
        frames = torch.cat([pool_buffer, torch.cat([features * valid, valid], dim=-1)], dim=1)
        pooled = self.pool_hops(frames)
        penultimate, logits = self.net.back(pooled)
        embedding = torch.cat([penultimate, torch.sigmoid(logits)], dim=-1)
        keep = POOL_FRAMES - STFT_FRAMES_PER_HOP
        frames_so_far = (frames_so_far + n_new).clamp(max=FRAME_COUNT_LIMIT)
        return embedding, [tail, mel[:, -MEL_CONTEXT:], front[:, -MID_CONTEXT:], frames[:, frames.shape[1] - keep :], frames_so_far]

    @staticmethod
    def pool_hops(frames: Tensor) -> Tensor:
        """Frames [batch, 160 + n_hops * 32, 754] -> max and mean over each hop's 3 s [batch, n_hops, 1506].

        Only valid frames count; a window with none pools to zeros.
        """
        windows = frames.unfold(1, POOL_FRAMES, STFT_FRAMES_PER_HOP)  # [batch, n_hops, 754, 192]
        values, valid = windows[:, :, :-1], windows[:, :, -1:]
        count = valid.sum(dim=-1)
        any_valid = (count > 0).float()
        maximum = (values + (valid - 1.0) * -INVALID).amax(dim=-1) * any_valid
        mean = values.sum(dim=-1) / count.clamp(min=1.0)
        return interleave(maximum, mean)


def zero_states(shapes: list[tuple[int, ...]], batch: int) -> list[Tensor]:
    return [torch.zeros(batch, *shape) for shape in shapes]


def state_size(shapes: list[tuple[int, ...]]) -> int:
    return sum(math.prod(shape) for shape in shapes)

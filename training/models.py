"""The seed papers' models, made causal and streaming, plus the export wrapper.

Every head maps normalised front-end features [batch, n_hops * 8, 81] and a list of state
tensors to (va [batch, n_hops, 2] in [-1, 1], new states). Running a clip in one call or hop
by hop with the states carried gives the same result: convolutions are causal in time and
keep their last (kernel - 1) input frames as state, pooling in time never crosses a hop, and
the recurrent layers carry their hidden state. Nothing looks past the current hop.
"""

from __future__ import annotations

import math
from typing import Callable

import numpy as np
import torch
from torch import Tensor, nn

from rtmer.errors import ConfigError
from training.frontend import CHROMA, FRAMES_PER_HOP, HOP_SAMPLES, MEL, N_CHROMA, N_FEATURES, N_MELS, SAMPLE_RATE, TAIL_SAMPLES, FrontEnd

STEPS_PER_HOP = 4  # recurrent steps per 500 ms hop (125 ms each)
FRAMES_PER_STEP = FRAMES_PER_HOP // STEPS_PER_HOP
N_MFCC = 20
RUNNING_STATS_SECONDS = 60.0  # time constant of the hybrid's causal running mean/std


class Normalizer(nn.Module):
    """Per-feature standardisation with constants measured on the training data."""

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("mean", torch.zeros(N_FEATURES))
        self.register_buffer("std", torch.ones(N_FEATURES))

    def fit(self, mean: np.ndarray, std: np.ndarray) -> None:
        self.mean.copy_(torch.from_numpy(mean))
        self.std.copy_(torch.from_numpy(np.maximum(std, 1e-3)))

    def forward(self, features: Tensor) -> Tensor:
        return (features - self.mean) / self.std


class CausalConv2d(nn.Module):
    """Conv over [batch, channels, time, freq], causal in time; state = last (k_t - 1) input frames."""

    def __init__(self, in_channels: int, out_channels: int, *, time_kernel: int = 3, freq_kernel: int = 3, bins: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, (time_kernel, freq_kernel), padding=(0, freq_kernel // 2))
        self.context_shape = (in_channels, time_kernel - 1, bins)

    def forward(self, x: Tensor, context: Tensor) -> tuple[Tensor, Tensor]:
        extended = torch.cat([context, x], dim=2)
        return self.conv(extended), extended[:, :, -self.context_shape[1] :]


def pool_steps(x: Tensor, frames_per_step: int) -> Tensor:
    """Max over consecutive groups of frames [batch, time, feat] -> [batch, time / n, feat]."""
    batch, time, feat = x.shape
    return x.reshape(batch, time // frames_per_step, frames_per_step, feat).amax(dim=2)


def last_step_of_each_hop(x: Tensor, steps_per_hop: int) -> Tensor:
    """[batch, n_hops * steps, dim] -> [batch, n_hops, dim]: the estimate at each hop's end."""
    return x[:, steps_per_hop - 1 :: steps_per_hop]


class Head(nn.Module):
    """Base: a normaliser, and a list of state shapes (per stream, without the batch axis)."""

    def __init__(self) -> None:
        super().__init__()
        self.normalizer = Normalizer()

    def state_shapes(self) -> list[tuple[int, ...]]:
        raise NotImplementedError

    def forward(self, features: Tensor, states: list[Tensor]) -> tuple[Tensor, list[Tensor]]:
        raise NotImplementedError


class ConvBlock(nn.Module):
    """Malik et al.'s convolutional block: conv 3x3, batch norm, ReLU, max-pool over frequency."""

    def __init__(self, in_channels: int, out_channels: int, *, bins: int, freq_pool: int) -> None:
        super().__init__()
        self.conv = CausalConv2d(in_channels, out_channels, bins=bins)
        self.norm = nn.BatchNorm2d(out_channels)
        self.freq_pool = freq_pool

    def forward(self, x: Tensor, context: Tensor) -> tuple[Tensor, Tensor]:
        y, context = self.conv(x, context)
        y = torch.relu(self.norm(y))
        batch, channels, time, bins = y.shape
        y = y.reshape(batch, channels, time, bins // self.freq_pool, self.freq_pool).amax(dim=-1)
        return y, context


def conv_features_per_step(x: Tensor) -> Tensor:
    """[batch, channels, frames, bins] -> [batch, steps, channels * bins], max over each step."""
    batch, channels, frames, bins = x.shape
    flat = x.permute(0, 2, 1, 3).reshape(batch, frames, channels * bins)
    return pool_steps(flat, FRAMES_PER_STEP)


def mean_per_step(x: Tensor) -> Tensor:
    """[batch, frames, dim] -> [batch, steps, dim], the mean over each step."""
    batch, frames, dim = x.shape
    return x.reshape(batch, frames // FRAMES_PER_STEP, FRAMES_PER_STEP, dim).mean(dim=2)


class GruBranch(nn.Module):
    """Fully connected reduction, a stateful unidirectional GRU, a linear output."""

    def __init__(self, in_dim: int, reduced: int, hidden: int, outputs: int) -> None:
        super().__init__()
        self.reduce = nn.Linear(in_dim, reduced)
        self.gru = nn.GRU(reduced, hidden, batch_first=True)
        self.out = nn.Linear(hidden, outputs)
        self.hidden = hidden

    def forward(self, x: Tensor, hidden: Tensor) -> tuple[Tensor, Tensor]:
        y, new_hidden = self.gru(torch.relu(self.reduce(x)), hidden.unsqueeze(0).contiguous())
        return self.out(y), new_hidden.squeeze(0)


class Crnn(Head):
    """CRNN after Malik et al. 2017, causal: one conv block, then a valence and an arousal branch.

    Each branch also sees the chroma of the step, beside the conv block's output.
    """

    def __init__(self, *, channels: int = 16, freq_pool: int = 4, reduced: int = 24, hidden: int = 24) -> None:
        super().__init__()
        self.block = ConvBlock(1, channels, bins=N_MELS, freq_pool=freq_pool)
        flat = channels * N_MELS // freq_pool + N_CHROMA
        self.branches = nn.ModuleList([GruBranch(flat, reduced, hidden, 1) for _ in range(2)])

    def state_shapes(self) -> list[tuple[int, ...]]:
        return [self.block.conv.context_shape] + [(branch.hidden,) for branch in self.branches]

    def forward(self, features: Tensor, states: list[Tensor]) -> tuple[Tensor, list[Tensor]]:
        x = self.normalizer(features)
        conv, context = self.block(x[..., MEL].unsqueeze(1), states[0])
        steps = torch.cat([conv_features_per_step(conv), mean_per_step(x[..., CHROMA])], dim=-1)
        outputs, hiddens = [], []
        for branch, hidden in zip(self.branches, states[1:]):
            y, hidden = branch(steps, hidden)
            outputs.append(y)
            hiddens.append(hidden)
        va = torch.tanh(last_step_of_each_hop(torch.cat(outputs, dim=-1), STEPS_PER_HOP))
        return va, [context, *hiddens]


class CrnnNoBranch(Head):
    """CRNN_NB after Malik et al. 2017: one shared branch for both outputs (chroma beside it too)."""

    def __init__(self, *, channels: int = 16, freq_pool: int = 4, reduced: int = 32, hidden: int = 48) -> None:
        super().__init__()
        self.block = ConvBlock(1, channels, bins=N_MELS, freq_pool=freq_pool)
        self.branch = GruBranch(channels * N_MELS // freq_pool + N_CHROMA, reduced, hidden, 2)

    def state_shapes(self) -> list[tuple[int, ...]]:
        return [self.block.conv.context_shape, (self.branch.hidden,)]

    def forward(self, features: Tensor, states: list[Tensor]) -> tuple[Tensor, list[Tensor]]:
        x = self.normalizer(features)
        conv, context = self.block(x[..., MEL].unsqueeze(1), states[0])
        y, hidden = self.branch(torch.cat([conv_features_per_step(conv), mean_per_step(x[..., CHROMA])], dim=-1), states[1])
        return torch.tanh(last_step_of_each_hop(y, STEPS_PER_HOP)), [context, hidden]


class MelCnn(Head):
    """Plain log-mel CNN after Quan & Dong: two conv blocks, mean over the hop, two dense layers.

    Its only memory is the convolutions' receptive field: the baseline without recurrence.
    """

    def __init__(self) -> None:
        super().__init__()
        self.block1 = ConvBlock(1, 8, bins=N_MELS, freq_pool=4)
        self.block2 = ConvBlock(8, 16, bins=N_MELS // 4, freq_pool=4)
        self.dense = nn.Sequential(nn.Linear(16 * N_MELS // 16, 32), nn.ReLU(), nn.Linear(32, 2))

    def state_shapes(self) -> list[tuple[int, ...]]:
        return [self.block1.conv.context_shape, self.block2.conv.context_shape]

    def forward(self, features: Tensor, states: list[Tensor]) -> tuple[Tensor, list[Tensor]]:
        mel = self.normalizer(features)[..., MEL].unsqueeze(1)
        y, context1 = self.block1(mel, states[0])
        y, context2 = self.block2(y, states[1])
        batch, channels, frames, bins = y.shape
        per_hop = y.permute(0, 2, 1, 3).reshape(batch, frames // FRAMES_PER_HOP, FRAMES_PER_HOP, channels * bins)
        return torch.tanh(self.dense(per_hop.mean(dim=2))), [context1, context2]


def dct_matrix(n_in: int, n_out: int) -> Tensor:
    """Orthonormal DCT-II as a [n_in, n_out] matrix (log-mel -> MFCC)."""
    k = np.arange(n_out)[None, :]
    n = np.arange(n_in)[:, None]
    basis = np.cos(np.pi * k * (2 * n + 1) / (2 * n_in)) * np.sqrt(2.0 / n_in)
    basis[:, 0] /= np.sqrt(2.0)
    return torch.from_numpy(basis.astype(np.float32))


# Krumhansl & Kessler's key profiles (C major, C minor), the classic mode cue of MER toolkits.
MAJOR_PROFILE = (6.35, 2.23, 3.48, 2.33, 4.38, 4.09, 2.52, 5.19, 2.39, 3.66, 2.29, 2.88)
MINOR_PROFILE = (6.33, 2.68, 3.52, 5.38, 2.60, 3.53, 2.54, 4.75, 3.98, 2.69, 3.34, 3.17)


def key_profiles() -> Tensor:
    """[12, 24] centred unit columns: the 12 major keys, then the 12 minor keys."""
    columns = [np.roll(profile, k) for profile in (MAJOR_PROFILE, MINOR_PROFILE) for k in range(12)]
    matrix = np.stack(columns, axis=1)
    matrix = matrix - matrix.mean(axis=0)
    return torch.from_numpy((matrix / np.linalg.norm(matrix, axis=0)).astype(np.float32))


def key_mode_scores(chroma: Tensor, profiles: Tensor) -> Tensor:
    """Chroma [..., 12] -> [best major-key correlation, best minor-key correlation, their difference]."""
    centred = chroma - chroma.mean(dim=-1, keepdim=True)
    correlation = (centred / (centred.norm(dim=-1, keepdim=True) + 1e-6)) @ profiles
    major, minor = correlation[..., :12].amax(dim=-1), correlation[..., 12:].amax(dim=-1)
    return torch.stack([major, minor, major - minor], dim=-1)


class Hybrid(Head):
    """CNN-LSTM hybrid after Kerhalkar et al.: three parallel parts into a small MLP.

    - convolutions over MFCC with first and second (causal) deltas;
    - an LSTM over the frame-level time series (RMS, ZCR, centroid, spread, envelope, chroma,
      and spectral flux, the onset cue: the mean rise of the log-mel bands since the last frame);
    - an MLP over static features: causal running mean and std of MFCCs and time series,
      and the key-mode scores of the running mean chroma (Krumhansl-Kessler profiles).
      The running statistics are exponentially weighted with a time constant
      (``stats_seconds``, 60 s unless given) and bias-corrected, so they are the plain mean
      and std so far early in a stream and follow the music after that instead of freezing
      over a long set.
    """

    def __init__(self, *, lstm_hidden: int = 24, static_width: int = 32, mlp_width: int = 48, stats_seconds: float = RUNNING_STATS_SECONDS) -> None:
        super().__init__()
        self.register_buffer("dct", dct_matrix(N_MELS, N_MFCC))
        self.register_buffer("key_profiles", key_profiles())
        self.conv = CausalConv2d(3, 8, bins=N_MFCC)
        self.conv_dense = nn.Linear(8 * N_MFCC // 2, 32)
        n_series = N_FEATURES - N_MELS + 1  # with the flux
        self.lstm = nn.LSTM(n_series, lstm_hidden, batch_first=True)
        self.static_dense = nn.Linear(2 * (N_MFCC + n_series) + 3, static_width)
        self.mlp = nn.Sequential(nn.Linear(32 + lstm_hidden + static_width, mlp_width), nn.ReLU(), nn.Linear(mlp_width, 2))
        self.lstm_hidden = lstm_hidden
        self.decay = math.exp(-HOP_SAMPLES / SAMPLE_RATE / STEPS_PER_HOP / stats_seconds)

    def state_shapes(self) -> list[tuple[int, ...]]:
        n_static = N_MFCC + N_FEATURES - N_MELS + 1
        return [
            (N_MELS,),  # last log-mel frame, for the flux
            (2, N_MFCC),  # last two MFCC frames, for the deltas
            self.conv.context_shape,
            (self.lstm_hidden,),
            (self.lstm_hidden,),
            (2 * n_static + 1,),  # running sums of x and x^2, and their weight
        ]

    def forward(self, features: Tensor, states: list[Tensor]) -> tuple[Tensor, list[Tensor]]:
        va, new_states, _ = self.forward_with_hidden(features, states)
        return va, new_states

    def forward_with_hidden(self, features: Tensor, states: list[Tensor]) -> tuple[Tensor, list[Tensor], Tensor]:
        """``forward``, and the MLP's hidden layer at the end of each hop [batch, hops, mlp_width] (for auxiliary outputs in training)."""
        mel_context, mfcc_context, conv_context, h, c, running = states
        x = self.normalizer(features)
        mel = torch.cat([mel_context.unsqueeze(1), x[..., MEL]], dim=1)
        flux = torch.relu(mel[:, 1:] - mel[:, :-1]).mean(dim=-1, keepdim=True)
        mfcc = x[..., MEL] @ self.dct
        with_past = torch.cat([mfcc_context, mfcc], dim=1)
        delta = with_past[:, 1:] - with_past[:, :-1]
        delta2 = delta[:, 1:] - delta[:, :-1]
        stacked = torch.stack([mfcc, delta[:, 1:], delta2], dim=1)  # [batch, 3, frames, 20]
        conv, conv_context = self.conv(stacked, conv_context)
        conv = torch.relu(conv)
        batch, channels, frames, bins = conv.shape
        conv = conv.reshape(batch, channels, frames, bins // 2, 2).amax(dim=-1)
        conv_steps = torch.relu(self.conv_dense(conv_features_per_step(conv)))

        series = torch.cat([x[..., N_MELS:], flux], dim=-1)  # the time series, chroma and flux
        series_steps = mean_per_step(series)
        lstm_out, (h_out, c_out) = self.lstm(series_steps, (h.unsqueeze(0).contiguous(), c.unsqueeze(0).contiguous()))

        frame_static = torch.cat([mfcc, series], dim=-1)
        static, running = self._running_stats(mean_per_step(frame_static), running)
        chroma_columns = slice(N_MFCC + CHROMA.start - N_MELS, N_MFCC + CHROMA.stop - N_MELS)
        normalizer = self.normalizer
        running_chroma = static[..., chroma_columns] * normalizer.std[CHROMA] + normalizer.mean[CHROMA]
        key_mode = key_mode_scores(running_chroma, self.key_profiles)
        static_out = torch.relu(self.static_dense(torch.cat([static, key_mode], dim=-1)))

        hidden = self.mlp[1](self.mlp[0](torch.cat([conv_steps, lstm_out, static_out], dim=-1)))
        y = self.mlp[2](hidden)
        va = torch.tanh(last_step_of_each_hop(y, STEPS_PER_HOP))
        new_states = [mel[:, -1], with_past[:, -2:], conv_context, h_out.squeeze(0), c_out.squeeze(0), running]
        return va, new_states, last_step_of_each_hop(hidden, STEPS_PER_HOP)

    def _running_stats(self, steps: Tensor, running: Tensor) -> tuple[Tensor, Tensor]:
        """Bias-corrected exponential mean and std after each step, in closed form.

        With decay d, after step i of this call: sums_i = d^(i+1) sums_0 + sum_k<=i (1-d) d^(i-k) x_k,
        one [steps, steps] matrix product instead of a loop (the weight follows the same rule).
        """
        n, count = steps.shape[-1], steps.shape[1]
        index = np.arange(count)
        lag = index[:, None] - index[None, :]
        mixing = torch.from_numpy(np.where(lag >= 0, (1 - self.decay) * self.decay ** np.maximum(lag, 0), 0.0).astype(np.float32))
        carried = torch.from_numpy((self.decay ** (index + 1)).astype(np.float32))[:, None]
        previous_sums, previous_weight = running[:, : 2 * n], running[:, 2 * n :]
        sums = mixing @ torch.cat([steps, steps.square()], dim=-1) + carried * previous_sums.unsqueeze(1)
        weight = (1 - carried) + carried * previous_weight.unsqueeze(1)
        mean = sums[..., :n] / weight
        std = (sums[..., n:] / weight - mean.square()).clamp(min=0.0).add(1e-6).sqrt()
        return torch.cat([mean, std], dim=-1), torch.cat([sums[:, -1], weight[:, -1]], dim=-1)


class Fusion(Head):
    """Late fusion after Amiriparian et al.: the mean of several trained heads' estimates."""

    def __init__(self, members: list[Head]) -> None:
        super().__init__()
        self.members = nn.ModuleList(members)

    def state_shapes(self) -> list[tuple[int, ...]]:
        return [shape for member in self.members for shape in member.state_shapes()]

    def forward(self, features: Tensor, states: list[Tensor]) -> tuple[Tensor, list[Tensor]]:
        estimates, new_states, start = [], [], 0
        for member in self.members:
            count = len(member.state_shapes())
            va, member_states = member(features, states[start : start + count])
            estimates.append(va)
            new_states.extend(member_states)
            start += count
        return torch.stack(estimates).mean(dim=0), new_states


HEADS: dict[str, Callable[[], Head]] = {
    "crnn": Crnn,
    "crnn_nb": CrnnNoBranch,
    "cnn": MelCnn,
    "hybrid": Hybrid,
    "hybrid_wide": lambda: Hybrid(lstm_hidden=48, static_width=64, mlp_width=96),
    # For real recordings and medleys: running statistics that follow a change of music within seconds.
    "hybrid_fast": lambda: Hybrid(lstm_hidden=48, static_width=64, mlp_width=96, stats_seconds=4.0),
}


def build_head(name: str) -> Head:
    if name not in HEADS:
        raise ConfigError(f"model={name!r} is unknown; expected one of {sorted(HEADS)} (or 'fusion' of trained runs)")
    return HEADS[name]()


def zero_states(head: Head, batch: int) -> list[Tensor]:
    return [torch.zeros(batch, *shape) for shape in head.state_shapes()]


class StreamingModel(nn.Module):
    """The exported contract: (audio [batch, n_hops * 8000], state [batch, S]) -> (va, state_out).

    State layout: the front end's 262-sample tail, then each head state flattened, in order.
    """

    def __init__(self, head: Head) -> None:
        super().__init__()
        self.front_end = FrontEnd()
        self.head = head
        self.shapes = [(TAIL_SAMPLES,)] + head.state_shapes()
        self.sizes = [math.prod(shape) for shape in self.shapes]

    @property
    def state_size(self) -> int:
        return sum(self.sizes)

    def unpack(self, state: Tensor) -> list[Tensor]:
        return unpack_state(state, self.shapes)

    def pack(self, states: list[Tensor]) -> Tensor:
        return pack_state(states)

    def run(self, audio: Tensor, state: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Any number of whole hops: (features, va [batch, n_hops, 2], state_out)."""
        tail, *head_states = self.unpack(state)
        features, tail = self.front_end(audio, tail)
        va, head_states = self.head(features, head_states)
        return features, va, self.pack([tail, *head_states])

    def forward(self, audio: Tensor, state: Tensor) -> tuple[Tensor, Tensor]:
        """One hop, as exported: va [batch, 2]."""
        _, va, state_out = self.run(audio, state)
        return va[:, 0], state_out


def unpack_state(state: Tensor, shapes: list[tuple[int, ...]]) -> list[Tensor]:
    """The exported flat state [batch, S] -> one tensor per shape."""
    parts = torch.split(state, [math.prod(shape) for shape in shapes], dim=1)
    return [part if len(shape) == 1 else part.reshape(-1, *shape) for part, shape in zip(parts, shapes)]


def pack_state(states: list[Tensor]) -> Tensor:
    return torch.cat([s if s.dim() == 2 else s.reshape(s.shape[0], -1) for s in states], dim=1)


def parameter_count(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())

"""rtmer-large: the streaming MusiCNN backbone (frozen, MSD-pretrained) and small recurrent heads.

A head reads one 250-wide embedding a hop (the penultimate layer and the 50 tag
probabilities), standardised, through a dense layer and a GRU, to valence and arousal; an
auxiliary GEMS output on the GRU is trained on Emotify and not exported. ``LargeEnsemble``
averages several heads trained from different seeds, and may blend in a ``LinearReadout``: a
memoryless linear map of each hop's embedding, fitted in closed form (ridge) on whole-clip
means, which is what a clip-level label describes.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
from sklearn.linear_model import Ridge
from torch import Tensor, nn

from training.mixed import Item
from training.musicnn import EMBEDDING_WIDTH, MusicnnBackbone
from training.realeval import clip_estimate
from training.realmusic import GEMS, label_signs
from training.models import pack_state, unpack_state

READOUT_ALPHA = 100.0  # ridge penalty on standardised embeddings
READOUT_SIGN_LEVEL = 0.5  # the target of a 4Q or MIREX-like clip: its signs at this magnitude
READOUT_VGMIDI_STRIDE = 4  # VGMIDI hops used: every 4th (neighbours are nearly the same)
READOUT_SETTINGS = {"alpha": READOUT_ALPHA, "sign_level": READOUT_SIGN_LEVEL, "vgmidi_stride": READOUT_VGMIDI_STRIDE}  # as a run records them


def standardisation(embeddings: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-column mean and std (at least 1e-3) of [n, 250] embeddings, float32."""
    return embeddings.mean(axis=0).astype(np.float32), np.maximum(embeddings.std(axis=0), 1e-3).astype(np.float32)


class LargeHead(nn.Module):
    def __init__(self, *, width: int = 128, hidden: int = 64, dropout: float = 0.3) -> None:
        super().__init__()
        self.register_buffer("mean", torch.zeros(EMBEDDING_WIDTH))
        self.register_buffer("std", torch.ones(EMBEDDING_WIDTH))
        self.dropout = nn.Dropout(dropout)
        self.dense = nn.Linear(EMBEDDING_WIDTH, width)
        self.gru = nn.GRU(width, hidden, batch_first=True)
        self.va = nn.Linear(hidden, 2)
        self.gems = nn.Linear(hidden, len(GEMS))
        self.hidden = hidden

    def fit_normalizer(self, embeddings: np.ndarray) -> None:
        mean, std = standardisation(embeddings)
        self.mean.copy_(torch.from_numpy(mean))
        self.std.copy_(torch.from_numpy(std))

    def forward(self, embeddings: Tensor, hidden: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """[batch, hops, 250] -> va [batch, hops, 2], GEMS logits [batch, hops, 9], new hidden [batch, H]."""
        x = torch.relu(self.dense(self.dropout((embeddings - self.mean) / self.std)))
        y, new_hidden = self.gru(x, hidden.unsqueeze(0).contiguous())
        return torch.tanh(self.va(y)), self.gems(y), new_hidden.squeeze(0)

    def run_cold(self, embeddings: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        """From a cold state, as in training: (va, {"gems": GEMS logits})."""
        va, gems, _ = self(embeddings, torch.zeros(embeddings.shape[0], self.hidden))
        return va, {"gems": gems}


class LinearReadout(nn.Module):
    """valence and arousal as a linear map of one hop's standardised embedding, clamped to [-1, 1]; no memory."""

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("mean", torch.zeros(EMBEDDING_WIDTH))
        self.register_buffer("std", torch.ones(EMBEDDING_WIDTH))
        self.linear = nn.Linear(EMBEDDING_WIDTH, 2)

    def forward(self, embeddings: Tensor) -> Tensor:
        return torch.clamp(self.linear((embeddings - self.mean) / self.std), -1.0, 1.0)


def fit_readout(items: Sequence[Item]) -> LinearReadout:
    """Ridge from the mean standardised embedding of a clip's hops after its first 5 s to its label.

    Rows: a MUSIFEAST-17 clip's ratings; a 4Q clip's quadrant signs at ``READOUT_SIGN_LEVEL``, and a
    MIREX-like clip's the same for the dimensions its cluster fixes (each dimension is fitted apart);
    every 4th hop of a VGMIDI render with its label, the render's rows weighing one clip in all.
    Emotify (no valence or arousal) is not used. ``items`` carry per-hop embeddings as inputs.
    """
    readout = LinearReadout()
    mean, std = standardisation(np.concatenate([item.inputs for item in items]).astype(np.float32))
    rows, targets, weights = [], [], []
    for item in items:
        embeddings = (item.inputs.astype(np.float32) - mean) / std
        signs = label_signs(item.quadrant, item.cluster)
        if item.va is not None or signs is not None:
            # a dimension a MIREX cluster fixes no sign for has no target (NaN): that row is left out of its fit
            label = item.va if item.va is not None else np.where(signs != 0, READOUT_SIGN_LEVEL * signs, np.nan)
            rows.append(clip_estimate(embeddings))  # the same hops as a clip's estimate
            targets.append(label)
            weights.append(1.0)
        elif item.hop_labels is not None and len(item.hop_labels):
            n = min(len(item.hop_labels), len(embeddings) - item.first_hop)
            hops = np.arange(item.first_hop, item.first_hop + n, READOUT_VGMIDI_STRIDE)
            if not len(hops):
                continue
            rows.extend(embeddings[hops])
            targets.extend(item.hop_labels[hops - item.first_hop])
            weights.extend([1.0 / len(hops)] * len(hops))
    x, y, w = np.array(rows), np.array(targets, np.float64), np.array(weights)
    coef, intercept = np.zeros((2, x.shape[1])), np.zeros(2)
    for dimension in range(2):
        labelled = np.isfinite(y[:, dimension])
        ridge = Ridge(alpha=READOUT_ALPHA).fit(x[labelled], y[labelled, dimension], sample_weight=w[labelled])
        coef[dimension], intercept[dimension] = ridge.coef_, ridge.intercept_
    with torch.no_grad():
        readout.mean.copy_(torch.from_numpy(mean))
        readout.std.copy_(torch.from_numpy(std))
        readout.linear.weight.copy_(torch.from_numpy(coef.astype(np.float32)))
        readout.linear.bias.copy_(torch.from_numpy(intercept.astype(np.float32)))
    return readout.eval()


class LargeEnsemble(nn.Module):
    """The mean of several heads' outputs, blended with a readout's by ``readout_share``; its hidden state is the heads' side by side."""

    def __init__(self, heads: list[LargeHead], readout: LinearReadout | None = None, readout_share: float = 0.0) -> None:
        super().__init__()
        if (readout is None) != (readout_share == 0.0) or not 0.0 <= readout_share < 1.0:
            raise ValueError(f"readout_share={readout_share} with {'a' if readout else 'no'} readout: expected a share in (0, 1) with a readout, 0 without")
        self.heads = nn.ModuleList(heads)
        self.readout = readout
        self.readout_share = readout_share
        self.hidden = sum(head.hidden for head in heads)

    def forward(self, embeddings: Tensor, hidden: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        outputs = [head(embeddings, part) for head, part in zip(self.heads, hidden.split([h.hidden for h in self.heads], dim=1))]
        va = torch.stack([o[0] for o in outputs]).mean(dim=0)
        if self.readout is not None:
            va = (1.0 - self.readout_share) * va + self.readout_share * self.readout(embeddings)
        gems = torch.stack([o[1] for o in outputs]).mean(dim=0)
        return va, gems, torch.cat([o[2] for o in outputs], dim=1)

    def run_cold(self, embeddings: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        va, gems, _ = self(embeddings, torch.zeros(embeddings.shape[0], self.hidden))
        return va, {"gems": gems}


class LargeStreamingModel(nn.Module):
    """The exported contract: (audio [batch, 8000 n], state [batch, S]) -> (va [batch, 2], state_out)."""

    def __init__(self, backbone: MusicnnBackbone, head: LargeHead | LargeEnsemble) -> None:
        super().__init__()
        self.backbone = backbone
        self.head = head
        self.shapes = backbone.state_shapes() + [(head.hidden,)]

    @property
    def state_size(self) -> int:
        return int(sum(np.prod(shape) for shape in self.shapes))

    def run(self, audio: Tensor, state: Tensor) -> tuple[Tensor, Tensor]:
        """Any number of whole hops: (va [batch, n_hops, 2], state_out)."""
        *backbone_states, hidden = unpack_state(state, self.shapes)
        embeddings, backbone_states = self.backbone(audio, backbone_states)
        va, _, hidden = self.head(embeddings, hidden)
        return va, pack_state([*backbone_states, hidden])

    def forward(self, audio: Tensor, state: Tensor) -> tuple[Tensor, Tensor]:
        va, state_out = self.run(audio, state)
        return va[:, 0], state_out

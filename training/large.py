"""rtmer-large: the streaming MusiCNN backbone (frozen, MSD-pretrained) and a small recurrent head.

The head reads one 250-wide embedding a hop (the penultimate layer and the 50 tag
probabilities), standardised, through a dense layer and a GRU, to valence and arousal; an
auxiliary GEMS output on the GRU is trained on Emotify and not exported.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor, nn

from training.musicnn import EMBEDDING_WIDTH, MusicnnBackbone
from training.realmusic import GEMS
from training.models import pack_state, unpack_state


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
        self.mean.copy_(torch.from_numpy(embeddings.mean(axis=0).astype(np.float32)))
        self.std.copy_(torch.from_numpy(np.maximum(embeddings.std(axis=0), 1e-3).astype(np.float32)))

    def forward(self, embeddings: Tensor, hidden: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """[batch, hops, 250] -> va [batch, hops, 2], GEMS logits [batch, hops, 9], new hidden [batch, H]."""
        x = torch.relu(self.dense(self.dropout((embeddings - self.mean) / self.std)))
        y, new_hidden = self.gru(x, hidden.unsqueeze(0).contiguous())
        return torch.tanh(self.va(y)), self.gems(y), new_hidden.squeeze(0)

    def run_cold(self, embeddings: Tensor) -> tuple[Tensor, Tensor]:
        """From a cold state, as in training: (va, GEMS logits)."""
        va, gems, _ = self(embeddings, torch.zeros(embeddings.shape[0], self.hidden))
        return va, gems


class LargeStreamingModel(nn.Module):
    """The exported contract: (audio [batch, 8000 n], state [batch, S]) -> (va [batch, 2], state_out)."""

    def __init__(self, backbone: MusicnnBackbone, head: LargeHead) -> None:
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

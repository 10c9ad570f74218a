"""rtmer-large: the streaming MusiCNN backbone (frozen, MSD-pretrained) and small recurrent heads.

A head reads one 250-wide embedding a hop (the penultimate layer and the 50 tag
probabilities), standardised, through a dense layer and a GRU, to valence and arousal; an
auxiliary GEMS output on the GRU is trained on Emotify and not exported. ``LargeEnsemble``
averages several heads trained from different seeds.
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

    def run_cold(self, embeddings: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        """From a cold state, as in training: (va, {"gems": GEMS logits})."""
        va, gems, _ = self(embeddings, torch.zeros(embeddings.shape[0], self.hidden))
        return va, {"gems": gems}


class LargeEnsemble(nn.Module):
    """The mean of several heads' outputs; its hidden state is theirs side by side."""

    def __init__(self, heads: list[LargeHead]) -> None:
        super().__init__()
        self.heads = nn.ModuleList(heads)
        self.hidden = sum(head.hidden for head in heads)

    def forward(self, embeddings: Tensor, hidden: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        outputs = [head(embeddings, part) for head, part in zip(self.heads, hidden.split([h.hidden for h in self.heads], dim=1))]
        va = torch.stack([o[0] for o in outputs]).mean(dim=0)
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

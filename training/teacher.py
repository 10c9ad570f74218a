"""Streaming MusiCNN embeddings of every training file, cached on disk.

The backbone is frozen, so the large model's head trains on these per-hop embeddings exactly
as it would on audio through the exported graph (``MusicnnBackbone`` from a cold state).
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from tqdm import tqdm

from rtmer.errors import AudioInputError
from training.datasets import load_audio
from training.features import cached_array
from training.frontend import HOP_SAMPLES, SAMPLE_RATE
from training.musicnn import EMBEDDING_WIDTH, MusicnnBackbone, load_weights, zero_states

EMBEDDINGS_VERSION = "musicnn-msd-f16"  # bump when the backbone changes (now: float16 weights)
DEFAULT_WEIGHTS = Path(__file__).resolve().parent / "weights" / "msd_musicnn.npz"  # see weights/README.md
CHUNK_HOPS = 8


def load_backbone(weights: Path = DEFAULT_WEIGHTS) -> MusicnnBackbone:
    if not weights.is_file():
        raise FileNotFoundError(
            f"MusiCNN weights {str(weights)!r} not found; run training/convert_musicnn.py once (see its docstring)"
        )
    return MusicnnBackbone(load_weights(weights)).eval()


@torch.no_grad()
def clip_embeddings(backbone: MusicnnBackbone, audio: np.ndarray) -> np.ndarray:
    """Embeddings [n_hops, 250] of a whole file from a cold state, a few hops a call, state carried."""
    n_hops = len(audio) // HOP_SAMPLES
    samples = torch.from_numpy(np.ascontiguousarray(audio[: n_hops * HOP_SAMPLES], dtype=np.float32))[None]
    states = zero_states(backbone.state_shapes(), 1)
    parts = []
    for start in range(0, n_hops * HOP_SAMPLES, CHUNK_HOPS * HOP_SAMPLES):
        embedding, states = backbone(samples[:, start : start + CHUNK_HOPS * HOP_SAMPLES], states)
        parts.append(embedding[0])
    return torch.cat(parts).numpy() if parts else np.zeros((0, EMBEDDING_WIDTH), np.float32)


def cached_embeddings(audio_path: Path, cache_dir: Path, backbone: MusicnnBackbone) -> np.ndarray:
    """float16 [n_hops, 250] for one file, computed once.

    Raises:
        AudioInputError: the file cannot be read.
    """
    return cached_array(audio_path, cache_dir, EMBEDDINGS_VERSION, lambda: clip_embeddings(backbone, load_audio(audio_path, SAMPLE_RATE)).astype(np.float16))


def embed_all(paths: Sequence[Path], cache_dir: Path, backbone: MusicnnBackbone) -> dict[Path, np.ndarray | str]:
    """Embeddings of every file, or the reason it could not be read."""
    out: dict[Path, np.ndarray | str] = {}
    for path in tqdm(paths, desc="MusiCNN embeddings", unit="file"):
        try:
            out[path] = cached_embeddings(path, cache_dir, backbone)
        except AudioInputError as error:
            out[path] = error.reason
    return out

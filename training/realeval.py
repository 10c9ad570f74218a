"""Evaluation on real recordings: folds by artist, clip-level figures, baselines and reaction times.

- Folds: scikit-learn's ``StratifiedGroupKFold``, grouped by artist (Emotify: by clip; VGMIDI:
  by piece, so all renders of a piece fall together) and stratified by set and genre or quadrant.
- A clip's estimate is the mean of its hops that end after ``WARMUP_SECONDS``, streamed from
  a cold state.
- MUSIFEAST-17: RMSE, Pearson r, CCC and the spread (standard deviation of the estimates over
  that of the labels) per dimension. 4Q: quadrant accuracy (the signs of the estimate), the
  AUC of valence for Q1+Q4 against Q2+Q3 and of arousal for Q1+Q2 against Q3+Q4.
- Reaction time: in a medley of two held-out 4Q clips from opposite quadrants, the seconds
  after the switch until the estimate crosses halfway between its level over the last 5 s
  before the switch and its level over the last 5 s of the medley; a move whose settled
  level goes the other way than the labels is counted as wrong-way and has no time.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import StratifiedGroupKFold

from training.evaluate import DIMENSIONS
from training.realmusic import QUADRANT_SIGNS

HOP_SECONDS = 0.5
WARMUP_SECONDS = 5.0
MEDLEY_PART_SECONDS = 20.0
MEDLEY_B_OFFSET_SECONDS = 5.0  # the second clip joins mid-music, as in a DJ set
SETTLE_HOPS = 10


def fold_indices(groups: Sequence[str], strata: Sequence[str], n_folds: int, seed: int) -> list[np.ndarray]:
    """Held-out item indices per fold; no group on both sides of a split."""
    splitter = StratifiedGroupKFold(n_splits=n_folds, shuffle=True, random_state=seed)
    return [test for _, test in splitter.split(np.zeros(len(groups)), list(strata), list(groups))]


def clip_estimate(per_hop: np.ndarray) -> np.ndarray:
    """Mean of the hops that end after the warm-up; [2]."""
    first = int(round(WARMUP_SECONDS / HOP_SECONDS))
    return per_hop[first:].mean(axis=0) if len(per_hop) > first else per_hop.mean(axis=0)


def rating_metrics(estimates: np.ndarray, labels: np.ndarray) -> dict[str, dict[str, float]]:
    out = {}
    for column, name in enumerate(DIMENSIONS):
        p, t = estimates[:, column].astype(np.float64), labels[:, column].astype(np.float64)
        covariance = ((p - p.mean()) * (t - t.mean())).mean()
        out[name] = {
            "rmse": float(np.sqrt(((p - t) ** 2).mean())),
            "pearson_r": float(covariance / (p.std() * t.std())) if p.std() > 0 else 0.0,
            "ccc": float(2 * covariance / (p.var() + t.var() + (p.mean() - t.mean()) ** 2)),
            "spread_ratio": float(p.std() / t.std()),
        }
    return out


def quadrant_of(estimates: np.ndarray) -> np.ndarray:
    """Russell quadrant 1..4 of each (valence, arousal)."""
    by_signs = {signs: quadrant for quadrant, signs in QUADRANT_SIGNS.items()}
    return np.array([by_signs[(1 if v >= 0 else -1, 1 if a >= 0 else -1)] for v, a in estimates])


def quadrant_metrics(estimates: np.ndarray, quadrants: np.ndarray) -> dict[str, float]:
    positive_valence = np.isin(quadrants, (1, 4))
    positive_arousal = np.isin(quadrants, (1, 2))
    return {
        "quadrant_accuracy": float((quadrant_of(estimates) == quadrants).mean()),
        "valence_auc": float(roc_auc_score(positive_valence, estimates[:, 0])) if np.ptp(estimates[:, 0]) > 0 else 0.5,
        "arousal_auc": float(roc_auc_score(positive_arousal, estimates[:, 1])) if np.ptp(estimates[:, 1]) > 0 else 0.5,
    }


@dataclass(frozen=True)
class LoudnessBaseline:
    """Linear models on a clip's loudness alone (mean and std of its log RMS after the warm-up)."""

    ratings: Ridge
    valence_sign: LogisticRegression
    arousal_sign: LogisticRegression

    @staticmethod
    def fit(rated_loudness: np.ndarray, ratings: np.ndarray, quadrant_loudness: np.ndarray, quadrants: np.ndarray) -> "LoudnessBaseline":
        return LoudnessBaseline(
            Ridge(alpha=1.0).fit(rated_loudness, ratings),
            LogisticRegression().fit(quadrant_loudness, np.isin(quadrants, (1, 4))),
            LogisticRegression().fit(quadrant_loudness, np.isin(quadrants, (1, 2))),
        )

    def rate(self, loudness: np.ndarray) -> np.ndarray:
        return self.ratings.predict(loudness)

    def signs(self, loudness: np.ndarray) -> np.ndarray:
        """Estimates whose signs and order are the sign models' (probability - 0.5), [n, 2]."""
        return np.stack([self.valence_sign.predict_proba(loudness)[:, 1], self.arousal_sign.predict_proba(loudness)[:, 1]], axis=1) - 0.5


def medley_pairs(quadrants: np.ndarray, rng: np.random.Generator, per_direction: int) -> list[tuple[int, int]]:
    """(a, b) index pairs of opposite quadrants (1-3, 3-1, 2-4, 4-2), ``per_direction`` of each."""
    pairs = []
    for first, second in ((1, 3), (3, 1), (2, 4), (4, 2)):
        a_pool, b_pool = np.flatnonzero(quadrants == first), np.flatnonzero(quadrants == second)
        count = min(per_direction, len(a_pool), len(b_pool))
        pairs += list(zip(rng.choice(a_pool, count, replace=False).tolist(), rng.choice(b_pool, count, replace=False).tolist()))
    return pairs


def medley_audio(a: np.ndarray, b: np.ndarray, sample_rate: int) -> tuple[np.ndarray, int]:
    """The first 20 s of ``a`` then 20 s of ``b`` from its 5th second; and the hop index of the switch."""
    part = int(MEDLEY_PART_SECONDS * sample_rate)
    hop = int(HOP_SECONDS * sample_rate)
    first = a[: part - part % hop][: len(a) - len(a) % hop]
    offset = int(MEDLEY_B_OFFSET_SECONDS * sample_rate)
    second = b[offset : offset + part] if len(b) > offset + hop * 2 * SETTLE_HOPS else b[:part]
    return np.concatenate([first, second]), len(first) // hop


def reaction(per_hop: np.ndarray, switch_hop: int, quadrant_a: int, quadrant_b: int) -> list[tuple[str, float | None]]:
    """Per dimension: (name, seconds to cross halfway, or None when the move went the wrong way)."""
    out: list[tuple[str, float | None]] = []
    for column, name in enumerate(DIMENSIONS):
        before = per_hop[max(0, switch_hop - SETTLE_HOPS) : switch_hop, column].mean()
        after = per_hop[-SETTLE_HOPS:, column].mean()
        wanted = QUADRANT_SIGNS[quadrant_b][column] - QUADRANT_SIGNS[quadrant_a][column]
        if np.sign(after - before) != np.sign(wanted):
            out.append((name, None))
            continue
        halfway = (before + after) / 2
        crossed = np.flatnonzero((per_hop[switch_hop:, column] - halfway) * np.sign(wanted) >= 0)
        out.append((name, float((crossed[0] + 1) * HOP_SECONDS)))
    return out


def reaction_summary(moves: Sequence[tuple[str, float | None]]) -> dict[str, float | int]:
    times = [t for _, t in moves if t is not None]
    summary: dict[str, float | int] = {
        "moves": len(moves),
        "median_seconds": float(np.median(times)) if times else float("nan"),
        "wrong_way_share": float(1 - len(times) / len(moves)) if moves else float("nan"),
    }
    for name in DIMENSIONS:
        mine = [t for n, t in moves if n == name]
        ok = [t for t in mine if t is not None]
        summary[f"{name}_median_seconds"] = float(np.median(ok)) if ok else float("nan")
        summary[f"{name}_wrong_way_share"] = float(1 - len(ok) / len(mine)) if mine else float("nan")
    return summary

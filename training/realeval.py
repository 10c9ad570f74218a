"""Evaluation on real recordings: folds by artist, clip-level figures, baselines and reaction times.

- Folds: scikit-learn's ``StratifiedGroupKFold``, grouped by artist (Emotify: by clip; VGMIDI:
  by piece, so all renders of a piece fall together) and stratified by set and genre or quadrant.
- A clip's estimate is the mean of its hops that end after ``WARMUP_SECONDS``, streamed from
  a cold state.
- MUSIFEAST-17: RMSE, Pearson r, CCC and the spread (standard deviation of the estimates over
  that of the labels) per dimension. 4Q: quadrant accuracy (the signs of the estimate), the
  recall of each quadrant and the confusion matrix, the AUC of valence for Q1+Q4 against
  Q2+Q3 and of arousal for Q1+Q2 against Q3+Q4. MIREX-like: the AUC of valence for clusters
  2+4 against 3+5 and for 2 against 3, and of arousal for 1+5 against 3.
- Every set: the share of clips whose estimate is below 0 in each dimension, beside the
  labels' share (MUSIFEAST-17: ratings below 3; 4Q and MIREX-like: the signs they imply), so
  a model that leans to one side shows it.
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
from training.realmusic import CLUSTER_SIGNS, QUADRANT_SIGNS

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
            "pearson_r": float(covariance / (p.std() * t.std())) if p.std() > 0 and t.std() > 0 else 0.0,
            "ccc": float(2 * covariance / (p.var() + t.var() + (p.mean() - t.mean()) ** 2)),
            "spread_ratio": float(p.std() / t.std()) if t.std() > 0 else float("nan"),
            "below_zero_share": float((p < 0).mean()),
            "labels_below_zero_share": float((t < 0).mean()),
        }
    return out


def quadrant_of(estimates: np.ndarray) -> np.ndarray:
    """Russell quadrant 1..4 of each (valence, arousal)."""
    by_signs = {signs: quadrant for quadrant, signs in QUADRANT_SIGNS.items()}
    return np.array([by_signs[(1 if v >= 0 else -1, 1 if a >= 0 else -1)] for v, a in estimates])


def zero_points(estimates: Sequence[np.ndarray], signs: Sequence[np.ndarray]) -> np.ndarray:
    """Per dimension, the level below which the same share of clip estimates falls as of labels below 0; [2].

    ``signs`` are each clip's label signs in {-1, 0, +1} (0: the label fixes none). Subtracting the
    result from a model's output moves its zero so that, pooled over the sets given, it reads as
    many clips negative as the labels do. It moves no ranking: the AUCs and r stay as they are.
    """
    estimate, sign = np.stack(estimates), np.stack(signs)
    out = np.zeros(2)
    for column in range(2):
        signed = sign[:, column] != 0
        out[column] = np.quantile(estimate[signed, column], (sign[signed, column] < 0).mean())
    return out


def auc(positive: np.ndarray, scores: np.ndarray) -> float:
    """ROC AUC of ``scores`` for ``positive`` against the rest; 0.5 when the scores are all equal or one class is empty."""
    if np.ptp(scores) == 0 or positive.all() or not positive.any():
        return 0.5
    return float(roc_auc_score(positive, scores))


def below_zero(estimates: np.ndarray, signs: np.ndarray) -> dict[str, float]:
    """Per dimension, the share of estimates below 0 and of labels with a negative sign, over the clips whose label has a sign."""
    out = {}
    for column, name in enumerate(DIMENSIONS):
        signed = signs[:, column] != 0
        out[f"{name}_below_zero_share"] = float((estimates[signed, column] < 0).mean()) if signed.any() else float("nan")
        out[f"{name}_labels_below_zero_share"] = float((signs[signed, column] < 0).mean()) if signed.any() else float("nan")
    return out


def quadrant_metrics(estimates: np.ndarray, quadrants: np.ndarray) -> dict:
    """Accuracy, AUCs, each quadrant's recall, the confusion matrix (rows: labels Q1..Q4, columns: estimates) and the below-zero shares."""
    read = quadrant_of(estimates)
    confusion = [[int(((quadrants == label) & (read == estimate)).sum()) for estimate in range(1, 5)] for label in range(1, 5)]
    recall = {f"Q{q}": float((read[quadrants == q] == q).mean()) if (quadrants == q).any() else float("nan") for q in range(1, 5)}
    return {
        "quadrant_accuracy": float((read == quadrants).mean()),
        "valence_auc": auc(np.isin(quadrants, (1, 4)), estimates[:, 0]),
        "arousal_auc": auc(np.isin(quadrants, (1, 2)), estimates[:, 1]),
        "recall": recall,
        "lowest_recall": float(np.nanmin(list(recall.values()))),
        "confusion": confusion,
        **below_zero(estimates, np.array([QUADRANT_SIGNS[int(q)] for q in quadrants])),
    }


def cluster_metrics(estimates: np.ndarray, clusters: np.ndarray) -> dict[str, float]:
    """MIREX-like clusters: the AUCs their words allow (valence 2+4 against 3+5 and 2 against 3; arousal 1+5 against 3) and the below-zero shares."""
    valence_pair = np.isin(clusters, (2, 4, 3, 5))
    two_three = np.isin(clusters, (2, 3))
    arousal_pair = np.isin(clusters, (1, 5, 3))
    return {
        "valence_auc_24_35": auc(np.isin(clusters[valence_pair], (2, 4)), estimates[valence_pair, 0]),
        "valence_auc_2_3": auc(clusters[two_three] == 2, estimates[two_three, 0]),
        "arousal_auc_15_3": auc(np.isin(clusters[arousal_pair], (1, 5)), estimates[arousal_pair, 1]),
        **below_zero(estimates, np.array([CLUSTER_SIGNS[int(c)] for c in clusters])),
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

"""Mixed training over every labelled set at once, for the large head and the small student.

One ``Item`` is one recording with whatever labels it has:

- a rated clip (MUSIFEAST-17): clip-level valence and arousal, a regression target on every
  hop after the warm-up;
- a quadrant clip (4Q): only the signs, a logistic loss on ``SIGN_SCALE * estimate`` at every
  hop, and optionally (``clip_sign_weight``) on the mean of the crop's hops from that clip,
  which is what a clip's estimate is: single hops may then disagree where the music does;
- a MIREX-like clip: the same sign losses on the dimensions its cluster fixes a sign for
  (``CLUSTER_SIGNS``), weighted by ``cluster_weight`` against 4Q's;
- an Emotify clip: the nine GEMS proportions, a target of the auxiliary head (training only);
- a VGMIDI render: per-hop valence and arousal, the only labels that change within a piece;
- any of them may carry a teacher's per-hop estimate, a distillation target on every hop,
  and the pretrained tagger's per-hop MSD tag probabilities, the target of an auxiliary
  output of the student (training only): a richer signal than two numbers a hop.

Crops start from a cold state, as a stream can. A ``medley_share`` of the crops are two
half-crops of different items spliced together, with each half keeping its own labels, so
that the dynamics after a change of music are trained on purpose; clip-level labels are
not scored in the ``SWITCH_GRACE_HOPS`` after a splice.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np
import torch
from torch import Tensor, nn
from tqdm import tqdm

from training.musicnn import MSD_TAGS
from training.realmusic import GEMS, label_signs

WARMUP_HOPS = 4  # clip-level labels are not scored in a clip's first 2 s
SWITCH_GRACE_HOPS = 3
SIGN_SCALE = 4.0
CROP_PARTS = 2  # a crop is one clip or two spliced
LOSS_WEIGHTS = {"rating": 1.0, "hops": 0.5, "sign": 0.3, "clip_sign": 0.0, "gems": 0.5, "teacher": 1.0, "tags": 0.0}


@dataclass
class Item:
    """One recording's inputs (``rows_per_hop`` rows a hop) and labels."""

    item_id: str
    dataset: str
    group: str
    stratum: str
    inputs: np.ndarray
    va: np.ndarray | None = None
    quadrant: int | None = None
    gems: np.ndarray | None = None
    cluster: int | None = None  # MIREX-like mood cluster 1..5
    hop_labels: np.ndarray | None = None  # [n, 2] from first_hop
    first_hop: int = 0
    variant: str = ""
    teacher: np.ndarray | None = None  # [n_hops, 2]
    teacher_tags: np.ndarray | None = None  # [n_hops, 50] MSD tag probabilities

    def n_hops(self, rows_per_hop: int) -> int:
        return len(self.inputs) // rows_per_hop


@dataclass(frozen=True)
class MixedConfig:
    epochs: int = 20
    patience: int = 5
    batch_size: int = 32
    crop_hops: int = 32
    learning_rate: float = 2e-3
    cosine: bool = False  # the learning rate falls to 0 along a half cosine over ``epochs`` (else constant)
    weight_decay: float = 1e-3
    medley_share: float = 0.3
    hop_weight: float = LOSS_WEIGHTS["hops"]  # of VGMIDI's time-continuous labels, against the clip-level ones
    rating_weight: float = LOSS_WEIGHTS["rating"]  # of MUSIFEAST-17's clip ratings at every hop
    sign_weight: float = LOSS_WEIGHTS["sign"]  # of 4Q's signs at every hop
    clip_sign_weight: float = LOSS_WEIGHTS["clip_sign"]  # of 4Q's signs on the mean of a crop's hops from one clip
    cluster_weight: float = 1.0  # of a MIREX-like cluster's signs, against a 4Q quadrant's, in both sign losses
    # Learn a (valence, arousal) offset between MUSIFEAST-17's rating scale and the model's zero, which
    # is then 4Q's quadrant boundary (and VGMIDI's). Training only: the exported model has none.
    rating_offset: bool = False
    teacher_weight: float = LOSS_WEIGHTS["teacher"]  # of the teacher's per-hop estimates (distillation)
    tags_weight: float = LOSS_WEIGHTS["tags"]  # of the tagger's per-hop tag probabilities (student only)
    seed: int = 0

    def loss_weights(self) -> dict[str, float]:
        return {
            **LOSS_WEIGHTS,
            "rating": self.rating_weight,
            "hops": self.hop_weight,
            "sign": self.sign_weight,
            "clip_sign": self.clip_sign_weight,
            "teacher": self.teacher_weight,
            "tags": self.tags_weight,
        }


@dataclass
class Targets:
    va: Tensor  # [b, hops, 2]
    va_mask: Tensor  # [b, hops] rated clips
    hop_mask: Tensor  # [b, hops] VGMIDI
    sign: Tensor  # [b, hops, 2] in {0, 1}
    sign_mask: Tensor  # [b, hops, 2]: per dimension, as a MIREX cluster may fix one sign only
    part: Tensor  # [b, hops] which part of the crop (0 or 1: a medley's second clip) each hop is from
    gems: Tensor  # [b, hops, 9]
    gems_mask: Tensor
    teacher: Tensor  # [b, hops, 2]
    teacher_mask: Tensor
    tags: Tensor  # [b, hops, 50]
    tags_mask: Tensor


@dataclass
class History:
    train_loss: list[float] = field(default_factory=list)
    val_loss: list[float] = field(default_factory=list)
    learning_rate: list[float] = field(default_factory=list)  # during each epoch
    best_epoch: int = -1
    rating_offset: list[float] | None = None  # the learned (valence, arousal) offset of the ratings, at the best epoch


# A head maps inputs [b, hops * rows, d] (from a cold state) to (va [b, hops, 2], auxiliary logits by
# name: "gems" [b, hops, 9], "tags" [b, hops, 50]; each only where the head has that output).
HeadRun = Callable[[Tensor], tuple[Tensor, dict[str, Tensor]]]


def _fill(item: Item, targets: dict[str, np.ndarray], row: int, at: int, start: int, count: int, cluster_weight: float) -> None:
    """Labels of ``item``'s hops [start, start + count) into crop positions [at, at + count)."""
    signs = label_signs(item.quadrant, item.cluster)
    sign_weight = cluster_weight if item.cluster is not None else 1.0
    for k in range(count):
        hop, position = start + k, at + k
        if item.teacher is not None and hop < len(item.teacher):
            targets["teacher"][row, position] = item.teacher[hop]
            targets["teacher_mask"][row, position] = 1
        if item.teacher_tags is not None and hop < len(item.teacher_tags):
            targets["tags"][row, position] = item.teacher_tags[hop]
            targets["tags_mask"][row, position] = 1
        if item.hop_labels is not None and item.first_hop <= hop < item.first_hop + len(item.hop_labels):
            targets["va"][row, position] = item.hop_labels[hop - item.first_hop]
            targets["hop_mask"][row, position] = 1
        clip_level = min(hop, at + k) >= WARMUP_HOPS and (at == 0 or k >= SWITCH_GRACE_HOPS)
        if not clip_level:
            continue
        if item.va is not None:
            targets["va"][row, position] = item.va
            targets["va_mask"][row, position] = 1
        if signs is not None:
            targets["sign"][row, position] = (signs > 0).astype(np.float32)
            targets["sign_mask"][row, position] = sign_weight * (signs != 0)
        if item.gems is not None:
            targets["gems"][row, position] = item.gems
            targets["gems_mask"][row, position] = 1


def make_batch(
    items: Sequence[Item], pieces: Sequence[list[tuple[int, int, int]]], crop_hops: int, rows_per_hop: int, pad_row: np.ndarray, cluster_weight: float = 1.0
) -> tuple[Tensor, Targets]:
    """Inputs [b, crop_hops * rows, d] and targets; each crop is a list of (item, first hop, hops)."""
    width = pad_row.shape[-1]
    inputs = np.broadcast_to(pad_row, (len(pieces), crop_hops * rows_per_hop, width)).copy()
    shapes = {"va": 2, "sign": 2, "sign_mask": 2, "gems": len(GEMS), "teacher": 2, "tags": len(MSD_TAGS)}
    targets = {name: np.zeros((len(pieces), crop_hops, n), np.float32) for name, n in shapes.items()}
    for mask in ("va_mask", "hop_mask", "gems_mask", "teacher_mask", "tags_mask"):
        targets[mask] = np.zeros((len(pieces), crop_hops), np.float32)
    targets["part"] = np.zeros((len(pieces), crop_hops), np.float32)
    for row, crop in enumerate(pieces):
        at = 0
        for part, (index, start, count) in enumerate(crop):
            item = items[index]
            inputs[row, at * rows_per_hop : (at + count) * rows_per_hop] = item.inputs[start * rows_per_hop : (start + count) * rows_per_hop]
            _fill(item, targets, row, at, start, count, cluster_weight)
            targets["part"][row, at : at + count] = part
            at += count
    tensors = {name: torch.from_numpy(value) for name, value in targets.items()}
    return torch.from_numpy(inputs.astype(np.float32)), Targets(**tensors)


def draw_crops(items: Sequence[Item], config: MixedConfig, rows_per_hop: int, rng: np.random.Generator) -> list[list[tuple[int, int, int]]]:
    """One crop per item an epoch: a random stretch of it, or (medley) its first half spliced to another item."""
    crops = []
    for index, item in enumerate(items):
        n = item.n_hops(rows_per_hop)
        if rng.random() < config.medley_share and len(items) > 1:
            half = config.crop_hops // 2
            other = int(rng.integers(len(items) - 1))
            other += other >= index
            m = items[other].n_hops(rows_per_hop)
            first = (index, int(rng.integers(0, max(n - half, 0) + 1)), min(half, n))
            second_start = int(rng.integers(min(WARMUP_HOPS, max(m - half, 0)), max(m - half, 0) + 1)) if m > half else 0
            crops.append([first, (other, second_start, min(half, m))])
        else:
            count = min(config.crop_hops, n)
            crops.append([(index, int(rng.integers(0, n - count + 1)), count)])
    order = rng.permutation(len(crops))
    return [crops[i] for i in order]


def mixed_loss(va: Tensor, aux: dict[str, Tensor], targets: Targets, weights: dict[str, float] = LOSS_WEIGHTS, rating_offset: Tensor | None = None) -> Tensor:
    """Weighted sum of the per-kind losses, each averaged over the hops where it applies.

    ``rating_offset`` [2], if given, is added to the estimate where it is scored against a clip rating.
    """

    def masked_mean(values: Tensor, mask: Tensor) -> Tensor:
        return (values * mask).sum() / mask.sum().clamp(min=1.0)

    squared = (va - targets.va).square().mean(dim=-1)
    rated = squared if rating_offset is None else (va + rating_offset - targets.va).square().mean(dim=-1)
    loss = weights["rating"] * masked_mean(rated, targets.va_mask)
    loss = loss + weights["hops"] * masked_mean(squared, targets.hop_mask)
    sign = nn.functional.binary_cross_entropy_with_logits(SIGN_SCALE * va, targets.sign, reduction="none")
    loss = loss + weights["sign"] * masked_mean(sign, targets.sign_mask)
    if weights["clip_sign"]:
        loss = loss + weights["clip_sign"] * clip_sign_loss(va, targets)
    teacher = (va - targets.teacher).square().mean(dim=-1)
    loss = loss + weights["teacher"] * masked_mean(teacher, targets.teacher_mask)
    if "gems" in aux:
        gems = (torch.sigmoid(aux["gems"]) - targets.gems).square().mean(dim=-1)
        loss = loss + weights["gems"] * masked_mean(gems, targets.gems_mask)
    if "tags" in aux:
        tags = nn.functional.binary_cross_entropy_with_logits(aux["tags"], targets.tags, reduction="none").mean(dim=-1)
        loss = loss + weights["tags"] * masked_mean(tags, targets.tags_mask)
    return loss


def clip_sign_loss(va: Tensor, targets: Targets) -> Tensor:
    """The sign loss on the mean estimate of each crop part's scored hops, per dimension, averaged over the (part, dimension) pairs that have any, by their sign weights."""
    scored_hops = (targets.sign_mask > 0).float()  # [b, hops, 2]
    in_part = nn.functional.one_hot(targets.part.long(), CROP_PARTS).float()  # [b, hops, parts]
    counts = torch.einsum("bhp,bhd->bpd", in_part, scored_hops)  # [b, parts, 2]
    mean_va = torch.einsum("bhp,bhd->bpd", in_part, va * scored_hops) / counts.clamp(min=1.0)
    sign = torch.einsum("bhp,bhd->bpd", in_part, targets.sign * scored_hops) / counts.clamp(min=1.0)  # constant within a part
    weight = torch.einsum("bhp,bhd->bpd", in_part, targets.sign_mask) / counts.clamp(min=1.0)  # a part's sign weight
    losses = nn.functional.binary_cross_entropy_with_logits(SIGN_SCALE * mean_va, sign, reduction="none")
    weight = weight * (counts > 0).float()
    return (losses * weight).sum() / weight.sum().clamp(min=1e-6)


def train_mixed(
    module: nn.Module,
    run: HeadRun,
    train: Sequence[Item],
    val: Sequence[Item],
    config: MixedConfig,
    *,
    rows_per_hop: int,
    pad_row: np.ndarray,
    desc: str,
) -> History:
    """Train ``module`` in place (AdamW, early stopping on the validation loss); it ends with its best epoch's weights."""
    torch.manual_seed(config.seed)
    rng = np.random.default_rng(config.seed)
    offset = nn.Parameter(torch.zeros(2)) if config.rating_offset else None
    groups: list[dict] = [{"params": [p for p in module.parameters() if p.requires_grad]}]
    if offset is not None:
        groups.append({"params": [offset], "weight_decay": 0.0})
    optimizer = torch.optim.AdamW(groups, lr=config.learning_rate, weight_decay=config.weight_decay)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=config.epochs) if config.cosine else None
    val_crops = draw_crops(val, MixedConfig(**{**config.__dict__, "seed": config.seed + 99}), rows_per_hop, np.random.default_rng(config.seed + 99))
    history = History()
    best_state, best_loss, stale = copy.deepcopy(module.state_dict()), float("inf"), 0
    best_offset = None
    for epoch in range(config.epochs):
        module.train()
        history.learning_rate.append(float(optimizer.param_groups[0]["lr"]))
        crops = draw_crops(train, config, rows_per_hop, rng)
        losses = []
        for start in tqdm(range(0, len(crops), config.batch_size), desc=f"{desc} epoch {epoch + 1}", unit="batch", leave=False):
            inputs, targets = make_batch(train, crops[start : start + config.batch_size], config.crop_hops, rows_per_hop, pad_row, config.cluster_weight)
            va, aux = run(inputs)
            loss = mixed_loss(va, aux, targets, config.loss_weights(), offset)
            optimizer.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(module.parameters(), 1.0)
            optimizer.step()
            losses.append(loss.item())
        if schedule is not None:
            schedule.step()
        val_loss = evaluate_loss(module, run, val, val_crops, config, rows_per_hop, pad_row, offset)
        history.train_loss.append(float(np.mean(losses)))
        history.val_loss.append(val_loss)
        offset_note = "" if offset is None else f", rating offset {offset.detach().numpy().round(3).tolist()}"
        tqdm.write(f"{desc} epoch {epoch + 1}: train loss {history.train_loss[-1]:.4f}, val loss {val_loss:.4f}{offset_note}")
        if val_loss < best_loss - 1e-4:
            best_state, best_loss, stale, history.best_epoch = copy.deepcopy(module.state_dict()), val_loss, 0, epoch
            best_offset = None if offset is None else offset.detach().tolist()
        else:
            stale += 1
            if stale >= config.patience:
                break
    module.load_state_dict(best_state)
    module.eval()
    history.rating_offset = best_offset
    return history


@torch.no_grad()
def evaluate_loss(
    module: nn.Module,
    run: HeadRun,
    items: Sequence[Item],
    crops: list[list[tuple[int, int, int]]],
    config: MixedConfig,
    rows_per_hop: int,
    pad_row: np.ndarray,
    rating_offset: Tensor | None = None,
) -> float:
    module.eval()
    total, batches = 0.0, 0
    for start in range(0, len(crops), config.batch_size):
        inputs, targets = make_batch(items, crops[start : start + config.batch_size], config.crop_hops, rows_per_hop, pad_row, config.cluster_weight)
        va, aux = run(inputs)
        total += mixed_loss(va, aux, targets, config.loss_weights(), rating_offset).item()
        batches += 1
    return total / max(batches, 1)

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from training.export import ZeroPoint
from training.large import READOUT_SIGN_LEVEL, LargeEnsemble, LargeHead, LinearReadout, fit_readout
from training.frontend import FRAMES_PER_HOP, N_FEATURES
from training.real import Entry, train_large, train_student
from training.realmusic import QUADRANT_SIGNS
from training.mixed import SIGN_SCALE, Item, MixedConfig, clip_sign_loss, draw_crops, make_batch, mixed_loss, train_mixed
from training.realeval import (
    clip_estimate,
    fold_indices,
    medley_audio,
    medley_pairs,
    quadrant_metrics,
    quadrant_of,
    rating_metrics,
    reaction,
    reaction_summary,
    zero_points,
)


def test_folds_keep_every_artist_on_one_side_and_cover_every_item() -> None:
    groups = [f"artist:{i // 3}" for i in range(60)]
    strata = [f"4q:Q{1 + i % 4}" for i in range(60)]
    folds = fold_indices(groups, strata, 5, seed=0)
    assert sorted(np.concatenate(folds).tolist()) == list(range(60))
    for test in folds:
        held_out = {groups[i] for i in test}
        assert not held_out & {groups[i] for i in range(60) if i not in set(test)}


def test_a_clip_estimate_skips_the_first_5_s() -> None:
    per_hop = np.zeros((20, 2))
    per_hop[:10] = 1.0
    np.testing.assert_allclose(clip_estimate(per_hop), [0.0, 0.0])


def test_rating_metrics_on_known_values() -> None:
    labels = np.array([[-0.5, 0.2], [0.0, 0.4], [0.5, 0.6]])
    halved = labels * 0.5
    m = rating_metrics(halved, labels)
    assert m["valence"]["pearson_r"] == pytest.approx(1.0)
    assert m["valence"]["spread_ratio"] == pytest.approx(0.5)
    assert m["valence"]["rmse"] == pytest.approx(np.sqrt(np.mean((labels[:, 0] * 0.5) ** 2)))
    assert m["arousal"]["ccc"] < 1.0


def test_quadrants_and_aucs() -> None:
    estimates = np.array([[0.3, 0.3], [-0.3, 0.3], [-0.3, -0.3], [0.3, -0.3], [0.4, 0.2]])
    assert quadrant_of(estimates).tolist() == [1, 2, 3, 4, 1]
    m = quadrant_metrics(estimates, np.array([1, 2, 3, 4, 2]))
    assert m["quadrant_accuracy"] == pytest.approx(0.8)
    assert m["arousal_auc"] == pytest.approx(1.0)
    assert m["valence_auc"] < 1.0


def test_reaction_time_is_the_first_hop_past_halfway_and_wrong_ways_have_none() -> None:
    switch = 40
    per_hop = np.zeros((80, 2))
    per_hop[:switch] = [0.5, 0.5]  # Q1
    ramp = np.clip(np.arange(40) / 8, 0, 1)  # reaches the new level after 4 s
    per_hop[switch:, 0] = 0.5 - ramp  # valence falls to -0.5: halfway at 0, crossed at ramp 0.5 (hop 4: 2.5 s)
    per_hop[switch:, 1] = 0.5 + 0.1 * ramp  # arousal rises, but Q3 needs it to fall: wrong way
    (valence, v_time), (arousal, a_time) = reaction(per_hop, switch, 1, 3)
    assert (valence, v_time) == ("valence", 2.5)
    assert (arousal, a_time) == ("arousal", None)
    summary = reaction_summary([(valence, v_time), (arousal, a_time)])
    assert summary["median_seconds"] == 2.5 and summary["wrong_way_share"] == 0.5


def test_medleys_pair_opposite_quadrants_and_splice_at_a_hop() -> None:
    quadrants = np.array([1, 2, 3, 4] * 5)
    pairs = medley_pairs(quadrants, np.random.default_rng(0), per_direction=3)
    assert len(pairs) == 12
    assert {(int(quadrants[a]), int(quadrants[b])) for a, b in pairs} == {(1, 3), (3, 1), (2, 4), (4, 2)}
    a, b = np.ones(30 * 16000), -np.ones(30 * 16000)
    audio, switch = medley_audio(a, b, 16000)
    assert switch == 40 and len(audio) == 80 * 8000
    assert audio[switch * 8000 - 1] == 1 and audio[switch * 8000] == -1


def items_for_training(rng: np.random.Generator) -> list[Item]:
    """Embeddings whose first column carries the valence: something a head can learn."""
    items = []
    for k in range(24):
        valence = (k % 4) / 1.5 - 1.0
        inputs = np.zeros((30, 250), np.float32)
        inputs[:, :10] = rng.standard_normal((30, 10))
        inputs[:, 0] = valence * 3 + 0.1 * rng.standard_normal(30)
        kind = k % 3
        items.append(
            Item(f"i{k}", "x", f"g{k}", "s", inputs,
                 va=np.array([valence, 0.0], np.float32) if kind == 0 else None,
                 quadrant=(1 if valence > 0 else 2) if kind == 1 else None,
                 hop_labels=np.tile([[valence, 0.0]], (30, 1)).astype(np.float32) if kind == 2 else None)
        )
    return items


def test_each_label_kind_reaches_its_loss_only_where_it_applies() -> None:
    items = items_for_training(np.random.default_rng(0))
    crops = [[(0, 0, 10)], [(1, 0, 10)], [(2, 0, 10)], [(0, 0, 5), (1, 10, 5)]]
    _, targets = make_batch(items, crops, 10, 1, np.zeros((1, 250), np.float32))
    assert targets.va_mask[0, :4].sum() == 0 and targets.va_mask[0, 4:].all()  # rated: after the 2 s warm-up
    assert targets.sign_mask[1, 4:].all() and targets.va_mask[1].sum() == 0  # quadrant: signs only
    assert targets.hop_mask[2].all()  # VGMIDI: every hop
    assert targets.sign_mask[3, 5:8].sum() == 0 and targets.sign_mask[3, 8:].all()  # grace after a splice
    va = torch.zeros(4, 10, 2, requires_grad=True)
    mixed_loss(va, {}, targets).backward()
    assert va.grad is not None and va.grad[0, :4].abs().sum() == 0 and va.grad[0, 4:].abs().sum() > 0


def test_the_clip_sign_loss_scores_each_clips_mean_estimate_only() -> None:
    items = [Item("q1", "4q", "a", "s", np.zeros((20, 3), np.float32), quadrant=1), Item("q3", "4q", "b", "s", np.zeros((20, 3), np.float32), quadrant=3)]
    _, targets = make_batch(items, [[(0, 0, 8), (1, 0, 8)]], 16, 1, np.zeros((1, 3), np.float32))
    assert targets.part[0].tolist() == [0] * 8 + [1] * 8
    steady = torch.zeros(1, 16, 2)
    steady[0, :8], steady[0, 8:] = 0.2, -0.2  # Q1 then Q3, every hop the right way
    swinging = steady.clone()
    swinging[0, 4:8:2] += 0.6  # scored hops of the first clip swing both ways around the same mean
    swinging[0, 5:8:2] -= 0.6
    swinging[0, :4] = -1.0  # warm-up hops are not scored
    assert torch.isclose(clip_sign_loss(swinging, targets), clip_sign_loss(steady, targets))
    assert mixed_loss(swinging, {}, targets, {**MixedConfig().loss_weights(), "clip_sign": 0.0}) > mixed_loss(steady, {}, targets, {**MixedConfig().loss_weights(), "clip_sign": 0.0})
    wrong = -steady
    # softplus(x) - softplus(-x) = x, with x = SIGN_SCALE * 0.2 on every part and dimension
    assert torch.isclose(clip_sign_loss(wrong, targets) - clip_sign_loss(steady, targets), torch.tensor(SIGN_SCALE * 0.2))
    assert mixed_loss(steady, {}, targets, MixedConfig(clip_sign_weight=1.0).loss_weights()) > mixed_loss(steady, {}, targets, MixedConfig().loss_weights())


def test_a_mirex_cluster_scores_only_the_signs_it_implies_weighted_against_4q() -> None:
    zeros = np.zeros((20, 3), np.float32)
    items = [Item("rousing", "mirexlike", "a", "C1", zeros, cluster=1), Item("sad", "mirexlike", "b", "C3", zeros, cluster=3),
             Item("q3", "4q", "c", "Q3", zeros, quadrant=3)]  # fmt: skip
    _, targets = make_batch(items, [[(0, 0, 10)], [(1, 0, 10)], [(2, 0, 10)]], 10, 1, np.zeros((1, 3), np.float32), cluster_weight=0.5)
    assert targets.sign_mask[0, 4:, 0].sum() == 0 and (targets.sign_mask[0, 4:, 1] == 0.5).all()  # cluster 1: arousal only
    assert targets.sign[0, 4:, 1].all()  # ... and it is high
    assert (targets.sign_mask[1, 4:] == 0.5).all() and targets.sign[1, 4:].sum() == 0  # cluster 3: both low
    assert (targets.sign_mask[2, 4:] == 1.0).all()  # 4Q at full weight
    assert targets.sign_mask[:, :4].sum() == 0  # warm-up
    va = torch.zeros(3, 10, 2, requires_grad=True)
    weights = {**MixedConfig().loss_weights(), "clip_sign": 1.0}
    mixed_loss(va, {}, targets, weights).backward()
    assert va.grad is not None and va.grad[0, :, 0].abs().sum() == 0 and va.grad[0, 4:, 1].abs().sum() > 0
    # the 4Q clip weighs twice a cluster-3 clip of the same signs
    assert torch.isclose(va.grad[2, 4:].sum(), 2 * va.grad[1, 4:].sum())


def test_zero_points_match_the_labels_share_below_zero_and_keep_the_ranking() -> None:
    rng = np.random.default_rng(0)
    truth = rng.standard_normal((400, 2))
    estimates = list(0.5 * truth + 0.3 + 0.1 * rng.standard_normal((400, 2)))  # leans positive, as rtmer-default did
    signs = list(np.sign(truth))
    signs[:100] = [np.array([0.0, s[1]]) for s in signs[:100]]  # some labels fix the arousal only
    offset = zero_points(estimates, signs)
    moved, sign = np.stack(estimates) - offset, np.stack(signs)
    for column in range(2):
        signed = sign[:, column] != 0
        assert abs((moved[signed, column] < 0).mean() - (sign[signed, column] < 0).mean()) < 0.01
    assert np.all(offset > 0.2)  # the lean found
    assert quadrant_metrics(moved[100:], quadrant_of(truth[100:]))["valence_auc"] == quadrant_metrics(np.stack(estimates[100:]), quadrant_of(truth[100:]))["valence_auc"]


def test_zero_point_moves_a_streaming_models_output_and_clips_it() -> None:
    class Fixed(torch.nn.Module):
        state_size = 3

        def forward(self, audio: torch.Tensor, state: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            return torch.tensor([[0.5, -0.95]]).expand(audio.shape[0], 2), state + 1

    model = ZeroPoint(Fixed(), [0.2, 0.1])
    va, state = model(torch.zeros(2, 8000), torch.zeros(2, 3))
    torch.testing.assert_close(va, torch.tensor([[0.3, -1.0]] * 2))
    assert model.state_size == 3 and state.eq(1).all()


def test_medley_crops_splice_two_items() -> None:
    items = items_for_training(np.random.default_rng(0))
    crops = draw_crops(items, MixedConfig(crop_hops=10, medley_share=1.0), 1, np.random.default_rng(0))
    assert len(crops) == len(items) and all(len(crop) == 2 and crop[0][0] != crop[1][0] for crop in crops)


def test_mixed_training_learns_a_signal() -> None:
    rng = np.random.default_rng(1)
    items = items_for_training(rng)
    head = LargeHead(width=16, hidden=8, dropout=0.0)
    head.fit_normalizer(np.concatenate([item.inputs for item in items]))
    config = MixedConfig(epochs=25, patience=25, batch_size=8, crop_hops=12, learning_rate=1e-2, medley_share=0.0)
    history = train_mixed(head, head.run_cold, items[:20], items[20:], config, rows_per_hop=1, pad_row=np.zeros((1, 250), np.float32), desc="test")
    assert history.val_loss[history.best_epoch] < history.val_loss[0]
    with torch.no_grad():
        va, _ = head.run_cold(torch.from_numpy(np.stack([items[k].inputs for k in (0, 3)])))
    assert va[0, 6:, 0].mean() < va[1, 6:, 0].mean()  # valence -1 below valence +1


def test_a_learned_rating_offset_absorbs_a_shifted_rating_scale() -> None:
    rng = np.random.default_rng(2)
    items = items_for_training(rng)
    for item in items:
        item.quadrant = None  # the time-continuous labels set the zero
        if item.va is not None:
            item.va = item.va + np.array([0.3, -0.2], np.float32)  # the rated set's zero sits elsewhere
    head = LargeHead(width=16, hidden=8, dropout=0.0)
    head.fit_normalizer(np.concatenate([item.inputs for item in items]))
    config = MixedConfig(epochs=40, patience=40, batch_size=8, crop_hops=12, learning_rate=1e-2, medley_share=0.0, rating_offset=True)
    history = train_mixed(head, head.run_cold, items[:20], items[20:], config, rows_per_hop=1, pad_row=np.zeros((1, 250), np.float32), desc="test")
    assert history.rating_offset is not None
    np.testing.assert_allclose(history.rating_offset, [0.3, -0.2], atol=0.1)
    assert MixedConfig().rating_offset is False and train_mixed(
        head, head.run_cold, items[:20], items[20:], MixedConfig(epochs=1), rows_per_hop=1, pad_row=np.zeros((1, 250), np.float32), desc="test"
    ).rating_offset is None


def test_the_readout_is_the_ridge_line_through_the_clip_means_and_the_vgmidi_hops() -> None:
    """The first two columns of the embeddings are 3 x (valence, arousal): rated and 4Q clips (4Q: its signs at the
    readout's level) by their clip means, VGMIDI renders hop by hop, their labels changing and starting at hop 3."""
    rng = np.random.default_rng(5)
    quadrant_of_signs = {signs: quadrant for quadrant, signs in QUADRANT_SIGNS.items()}
    items, wanted = [], []
    for k in range(1500):  # enough clips that the ridge's fixed penalty hardly shrinks the line
        kind, label = k % 3, rng.uniform(-1, 1, 2).astype(np.float32)
        inputs = rng.standard_normal((30, 250)).astype(np.float32)
        if kind == 2:
            hop_labels = rng.uniform(-1, 1, (27, 2)).astype(np.float32)
            inputs[3:, :2] = 3 * hop_labels + 0.1 * rng.standard_normal((27, 2))
            items.append(Item(f"v{k}", "vgmidi", f"g{k}", "s", inputs, hop_labels=hop_labels, first_hop=3))
            continue
        if kind == 1:
            label = (READOUT_SIGN_LEVEL * np.sign(label)).astype(np.float32)
        inputs[:, :2] = 3 * label + 0.1 * rng.standard_normal((30, 2))
        quadrant = quadrant_of_signs[tuple(int(x) for x in np.sign(label))] if kind == 1 else None
        items.append(Item(f"i{k}", "x", f"g{k}", "s", inputs, va=label if kind == 0 else None, quadrant=quadrant))
        wanted.append(label)
    readout = fit_readout(items)
    with torch.no_grad():
        per_hop = [readout(torch.from_numpy(item.inputs)).numpy() for item in items]
        assert float(readout(torch.full((1, 4, 250), 100.0)).abs().max()) == 1.0  # clamped to the contract's range
    clips = [k for k, item in enumerate(items) if item.hop_labels is None]
    np.testing.assert_allclose([clip_estimate(per_hop[k]) for k in clips], np.array(wanted), atol=0.1)
    vgmidi = [k for k, item in enumerate(items) if item.hop_labels is not None]
    np.testing.assert_allclose(np.concatenate([per_hop[k][3:] for k in vgmidi]), np.concatenate([items[k].hop_labels for k in vgmidi]), atol=0.2)


def test_the_readout_fits_a_mirex_cluster_only_on_the_dimension_it_fixes() -> None:
    rng = np.random.default_rng(2)
    items, wanted = [], []
    for k in range(1500):  # enough clips that the ridge's fixed penalty hardly shrinks the line
        label = rng.uniform(-1, 1, 2).astype(np.float32)
        inputs = rng.standard_normal((30, 250)).astype(np.float32)
        inputs[:, :2] = 3 * label + 0.1 * rng.standard_normal((30, 2))
        items.append(Item(f"r{k}", "musifeast17", f"g{k}", "s", inputs, va=label))
        wanted.append(label)
    for k in range(1500):  # rousing clips (cluster 1: high arousal) with strongly positive valence features
        inputs = rng.standard_normal((30, 250)).astype(np.float32)
        inputs[:, :2] = 3 * np.array([0.8, READOUT_SIGN_LEVEL]) + 0.1 * rng.standard_normal((30, 2))
        items.append(Item(f"m{k}", "mirexlike", f"h{k}", "C1", inputs, cluster=1))
    readout = fit_readout(items)
    with torch.no_grad():
        estimates = np.array([clip_estimate(readout(torch.from_numpy(item.inputs)).numpy()) for item in items])
    # were the cluster's valence taken as 0, the positive valences would be pulled down to it
    np.testing.assert_allclose(estimates[:1500], np.array(wanted), atol=0.1)
    np.testing.assert_allclose(estimates[1500:, 1], READOUT_SIGN_LEVEL, atol=0.1)


def test_the_ensemble_blends_the_heads_mean_with_the_readout_by_its_share() -> None:
    torch.manual_seed(0)
    heads = [LargeHead(width=8, hidden=4, dropout=0.0).eval() for _ in range(2)]
    readout = LinearReadout().eval()
    embeddings = torch.randn(1, 6, 250)
    blended = LargeEnsemble(heads, readout, 0.25).eval()
    with torch.no_grad():
        heads_mean, _ = LargeEnsemble(heads).run_cold(embeddings)
        va, _ = blended.run_cold(embeddings)
        torch.testing.assert_close(va, 0.75 * heads_mean + 0.25 * readout(embeddings))
    with pytest.raises(ValueError, match="readout_share=0.5 with no readout"):
        LargeEnsemble(heads, None, 0.5)
    with pytest.raises(ValueError, match="readout_share=0.0 with a readout"):
        LargeEnsemble(heads, readout, 0.0)


def test_the_same_config_trains_the_same_large_heads() -> None:
    """The initial weights come from the config's seed, not from wherever torch's generator happens to be."""
    items = items_for_training(np.random.default_rng(3))
    entries = [Entry(item, Path(f"{item.item_id}.wav"), item.inputs, np.zeros(2, np.float32)) for item in items]
    config = MixedConfig(epochs=2, batch_size=8, crop_hops=12, medley_share=0.0, seed=5)
    train, val = np.arange(20), np.arange(20, 24)
    first = train_large(entries, train, val, config, "a", n_heads=2).state_dict()
    torch.rand(7)  # the global generator moves on between the two
    second = train_large(entries, train, val, config, "b", n_heads=2).state_dict()
    assert first.keys() == second.keys() and all(torch.equal(first[key], second[key]) for key in first)
    other = train_large(entries, train, val, replace(config, seed=6), "c", n_heads=2).state_dict()
    assert not torch.equal(first["heads.0.dense.weight"], other["heads.0.dense.weight"])


def test_the_same_config_trains_the_same_student() -> None:
    rng = np.random.default_rng(4)
    items = [replace(item, inputs=np.repeat(item.inputs[:, :N_FEATURES], FRAMES_PER_HOP, axis=0)) for item in items_for_training(rng)]
    entries = [Entry(item, Path(f"{item.item_id}.wav"), None, np.zeros(2, np.float32)) for item in items]
    teacher = {item.item_id: rng.uniform(-0.5, 0.5, (30, 2)).astype(np.float32) for item in items}
    config = MixedConfig(epochs=1, batch_size=8, crop_hops=12, medley_share=0.0, seed=5)
    train, val = np.arange(20), np.arange(20, 24)
    first = train_student("crnn", entries, teacher, train, val, config, "a").state_dict()
    torch.rand(7)  # the global generator moves on between the two
    second = train_student("crnn", entries, teacher, train, val, config, "b").state_dict()
    assert first.keys() == second.keys() and all(torch.equal(first[key], second[key]) for key in first)
    other = train_student("crnn", entries, teacher, train, val, replace(config, seed=6), "c").state_dict()
    assert any(not torch.equal(first[key], other[key]) for key in first if first[key].is_floating_point())


@pytest.mark.parametrize("cosine", [False, True])
def test_the_learning_rate_is_constant_or_falls_along_a_half_cosine(cosine: bool) -> None:
    items = items_for_training(np.random.default_rng(2))
    head = LargeHead(width=8, hidden=4, dropout=0.0)
    head.fit_normalizer(np.concatenate([item.inputs for item in items]))
    config = MixedConfig(epochs=4, patience=4, batch_size=8, crop_hops=12, learning_rate=1e-2, medley_share=0.0, cosine=cosine)
    history = train_mixed(head, head.run_cold, items[:20], items[20:], config, rows_per_hop=1, pad_row=np.zeros((1, 250), np.float32), desc="test")
    expected = [1e-2 * (1 + np.cos(np.pi * epoch / 4)) / 2 for epoch in range(4)] if cosine else [1e-2] * 4
    np.testing.assert_allclose(history.learning_rate, expected, rtol=1e-6)

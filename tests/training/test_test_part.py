"""The fixed test part: a fifth of every set, split by artist across sets, made once and never moved."""

import json
from collections import Counter
from pathlib import Path

import pytest

from training.protocol import TEST_PART_FILE, choose_test_part, load_test_part, main, make_test_part
from training.realmusic import load_realmusic

SHARED = Path(__file__).parents[2] / ".." / "shared" / "data"


def test_the_test_part_is_a_fifth_of_each_stratum_and_never_splits_a_group() -> None:
    ids = [f"c{k}" for k in range(400)]
    groups = [f"artist:{k // 4}" for k in range(400)]  # four clips an artist
    strata = [f"set{k % 2}:Q{1 + (k // 8) % 4}" for k in range(400)]
    test = set(choose_test_part(ids, groups, strata, seed=1))
    assert 70 <= len(test) <= 90
    for stratum, count in Counter(s for i, s in zip(ids, strata) if i in test).items():
        assert 0.1 <= count / strata.count(stratum) <= 0.3, stratum
    tested_groups = {g for i, g in zip(ids, groups) if i in test}
    assert all(i in test for i, g in zip(ids, groups) if g in tested_groups)  # an artist is wholly in it or out of it
    assert choose_test_part(ids, groups, strata, seed=1) == sorted(test)  # the same every time


def test_an_existing_test_part_is_not_replaced_without_force(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "part.json"
    out.write_text('{"ids": ["a"]}')
    assert main(["make", "--out", str(out)]) == 2
    assert "exists; the test part is fixed once made" in capsys.readouterr().err
    assert load_test_part(out) == frozenset({"a"})


def test_the_committed_test_part_is_what_the_data_gives_and_keeps_artists_apart() -> None:
    if not (SHARED / "realmusic" / "mirexlike" / "labels.csv").is_file():
        pytest.skip(f"shared data not found at {SHARED}")
    committed = json.loads(TEST_PART_FILE.read_text())
    assert make_test_part(SHARED / "realmusic", SHARED / "vgmidi")["ids"] == committed["ids"]
    for counts in committed["counts"].values():
        assert 0.17 <= counts["test"] / counts["all"] <= 0.23
    test = set(committed["ids"])
    clips = load_realmusic(SHARED / "realmusic")
    tested = {c.group for c in clips if c.clip_id in test}
    assert not [c.clip_id for c in clips if c.clip_id not in test and c.group in tested]

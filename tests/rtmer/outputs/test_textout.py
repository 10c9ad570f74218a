"""NDJSON and CSV outputs, and the JSON shape of an update."""

from __future__ import annotations

import csv
import io
import json
import os

import pytest

from conftest import StuckFile
from rtmer.errors import ConfigError
from rtmer.outputs.textout import CSV_COLUMNS, CsvSink, NdjsonSink
from rtmer.protocol import update_to_dict
from rtmer.core.update import Update


def make_update(seq: int = 3, stream: str = "deck1", **kw: float | str) -> Update:
    fields: dict[str, object] = dict(
        stream=stream,
        seq=seq,
        t=0.5 * (seq + 1),
        time=1_700_000_000.123456,
        valence=0.1 + seq / 3,
        arousal=-0.7123456789012345,
        valence_raw=1 / 3,
        arousal_raw=-2 / 7,
        mood="tense",
    )
    fields.update(kw)
    return Update(**fields)  # type: ignore[arg-type]


def test_update_to_dict_is_the_va_message() -> None:
    u = make_update()
    assert update_to_dict(u) == {
        "type": "va",
        "stream": "deck1",
        "seq": 3,
        "t": 2.0,
        "time": 1_700_000_000.123456,
        "valence": u.valence,
        "arousal": -0.7123456789012345,
        "raw": {"valence": 1 / 3, "arousal": -2 / 7},
        "mood": "tense",
        "status": "ok",
    }


def test_update_to_dict_turns_non_finite_into_null() -> None:
    d = update_to_dict(make_update(valence_raw=float("nan"), arousal=float("inf")))
    assert d["raw"]["valence"] is None and d["arousal"] is None
    json.dumps(d, allow_nan=False)  # valid strict JSON


def test_ndjson_writes_one_flushed_line_per_update() -> None:
    buf = io.StringIO()
    sink = NdjsonSink(buf)
    updates = [make_update(seq=i) for i in range(5)]
    for u in updates:
        sink.publish(u)
    lines = buf.getvalue().splitlines()
    assert [json.loads(line) for line in lines] == [update_to_dict(u) for u in updates]
    sink.close()
    assert sink.written == 5 and sink.dropped == 0
    assert not buf.closed  # the caller owns the file


def test_csv_header_and_exact_round_trip() -> None:
    buf = io.StringIO()
    sink = CsvSink(buf)
    updates = [make_update(seq=i, stream="deck,2" if i == 2 else "deck1") for i in range(4)]
    for u in updates:
        sink.publish(u)
    sink.close()
    rows = list(csv.reader(io.StringIO(buf.getvalue())))
    assert rows[0] == list(CSV_COLUMNS)
    assert rows[0][:5] == ["time_s", "valence", "arousal", "valence_raw", "arousal_raw"]
    for row, u in zip(rows[1:], updates, strict=True):
        assert float(row[0]) == u.t
        assert (float(row[1]), float(row[2])) == (u.valence, u.arousal)  # exact, not approx
        assert (float(row[3]), float(row[4])) == (u.valence_raw, u.arousal_raw)
        assert row[5:] == [u.mood, u.stream, str(u.seq), u.status]
    assert sink.written == 5


def test_broken_pipe_logs_once_and_counts(caplog: pytest.LogCaptureFixture) -> None:
    r, w = os.pipe()
    out = os.fdopen(w, "w")
    os.close(r)  # the reader went away, as with `rtmer run | head`
    sink = NdjsonSink(out)
    with caplog.at_level("WARNING", logger="rtmer.outputs.textout"):
        for i in range(3):
            sink.publish(make_update(seq=i))
    assert sink.dropped == 3 and sink.written == 0
    assert len([r for r in caplog.records if "output stopped" in r.getMessage()]) == 1
    sink.close()
    try:
        out.close()
    except BrokenPipeError:
        pass


def test_queued_sink_never_blocks_and_drops_oldest() -> None:
    f = StuckFile(wait_s=5)
    sink = NdjsonSink(f, queue_size=4)
    for i in range(20):
        sink.publish(make_update(seq=i))  # would hang here if it wrote inline
    # one line may be in the writer's hands, 4 in the queue, the rest dropped
    assert 15 <= sink.dropped <= 16
    f.release.set()
    sink.close()
    seqs = [json.loads(line)["seq"] for line in f.getvalue().splitlines()]
    assert seqs[-4:] == [16, 17, 18, 19]  # the newest are kept
    assert sink.written + sink.dropped == 20


def test_queue_size_is_checked() -> None:
    with pytest.raises(ConfigError, match=r"queue_size=-1 must be an integer >= 0"):
        CsvSink(io.StringIO(), queue_size=-1)

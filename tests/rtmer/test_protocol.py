"""The wire format (``rtmer.protocol``): what the server encodes, the client decodes."""

from __future__ import annotations

import json
import math

import pytest

from rtmer.core.update import Update
from rtmer.errors import ConfigError
from rtmer.protocol import PROTOCOL_VERSION, hello_to_json, update_from_dict, update_to_dict, update_to_json


def test_an_update_survives_the_wire() -> None:
    u = Update(stream="deck1", seq=7, t=3.5, time=1.7e9, valence=0.25, arousal=-0.5, valence_raw=0.3,
               arousal_raw=-0.6, mood="sad", status="gap")
    assert update_from_dict(json.loads(update_to_json(u))) == u


def test_non_finite_values_travel_as_null_and_come_back_as_nan() -> None:
    u = Update(stream="a", seq=0, t=0.5, time=1.0, valence=math.nan, arousal=math.inf, valence_raw=0.0,
               arousal_raw=0.0, mood="neutral")
    d = json.loads(update_to_json(u))
    assert d["valence"] is None and d["arousal"] is None
    back = update_from_dict(d)
    assert back is not None and math.isnan(back.valence) and math.isnan(back.arousal)


@pytest.mark.parametrize("broken", [{"raw": None}, {"seq": True}, {"seq": "1"}, {"valence": "0.1"}, {"stream": 3}])
def test_a_malformed_va_message_is_none(broken: dict[str, object]) -> None:
    u = Update(stream="a", seq=0, t=0.5, time=1.0, valence=0.0, arousal=0.0, valence_raw=0.0, arousal_raw=0.0,
               mood="neutral")
    assert update_from_dict({**update_to_dict(u), **broken}) is None


def test_an_older_server_without_status_is_ok() -> None:
    u = Update(stream="a", seq=0, t=0.5, time=1.0, valence=0.0, arousal=0.0, valence_raw=0.0, arousal_raw=0.0,
               mood="neutral")
    d = update_to_dict(u)
    del d["status"]
    back = update_from_dict(d)
    assert back is not None and back.status == "ok"


def test_the_hello_names_the_protocol_and_refuses_what_json_cannot_carry() -> None:
    assert json.loads(hello_to_json({"streams": ["a"], "type": "x"})) == {
        "type": "hello", "protocol": PROTOCOL_VERSION, "streams": ["a"]}
    with pytest.raises(ConfigError, match="must be JSON-serialisable"):
        hello_to_json({"model": object()})
    with pytest.raises(ConfigError, match=r"hello=\[\] must be a dict"):
        hello_to_json([])  # type: ignore[arg-type]

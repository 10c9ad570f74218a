"""The wire format, in one place: what ``rtmer run --ws`` sends and reads, and what the
text outputs write for an update.

The server (``rtmer.outputs.websocket``) encodes with it, the client (``rtmer.client``)
decodes with it, and the NDJSON and JSON outputs (``rtmer.outputs.textout``) write the
same ``va`` objects, so a file of updates reads like the stream. Pure: dicts and
strings, no sockets.

Protocol (text frames, one JSON object each)
--------------------------------------------
Server to client:

- ``{"type": "hello", "protocol": 1, "model": {...}, "streams": [...], ...}`` first, on
  connect: the ``hello`` dict the engine passes (model metadata, stream ids), with
  ``type`` and ``protocol`` added. Its ``model`` holds only ``rtmer.outputs.websocket.HELLO_MODEL_KEYS`` (name,
  version, rates) unless the client presented the server's token: only then the
  whole metadata (training data, metrics, architecture).
- ``{"type": "va", "stream": id, "seq": n, "t": stream_seconds, "time": unix_seconds,
  "valence": v, "arousal": a, "raw": {"valence": rv, "arousal": ra}, "mood": label}``
  per update (``update_to_dict``), ``"status": "ok" | "gap" | "failed"`` last; values
  in [-1, 1], ``t`` and ``time`` [s].
- ``{"type": "subscribed", "streams": [...] | null}`` and ``{"type": "pong", "time":
  unix_seconds[, "id": ...]}`` in reply to the client messages below;
  ``{"type": "error", "request": type, "message": text}`` in reply to a ``subscribe``
  that is refused (more than ``MAX_SUBSCRIBE_STREAMS`` ids, ids that are not strings)
  or a message of an unknown type.

Client to server (optional):

- ``{"type": "subscribe", "streams": ["deck1", ...]}`` sends only those streams' updates
  to this client; ``"streams": null`` or ``"*"`` sends all again (the default).
- ``{"type": "ping"[, "id": x]}`` gets a ``pong`` (echoing a string or number ``id``).

Compatibility: fields are only ever added (``status`` came last); a reader ignores
those it does not know. ``PROTOCOL_VERSION`` changes when a field changes meaning.
"""

from __future__ import annotations

import json
import math
from typing import Any

from rtmer.core.update import Update
from rtmer.errors import ConfigError

PROTOCOL_VERSION = 1
"""The ``protocol`` of the server's hello; a client refuses a server that speaks another."""
MAX_SUBSCRIBE_STREAMS = 256
"""Most stream ids one ``subscribe`` may name (the server refuses more, the client never sends them)."""


def _finite(x: float) -> float | None:
    """``x`` as a float, or None (JSON ``null``) for NaN and inf, which JSON cannot carry."""
    x = float(x)
    return x if math.isfinite(x) else None


def update_to_dict(update: Update) -> dict[str, Any]:
    """The ``va`` message for one update.

    ``t`` is the stream time [s] at the end of the hop; ``time`` the unix time [s] of the
    estimate; ``valence``/``arousal`` smoothed and ``raw`` unsmoothed, in [-1, 1];
    ``status`` is ``ok``, ``gap`` or ``failed`` (see ``Update``; added last, so readers of
    the older shape keep working).
    A non-finite value becomes ``None`` so the result is always valid JSON.
    """
    return {
        "type": "va",
        "stream": update.stream,
        "seq": int(update.seq),
        "t": _finite(update.t),
        "time": _finite(update.time),
        "valence": _finite(update.valence),
        "arousal": _finite(update.arousal),
        "raw": {"valence": _finite(update.valence_raw), "arousal": _finite(update.arousal_raw)},
        "mood": update.mood,
        "status": update.status,
    }


def update_to_json(update: Update) -> str:
    """``update_to_dict`` serialised compactly, without a trailing newline."""
    return json.dumps(update_to_dict(update), separators=(",", ":"), allow_nan=False)


def update_from_dict(obj: dict[str, Any]) -> Update | None:
    """A ``va`` message (``update_to_dict``) as an ``Update``; None if malformed.

    ``null`` numbers (non-finite on the server) become NaN; a missing ``status`` (an
    older server) is ``ok``.
    """
    raw = obj.get("raw")
    stream, seq, mood = obj.get("stream"), obj.get("seq"), obj.get("mood")
    if not (isinstance(stream, str) and isinstance(mood, str) and isinstance(raw, dict)):
        return None
    if isinstance(seq, bool) or not isinstance(seq, int):
        return None
    values = [obj.get(k) for k in ("t", "time", "valence", "arousal")] + [raw.get("valence"), raw.get("arousal")]
    numbers: list[float] = []
    for v in values:
        if v is None:
            numbers.append(math.nan)
        elif isinstance(v, (int, float)) and not isinstance(v, bool):
            numbers.append(float(v))
        else:
            return None
    t, time_, valence, arousal, valence_raw, arousal_raw = numbers
    return Update(
        stream=stream,
        seq=seq,
        t=t,
        time=time_,
        valence=valence,
        arousal=arousal,
        valence_raw=valence_raw,
        arousal_raw=arousal_raw,
        mood=mood,
        status=status if isinstance(status := obj.get("status", "ok"), str) else "ok",
    )


def hello_to_json(hello: dict[str, Any]) -> str:
    """The server's ``hello`` message: ``hello`` (model metadata, stream ids) with ``type``
    and ``protocol`` added; ``ConfigError`` unless it is a JSON-serialisable dict."""
    if not isinstance(hello, dict):
        raise ConfigError(f"WebSocket hello={hello!r} must be a dict")
    try:
        return json.dumps(
            {"type": "hello", "protocol": PROTOCOL_VERSION, **hello, "type": "hello"}, separators=(",", ":")
        )
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"WebSocket hello must be JSON-serialisable: {exc}") from exc

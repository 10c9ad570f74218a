"""The TOML config file: its keys, the defaults, and reading it into settings.

``CONFIG_KEYS`` maps each key (nested tables written ``table.key``) to the command-line
option it stands for and its type; ``DEFAULTS`` holds every setting's default, under the
option's name. ``load_config`` checks a file where it enters: unknown keys, wrong types,
non-finite numbers, non-UTF-8 text and files over 1 MiB are ``ConfigError``s (exit 2).
Relative paths in the file (``model``, stream files, the TLS certificate and key) are
taken from the file's folder.
"""

from __future__ import annotations

import math
import tomllib
from pathlib import Path
from typing import Any

from rtmer.errors import ConfigError
from rtmer.core.model import DEFAULT_MODEL, is_shipped_name, resolve_model

MAX_CONFIG_BYTES = 1 << 20

# config file key -> (argparse dest, type). Nested tables are written "table.key".
CONFIG_KEYS: dict[str, tuple[str, type]] = {
    "model": ("model", str),
    "threads": ("threads", int),
    "smoothing.kind": ("smoothing", str),
    "smoothing.min_cutoff": ("min_cutoff", float),
    "smoothing.beta": ("beta", float),
    "smoothing.d_cutoff": ("d_cutoff", float),
    "smoothing.time_constant": ("time_constant", float),
    "mood.neutral_radius": ("neutral_radius", float),
    "mood.hysteresis": ("hysteresis", float),
    "engine.silence_db": ("silence_db", float),
    "input.streams": ("streams", list),
    "input.device_rate": ("device_rate", int),
    "input.realtime": ("realtime", bool),
    "input.format": ("pcm_format", str),
    "input.rate": ("pcm_rate", int),
    "input.channels": ("pcm_channels", int),
    "osc.targets": ("osc", list),
    "osc.prefix": ("osc_prefix", str),
    "osc.unit_range": ("osc_unit_range", bool),
    "osc.stream_ids": ("osc_stream_ids", str),
    "websocket.enabled": ("ws", bool),
    "websocket.host": ("ws_host", str),
    "websocket.port": ("ws_port", int),
    "websocket.queue_size": ("ws_queue", int),
    "websocket.token": ("ws_token", str),
    "websocket.allowed_origins": ("ws_origins", list),
    "websocket.max_clients": ("ws_max_clients", int),
    "websocket.certfile": ("ws_cert", str),
    "websocket.keyfile": ("ws_key", str),
    "web.enabled": ("web", bool),
    "web.host": ("web_host", str),
    "web.port": ("web_port", int),
    "output.stdout": ("stdout_format", str),
    "output.display": ("display", bool),
    "run.seconds": ("seconds", float),
}

DEFAULTS: dict[str, Any] = {
    "model": DEFAULT_MODEL,
    "threads": 1,
    "smoothing": "one-euro",
    "min_cutoff": 0.25,
    "beta": 0.6,
    "d_cutoff": 1.0,
    "time_constant": 1.5,
    "neutral_radius": 0.15,
    "hysteresis": 0.05,
    "silence_db": -80.0,
    "streams": [],
    "device_rate": None,
    "realtime": True,
    "pcm_format": "s16le",
    "pcm_rate": 44100,
    "pcm_channels": 2,
    "osc": [],
    "osc_prefix": "/rtmer",
    "osc_unit_range": False,
    "osc_stream_ids": "auto",
    "ws": False,
    "ws_host": "127.0.0.1",
    "ws_port": 8765,
    "ws_queue": 64,
    "ws_token": None,  # else the RTMER_WS_TOKEN environment variable
    "ws_origins": [],
    "ws_max_clients": 256,
    "ws_cert": None,
    "ws_key": None,
    "web": False,
    "web_host": "127.0.0.1",
    "web_port": 8766,
    "stdout_format": None,
    "display": None,
    "seconds": None,
}


def load_config(path: str | None) -> dict[str, Any]:
    """Read a TOML config into {argparse dest: value}; unknown keys are an error."""
    if not path:
        return {}
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_CONFIG_BYTES + 1)
        if len(data) > MAX_CONFIG_BYTES:
            raise ConfigError(f"config file {path!r}: larger than {MAX_CONFIG_BYTES // 1024} KiB; is it a config file?")
        raw = tomllib.loads(data.decode("utf-8"))
    except OSError as exc:
        raise ConfigError(f"config file {path!r}: cannot read ({exc.strerror or exc})") from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(f"config file {path!r}: not UTF-8 text (byte {exc.start}); TOML files are UTF-8") from exc
    except (tomllib.TOMLDecodeError, RecursionError) as exc:
        raise ConfigError(f"config file {path!r}: not valid TOML ({exc})") from exc
    flat: dict[str, Any] = {}

    def walk(prefix: str, table: dict[str, Any]) -> None:
        for key, value in table.items():
            name = f"{prefix}{key}"
            if isinstance(value, dict):
                walk(f"{name}.", value)
            else:
                flat[name] = value

    walk("", raw)
    out: dict[str, Any] = {}
    for name, value in flat.items():
        if name not in CONFIG_KEYS:
            raise ConfigError(f"config file {path!r}: unknown key {name!r}; known keys: {', '.join(CONFIG_KEYS)}")
        dest, kind = CONFIG_KEYS[name]
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if kind is list and isinstance(value, str):
            value = [value]
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            raise ConfigError(f"config file {path!r}: {name}={shown(value)} must be {kind.__name__}")
        if isinstance(value, list) and not all(isinstance(item, str) for item in value):
            raise ConfigError(f"config file {path!r}: {name}={shown(value)} must be a list of strings")
        if isinstance(value, float) and not math.isfinite(value):
            raise ConfigError(f"config file {path!r}: {name}={value!r} must be a finite number")
        if name == "model" and isinstance(value, str):
            value = config_model(value, Path(path).parent)
        if name == "input.streams" and isinstance(value, list):
            from rtmer.inputs.base import stream_spec_relative_to

            value = [stream_spec_relative_to(text, Path(path).parent) for text in value]
        if name in ("websocket.certfile", "websocket.keyfile") and isinstance(value, str):
            value = str(Path(path).parent / Path(value).expanduser())
        out[dest] = value
    return out


def shown(value: Any, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def config_model(spec: str, folder: Path) -> str:
    """A config file's ``model``: a shipped name as is, a relative path taken from ``folder``."""
    return spec if is_shipped_name(spec) else str(resolve_model(spec, relative_to=folder))

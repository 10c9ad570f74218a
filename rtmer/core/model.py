"""Load a streaming model file and check it against the rtmer model contract (version 1).

The contract, which the trainer's exporter writes and this module enforces:

- inputs  ``audio`` float32 [batch, hop_samples] (mono PCM at ``sample_rate``) and
  ``state`` float32 [batch, state_size] (all zeros starts a stream);
- outputs ``va`` float32 [batch, 2] (valence, arousal in [-1, 1]) and
  ``state_out`` float32 [batch, state_size];
- ``metadata_props`` with every key in ``REQUIRED_METADATA``.

Everything the runtime needs to know about a model comes from the file itself.

The models rtmer ships are package data of ``rtmer.models`` (the repository's top-level
``models/`` folder, mapped into the package by pyproject.toml) and are found through
``importlib.resources``, so an installed wheel finds them wherever it lives.
``resolve_model`` turns a ``--model`` value, a shipped name or a path, into a file path.
"""

from __future__ import annotations

import atexit
import json
import logging
import math
import re
from contextlib import ExitStack
from dataclasses import dataclass
from importlib.resources import as_file, files
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rtmer.errors import ConfigError, ModelContractError

if TYPE_CHECKING:
    import numpy as np
    import onnxruntime as ort

# numpy and onnxruntime are imported where they are used, so that importing this module
# (for the shipped names, by the command line before it parses its arguments) is quick.

CONTRACT_VERSION = "1"
REQUIRED_METADATA = (
    "contract_version",
    "sample_rate",
    "hop_samples",
    "hop_seconds",
    "state_size",
    "outputs",
    "output_range",
    "model_name",
    "model_version",
    "training_data",
    "metrics",
)
SHIPPED_PACKAGE = "rtmer.models"
# short name -> file stem in rtmer.models; the full stem is accepted as a name too
_SHIPPED: dict[str, str] = {"default": "rtmer-default", "large": "rtmer-large"}
DEFAULT_MODEL = "default"
_NAME_LIKE = re.compile(r"[A-Za-z0-9_-]+")

log = logging.getLogger(__name__)
_extracted = ExitStack()  # shipped files copied out of a zip import, removed at exit
atexit.register(_extracted.close)


def shipped_models() -> list[str]:
    """The short names of the models rtmer ships (``default``, ``large``).

    A name is listed whether or not its file is installed (``large`` ships once it is
    trained); ``rtmer-<name>`` is accepted for each as well.
    """
    return list(_SHIPPED)


def is_shipped_name(spec: str | Path) -> bool:
    """True when ``spec`` is a shipped model's name (``default``, ``rtmer-default``, ...).

    A ``Path`` is never a name.
    """
    return isinstance(spec, str) and _shipped_stem(spec) is not None


def _shipped_stem(name: str) -> str | None:
    if name in _SHIPPED:
        return _SHIPPED[name]
    return name if name in _SHIPPED.values() else None


def _shipped_file(filename: str) -> Path | None:
    """The installed ``rtmer.models/<filename>`` as a real file path, or None if absent."""
    try:
        resource = files(SHIPPED_PACKAGE) / filename
    except ModuleNotFoundError:
        return None
    if not resource.is_file():
        return None
    if isinstance(resource, Path):
        return resource
    return _extracted.enter_context(as_file(resource))  # onnxruntime needs a real file


def resolve_model(spec: str | Path, *, relative_to: Path | None = None) -> Path:
    """The model file that a ``--model`` value names.

    ``spec`` is a shipped model's name (see ``shipped_models``; ``default`` and
    ``rtmer-default`` are the same model) or a path to an ``.onnx`` file (``~`` is
    expanded; a relative path is taken from ``relative_to`` when given, else from the
    working directory). A name wins over a file of the same name (write ``./default``
    for the file); a ``Path`` is always a path.

    Raises ``ModelContractError`` for a shipped name whose file is not installed, and
    for a name-like spec (no folder, no suffix) that is neither a shipped model nor an
    existing file. Any other path is returned as is; ``StreamingModel`` says if it is
    missing. Raises ``TypeError`` for a ``spec`` that is neither a str nor a Path, and
    ``ConfigError`` for an empty one.
    """
    if not isinstance(spec, str | Path):
        raise TypeError(f"model={spec!r} must be a str or pathlib.Path (a shipped model's name or an .onnx file's "
                        f"path), got {type(spec).__name__}")
    if isinstance(spec, str) and not spec.strip():
        raise ConfigError(f"model={spec!r} is empty; give a shipped model's name ({', '.join(_SHIPPED)}) or "
                          "the path of an .onnx file")
    if isinstance(spec, str):
        stem = _shipped_stem(spec)
        if stem is not None:
            path = _shipped_file(f"{stem}.onnx")
            if path is None:
                installed = [n for n, s in _SHIPPED.items() if _shipped_file(f"{s}.onnx") is not None]
                raise ModelContractError(
                    spec,
                    f"the shipped model {stem}.onnx is not installed in {SHIPPED_PACKAGE} "
                    f"(installed: {', '.join(installed) or 'none'}); give another name or a path",
                )
            return path
    path = Path(spec).expanduser()
    if relative_to is not None and not path.is_absolute():
        path = relative_to / path
    if isinstance(spec, str) and _NAME_LIKE.fullmatch(spec) and not path.exists():
        raise ModelContractError(
            spec,
            f"is neither a shipped model ({', '.join(_SHIPPED)}) nor a file; "
            "--model takes a shipped name or a path to an .onnx file",
        )
    return path


def __getattr__(name: str) -> Path:
    # DEFAULT_MODEL_PATH, looked up when asked for (not at import), so that importing this
    # module never fails on a missing file.
    if name == "DEFAULT_MODEL_PATH":
        return resolve_model(DEFAULT_MODEL)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


@dataclass(frozen=True)
class ModelInfo:
    """What the model file says about itself. ``hop_seconds`` is the output period [s]."""

    sample_rate: int
    hop_samples: int
    hop_seconds: float
    state_size: int
    name: str
    version: str
    metadata: dict[str, str]

    def public(self) -> dict[str, Any]:
        """Metadata for clients (the WebSocket ``hello``), with JSON values decoded."""
        out: dict[str, Any] = {}
        for key, value in self.metadata.items():
            try:
                out[key] = json.loads(value) if key in ("metrics",) else value
            except json.JSONDecodeError:
                out[key] = value
        return out


def available_providers() -> list[str]:
    """CUDA first when onnxruntime-gpu and a GPU are present, else CPU."""
    import onnxruntime as ort

    have = ort.get_available_providers()
    return [p for p in ("CUDAExecutionProvider", "CPUExecutionProvider") if p in have]


class StreamingModel:
    """One onnxruntime session for a contract-conforming model file.

    ``path`` is a shipped model's name or a file path (see ``resolve_model``); by default
    the shipped ``default`` model.

    ``step`` is pure: state goes in and comes out, nothing is kept between calls.
    """

    def __init__(
        self,
        path: str | Path = DEFAULT_MODEL,
        *,
        providers: list[str] | None = None,
        intra_op_threads: int = 1,
    ) -> None:
        import onnxruntime as ort

        path = resolve_model(path)
        self.path = str(path)
        if Path(path).is_dir():
            raise ModelContractError(self.path, "is a folder; expected an .onnx file (or default, large)")
        if Path(path).exists() and not Path(path).is_file():
            raise ModelContractError(self.path, "is not a regular file; expected an .onnx file")
        if not Path(path).is_file():
            raise ModelContractError(self.path, "file does not exist")
        options = ort.SessionOptions()
        options.intra_op_num_threads = intra_op_threads
        options.inter_op_num_threads = 1
        options.log_severity_level = 4  # fatal only: rtmer reports a failed step itself (rtmer.core.engine)
        try:
            self.session = ort.InferenceSession(
                self.path, options, providers=providers or available_providers()
            )
        except Exception as exc:  # onnxruntime raises its own opaque types
            raise ModelContractError(self.path, f"not a loadable ONNX model ({exc})") from exc
        self.provider = self.session.get_providers()[0]
        self.info = _check_contract(self.path, self.session)
        log.info("model %s %s on %s", self.info.name, self.info.version, self.provider)

    def initial_state(self, batch: int) -> np.ndarray:
        """The start-of-stream state for ``batch`` streams: all zeros."""
        import numpy as np

        return np.zeros((batch, self.info.state_size), dtype=np.float32)

    def step(self, audio: np.ndarray, state: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Run one hop for a batch of streams.

        audio: float32 [batch, hop_samples]; state: float32 [batch, state_size].
        Returns (va [batch, 2], new state [batch, state_size]).

        Raises ``ModelContractError`` when the model's outputs break the contract at run
        time (a shape or type other than the one it declares); errors of onnxruntime
        itself (a node that fails) pass through as they are.
        """
        import numpy as np

        hop, size = self.info.hop_samples, self.info.state_size
        if audio.ndim != 2 or audio.shape[1] != hop:
            raise ValueError(f"audio shape {audio.shape} must be [batch, {hop}]")
        if state.shape != (audio.shape[0], size):
            raise ValueError(f"state shape {state.shape} must be [{audio.shape[0]}, {size}]")
        va, new_state = self.session.run(
            ["va", "state_out"],
            {"audio": audio.astype(np.float32, copy=False), "state": state.astype(np.float32, copy=False)},
        )
        batch = audio.shape[0]
        for name, value, width in (("va", va, 2), ("state_out", new_state, size)):
            if not isinstance(value, np.ndarray) or value.dtype != np.float32 or value.shape != (batch, width):
                shape = getattr(value, "shape", None)
                dtype = getattr(value, "dtype", type(value).__name__)
                raise ModelContractError(
                    self.path,
                    f"at run time, output {name!r} is {dtype} of shape {shape}, but the model declares "
                    f"float32 [batch, {width}] (batch {batch} here); it breaks the contract",
                )
        return va, new_state


def _check_contract(path: str, session: ort.InferenceSession) -> ModelInfo:
    meta = dict(session.get_modelmeta().custom_metadata_map)
    missing = [key for key in REQUIRED_METADATA if key not in meta]
    if missing:
        raise ModelContractError(path, f"metadata_props lack {', '.join(missing)}")
    if meta["contract_version"] != CONTRACT_VERSION:
        raise ModelContractError(
            path, f"contract_version={meta['contract_version']!r}, this runtime reads {CONTRACT_VERSION!r}"
        )
    sample_rate = _positive_int(path, meta, "sample_rate")
    hop_samples = _positive_int(path, meta, "hop_samples")
    state_size = _positive_int(path, meta, "state_size")
    try:
        hop_seconds = float(meta["hop_seconds"])
    except ValueError:
        raise ModelContractError(path, f"hop_seconds={meta['hop_seconds']!r} is not a number") from None
    if not math.isfinite(hop_seconds) or hop_seconds <= 0:
        raise ModelContractError(path, f"hop_seconds={meta['hop_seconds']!r} must be a positive number [s]")
    if abs(hop_seconds - hop_samples / sample_rate) > 1e-6:
        raise ModelContractError(
            path, f"hop_seconds={hop_seconds} disagrees with hop_samples/sample_rate={hop_samples / sample_rate}"
        )
    if meta["outputs"] != "valence,arousal":
        raise ModelContractError(path, f"outputs={meta['outputs']!r}, expected 'valence,arousal'")

    inputs = {i.name: i for i in session.get_inputs()}
    outputs = {o.name: o for o in session.get_outputs()}
    expected_io = (
        ("input", inputs, "audio", hop_samples),
        ("input", inputs, "state", state_size),
        ("output", outputs, "va", 2),
        ("output", outputs, "state_out", state_size),
    )
    for kind, table, name, width in expected_io:
        if name not in table:
            raise ModelContractError(path, f"has no {kind} named {name!r} (has {sorted(table)})")
        arg = table[name]
        if arg.type != "tensor(float)":
            raise ModelContractError(path, f"{kind} {name!r} is {arg.type}, expected tensor(float)")
        if len(arg.shape) != 2 or arg.shape[1] != width:
            raise ModelContractError(path, f"{kind} {name!r} has shape {arg.shape}, expected [batch, {width}]")
    if set(inputs) != {"audio", "state"}:
        raise ModelContractError(path, f"inputs are {sorted(inputs)}, expected ['audio', 'state']")
    return ModelInfo(
        sample_rate=sample_rate,
        hop_samples=hop_samples,
        hop_seconds=hop_seconds,
        state_size=state_size,
        name=meta["model_name"],
        version=meta["model_version"],
        metadata=meta,
    )


# Largest values the runtime accepts: beyond them a stream's buffers would not fit in memory.
METADATA_LIMITS = {"sample_rate": 768_000, "hop_samples": 1 << 22, "state_size": 1 << 22}


def _positive_int(path: str, meta: dict[str, str], key: str) -> int:
    try:
        value = int(meta[key])
    except ValueError:
        value = 0
    limit = METADATA_LIMITS[key]
    if not 0 < value <= limit:
        raise ModelContractError(path, f"{key}={meta[key][:40]!r} must be an integer in 1..{limit}")
    return value

"""rtmer: real-time music emotion tracking (valence, arousal every 500 ms).

The Python API (see the README's "Python API"):

- ``Tracker``: numpy blocks of any length, rate and channel count in, ``Update``s out,
  through the same stages as ``rtmer run`` and ``rtmer analyze``; many streams batched.
- ``client``: the updates of a running ``rtmer run --ws``, sync or async, with reconnect
  (``rtmer.client.connect``).
- ``Update``: one stream's estimate for one hop; ``SmoothingConfig``: the smoother and
  its parameters. Errors are in ``rtmer.errors`` (all derive from ``RtmerError``).
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:
    from rtmer import client
    from rtmer.errors import RtmerError
    from rtmer.core.smoothing import SmoothingConfig
    from rtmer.core.tracker import Tracker
    from rtmer.core.update import Update

# Imported when first used (PEP 562), so that `import rtmer.app.cli` stays light: the `rtmer`
# command then handles a Ctrl-C from its first moments instead of printing a traceback
# from inside numpy's import.
_LAZY = {
    "client": "rtmer.client",
    "RtmerError": "rtmer.errors",
    "SmoothingConfig": "rtmer.core.smoothing",
    "Tracker": "rtmer.core.tracker",
    "Update": "rtmer.core.update",
}

__all__ = ["RtmerError", "SmoothingConfig", "Tracker", "Update", "__version__", "client"]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'rtmer' has no attribute {name!r}")
    value = import_module(module) if module == f"rtmer.{name}" else getattr(import_module(module), name)
    globals()[name] = value
    return value

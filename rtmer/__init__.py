"""rtmer: real-time music emotion tracking (valence, arousal every 500 ms).

The Python API (see the README's "Python API"):

- ``Tracker``: numpy blocks of any length, rate and channel count in, ``Update``s out,
  through the same stages as ``rtmer run`` and ``rtmer analyze``; many streams batched.
- ``client``: the updates of a running ``rtmer run --ws``, sync or async, with reconnect
  (``rtmer.client.connect``).
- ``Update``: one stream's estimate for one hop; ``SmoothingConfig``: the smoother and
  its parameters. Errors are in ``rtmer.errors`` (all derive from ``RtmerError``).
"""

__version__ = "0.1.0"  # first, so that a module imported below may read it

from rtmer import client  # noqa: E402
from rtmer.errors import RtmerError  # noqa: E402
from rtmer.smoothing import SmoothingConfig  # noqa: E402
from rtmer.tracker import Tracker  # noqa: E402
from rtmer.update import Update  # noqa: E402

__all__ = ["RtmerError", "SmoothingConfig", "Tracker", "Update", "__version__", "client"]

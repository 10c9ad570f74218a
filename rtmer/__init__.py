"""rtmer: real-time music emotion tracking (valence, arousal every 500 ms)."""

__version__ = "0.1.0"

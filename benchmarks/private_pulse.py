"""A private PulseAudio server for the benchmarks that capture a real device.

The server gets its own ``XDG_RUNTIME_DIR`` under ``tmp`` (set in ``env``), so it never
touches a desktop's server; ``module-always-sink`` keeps it from exiting when idle.
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path


def start_private_pulse(tmp: Path, env: dict[str, str], *, null_sink: str | None = "rtmer_sink") -> int:
    """Start the server (with a null sink named ``null_sink`` unless None), wait until it answers; its pid."""
    runtime = tmp / "xdg"
    runtime.mkdir(mode=0o700)
    env["XDG_RUNTIME_DIR"] = str(runtime)
    sink = [f"--load=module-null-sink sink_name={null_sink}"] if null_sink else []
    subprocess.run(["pulseaudio", "-D", "-n", "--exit-idle-time=-1", "--disallow-exit",
                    "--load=module-native-protocol-unix", *sink, "--load=module-always-sink"],
                   env=env, check=True, capture_output=True)  # fmt: skip
    while subprocess.run(["pactl", "info"], env=env, capture_output=True).returncode:
        time.sleep(0.1)
    return int((runtime / "pulse" / "pid").read_text().split()[0])

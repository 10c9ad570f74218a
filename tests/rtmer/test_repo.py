"""Claims the repository makes about itself: the test set-up script and the benchmark table."""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_run_sh_installs_no_recommended_packages() -> None:
    """Recommends pull in Qt, GTK and qsynth (about 380 MB) that no test needs."""
    script = (REPO / "tests" / "run.sh").read_text()
    installs = [line for line in script.splitlines() if re.search(r"\bapt-get\b.*\binstall\b", line)]
    assert installs, "tests/run.sh installs nothing with apt-get any more; update this test"
    for line in installs:
        assert "--no-install-recommends" in line, line


def test_readme_says_how_the_end_to_end_benchmark_is_paced() -> None:
    source = (REPO / "benchmarks" / "latency.py").read_text()
    match = re.search(r'"--interval", type=float, default=([0-9.]+)', source)
    assert match, "benchmarks/latency.py has no --interval default any more; update this test"
    interval_ms = round(float(match.group(1)) * 1000)
    [row] = [line for line in (REPO / "README.md").read_text().splitlines()
             if "`python benchmarks/latency.py`" in line]
    assert f"pushed {interval_ms} ms apart" in row and f"`--interval {match.group(1)}`" in row
    assert "paced at 500 ms" not in row

"""CLI start-up (issue 13): `dropout-risk --help` and `dropout-risk validate --help` within
0.5 s of `python -c "import typer"`, measured on the same machine in the same run.

Each round runs every target once as a fresh subprocess, in an order that alternates
from round to round (the machine is shared, so load drifts); the summary takes medians
over rounds and reports each target's difference and ratio against the reference.

Usage: .venv/bin/python bench/cli.py [--rounds 9]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from statistics import median

TARGET_SECONDS = 0.5
REFERENCE = "import typer"
CLI = "from training.cli import main; main()"
TARGETS: dict[str, list[str]] = {
    "import typer (reference)": ["-c", REFERENCE],
    "dropout-risk --help": ["-c", CLI, "--help"],
    "dropout-risk validate --help": ["-c", CLI, "validate", "--help"],
}


def _seconds(args: list[str]) -> float:
    started = time.perf_counter()
    subprocess.run([sys.executable, *args], check=True, capture_output=True, timeout=120)
    return time.perf_counter() - started


def measure(rounds: int) -> dict[str, list[float]]:
    """Seconds per target and round; odd rounds run the targets in reverse order."""
    times: dict[str, list[float]] = {name: [] for name in TARGETS}
    for number in range(rounds):
        names = list(TARGETS) if number % 2 == 0 else list(reversed(TARGETS))
        for name in names:
            times[name].append(_seconds(TARGETS[name]))
    return times


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--rounds", type=int, default=9)
    rounds = parser.parse_args().rounds
    times = measure(rounds)
    reference = median(times["import typer (reference)"])
    print(f"reference: import typer, median {reference:.3f} s over {rounds} rounds")
    failed = False
    for name, values in list(times.items())[1:]:
        value = median(values)
        difference = value - reference
        verdict = "ok" if difference <= TARGET_SECONDS else "SLOW"
        failed |= verdict != "ok"
        print(
            f"{name}: median {value:.3f} s, {difference:+.3f} s ({value / reference:.2f}x) "
            f"against import typer; target <= +{TARGET_SECONDS} s: {verdict}"
        )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

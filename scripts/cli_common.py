"""What the command-line modules share: exit codes, failing with one clear line, the estimate of an input."""

from __future__ import annotations

import sys

from wildlife import budget
from wildlife.progress import console

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_BUDGET = 0, 1, 2, 3
TARGETS = ("local", "localstack", "aws")


def fail(code: int, message: str) -> None:
    console.print(f"[red bold]error:[/red bold] {message}")
    sys.exit(code)


def estimate_for(input_uri, max_images, target, detector, use_spot, instance_type, prices_uri):
    """The estimate ``run`` would make: for a local run, with this machine's rates timed on the first photos."""
    from wildlife import calibration, stage0  # noqa: PLC0415
    from wildlife.detect import DetectorUnavailable  # noqa: PLC0415
    from wildlife.events import EventRules  # noqa: PLC0415

    try:
        manifest = stage0.scan(input_uri, max_images)
    except FileNotFoundError as exc:
        fail(EXIT_USAGE, f"{exc}. Check --input.")
    pending = [r for r in manifest.to_pylist() if r["status"] == "pending"]
    try:
        measured = calibration.calibrate(pending, detector, EventRules.burst_gap_s) if target == "local" else None
        return budget.estimate(len(pending), sum(r["size"] for r in pending), target=target, detector=detector,
                               use_spot=use_spot, instance_type=instance_type,
                               prices=budget.load_prices(prices_uri), measured=measured)
    except (ValueError, DetectorUnavailable) as exc:
        fail(EXIT_USAGE, str(exc))

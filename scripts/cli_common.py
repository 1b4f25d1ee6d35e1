"""What the command-line modules share: exit codes, failing with a message and a hint, the estimate of an input."""

from __future__ import annotations

from typing import NoReturn

from wildlife import budget
from wildlife.errors import OdinError

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_BUDGET = 0, 1, 2, 3
TARGETS = ("local", "localstack", "aws")


def fail(code: int, message: str, hint: str | None = None) -> NoReturn:
    """Stop the command with ``message`` and exit ``code``; the CLI prints it where it prints every error."""
    error = OdinError(message, hint)
    error.exit_code = code
    raise error


def estimate_for(input_uri, max_images, target, detector, use_spot, instance_type, prices_uri):
    from wildlife import stage0  # noqa: PLC0415

    try:
        manifest = stage0.scan(input_uri, max_images)
    except FileNotFoundError as exc:
        fail(EXIT_USAGE, f"{exc}. Check --input.")
    pending = [r for r in manifest.to_pylist() if r["status"] == "pending"]
    try:
        return budget.estimate(len(pending), sum(r["size"] for r in pending), target=target, detector=detector,
                               use_spot=use_spot, instance_type=instance_type,
                               prices=budget.load_prices(prices_uri))
    except ValueError as exc:
        fail(EXIT_USAGE, str(exc))

"""What the command-line modules share: exit codes, the one place errors are shown, failing with a message and a
hint, number options, the estimate of an input."""

from __future__ import annotations

import math
import traceback
from typing import NoReturn

import click
from rich.markup import escape

from wildlife import budget
from wildlife.errors import OdinError
from wildlife.progress import console
from wildlife.runinput import RunInput

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_BUDGET = 0, 1, 2, 3
EXIT_INTERRUPTED = 130
TARGETS = ("local", "localstack", "aws")


class OdinGroup(click.Group):
    """The one place where every command's errors become a message and an exit code: an ``OdinError`` prints
    its message and hint and exits with its code; the cloud's errors are explained the same way; an
    ``OSError`` is the environment's (exit 1); anything else is a bug in Odin and says so. ``--debug`` (or
    ODIN_DEBUG=1) adds the traceback."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except (click.exceptions.ClickException, click.exceptions.Exit, click.exceptions.Abort):
            raise
        except (Exception, KeyboardInterrupt) as exc:  # noqa: BLE001 - the one place errors are shown
            ctx.exit(show_error(exc, debug=bool(ctx.params.get("debug"))))


def show_error(exc: BaseException, debug: bool) -> int:
    """Print ``exc`` for the user; returns the exit code."""
    from wildlife.cli.stack import explain  # noqa: PLC0415

    if debug:
        traceback.print_exception(exc)
    error = exc if isinstance(exc, OdinError) else explain(exc)
    if isinstance(exc, KeyboardInterrupt):
        console.print("[red bold]interrupted[/red bold]")
        return EXIT_INTERRUPTED
    if error is None and isinstance(exc, OSError):  # a file or folder the user named, a full disk
        error = OdinError(f"{type(exc).__name__}: {exc}", "--debug shows where it happened.")
    if error is None:
        console.print(f"[red bold]internal error:[/red bold] {type(exc).__name__}: {escape(str(exc))} — please "
                      "report it with --debug output")
        return EXIT_FAILED
    console.print(f"[red bold]error:[/red bold] {escape(str(error.args[0]) if error.args else '')}")
    if error.hint:
        console.print(escape(error.hint))
    return error.exit_code


class Number(click.FloatRange):
    """A number option: finite (click's FloatRange lets nan and inf through) and within its range."""

    name = "number"

    def convert(self, value, param, ctx):
        number = super().convert(value, param, ctx)
        if not math.isfinite(number):
            self.fail(f"{value!r} is not a finite number.", param, ctx)
        return number


def fail(code: int, message: str, hint: str | None = None) -> NoReturn:
    """Stop the command with ``message`` and exit ``code``; the CLI prints it where it prints every error."""
    error = OdinError(message, hint)
    error.exit_code = code
    raise error


def estimate_for(input_uri, max_images, target, detector, use_spot, instance_type, prices_uri, manifest=None,
                 classifier=None, expected_empty_share=None, video_sample=None):
    """The estimate ``run`` would make: for a local run, with this machine's rates timed on the first photos.
    ``manifest``: the input's listing when the caller has it (the cloud path uploads exactly its photos);
    ``classifier`` and ``expected_empty_share``: the run's, for the classification line; ``video_sample``:
    the run's, a video counting as its sampled frames."""
    from wildlife import calibration, stage0, video_results  # noqa: PLC0415

    classifier = classifier or RunInput.default("classifier")  # unset: the run's own defaults
    expected_empty_share = RunInput.default("expected_empty_share") if expected_empty_share is None \
        else expected_empty_share
    video_sample = video_sample or RunInput.default("video_sample")
    from wildlife.detect import DetectorUnavailable  # noqa: PLC0415
    from wildlife.events import EventRules  # noqa: PLC0415

    try:
        manifest = manifest if manifest is not None else stage0.scan(input_uri, max_images, video_sample=video_sample)
    except FileNotFoundError as exc:
        fail(EXIT_USAGE, f"{exc}. Check --input.")
    pending = [r for r in manifest.to_pylist() if r["status"] == "pending"]
    try:
        measured = calibration.calibrate(pending, detector, EventRules.burst_gap_s) if target == "local" else None
        items = video_results.items_to_run(manifest, video_sample)  # a video counts as its sampled frames
        return budget.estimate(items, sum(r["size"] for r in pending), target=target, detector=detector,
                               use_spot=use_spot, instance_type=instance_type,
                               prices=budget.load_prices(prices_uri), measured=measured, classifier=classifier,
                               expected_empty_share=expected_empty_share)
    except (ValueError, DetectorUnavailable) as exc:
        fail(EXIT_USAGE, str(exc))

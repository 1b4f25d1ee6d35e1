"""``odin export``: copies of a run's results for people to look at or share."""

from __future__ import annotations

import click

from wildlife.errors import InputError
from wildlife.progress import console
from wildlife.runinput import HUMANS, RunInput


@click.group()
def export() -> None:
    """Copies of a finished run's results: annotated photos."""


@export.command("annotated")
@click.option("--run", "run_uri", required=True, help="The --output of a finished run (folder or s3:// prefix).")
@click.option("--output", "output_uri", required=True, help="Folder or s3:// prefix for the annotated copies.")
@click.option("--humans", type=click.Choice(HUMANS), default=None,
              help="People and vehicles: blur, drop (not written) or keep. Default: the run's --humans.")
@click.option("--all", "every_photo", is_flag=True, help="Also photos without a positive box (copied unmarked).")
def annotated(run_uri, output_uri, humans, every_photo):
    """Write copies of the run's photos with their boxes and labels (the species where a classifier named
    one), people and vehicles blurred unless --humans keep. Originals are never changed."""
    from wildlife import annotate, fs  # noqa: PLC0415

    names = ("images.parquet", "detections.parquet", "run_report.json")
    missing = [n for n in names if not fs.exists(fs.join(run_uri, n))]
    if missing:
        raise InputError(f"--run {run_uri} has no {', '.join(missing)}",
                         hint="Give the --output folder of a finished run (it holds images.parquet).")
    params = fs.read_json(fs.join(run_uri, "run_report.json")).get("params") or {}
    if run_uri.rstrip("/") == output_uri.rstrip("/"):
        raise InputError("--output is the run's own folder", hint="Give a folder of its own for the copies.")
    threshold = float(params.get("conf_threshold") or RunInput.default("conf_threshold"))
    done = annotate.export(fs.read_table(fs.join(run_uri, "images.parquet")),
                           fs.read_table(fs.join(run_uri, "detections.parquet")), output_uri, threshold,
                           humans or params.get("humans"), every_photo)
    console.print(f"wrote {done.written} annotated photo(s) to {output_uri} ({done.blurred} with people or "
                  f"vehicles blurred)")
    for reason, n in sorted(done.not_written.items()):
        console.print(f"[yellow]not written: {n} photo(s): {reason}[/yellow]")

"""Odin's command line: camera-trap photos in, analysis-ready tables out, under a budget in DKK.

\b
Exit codes:
  0    done
  1    failed (the run state is saved: fix the cause and re-run with --resume), a service that does not
       answer, or an internal error (re-run with --debug and report it)
  2    bad usage or input: nothing was started (this includes an input folder with no photo or video files)
  3    budget exceeded (money or --max-job-duration); nothing was started
  130  interrupted (Ctrl-C); finished work is checkpointed: re-run with --resume
"""

from __future__ import annotations

import os

import click
from rich.markup import escape

from wildlife import budget, publishing
from wildlife.asl import QUEUE_PRIORITIES
from wildlife.checkpoint import DEFAULT_EVERY
from wildlife.cli.common import EXIT_BUDGET, EXIT_USAGE, TARGETS, Number, OdinGroup, estimate_for, fail
from wildlife.errors import InputError
from wildlife.graph import GRAPH
from wildlife.presets import NAMES as PRESET_NAMES
from wildlife.progress import console
from wildlife.runinput import HUMANS, RunInput


@click.group(cls=OdinGroup, help=__doc__)
@click.version_option(package_name=None, version=__import__("wildlife").__version__, prog_name="odin")
@click.option("--debug", is_flag=True, envvar="ODIN_DEBUG",
              help="Show the traceback of an error (also ODIN_DEBUG=1): for reporting a bug.")
def cli(debug: bool) -> None:
    pass


def _opt(*decls, name: str, **kw):
    """A click option for the run input's field ``name``: its help text and default are ``RunInput``'s."""
    field = RunInput.field(name)
    kw.setdefault("default", field.default)
    kw.setdefault("show_default", field.default is not None and not kw.get("is_flag"))
    return click.option(*decls, name, help=field.metadata["help"], **kw)


def _video_sample(ctx, param, value):
    """Refuse a --video-sample that is not '1s'/'0.5s'/'30f' before anything starts (exit 2, with the hint)."""
    from wildlife import video  # noqa: PLC0415

    if value is not None:
        video.parse_sample(value)
    return value


def _common(f):
    options = [
        _opt("--input", name="input_uri", required=True),
        _opt("--budget", name="budget_dkk", type=Number(min=0), required=True),
        _opt("--target", name="target", type=click.Choice(TARGETS)),
        _opt("--use-spot/--no-spot", name="use_spot"),
        _opt("--max-images", name="max_images", type=click.IntRange(min=1)),
        _opt("--max-job-duration", name="max_job_duration", type=Number(min=1)),
        _opt("--detector", name="detector"),
        _opt("--instance-type", name="instance_type"),
        _opt("--prices", name="prices_uri"),
        _opt("--classifier", name="classifier"),
        _opt("--speed", name="speed", type=click.Choice(PRESET_NAMES)),
        _opt("--expected-empty-share", name="expected_empty_share", type=Number(0, 1)),
        _opt("--video-sample", name="video_sample", callback=_video_sample),
    ]
    for option in reversed(options):
        f = option(f)
    return f


def _print_estimate(est: budget.Estimate, budget_dkk: float) -> None:
    from rich.table import Table  # noqa: PLC0415

    table = Table(title=f"Estimate for {est.photos} photos on {est.target} (prices as of {est.prices_as_of})")
    table.add_column("item")
    table.add_column("basis")
    table.add_column("DKK", justify="right")
    for item, basis, dkk in est.lines:
        table.add_row(item, basis, f"{dkk:.2f}")
    table.add_row("[bold]total", f"budget {budget_dkk:.2f} DKK", f"[bold]{est.total_dkk:.2f}")
    console.print(table)
    console.print(f"estimated wall time: {est.wall_time_s:,.0f} s")
    for stage, label in (("stage0", "Stage 0 headers"), ("detector", f"detector {est.detector}")):
        r = est.rates[stage]
        timed = f", {r['photos_timed']} photos timed" if r["photos_timed"] else ""
        console.print(f"  rate {label}: {r['ms_per_photo']:g} ms/photo ({r['source']}{timed})")
    if "classifier" in est.rates:
        r = est.rates["classifier"]
        console.print(f"  rate classifier {r['name']}: {r['ms_per_crop']:g} ms/box, {r['crops']} expected animal "
                      f"boxes ({r['source']})")


def _preset_detector(detector: str, speed: str | None) -> str:
    """The detector a run uses (``presets.detector_of``), saying so when ``--speed`` overrides a ``--detector``
    the user gave."""
    from wildlife import presets  # noqa: PLC0415

    chosen = presets.detector_of({"speed": speed, "detector": detector})
    source = click.get_current_context().get_parameter_source("detector")
    if speed and chosen != detector and source is not click.core.ParameterSource.DEFAULT:
        console.print(f"[yellow]warning:[/yellow] --speed {speed} runs {chosen}; --detector {escape(detector)} "
                      "is not used")
    return chosen


def _print_presets(est: budget.Estimate, prices_uri: str | None) -> None:
    """Each --speed preset's time (and cost) for the same input and target."""
    from wildlife import presets  # noqa: PLC0415

    console.print("--speed presets for this input:")
    for preset, pe in presets.estimates(est, budget.load_prices(prices_uri)):
        rate = pe.rates["detector"]
        console.print(f"  {presets.describe(preset.name)}", soft_wrap=True)
        cost = f", {pe.total_dkk:.2f} DKK" if pe.target != "local" else ""
        console.print(f"      {pe.wall_time_s:,.0f} s{cost} ({rate['ms_per_photo']:,.1f} ms/photo: {rate['source']})",
                      soft_wrap=True)


@cli.command()
@_common
def estimate(input_uri, budget_dkk, target, use_spot, max_images, max_job_duration, detector, instance_type,
             prices_uri, **more):
    """Print the cost and time estimate for a run; exit 3 if it is over budget. Starts no work."""
    detector = _preset_detector(detector, more["speed"])
    est = estimate_for(input_uri, max_images, target, detector, use_spot, instance_type, prices_uri,
                       classifier=more["classifier"], expected_empty_share=more["expected_empty_share"],
                       video_sample=more.get("video_sample"))
    _print_estimate(est, budget_dkk)
    _print_presets(est, prices_uri)
    try:
        budget.guard(est, budget_dkk, max_job_duration)
    except budget.BudgetExceeded as exc:
        fail(EXIT_BUDGET, str(exc))
    console.print("[green]within budget[/green]")


@cli.command()
@_common
@_opt("--output", name="output_uri", required=True)
@_opt("--deployments", name="deployments_uri")
@_opt("--weather-days-back", name="weather_days_back", type=click.IntRange(min=0))
@_opt("--weather-provider", name="weather_provider", type=click.Choice(["open-meteo", "met-frost", "none"]))
@_opt("--independence", name="independence_s", type=Number(min=0))
@_opt("--sequence-gap", name="sequence_gap_s", type=Number(min=0))
@_opt("--events", name="events_method", type=click.Choice(["gap", "hdbscan"]))
@_opt("--event-gap", name="event_gap_s", type=Number(min=0))
@_opt("--conf-threshold", name="conf_threshold", type=Number(0, 1))
@click.option("--resume", is_flag=True, help="Continue the run already in --output.")
@_opt("--follow-links", name="follow_links", is_flag=True)
@click.option("--checkpoint-every", type=click.IntRange(min=1), default=DEFAULT_EVERY, show_default=True,
              help="Photos per checkpoint in the looping stages.")
@_opt("--priority", name="priority", type=click.Choice(list(QUEUE_PRIORITIES)))
@_opt("--country", name="country")
@_opt("--humans", name="humans", type=click.Choice(HUMANS))
@_opt("--occasion-days", name="occasion_days", type=click.IntRange(min=1))
@_opt("--project", name="project_uri")
def run(input_uri, budget_dkk, target, use_spot, max_images, max_job_duration, detector, instance_type,
        prices_uri, output_uri, deployments_uri, weather_days_back, weather_provider, independence_s, sequence_gap_s,
        events_method, event_gap_s, conf_threshold, resume, checkpoint_every, follow_links, priority, **more):
    """Run the pipeline: budget guard, EXIF + clock, detection, sequences, outputs.

    The run's warnings and a final line with its status end the output, whatever the outcome. An input
    folder with no photo or video files is refused (exit 2) before anything is written.
    """
    from wildlife import runner  # noqa: PLC0415

    run_input = RunInput.from_options(click.get_current_context().params)  # the one run input, for every target
    publishing.load(run_input.project_uri)  # a bad project file is exit 2 before anything starts or is uploaded
    if run_input.country:
        from wildlife import geo  # noqa: PLC0415

        geo.place_code(run_input.country)  # and so is a misspelt --country (DK for DNK): no run folder is left
    if target != "local" and run_input.classifier.endswith(".onnx"):
        raise InputError(f"--classifier {run_input.classifier}: a model file on this machine cannot run on {target}",
                         hint="On AWS Stage 1 runs in the detector image, which holds SpeciesNet: use --classifier "
                              "auto or speciesnet (or none), or build the image with your model.")
    if target != "local" and resume:
        raise InputError(f"--resume continues a local run; a run on {target} is resumed by running it again",
                         hint="On AWS each run is its own execution: photos already uploaded are not sent again.")
    if target != "local":
        from wildlife.cli.stack import run_cloud  # noqa: PLC0415

        run_cloud(run_input)
        return
    if not os.path.isdir(input_uri) and "://" not in input_uri:
        fail(EXIT_USAGE, f"--input {input_uri!r} is not a folder.")
    if "://" not in input_uri:
        _has_photos(input_uri)
    from wildlife import detect  # noqa: PLC0415
    from wildlife.classify import runtime  # noqa: PLC0415

    # before any work: a missing model is a usage error, not a half-done run
    chosen = _preset_detector(detector, run_input.speed)
    detect.check(chosen)
    runtime.check(run_input.classifier)  # and so is a species model that cannot work
    if run_input.classifier not in ("auto", "none") and detect.resolve(chosen) == "motion":
        raise InputError(f"--classifier {run_input.classifier} was asked for, but the detector is the motion baseline "
                         f"(--detector {chosen}{': MegaDetector is not cached' if chosen == 'auto' else ''}), whose "
                         "boxes are motion, not animals a species model can name: no photo would be classified",
                         hint="Give a detector: `odin models fetch md-v5a` on a machine with internet, or --detector "
                              "PATH (.pt, or .onnx with its sidecar); or run with --classifier none.")
    budget.load_prices(prices_uri)  # and so is a price table that cannot be read
    runner.run(run_input.params(), resume=resume, checkpoint_every=checkpoint_every, on_end=_ended)


def _stage_options(f):
    """The run's options that ``stage`` may change: those some stage reads first (``RunInput``), unset by
    default (the run keeps its value)."""
    for p in reversed(run.params):
        if p.name in RunInput.names() and RunInput.first_read_by(p.name):
            f = click.option(*p.opts, p.name, type=p.type, default=None,
                             help=f"{p.help} Read first by {RunInput.first_read_by(p.name)}.")(f)
    return f


@cli.command("stage")
@click.argument("name", type=click.Choice([s.name for s in GRAPH]))
@click.option("--output", "output_uri", required=True, help="The --output of an earlier run.")
@_stage_options
@click.option("--checkpoint-every", type=click.IntRange(min=1), default=DEFAULT_EVERY, show_default=True,
              help="Photos per checkpoint in the looping stages.")
def stage(name, output_uri, checkpoint_every, **changes):
    """Re-run one stage of an existing run from its stored inputs, then every stage after it.

    \b
    Examples:
      stage Stage2Events --output RUN --independence 600   events with another independence interval
      stage WeatherEnrichment --output RUN                 weather again, after the network came back
    An option read first by an earlier stage than NAME is refused (exit 2). The later stages run again too,
    so the outputs always come from one set of settings; if one fails, `run --resume` continues.
    """
    from wildlife import runner  # noqa: PLC0415

    runner.rerun(output_uri, name, {k: v for k, v in changes.items() if v is not None},
                 checkpoint_every=checkpoint_every, on_end=_ended)


def _has_photos(folder: str) -> None:
    """Refuse (exit 2, nothing written) a local input folder without a single photo or video file. Stops at the first
    photo; a linked or unreadable folder is left to the run, which lists what it finds there."""
    from wildlife.stage0 import PHOTO_EXTENSIONS  # noqa: PLC0415
    from wildlife.video import VIDEO_EXTENSIONS  # noqa: PLC0415

    media = PHOTO_EXTENSIONS | VIDEO_EXTENSIONS
    files, unsure = 0, []
    for parent, dirs, names in os.walk(folder, onerror=unsure.append):
        if unsure or any(os.path.islink(os.path.join(parent, d)) for d in dirs):
            return
        if any(os.path.splitext(n)[1].lower() in media for n in names):
            return
        files += len(names)
    if not unsure:
        raise InputError(f"no photo files found under {folder}: {files} file(s), none of them photos or videos "
                         f"({', '.join(sorted(media))}). Nothing to do.",
                         hint="Check --input: it should be the folder of the camera's photos and videos (its "
                              "subfolders are read too).")


def _ended(report: dict) -> None:
    """The end of a run in the terminal: the report's warnings, exactly, then one line with its status."""
    for warning in report.get("warnings", []):
        console.print(f"[yellow]warning:[/yellow] {escape(warning)}")
    if report["status"] == "succeeded":
        _summary(report)
        return
    error = report.get("error") or {}
    console.print(f"[red bold]{report['status']}[/red bold]: run {report['session_id']} stopped at "
                  f"{error.get('stage', '?')}")


@cli.command()
@click.option("--table", "table_uri", required=True, help="Media table (.csv or .parquet) with deploymentID, "
              "timestamp (ISO 8601 with offset), an identifier column, optionally category/conf/count.")
@click.option("--output", "output_uri", required=True, help="Folder for media_events.csv and clusters.parquet.")
@click.option("--id-column", default="mediaID", show_default=True, help="The identifier column to keep.")
@click.option("--conf-threshold", type=click.FloatRange(0, 1), default=0.2, show_default=True)
@click.option("--method", type=click.Choice(["gap", "hdbscan"]), default="gap", show_default=True,
              help="gap: consecutive photos <= --event-gap apart share an event (Agouti, MegaDetector); "
              "hdbscan: density clustering of bursts (--burst-gap, --merge-gap, --max-gap).")
@click.option("--event-gap", type=float, default=120.0, show_default=True,
              help="Seconds; gap method: a longer gap between consecutive photos starts a new event.")
@click.option("--burst-gap", type=float, default=60.0, show_default=True, help="Seconds; hdbscan: bursts are never "
              "split.")
@click.option("--merge-gap", type=float, default=300.0, show_default=True, help="Seconds; hdbscan: always merged.")
@click.option("--max-gap", type=float, default=1800.0, show_default=True, help="Seconds; hdbscan: always cut.")
@click.option("--independence", type=float, default=1800.0, show_default=True,
              help="Seconds between independent records per deployment and taxon (camtrapR minDeltaTime).")
def events(table_uri, output_uri, id_column, conf_threshold, method, event_gap, burst_gap, merge_gap, max_gap,
           independence):
    """Re-cut events from a media table without re-running detection (Stage 2 alone)."""
    import pyarrow as pa  # noqa: PLC0415

    from wildlife import fs, stage2  # noqa: PLC0415
    from wildlife.events import EventRules  # noqa: PLC0415

    rules = EventRules(event_gap_s=event_gap, burst_gap_s=burst_gap, merge_gap_s=merge_gap, max_gap_s=max_gap,
                       independence_s=independence, method=method)
    try:
        table = stage2.read_media_table(table_uri)
        per_row, clusters = stage2.events_from_table(table, id_column, conf_threshold, rules)
    except (OSError, ValueError, pa.ArrowException) as exc:  # a column of a type the table should not have
        fail(EXIT_USAGE, f"--table {table_uri}: {exc}")
    import pyarrow.csv as pcsv  # noqa: PLC0415

    fs.makedirs(output_uri)
    sink = __import__("io").BytesIO()
    pcsv.write_csv(per_row, sink)
    fs.write_bytes(fs.join(output_uri, "media_events.csv"), sink.getvalue())
    fs.write_table(clusters, fs.join(output_uri, "clusters.parquet"))
    independent = sum(clusters.column("independent").to_pylist())
    console.print(f"[bold green]done[/bold green] {table.num_rows} rows -> {clusters.num_rows} events "
                  f"({independent} independent); {rules.describe()}")
    console.print(f"  {fs.join(output_uri, 'media_events.csv')}\n  {fs.join(output_uri, 'clusters.parquet')}")


def _summary(report: dict) -> None:
    stages = report["stages"]
    s0, s1, s2 = stages["Stage0Exif"], stages["Stage1Detect"], stages["Stage2Events"]
    files = report["final_results"]["files_created"]
    for uri in files:
        console.print(f"  {uri}")
    failed = s0["failed"] + s1["failed"]
    images = next(u for u in files if u.endswith("images.parquet"))
    frames = s1.get("video_frames") or 0  # photos_ok counts videos too: a video is one media file
    read = f"{s0['photos_ok']} photos read"
    if frames:
        read = f"{s0['photos_ok']} files read ({frames} video frames sampled)"
    console.print(
        f"[bold green]done[/bold green] run {report['session_id']}: {read}, "
        f"{failed} failed ({s0['failed']} reading + {s1['failed']} detecting), {s0['skipped']} skipped; "
        f"{s1['with_detections']} with detections ({s1['detector']['name']}); {s2['events']} events, "
        f"{s2['independent_events']} independent."
        + (f" Why each failed: columns status and reason of {images}." if failed else "")
    )


def _register() -> None:
    from wildlife.cli import stack as cloud_cli  # noqa: PLC0415

    for command in (cloud_cli.plan, cloud_cli.apply, cloud_cli.destroy, cloud_cli.status, cloud_cli.logs,
                    cloud_cli.data, cloud_cli.cost):
        cli.add_command(command)
    from wildlife.cli.cost import optimize  # noqa: PLC0415

    cloud_cli.cost.add_command(optimize)
    from wildlife.cli.stop import budget_group  # noqa: PLC0415

    cli.add_command(budget_group)
    from wildlife.cli.models import models  # noqa: PLC0415

    cli.add_command(models)
    from wildlife.cli.export import export  # noqa: PLC0415

    cli.add_command(export)


_register()

if __name__ == "__main__":
    cli()

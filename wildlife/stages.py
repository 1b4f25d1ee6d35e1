"""The stage functions of the graph: thin steps over the domain modules, talking in URIs and counts.

Every stage reads ``state["params"]`` (the run input) and the payloads of the stages before it, and
returns its own payload. Tables go to ``<output>/_run/`` as Parquet.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from wildlife import (
    budget,
    calibration,
    checkpoint,
    clock,
    exif,
    fs,
    geo,
    monthly_stop,
    outputs,
    parallel,
    rowbatches,
    stage0,
    stage1,
    stage2,
    video,
    video_results,
    weather,
)
from wildlife import deployments as deps
from wildlife import detect as detectors
from wildlife.budget import array_size
from wildlife.classify import decisions
from wildlife.classify import runtime as classifiers
from wildlife.events import EventRules
from wildlife.graph import table_uri
from wildlife.presets import detector_of
from wildlife.runinput import RunInput
from wildlife.species import per_photo_taxa

PHOTOS_PER_STAGE0_SHARD = 5000  # per Lambda of Stage 0's Distributed Map: ~3 min of S3 range reads
# the looping stages' checkpoints, under the run's work files: re-running such a stage alone starts them afresh
CHECKPOINTS = {"Stage0Exif": "stage0", "Stage1Detect": "stage1"}


@dataclass
class Context:
    """What a stage needs from whoever runs it, beyond the state: time limits and checkpoint size."""

    deadline: float | None = None  # time.monotonic() value after which loops stop at a checkpoint
    checkpoint_every: int = checkpoint.DEFAULT_EVERY
    started: float = field(default_factory=time.monotonic)


def work_uri(state: dict[str, Any], name: str) -> str:
    """Where a run's work files go: ``<output>/_run/`` unless the run input names a ``work_uri`` (on AWS the
    CLI puts them under the bucket's ``tmp/``, which expires)."""
    base = state["params"].get("work_uri") or fs.join(state["params"]["output_uri"], "_run")
    return fs.join(base, name)


def _estimate(params: dict[str, Any], photos: int, total_bytes: int, measured: dict | None) -> budget.Estimate:
    return budget.estimate(
        photos, total_bytes,
        target=params["target"], detector=detector_of(params), use_spot=params["use_spot"],
        instance_type=params.get("instance_type"), prices=budget.load_prices(params.get("prices_uri")),
        measured=measured, classifier=params.get("classifier") or "none",
        expected_empty_share=params.get("expected_empty_share"))


def _calibrate(params: dict[str, Any], manifest: pa.Table) -> dict[str, Any] | None:
    """This machine's rates for a local run (None elsewhere: the price table knows the cloud's)."""
    if params["target"] != "local":
        return None
    pending = manifest.filter(pc.equal(manifest.column("status"), "pending"))  # the first few as dicts: enough
    pending = pending.slice(0, max(calibration.PHOTOS, calibration.MIN_INPUT)).to_pylist()  # for calibrate's tests
    return calibration.calibrate(pending, detector_of(params),
                                 params.get("sequence_gap_s", EventRules.burst_gap_s),
                                 params.get("max_megapixels", exif.DEFAULT_MAX_MEGAPIXELS))


def guard_budget(state: dict[str, Any], ctx: Context) -> dict[str, Any]:
    params = state["params"]
    monthly_stop.refuse_run_if_stopped(params)  # the stack stopped spending this month: exit 3, nothing started
    video.parse_sample(params.get("video_sample") or video.DEFAULT_SAMPLE)  # a bad --video-sample: exit 2 now
    if params.get("country"):
        geo.place_code(params["country"])  # a bad --country is exit 2 before any work, not after detection
    if params.get("target", "local") == "local":  # else Stage 1 runs in the detector container, which checks
        detectors.check(detector_of(params))  # opens the model, runs it once: a bad file is exit 2 before any work
        classifiers.check(params.get("classifier", RunInput.default("classifier")))  # and the species model
    manifest = stage0.scan(params["input_uri"], params.get("max_images"), follow_links=bool(params.get("follow_links")),
                           output_uri=params["output_uri"], video_sample=params.get("video_sample"))
    fs.write_table(manifest, work_uri(state, "manifest.parquet"))
    pending = pc.equal(manifest.column("status"), "pending")
    photos = video_results.items_to_run(manifest, params.get("video_sample"))  # a video counts as its frames
    total_bytes = pc.sum(pc.if_else(pending, manifest.column("size"), 0)).as_py() or 0
    measured = _calibrate(params, manifest)
    est = _estimate(params, photos, total_bytes, measured)
    shards_uri = work_uri(state, "stage0-shards.json")
    fs.write_json(shards_uri, [{"shard": i} for i in range(stage0_shards(photos))])
    payload = {"manifest_uri": work_uri(state, "manifest.parquet"), "files": manifest.num_rows,
               "photos": photos, "bytes": total_bytes, "estimate": est.as_dict(), "calibration": measured,
               "stage0_shards": stage0_shards(photos), **_s3_location(shards_uri)}
    state["GuardBudget"] = payload  # the report shows the refused estimate too
    budget.guard(est, params["budget_dkk"], params.get("max_job_duration"))
    return payload


def stage0_shards(photos: int) -> int:
    return max(1, math.ceil(photos / PHOTOS_PER_STAGE0_SHARD))


def _s3_location(uri: str) -> dict[str, str | None]:
    """Bucket and key of an s3:// URI, for the Distributed Map's ItemReader (None for local runs)."""
    if not uri.startswith("s3://"):
        return {"shards_bucket": None, "shards_key": None}
    bucket, _, key = uri.removeprefix("s3://").partition("/")  # no stage imports the stack's code (cloud.py)
    return {"shards_bucket": bucket, "shards_key": key}


def _stage0_loop(state: dict[str, Any], ctx: Context, pending: pa.Table, prefix: str = "part-"):
    params = state["params"]
    table = deps.load(params["deployments_uri"]) if params.get("deployments_uri") else {}
    read = partial(stage0.read_headers, deployments=table,
                   max_megapixels=params.get("max_megapixels", exif.DEFAULT_MAX_MEGAPIXELS))
    with parallel.chunk_mapper(read, len(pending)) as work:  # every core reads headers
        done, resumed = checkpoint.run_chunks(
            pending, key="photo_id", parts_uri=work_uri(state, CHECKPOINTS["Stage0Exif"]),
            schema=stage0.MEDIA_SCHEMA, every=max(ctx.checkpoint_every, 1000), label="Stage 0  EXIF + clock",
            deadline=ctx.deadline, work=work, prefix=prefix,
        )
    return done, resumed, table


def _pending(state: dict[str, Any]) -> tuple[pa.Table, pa.Table]:
    """The manifest's photos to read, and the whole manifest (tables: a million rows stay in Arrow)."""
    manifest = fs.read_table(table_uri(state, "manifest"))
    return manifest.filter(pc.equal(manifest.column("status"), "pending")), manifest


def stage0_shard(state: dict[str, Any], ctx: Context) -> dict[str, Any]:
    """AWS: one Distributed Map item, ``state["shard"]``: the headers of its slice of the pending photos."""
    i = int(state["shard"])
    pending, _ = _pending(state)
    mine = pending[i * PHOTOS_PER_STAGE0_SHARD:(i + 1) * PHOTOS_PER_STAGE0_SHARD]
    _, resumed, _ = _stage0_loop(state, ctx, mine, prefix=f"part-s{i:05d}-")
    return {"shard": i, "photos": len(mine), "resumed": resumed}


def stage0_exif(state: dict[str, Any], ctx: Context) -> dict[str, Any]:
    """Headers of every pending photo not read yet (all of them locally; none left after the AWS shards),
    then the flags that need all photos at once, and the media table."""
    pending, manifest = _pending(state)
    done, resumed, table = _stage0_loop(state, ctx, pending)
    not_read = manifest.filter(pc.not_equal(manifest.column("status"), "pending"))
    del pending, manifest  # a million rows each: not held while the media table is made
    media = stage0.media_table(done, not_read, table)
    fs.write_table(media, work_uri(state, "media.parquet"))
    statuses = rowbatches.counts(media.column("status"))
    flags = rowbatches.counts(pc.list_flatten(media.column("clock_flags")))
    return {"media_uri": work_uri(state, "media.parquet"), "photos_ok": statuses.get("ok", 0),
            "failed": statuses.get("failed", 0), "skipped": statuses.get("skipped", 0),
            "resumed": resumed, "clock_flags": dict(flags), "deployments_in_table": len(table)}


def cost_estimation(state: dict[str, Any], ctx: Context) -> dict[str, Any]:
    media = fs.read_table(table_uri(state, "media"), )
    ok = pc.equal(media.column("status"), "ok")
    photos = video_results.items_to_run(media, state["params"].get("video_sample"))  # a video counts as its frames
    total_bytes = pc.sum(pc.if_else(ok, media.column("size"), 0)).as_py() or 0
    est = _estimate(state["params"], photos, total_bytes, state["GuardBudget"].get("calibration"))
    params = state["params"]
    # on AWS, Stage 1 is an array job: its size and the container's command travel in this payload
    payload = {"estimate": est.as_dict(), "photos": photos,
               "array_size": array_size(photos),
               "stage1_timeout_s": int(params.get("max_job_duration") or budget.DEFAULT_MAX_JOB_DURATION_S),
               "stage1_command": ["--input", table_uri(state, "media"),
                                  "--output", work_uri(state, CHECKPOINTS["Stage1Detect"]),
                                  "--detector", detector_of(params), "--sequence-gap", str(params["sequence_gap_s"]),
                                  "--classifier", params.get("classifier", RunInput.default("classifier")),
                                  "--video-sample", params.get("video_sample") or video.DEFAULT_SAMPLE]}
    state["CostEstimation"] = payload
    budget.guard(est, state["params"]["budget_dkk"], state["params"].get("max_job_duration"))
    return payload


def stage1_detect(state: dict[str, Any], ctx: Context) -> dict[str, Any]:
    """Locally: Stage 1 as shard 0 of 1, then the same collect step as on AWS."""
    params = state["params"]
    stage1.run_shard(table_uri(state, "media"), work_uri(state, CHECKPOINTS["Stage1Detect"]), detector_of(params),
                     params["sequence_gap_s"], 0, 1, ctx.checkpoint_every, ctx.deadline,
                     params.get("max_megapixels", exif.DEFAULT_MAX_MEGAPIXELS),
                     params.get("classifier", RunInput.default("classifier")),
                     params.get("video_sample") or video.DEFAULT_SAMPLE)
    return stage1_collect(state, ctx)


def stage1_collect(state: dict[str, Any], ctx: Context) -> dict[str, Any]:
    """The stage's payload over its shards (the Batch array job's on AWS); the shards are its table."""
    folder = work_uri(state, CHECKPOINTS["Stage1Detect"])
    return {"results_uri": folder, **stage1.collect(folder, detector_of(state["params"]))}


def stage2_events(state: dict[str, Any], ctx: Context) -> dict[str, Any]:
    """Detections, per-photo summaries and events; writes ``detections.parquet`` (the user's, once) and the
    photos table that becomes ``images.parquet``."""
    params = state["params"]
    results = stage1.read_results(table_uri(state, "results"))
    media = stage1.join_results(fs.read_table(table_uri(state, "media")), results)
    # from here only the videos' frame rows of it are read: the photos' rows (a million) are let go
    results = results.filter(pc.is_valid(results.column("frame_number")))
    det = state["Stage1Detect"]["detector"]
    detections = pa.concat_tables([stage2.explode(media, f"{det['name']} {det['version']}"),
                                   video_results.frame_detections(media, results, f"{det['name']} {det['version']}",
                                                                  stage2.DETECTION_SCHEMA)])
    detections = stage2.flag_static(detections)
    detections, species = decisions.apply(detections, video_results.with_frame_boxes(media, results),
                                          table_uri(state, "results"), params)  # a video's frames get species too
    best = stage1.take_by_key(media.column("photo_id"), stage2.per_photo(detections, params["conf_threshold"]),
                              "photo_id")
    photos = media.select(["photo_id", "deployment_id", "timestamp", "sequence_id", "assessed"])
    for name in ("top_category", "max_conf", "n_detections"):
        photos = photos.append_column(name, best.column(name))
    usable = stage2.usable_time(media)
    photos = photos.append_column("usable_time", pa.array(usable, pa.bool_()))
    photos = photos.append_column("timestamp_end", video_results.end_times(media))
    rules = EventRules(method=params.get("events_method") or "gap",
                       event_gap_s=EventRules.event_gap_s if params.get("event_gap_s") is None
                       else params["event_gap_s"],
                       burst_gap_s=params["sequence_gap_s"],
                       independence_s=params.get("independence_s", EventRules.independence_s))
    taxa = per_photo_taxa(detections, params["conf_threshold"])  # events per deployment and taxon
    event_ids, table, taxa_events = stage2.group_taxon_events(photos, rules, taxa)
    detections = stage2.box_events(detections, taxa, taxa_events, params["conf_threshold"])
    images = media.drop_columns(["detections", "sequence_id"]).append_column("sequence_id", media["sequence_id"])
    images = images.append_column("event_id", event_ids)
    for name in ("top_category", "max_conf", "n_detections"):
        images = images.append_column(name, best.column(name))
    for name, column in video_results.video_columns(media, results, detections, params["conf_threshold"]).items():
        images = images.append_column(name, column)
    uris = {"images": work_uri(state, "images.parquet"), "events": work_uri(state, "events.parquet"),
            "detections": fs.join(params["output_uri"], "detections.parquet")}
    fs.write_table(images, uris["images"])
    fs.write_table(detections, uris["detections"])
    fs.write_table(table, uris["events"])
    static_count = pc.sum(detections.column("suspected_static").cast(pa.int64())).as_py() or 0
    n_ok = pc.sum(pc.equal(media.column("status"), "ok")).as_py() or 0
    payload = {"images_uri": uris["images"], "detections_uri": uris["detections"], "events_uri": uris["events"],
               "events": table.num_rows,
               "independent_events": pc.sum(table.column("independent").cast(pa.int64())).as_py() or 0,
               "suspected_static_detections": static_count, "method": rules.describe(),
               "unassessed": n_ok - (pc.sum(media.column("assessed").cast(pa.int64())).as_py() or 0),
               "untrusted_time": n_ok - int(usable.sum()), "species": species, "warnings": list(species["warnings"])}
    if payload["untrusted_time"]:
        payload["warnings"].append(f"{payload['untrusted_time']} photo(s) with an untrusted clock "
                                   f"({', '.join(sorted(clock.UNTRUSTED_FLAGS))}) take part in no event")
    if rules.method == "hdbscan":
        payload["compared_to_gap"] = stage2.compare_to_gap(photos, rules, taxa)
    return payload


def weather_enrichment(state: dict[str, Any], ctx: Context) -> dict[str, Any]:
    params = state["params"]
    name = params.get("weather_provider") or "open-meteo"
    events = fs.read_table(table_uri(state, "events"))
    if name == "none" or events.num_rows == 0:
        reason = "--weather-provider none" if name == "none" else "no positive events"
        return {"weather_uri": None, "provider": None, "events": 0, "skipped": reason}
    provider = weather.PROVIDERS[name]()
    coords = deps.coordinates(params.get("deployments_uri"), fs.read_table(table_uri(state, "media")))
    days_back = int(params.get("weather_days_back") or 0)
    deadline, limit = time.monotonic() + weather.STAGE_S, f"the weather stage's limit of {weather.STAGE_S:g} s"
    if ctx.deadline is not None and ctx.deadline < deadline:
        mjd = params.get("max_job_duration")
        deadline, limit = ctx.deadline, "the run's time limit" + (f" (--max-job-duration {mjd:g} s)" if mjd else "")
    rows, summary = weather.enrich(events.to_pylist(), coords, provider, days_back,
                                   weather.session(provider, deadline=deadline, limit=limit))
    table = pa.Table.from_pylist(rows, schema=weather.schema(days_back))
    uri = fs.join(params["output_uri"], "weather", "weather.parquet")
    fs.write_table(table, uri)
    with_weather = table.num_rows - table.column("weather_time").null_count
    return {"weather_uri": uri, "provider": provider.name, "events": table.num_rows,
            "events_with_weather": with_weather, "requests": summary["requests"],
            "from_cache": summary["from_cache"], "failed_requests": summary["failed"],
            "warnings": summary["warnings"]}


def write_outputs(state: dict[str, Any], ctx: Context) -> dict[str, Any]:
    return outputs.write_all(state)

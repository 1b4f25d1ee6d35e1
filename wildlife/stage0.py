"""Stage 0: list the input, read every photo's header, assign deployments, fix the clock.

Every file under the input gets exactly one row in the media table, whatever it is: photos and videos
(``wildlife.video``) get ``status=ok``; files that cannot be used get ``failed`` with the reason; files
outside the run (neither photos nor videos, beyond ``--max-images``) get ``skipped`` with the reason.
"""

from __future__ import annotations

import hashlib
import os
from datetime import UTC, datetime
from functools import partial
from itertools import islice
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from wildlife import clock, exif, fs, parallel, video
from wildlife.deployments import Deployment, assign, by_deployment
from wildlife.errors import OdinError
from wildlife.progress import progress_bar

PHOTO_EXTENSIONS = {".jpg", ".jpeg", ".jpe", ".jfif", ".png", ".tif", ".tiff"}  # compared lower-case

MANIFEST_SCHEMA = pa.schema([
    ("photo_id", pa.string()),
    ("relpath", pa.string()),
    ("uri", pa.string()),
    ("uri_raw", pa.binary()),  # the exact bytes of a local path that is not valid UTF-8, else null
    ("size", pa.int64()),
    ("mtime", pa.float64()),
    ("status", pa.string()),  # "pending" for photos to process, else skipped/failed already
    ("reason", pa.string()),
])

HEADER_FIELDS = [
    ("format", pa.string()), ("width", pa.int32()), ("height", pa.int32()),
    ("make", pa.string()), ("model", pa.string()), ("serial_number", pa.string()),
    ("user_label", pa.string()), ("datetime_original", pa.string()),
    ("subsec_time_original", pa.string()), ("offset_time_original", pa.string()),
    ("maker_datetime", pa.string()), ("gps_latitude", pa.float64()), ("gps_longitude", pa.float64()),
    ("gps_altitude", pa.float64()), ("maker_sequence_index", pa.int32()),
    ("maker_sequence_length", pa.int32()), ("maker_event_number", pa.int64()),
    ("ambient_temperature_c", pa.float64()), ("moon_phase", pa.string()), ("trigger_mode", pa.string()),
    ("exif_error", pa.string()),
]

MEDIA_SCHEMA = pa.schema([
    *(pa.field("mtime", pa.timestamp("us", tz="UTC")) if f.name == "mtime" else f for f in MANIFEST_SCHEMA),
    ("deployment_id", pa.string()),
    ("deployment_assigned_by", pa.string()),
    ("timestamp", pa.timestamp("us", tz="UTC")),
    ("timestamp_local", pa.timestamp("us")),  # no zone: the wall-clock time at the site, in utc_offset_min
    ("utc_offset_min", pa.int32()),  # minutes east of UTC: timestamp_local = timestamp + utc_offset_min
    ("timestamp_source", pa.string()),
    ("clock_flags", pa.list_(pa.string())),
    ("timestamp_trusted", pa.bool_()),  # clock.trusted(clock_flags) and a timestamp exists
    *HEADER_FIELDS,
    *video.VIDEO_FIELDS,
])


SCAN_BATCH = 50_000  # manifest rows held as Python dicts at once


def photo_id(relpath: str) -> str:
    return hashlib.sha1(relpath.encode("utf-8", "surrogateescape")).hexdigest()[:16]


def scan(input_uri: str, max_images: int | None, *, follow_links: bool = False,
         output_uri: str | None = None, video_sample: str | None = None) -> pa.Table:
    """The manifest: one row per file under ``input_uri``, in relative-path order.

    ``--max-images N`` keeps the first N photo files in that order (a video counts as its frames sampled
    under ``video_sample``); the rest are skipped with a reason.
    ``output_uri`` (the run's own folder, when it lies inside the input) is never listed.
    """
    batches, rows = [], []  # rows become Arrow a batch at a time: a million dicts would be a GB
    photos = 0
    local = fs.is_local(input_uri)
    exclude = (output_uri,) if output_uri else ()
    for entry in fs.list_files(input_uri, follow_links=follow_links, exclude=exclude):
        relpath = _printable(entry.relpath) if local else entry.relpath
        uri = _printable(entry.uri) if local else entry.uri
        raw = os.fsencode(entry.uri) if uri != entry.uri else None
        row = {"photo_id": photo_id(entry.relpath), "relpath": relpath, "uri": uri, "uri_raw": raw,
               "size": entry.size, "mtime": entry.mtime, "status": "pending", "reason": None}
        ext = os.path.splitext(relpath)[1].lower()
        if entry.error:
            row.update(status="failed", reason=entry.error)
        elif entry.skipped:
            row.update(status="skipped", reason=entry.skipped)
        elif ext not in PHOTO_EXTENSIONS and ext not in video.VIDEO_EXTENSIONS:
            row.update(status="skipped", reason=f"not a photo or video file (extension {ext or 'none'!r})")
        elif max_images is not None:
            items = video.sampled_count(openable(row), video_sample) if ext in video.VIDEO_EXTENSIONS else 1
            if photos + items > max_images:
                why = f"; a video counts as its sampled frames: {items}" if ext in video.VIDEO_EXTENSIONS else ""
                row.update(status="skipped", reason=f"beyond --max-images {max_images} (input order: path{why})")
            else:
                photos += items
        rows.append(row)
        if len(rows) == SCAN_BATCH:
            batches.append(pa.RecordBatch.from_pylist(rows, schema=MANIFEST_SCHEMA))
            rows = []
    batches.append(pa.RecordBatch.from_pylist(rows, schema=MANIFEST_SCHEMA))
    return pa.Table.from_batches(batches, schema=MANIFEST_SCHEMA)


VANISHED = "vanished from --input before --resume"


def changed_input(stored: pa.Table, fresh: pa.Table, max_images: int | None,
                  video_sample: str | None = None) -> tuple[pa.Table, list[str], list[str]]:
    """A resumed run's manifest: the stored rows, plus the files listed now that were not there before
    (``fresh`` is a scan without ``--max-images``; the cap still holds, a video counting as its sampled
    frames), with the stored files that are gone marked as vanished. Returns it with the added and vanished
    relpaths."""
    now = {r["photo_id"]: r for r in fresh.to_pylist()}
    rows = stored.to_pylist()
    before = {r["photo_id"] for r in rows}
    vanished = []
    for row in rows:
        if row["photo_id"] not in now and not (row["reason"] or "").startswith(VANISHED):
            vanished.append(row["relpath"])
            row.update(status="failed" if row["status"] == "pending" else row["status"],
                       reason=f"{VANISHED} (before: {row['reason']})" if row["reason"] else VANISHED)
    def items(row: dict[str, Any]) -> int:
        if max_images is None or not video.is_video(row["relpath"]):
            return 1
        return video.sampled_count(openable(row), video_sample)

    photos = sum(items(r) for r in rows if r["status"] == "pending")
    added = [r for r in now.values() if r["photo_id"] not in before]
    for row in sorted(added, key=lambda r: r["relpath"]):
        n = items(row) if row["status"] == "pending" else 0
        if n and max_images is not None and photos + n > max_images:
            row.update(status="skipped", reason=f"beyond --max-images {max_images} (input order: path)")
        elif n:
            photos += n
    merged = sorted(rows + added, key=lambda r: r["relpath"])
    return pa.Table.from_pylist(merged, schema=MANIFEST_SCHEMA), [r["relpath"] for r in added], vanished


def openable(row: dict[str, Any]) -> str | bytes:
    """What to open for a manifest row: its URI, or the raw bytes of a name that is not UTF-8."""
    return row.get("uri_raw") or row["uri"]


def _printable(text: str) -> str:
    """File names that are not valid UTF-8 keep their bytes as \\x escapes instead of breaking Parquet.

    A backslash in the name is doubled first, so the text stays one-to-one with the name: the byte 0xff
    prints as ``\\xff`` and a name spelled with a real backslash, x, f, f as ``\\\\xff``.
    """
    return text.replace("\\", "\\\\").encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def read_headers(
    photos: list[dict[str, Any]],
    deployments: dict[str, Deployment],
    max_megapixels: float,
) -> list[dict[str, Any]]:
    """One media row per manifest row: header fields, and deployment (times are set in ``finish``).

    Whatever a file's bytes are, its row comes back (``failed`` with the reason when it cannot be used):
    ``exif.read_header`` turns every problem in the bytes into ``BadPhoto``. An exception anywhere else is a
    bug in Odin; it stops the run and names the file it was reading.
    """
    out = []
    for item in photos:
        row = dict(item)
        row["clock_flags"] = []
        try:
            try:
                with fs.open_read(openable(item)) as f:
                    if video.is_video(item["relpath"]):
                        row.update(video.read_metadata(f, item["relpath"]))
                    else:
                        row.update(exif.read_header(f, item["size"], max_megapixels))
                row["status"], row["reason"] = "ok", None
            except (exif.BadPhoto, video.BadVideo) as exc:
                row["status"], row["reason"] = "failed", str(exc)
            except OSError as exc:
                row["status"], row["reason"] = "failed", f"cannot read file: {exc.strerror or exc}"
            _place_in_time(row, deployments)
        except OdinError:
            raise
        except Exception as exc:
            raise RuntimeError(f"Stage 0 stopped at {item['relpath']}: {type(exc).__name__}: {exc} "
                               "(a bug in Odin; please report it with this file)") from exc
        out.append(row)
    return out


def _place_in_time(row: dict[str, Any], deployments: dict[str, Deployment]) -> None:
    """The photo's deployment; its time needs the whole deployment's photos and is set in ``finish``."""
    local = clock.camera_time(row)[0]
    camera_ids = (row.get("serial_number"), row.get("user_label"))
    approx = local.replace(tzinfo=UTC) if local else None
    row["deployment_id"], row["deployment_assigned_by"] = assign(row["relpath"], camera_ids, approx, deployments)
    row["mtime"] = clock.epoch_utc(row.get("mtime"))


def finish(
    media_rows: list[dict[str, Any]], deployments: dict[str, Deployment] | None = None,
    now_utc: datetime | None = None,
) -> pa.Table:
    """Times and flags that need all photos at once (each deployment's clock rule), then the media table in
    manifest order. ``deployments`` is the table ``read_headers`` assigned from."""
    now = now_utc or datetime.now(UTC)
    clocks = clock.deployment_clocks(media_rows, deployments or {})
    for row in media_rows:
        row["mtime"] = clock.epoch_utc(row.get("mtime"))
        row["media_type"] = video.media_type(row["relpath"])
        if row.get("deployment_assigned_by") is None:  # skipped before reading: no time to place
            continue
        found = clocks.get(row["deployment_id"], clock.NO_DEPLOYMENT)
        placed = clock.to_utc(row, found.deployment, now, rule=found.rule)
        row["timestamp"], row["timestamp_local"], row["utc_offset_min"] = placed.utc, placed.local, placed.offset_min
        row["timestamp_source"] = placed.source
        row["clock_flags"] = placed.flags
    clock.flag_backwards([r for r in media_rows if r["status"] == "ok"])
    for row in media_rows:
        row["timestamp_trusted"] = row.get("timestamp") is not None and clock.trusted(row.get("clock_flags"))
    media_rows.sort(key=lambda r: r["relpath"])
    return pa.Table.from_pylist(media_rows, schema=MEDIA_SCHEMA)


def media_table(read: pa.Table, not_read: pa.Table, deployments: dict[str, Deployment] | None = None,
                now_utc: datetime | None = None) -> pa.Table:
    """``finish`` over the rows Stage 0 read (``MEDIA_SCHEMA``) and the manifest rows it did not (skipped,
    failed), one deployment at a time: every rule ``finish`` applies is per deployment, so only one deployment's
    rows are Python dicts at once, never the whole run's, and the deployments are shared out to every core
    (``parallel.chunk_mapper``). The media table in manifest (path) order."""
    now = now_utc or datetime.now(UTC)  # one "now" for every deployment
    rest = [dict(r, clock_flags=[], mtime=clock.epoch_utc(r["mtime"])) for r in not_read.to_pylist()]
    table = pa.concat_tables([read.select(MEDIA_SCHEMA.names).cast(MEDIA_SCHEMA),
                              pa.Table.from_pylist(rest, schema=MEDIA_SCHEMA)])
    groups = by_deployment(table)  # one deployment's copy at a time: a list of them all would be the run twice
    step = 4 * parallel.workers()  # deployments handed out at once: a few per worker, then progress
    pieces = []
    work = partial(_finish_each, deployments=deployments, now_utc=now)
    with (progress_bar("Stage 0  clock, per deployment", total=table.num_rows, unit="rows") as advance,
          parallel.chunk_mapper(work, table.num_rows) as run):
        while some := list(islice(groups, step)):
            pieces += run([parallel.own_rows(rows) for _, rows in some])
            dep_id = some[-1][0]
            advance(sum(rows.num_rows for _, rows in some),
                    doing=f"deployment {dep_id}" if dep_id else "files without a deployment")
    if not pieces:
        return MEDIA_SCHEMA.empty_table()
    merged = pa.concat_tables(pieces)
    del pieces, table
    order = pc.sort_indices(merged, [("relpath", "ascending")])
    columns = dict(zip(merged.column_names, merged.columns, strict=True))
    del merged  # each column is put in order and its unordered copy let go, so the run is held once, not twice
    return pa.table({name: columns.pop(name).take(order) for name in MEDIA_SCHEMA.names}, schema=MEDIA_SCHEMA)


def _finish_each(tables: list[pa.Table], deployments: dict[str, Deployment] | None,
                 now_utc: datetime) -> list[pa.Table]:
    """``finish`` of each table, one deployment's rows each (a worker's share of ``media_table``)."""
    return [finish(rows.to_pylist(), deployments, now_utc) for rows in tables]

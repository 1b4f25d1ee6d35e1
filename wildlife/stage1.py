"""Stage 1 as plain functions: which photos to run, how to shard them, running a detector resumably.

Used by the local runner's stage and by the Batch container (``python -m wildlife.batch``), which runs one
shard of an array job.
"""

from __future__ import annotations

import json
from collections import Counter
from types import SimpleNamespace
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from wildlife import checkpoint, exif, fs, outputs, sequences, stage0
from wildlife.detect import sequence_of
from wildlife.errors import StageFailed


def photos_to_detect(media: pa.Table, gap_s: float,
                     max_megapixels: float = exif.DEFAULT_MAX_MEGAPIXELS) -> list[dict[str, Any]]:
    """The ok photos, in sequence order (so a sequence is contiguous), with the URI to open, each photo's
    place in its sequence (``sequence_index`` of ``sequence_size``) and the run's pixel limit."""
    media = media.append_column("sequence_id", sequences.assign(media, gap_s))
    cols = ["photo_id", "uri", "uri_raw", "width", "height", "sequence_id", "status"]
    photos = [dict(r, uri=stage0.openable(r), max_megapixels=max_megapixels)
              for r in media.select(cols).to_pylist() if r["status"] == "ok"]
    photos.sort(key=lambda r: (r["sequence_id"] or "", r["photo_id"]))
    sizes = Counter(sequence_of(p) for p in photos)
    seen: Counter = Counter()
    for p in photos:
        key = sequence_of(p)
        p["sequence_index"], p["sequence_size"] = seen[key], sizes[key]
        seen[key] += 1
    return photos


def shard(photos: list[dict[str, Any]], index: int, size: int) -> list[dict[str, Any]]:
    """Shard ``index`` of ``size``: contiguous, about equal, never splitting a sequence."""
    if not 0 <= index < size:
        raise ValueError(f"shard index {index} is outside 0..{size - 1}")
    n = len(photos)
    bounds = [round(n * k / size) for k in range(size + 1)]
    seq = [p["sequence_id"] for p in photos]
    for k in range(1, size):  # move each cut forward to the next sequence start
        b = bounds[k]
        while 0 < b < n and seq[b] is not None and seq[b] == seq[b - 1]:
            b += 1
        bounds[k] = max(b, bounds[k - 1])
    return photos[bounds[index]:max(bounds[index], bounds[index + 1])]


def detect(photos: list[dict[str, Any]], detector, parts_uri: str, every: int,
           deadline: float | None = None) -> tuple[pa.Table, int]:
    """Results (one row per photo, ``outputs.RESULT_SCHEMA``), checkpointed every ``every`` photos.

    A chunk may end inside a sequence (at a boundary the detector's ``chunk_key`` allows); it then brings
    the ``detector.context`` neighbours on each side that its photos are compared with.
    """
    position = {p["photo_id"]: i for i, p in enumerate(photos)}

    def work(chunk):
        first, last = position[chunk[0]["photo_id"]], position[chunk[-1]["photo_id"]]
        wanted = {sequence_of(p) for p in chunk}
        ids = {p["photo_id"] for p in chunk}
        span = photos[max(0, first - detector.context):last + detector.context + 1]
        batch = [p for p in span if p["photo_id"] in ids or sequence_of(p) in wanted]
        results = dict(zip((p["photo_id"] for p in batch), detector.detect(batch), strict=True))
        return [outputs.result_row(p["photo_id"], results[p["photo_id"]]) for p in chunk]

    return checkpoint.run_chunks(
        photos, key="photo_id", parts_uri=parts_uri, schema=outputs.RESULT_SCHEMA, every=every,
        label=f"Stage 1  {detector.name}", deadline=deadline, work=work, group=detector.chunk_key,
    )


def require_some_success(results: pa.Table, parts_uri: str | None = None) -> None:
    """Raise ``StageFailed`` when every photo failed: a detector that fails on everything is not a result.

    The checkpoint parts under ``parts_uri`` are removed first: they hold nothing worth keeping, and a
    ``--resume`` after the fix must run the photos again.
    """
    failures = results.column("failure").to_pylist()
    if not failures or not all(failures):
        return
    if parts_uri:
        filesystem, path = fs.filesystem(parts_uri)
        filesystem.delete_dir_contents(path, missing_dir_ok=True)
    reasons = list(dict.fromkeys(failures))[:3]
    raise StageFailed(f"Stage 1: all {len(failures)} photos failed; first reasons: " + "; ".join(reasons),
                      hint="Fix the cause (the detector or the photos) and re-run with --resume: Stage 1 "
                           "starts again from the first photo.")


def summary(results: pa.Table, detector, requested: str, resumed: int, warnings: list[str]) -> dict[str, Any]:
    notes = Counter(n for n in results.column("note").to_pylist() if n)
    has_det = pc.greater(pc.list_value_length(results.column("detections")), 0)
    return {"detector": {"name": detector.name, "version": detector.version, "requested": requested},
            "photos": results.num_rows, "with_detections": pc.sum(has_det.cast(pa.int64())).as_py() or 0,
            "failed": results.num_rows - pc.count(results.column("failure"), mode="only_null").as_py(),
            "resumed": resumed,
            "warnings": warnings + [f"{count} photo(s): {note}" for note, count in notes.items()]}


def write_shard(results: pa.Table, uri: str, detector) -> None:
    meta = {b"odin.detector": json.dumps({"name": detector.name, "version": detector.version}).encode()}
    fs.write_table(results.replace_schema_metadata(meta), uri)


def read_shards(folder_uri: str):
    """All ``shard-*.parquet`` results of an array job, and the detector that made them."""
    names = [n for n in fs.list_names(folder_uri) if n.startswith("shard-") and n.endswith(".parquet")]
    tables = [fs.read_table(fs.join(folder_uri, n)) for n in names]
    info = {"name": "unknown", "version": "unknown"}
    for t in tables:
        raw = (t.schema.metadata or {}).get(b"odin.detector")
        if raw:
            info = json.loads(raw)
    merged = pa.concat_tables([t.replace_schema_metadata(None).cast(outputs.RESULT_SCHEMA) for t in tables]) \
        if tables else outputs.RESULT_SCHEMA.empty_table()
    return merged, SimpleNamespace(**info)

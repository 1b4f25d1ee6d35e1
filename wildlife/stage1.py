"""Stage 1: which photos to run, how to shard them, running a detector resumably, and its result table.

One function runs a shard of photos (``run_shard``): the Batch container (``python -m runtimes.batch``) runs
shard ``i`` of an array job, the local runner shard 0 of 1. One function gathers the shards (``collect``),
in the AWS Lambda and locally alike. Each shard writes ``shard-<index>.parquet`` (its results,
``RESULT_SCHEMA``) and ``shard-<index>.json`` (the detector that ran and the warnings from loading it), and
checkpoints under ``shard-<index>/``, so a spot instance reclaimed mid-shard, or a local run killed, resumes
where it stopped.

Stage 1 assigns each ok photo its sequence (``sequences.assign``): the motion baseline compares a sequence's
photos, and Stage 2 takes the ids from here rather than cutting them again.
"""

from __future__ import annotations

import sys
from collections import Counter
from functools import partial
from itertools import pairwise
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from wildlife import checkpoint, exif, fs, parallel, sequences, stage0, video, video_results
from wildlife import detect as detectors
from wildlife.classify import RULES_FILE
from wildlife.classify import runtime as classifiers
from wildlife.detect import Result, sequence_of
from wildlife.errors import StageFailed
from wildlife.runinput import RunInput

DETECTION_TYPE = pa.struct([
    ("category", pa.string()), ("conf", pa.float64()), ("bbox", pa.list_(pa.float64())),
    # the species classifier's top labels, best first (``wildlife.classify``); null where none looked at the box
    # (and in shards written before classification existed: they read as null)
    ("classifications", pa.list_(pa.struct([("label", pa.string()), ("score", pa.float64())]))),
])
RESULT_SCHEMA = pa.schema([
    ("photo_id", pa.string()),
    ("sequence_id", pa.string()),  # sequences.assign over the ok photos: the run's one cut into sequences
    ("detections", pa.list_(DETECTION_TYPE)),
    ("failure", pa.string()),
    ("note", pa.string()),
    ("assessed", pa.bool_()),  # False: the detector did not judge the photo; its empty list means nothing
    *video_results.FRAME_FIELDS,  # a video's sampled frames: one row each (``wildlife.video_results``)
])


def result_row(photo_id: str, result: Result, sequence_id: str | None = None) -> dict[str, Any]:
    detections = [{"category": d.category, "conf": d.conf, "bbox": list(d.bbox),
                   "classifications": None if d.classifications is None
                   else [{"label": label, "score": score} for label, score in d.classifications]}
                  for d in result.detections]
    return {"photo_id": photo_id, "sequence_id": sequence_id, "failure": result.failure, "note": result.note,
            "assessed": result.assessed, "detections": detections}


def join_results(media: pa.Table, results: pa.Table) -> pa.Table:
    """Media rows with their Stage-1 result; a detection failure turns an ok photo into a failed one.

    ``sequence_id`` is Stage 1's, for the photos still ok (null for the others, as for every row that is not
    an ok photo). ``assessed`` is True for an ok photo the detector judged (its detections, possibly none,
    mean something) and False for every other row: failed, skipped, or left unjudged (the motion baseline's
    lone photos).
    """
    results = video_results.fold(results)  # one row per video, as per photo
    matched = take_by_key(media.column("photo_id"), results, "photo_id")
    failure = matched.column("failure")
    status = pc.if_else(pc.is_valid(failure), "failed", media.column("status"))
    assessed = pc.and_(pc.equal(status, "ok"), matched.column("assessed")).fill_null(False)
    reason = pc.if_else(pc.is_valid(failure), pc.binary_join_element_wise("detection: ", failure, ""),
                        media.column("reason"))
    media = media.set_column(media.schema.get_field_index("status"), "status", status)
    media = media.set_column(media.schema.get_field_index("reason"), "reason", reason)
    sequence_id = pc.if_else(pc.equal(status, "ok").fill_null(False), matched.column("sequence_id"),
                             pa.scalar(None, pa.string()))
    return media.append_column("sequence_id", sequence_id) \
                .append_column("detections", matched.column("detections")) \
                .append_column("detection_note", matched.column("note")) \
                .append_column("assessed", assessed)


def take_by_key(keys: pa.Array | pa.ChunkedArray, table: pa.Table, key: str) -> pa.Table:
    """Rows of ``table`` matching each of ``keys`` in order (all-null rows where there is no match)."""
    return table.take(pc.index_in(keys, value_set=table.column(key)))


ITEM_BATCH = 50_000  # media rows made Python dicts at once by photos_to_detect
# the media columns photos_to_detect reads (its items', and those sequences.assign groups and orders by)
ITEM_COLUMNS = ["photo_id", "uri", "uri_raw", "width", "height", "status", "media_type", "fps", "frame_count",
                "deployment_id", "relpath", "timestamp"]


def photos_to_detect(media: pa.Table, gap_s: float, max_megapixels: float = exif.DEFAULT_MAX_MEGAPIXELS,
                     video_sample: str = video.DEFAULT_SAMPLE) -> list[dict[str, Any]]:
    """The ok photos and each ok video's sampled frames (``video_results.frame_items``), in sequence order
    (so a sequence is contiguous), with the URI to open, each item's place in its sequence
    (``sequence_index`` of ``sequence_size``) and the run's pixel limit. ``item_id`` keys each item."""
    media = media.append_column("sequence_id", sequences.assign(media, gap_s))
    media = media.filter(pc.equal(media.column("status"), "ok"))
    cols = ["photo_id", "uri", "uri_raw", "width", "height", "sequence_id"]
    cols += [c for c in ("media_type", "fps", "frame_count") if c in media.column_names]
    photos = []  # a million of these are held through Stage 1: rows become dicts a batch at a time, and a
    for batch in media.select(cols).to_batches(ITEM_BATCH):  # photo's dict keeps only what detection reads
        for r in batch.to_pylist():
            r["uri"] = stage0.openable(r)
            del r["uri_raw"]
            if r.get("media_type") != "video":  # the video fields, None for a photo (read with .get)
                for name in ("media_type", "fps", "frame_count"):
                    r.pop(name, None)
            if r["sequence_id"] is not None:
                r["sequence_id"] = sys.intern(r["sequence_id"])  # one string per sequence, not per photo
            r["max_megapixels"] = max_megapixels
            photos.append(r)
    photos = video_results.frame_items(photos, video_sample)
    photos.sort(key=lambda r: (r["sequence_id"] or "", r["photo_id"], r.get("frame_number") or 0))
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
    bounds = _cuts([p["sequence_id"] for p in photos], size)
    return photos[bounds[index]:bounds[index + 1]]


def _cuts(keys: list[Any], parts: int) -> list[int]:
    """Bounds of ``parts`` contiguous, about equal slices of ``keys``, each cut moved forward to where the key
    changes (a key of None holds nothing together)."""
    n = len(keys)
    bounds = [round(n * k / parts) for k in range(parts + 1)]
    for k in range(1, parts):
        b = bounds[k]
        while 0 < b < n and keys[b] is not None and keys[b] == keys[b - 1]:
            b += 1
        bounds[k] = max(b, bounds[k - 1])
    return bounds


def detect(photos: list[dict[str, Any]], detector, parts_uri: str, every: int,
           deadline: float | None = None) -> tuple[pa.Table, int]:
    """Results (one row per photo, ``RESULT_SCHEMA``), checkpointed every ``every`` photos.

    A chunk may end inside a sequence (at a boundary the detector's ``chunk_key`` allows); it then brings
    the ``detector.context`` neighbours on each side that its photos are compared with. A detector that runs
    in worker processes (``forks``, the motion baseline) gets each chunk cut the same way into one piece per
    worker (``parallel.chunk_mapper``): every core detects, and the parent only writes the checkpoints.
    """
    photos = [p if "item_id" in p else dict(p, item_id=p["photo_id"]) for p in photos]  # photos key themselves
    position = {p["item_id"]: i for i, p in enumerate(photos)}

    def group(photo: dict[str, Any]) -> Any:
        return photo["photo_id"] if photo.get("frame_number") is not None else detector.chunk_key(photo)

    def job(chunk: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[str]]:
        """The chunk's batch (its photos and the neighbours they are compared with), and its items in order."""
        first, last = position[chunk[0]["item_id"]], position[chunk[-1]["item_id"]]
        wanted = {sequence_of(p) for p in chunk}
        ids = [p["item_id"] for p in chunk]
        mine = set(ids)
        span = photos[max(0, first - detector.context):last + detector.context + 1]
        return [p for p in span if p["item_id"] in mine or sequence_of(p) in wanted], ids

    forks = getattr(detector, "forks", False)
    pieces = parallel.workers() if forks else 1
    with parallel.chunk_mapper(partial(_detect_jobs, detector), len(photos) if forks else 0) as run:
        def work(chunk):
            bounds = _cuts([group(p) for p in chunk], pieces)
            jobs = [job(chunk[a:b]) for a, b in pairwise(bounds) if b > a]
            return [row for rows in run(jobs) for row in rows]

        try:
            return checkpoint.run_chunks(
                photos, key="item_id", parts_uri=parts_uri, schema=RESULT_SCHEMA, every=every,
                label=f"Stage 1  {detector.name}", deadline=deadline, work=work, group=group,
            )
        finally:
            video.release()  # a video this thread decoded frames of (the motion baseline decodes here)


def _detect_jobs(detector, jobs: list[tuple[list[dict[str, Any]], list[str]]]) -> list[list[dict[str, Any]]]:
    """Per job (a batch, and the items of it to report): ``detector.detect`` over the batch, the items' rows."""
    out = []
    for batch, ids in jobs:
        results = dict(zip((p["item_id"] for p in batch), detector.detect(batch), strict=True))
        item = {p["item_id"]: p for p in batch}
        out.append([dict(result_row(item[i]["photo_id"], results[i], item[i]["sequence_id"]),
                         **video_results.item_fields(item[i])) for i in ids])
    return out


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


def run_shard(media_uri: str, folder_uri: str, detector_spec: str, gap_s: float, index: int = 0, size: int = 1,
              every: int = 500, deadline: float | None = None,
              max_megapixels: float = exif.DEFAULT_MAX_MEGAPIXELS,
              classifier_spec: str = RunInput.default("classifier"),
              video_sample: str = video.DEFAULT_SAMPLE) -> dict[str, Any]:
    """Shard ``index`` of ``size`` of Stage 1 over the media table at ``media_uri``; returns its summary.

    The species classifier (``classifier_spec``, ``--classifier``) classifies the detector's animal boxes in
    the same pass; its labels and geofence go to ``RULES_FILE`` in ``folder_uri`` for Stage 2.
    Raises ``detect.DetectorUnavailable`` (a detector or classifier that cannot be loaded) before any work.
    """
    detector, warnings = detectors.load(detector_spec)
    classifier = _attach_classifier(detector, classifier_spec, warnings)
    write_rules(folder_uri, classifier)
    media = fs.read_table(media_uri, columns=ITEM_COLUMNS)
    photos = shard(photos_to_detect(media, gap_s, max_megapixels, video_sample), index, size)
    del media
    name = fs.join(folder_uri, f"shard-{index:05d}")
    results, resumed = detect(photos, detector, name, every, deadline)
    fs.write_table(results, f"{name}.parquet")
    side = {"shard": index, "of": size, "detector": {"name": detector.name, "version": detector.version},
            "classifier": classifier and {"name": classifier.name, "version": classifier.version},
            "resumed": resumed, "warnings": warnings}
    fs.write_json(f"{name}.json", side)
    return {"shard": index, "of": size, **_summary([results], [side], detector_spec)}


def _attach_classifier(detector, spec: str, warnings: list[str]):
    """Give the detector the species classifier ``spec`` names; None, with a warning why, where none runs."""
    if spec != "none" and not hasattr(detector, "classifier"):  # the motion baseline: moving pixels, not animals
        classifiers.check(spec)  # a model asked for that cannot work is refused all the same
        warnings.append(classifiers.NO_MODEL + f"the {detector.name} detector's boxes are not classified "
                        "(--detector megadetector gives animal boxes a species model can name)")
        return None
    classifier, more = classifiers.load(spec)
    warnings += more
    if classifier is not None:
        detector.classifier = classifier
    return classifier


def write_rules(folder_uri: str, classifier) -> None:
    """``RULES_FILE`` in Stage 1's folder: the classifier's name, version, labels and geofence (Stage 2's
    input); none where no classifier ran."""
    uri = fs.join(folder_uri, RULES_FILE)
    if classifier is not None:  # every shard writes the same file
        fs.write_json(uri, classifiers.rules(classifier))
    elif fs.exists(uri):
        fs.delete(uri)


def read_rules(folder_uri: str) -> dict[str, Any] | None:
    """What ``write_rules`` wrote in Stage 1's folder (name, version, labels, geofence); None where no
    classifier ran."""
    uri = fs.join(folder_uri, RULES_FILE)
    return fs.read_json(uri) if fs.exists(uri) else None


def _shards(folder_uri: str) -> list[str]:
    return sorted(n for n in fs.list_names(folder_uri) if n.startswith("shard-") and n.endswith(".parquet"))


def read_results(folder_uri: str) -> pa.Table:
    """Stage 1's results: every shard's, as one table (the shards are the only copy)."""
    tables = [video_results.with_frame_columns(fs.read_table(fs.join(folder_uri, n))).select(RESULT_SCHEMA.names)
              .cast(RESULT_SCHEMA) for n in _shards(folder_uri)]
    return pa.concat_tables(tables) if tables else RESULT_SCHEMA.empty_table()


def collect(folder_uri: str, requested: str) -> dict[str, Any]:
    """The stage's summary over every shard: the detector, counts, and the warnings of every shard (loading
    the detector, notes on photos). Raises ``StageFailed`` when every photo failed."""
    results = read_results(folder_uri)
    sides = [fs.read_json(fs.join(folder_uri, n.removesuffix(".parquet") + ".json")) for n in _shards(folder_uri)]
    require_some_success(results, folder_uri)
    return _summary([results], sides, requested)


def _summary(tables: list[pa.Table], sides: list[dict[str, Any]], requested: str) -> dict[str, Any]:
    items = pa.concat_tables(tables) if tables else RESULT_SCHEMA.empty_table()
    results = video_results.fold(items)  # counts per file; frames are counted on their own
    frames = pc.sum(pc.is_valid(items.column("frame_number")).cast(pa.int64())).as_py() or 0
    detector = sides[0]["detector"] if sides else {"name": "unknown", "version": "unknown"}
    loading = [w for side in sides for w in side["warnings"]]
    notes = Counter(n for n in results.column("note").to_pylist() if n)
    has_det = pc.greater(pc.list_value_length(items.column("detections")), 0)
    with_detections = pc.count_distinct(items.column("photo_id").filter(has_det)).as_py() or 0
    classifier = sides[0].get("classifier") if sides else None
    if classifier is None and not any(w.startswith(classifiers.NO_MODEL) for w in loading):
        loading.append(classifiers.NO_MODEL + "Stage 1 ran without a species classifier")
    return {"detector": dict(detector, requested=requested), "classifier": classifier, "video_frames": frames,
            "photos": results.num_rows, "with_detections": with_detections,
            "failed": results.num_rows - pc.count(results.column("failure"), mode="only_null").as_py(),
            "resumed": sum(side["resumed"] for side in sides),
            "warnings": list(dict.fromkeys(loading)) + [f"{count} photo(s): {note}" for note, count in notes.items()]}

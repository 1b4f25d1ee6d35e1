"""Stage 2 as tables: static boxes flagged, positives found, photos grouped into events.

Works on the pipeline's own tables (media + Stage-1 results) and on a plain media table from elsewhere
(``events_from_table``), so events can be re-cut with other thresholds without re-running detection.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from wildlife import clock, events, static
from wildlife.events import EventRules

DETECTION_SCHEMA = pa.schema([
    ("detection_id", pa.string()), ("photo_id", pa.string()), ("relpath", pa.string()),
    ("deployment_id", pa.string()), ("sequence_id", pa.string()), ("timestamp", pa.timestamp("us", tz="UTC")),
    ("category", pa.string()), ("conf", pa.float64()), ("bbox_x", pa.float64()), ("bbox_y", pa.float64()),
    ("bbox_w", pa.float64()), ("bbox_h", pa.float64()), ("suspected_static", pa.bool_()),
    ("detector", pa.string()),
    # the species decision (``wildlife.classify``): null where no classifier judged the box
    ("label", pa.string()), ("scientific_name", pa.string()), ("common_name", pa.string()),
    ("taxon_rank", pa.string()), ("class_score", pa.float64()), ("label_score", pa.float64()),
    ("label_source", pa.string()), ("classifier", pa.string()),
    ("frame_number", pa.int64()),  # a video's frame (``wildlife.video_results``; its time is ``timestamp``), else null
])

EVENT_SCHEMA = pa.schema([
    ("cluster_id", pa.string()), ("deployment_id", pa.string()),
    ("start_time", pa.timestamp("us", tz="UTC")), ("end_time", pa.timestamp("us", tz="UTC")),
    ("photo_count", pa.int32()), ("top_category", pa.string()), ("max_conf", pa.float64()),
    ("count", pa.int32()), ("independent", pa.bool_()), ("method", pa.string()),
])


def explode(media: pa.Table, detector: str) -> pa.Table:
    """One row per detection, from media rows that carry a ``detections`` list."""
    rows = []
    for r in media.select(["photo_id", "relpath", "deployment_id", "sequence_id", "timestamp",
                           "detections"]).to_pylist():
        for n, d in enumerate(r["detections"] or []):
            x, y, w, h = d["bbox"]
            rows.append({"detection_id": f"{r['photo_id']}-{n}", "photo_id": r["photo_id"], "relpath": r["relpath"],
                         "deployment_id": r["deployment_id"], "sequence_id": r["sequence_id"],
                         "timestamp": r["timestamp"], "category": d["category"], "conf": d["conf"],
                         "bbox_x": x, "bbox_y": y, "bbox_w": w, "bbox_h": h, "suspected_static": False,
                         "detector": detector})
    return pa.Table.from_pylist(rows, schema=DETECTION_SCHEMA)


def flag_static(detections: pa.Table, **kwargs) -> pa.Table:
    if detections.num_rows == 0:
        return detections
    boxes = np.column_stack([detections.column(c).to_numpy() for c in ("bbox_x", "bbox_y", "bbox_w", "bbox_h")])
    seconds = detections.column("timestamp").cast(pa.int64()).fill_null(0).to_numpy() / 1e6
    flags = static.flag(detections.column("deployment_id").to_pylist(), detections.column("category").to_pylist(),
                        detections.column("photo_id").to_pylist(), seconds, boxes, **kwargs)
    return detections.set_column(detections.schema.get_field_index("suspected_static"), "suspected_static",
                                 pa.array(flags))


def per_photo(detections: pa.Table, threshold: float) -> pa.Table:
    """photo_id, top_category, max_conf, count (detections of the top category) over positive detections."""
    keep = pc.and_(pc.greater_equal(detections.column("conf"), threshold),
                   pc.invert(detections.column("suspected_static")))
    pos = detections.filter(keep)
    best: dict[str, tuple[str, float]] = {}
    counts: dict[tuple, int] = {}
    frames = pos.column("frame_number").to_pylist() if "frame_number" in pos.column_names else [None] * pos.num_rows
    for pid, cat, conf, frame in zip(pos.column("photo_id").to_pylist(), pos.column("category").to_pylist(),
                                     pos.column("conf").to_pylist(), frames, strict=True):
        if pid not in best or conf > best[pid][1]:
            best[pid] = (cat, conf)
        counts[(pid, frame, cat)] = counts.get((pid, frame, cat), 0) + 1
    per_frame: dict[tuple[str, str], int] = {}  # a video's count: its largest in one frame, never a sum
    for (pid, _, cat), n in counts.items():
        per_frame[(pid, cat)] = max(per_frame.get((pid, cat), 0), n)
    counts = per_frame
    ids = sorted(best)
    return pa.table({
        "photo_id": pa.array(ids, pa.string()),
        "top_category": pa.array([best[i][0] for i in ids], pa.string()),
        "max_conf": pa.array([best[i][1] for i in ids], pa.float64()),
        "n_detections": pa.array([counts[(i, best[i][0])] for i in ids], pa.int32()),
    })


def _event_numbers(photos: pa.Table, rules: EventRules, method: str | None = None):
    """(event number per row or -1, deployment code per row, deployment names, positive mask, micros)."""
    deployment = photos.column("deployment_id").fill_null("(none)")
    positive = np.asarray(pc.is_valid(photos.column("top_category")).to_numpy(zero_copy_only=False))
    codes_arr = pc.dictionary_encode(deployment).combine_chunks()
    names = codes_arr.dictionary.to_pylist()
    codes = codes_arr.indices.to_numpy(zero_copy_only=False).astype(np.int64)
    usable = np.asarray(pc.is_valid(photos.column("timestamp")).to_numpy(zero_copy_only=False))
    if "usable_time" in photos.column_names:
        usable &= np.asarray(photos.column("usable_time").fill_null(False).to_numpy(zero_copy_only=False))
    micros = photos.column("timestamp").cast(pa.int64()).fill_null(0).to_numpy(zero_copy_only=False)
    if (method or rules.method) == "gap":
        ends = _end_micros(photos, micros) / 1e6
        number = events.assign_gap(np.where(usable, codes, -1), micros / 1e6, positive, rules.event_gap_s, ends)
    else:
        number = events.assign(np.where(usable & positive, codes, -1), micros / 1e6, rules)
    return number, codes, names, positive, micros


def _end_micros(photos: pa.Table, micros: np.ndarray) -> np.ndarray:
    """Each row's end (``timestamp_end``: a video's start + duration), else its ``timestamp``."""
    if "timestamp_end" not in photos.column_names:
        return micros
    ends = photos.column("timestamp_end").cast(pa.int64()).to_numpy(zero_copy_only=False)
    return np.maximum(np.where(np.isnan(ends.astype(float)), micros, ends), micros).astype(np.int64)


def group_events(photos: pa.Table, rules: EventRules) -> tuple[pa.Array, pa.Table]:
    """Event ids per photo row (null for rows in no event) and the events table.

    ``photos`` has ``deployment_id``, ``timestamp`` and, for positive rows, ``top_category``, ``max_conf`` and
    ``n_detections`` (null elsewhere); optionally ``usable_time`` (False: the row takes part in no event, e.g.
    a photo whose clock cannot be trusted) and ``timestamp_end`` (a video's end: the event spans it, and the
    gap to the next photo counts from it). An event's times and photo count cover all its photos; its category,
    confidence and count come from its positive photos.
    """
    number, codes, names, positive, micros = _event_numbers(photos, rules)
    m = int(number.max()) + 1 if len(number) else 0
    valid = number >= 0
    ev = number[valid]
    t = micros[valid]
    start = np.full(m, np.iinfo(np.int64).max)
    end = np.full(m, np.iinfo(np.int64).min)
    np.minimum.at(start, ev, t)
    np.maximum.at(end, ev, _end_micros(photos, micros)[valid])  # a video spans [start, start + duration]
    photo_count = np.bincount(ev, minlength=m)
    dep_of_event = np.zeros(m, dtype=np.int64)
    dep_of_event[ev] = codes[valid]
    # top category: the highest-confidence positive photo's; count: the largest per-photo count of that category
    pos = valid & positive
    pev = number[pos]
    cat = np.asarray(photos.column("top_category").to_pylist(), dtype=object)[pos]
    conf = photos.column("max_conf").fill_null(0).to_numpy(zero_copy_only=False)[pos]
    cnt = photos.column("n_detections").fill_null(0).to_numpy(zero_copy_only=False)[pos]
    order = np.lexsort((-conf, pev))
    first = np.ones(len(order), dtype=bool)
    first[1:] = pev[order][1:] != pev[order][:-1]
    top_idx = order[first]  # one per event: every event has a positive photo
    top_cat = np.empty(m, dtype=object)
    max_conf = np.zeros(m)
    top_cat[pev[top_idx]] = cat[top_idx]
    max_conf[pev[top_idx]] = conf[top_idx]
    same = cat == top_cat[pev]
    count = np.zeros(m, dtype=np.int64)
    np.maximum.at(count, pev[same], cnt[same])
    independent = events.independence(dep_of_event, top_cat, start / 1e6, rules.independence_s)
    event_ids = np.array([f"{names[d]}:e{i:06d}" for i, d in enumerate(dep_of_event.tolist())], dtype=object)
    per_row = [None] * len(number)
    for i in np.flatnonzero(valid).tolist():
        per_row[i] = event_ids[number[i]]
    stamp = pa.timestamp("us", tz="UTC")
    table = pa.table({
        "cluster_id": pa.array(event_ids.tolist(), pa.string()),
        "deployment_id": pa.array([names[d] for d in dep_of_event.tolist()], pa.string()),
        "start_time": pa.array(start, stamp) if m else pa.array([], stamp),
        "end_time": pa.array(end, stamp) if m else pa.array([], stamp),
        "photo_count": pa.array(photo_count, pa.int32()),
        "top_category": pa.array(top_cat.tolist(), pa.string()),
        "max_conf": pa.array(max_conf, pa.float64()),
        "count": pa.array(count, pa.int32()),
        "independent": pa.array(independent, pa.bool_()),
        "method": pa.array([rules.describe()] * m, pa.string()),
    }, schema=EVENT_SCHEMA)
    return pa.array(per_row, pa.string()), table


def compare_to_gap(photos: pa.Table, rules: EventRules) -> dict[str, int]:
    """How the events of ``rules`` (HDBSCAN) differ from the fixed gap's over the same positive photos:
    ``merged`` events joining photos the gap rule puts in several events, ``split`` gap events cut apart."""
    number, _, _, positive, _ = _event_numbers(photos, rules)
    gap, _, _, _, _ = _event_numbers(photos, rules, method="gap")
    return events.compare(np.where(positive, gap, -1), np.where(positive, number, -1))


def read_media_table(uri: str) -> pa.Table:
    """A media table from CSV or Parquet (any URI)."""
    from wildlife import fs  # noqa: PLC0415

    if uri.lower().endswith(".parquet"):
        return fs.read_table(uri)
    import pyarrow.csv as pcsv  # noqa: PLC0415

    with fs.open_read(uri) as f:
        return pcsv.read_csv(f, convert_options=pcsv.ConvertOptions(strings_can_be_null=True))


# images.parquet's own names, so a run's table can be re-cut as it is
OWN_NAMES = {"deployment_id": "deploymentID", "photo_id": "mediaID", "top_category": "category", "max_conf": "conf",
             "n_detections": "count"}


def camtrap_names(table: pa.Table) -> pa.Table:
    """Rename Odin's columns to the Camtrap DP names ``events_from_table`` reads, where those are absent."""
    names = [OWN_NAMES.get(n, n) if OWN_NAMES.get(n) not in table.column_names else n for n in table.column_names]
    return table.rename_columns(names)


def events_from_table(
    table: pa.Table, id_column: str, threshold: float, rules: EventRules
) -> tuple[pa.Table, pa.Table]:
    """Events for a plain media table: (``id_column`` + ``eventID`` per input row, events table).

    Needs ``deploymentID`` and ``timestamp`` (ISO 8601 with offset). Optional detection columns: ``category``
    and ``conf`` (or ``count``); with them a row is positive when it has a category and conf >= threshold,
    several rows per identifier are one photo's detections. Without them every row is positive. A run's own
    ``images.parquet`` also has ``status`` and ``clock_flags``: rows that are not ok photos or whose clock is
    untrusted (``clock.trusted``) take part in no event, as in the run.
    """
    table = camtrap_names(table)
    missing = [c for c in ("deploymentID", "timestamp", id_column) if c not in table.column_names]
    if missing:
        raise ValueError(f"the table lacks column(s) {missing}; it has {table.column_names}")
    ts = table.column("timestamp")
    if not pa.types.is_timestamp(ts.type) or ts.type.tz is None:
        try:
            ts = ts.cast(pa.string()).cast(pa.timestamp("us", tz="UTC"))
        except pa.ArrowInvalid as exc:
            raise ValueError(f"timestamp must be ISO 8601 with a UTC offset: {exc}") from exc
    ts = ts.cast(pa.timestamp("us", tz="UTC"))
    ids = table.column(id_column).cast(pa.string())
    n = table.num_rows
    if "category" in table.column_names:
        cat = table.column("category").cast(pa.string())
        conf = table.column("conf").cast(pa.float64()) if "conf" in table.column_names else pa.repeat(1.0, n)
        positive = pc.and_(pc.is_valid(cat), pc.greater_equal(conf, threshold)).fill_null(False)
        count = table.column("count").cast(pa.int32()) if "count" in table.column_names else pa.repeat(1, n)
    else:
        cat, conf, count = pa.repeat("animal", n), pa.repeat(1.0, n), pa.repeat(1, n)
        positive = pa.repeat(True, n)
    usable = np.ones(n, dtype=bool)
    if "status" in table.column_names:
        usable &= np.asarray(pc.equal(table.column("status"), "ok").fill_null(False).to_numpy(zero_copy_only=False))
    if "clock_flags" in table.column_names:
        usable &= np.array([clock.trusted(f) for f in table.column("clock_flags").to_pylist()], dtype=bool)
    rows = pa.table({"photo_id": ids, "deployment_id": table.column("deploymentID").cast(pa.string()),
                     "timestamp": ts, "category": cat, "conf": conf, "count": count, "positive": positive,
                     "usable_time": usable})
    pos = rows.filter(rows.column("positive"))
    agg = pos.group_by(["photo_id", "category"]).aggregate([("conf", "max"), ("count", "sum")])
    agg = agg.sort_by([("photo_id", "ascending"), ("conf_max", "descending")])
    first = {}
    for pid, c, cf, cnt in zip(*(agg.column(k).to_pylist() for k in ("photo_id", "category", "conf_max", "count_sum")),
                               strict=True):
        first.setdefault(pid, (c, cf, cnt))
    photos = rows.group_by("photo_id", use_threads=False).aggregate(
        [("deployment_id", "first"), ("timestamp", "min"), ("usable_time", "min")])
    pids = photos.column("photo_id").to_pylist()
    photos = pa.table({
        "photo_id": photos.column("photo_id"),
        "deployment_id": photos.column("deployment_id_first"),
        "timestamp": photos.column("timestamp_min"),
        "top_category": pa.array([first.get(p, (None,))[0] for p in pids], pa.string()),
        "max_conf": pa.array([first[p][1] if p in first else None for p in pids], pa.float64()),
        "n_detections": pa.array([first[p][2] if p in first else None for p in pids], pa.int32()),
        "usable_time": photos.column("usable_time_min"),
    })
    event_ids, events_table = group_events(photos, rules)
    by_photo = pa.table({"photo_id": photos.column("photo_id"), "eventID": event_ids})
    per_row = by_photo.take(pc.index_in(ids, value_set=by_photo.column("photo_id")))
    return pa.table({id_column: ids, "eventID": per_row.column("eventID")}), events_table

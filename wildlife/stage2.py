"""Stage 2 as tables: static boxes flagged, positives found, photos grouped into events.

Works on the pipeline's own tables (media + Stage-1 results) and on a plain media table from elsewhere
(``events_from_table``), so events can be re-cut with other thresholds without re-running detection.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from wildlife import clock, events, rowbatches, species, static
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
    ("event_id", pa.string()),  # the box's event (clusters.parquet cluster_id): its photo's and its taxon's
    ("frame_number", pa.int64()),  # a video's frame (``wildlife.video_results``; its time is ``timestamp``), else null
])

EVENT_SCHEMA = pa.schema([
    ("cluster_id", pa.string()), ("deployment_id", pa.string()),
    ("start_time", pa.timestamp("us", tz="UTC")), ("end_time", pa.timestamp("us", tz="UTC")),
    ("photo_count", pa.int32()), ("top_category", pa.string()), ("max_conf", pa.float64()),
    ("count", pa.int32()), ("independent", pa.bool_()), ("method", pa.string()),
    # the event's taxon (``species.taxon_key``) and its species decision; score: the best label_score
    ("taxon", pa.string()), ("scientific_name", pa.string()), ("common_name", pa.string()),
    ("taxon_rank", pa.string()), ("score", pa.float64()),
])


def explode(media: pa.Table, detector: str) -> pa.Table:
    """One row per detection, from media rows that carry a ``detections`` list: only those rows become Python
    objects, a slice at a time (``rowbatches``), never the whole run's."""
    rows = []
    media = media.select(["photo_id", "relpath", "deployment_id", "sequence_id", "timestamp", "detections"])
    with_boxes = media.filter(pc.greater(pc.list_value_length(media.column("detections")), 0).fill_null(False))
    for r in (r for part in rowbatches.slices(with_boxes) for r in part.to_pylist()):
        for n, d in enumerate(r["detections"]):
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
    pos = species.positive(detections, threshold)
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


@dataclass
class _Cut:
    """Events over (photo, taxon) pairs: ``event`` per pair (-1: none), numbered 0, 1, ... in order of
    deployment, start and taxon; ``visit`` per photo for the gap method (its sequence; -1: none), else None."""

    event: np.ndarray
    visit: np.ndarray | None
    photo: np.ndarray  # photo row of each pair
    codes: np.ndarray  # deployment code per photo
    names: list[str]
    micros: np.ndarray
    n_events: int
    ends: np.ndarray  # each photo's end in microseconds: a video's start + duration, else its time


def _end_micros(photos: pa.Table, micros: np.ndarray) -> np.ndarray:
    """Each row's end (``timestamp_end``: a video's start + duration), else its ``timestamp``."""
    if "timestamp_end" not in photos.column_names:
        return micros
    ends = photos.column("timestamp_end").cast(pa.int64()).to_numpy(zero_copy_only=False)
    return np.maximum(np.where(np.isnan(ends.astype(float)), micros, ends), micros).astype(np.int64)


def _cut(photos: pa.Table, taxa: pa.Table, rules: EventRules, method: str | None = None) -> _Cut:
    """Events per deployment and taxon. Gap: a deployment's photos (all of them) are cut into sequences as
    before, and each taxon seen in a sequence is an event of it. HDBSCAN: each taxon's photos at a deployment
    are clustered on their own."""
    deployment = photos.column("deployment_id").fill_null("(none)")
    codes_arr = pc.dictionary_encode(deployment).combine_chunks()
    names = codes_arr.dictionary.to_pylist()
    codes = codes_arr.indices.to_numpy(zero_copy_only=False).astype(np.int64)
    usable = np.asarray(pc.is_valid(photos.column("timestamp")).to_numpy(zero_copy_only=False))
    if "usable_time" in photos.column_names:
        usable &= np.asarray(photos.column("usable_time").fill_null(False).to_numpy(zero_copy_only=False))
    micros = photos.column("timestamp").cast(pa.int64()).fill_null(0).to_numpy(zero_copy_only=False)
    ends = _end_micros(photos, micros)
    photo = pc.index_in(taxa.column("photo_id"), value_set=photos.column("photo_id")).fill_null(-1)
    photo = photo.to_numpy(zero_copy_only=False).astype(np.int64)
    taxon_arr = pc.dictionary_encode(taxa.column("taxon").fill_null("(none)")).combine_chunks()
    taxon = taxon_arr.indices.to_numpy(zero_copy_only=False).astype(np.int64)
    n_taxa = max(len(taxon_arr.dictionary), 1)
    ok = (photo >= 0) & usable[np.maximum(photo, 0)]
    visit = None
    if (method or rules.method) == "gap":
        positive = np.zeros(photos.num_rows, dtype=bool)
        positive[photo[photo >= 0]] = True
        visit = events.assign_gap(np.where(usable, codes, -1), micros / 1e6, positive, rules.event_gap_s,
                                  ends / 1e6)  # a video: the gap to the next photo counts from its end
        pair_visit = np.where(ok, visit[np.maximum(photo, 0)], -1)
        raw = np.where(pair_visit >= 0, pair_visit * n_taxa + taxon, -1)
    else:
        group = np.where(ok, codes[np.maximum(photo, 0)] * n_taxa + taxon, -1)
        raw = events.assign(group, micros[np.maximum(photo, 0)] / 1e6, rules)
    has = raw >= 0
    keys, inverse = np.unique(raw[has], return_inverse=True)
    m = len(keys)
    start = np.full(m, np.iinfo(np.int64).max)
    np.minimum.at(start, inverse, micros[photo[has]])
    dep = np.zeros(m, dtype=np.int64)
    dep[inverse] = codes[photo[has]]
    tax = np.zeros(m, dtype=np.int64)
    tax[inverse] = taxon[has]
    taxon_names = np.asarray(taxon_arr.dictionary.to_pylist() or [""], dtype=object)
    rank = np.empty(m, dtype=np.int64)
    rank[np.lexsort((taxon_names[tax].astype(str), start, dep))] = np.arange(m)
    event = np.full(len(raw), -1, dtype=np.int64)
    event[has] = rank[inverse]
    return _Cut(event, visit, photo, codes, names, micros, m, ends)


def group_events(photos: pa.Table, rules: EventRules, taxa: pa.Table | None = None) -> tuple[pa.Array, pa.Table]:
    """Event ids per photo row (null for rows in no event) and the events table (``group_taxon_events``)."""
    per_photo, table, _ = group_taxon_events(photos, rules, taxa)
    return per_photo, table


def group_taxon_events(photos: pa.Table, rules: EventRules,
                       taxa: pa.Table | None = None) -> tuple[pa.Array, pa.Table, pa.Array]:
    """Event ids per photo row (null for rows in no event), the events table, and the event id per ``taxa``
    row. The events table has one row per deployment,
    visit and taxon (``species.taxon_key``; the detector's category where no classifier ran).

    ``photos`` has ``deployment_id``, ``timestamp`` and, for positive rows, ``top_category``, ``max_conf`` and
    ``n_detections`` (null elsewhere); optionally ``usable_time`` (False: the row takes part in no event, e.g.
    a photo whose clock cannot be trusted) and ``timestamp_end`` (a video's end: its event spans it, and the gap
    to the next photo counts from it). ``taxa`` (``species.TAXA_SCHEMA``): each photo's taxa; without it a
    positive photo's taxon is its ``top_category``. Gap method: an event's times and photo count cover all
    photos of its sequence, empty ones too; HDBSCAN: its taxon's photos. Its category, confidence, species and
    score come from its taxon's most confident box, its count is the most boxes of its taxon in one photo.
    A photo's event id is the event of its most confident box's taxon (an empty photo of a sequence: the
    sequence's most confident event); a photo showing two taxa is in both events (detections.parquet
    ``event_id`` names each box's).
    """
    taxa = species.from_photos(photos) if taxa is None else taxa
    cut = _cut(photos, taxa, rules)
    m, ev = cut.n_events, cut.event
    has = ev >= 0
    pev, pphoto = ev[has], cut.photo[has]
    conf = taxa.column("max_conf").fill_null(0).to_numpy(zero_copy_only=False)[has]
    cnt = taxa.column("n_detections").fill_null(0).to_numpy(zero_copy_only=False)[has]
    score_col = taxa.column("score")
    score = score_col.fill_null(-1.0).to_numpy(zero_copy_only=False)[has]
    # the most confident pair of each event speaks for it
    order = np.lexsort((-conf, pev))
    first = np.ones(len(order), dtype=bool)
    first[1:] = pev[order][1:] != pev[order][:-1]
    top = np.flatnonzero(has)[order[first]]  # taxa row per event, in event order
    count = np.zeros(m, dtype=np.int64)
    np.maximum.at(count, pev, cnt)
    best_score = np.full(m, -1.0)
    np.maximum.at(best_score, pev, score)
    dep_of_event = np.zeros(m, dtype=np.int64)
    dep_of_event[pev] = cut.codes[pphoto]
    start = np.full(m, np.iinfo(np.int64).max)
    end = np.full(m, np.iinfo(np.int64).min)
    if cut.visit is not None:  # gap: the whole sequence
        in_visit = cut.visit >= 0
        n_visits = int(cut.visit.max()) + 1 if in_visit.any() else 0
        v_start = np.full(n_visits, np.iinfo(np.int64).max)
        v_end = np.full(n_visits, np.iinfo(np.int64).min)
        np.minimum.at(v_start, cut.visit[in_visit], cut.micros[in_visit])
        np.maximum.at(v_end, cut.visit[in_visit], cut.ends[in_visit])  # a video spans [start, start + duration]
        v_count = np.bincount(cut.visit[in_visit], minlength=n_visits)
        visit_of_event = np.zeros(m, dtype=np.int64)
        visit_of_event[pev] = cut.visit[pphoto]
        start, end, photo_count = v_start[visit_of_event], v_end[visit_of_event], v_count[visit_of_event]
    else:
        np.minimum.at(start, pev, cut.micros[pphoto])
        np.maximum.at(end, pev, cut.ends[pphoto])
        photo_count = np.bincount(pev, minlength=m)
    taxon = np.asarray(taxa.column("taxon").to_pylist(), dtype=object)
    independent = events.independence(dep_of_event, taxon[top] if m else np.array([], dtype=object),
                                      start / 1e6, rules.independence_s)
    event_ids = np.array([f"{cut.names[d]}:e{i:06d}" for i, d in enumerate(dep_of_event.tolist())], dtype=object)
    # per photo: the event of its most confident taxon; the rest of a sequence: the sequence's best event
    photo_event = np.full(photos.num_rows, -1, dtype=np.int64)
    by_photo = np.lexsort((-conf, pphoto))
    lead = np.ones(len(by_photo), dtype=bool)
    lead[1:] = pphoto[by_photo][1:] != pphoto[by_photo][:-1]
    photo_event[pphoto[by_photo[lead]]] = pev[by_photo[lead]]
    if cut.visit is not None and m:
        visit_best = np.full(int(cut.visit.max()) + 1, -1, dtype=np.int64)
        visit_of_pair = cut.visit[pphoto]
        by_visit = np.lexsort((-conf, visit_of_pair))
        vlead = np.ones(len(by_visit), dtype=bool)
        vlead[1:] = visit_of_pair[by_visit][1:] != visit_of_pair[by_visit][:-1]
        visit_best[visit_of_pair[by_visit[vlead]]] = pev[by_visit[vlead]]
        rest = (photo_event < 0) & (cut.visit >= 0)
        photo_event[rest] = visit_best[cut.visit[rest]]
    ids = pa.array(event_ids.tolist(), pa.string())
    per_row, per_pair = (ids.take(pa.array(at, pa.int64(), mask=at < 0)) for at in (photo_event, ev))
    stamp = pa.timestamp("us", tz="UTC")

    def pick(name: str) -> list:
        return taxa.column(name).take(pa.array(top, pa.int64())).to_pylist() if m else []

    table = pa.table({
        "cluster_id": ids,
        "deployment_id": pa.array([cut.names[d] for d in dep_of_event.tolist()], pa.string()),
        "start_time": pa.array(start, stamp) if m else pa.array([], stamp),
        "end_time": pa.array(end, stamp) if m else pa.array([], stamp),
        "photo_count": pa.array(photo_count, pa.int32()),
        "top_category": pa.array(pick("top_category"), pa.string()),
        "max_conf": pa.array(pick("max_conf"), pa.float64()),
        "count": pa.array(count, pa.int32()),
        "independent": pa.array(independent, pa.bool_()),
        "method": pa.array([rules.describe()] * m, pa.string()),
        "taxon": pa.array(pick("taxon"), pa.string()),
        "scientific_name": pa.array(pick("scientific_name"), pa.string()),
        "common_name": pa.array(pick("common_name"), pa.string()),
        "taxon_rank": pa.array(pick("taxon_rank"), pa.string()),
        "score": pa.array([s if s >= 0 else None for s in best_score.tolist()], pa.float64()),
    }, schema=EVENT_SCHEMA)
    return per_row, table, per_pair


def box_events(detections: pa.Table, taxa: pa.Table, taxa_events: pa.Array, threshold: float) -> pa.Table:
    """``detections`` with ``event_id`` set on each positive box (``species.positive_mask``): the event of its
    photo and taxon (``group_taxon_events``); null on the other boxes."""
    keys = pa.table({"photo_id": detections.column("photo_id"), "taxon": species.taxon_keys(detections),
                     "row": pa.array(np.arange(detections.num_rows), pa.int64())})
    keys = keys.filter(species.positive_mask(detections, threshold))
    found = keys.join(pa.table({"photo_id": taxa.column("photo_id"), "taxon": taxa.column("taxon"),
                                "event_id": taxa_events}), ["photo_id", "taxon"], use_threads=False)
    ids = np.full(detections.num_rows, None, dtype=object)
    ids[found.column("row").to_numpy()] = found.column("event_id").to_numpy(zero_copy_only=False)
    return detections.set_column(detections.schema.get_field_index("event_id"), "event_id",
                                 pa.array(ids.tolist(), pa.string()))


def compare_to_gap(photos: pa.Table, rules: EventRules, taxa: pa.Table | None = None) -> dict[str, int]:
    """How the events of ``rules`` (HDBSCAN) differ from the fixed gap's over the same positive photos and
    taxa: ``merged`` events joining photos the gap rule puts in several events, ``split`` gap events cut apart."""
    taxa = species.from_photos(photos) if taxa is None else taxa
    return events.compare(_cut(photos, taxa, rules, method="gap").event, _cut(photos, taxa, rules).event)


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


def usable_time(table: pa.Table) -> np.ndarray:
    """Per row, whether its time may take part in events: read (``status`` ok) with a trusted clock
    (``clock.trusted``), each where the table has the column."""
    usable = np.ones(table.num_rows, dtype=bool)
    if "status" in table.column_names:
        usable &= np.asarray(pc.equal(table.column("status"), "ok").fill_null(False).to_numpy(zero_copy_only=False))
    if "clock_flags" in table.column_names:
        usable &= clock.trusted_rows(table.column("clock_flags"))
    return usable


def events_from_table(
    table: pa.Table, id_column: str, threshold: float, rules: EventRules
) -> tuple[pa.Table, pa.Table]:
    """Events for a plain media table: (``id_column`` + ``eventID`` per input row, events table).

    Needs ``deploymentID`` and ``timestamp`` (ISO 8601 with offset). Optional detection columns: ``category``
    and ``conf`` (or ``count``), and ``scientificName`` (Camtrap DP's; the row's taxon where given, else its
    category); with them a row is positive when it has a category and conf >= threshold, several rows per
    identifier are one photo's detections. Without them every row is positive. A run's own
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
    usable = usable_time(table)
    sci = (table.column("scientificName").cast(pa.string()) if "scientificName" in table.column_names
           else pa.nulls(n, pa.string()))
    rows = pa.table({"photo_id": ids, "deployment_id": table.column("deploymentID").cast(pa.string()),
                     "timestamp": ts, "category": cat, "conf": conf, "count": count, "positive": positive,
                     "usable_time": usable, "scientific_name": sci})
    pos = rows.filter(rows.column("positive"))
    per_taxon = pos.group_by(["photo_id", "category", "scientific_name"]).aggregate(
        [("conf", "max"), ("count", "sum")])
    sci = pc.if_else(pc.equal(per_taxon.column("scientific_name"), ""), None, per_taxon.column("scientific_name"))
    m = per_taxon.num_rows
    taxa = pa.table({  # species.taxon_key for a table: the scientific name where given, else the category
        "photo_id": per_taxon.column("photo_id"), "taxon": pc.coalesce(sci, per_taxon.column("category")),
        "top_category": per_taxon.column("category"), "max_conf": per_taxon.column("conf_max"),
        "n_detections": per_taxon.column("count_sum").cast(pa.int32()), "scientific_name": sci,
        "common_name": pa.nulls(m, pa.string()), "taxon_rank": pa.nulls(m, pa.string()),
        "score": pa.nulls(m, pa.float64())}, schema=species.TAXA_SCHEMA)
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
    event_ids, events_table = group_events(photos, rules, taxa)
    by_photo = pa.table({"photo_id": photos.column("photo_id"), "eventID": event_ids})
    per_row = by_photo.take(pc.index_in(ids, value_set=by_photo.column("photo_id")))
    return pa.table({id_column: ids, "eventID": per_row.column("eventID")}), events_table

"""report.html's species section: which species model ran (or that none did, and why), and records per
deployment and taxon from clusters.parquet.

Whether a model ran is read from what it left: boxes with a ``classifier`` in detections.parquet. When none
did, Stage 1's warning saying why (it starts "no species model ran: ") is shown as it is, else what Stage 1's
summary (``stages.Stage1Detect.classifier``) says. Nothing here guesses a species: an event without a
classifier's decision is listed under its detector category.
"""

from __future__ import annotations

import html
import itertools
from collections.abc import Iterable
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from wildlife import species
from wildlife.classify.runtime import NO_MODEL as STAGE1_SAYS  # how Stage 1's warning starts when none ran

NO_MODEL = "No species model ran: records are per detector category (animal, person, vehicle), not per species."


def classifier_note(report: dict[str, Any], detections: pa.Table) -> tuple[list[str], str | None]:
    """(classifiers that judged boxes, why none did: None when one did)."""
    names = species.classifiers(detections)
    if names:
        return names, None
    info = ((report.get("stages") or {}).get("Stage1Detect") or {}).get("classifier")
    said = [str(w) for w in report.get("warnings") or () if str(w).startswith(STAGE1_SAYS)]
    if said:  # the reason, without the words the section's line already starts with
        why = said[0][len(STAGE1_SAYS):].strip()
        return [], why[:1].upper() + why[1:]
    why = None
    if isinstance(info, dict):
        why = next((str(info[k]) for k in ("warning", "note", "reason", "skipped") if info.get(k)), None)
        if why is None and info.get("name"):
            why = f"{info['name']} {info.get('version') or ''}".strip() + " ran but decided no box"
    elif isinstance(info, str) and info not in ("none", ""):
        why = info
    return [], why


def taxon_name(event: dict[str, Any]) -> str:
    """How a record's taxon reads: "red fox (Vulpes vulpes)", "Canidae", or the detector's category."""
    sci, common = event.get("scientific_name"), event.get("common_name")
    if sci and common and common.lower() != sci.lower():
        return f"{common} ({sci})"
    return sci or common or event.get("taxon") or event.get("top_category") or "?"


def caption(event: dict[str, Any]) -> str:
    """A thumbnail's species words: "red fox (Vulpes vulpes) 0.91 · ", or nothing where no classifier decided."""
    if not (event.get("scientific_name") or event.get("common_name")):
        return ""
    score = f" {event['score']:.2f}" if event.get("score") is not None else ""
    return f"{taxon_name(event)}{score} · "


def one_of_each_first(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``events`` (best first) with each taxon's best event moved ahead, so the top thumbnails show every
    species seen before a second picture of any."""
    seen: set[str] = set()
    first, rest = [], []
    for e in events:
        key = taxon_name(e)
        (rest if key in seen else first).append(e)
        seen.add(key)
    return first + rest


def records(clusters: pa.Table) -> list[dict[str, Any]]:
    """One row per deployment and taxon: events, independent records, most individuals in one photo, best score."""
    rows: dict[tuple[str, str], dict[str, Any]] = {}
    for e in clusters.to_pylist():
        key = (e["deployment_id"] or "(none)", taxon_name(e))
        row = rows.setdefault(key, {"deployment": key[0], "taxon": key[1], "rank": e.get("taxon_rank") or "",
                                    "events": 0, "independent": 0, "max_count": 0, "best_score": None})
        row["events"] += 1
        row["independent"] += bool(e["independent"])
        row["max_count"] = max(row["max_count"], e["count"] or 0)
        if e.get("score") is not None:
            row["best_score"] = round(max(row["best_score"] or 0.0, e["score"]), 3)
    return [rows[k] for k in sorted(rows, key=lambda k: (k[0], -rows[k]["independent"], k[1]))]


def event_rows(rows: Iterable[dict[str, Any]], detections: pa.Table) -> Iterable[dict[str, Any]]:
    """The report's photo rows, plus a (photo, event) row for each event a photo belongs to besides the one
    ``images.event_id`` names (a photo showing two taxa is in both taxa's events; detections name each box's)."""
    if "event_id" not in detections.column_names:
        return rows
    named = detections.filter(pc.is_valid(detections.column("event_id")))  # boxes that name an event
    pairs = list(zip(named.column("photo_id").to_pylist(), named.column("event_id").to_pylist(), strict=True))
    boxed = {pid for pid, _ in pairs}  # only these photos can be in another event: not every photo is indexed
    by_photo = {r["photo_id"]: r for r in rows if r["photo_id"] in boxed}
    seen = {(pid, r.get("event_id")) for pid, r in by_photo.items()}
    extra = []
    for pid, event in pairs:
        if event and (pid, event) not in seen and pid in by_photo:
            seen.add((pid, event))
            extra.append(dict(by_photo[pid], event_id=event))
    return itertools.chain(rows, extra)  # one pass (place_events): the photos' rows are not copied


def section(report: dict[str, Any], detections: pa.Table, clusters: pa.Table, table) -> str:
    """The section's HTML; ``table`` is report_html's table renderer (headers, rows, id)."""
    names, why = classifier_note(report, detections)
    if names:
        head = (f'<p id="species-model" class="note">Species by {html.escape(", ".join(names))}. Records are '
                "counted per deployment and taxon (the classifier's scientific name; its rolled-up rank where it "
                "was unsure); independent per taxon (camtrapR minDeltaTime).</p>")
    else:
        head = (f'<p id="no-species-model" class="caution">{html.escape(NO_MODEL)}'
                + (f" {html.escape(why)}" if why else "") + "</p>")
    rows = records(clusters)
    body = table(["deployment", "taxon", "rank", "events", "independent records", "most in one photo",
                  "best score"], [[r["deployment"], r["taxon"], r["rank"], r["events"], r["independent"],
                                   r["max_count"], r["best_score"]] for r in rows], "species-per-deployment") \
        if rows else "<p>No events.</p>"
    return f'<section id="species"><h2>Species per deployment</h2>{head}{body}</section>'

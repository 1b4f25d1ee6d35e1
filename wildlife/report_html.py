"""``report.html``: one self-contained page of a run, for people rather than for programs.

What came in and what came out (failed and skipped files with their reasons, photos the detector did not
assess, the Camtrap DP validation result), activity by the camera's local hour from independent records,
independent records and effort per deployment, events on a timeline, clock flags, weather at events,
estimate against measured, and thumbnails of the top events with their boxes drawn. Photos whose time cannot
be trusted are left out of every time-based plot, and the page says how many and why. Plots are inline SVG
(``report_plots``) and thumbnails inline JPEG, so the file can be mailed or opened offline.
"""

from __future__ import annotations

import base64
import html
from collections import Counter, defaultdict
from typing import Any

import cv2
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from wildlife import fs, privacy, report_answers, rowbatches, video_outputs, weather
from wildlife import report_facts as facts
from wildlife import report_plots as plots
from wildlife import report_species as species_report
from wildlife.deployments import Deployment

LIST_LIMIT = 200  # rows of long tables (failed files, weather at events) shown; the Parquet tables have all
CSS = """
body{font-family:system-ui,sans-serif;margin:2rem auto;max-width:1100px;color:#222;padding:0 1rem}
h1{margin-bottom:.2rem} .sub{color:#666;margin-top:0} section{margin:2rem 0}
table{border-collapse:collapse} td,th{border-bottom:1px solid #ddd;padding:.3rem .7rem;text-align:right}
th:first-child,td:first-child{text-align:left} .text{text-align:left}
td:first-child{max-width:24rem;overflow-wrap:anywhere} .thumbs{display:flex;flex-wrap:wrap;gap:1rem}
figure{margin:0;width:320px} figure img{width:320px;border-radius:4px} figcaption{font-size:.85rem;color:#444}
.legend span{display:inline-block;margin-right:1rem} .legend i{display:inline-block;width:.8rem;height:.8rem;
margin-right:.3rem;vertical-align:middle}
.warn,.caution{background:#fff8e1;padding:.5rem 1rem;border-left:4px solid #f9a825}
.scroll{max-height:36rem;overflow:auto} .note{color:#555} .valid{color:#2e7d32} .invalid{color:#c62828}
"""


def _thumbnail(uri: str | bytes, boxes: list[dict[str, Any]], blur: list[dict[str, Any]] = ()) -> str | None:
    try:
        img = privacy.blur(cv2.imdecode(np.frombuffer(fs.read_bytes(uri), np.uint8), cv2.IMREAD_REDUCED_COLOR_4),
                           blur)  # the photo's people and vehicles (none with --humans keep)
    except OSError:
        return None
    return _drawn(img, boxes)


def _drawn(img: np.ndarray | None, boxes: list[dict[str, Any]]) -> str | None:
    if img is None:
        return None
    scale = 320 / img.shape[1]
    img = cv2.resize(img, (320, max(1, int(img.shape[0] * scale))), interpolation=cv2.INTER_AREA)
    h, w = img.shape[:2]
    for b in boxes:
        hexa = plots.color(b["category"])
        bgr = tuple(int(hexa[i:i + 2], 16) for i in (5, 3, 1))
        p1 = (int(b["bbox_x"] * w), int(b["bbox_y"] * h))
        p2 = (int((b["bbox_x"] + b["bbox_w"]) * w), int((b["bbox_y"] + b["bbox_h"]) * h))
        cv2.rectangle(img, p1, p2, bgr, 2)
        name = b.get("common_name") or b["category"]  # the classifier's decision where it made one
        cv2.putText(img, f"{name} {b['conf']:.2f}", (p1[0], max(12, p1[1] - 4)), cv2.FONT_HERSHEY_SIMPLEX,
                    0.4, bgr, 1, cv2.LINE_AA)
    ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, 80])
    return "data:image/jpeg;base64," + base64.b64encode(buf.tobytes()).decode() if ok else None


def _cell(v: Any) -> str:
    text = html.escape("" if v is None else str(v))
    return f'<td class="text">{text}</td>' if isinstance(v, str) else f"<td>{text}</td>"


def _table(headers: list[str], rows: list[list[Any]], table_id: str) -> str:
    text = [isinstance(v, str) for v in rows[0]] if rows else [False] * len(headers)
    head = "".join(f'<th class="text">{html.escape(h)}</th>' if t else f"<th>{html.escape(h)}</th>"
                   for h, t in zip(headers, text, strict=True))
    body = "".join("<tr>" + "".join(_cell(v) for v in r) + "</tr>" for r in rows)
    return _scroll(f'<table id="{table_id}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>', len(rows))


def estimate_vs_measured(report: dict[str, Any]) -> str:
    """The estimate next to the measured cost and wall time. WriteOutputs puts it in the page again once the
    page is rendered, so the measured time includes the rendering (``outputs.write_all``)."""
    est, measured = report.get("estimate") or {}, report.get("measured") or {}
    return _table(["", "cost (DKK)", "wall time (s)"], [
        ["estimate", est.get("total_dkk"), est.get("wall_time_s")],
        ["measured", measured.get("cost_dkk"), measured.get("wall_time_s")]], "estimate-vs-measured")


def _scroll(block: str, rows: int) -> str:
    """Long tables and plots scroll in a box of their own, so the sections after them stay in reach."""
    return f'<div class="scroll">{block}</div>' if rows > 30 else block


def _counts(counter: dict[str, int]) -> str:
    return ", ".join(f"{k} {n}" for k, n in sorted(counter.items(), key=lambda kv: (-kv[1], kv[0])))


def _left_out(times: facts.Times, placed: facts.PlacedEvents, photos_ok: int) -> str:
    if not times.left_out and not placed.left_out:
        return f'<p class="note" id="left-out">All {photos_ok} photo times are trusted; none left out.</p>'
    parts = []
    if times.left_out:
        parts.append(f"{times.left_out} of {photos_ok} photos whose time cannot be trusted "
                     f"({html.escape(_counts(times.left_out_by_flag))})")
    if placed.left_out:
        parts.append(f"{placed.left_out} event(s) none of whose photos has a trusted time")
    return (f'<p class="caution" id="left-out">Left out of activity, timeline and days spanned: {" and ".join(parts)}. '
            f'They are still in images.parquet with their clock flags (see <a href="#clock-flags">clock flags</a>).'
            f'</p>')


def _camtrap_dp(result: dict[str, Any] | None) -> str:
    if not result:
        return '<p id="camtrap-dp-result" class="invalid">No Camtrap DP package was written.</p>'
    counts = (f"{result.get('deployments')} deployments, {result.get('media')} media, "
              f"{result.get('observations')} observations")
    if result.get("valid"):
        return (f'<p id="camtrap-dp-result" class="valid">Valid: the package in camtrap-dp/ ({counts}) passes the '
                f'Camtrap DP 1.0.2 profile and table schemas (checked offline).</p>')
    errors = result.get("errors") or result.get("warnings") or []
    total = result.get("error_count", len(errors))
    listed = "".join(f"<li>{html.escape(str(e))}</li>" for e in errors)
    more = f"<p>{total - len(errors)} more not listed.</p>" if total > len(errors) else ""
    return (f'<p id="camtrap-dp-result" class="invalid">Invalid: the package in camtrap-dp/ ({counts}) fails '
            f'Camtrap DP 1.0.2 validation with {total} error(s).</p><ul id="camtrap-dp-errors">{listed}</ul>{more}')


def _unassessed(n: int | None) -> str:
    if n is None:
        return ""
    return f'<p id="unassessed" class="{"caution" if n else "note"}">{n} photo(s) not assessed by the detector.</p>'


def _failures(f: facts.Failures) -> str:
    if not f.listed:
        return '<p id="failed-files">No failed or skipped files.</p>'
    more = f"<p>{f.more} more not listed: images.parquet has every file with its status and reason.</p>" \
        if f.more else ""
    return (_table(["status", "reason", "files"], [list(g) for g in f.by_reason], "failed-by-reason")
            + (f"<h3>Files (first {len(f.listed)}, by path)</h3>" if f.more else "<h3>Files, by path</h3>")
            + _table(["path", "status", "reason"], [[r["relpath"], r["status"], r.get("reason")] for r in f.listed],
                     "failed-files") + more)


def _figures(events: list[dict], rows_by_photo: dict[str, dict], positives: list[dict], top: int,
             people: dict[str, list[dict]] | None = None) -> str:
    boxes_by_photo: dict[str, list] = defaultdict(list)
    for d in positives:
        boxes_by_photo[d["photo_id"]].append(d)
    photos_of_event: dict[str, list[str]] = defaultdict(list)
    for pid in boxes_by_photo:
        if rows_by_photo.get(pid, {}).get("event_id"):
            photos_of_event[rows_by_photo[pid]["event_id"]].append(pid)
    for d in positives:  # a photo showing two taxa is in both events (detections.parquet event_id)
        if d.get("event_id") and d["photo_id"] in rows_by_photo and d["photo_id"] not in photos_of_event[d["event_id"]]:
            photos_of_event[d["event_id"]].append(d["photo_id"])
    figures = []
    for e in species_report.one_of_each_first(sorted(events, key=lambda e: -(e["max_conf"] or 0))):
        if len(figures) == top:
            break
        if not photos_of_event.get(e["cluster_id"]):
            continue
        best = max(photos_of_event[e["cluster_id"]], key=lambda p: max(b["conf"] for b in boxes_by_photo[p]))
        row = rows_by_photo[best]
        if row.get("media_type") == "video":  # its best frame is shown under Videos
            continue
        src = _thumbnail(row.get("uri_raw") or row["uri"], boxes_by_photo[best], (people or {}).get(best, []))
        if src:
            figures.append(f'<figure><img class="thumb" alt="{html.escape(e["cluster_id"])}" src="{src}">'
                           f'<figcaption>{html.escape(e["cluster_id"])} · {e["top_category"]} '
                           f'{e["max_conf"]:.2f} · {html.escape(species_report.caption(e))}{e["photo_count"]} photos · '
                           f'{html.escape(row["relpath"])}</figcaption></figure>')
    return "".join(figures) or "<p>No positive events.</p>"


def _videos(images: pa.Table, positives: list[dict], detections: pa.Table, threshold: float,
            humans: str | None) -> str:
    """Each video with a positive detection (the best first): the frame of its best detection, boxes drawn,
    its people and vehicles blurred as in a photo's thumbnail (``privacy``)."""
    people: dict[tuple, list[dict]] = {}
    if privacy.mode(humans) != "keep" and "frame_number" in detections.column_names:
        frames = detections.filter(pc.is_valid(detections.column("frame_number"))).to_pylist()
        for b in privacy.people_boxes(frames, threshold):
            people.setdefault((b["photo_id"], b["frame_number"]), []).append(b)
    figures = []
    for row, img, boxes in video_outputs.best_frames(images, positives):
        src = _drawn(privacy.blur(img, people.get((row["photo_id"], row["best_frame"]), [])), boxes)
        caption = (f'{html.escape(row["relpath"])} · frame {row["best_frame"]} of {row.get("frame_count")} · '
                   f'{row["top_category"]} {row["max_conf"]:.2f} · {len(row.get("frames_with_detections") or [])} of '
                   f'{row.get("frames_sampled")} sampled frames with detections')
        figures.append(f'<figure><img class="thumb" alt="{html.escape(row["relpath"])}" src="{src}">'
                       f'<figcaption>{caption}</figcaption></figure>' if src
                       else f'<figure><figcaption>{caption} (frame cannot be decoded now)</figcaption></figure>')
    if not figures:
        return ""
    return f'<section id="videos"><h2>Videos</h2><div class="thumbs">{"".join(figures)}</div></section>'


def render(report: dict[str, Any], images: pa.Table, detections: pa.Table, clusters: pa.Table,
           threshold: float, deployments: dict[str, Deployment] | None = None, top_events: int = 6) -> str:
    rows = facts.PhotoRows(images)  # each pass over them makes a slice of dicts at a time
    statuses = {r["values"]: r["counts"] for r in pc.value_counts(images.column("status")).to_pylist()}
    photos_ok = statuses.get("ok", 0)
    times = facts.trusted_times(rows)
    placed = facts.place_events(clusters, species_report.event_rows(rows, detections), times)
    by_hour = facts.activity(placed.events)
    summary = facts.deployment_summary(rows, clusters, times, deployments or {})
    positives = detections.filter(pc.and_(pc.greater_equal(detections.column("conf"), threshold),  # dicts of these
                                          pc.invert(detections.column("suspected_static").fill_null(False)))).to_pylist()
    events = clusters.to_pylist()
    n_independent = sum(1 for e in events if e["independent"])
    cats = sorted({*by_hour, *(e["top_category"] for e in events)}) or ["animal"]
    weather_cols = [c for c in weather.COLUMNS if c in clusters.column_names]
    # variables no event has a value for (a station without gauges, or no weather at all) take no room
    weather_cols = [c for c in weather_cols if any(e.get(c) is not None for e in events)] or weather_cols
    weather_rows = [[e["cluster_id"], f"{e['start_time']:%Y-%m-%d %H:%M}", e["top_category"]]
                    + [e.get(c) for c in weather_cols] for e in events[:LIST_LIMIT]]
    weather_more = (f"<p>{len(events) - LIST_LIMIT} more events in clusters.parquet.</p>"
                    if len(events) > LIST_LIMIT else "")
    media = images.select([c for c in ("photo_id", "relpath", "uri", "uri_raw", "event_id", "media_type")
                           if c in images.column_names])  # the rows of photos with a positive box: all _figures reads
    shown = rowbatches.lookup(media, "photo_id", pa.array([d["photo_id"] for d in positives], pa.string()))
    figures = _figures(events, shown, positives, top_events,
                       privacy.to_blur(detections, threshold, (report.get("params") or {}).get("humans")))
    det = report.get("detector") or {}
    legend = "".join(f'<span><i style="background:{plots.color(c)}"></i>{c}</span>' for c in cats)
    warnings = "".join(f'<p class="warn">{html.escape(w)}</p>' for w in report.get("warnings", []))
    if report.get("emulated"):  # an emulator run: say plainly what did not run where the stack says
        warnings = (f'<p class="warn" id="emulated">Emulated: {html.escape(", ".join(report["emulated"]["services"]))}'
                    f' did not run on AWS. {html.escape(report["emulated"]["how"])}</p>') + warnings
    status = {s: statuses.get(s, 0) for s in ("failed", "skipped")}
    failed = pc.is_in(images.column("status"), pa.array(list(status)))  # failures() reads only these rows
    failures = facts.failures(facts.PhotoRows(rows.table.filter(failed)), LIST_LIMIT)  # a copy of its columns only
    methods = sorted({e["method"] for e in events if e.get("method")})
    flagged = pc.fill_null(pc.greater(pc.list_value_length(images.column("clock_flags")), 0), False)
    clock = facts.clock_flags(facts.PhotoRows(rows.table.filter(flagged)))  # the rows it counts, in order
    per_dep = facts.independent_per_deployment(placed.events)
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Odin run {html.escape(report['session_id'])}</title>
<style>{CSS}</style></head>
<body>
<h1>Odin run {html.escape(report['session_id'])} <span id="status">{html.escape(report.get('status', ''))}</span></h1>
<p class="sub">{len(rows)} files: {photos_ok} photos, {status['failed']} failed, {status['skipped']} skipped ·
{len(positives)} boxes at confidence ≥ {threshold:g} · {len(events)} events ({n_independent} independent records) ·
detector {html.escape(str(det.get('name')))} {html.escape(str(det.get('version')))}</p>
{warnings}
{_unassessed(facts.unassessed(report, rows))}
<section><h2>Camtrap DP</h2>{_camtrap_dp(report.get("camtrap_dp"))}</section>
{species_report.section(report, detections, clusters, _table)}
<p class="legend">{legend}</p>
<section><h2>Activity by hour of day (camera's local time)</h2>
<p class="note">Independent records (events; clusters.parquet <code>independent</code>), each at the local hour of its
first photo with a trusted time. Boxes and photos are not counted: one visit is one record.
{html.escape(" ".join(f"Events: {m}." for m in methods))}</p>
{_left_out(times, placed, photos_ok)}
{plots.hour_bars("activity-by-hour", "independent records by hour of day", by_hour, "records")}</section>
<section><h2>Independent records per deployment</h2>
{_scroll(plots.row_bars("records-per-deployment", "independent records per deployment",
                        {s["deployment"]: per_dep.get(s["deployment"], Counter()) for s in summary}, "records"),
         len(summary))}</section>
<section><h2>Deployments</h2>
<p class="note">Days spanned, from <i>window</i>: the deployment window, where the deployments table gives both
ends; from <i>photos</i>: the calendar days from the first to the last photo with a trusted time, both counted.
These are the days the camera was out, not the days it worked: the trap-nights (effort, after problem periods,
clock resets and long silences are cut) are under <a href="#effort-table">Camera effort</a>.</p>
{_table(["deployment", "photos", "untrusted times", "days spanned", "days from", "events",
         "independent events", "failed files"], [list(s.values()) for s in summary], "deployment-summary")}</section>
{report_answers.section(report)}
<section><h2>Events on a timeline (UTC dates)</h2><p class="note">Faded: not an independent record.</p>
{_scroll(plots.timeline(placed.events, [s["deployment"] for s in summary]), len(summary))}</section>
<section><h2>Top events</h2><div class="thumbs">{figures}</div></section>
{_videos(images, positives, detections, threshold, (report.get("params") or {}).get("humans"))}
<section><h2>Failed and skipped files</h2>{_failures(failures)}</section>
<section id="clock-flags"><h2>Clock flags</h2>
{_table(["flag", "photos", "time left out", "examples"],
        [[c["flag"], c["photos"], "yes" if c["untrusted"] else "no", ", ".join(c["examples"])] for c in clock],
        "clock-flag-counts") if clock else "<p>No clock flags.</p>"}</section>
<section><h2>Weather at events</h2>
{_table(["event", "start (UTC)", "category", *(weather.LABELS[c] for c in weather_cols)], weather_rows,
        "weather-at-events")}{weather_more}</section>
<section><h2>Estimate and measured</h2>
{estimate_vs_measured(report)}</section>
<script>
window.addEventListener("load", () => {{
  const thumbs = [...document.querySelectorAll("img.thumb")];
  document.body.dataset.thumbsLoaded = thumbs.filter(i => i.complete && i.naturalWidth > 0).length;
  document.body.dataset.plots = document.querySelectorAll("svg.plot").length;
}});
</script>
</body></html>
"""

"""``report.html``: one self-contained page of a run, for people rather than for programs.

Activity by hour of day per category, detections per deployment, events on a timeline, weather at events,
estimate against measured cost and time, and thumbnails of the top events with their boxes drawn. Plots
are inline SVG and thumbnails inline JPEG, so the file can be mailed or opened offline.
"""

from __future__ import annotations

import base64
import html
from collections import Counter, defaultdict
from datetime import datetime
from typing import Any

import cv2
import numpy as np
import pyarrow as pa

from wildlife import fs

COLORS = {"animal": "#2e7d32", "person": "#1565c0", "vehicle": "#ef6c00"}
CSS = """
body{font-family:system-ui,sans-serif;margin:2rem auto;max-width:1100px;color:#222;padding:0 1rem}
h1{margin-bottom:.2rem} .sub{color:#666;margin-top:0} section{margin:2rem 0}
table{border-collapse:collapse} td,th{border-bottom:1px solid #ddd;padding:.3rem .7rem;text-align:right}
th:first-child,td:first-child{text-align:left} .thumbs{display:flex;flex-wrap:wrap;gap:1rem}
figure{margin:0;width:320px} figure img{width:320px;border-radius:4px} figcaption{font-size:.85rem;color:#444}
.legend span{display:inline-block;margin-right:1rem} .legend i{display:inline-block;width:.8rem;height:.8rem;
margin-right:.3rem;vertical-align:middle} .warn{background:#fff8e1;padding:.5rem 1rem;border-left:4px solid #f9a825}
"""


def _bars(plot_id: str, title: str, labels: list[str], series: dict[str, list[float]], width: int = 1000) -> str:
    """A stacked bar chart as SVG."""
    height, pad = 260, 40
    totals = [sum(vals[i] for vals in series.values()) for i in range(len(labels))]
    top = max(totals or [1]) or 1
    bw = (width - 2 * pad) / max(len(labels), 1)
    out = [f'<svg class="plot" id="{plot_id}" role="img" aria-label="{html.escape(title)}" '
           f'viewBox="0 0 {width} {height + 40}" width="100%">']
    for i, label in enumerate(labels):
        y = height
        for cat, vals in series.items():
            h = (height - pad) * vals[i] / top
            if h > 0:
                out.append(f'<rect x="{pad + i * bw + 2:.1f}" y="{y - h:.1f}" width="{bw - 4:.1f}" height="{h:.1f}" '
                           f'fill="{COLORS.get(cat, "#888")}"><title>{html.escape(label)} {cat}: {vals[i]:g}'
                           f'</title></rect>')
                y -= h
        out.append(f'<text x="{pad + (i + 0.5) * bw:.1f}" y="{height + 16}" font-size="11" '
                   f'text-anchor="middle">{html.escape(label)}</text>')
    out.append(f'<text x="{pad}" y="14" font-size="12">max {top:g}</text>')
    out.append(f'<line x1="{pad}" y1="{height}" x2="{width - pad}" y2="{height}" stroke="#999"/></svg>')
    return "".join(out)


def _timeline(events: list[dict[str, Any]], width: int = 1000) -> str:
    deps = sorted({e["deployment_id"] for e in events})
    row_h, pad = 22, 140
    height = row_h * max(len(deps), 1) + 30
    out = [f'<svg class="plot" id="events-timeline" role="img" aria-label="events on a timeline" '
           f'viewBox="0 0 {width} {height}" width="100%">']
    if events:
        t0 = min(e["start"] for e in events).timestamp()
        t1 = max(e["end"] for e in events).timestamp()
        span = max(t1 - t0, 1.0)
        for r, dep in enumerate(deps):
            out.append(f'<text x="4" y="{r * row_h + 15}" font-size="11">{html.escape(dep)}</text>')
        for e in events:
            x = pad + (width - pad - 20) * (e["start"].timestamp() - t0) / span
            y = deps.index(e["deployment_id"]) * row_h + 11
            r = 4 + min(6, e["photo_count"] ** 0.5)
            out.append(f'<circle cx="{x:.1f}" cy="{y}" r="{r:.1f}" fill="{COLORS.get(e["top_category"], "#888")}" '
                       f'fill-opacity="{0.9 if e["independent"] else 0.35}"><title>{html.escape(e["cluster_id"])}: '
                       f'{e["top_category"]}, {e["photo_count"]} photos, {e["start"]:%Y-%m-%d %H:%M} UTC</title>'
                       f'</circle>')
        out.append(f'<text x="{pad}" y="{height - 4}" font-size="11">{datetime.fromtimestamp(t0):%Y-%m-%d}</text>')
        out.append(f'<text x="{width - 20}" y="{height - 4}" font-size="11" text-anchor="end">'
                   f'{datetime.fromtimestamp(t1):%Y-%m-%d}</text>')
    return "".join(out) + "</svg>"


def _thumbnail(uri: str | bytes, boxes: list[dict[str, Any]]) -> str | None:
    try:
        img = cv2.imdecode(np.frombuffer(fs.read_bytes(uri), np.uint8), cv2.IMREAD_REDUCED_COLOR_4)
    except OSError:
        return None
    if img is None:
        return None
    scale = 320 / img.shape[1]
    img = cv2.resize(img, (320, max(1, int(img.shape[0] * scale))), interpolation=cv2.INTER_AREA)
    h, w = img.shape[:2]
    for b in boxes:
        color = tuple(int(COLORS[b["category"]][i:i + 2], 16) for i in (5, 3, 1))  # BGR
        p1 = (int(b["bbox_x"] * w), int(b["bbox_y"] * h))
        p2 = (int((b["bbox_x"] + b["bbox_w"]) * w), int((b["bbox_y"] + b["bbox_h"]) * h))
        cv2.rectangle(img, p1, p2, color, 2)
        cv2.putText(img, f"{b['category']} {b['conf']:.2f}", (p1[0], max(12, p1[1] - 4)), cv2.FONT_HERSHEY_SIMPLEX,
                    0.4, color, 1, cv2.LINE_AA)
    ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, 80])
    return "data:image/jpeg;base64," + base64.b64encode(buf.tobytes()).decode() if ok else None


def _table(headers: list[str], rows: list[list[Any]], table_id: str) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{html.escape('' if v is None else str(v))}</td>" for v in r) + "</tr>"
                   for r in rows)
    return f'<table id="{table_id}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def render(report: dict[str, Any], images: pa.Table, detections: pa.Table, clusters: pa.Table,
           threshold: float, top_events: int = 6) -> str:
    imgs = images.to_pylist()
    positives = [d for d in detections.to_pylist() if d["conf"] >= threshold and not d["suspected_static"]]
    local_hour = {r["photo_id"]: r["timestamp_local"].hour for r in imgs if r.get("timestamp_local")}
    cats = sorted({d["category"] for d in positives}) or ["animal"]
    by_hour = {c: [0.0] * 24 for c in cats}
    for d in positives:
        if d["photo_id"] in local_hour:
            by_hour[d["category"]][local_hour[d["photo_id"]]] += 1
    per_dep: dict[str, Counter] = defaultdict(Counter)
    for d in positives:
        per_dep[d["deployment_id"] or "(none)"][d["category"]] += 1
    deps = sorted(per_dep)
    events = clusters.to_pylist()
    weather_cols = [c for c in ("temperature_c", "precipitation_mm", "wind_speed_ms", "cloud_cover_pct")
                    if c in clusters.column_names]
    weather_rows = [[e["cluster_id"], f"{e['start']:%Y-%m-%d %H:%M}", e["top_category"]]
                    + [e.get(c) for c in weather_cols] for e in events]
    est, measured = report.get("estimate") or {}, report.get("measured") or {}
    by_photo = {r["photo_id"]: r for r in imgs}
    boxes_by_photo: dict[str, list] = defaultdict(list)
    for d in positives:
        boxes_by_photo[d["photo_id"]].append(d)
    figures = []
    for e in sorted(events, key=lambda e: -(e["max_conf"] or 0))[:top_events]:
        candidates = [p for p in boxes_by_photo if by_photo[p].get("event_id") == e["cluster_id"]]
        if not candidates:
            continue
        best = max(candidates, key=lambda p: max(b["conf"] for b in boxes_by_photo[p]))
        row = by_photo[best]
        src = _thumbnail(row.get("uri_raw") or row["uri"], boxes_by_photo[best])
        if src:
            figures.append(f'<figure><img class="thumb" alt="{html.escape(e["cluster_id"])}" src="{src}">'
                           f'<figcaption>{html.escape(e["cluster_id"])} · {e["top_category"]} '
                           f'{e["max_conf"]:.2f} · {e["photo_count"]} photos · {html.escape(row["relpath"])}'
                           f'</figcaption></figure>')
    det = report.get("detector") or {}
    legend = "".join(f'<span><i style="background:{COLORS[c]}"></i>{c}</span>' for c in cats)
    warnings = "".join(f'<p class="warn">{html.escape(w)}</p>' for w in report.get("warnings", []))
    if report.get("emulated"):  # an emulator run: say plainly what did not run where the stack says
        warnings = (f'<p class="warn" id="emulated">Emulated: {html.escape(", ".join(report["emulated"]["services"]))}'
                    f' did not run on AWS. {html.escape(report["emulated"]["how"])}</p>') + warnings
    status = Counter(r["status"] for r in imgs)
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Odin run {html.escape(report['session_id'])}</title>
<style>{CSS}</style></head>
<body>
<h1>Odin run {html.escape(report['session_id'])}</h1>
<p class="sub">{len(imgs)} files: {status.get('ok', 0)} photos, {status.get('failed', 0)} failed,
{status.get('skipped', 0)} skipped · {len(positives)} detections · {len(events)} events
({sum(1 for e in events if e['independent'])} independent) · detector {html.escape(str(det.get('name')))}
{html.escape(str(det.get('version')))}</p>
{warnings}
<p class="legend">{legend}</p>
<section><h2>Activity by hour of day (local time)</h2>
{_bars("activity-by-hour", "detections by hour of day", [f"{h:02d}" for h in range(24)], by_hour)}</section>
<section><h2>Detections per deployment</h2>
{_bars("detections-per-deployment", "detections per deployment", deps,
       {c: [float(per_dep[d][c]) for d in deps] for c in cats})}</section>
<section><h2>Events on a timeline</h2><p>Faded: not an independent record.</p>{_timeline(events)}</section>
<section><h2>Top events</h2><div class="thumbs">{''.join(figures) or '<p>No positive events.</p>'}</div></section>
<section><h2>Weather at events</h2>
{_table(["event", "start (UTC)", "category", *weather_cols], weather_rows, "weather-at-events")}</section>
<section><h2>Estimate and measured</h2>
{_table(["", "cost (DKK)", "wall time (s)"], [
    ["estimate", est.get("total_dkk"), est.get("wall_time_s")],
    ["measured", measured.get("cost_dkk"), measured.get("wall_time_s")]], "estimate-vs-measured")}</section>
<script>
window.addEventListener("load", () => {{
  const thumbs = [...document.querySelectorAll("img.thumb")];
  document.body.dataset.thumbsLoaded = thumbs.filter(i => i.complete && i.naturalWidth > 0).length;
  document.body.dataset.plots = document.querySelectorAll("svg.plot").length;
}});
</script>
</body></html>
"""

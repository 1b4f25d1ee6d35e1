"""The report's plots as inline SVG: bars by hour, one row per deployment, events on a timeline.

Row labels (deployment ids) are set in a monospace font and cut to ``LABEL_CHARS`` characters, so their width
is known when the SVG is written: the label column is as wide as its longest label and nothing overlaps, at
any number of deployments (the full id is in the label's tooltip).
"""

from __future__ import annotations

import html
from collections import Counter
from datetime import UTC, datetime
from typing import Any

COLORS = {"animal": "#2e7d32", "person": "#1565c0", "vehicle": "#ef6c00"}
WIDTH = 1000
ROW_H = 18
FONT_PX = 11
CHAR_PX = 0.62 * FONT_PX  # monospace advance (DejaVu Sans Mono, Liberation Mono: 0.60 em), with margin
LABEL_CHARS = 28


def color(category: str) -> str:
    return COLORS.get(category, "#888")


def _label(text: str) -> str:
    return text if len(text) <= LABEL_CHARS else text[:LABEL_CHARS - 1] + "…"


def _label_column(labels: list[str]) -> float:
    return 12 + CHAR_PX * max([len(_label(t)) for t in labels] or [0])


def _row_label(text: str, y: float, right: float) -> str:
    return (f'<text class="label" x="{right:.1f}" y="{y:.1f}" font-size="{FONT_PX}" font-family="monospace" '
            f'text-anchor="end" dominant-baseline="middle"><title>{html.escape(text)}</title>'
            f'{html.escape(_label(text))}</text>')


def _open(plot_id: str, title: str, height: float) -> str:
    return (f'<svg class="plot" id="{plot_id}" role="img" aria-label="{html.escape(title)}" '
            f'viewBox="0 0 {WIDTH} {height:.0f}" width="100%">')


def hour_bars(plot_id: str, title: str, series: dict[str, list[int]], unit: str) -> str:
    """24 stacked bars, one per hour of day."""
    height, top_pad, left = 240, 24, 40
    totals = [sum(v[h] for v in series.values()) for h in range(24)]
    top = max(totals) or 1
    bw = (WIDTH - 2 * left) / 24
    out = [_open(plot_id, title, height + 24)]
    for h in range(24):
        y = height
        for cat, vals in series.items():
            bar = (height - top_pad) * vals[h] / top
            if bar > 0:
                out.append(f'<rect x="{left + h * bw + 2:.1f}" y="{y - bar:.1f}" width="{bw - 4:.1f}" '
                           f'height="{bar:.1f}" fill="{color(cat)}"><title>{h:02d}:00–{h:02d}:59 {cat}: '
                           f'{vals[h]} {unit}</title></rect>')
                y -= bar
        out.append(f'<text x="{left + (h + 0.5) * bw:.1f}" y="{height + 16}" font-size="{FONT_PX}" '
                   f'text-anchor="middle">{h:02d}</text>')
    out.append(f'<text x="{left}" y="14" font-size="12">max {top} {unit} in one hour</text>')
    out.append(f'<line x1="{left}" y1="{height}" x2="{WIDTH - left}" y2="{height}" stroke="#999"/></svg>')
    return "".join(out)


def row_bars(plot_id: str, title: str, rows: dict[str, Counter], unit: str) -> str:
    """Horizontal stacked bars, one row per label (deployment), the total at the end of each bar."""
    labels = sorted(rows)
    left = _label_column(labels)
    right = 60  # room for the total
    top = max([sum(c.values()) for c in rows.values()] or [1]) or 1
    out = [_open(plot_id, title, ROW_H * max(len(labels), 1) + 4)]
    for i, dep in enumerate(labels):
        mid = i * ROW_H + ROW_H / 2 + 2
        out.append(_row_label(dep, mid, left - 6))
        x = left
        for cat, n in sorted(rows[dep].items()):
            w = (WIDTH - left - right) * n / top
            out.append(f'<rect x="{x:.1f}" y="{mid - ROW_H * 0.35:.1f}" width="{w:.1f}" height="{ROW_H * 0.7:.1f}" '
                       f'fill="{color(cat)}"><title>{html.escape(dep)} {cat}: {n} {unit}</title></rect>')
            x += w
        out.append(f'<text x="{x + 4:.1f}" y="{mid:.1f}" font-size="{FONT_PX}" dominant-baseline="middle">'
                   f'{sum(rows[dep].values())}</text>')
    return "".join(out) + "</svg>"


def _date(t: float) -> str:
    return f"{datetime.fromtimestamp(t, UTC):%Y-%m-%d}"


def timeline(events: list[dict[str, Any]], deployments: list[str]) -> str:
    """Events (placed at their first trusted photo) on one row per deployment; faded: not independent."""
    deps = sorted(set(deployments) | {e["deployment_id"] for e in events})
    left = _label_column(deps)
    x0, right = left + ROW_H / 2, 20  # x0: the earliest event, its mark clear of the labels
    axis = ROW_H * max(len(deps), 1) + 6
    row = {dep: i for i, dep in enumerate(deps)}
    out = [_open("events-timeline", "events on a timeline", axis + 22)]
    for i, dep in enumerate(deps):
        out.append(_row_label(dep, i * ROW_H + ROW_H / 2 + 2, left - 6))
    if events:
        t0 = min(e["when_utc"] for e in events).timestamp()
        t1 = max(e["when_utc"] for e in events).timestamp()
        span = max(t1 - t0, 1.0)
        for e in events:
            x = x0 + (WIDTH - x0 - right) * (e["when_utc"].timestamp() - t0) / span
            y = row[e["deployment_id"]] * ROW_H + ROW_H / 2 + 2
            r = min(ROW_H / 2 - 1, 3 + e["photo_count"] ** 0.5)
            out.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="{r:.1f}" fill="{color(e["top_category"])}" '
                       f'fill-opacity="{0.9 if e["independent"] else 0.3}"><title>{html.escape(e["cluster_id"])}: '
                       f'{e["top_category"]}, {e["photo_count"]} photos, {e["when_local"]:%Y-%m-%d %H:%M} local '
                       f'({e["when_utc"]:%Y-%m-%d %H:%M} UTC)</title></circle>')
        ticks = 5 if t1 - t0 >= 4 * 86400 else 2  # dates 10 characters wide: 5 fit, never crowded
        for k in range(ticks):
            t = t0 + span * k / (ticks - 1)
            x = x0 + (WIDTH - x0 - right) * k / (ticks - 1)
            anchor = "start" if k == 0 else "end" if k == ticks - 1 else "middle"
            out.append(f'<line x1="{x:.1f}" y1="{axis - 4}" x2="{x:.1f}" y2="{axis}" stroke="#999"/>'
                       f'<text x="{x:.1f}" y="{axis + 14}" font-size="{FONT_PX}" text-anchor="{anchor}">'
                       f'{_date(t)}</text>')
    out.append(f'<line x1="{x0:.1f}" y1="{axis - 4}" x2="{WIDTH - right}" y2="{axis - 4}" stroke="#999"/>')
    return "".join(out) + "</svg>"

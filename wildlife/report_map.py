"""report.html's map: deployments as circles sized by their independent records, the species at each in the
circle's popup and tooltip.

Leaflet 1.9.4 (``wildlife/vendor/leaflet-1.9.4``, SOURCE.md there) is inlined (a data: URI) with the points as
inline GeoJSON, so the page stays one file and the points are drawn without any tile server, on a plain
background. When the browser is online, OpenStreetMap tiles are added under them (a tile that cannot load leaves
the background); the page says so, since tile requests tell the tile server which area is being looked at.
"""

from __future__ import annotations

import base64
import html
import json
import math
import os
from functools import lru_cache
from typing import Any

LEAFLET = os.path.join(os.path.dirname(os.path.abspath(__file__)), "vendor", "leaflet-1.9.4")
TILES = "https://tile.openstreetmap.org/{z}/{x}/{y}.png"
OSM_COPYRIGHT = "www.openstreetmap.org/copyright"  # the tiles' attribution links here (OSM's licence terms)
MIN_RADIUS, MAX_RADIUS = 4.0, 16.0  # px; area proportional to records between them
TAXA_LISTED = 12  # species named in a point's tooltip (the popup lists all)


@lru_cache(maxsize=1)
def _assets() -> tuple[str, str]:
    with open(os.path.join(LEAFLET, "leaflet.js"), encoding="utf-8") as f:
        js = "\n".join(line for line in f.read().splitlines() if not line.startswith("//# sourceMappingURL"))
    with open(os.path.join(LEAFLET, "leaflet.css"), encoding="utf-8") as f:
        css = f.read()
    # a data: URI, so the page holds Leaflet's text as it is without it reading as markup (its attribution link)
    return "data:text/javascript;base64," + base64.b64encode(js.encode()).decode(), css


def radius(records: int, most: int) -> float:
    """Circle radius in px: its area grows with the records, 0 records at the smallest size."""
    if most <= 0:
        return MIN_RADIUS
    return round(MIN_RADIUS + (MAX_RADIUS - MIN_RADIUS) * math.sqrt(records / most), 2)


def features(deployments: list[dict[str, Any]], records: dict[str, dict[str, int]]) -> list[dict[str, Any]]:
    """GeoJSON points for the deployments with coordinates; ``records``: deployment -> taxon -> records."""
    most = max([sum(t.values()) for t in records.values()] or [0])
    out = []
    for d in deployments:
        if d.get("latitude") is None or d.get("longitude") is None:
            continue
        taxa = sorted(records.get(d["deployment_id"], {}).items(), key=lambda kv: (-kv[1], kv[0]))
        taxa = [(t, n) for t, n in taxa if n > 0]
        total = sum(n for _, n in taxa)
        out.append({"type": "Feature", "geometry": {"type": "Point",
                                                    "coordinates": [d["longitude"], d["latitude"]]},
                    "properties": {"id": d["deployment_id"], "records": total, "taxa": taxa,
                                   "radius": radius(total, most)}})
    return out


SCRIPT = """
(() => {
  const data = JSON.parse(document.getElementById("map-data").textContent);
  const map = L.map("map", {preferCanvas: false, attributionControl: true});
  const esc = s => String(s).replace(/[&<>"]/g, c => ({"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;"})[c]);
  const layer = L.geoJSON(data, {
    pointToLayer: (f, latlng) => L.circleMarker(latlng, {radius: f.properties.radius, color: "#1b5e20",
      weight: 1, fillColor: f.properties.records ? "#2e7d32" : "#9e9e9e", fillOpacity: 0.6}),
    onEachFeature: (f, l) => {
      const p = f.properties;
      const list = p.taxa.map(([t, n]) => `${esc(t)}: ${n}`);
      l.bindTooltip(`<b>${esc(p.id)}</b> · ${p.records} records<br>` + (list.slice(0, %(listed)d).join("<br>")
        || "no records") + (list.length > %(listed)d ? `<br>… ${list.length - %(listed)d} more` : ""));
      l.bindPopup(`<b>${esc(p.id)}</b> · ${p.records} independent records<br>` + (list.join("<br>") || "none"));
    }}).addTo(map);
  const bounds = layer.getBounds();
  if (bounds.isValid()) map.fitBounds(bounds.pad(0.15), {maxZoom: 14}); else map.setView([0, 0], 1);
  if (navigator.onLine) {
    const osm = ["https:", "", "%(copyright)s"].join("/");
    L.tileLayer("%(tiles)s", {maxZoom: 19,
      attribution: `&copy; <a href="${osm}">OpenStreetMap</a> contributors`}).addTo(map);
  }
  document.body.dataset.mapPoints = document.querySelectorAll("#map path.leaflet-interactive").length;
})();
"""


def section(deployments: list[dict[str, Any]], records: dict[str, dict[str, int]]) -> str:
    """The map's HTML: the container, Leaflet inlined, the points' GeoJSON and the script drawing them."""
    points = features(deployments, records)
    missing = sorted(d["deployment_id"] for d in deployments
                     if d.get("latitude") is None or d.get("longitude") is None)
    note = (f'<p class="caution" id="map-missing">{len(missing)} deployment(s) without coordinates are not on the '
            f'map: {html.escape(", ".join(missing[:10]))}{" …" if len(missing) > 10 else ""} '
            "(give latitude and longitude in --deployments).</p>" if missing else "")
    if not points:
        return f'<p id="map-none">No deployment has coordinates: nothing to map.</p>{note}'
    js, css = _assets()
    data = json.dumps({"type": "FeatureCollection", "features": points}).replace("</", "<\\/")
    script = SCRIPT % {"listed": TAXA_LISTED, "tiles": TILES, "copyright": OSM_COPYRIGHT}
    return (f'<style>{css}\n#map{{height:480px;background:#e9eef2;border:1px solid #ccc}}</style>'
            f'<p class="note">Circles: deployments, their area proportional to independent records (grey: none); '
            f"hover for the species, click for all of them. Drawn offline; when the browser is online, "
            f"OpenStreetMap tiles are loaded under them (the tile server then sees the area shown).</p>{note}"
            f'<div id="map"></div><script type="application/json" id="map-data">{data}</script>'
            f'<script src="{js}"></script><script>{script}</script>')

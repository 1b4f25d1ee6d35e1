"""report.html: what it says is true (activity from independent records, untrusted times left out and counted,
validation result, failed files, clock flags), and it is readable, checked in a real browser (headless
Chromium): plots drawn, thumbnails decoded, no label over another at 100 deployments."""

from __future__ import annotations

import json
import re
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pytest
from conftest import debian_binary

from wildlife import report_html, stage2
from wildlife.deployments import Deployment

CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]


@pytest.fixture(scope="module")
def chromium() -> str:
    """Debian's chromium; installed here when missing and possible, else the test is skipped with why."""
    return debian_binary("chromium", "chromium", "chromium-browser")


def _dom(chromium: str, page: Path, profile: Path) -> str:
    args = [chromium, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "--window-size=1200,2000"]
    return subprocess.run([*args, "--virtual-time-budget=5000", "--dump-dom", page.as_uri()],
                          capture_output=True, text=True, timeout=120).stdout


# --- a run built as tables: photos -> images, detections and clusters, as WriteOutputs hands them over ---

T0 = datetime(2021, 4, 11, 18, 0, tzinfo=UTC)


def photo(n: int, dep: str, utc: datetime, event: str | None, boxes: int = 1, flags=(), offset_h: int = 2,
          local_as_text: bool = True) -> dict:
    local = utc + timedelta(hours=offset_h)
    text = local.replace(tzinfo=None).isoformat() + f"+{offset_h:02d}:00"
    return {"photo_id": f"p{n}", "relpath": f"{dep}/IMG_{n:04d}.JPG", "uri": f"/nowhere/{dep}/IMG_{n:04d}.JPG",
            "deployment_id": dep, "status": "ok", "reason": None, "timestamp": utc,
            "timestamp_local": text if local_as_text else local.replace(tzinfo=None), "utc_offset_min": offset_h * 60,
            "clock_flags": list(flags), "event_id": event, "boxes": boxes}


def tables(photos: list[dict], events: dict[str, tuple[str, bool]], local_as_text: bool = True):
    """(images, detections, clusters); ``events``: cluster id -> (category, independent)."""
    local_type = pa.string() if local_as_text else pa.timestamp("us")
    images = pa.Table.from_pylist(photos, schema=pa.schema([
        ("photo_id", pa.string()), ("relpath", pa.string()), ("uri", pa.string()), ("deployment_id", pa.string()),
        ("status", pa.string()), ("reason", pa.string()), ("timestamp", pa.timestamp("us", tz="UTC")),
        ("timestamp_local", local_type), ("utc_offset_min", pa.int32()), ("clock_flags", pa.list_(pa.string())),
        ("event_id", pa.string())]))
    detections = [{"detection_id": f"{p['photo_id']}-{k}", "photo_id": p["photo_id"], "relpath": p["relpath"],
                   "deployment_id": p["deployment_id"], "timestamp": p["timestamp"],
                   "category": events[p["event_id"]][0], "conf": 0.9, "bbox_x": 0.1, "bbox_y": 0.1, "bbox_w": 0.2,
                   "bbox_h": 0.2, "suspected_static": False, "detector": "test"}
                  for p in photos if p["event_id"] for k in range(p["boxes"])]
    clusters = []
    for cid, (category, independent) in events.items():
        members = [p for p in photos if p["event_id"] == cid]
        start, end = min(p["timestamp"] for p in members), max(p["timestamp"] for p in members)
        clusters.append({"cluster_id": cid, "deployment_id": members[0]["deployment_id"], "start": start,
                         "end": end, "start_time": start, "end_time": end, "photo_count": len(members),
                         "top_category": category, "max_conf": 0.9, "count": 1, "independent": independent,
                         "method": "gap; independence 1800 s"})
    return (images, pa.Table.from_pylist(detections, schema=stage2.DETECTION_SCHEMA),
            pa.Table.from_pylist(clusters, schema=stage2.EVENT_SCHEMA))


def render(images, detections, clusters, report: dict | None = None, deployments=None) -> str:
    return report_html.render(dict({"session_id": "t", "warnings": []}, **(report or {})), images, detections,
                              clusters, 0.2, deployments)


def activity(page: str) -> dict[tuple[int, str], int]:
    """(local hour, category) -> count, read from the activity plot's bar tooltips."""
    svg = re.search(r'<svg[^>]*id="activity-by-hour".*?</svg>', page, re.S).group(0)
    return {(int(h), cat): int(n) for h, cat, n in re.findall(r"<title>(\d\d)[^<]*?\s(\w+): (\d+)", svg)}


def test_weather_table_names_each_variable_readably_and_skips_ones_without_values():
    from wildlife import weather  # noqa: PLC0415

    images, detections, clusters = tables([photo(0, "D1", T0, "D1:e0")], {"D1:e0": ("animal", True)})
    values = dict.fromkeys(weather.COLUMNS, None) | {"temperature_c": 8.0, "relative_humidity_pct": 46.0,
                                                      "wind_direction_deg": 304.0}
    for col, value in values.items():
        clusters = clusters.append_column(col, pa.array([value], pa.float64()))
    table = re.search(r'<table id="weather-at-events">.*?</table>', render(images, detections, clusters), re.S)
    heads = re.findall(r"<th[^>]*>([^<]*)</th>", table.group(0))
    assert heads[3:] == ["Temperature (°C)", "Humidity (%)", "Wind from (°)"]
    assert "46" in table.group(0) and "304" in table.group(0)


@pytest.mark.parametrize("local_as_text", [True, False], ids=["iso-text", "naive-timestamp"])
def test_activity_counts_independent_records_by_local_hour(local_as_text):
    # a fox visit at 20:xx local (18:xx UTC): 6 photos with 3 boxes each, a second visit 10 minutes later that is
    # not an independent record, and one independent visit at 06:xx local
    photos = [photo(i, "D1", T0 + timedelta(seconds=5 * i), "D1:e0", boxes=3, local_as_text=local_as_text)
              for i in range(6)]
    photos += [photo(10 + i, "D1", T0 + timedelta(minutes=10, seconds=5 * i), "D1:e1", boxes=2,
                     local_as_text=local_as_text) for i in range(4)]
    photos += [photo(20, "D1", T0 + timedelta(hours=10), "D1:e2", local_as_text=local_as_text)]
    page = render(*tables(photos, {"D1:e0": ("animal", True), "D1:e1": ("animal", False),
                                   "D1:e2": ("animal", True)}, local_as_text))
    assert activity(page) == {(20, "animal"): 1, (6, "animal"): 1}  # one record each; 26 boxes; local hours


def test_untrusted_time_is_left_out_of_plots_and_counted():
    # a photo without an EXIF time carries its file's copy date (2008): it must not stretch the timeline
    photos = [photo(i, "D1", T0 + timedelta(days=i), f"D1:e{i}") for i in range(3)]
    photos.append(photo(9, "D1", datetime(2008, 3, 1, 3, tzinfo=UTC), "D1:e9", flags=["no_exif_time"]))
    photos.append(photo(8, "D1", T0 + timedelta(days=1, minutes=1), "D1:e1", flags=["camera_reset"]))
    page = render(*tables(photos, {f"D1:e{i}": ("animal", True) for i in (0, 1, 2, 9)}))
    timeline = re.search(r'<svg[^>]*id="events-timeline".*?</svg>', page, re.S).group(0)
    assert "2008" not in timeline
    assert re.findall(r">(\d{4}-\d\d-\d\d)</text>", timeline)[0] == "2021-04-11"
    assert sum(activity(page).values()) == 3  # the 2008 event is not in the activity plot
    left_out = re.search(r'id="left-out">(.*?)</p>', page, re.S).group(1)
    assert "2 of 5 photos" in left_out and "no_exif_time 1" in left_out and "camera_reset 1" in left_out
    assert "1 event(s)" in left_out
    flags = re.search(r'<table id="clock-flag-counts">.*?</table>', page, re.S).group(0)
    assert "no_exif_time" in flags and "D1/IMG_0009.JPG" in flags


def test_deployment_summary_counts_effort_events_and_failures():
    photos = [photo(i, "D1", T0 + timedelta(days=2 * i), f"D1:e{i}") for i in range(3)]  # Apr 11 .. Apr 15
    photos += [photo(5, "D2", T0, "D2:e0"), photo(6, "D2", T0 + timedelta(days=40), None)]
    photos.append(dict(photo(7, "D2", T0, None), status="failed", reason="detection: cannot decode"))
    images, detections, clusters = tables(photos, {"D1:e0": ("animal", True), "D1:e1": ("animal", False),
                                                   "D1:e2": ("person", True), "D2:e0": ("animal", True)})
    window = {"D2": Deployment("D2", start=datetime(2021, 4, 1, tzinfo=UTC), end=datetime(2021, 4, 11, 12,
                                                                                            tzinfo=UTC))}
    page = render(images, detections, clusters, deployments=window)
    table = re.search(r'<table id="deployment-summary">.*?</table>', page, re.S).group(0)
    rows = [re.findall(r"<td[^>]*>(.*?)</td>", r) for r in re.findall(r"<tr>(.*?)</tr>", table)][1:]
    assert rows[0] == ["D1", "3", "0", "5", "photos", "3", "2", "0"]
    assert rows[1] == ["D2", "2", "0", "10.5", "window", "1", "1", "1"]


def test_camtrap_dp_validation_result_is_shown():
    images, detections, clusters = tables([photo(0, "D1", T0, "D1:e0")], {"D1:e0": ("animal", True)})
    counts = {"deployments": 1, "media": 1, "observations": 2}
    valid = render(images, detections, clusters, {"camtrap_dp": dict(counts, valid=True)})
    assert re.search(r'id="camtrap-dp-result" class="valid">Valid', valid)
    invalid = render(images, detections, clusters, {"camtrap_dp": dict(
        counts, valid=False, errors=["deployments: row 2: latitude: 91 is more than 90"], error_count=3)})
    assert re.search(r'id="camtrap-dp-result" class="invalid">Invalid.*3 error', invalid)
    assert "latitude: 91 is more than 90" in invalid and "2 more not listed" in invalid
    assert "No Camtrap DP package was written" in render(images, detections, clusters, {"camtrap_dp": None})


def test_failed_and_skipped_files_are_listed_by_reason():
    photos = [photo(0, "D1", T0, "D1:e0")]
    photos += [dict(photo(1 + i, "D1", T0, None), status="failed", reason="cannot read file: truncated")
               for i in range(240)]
    photos += [dict(photo(300 + i, "D1", T0, None), status="skipped", reason="not a photo file (extension '.txt')")
               for i in range(3)]
    page = render(*tables(photos, {"D1:e0": ("animal", True)}))
    by_reason = re.search(r'<table id="failed-by-reason">.*?</table>', page, re.S).group(0)
    assert re.findall(r"<tr>(.*?)</tr>", by_reason)[1:] == [
        '<td class="text">failed</td><td class="text">cannot read file: truncated</td><td>240</td>',
        '<td class="text">skipped</td><td class="text">not a photo file (extension &#x27;.txt&#x27;)</td><td>3</td>']
    listed = re.search(r'<table id="failed-files">.*?</table>', page, re.S).group(0)
    assert listed.count("<tr>") == 1 + 200 and "D1/IMG_0001.JPG" in listed
    assert "43 more not listed" in page


def test_unassessed_photos_are_shown_when_the_run_reports_them():
    images, detections, clusters = tables([photo(0, "D1", T0, "D1:e0")], {"D1:e0": ("animal", True)})
    assert 'id="unassessed"' not in render(images, detections, clusters)
    page = render(images, detections, clusters, {"stages": {"Stage1Detect": {"unassessed": 7}}})
    assert re.search(r'id="unassessed"[^>]*>7 photo\(s\) not assessed', page)
    flagged = images.append_column("assessed", pa.array([False]))  # images.parquet's own column, where it has one
    assert re.search(r'id="unassessed"[^>]*>1 photo\(s\) not assessed', render(flagged, detections, clusters))


OVERLAPS = """<script>
window.addEventListener("load", () => {
  const hit = (a, b) => Math.min(a.right, b.right) - Math.max(a.left, b.left) > 0.5
                     && Math.min(a.bottom, b.bottom) - Math.max(a.top, b.top) > 0.5;
  const found = []; let labels = 0;
  for (const svg of document.querySelectorAll("svg.plot")) {
    const texts = [...svg.querySelectorAll("text")].map(t => [t.textContent, t.getBoundingClientRect()]);
    const marks = [...svg.querySelectorAll("rect, circle")].map(m => m.getBoundingClientRect());
    const box = svg.getBoundingClientRect();
    labels += svg.querySelectorAll("text.label").length;
    texts.forEach(([name, a], i) => {
      if (a.left < box.left - 0.5 || a.right > box.right + 0.5) found.push([svg.id, name, "outside the plot"]);
      texts.slice(i + 1).forEach(([other, b]) => { if (hit(a, b)) found.push([svg.id, name, other]); });
      marks.forEach(m => { if (hit(a, m)) found.push([svg.id, name, "a bar or mark"]); });
    });
  }
  document.body.dataset.overlaps = JSON.stringify(found.slice(0, 10));
  document.body.dataset.labels = labels;
});
</script></body>"""


def test_100_deployments_have_no_overlapping_labels(chromium, tmp_path):
    photos, events = [], {}
    for d in range(100):
        dep = f"SITE-{d:03d}-" + "WM" * (d % 20)  # ids up to 48 characters of the widest letters
        for k in range(1 + d % 3):
            cid = f"{dep}:e{k}"
            events[cid] = (("animal", "person", "vehicle")[k], k != 1)
            photos += [photo(len(photos), dep, T0 + timedelta(days=d, hours=5 * k, seconds=5 * i), cid)
                       for i in range(1 + d % 5)]
    page = tmp_path / "report.html"
    page.write_text(render(*tables(photos, events)).replace("</body>", OVERLAPS))
    dom = _dom(chromium, page, tmp_path / "profile")
    body = re.search(r"<body[^>]*>", dom).group(0)
    assert 'data-labels="200"' in body  # a row label per deployment in both per-deployment plots
    overlaps = json.loads(re.search(r'data-overlaps="([^"]*)"', body).group(1).replace("&quot;", '"'))
    assert overlaps == []


def test_report_renders_plots_and_thumbnails(chromium, sample_run: Path, tmp_path):
    page = (sample_run / "report.html").resolve()
    dom = _dom(chromium, page, tmp_path / "profile")
    body = re.search(r"<body[^>]*>", dom)
    assert body, dom[:500]
    assert 'data-plots="3"' in body.group(0)
    assert 'data-thumbs-loaded="1"' in body.group(0)  # the heron's thumbnail decoded in the browser
    for plot in ("activity-by-hour", "records-per-deployment", "events-timeline"):
        assert f'id="{plot}"' in dom
    assert "<rect" in dom and "<circle" in dom  # bars and event marks were drawn
    for table in ("deployment-summary", "weather-at-events", "estimate-vs-measured"):
        assert f'id="{table}"' in dom
    assert re.search(r'id="camtrap-dp-result" class="valid">Valid', dom)  # the sample's package is valid
    shot = tmp_path / "report.png"
    subprocess.run([chromium, *CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'profile'}", "--window-size=1200,2000",
                    f"--screenshot={shot}", page.as_uri()], capture_output=True, timeout=120)
    assert shot.stat().st_size > 20_000  # a real page, not a blank one


def test_report_is_self_contained(sample_run: Path):
    text = (sample_run / "report.html").read_text()
    assert not re.search(r"""(src|href)=["']https?://""", text)  # nothing fetched from the network
    assert "data:image/jpeg;base64," in text

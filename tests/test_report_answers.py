"""report.html's answers: species x deployment records and RAI as the answer files say, effort, activity curves,
Δ̂, people counts, and a map whose points are drawn with no network; readable at 100 deployments and 50 species,
checked in headless Chromium (tables scroll in their own box, no label over another)."""

from __future__ import annotations

import hashlib
import json
import math
import re
import subprocess
from datetime import timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from test_report_html import CHROMIUM_FLAGS, OVERLAPS, T0, chromium, photo, tables  # noqa: F401 - a fixture

from wildlife import outputs, report_answers, report_html, report_map
from wildlife.answers import tables as answer_tables

OFFLINE = ["--host-resolver-rules=MAP * ~NOTFOUND"]  # no host resolves: the page is seen as with no network


def _dom(browser: str, page: Path, profile: Path, width: int = 1200) -> str:
    return subprocess.run([browser, *CHROMIUM_FLAGS, *OFFLINE, f"--user-data-dir={profile}",
                           f"--window-size={width},2000", "--virtual-time-budget=8000", "--dump-dom", page.as_uri()],
                          capture_output=True, text=True, timeout=180).stdout


def _write_answers(folder: Path, deployments: list[str], taxa: list[str], coords: bool = True) -> None:
    """Answer files as the run writes them (answers/ and deployments.parquet), with known values."""
    ans = folder / "answers"
    ans.mkdir(parents=True)
    rai = []
    for d, dep in enumerate(deployments):
        nights = 0.0 if d == 3 else 30.0  # one camera without effort
        for t, taxon in enumerate(taxa):
            n = (d * 7 + t * 3) % 5 if nights else 0
            outside = 1 if (d, t) == (3, 0) else 0
            rai.append([dep, taxon, n, outside, nights, round(100 * n / nights, 4) if nights else None])
    (ans / "rai.csv").write_bytes(answer_tables.csv_bytes(
        ["deployment_id", "taxon", "records", "records_outside_effort", "trap_nights", "rai"], rai))
    (ans / "effort.csv").write_bytes(answer_tables.csv_bytes(
        ["deployment_id", "window_start", "window_end", "window_source", "days_in_window", "trap_nights",
         "days_not_operating", "operating_periods", "cuts"],
        [[dep, "2024-05-01T12:00:00+00:00", "2024-05-31T12:00:00+00:00", "deployments table", 30.0,
          0.0 if d == 3 else 30.0, 30.0 if d == 3 else 0.0, 0 if d == 3 else 1,
          "2024-05-01T12:00:00+00:00 to 2024-05-31T12:00:00+00:00: silence" if d == 3 else None]
         for d, dep in enumerate(deployments)]))
    density = []
    for t, taxon in enumerate(taxa):
        for basis, peak in (("clock", (t * 5) % 24), ("sun", (t * 5 + 2) % 24)):
            for k in range(97):
                h = k * 0.25
                dens = math.exp(2 * math.cos((h - peak) * 2 * math.pi / 24)) / 24 / 2.28
                density.append([taxon, basis, h, round(dens, 6), 40 + t, 3.1])
    (ans / "activity_density.csv").write_bytes(answer_tables.csv_bytes(
        ["taxon", "time_basis", "hour", "density", "records", "kernel_concentration"], density))
    pairs = [[taxa[a], taxa[b], "clock", 40, 41, 0.5, 0.6, "dhat1", round(0.9 - 0.01 * (a + b), 3), None]
             for a in range(min(10, len(taxa))) for b in range(a + 1, min(10, len(taxa)))]
    pairs.append([taxa[0], taxa[-1], "sun", 5, 41, None, None, None, None, "fewer than 20 records of one taxon"])
    (ans / "activity_overlap.csv").write_bytes(answer_tables.csv_bytes(
        ["taxon_a", "taxon_b", "time_basis", "records_a", "records_b", "dhat1", "dhat4", "estimator", "overlap",
         "note"], pairs))
    rows = [{"deployment_id": dep, "latitude": 55.0 + (d % 10) * 0.1 if coords else None,
             "longitude": 9.0 + (d // 10) * 0.2 if coords else None} for d, dep in enumerate(deployments)]
    pq.write_table(pa.Table.from_pylist(rows, schema=outputs.DEPLOYMENTS_SCHEMA), folder / "deployments.parquet")


def _report(folder: Path, privacy: dict | None = None) -> dict:
    return {"session_id": "t", "warnings": [], "params": {"humans": "blur"},
            "final_results": {"parquet_uri": str(folder), "answers": {"folder": str(folder / "answers")}},
            "camtrap_dp": {"valid": True, "privacy": privacy or {
                "humans": "blur", "media_with_people": 7, "files_withheld": 7, "media_dropped": 0,
                "observations_dropped": 0}}}


def _page(folder: Path, deployments: list[str]) -> str:
    photos, events = [], {}
    for d, dep in enumerate(deployments[:5]):
        events[f"{dep}:e0"] = ("animal", True)
        photos.append(photo(d, dep, T0 + timedelta(days=d), f"{dep}:e0"))
    return report_html.render(_report(folder), *tables(photos, events), 0.2)


def _cell(page: str, table_id: str, taxon: str, column: int) -> str:
    table = re.search(rf'<table id="{table_id}">.*?</table>', page, re.S).group(0)
    row = re.search(rf'<tr><th class="taxon" title="{re.escape(taxon)}">.*?</tr>', table, re.S).group(0)
    return re.findall(r"<td[^>]*>(.*?)</td>", row)[column]


def test_species_by_deployment_shows_the_answer_files_numbers(tmp_path):
    deps, taxa = ["A", "B", "C", "D"], ["Vulpes vulpes", "Capreolus capreolus"]
    _write_answers(tmp_path, deps, taxa)
    page = _page(tmp_path, deps)
    # records (d * 7 + t * 3) % 5: fox 0, 2, 4, 0 (D has no effort: 0 in effort), roe deer 3, 0, 2, 0
    assert [_cell(page, "species-deployment", "Vulpes vulpes", k) for k in range(5)] == ["<b>6</b>", "0", "2", "4",
                                                                                      "0"]
    assert _cell(page, "species-deployment", "Capreolus capreolus", 0) == "<b>5</b>"
    assert "1 outside" in re.search(r'<td class="zero" title="D · Vulpes vulpes[^"]*"', page).group(0)
    # RAI: per 100 trap-nights over 30, empty where no trap-nights, mean over deployments with effort
    assert [_cell(page, "rai-matrix", "Vulpes vulpes", k) for k in range(5)] == ["<b>6.67</b>", "0.00", "6.67",
                                                                               "13.33", ""]
    assert "90.0 trap-nights over 4 deployment(s)" in page
    effort = re.search(r'<table id="effort-table">.*?</table>', page, re.S).group(0)
    assert 'title="2024-05-01T12:00:00+00:00 to 2024-05-31T12:00:00+00:00: silence">1</td>' in effort
    overlap = re.search(r'<table id="overlap-table">.*?</table>', page, re.S).group(0)
    assert overlap.count("<tr>") == 2 and "<td>0.890</td>" in overlap  # the header and the one pair with Δ̂
    assert "1 pair(s) without a coefficient" in page
    assert 'id="privacy-counts" data-media-with-people="7"' in page and "Files withheld: 7" in page


def test_a_run_without_answers_says_so_and_still_counts_people(tmp_path):
    page = report_answers.section({"params": {"humans": "drop"}, "camtrap_dp": {"privacy": {
        "humans": "drop", "media_with_people": 3, "files_withheld": 0, "media_dropped": 3,
        "observations_dropped": 4}}})
    assert 'id="no-answers"' in page and "photos left out: 3, with 4 observation(s)" in page


def test_deployments_without_coordinates_are_named_not_placed(tmp_path):
    _write_answers(tmp_path, ["A", "B"], ["Vulpes vulpes"], coords=False)
    page = report_answers.section(_report(tmp_path))
    assert 'id="map-none"' in page and "2 deployment(s) without coordinates" in page


def test_map_sizes_points_by_records_and_lists_species():
    points = report_map.features(
        [{"deployment_id": "A", "latitude": 55.0, "longitude": 9.0},
         {"deployment_id": "B", "latitude": 55.1, "longitude": 9.1}],
        {"A": {"Vulpes vulpes": 4, "Meles meles": 12}, "B": {"Vulpes vulpes": 0}})
    a, b = (p["properties"] for p in points)
    assert a["taxa"] == [["Meles meles", 12], ["Vulpes vulpes", 4]] or a["taxa"] == [("Meles meles", 12),
                                                                                      ("Vulpes vulpes", 4)]
    assert (a["records"], b["records"], a["radius"], b["radius"]) == (16, 0, report_map.MAX_RADIUS,
                                                                      report_map.MIN_RADIUS)
    assert points[0]["geometry"]["coordinates"] == [9.0, 55.0]  # GeoJSON: longitude first


def test_vendored_leaflet_is_the_npm_release_named_in_its_note():
    note = (Path(report_map.LEAFLET) / "SOURCE.md").read_text()
    for name in ("leaflet.js", "leaflet.css", "LICENSE"):
        digest = hashlib.sha256((Path(report_map.LEAFLET) / name).read_bytes()).hexdigest()
        assert f"{digest}  {name}" in note, name


CHECKS = """<script>
window.addEventListener("load", () => setTimeout(() => {
  const m = document.querySelector("#species-by-deployment .matrix");
  const heads = [...document.querySelectorAll("#species-deployment th.dep")].map(t => t.getBoundingClientRect());
  let crowded = 0;
  heads.forEach((a, i) => heads.slice(i + 1).forEach(b => {
    if (Math.min(a.right, b.right) - Math.max(a.left, b.left) > 0.5) crowded++; }));
  document.body.dataset.matrixScrolls = m.scrollWidth > m.clientWidth && m.scrollHeight > m.clientHeight;
  document.body.dataset.pageWidth = document.documentElement.scrollWidth;
  document.body.dataset.headOverlaps = crowded;
  document.body.dataset.curves = document.querySelectorAll("svg.curve").length;
}, 500));
</script></body>"""


def test_100_deployments_and_50_species_render_readably_offline(chromium, tmp_path):  # noqa: F811
    deps = [f"SITE-{d:03d}-" + "WM" * (d % 20) for d in range(100)]
    taxa = [f"Genus{t:02d} species{'x' * (t % 30)}" for t in range(50)]
    _write_answers(tmp_path, deps, taxa)
    page = tmp_path / "report.html"
    page.write_text(_page(tmp_path, deps).replace("</body>", OVERLAPS).replace("</body>", CHECKS))
    dom = _dom(chromium, page, tmp_path / "profile")
    body = re.search(r"<body[^>]*>", dom)
    assert body, dom[:500]
    attrs = dict(re.findall(r'data-([a-z-]+)="([^"]*)"', body.group(0)))
    assert attrs["map-points"] == "100"  # every deployment drawn, with no tile server reachable
    assert attrs["curves"] == "50"
    assert attrs["matrix-scrolls"] == "true" and int(attrs["page-width"]) <= 1200  # the table scrolls, not the page
    assert attrs["head-overlaps"] == "0"
    assert json.loads(attrs["overlaps"].replace("&quot;", '"')) == []  # no label over another in any plot
    assert re.search(r'<table id="overlap-table">.*?</table>', dom, re.S).group(0).count("<tr>") == 1 + 45


def test_sample_report_draws_its_map_offline_and_stays_one_file(chromium, sample_run: Path, tmp_path):  # noqa: F811
    text = (sample_run / "report.html").read_text()
    assert "sourceMappingURL" not in text and 'id="map-data"' in text
    assert not re.search(r"""(src|href)=["']https?://""", text)
    dom = _dom(chromium, (sample_run / "report.html").resolve(), tmp_path / "profile")
    assert 'data-map-points="4"' in re.search(r"<body[^>]*>", dom).group(0)  # the sample's four deployments
    assert 'id="species-deployment"' in dom and 'id="effort-table"' in dom


@pytest.mark.parametrize("humans", ["blur", "keep"])
def test_the_report_says_what_was_done_with_people(tmp_path, humans):
    report = _report(tmp_path, {"humans": humans, "media_with_people": 2, "files_withheld": 2 if humans == "blur"
                                else 0, "media_dropped": 0, "observations_dropped": 0})
    report["params"]["humans"] = humans
    text = report_answers.privacy_counts(report)
    assert "<b>2</b> photo(s) show people or vehicles" in text
    assert ("not blurred" in text) == (humans == "keep")


def test_the_map_rounds_coordinates_as_the_project_file_says(tmp_path):
    _write_answers(tmp_path, ["A", "B"], ["Vulpes vulpes"])
    (tmp_path / "project.yaml").write_text("title: T\ncontributors: [{title: A}]\ncoordinate_precision: 1\n")
    report = _report(tmp_path)
    report["params"]["project_uri"] = str(tmp_path / "project.yaml")
    points = [f["geometry"]["coordinates"] for f in report_map.features(report_answers.load(report).deployments, {})]
    assert points == [[9.0, 55.0], [9.0, 55.0]]  # 55.1 to whole degrees
    report["params"]["project_uri"] = None
    assert [p["latitude"] for p in report_answers.load(report).deployments] == [55.0, 55.1]

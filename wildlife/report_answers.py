"""report.html's answers: the map, species x deployment (independent records and RAI), camera effort,
activity curves, the overlap coefficients and the people kept out.

Nothing is computed again here: the section reads the tables the run wrote under ``answers/``
(``wildlife.answers.tables``: effort.csv, rai.csv, activity_density.csv, activity_overlap.csv) and the
deployments' coordinates from ``deployments.parquet``, so the page shows what the files say. Wide tables scroll
inside a box of their own with the header row and the taxon column fixed, so 100 deployments and 50 species stay
readable; activity curves are small multiples of one fixed size whose labels are cut to fit (full names in the
tooltips).
"""

from __future__ import annotations

import csv
import html
import io
from dataclasses import dataclass, field
from typing import Any

from wildlife import fs, privacy, publishing, report_map
from wildlife.answers import FOLDER
from wildlife.answers.activity import MIN_CURVE_RECORDS, MIN_OVERLAP_RECORDS
from wildlife.answers.circular import DHAT4_FROM

CSS = """
.matrix{max-height:32rem;max-width:100%;overflow:auto;border:1px solid #ddd}
.matrix table{border-collapse:separate;border-spacing:0;font-size:.85rem}
.matrix th,.matrix td{padding:.15rem .4rem;border-bottom:1px solid #eee;white-space:nowrap;background:#fff}
.matrix thead th{position:sticky;top:0;z-index:2;vertical-align:bottom}
.matrix th.dep{writing-mode:vertical-rl;transform:rotate(180deg);text-align:left;font-family:monospace;
font-weight:normal;max-height:14rem}
.matrix tbody th{position:sticky;left:0;z-index:1;text-align:left;font-weight:normal}
.matrix th.taxon{font-style:italic}
.matrix thead th:first-child{left:0;z-index:3} .matrix td.zero{color:#bbb}
.curves{display:grid;grid-template-columns:repeat(auto-fill,minmax(250px,1fr));gap:.6rem}
.curves svg{width:250px;height:130px}
"""
CURVE_W, CURVE_H, CURVE_FONT = 250, 130, 11
CURVE_CHARS = int((CURVE_W - 8) / (0.62 * CURVE_FONT))  # monospace title cut to the plot's width
DEP_CHARS = 28  # deployment ids in the matrices' vertical headers (full id in the tooltip)
PAIRS_LIMIT = 500  # overlap rows shown (activity_overlap.csv has all)
BASIS_STYLE = {"clock": ("#1565c0", ""), "sun": ("#ef6c00", "4 3")}


@dataclass
class Answers:
    effort: list[dict[str, str]]
    rai: list[dict[str, str]]
    density: list[dict[str, str]]
    overlap: list[dict[str, str]]
    deployments: list[dict[str, Any]] = field(default_factory=list)  # deployments.parquet rows
    folder: str = FOLDER


def _csv(uri: str) -> list[dict[str, str]]:
    text = fs.read_bytes(uri).decode()
    return [{k: (None if v == "NA" else v) for k, v in r.items()} for r in csv.DictReader(io.StringIO(text))]


def load(report: dict[str, Any]) -> Answers | None:
    """The answer tables a run wrote (None when it wrote none: a run that stopped early)."""
    final = report.get("final_results") or {}
    folder = (final.get("answers") or {}).get("folder")
    if not folder:
        return None
    try:
        tables = [_csv(fs.join(folder, n)) for n in ("effort.csv", "rai.csv", "activity_density.csv",
                                                      "activity_overlap.csv")]
        deps = fs.read_table(fs.join(final["parquet_uri"], "deployments.parquet")).select(
            ["deployment_id", "latitude", "longitude"]).to_pylist() if final.get("parquet_uri") else []
    except (OSError, KeyError):
        return None
    # the map shows no more than the shared package: coordinates rounded to the project file's precision
    publishing.round_coordinates(deps, publishing.load((report.get("params") or {}).get("project_uri")))
    return Answers(*tables, deployments=deps, folder=folder)


def _num(v: str | None) -> float | None:
    return None if v in (None, "") else float(v)


def _fmt(v: float | None, digits: int = 1) -> str:
    return "" if v is None else f"{v:.{digits}f}"


def _cut(text: str, n: int) -> str:
    return text if len(text) <= n else text[:n - 1] + "…"


def records(rai: list[dict[str, str]]) -> dict[str, dict[str, int]]:
    """deployment -> taxon -> independent records (inside and outside effort: every record is on the map)."""
    out: dict[str, dict[str, int]] = {}
    for r in rai:
        n = int(r["records"] or 0) + int(r["records_outside_effort"] or 0)
        out.setdefault(r["deployment_id"], {})[r["taxon"]] = n
    return out


def matrix(rai: list[dict[str, str]], deployments: list[str], table_id: str, value: str) -> str:
    """Taxa down, deployments across; ``value`` is ``records`` or ``rai``. A taxon's row starts with its total
    (records) or its mean over deployments with effort (RAI)."""
    cells: dict[tuple[str, str], dict[str, str]] = {(r["taxon"], r["deployment_id"]): r for r in rai}
    counts = records(rai)
    taxa = sorted({r["taxon"] for r in rai}, key=lambda t: (-sum(counts[d].get(t, 0) for d in counts), t))
    head = "".join(f'<th class="dep" title="{html.escape(d)}">{html.escape(_cut(d, DEP_CHARS))}</th>'
                   for d in deployments)
    first = "total" if value == "records" else "mean"
    rows = []
    for t in taxa:
        tds = []
        values = []
        for d in deployments:
            r = cells.get((t, d))
            if r is None:
                tds.append("<td></td>")
                continue
            n, outside, rai_v = int(r["records"] or 0), int(r["records_outside_effort"] or 0), _num(r["rai"])
            tip = (f"{d} · {t}: {n} record(s) in effort, {outside} outside; {_fmt(_num(r['trap_nights']))} "
                   f"trap-nights; RAI {_fmt(rai_v, 2) or 'none (no trap-nights)'}")
            shown = str(n) if value == "records" else _fmt(rai_v, 2)
            values.append(n if value == "records" else rai_v)
            zero = ' class="zero"' if (n == 0 and value == "records") or rai_v == 0 else ""
            tds.append(f'<td{zero} title="{html.escape(tip)}">{shown}</td>')
        known = [v for v in values if v is not None]
        lead = sum(known) if value == "records" else (sum(known) / len(known) if known else None)
        rows.append(f'<tr><th class="taxon" title="{html.escape(t)}">{html.escape(t)}</th>'
                    f'<td><b>{lead if value == "records" else _fmt(lead, 2)}</b></td>{"".join(tds)}</tr>')
    return (f'<div class="matrix"><table id="{table_id}"><thead><tr><th>taxon</th><th>{first}</th>{head}</tr>'
            f'</thead><tbody>{"".join(rows)}</tbody></table></div>')


def effort_table(effort: list[dict[str, str]]) -> str:
    rows = []
    for e in effort:
        cuts = e.get("cuts") or ""
        rows.append("<tr>" + "".join([
            f'<th title="{html.escape(e["deployment_id"])}">{html.escape(_cut(e["deployment_id"], DEP_CHARS))}</th>',
            f"<td>{html.escape((e.get('window_start') or '')[:16])}</td>",
            f"<td>{html.escape((e.get('window_end') or '')[:16])}</td>",
            f"<td>{html.escape(e.get('window_source') or '')}</td>",
            f"<td>{_fmt(_num(e.get('trap_nights')))}</td>", f"<td>{_fmt(_num(e.get('days_not_operating')))}</td>",
            f'<td title="{html.escape(cuts)}">{len(cuts.split("; ")) if cuts else 0}</td>']) + "</tr>")
    total = sum(_num(e.get("trap_nights")) or 0 for e in effort)
    return (f'<p>{total:.1f} trap-nights over {len(effort)} deployment(s). A cut is a stretch of the window the '
            "camera did not operate (problem period, silence, clock reset): hover for why.</p>"
            '<div class="matrix"><table id="effort-table"><thead><tr><th>deployment</th><th>window start (UTC)</th>'
            "<th>window end (UTC)</th><th>window from</th><th>trap-nights</th><th>days not operating</th>"
            f'<th>cuts</th></tr></thead><tbody>{"".join(rows)}</tbody></table></div>')


def _curve(taxon: str, series: dict[str, list[tuple[float, float]]], n: str, index: int) -> str:
    left, right, top, bottom = 6, CURVE_W - 6, 22, CURVE_H - 18
    peak = max(d for pts in series.values() for _, d in pts) or 1.0
    out = [f'<svg class="plot curve" id="curve-{index}" viewBox="0 0 {CURVE_W} {CURVE_H}" role="img" '
           f'aria-label="{html.escape(taxon)} activity"><title>{html.escape(taxon)}: {n} records</title>'
           f'<text x="{left}" y="14" font-size="{CURVE_FONT}" font-family="monospace">'
           f'{html.escape(_cut(taxon, CURVE_CHARS - len(f" (n={n})")))} (n={n})</text>']
    for basis, pts in series.items():
        colour, dash = BASIS_STYLE[basis]
        xy = " ".join(f"{left + (right - left) * h / 24:.1f},{bottom - (bottom - top) * d / peak:.1f}" for h, d in pts)
        out.append(f'<polyline points="{xy}" fill="none" stroke="{colour}" stroke-width="1.5"'
                   + (f' stroke-dasharray="{dash}"' if dash else "") + f"><title>{basis} time</title></polyline>")
    out.append(f'<line x1="{left}" y1="{bottom}" x2="{right}" y2="{bottom}" stroke="#999"/>')
    for h in (0, 6, 12, 18, 24):
        anchor = "start" if h == 0 else "end" if h == 24 else "middle"
        out.append(f'<text x="{left + (right - left) * h / 24:.1f}" y="{CURVE_H - 4}" font-size="{CURVE_FONT}" '
                   f'text-anchor="{anchor}">{h:02d}</text>')
    return "".join(out) + "</svg>"


def curves(density: list[dict[str, str]]) -> str:
    by: dict[str, dict[str, list[tuple[float, float]]]] = {}
    n: dict[str, str] = {}
    for r in density:
        by.setdefault(r["taxon"], {}).setdefault(r["time_basis"], []).append((float(r["hour"]), float(r["density"])))
        if r["time_basis"] == "clock":
            n[r["taxon"]] = r["records"]
    if not by:
        return (f'<p id="no-curves">No taxon has {MIN_CURVE_RECORDS} or more independent records with a time: no '
                "activity curve is drawn from fewer.</p>")
    legend = "".join(f'<span><i style="background:{c}"></i>{b} time</span>' for b, (c, _) in BASIS_STYLE.items())
    plots = "".join(_curve(t, by[t], n.get(t) or "?", i)
                    for i, t in enumerate(sorted(by, key=lambda t: (-int(n.get(t) or 0), t))))
    return (f'<p class="note">Kernel density of independent records over the day (von Mises kernel, answers/'
            f"activity_density.csv), for taxa with at least {MIN_CURVE_RECORDS} records; sun time puts sunrise at "
            f'06 and sunset at 18 every day. Each curve is scaled to its own peak.</p><p class="legend">{legend}</p>'
            f'<div class="curves" id="activity-curves">{plots}</div>')


def overlap_table(overlap: list[dict[str, str]]) -> str:
    rows = sorted((r for r in overlap if r.get("overlap") is not None),
                  key=lambda r: (r["time_basis"], -float(r["overlap"]), r["taxon_a"], r["taxon_b"]))
    without = sum(1 for r in overlap if r.get("overlap") is None)
    note = (f"<p>{without} pair(s) without a coefficient (fewer than {MIN_OVERLAP_RECORDS} records of one taxon, "
            "or no bandwidth): listed in answers/activity_overlap.csv with why.</p>" if without else "")
    if not rows:
        return f'<p id="no-overlap">No pair of taxa has {MIN_OVERLAP_RECORDS} or more records each.</p>{note}'
    body = "".join(
        f'<tr><th>{html.escape(r["taxon_a"])}</th><td class="text"><i>{html.escape(r["taxon_b"])}</i></td>'
        f'<td class="text">{r["time_basis"]}</td><td>{r["records_a"]}</td><td>{r["records_b"]}</td>'
        f'<td class="text">{html.escape(r.get("estimator") or "")}</td><td>{float(r["overlap"]):.3f}</td></tr>'
        for r in rows[:PAIRS_LIMIT])
    more = f"<p>{len(rows) - PAIRS_LIMIT} more in answers/activity_overlap.csv.</p>" if len(rows) > PAIRS_LIMIT else ""
    return (f'<p class="note">Overlap coefficient Δ̂ (Ridout &amp; Linkie 2009): Δ̂1 below {DHAT4_FROM} records in '
            "the smaller sample, Δ̂4 from there (activity_overlap.csv has both); 0 no overlap, 1 the same activity."
            f'</p><div class="matrix"><table id="overlap-table"><thead><tr><th>taxon A</th>'
            '<th class="text">taxon B</th><th class="text">time</th><th>records A</th><th>records B</th>'
            '<th class="text">estimator</th><th>Δ̂</th></tr></thead>'
            f"<tbody>{body}</tbody></table></div>{more}{note}")


def privacy_counts(report: dict[str, Any]) -> str:
    humans = privacy.mode((report.get("params") or {}).get("humans"))
    counts = (report.get("camtrap_dp") or {}).get("privacy")
    what = {"blur": "blurred in every image Odin writes (thumbnails here, export annotated); their files are "
                    "withheld from the Camtrap DP package (not public, no file path)",
            "drop": "blurred in every image Odin writes and left out of the Camtrap DP package with their "
                    "observations",
            "keep": "kept as they are (--humans keep): not blurred, files listed in the package (not public)"}[humans]
    if not counts:
        return f'<p id="privacy-counts">People and vehicles (--humans {humans}): {what}. No package was written.</p>'
    return (f'<p id="privacy-counts" data-media-with-people="{counts["media_with_people"]}">'
            f'<b>{counts["media_with_people"]}</b> photo(s) show people or vehicles (--humans {humans}): {what}. '
            f'Files withheld: {counts["files_withheld"]}; photos left out: {counts["media_dropped"]}, with '
            f'{counts["observations_dropped"]} observation(s).</p>')


def section(report: dict[str, Any], answers: Answers | None = None) -> str:
    """The answers' HTML for report.html (``answers`` read from the run's files when not given)."""
    answers = answers if answers is not None else load(report)
    people = f"<section id=\"privacy\"><h2>People and vehicles</h2>{privacy_counts(report)}</section>"
    if answers is None:
        return people + '<p class="note" id="no-answers">No answer tables (effort, RAI, activity) were written.</p>'
    deps = sorted({*(e["deployment_id"] for e in answers.effort), *(r["deployment_id"] for r in answers.rai)})
    folder = html.escape(answers.folder)
    return f"""<style>{CSS}</style>
<section id="map-section"><h2>Map of deployments</h2>{report_map.section(answers.deployments, records(answers.rai))}
</section>
<section id="species-by-deployment"><h2>Species × deployment: independent records</h2>
<p class="note">Independent records per taxon and deployment (answers/rai.csv: in effort; hover a cell for the
records outside effort, trap-nights and RAI). Taxa with most records first. Files: <code>{folder}</code>.</p>
{matrix(answers.rai, deps, "species-deployment", "records")}</section>
<section id="rai-section"><h2>Relative abundance (RAI: records per 100 trap-nights)</h2>
<p class="note">Empty where the deployment had no trap-nights; mean over deployments with effort.</p>
{matrix(answers.rai, deps, "rai-matrix", "rai")}</section>
<section id="effort-section"><h2>Camera effort</h2>{effort_table(answers.effort)}</section>
<section id="activity-curves-section"><h2>Activity curves</h2>{curves(answers.density)}</section>
<section id="overlap-section"><h2>Activity overlap between taxa</h2>{overlap_table(answers.overlap)}</section>
{people}"""

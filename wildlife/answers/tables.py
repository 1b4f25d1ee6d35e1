"""All the answers from a run's tables, and writing them as CSV under ``<output>/answers/`` (README "Answers").

CSV because R (``read.csv``) and Python (``pandas.read_csv``) read it as it is; empty values are written
``NA``, which both read as missing. Matrices (camera operation, detection histories) carry the deployment ids
as row names the way R's ``write.table`` writes them: a first column without a header (the header row is one
field shorter), which ``read.csv`` takes as row names as text. With an empty header cell instead, R converts
the column first: deployments ``001``, ``002`` came back as row names ``1``, ``2`` (tests/test_r_reads.py).
"""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta, timezone, tzinfo
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from wildlife import deployments, fs
from wildlife.answers import FOLDER, abundance, activity, effort, occupancy
from wildlife.answers.effort import Effort
from wildlife.runinput import RunInput

HISTORIES = "detection_histories"


def local_zone(dep: dict[str, Any]) -> tzinfo:
    """A deployment's clock (a ``deployments.parquet`` row): its fixed UTC offset, else its zone (a clock that
    follows daylight saving time), else UTC."""
    if dep.get("utc_offset_min") is not None:
        return timezone(timedelta(minutes=dep["utc_offset_min"]))
    if dep.get("timezone"):
        return deployments.parse_tz(dep["timezone"])
    return UTC


@dataclass
class Answers:
    efforts: list[Effort]
    records: list[dict[str, Any]]  # independent records with ``taxon``
    activity: list[dict[str, Any]]
    occasion_days: int
    warnings: list[str] = field(default_factory=list)

    @property
    def taxa(self) -> list[str]:
        return sorted({r["taxon"] for r in self.records})


def compute(media: pa.Table, clusters: pa.Table, deployments_table: pa.Table, deployments_uri: str | None,
            occasion_days: int, silence_days: float = effort.SILENCE_DAYS) -> Answers:
    """Effort, records and record times from ``images``, ``clusters`` and ``deployments`` tables."""
    warnings: list[str] = []
    table = deployments.load(deployments_uri) if deployments_uri else {}
    deps = deployments_table.to_pylist()
    photos = set(pc.unique(media.column("deployment_id")).to_pylist())  # the deployments with photos here
    # each deployment's photos: an Arrow copy of one deployment at a time, made dicts, in the photos' order
    order = sorted(range(len(deps)), key=lambda i: deployments.group_order(deps[i]["deployment_id"]))
    cols = ["deployment_id", "relpath", "status", "timestamp", "clock_flags"]
    efforts: list[Effort] = [None] * len(deps)  # type: ignore[list-item] - each filled below
    for i, (dep_id, rows) in zip(order, deployments.photos_of(media.select(cols),
                                                              [deps[i]["deployment_id"] for i in order]), strict=True):
        efforts[i] = effort.deployment_effort(deps[i], rows.to_pylist() if rows is not None else [],
                                              local_zone(deps[i]), table[dep_id].problems if dep_id in table else (),
                                              silence_days)
    for e in efforts:
        if e.window is None:
            warnings.append(f"deployment {e.deployment_id}: no effort ({e.window_source})")
    silent = [e.deployment_id for e in efforts if e.window and not e.operating]
    absent = [d for d in silent if d not in photos]  # in the deployments table, not in this input
    for ids, why in ((absent, "the deployments table lists them but this input holds none of their files"),
                     ([d for d in silent if d in photos], "answers/effort.csv column cuts says why")):
        if ids:
            warnings.append(f"{len(ids)} deployment(s) count no trap-night ({', '.join(ids[:10])}"
                            f"{', ...' if len(ids) > 10 else ''}): {why}")
    recs = abundance.records(_record_rows(clusters))
    known = {e.deployment_id: e for e in efforts}
    nowhere = sum(r["deployment_id"] not in known for r in recs)
    if nowhere:
        warnings.append(f"{nowhere} independent record(s) belong to no deployment: left out of effort, RAI, "
                        "detection histories and activity")
    outside = [r for r in recs if r["deployment_id"] in known and not known[r["deployment_id"]].operating_at(
        r["start_time"])]
    if outside:
        warnings.append(f"{len(outside)} independent record(s) fell while the camera was not operating (outside "
                        "the deployment window or in a problem period): counted in rai.csv records_outside_effort, "
                        "not in the index")
    zones = {e.deployment_id: e.zone for e in efforts}
    points = {d["deployment_id"]: (d["latitude"], d["longitude"]) for d in deps
              if d["latitude"] is not None and d["longitude"] is not None}
    times = activity.record_times(recs, zones, points)
    no_sun = sum(r["sun_hour"] is None for r in times)
    if no_sun:
        warnings.append(f"{no_sun} record(s) without sun time (no deployment location, or polar day/night): "
                        "see activity.csv sun_note")
    return Answers(efforts, recs, times, occasion_days, warnings)


# what the answers read of a cluster (abundance.records and the tables made of its records): its other columns,
# weather's included, are never made Python objects
RECORD_COLUMNS = ("cluster_id", "deployment_id", "start_time", "independent", "taxon", "scientific_name",
                  "top_category")


def _record_rows(clusters: pa.Table) -> list[dict[str, Any]]:
    """The independent clusters as dicts of ``RECORD_COLUMNS`` (those the table has): records are made of these."""
    if "independent" in clusters.column_names:
        clusters = clusters.filter(clusters.column("independent").cast(pa.bool_()).fill_null(False))
    return clusters.select([c for c in RECORD_COLUMNS if c in clusters.column_names]).to_pylist()


def _cell(value: Any) -> str:
    if value is None:
        return "NA"
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, float):
        return format(value, ".10g")
    if isinstance(value, datetime | date):
        return value.isoformat()
    return str(value)


def csv_bytes(header: list[str], rows: list[list[Any]]) -> bytes:
    sink = io.StringIO()
    writer = csv.writer(sink, lineterminator="\n")
    writer.writerow(header)
    writer.writerows([[_cell(v) for v in row] for row in rows])
    return sink.getvalue().encode()


def matrix_csv(columns: list[str], ids: list[str], rows: list[list[Any]]) -> bytes:
    """A matrix with deployment ids as row names (see the module's docstring); without columns (no day of
    effort) the header is one empty name, as a header line cannot be shorter than nothing."""
    return csv_bytes(columns or [""], [[i, *row] for i, row in zip(ids, rows, strict=True)])


def _records_csv(rows: list[dict[str, Any]], header: list[str]) -> bytes:
    return csv_bytes(header, [[r[k] for k in header] for r in rows])


def slug(taxon: str) -> str:
    """A file name for a taxon: ``Vulpes vulpes`` -> ``Vulpes_vulpes``."""
    return re.sub(r"[^A-Za-z0-9]+", "_", taxon).strip("_") or "taxon"


def files(answers: Answers) -> dict[str, bytes]:
    """Relative path under ``answers/`` -> CSV bytes, for every answer table."""
    out: dict[str, bytes] = {}
    rows = effort.effort_rows(answers.efforts)
    out["effort.csv"] = _records_csv(rows, list(rows[0]) if rows else ["deployment_id"])
    ids, days, matrix = effort.operation_matrix(answers.efforts)
    out["camera_operation.csv"] = matrix_csv([d.isoformat() for d in days], ids, matrix)
    rai = abundance.rai_rows(answers.efforts, answers.records)
    out["rai.csv"] = _records_csv(rai, ["deployment_id", "taxon", "records", "records_outside_effort",
                                        "trap_nights", "rai"])
    L = answers.occasion_days
    eff = occupancy.effort_matrix(answers.efforts, L)
    width = len(eff[0]) if eff else 0
    header = [f"o{k + 1}" for k in range(width)]
    ids = [e.deployment_id for e in answers.efforts]
    out[f"{HISTORIES}/effort.csv"] = matrix_csv(header, ids, eff)
    index, used = [], set()
    histories = occupancy.detection_histories(answers.efforts, answers.records, answers.taxa, L)
    for taxon, hist in histories.items():
        name = slug(taxon)
        while name in used or name in ("effort", "index"):
            name += "_"
        used.add(name)
        out[f"{HISTORIES}/{name}.csv"] = matrix_csv(header, ids, hist)
        detected = sum(any(v == 1 for v in row) for row in hist)
        surveyed = sum(any(v is not None for v in row) for row in hist)
        index.append([taxon, f"{name}.csv", surveyed, detected,
                      round(detected / surveyed, 4) if surveyed else None])
    out[f"{HISTORIES}/index.csv"] = csv_bytes(
        ["taxon", "file", "deployments_surveyed", "deployments_detected", "naive_occupancy"], index)
    out["activity.csv"] = _records_csv(answers.activity, ["cluster_id", "deployment_id", "taxon", "start_time",
                                                          "local_time", "utc_offset_min", "clock_hour",
                                                          "sun_hour", "sun_note"])
    fitted = activity.fits(answers.activity)
    out["activity_density.csv"] = _records_csv(activity.curves(answers.activity, fitted),
                                               ["taxon", "time_basis", "hour", "density", "records",
                                                "kernel_concentration"])
    out["activity_overlap.csv"] = _records_csv(activity.overlaps(answers.activity, fitted),
                                               ["taxon_a", "taxon_b", "time_basis", "records_a", "records_b",
                                                "dhat1", "dhat4", "estimator", "overlap", "note"])
    return out


# the files a user opens first, which the run report's files_created lists (index.csv names each taxon's history)
MAIN_FILES = ("effort.csv", "camera_operation.csv", "rai.csv", f"{HISTORIES}/index.csv", "activity.csv",
              "activity_density.csv", "activity_overlap.csv")


def write(out_uri: str, media: pa.Table, clusters: pa.Table, deployments_table: pa.Table,
          params: dict[str, Any]) -> dict[str, Any]:
    """Compute and write every answer table; the WriteOutputs payload's ``answers`` section."""
    answers = compute(media, clusters, deployments_table, params.get("deployments_uri"),
                      int(params.get("occasion_days") or RunInput.default("occasion_days")))
    folder = fs.join(out_uri, FOLDER)
    written = files(answers)
    for rel, data in written.items():
        fs.write_bytes(fs.join(folder, *rel.split("/")), data)
    for name in fs.list_names(fs.join(folder, HISTORIES)):  # a taxon of an earlier write (stage re-run) is gone
        if name.endswith(".csv") and f"{HISTORIES}/{name}" not in written:
            fs.delete(fs.join(folder, HISTORIES, name))
    # not every file: the run's state travels through Step Functions (256 KB); index.csv lists the histories
    return {"folder": folder, "main_files": [fs.join(folder, *rel.split("/")) for rel in MAIN_FILES],
            "detection_histories": len(answers.taxa),
            "deployments": len(answers.efforts),
            "trap_nights": round(sum(e.trap_nights for e in answers.efforts if e.window), 4),
            "independent_records": len(answers.records), "taxa": answers.taxa,
            "occasion_days": answers.occasion_days, "silence_days": effort.SILENCE_DAYS,
            "warnings": answers.warnings}

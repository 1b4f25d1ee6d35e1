"""Species downstream of the classifier: the record key, each photo's taxa, and the taxa a run found.

Stage 2 fills ``detections.parquet``'s species columns (``wildlife.classify``); everything after it (events and
independence, Camtrap DP, megadetector.json, report.html) reads them through this module, so "which taxon is
this box" has one answer.

The record key (``taxon_key``), per box:

* the classifier's ``scientific_name`` where it decided a taxon (*Vulpes vulpes*, or *Canidae* after a rollup);
* else its ``common_name`` for a decision outside the taxonomy (SpeciesNet's ``vehicle``, a bare ``animal``),
  except ``blank``: the detector's box says something is there, and a box is never counted as nothing;
* else the detector's ``category`` (``animal``, ``person``, ``vehicle``): no classifier judged the box, and the
  run counts records per category as it did before species (nothing invented).
"""

from __future__ import annotations

from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from wildlife.classify import Label

NOT_A_RECORD = frozenset({"blank", ""})  # classifier names that cannot be a box's taxon (the detector's stands)

TAXA_SCHEMA = pa.schema([
    ("photo_id", pa.string()), ("taxon", pa.string()), ("top_category", pa.string()), ("max_conf", pa.float64()),
    ("n_detections", pa.int32()), ("scientific_name", pa.string()), ("common_name", pa.string()),
    ("taxon_rank", pa.string()), ("score", pa.float64()),
])


def taxon_key(category: str, scientific_name: str | None = None, common_name: str | None = None) -> str:
    """The taxon a box is counted under: see the module's docstring (``taxon_keys`` is the same rule over
    columns)."""
    if scientific_name and scientific_name.strip():
        return scientific_name.strip()
    if common_name and common_name.strip().lower() not in NOT_A_RECORD:
        return common_name.strip()
    return category


def taxon_keys(table: pa.Table) -> pa.Array:
    """``taxon_key`` of every row of a detections table (``category`` and, where present, ``scientific_name``
    and ``common_name``), with Arrow kernels."""
    n = table.num_rows

    def named(column: str, refused: list[str]) -> pa.Array:
        if column not in table.column_names:
            return pa.nulls(n, pa.string())
        values = pc.utf8_trim_whitespace(table.column(column).cast(pa.string()))
        return pc.if_else(pc.is_in(pc.utf8_lower(values), pa.array(refused)), pa.nulls(n, pa.string()), values)

    return pc.coalesce(named("scientific_name", [""]), named("common_name", sorted(NOT_A_RECORD)),
                       table.column("category").cast(pa.string()))


def positive_mask(detections: pa.Table, threshold: float) -> pa.Array:
    """True for the boxes that count: at or above ``threshold`` and not suspected static (Stage 2's positives)."""
    return pc.and_(pc.greater_equal(detections.column("conf"), threshold),
                   pc.invert(detections.column("suspected_static"))).fill_null(False)


def positive(detections: pa.Table, threshold: float) -> pa.Table:
    return detections.filter(positive_mask(detections, threshold))


def per_photo_taxa(detections: pa.Table, threshold: float) -> pa.Table:
    """One row per photo and taxon over the positive boxes (``TAXA_SCHEMA``), ordered by photo and taxon.

    ``top_category`` and ``max_conf``: the detector's category and confidence of the taxon's most confident box
    in the photo; ``n_detections``: its boxes in the photo (the individuals seen); ``score``: the classifier's
    highest ``label_score`` among them (null where no classifier judged them). Species columns come from the
    most confident box and are null where no classifier ran.
    """
    pos = positive(detections, threshold)
    n = pos.num_rows

    def column(name: str, kind: pa.DataType) -> pa.Array:
        return pos.column(name) if name in pos.column_names else pa.nulls(n, kind)

    rows = pa.table({
        "photo_id": pos.column("photo_id"), "taxon": taxon_keys(pos), "category": pos.column("category"),
        "conf": pos.column("conf"), "scientific_name": column("scientific_name", pa.string()),
        "common_name": column("common_name", pa.string()), "taxon_rank": column("taxon_rank", pa.string()),
        "label_score": column("label_score", pa.float64()),
    }).sort_by([("photo_id", "ascending"), ("taxon", "ascending"), ("conf", "descending")])
    # in that order "first" is the most confident box's value (the species fields are one label's)
    grouped = rows.group_by(["photo_id", "taxon"], use_threads=False).aggregate([
        ("category", "first"), ("conf", "first"), ("conf", "count"), ("scientific_name", "first"),
        ("common_name", "first"), ("taxon_rank", "first"), ("label_score", "max")])
    return pa.table({
        "photo_id": grouped.column("photo_id"), "taxon": grouped.column("taxon"),
        "top_category": grouped.column("category_first"), "max_conf": grouped.column("conf_first"),
        "n_detections": grouped.column("conf_count").cast(pa.int32()),
        "scientific_name": grouped.column("scientific_name_first"), "common_name": grouped.column("common_name_first"),
        "taxon_rank": grouped.column("taxon_rank_first"), "score": grouped.column("label_score_max"),
    }, schema=TAXA_SCHEMA)


def from_photos(photos: pa.Table) -> pa.Table:
    """Taxa rows for a photos table without species: each positive photo's ``top_category`` is its taxon."""
    pos = photos.filter(pc.is_valid(photos.column("top_category")))
    n = pos.num_rows
    return pa.table({
        "photo_id": pos.column("photo_id").cast(pa.string()), "taxon": pos.column("top_category"),
        "top_category": pos.column("top_category"), "max_conf": pos.column("max_conf").cast(pa.float64()),
        "n_detections": pos.column("n_detections").cast(pa.int32()),
        "scientific_name": pa.nulls(n, pa.string()), "common_name": pa.nulls(n, pa.string()),
        "taxon_rank": pa.nulls(n, pa.string()), "score": pa.nulls(n, pa.float64()),
    }, schema=TAXA_SCHEMA)


def labels(detections: pa.Table, threshold: float) -> dict[str, dict[str, Any]]:
    """The classifier's decisions on positive boxes: full label line -> {label, count, classifier}, for the
    outputs that list the taxa a run found (Camtrap DP ``taxonomic``, megadetector.json's categories)."""
    if "label" not in detections.column_names:
        return {}
    out: dict[str, dict[str, Any]] = {}
    for d in positive(detections, threshold).select(["label", "classifier"]).to_pylist():
        if not d["label"]:
            continue
        try:
            parsed = Label.parse(d["label"])
        except ValueError:
            continue  # a malformed line names no taxon we can state; the box keeps its detector category
        entry = out.setdefault(d["label"], {"label": parsed, "count": 0, "classifier": d["classifier"]})
        entry["count"] += 1
    return dict(sorted(out.items()))


def classifiers(detections: pa.Table) -> list[str]:
    """The classifiers (name and version) that judged any box."""
    if "classifier" not in detections.column_names:
        return []
    return sorted({c for c in detections.column("classifier").to_pylist() if c})

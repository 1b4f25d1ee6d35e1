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
    """The taxon a box is counted under: see the module's docstring."""
    if scientific_name:
        return scientific_name
    if common_name and common_name.strip().lower() not in NOT_A_RECORD:
        return common_name
    return category


def positive_mask(detections: pa.Table, threshold: float) -> pa.Array:
    """True for the boxes that count: at or above ``threshold`` and not suspected static (Stage 2's positives)."""
    return pc.and_(pc.greater_equal(detections.column("conf"), threshold),
                   pc.invert(detections.column("suspected_static"))).fill_null(False)


def positive(detections: pa.Table, threshold: float) -> pa.Table:
    return detections.filter(positive_mask(detections, threshold))


def per_photo_taxa(detections: pa.Table, threshold: float) -> pa.Table:
    """One row per photo and taxon over the positive boxes (``TAXA_SCHEMA``).

    ``top_category`` and ``max_conf``: the detector's category and confidence of the taxon's most confident box
    in the photo; ``n_detections``: its boxes in the photo (the individuals seen); ``score``: the classifier's
    highest ``label_score`` among them (null where no classifier judged them). Species columns come from the
    most confident box and are null where no classifier ran.
    """
    cols = [c for c in ("photo_id", "category", "conf", "scientific_name", "common_name", "taxon_rank",
                        "label_score") if c in detections.column_names]
    best: dict[tuple[str, str], dict[str, Any]] = {}
    counts: dict[tuple[str, str], int] = {}
    scores: dict[tuple[str, str], float | None] = {}
    for d in positive(detections, threshold).select(cols).to_pylist():
        key = (d["photo_id"], taxon_key(d["category"], d.get("scientific_name"), d.get("common_name")))
        counts[key] = counts.get(key, 0) + 1
        if key not in best or d["conf"] > best[key]["conf"]:
            best[key] = d
        s = d.get("label_score")
        if s is not None and (scores.get(key) is None or s > scores[key]):
            scores[key] = s
    rows = [{"photo_id": pid, "taxon": taxon, "top_category": d["category"], "max_conf": d["conf"],
             "n_detections": counts[(pid, taxon)], "scientific_name": d.get("scientific_name"),
             "common_name": d.get("common_name"), "taxon_rank": d.get("taxon_rank"),
             "score": scores.get((pid, taxon))}
            for (pid, taxon), d in sorted(best.items())]
    return pa.Table.from_pylist(rows, schema=TAXA_SCHEMA)


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

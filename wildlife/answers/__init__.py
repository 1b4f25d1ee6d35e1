"""Answers: what an ecologist computes after tagging, as tables the usual tools read.

Plain functions over Odin's own tables (``deployments.parquet``, ``images.parquet``, ``clusters.parquet``):

* ``effort``: per deployment and day, whether the camera was operating (camtrapR's camera-operation matrix)
  and the trap-nights per deployment;
* ``abundance``: independent records per 100 trap-nights (relative abundance index), per deployment and taxon;
* ``occupancy``: detection histories per taxon (deployments x occasions) for ``unmarked``;
* ``suntime`` and ``activity``: each record's clock and sun time, kernel density curves on the circle and the
  overlap coefficient between taxa (``circular`` holds the statistics);
* ``tables``: all of them from a run's tables, and writing them under ``<output>/answers/``.

One record key names a taxon everywhere: Stage 2 writes it as clusters.parquet ``taxon``
(``wildlife.species.taxon_key``); ``record_key`` gives it for tables without that column.
"""

from __future__ import annotations

# where the answers go, under the run's output
FOLDER = "answers"


def record_key(scientific_name: str | None, category: str | None) -> str | None:
    """The taxon a record counts for: its scientific name where a classifier gave one, else the detector's
    category (``animal``, ``person``, ``vehicle``): "per category when no classifier ran". Stage 2's rule
    (``wildlife.species.taxon_key``), for a clusters row without its own ``taxon`` column (older runs)."""
    from wildlife.species import taxon_key  # noqa: PLC0415

    category = (category or "").strip()
    key = taxon_key(category, scientific_name)
    return key or None


"""Answers: what an ecologist computes after tagging, as tables the usual tools read.

Plain functions over Odin's own tables (``deployments.parquet``, ``images.parquet``, ``clusters.parquet``):

* ``effort``: per deployment and day, whether the camera was operating (camtrapR's camera-operation matrix)
  and the trap-nights per deployment;
* ``abundance``: independent records per 100 trap-nights (relative abundance index), per deployment and taxon;
* ``occupancy``: detection histories per taxon (deployments x occasions) for ``unmarked``;
* ``suntime`` and ``activity``: each record's clock and sun time, kernel density curves on the circle and the
  overlap coefficient between taxa (``circular`` holds the statistics);
* ``tables``: all of them from a run's tables, and writing them under ``<output>/answers/``.

One record key names a taxon everywhere: ``record_key``.
"""

from __future__ import annotations

# where the answers go, under the run's output
FOLDER = "answers"


def record_key(scientific_name: str | None, category: str | None) -> str | None:
    """The taxon a record counts for: its scientific name where a classifier gave one, else the detector's
    category (``animal``, ``person``, ``vehicle``): "per category when no classifier ran"."""
    name = (scientific_name or "").strip()
    return name or ((category or "").strip() or None)


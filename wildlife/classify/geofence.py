"""The species geofence: may a label stand in a country (and first-level region)?

The rules are SpeciesNet's release format (google/cameratrapai ``speciesnet/geofence_utils.py``,
``should_geofence_animal_classification``; built by ``speciesnet/scripts/build_geofence_release.py``)::

    {"mammalia;carnivora;ursidae;ursus;americanus": {"allow": {"USA": ["NJ", ...], "CAN": []}},
     "mammalia;cetartiodactyla;cervidae;capreolus;capreolus": {"allow": {...}, "block": {"USA": []}},
     "mammalia;carnivora;ursidae;;": {"allow": {"USA": [], ...}}}

keyed by the label's five taxonomy fields (``class;order;family;genus;species``, higher taxa with empty
fields), each with ``allow`` and/or ``block``: country (ISO 3166-1 alpha-3) -> regions (an empty list: the
whole country). A label is geofenced where

* an ``allow`` list exists and does not name the country, or names it with regions and the deployment's
  region is known and not among them;
* a ``block`` list names the country with no regions, or with the deployment's region among them.

No country, or a label the geofence does not list: never geofenced (a rule can only take a label away).
SpeciesNet writes US states as their postal code (``"NJ"``); Odin's regions are ISO 3166-2 (``"US-NJ"``), so
both spellings match.
"""

from __future__ import annotations

from wildlife.classify import Label


def key(label: Label) -> str:
    """The geofence's key for a label: its five taxonomy fields."""
    return ";".join((label.class_, label.order, label.family, label.genus, label.species))


def _names(region: str | None) -> set[str]:
    if not region:
        return set()
    return {region, region.split("-", 1)[1]} if "-" in region else {region}


def blocked(label: Label, country: str | None, region: str | None, geofence: dict | None) -> bool:
    """True where the geofence takes ``label`` away in ``country``/``region`` (see the module's rules)."""
    if not geofence or not country:
        return False
    rule = geofence.get(key(label))
    if not rule:
        return False
    here = _names(region)
    allow = rule.get("allow")
    if allow:
        if country not in allow:
            return True
        regions = allow[country]
        if here and regions and not here & set(regions):
            return True
    block = rule.get("block")
    if block and country in block:
        regions = block[country]
        if not regions or here & set(regions):
            return True
    return False

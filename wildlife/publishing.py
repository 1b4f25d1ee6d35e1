"""The project file (``--project FILE.yaml``): what a Camtrap DP package needs to go to GBIF's IPT without hand
edits, and coordinates rounded for sensitive species or sites.

```yaml
title: Roe deer in Gribskov 2025                # datapackage.json title (and project.title unless project_title)
project_title: Gribskov camera survey           # optional
description: ...                                # optional, Markdown
contributors:                                   # at least one; role: contact, principalInvestigator,
  - {title: Jane Doe, email: jane@example.org, role: principalInvestigator, organization: KU}
rights_holder: University of Copenhagen         # added as a contributor with role rightsHolder
licenses: {data: CC-BY-4.0, media: CC-BY-NC-4.0}   # or: license: CC-BY-4.0 (both scopes)
citation: Doe J (2025) Roe deer in Gribskov. ...   # bibliographicCitation
coordinate_precision: 0.01                      # degrees; deployments' latitude/longitude rounded to it
sampling_design: systematicRandom               # optional; Camtrap DP project.samplingDesign
keywords: [roe deer, camera trap]               # optional
homepage: https://example.org/gribskov          # optional
```

Field names and roles are Camtrap DP 1.0.2's (``wildlife/schemas/camtrap-dp-1.0.2/camtrap-dp-profile.json``):
``contributors[].role`` is one of ``ROLES``; ``licenses`` needs one entry of scope ``data`` and one of scope
``media``; ``coordinatePrecision`` is "the least precise coordinate precision of deployments.latitude and
longitude ... especially relevant when coordinates have been rounded to protect sensitive species". A bad file is
an ``InputError`` naming the key, before any work.
"""

from __future__ import annotations

import math
from typing import Any

import yaml

from wildlife import fs
from wildlife.errors import InputError

ROLES = ("contact", "principalInvestigator", "rightsHolder", "publisher", "contributor")
SAMPLING_DESIGNS = ("simpleRandom", "systematicRandom", "clusteredRandom", "experimental", "targeted",
                    "opportunistic")
KEYS = ("title", "project_title", "description", "contributors", "rights_holder", "license", "licenses",
        "citation", "coordinate_precision", "sampling_design", "keywords", "homepage")
HINT = "See README 'Publishing: the project file' for the keys; fix the file and run again."


def _fail(uri: str, message: str) -> InputError:
    return InputError(f"project file {uri}: {message}", hint=HINT)


def load(uri: str | None) -> dict[str, Any] | None:
    """The project file, checked; None without one."""
    if not uri:
        return None
    try:
        data = yaml.safe_load(fs.read_bytes(uri))
    except OSError as exc:
        raise InputError(f"cannot read the project file {uri}: {exc}", hint="Give --project an existing YAML file.") \
            from exc
    except yaml.YAMLError as exc:
        raise _fail(uri, f"not valid YAML ({exc})") from exc
    if not isinstance(data, dict):
        raise _fail(uri, "expected a mapping of keys (title:, contributors:, ...)")
    unknown = sorted(set(data) - set(KEYS))
    if unknown:
        raise _fail(uri, f"unknown key(s) {unknown}; known: {list(KEYS)}")
    if not isinstance(data.get("title"), str) or not data["title"].strip():
        raise _fail(uri, "title is required (the package's title)")
    people = data.get("contributors") or []
    if not isinstance(people, list) or not people:
        raise _fail(uri, "contributors: give at least one, each with title (a name) and role")
    for i, p in enumerate(people):
        if not isinstance(p, dict) or not str(p.get("title") or "").strip():
            raise _fail(uri, f"contributors[{i}] needs a title (the person's or organisation's name)")
        if p.get("role", "contributor") not in ROLES:
            raise _fail(uri, f"contributors[{i}].role={p.get('role')!r} is not one of {list(ROLES)}")
    precision = data.get("coordinate_precision")
    if precision is not None and (not isinstance(precision, int | float) or isinstance(precision, bool)
                                  or not 0 < precision <= 1 or _decimals(precision) is None):
        raise _fail(uri, f"coordinate_precision={precision!r}: give a power of ten in degrees (0.1, 0.01, 0.001)")
    if data.get("sampling_design") not in (None, *SAMPLING_DESIGNS):
        raise _fail(uri, f"sampling_design={data['sampling_design']!r} is not one of {list(SAMPLING_DESIGNS)}")
    licenses = data.get("licenses")
    if licenses is not None and (not isinstance(licenses, dict) or set(licenses) != {"data", "media"}):
        raise _fail(uri, "licenses: give both scopes, {data: ..., media: ...} (or license: one for both)")
    return data


def _decimals(precision: float) -> int | None:
    """Decimal places of a precision that is a power of ten (0.01 -> 2), else None."""
    places = -math.log10(precision)
    return round(places) if abs(places - round(places)) < 1e-9 else None


def round_coordinates(rows: list[dict[str, Any]], project: dict[str, Any] | None) -> None:
    """Deployment rows' latitude and longitude rounded to the project's precision, in place."""
    precision = (project or {}).get("coordinate_precision")
    if precision is None:
        return
    places = _decimals(precision)
    for row in rows:
        for key in ("latitude", "longitude"):
            if row.get(key) not in (None, ""):
                row[key] = round(float(row[key]), places)
        if row.get("coordinateUncertainty") not in (None, ""):
            # the rounding moves a point by up to half a step on each axis: say so (metres, 111 km per degree)
            row["coordinateUncertainty"] = max(int(float(row["coordinateUncertainty"])),
                                               math.ceil(precision * 111_320 / 2 * math.sqrt(2)))


def _license(name: str, scope: str) -> dict[str, str]:
    entry = {"scope": scope}
    entry["path" if "://" in name else "name"] = name
    return entry


def descriptor(out: dict[str, Any], project: dict[str, Any] | None) -> dict[str, Any]:
    """``datapackage.json`` with the project file's fields (the descriptor unchanged without one)."""
    if not project:
        return out
    out = dict(out, title=project["title"])
    people = [{k: v for k, v in p.items() if v not in (None, "")} for p in project["contributors"]]
    if project.get("rights_holder"):
        people.append({"title": project["rights_holder"], "role": "rightsHolder"})
    out["contributors"] = people
    if project.get("licenses"):
        out["licenses"] = [_license(project["licenses"][s], s) for s in ("data", "media")]
    elif project.get("license"):
        out["licenses"] = [_license(project["license"], s) for s in ("data", "media")]
    if project.get("citation"):
        out["bibliographicCitation"] = project["citation"]
    if project.get("coordinate_precision") is not None:
        out["coordinatePrecision"] = project["coordinate_precision"]
    for key in ("description", "keywords", "homepage"):
        if project.get(key):
            out[key] = project[key]
    out["project"] = dict(out.get("project") or {}, title=project.get("project_title") or project["title"])
    if project.get("sampling_design"):
        out["project"]["samplingDesign"] = project["sampling_design"]
    return out

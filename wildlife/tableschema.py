"""Check CSV files against Frictionless Table Schemas: types, constraints, primary and foreign keys.

Enough of the Table Schema v1 specification to validate Camtrap DP tables offline: the field types those
schemas use (string, number, integer, boolean, datetime, date, any), ``missingValues``, the ``required``,
``unique``, ``enum``, ``minimum``, ``maximum`` and ``pattern`` constraints, ``primaryKey`` and
``foreignKeys`` between resources.
"""

from __future__ import annotations

import csv
import io
import re
from datetime import datetime
from typing import Any

TRUE = {"true", "True", "TRUE", "1"}
FALSE = {"false", "False", "FALSE", "0"}


def _cast(value: str, field: dict[str, Any]) -> Any:
    kind = field.get("type", "string")
    if kind in ("string", "any"):
        return value
    if kind == "integer":
        return int(value)
    if kind == "number":
        return float(value)
    if kind == "boolean":
        if value in TRUE:
            return True
        if value in FALSE:
            return False
        raise ValueError("not a boolean")
    if kind == "datetime":
        fmt = field.get("format", "default")
        if fmt in ("default", "any"):
            return datetime.fromisoformat(value.replace("Z", "+00:00"))
        return datetime.strptime(value, fmt)
    if kind == "date":
        return datetime.strptime(value, "%Y-%m-%d").date()
    raise ValueError(f"type {kind!r} is not supported by this validator")


def read_csv(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


def validate_rows(rows: list[dict[str, str]], schema: dict[str, Any], name: str) -> list[str]:
    """Errors for one table (empty when valid), each naming the row and field."""
    errors: list[str] = []
    fields = schema["fields"]
    missing_values = set(schema.get("missingValues", [""]))
    names = [f["name"] for f in fields]
    if rows:
        extra = [c for c in rows[0] if c not in names]
        if extra:
            errors.append(f"{name}: columns not in the schema: {extra}")
    seen: dict[str, set] = {f["name"]: set() for f in fields if f.get("constraints", {}).get("unique")}
    for n, row in enumerate(rows, start=2):
        for f in fields:
            c = f.get("constraints", {})
            raw = row.get(f["name"])
            if raw is None or raw in missing_values:
                if c.get("required"):
                    errors.append(f"{name} row {n}: {f['name']} is required")
                continue
            try:
                value = _cast(raw, f)
            except (ValueError, TypeError) as exc:
                errors.append(f"{name} row {n}: {f['name']}={raw!r} is not a valid {f.get('type')} ({exc})")
                continue
            if "enum" in c and raw not in c["enum"]:
                errors.append(f"{name} row {n}: {f['name']}={raw!r} not in {c['enum']}")
            if "minimum" in c and value < c["minimum"]:
                errors.append(f"{name} row {n}: {f['name']}={raw} below minimum {c['minimum']}")
            if "maximum" in c and value > c["maximum"]:
                errors.append(f"{name} row {n}: {f['name']}={raw} above maximum {c['maximum']}")
            if "pattern" in c and not re.fullmatch(c["pattern"], raw):
                errors.append(f"{name} row {n}: {f['name']}={raw!r} does not match {c['pattern']!r}")
            if f["name"] in seen:
                if raw in seen[f["name"]]:
                    errors.append(f"{name} row {n}: {f['name']}={raw!r} is not unique")
                seen[f["name"]].add(raw)
    return errors


def validate_foreign_keys(tables: dict[str, list[dict[str, str]]], schemas: dict[str, dict[str, Any]]) -> list[str]:
    errors = []
    for name, schema in schemas.items():
        for fk in schema.get("foreignKeys", []):
            ref = fk["reference"]
            known = {r[ref["fields"]] for r in tables.get(ref["resource"], [])}
            for n, row in enumerate(tables.get(name, []), start=2):
                value = row.get(fk["fields"])
                if value and value not in known:
                    errors.append(f"{name} row {n}: {fk['fields']}={value!r} has no match in {ref['resource']}")
    return errors

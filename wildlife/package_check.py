"""Validate a Camtrap DP package with the maintained Frictionless validator (``frictionless``), offline.

The package is checked as GBIF's tools check it: the descriptor against the Camtrap DP 1.0.2 profile (which
refers to the Frictionless Data Package schema and GeoJSON by URL), each table against its Camtrap DP table
schema (types, formats, constraints, primary and foreign keys). Every URL the package and the profile name is
answered from the files vendored under ``wildlife/schemas`` (README there) by a ``requests`` session that knows
no network: any other URL is refused, so validation never makes an HTTP call and never depends on one.

A descriptor error does not stop the tables from being checked: they are validated as a package of the same
resources, so one report lists both.
"""

from __future__ import annotations

import io
import os
import shutil
import tempfile
from typing import Any

import requests
from requests.adapters import BaseAdapter

from wildlife import fs
from wildlife.camtrapdp import BASE_URL, SCHEMA_DIR, TABLES, VERSION

# URL -> vendored file (under SCHEMA_DIR): everything the 1.0.2 profile and Odin's packages refer to
VENDORED = {
    f"{BASE_URL}/camtrap-dp-profile.json": f"camtrap-dp-{VERSION}/camtrap-dp-profile.json",
    **{f"{BASE_URL}/{name}-table-schema.json": f"camtrap-dp-{VERSION}/{name}-table-schema.json" for name in TABLES},
    "https://specs.frictionlessdata.io/schemas/data-package.json": "offline/data-package.json",
    "http://json.schemastore.org/geojson.json": "offline/geojson.json",
}
MAX_ERRORS = 1000  # per table, frictionless's own default limit


class OfflineError(requests.ConnectionError):
    """A URL the validator asked for that is not vendored: it is never fetched."""


class VendoredAdapter(BaseAdapter):
    """A ``requests`` transport that answers vendored URLs from disk and refuses all others."""

    def send(self, request, **kwargs):
        name = VENDORED.get(request.url.split("#", 1)[0])
        if name is None:
            raise OfflineError(f"{request.url} is not vendored and Odin validates offline; only "
                               f"{sorted(VENDORED)} are known", request=request)
        response = requests.Response()
        response.status_code, response.url, response.request = 200, request.url, request
        with open(os.path.join(SCHEMA_DIR, name), "rb") as f:
            response.raw = io.BytesIO(f.read())
        return response

    def close(self) -> None:
        pass


def offline_session() -> requests.Session:
    session = requests.Session()
    for prefix in ("http://", "https://"):
        session.mount(prefix, VendoredAdapter())
    return session


def _where(task: Any, error: Any) -> str:
    d = error.to_descriptor()
    row = f" row {d['rowNumber']}" if d.get("rowNumber") else ""
    field = f": {d['fieldName']}" if d.get("fieldName") else ""
    return f"{task.name}{row}{field}: {d.get('note') or d.get('message')}"


def validate_folder(folder: str) -> list[str]:
    """Errors of the package in a local folder (empty when valid)."""
    from frictionless import FrictionlessException, Package, system  # noqa: PLC0415 - slow to import

    descriptor = fs.read_json(os.path.join(folder, "datapackage.json"))
    errors: list[str] = []
    with system.use_context(http_session=offline_session()):
        try:
            errors += [f"datapackage.json: {e.note}" for e in Package.metadata_validate(descriptor)]
        except FrictionlessException as exc:
            errors.append(f"datapackage.json: {exc.error.note}")
        resources = [r for r in descriptor.get("resources") or [] if isinstance(r, dict)]
        try:
            report = Package({"resources": resources}, basepath=folder).validate(limit_errors=MAX_ERRORS)
        except FrictionlessException as exc:
            return [*errors, f"resources: {exc.error.note}"]
    errors += [f"package: {e.note}" for e in report.errors]
    for task in report.tasks:
        errors += [_where(task, e) for e in task.errors]
    return errors


def validate(package_uri: str) -> list[str]:
    """Errors of a package (a folder or an s3:// prefix) against the Camtrap DP profile and table schemas."""
    if "://" not in package_uri:
        return validate_folder(package_uri)
    tmp = tempfile.mkdtemp(prefix="odin-package-")
    try:  # the validator reads local files: a copy of the package's own
        descriptor = fs.read_json(fs.join(package_uri, "datapackage.json"))
        for name in ["datapackage.json", *(r["path"] for r in descriptor.get("resources") or []
                                           if isinstance(r, dict) and isinstance(r.get("path"), str)
                                           and "/" not in r["path"])]:
            with open(os.path.join(tmp, name), "wb") as f:
                f.write(fs.read_bytes(fs.join(package_uri, name)))
        return validate_folder(tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

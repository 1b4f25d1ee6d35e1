"""Weather at positive events, from Open-Meteo's historical archive (default, no key) or MET Norway's Frost.

MET Norway's Locationforecast (api.met.no, yr.no) serves forecasts only, so it cannot answer for past
events; Frost serves observations from stations and needs a client id (``FROST_CLIENT_ID``).

Requests are grouped: one HTTP request per location (rounded to the provider's grid) and date range, cached
on disk with requests-cache (SQLite in the user's cache folder by default; ``ODIN_WEATHER_CACHE`` names
another file, ``ODIN_WEATHER_CACHE_BACKEND`` another backend such as ``dynamodb`` or ``filesystem``), retried
with backoff on 429 and 5xx. Without network the columns stay empty and the run goes on with a warning.
"""

from __future__ import annotations

import math
import os
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

import wildlife
from wildlife.errors import OdinError

USER_AGENT = os.environ.get(
    "ODIN_USER_AGENT", f"odin-wildlife/{wildlife.__version__} camera-trap pipeline (set ODIN_USER_AGENT to add contact)"
)
COLUMNS = ("temperature_c", "precipitation_mm", "wind_speed_ms", "cloud_cover_pct")
MAX_RANGE_GAP_DAYS = 31  # dates of one location closer than this share one request


class WeatherUnavailable(OdinError):
    """The provider cannot be asked (no key, no network); the run goes on without weather."""


def cache_path() -> str:
    if os.environ.get("ODIN_WEATHER_CACHE"):
        return os.environ["ODIN_WEATHER_CACHE"]
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "odin", "weather")


def session(cache: str | None = None, backend: str | None = None, retries: int = 3, backoff: float = 0.5):
    """A cached, retrying HTTP session with Odin's User-Agent."""
    import requests_cache  # noqa: PLC0415 - only runs that ask for weather pay for the import
    from requests.adapters import HTTPAdapter  # noqa: PLC0415
    from urllib3.util.retry import Retry  # noqa: PLC0415

    s = requests_cache.CachedSession(
        cache or cache_path(), backend=backend or os.environ.get("ODIN_WEATHER_CACHE_BACKEND", "sqlite"),
        expire_after=timedelta(days=30), allowable_codes=(200,),
    )
    retry = Retry(total=retries, connect=1, read=retries, status=retries, backoff_factor=backoff,
                  status_forcelist=(429, 500, 502, 503, 504), allowed_methods=("GET",),
                  respect_retry_after_header=True)
    s.mount("http://", HTTPAdapter(max_retries=retry))
    s.mount("https://", HTTPAdapter(max_retries=retry))
    s.headers["User-Agent"] = USER_AGENT
    return s


@dataclass
class OpenMeteo:
    name: str = "open-meteo"
    grid: float = 0.1  # ERA5-Land's resolution; finer coordinates ask for the same cell
    url: str = field(default_factory=lambda: os.environ.get(
        "ODIN_OPEN_METEO_URL", "https://archive-api.open-meteo.com/v1/archive"))

    def fetch(self, http, lat: float, lon: float, start: date, end: date) -> dict[datetime, dict[str, float]]:
        resp = http.get(self.url, timeout=30, params={
            "latitude": f"{lat:.4f}", "longitude": f"{lon:.4f}", "start_date": start.isoformat(),
            "end_date": end.isoformat(), "hourly": "temperature_2m,precipitation,wind_speed_10m,cloud_cover",
            "wind_speed_unit": "ms", "timezone": "GMT",
        })
        resp.raise_for_status()
        hourly = resp.json()["hourly"]
        names = {"temperature_2m": "temperature_c", "precipitation": "precipitation_mm",
                 "wind_speed_10m": "wind_speed_ms", "cloud_cover": "cloud_cover_pct"}
        out = {}
        for i, stamp in enumerate(hourly["time"]):
            hour = datetime.fromisoformat(stamp).replace(tzinfo=UTC)
            out[hour] = {col: hourly.get(src, [None] * (i + 1))[i] for src, col in names.items()}
        return out


@dataclass
class Frost:
    name: str = "met-frost"
    grid: float = 0.01
    url: str = field(default_factory=lambda: os.environ.get("ODIN_FROST_URL", "https://frost.met.no"))
    client_id: str | None = field(default_factory=lambda: os.environ.get("FROST_CLIENT_ID"))

    def fetch(self, http, lat: float, lon: float, start: date, end: date) -> dict[datetime, dict[str, float]]:
        if not self.client_id:
            raise WeatherUnavailable("MET Norway's Frost needs a client id: set FROST_CLIENT_ID "
                                     "(free at frost.met.no), or use --weather-provider open-meteo")
        auth = (self.client_id, "")
        src = http.get(f"{self.url}/sources/v0.jsonld", auth=auth, timeout=30, params={
            "types": "SensorSystem", "geometry": f"nearest(POINT({lon:.4f} {lat:.4f}))", "nearestmaxcount": "1"})
        src.raise_for_status()
        station = src.json()["data"][0]["id"]
        obs = http.get(f"{self.url}/observations/v0.jsonld", auth=auth, timeout=30, params={
            "sources": station, "referencetime": f"{start.isoformat()}/{(end + timedelta(days=1)).isoformat()}",
            "elements": "air_temperature,sum(precipitation_amount PT1H),wind_speed,cloud_area_fraction"})
        if obs.status_code == 404:  # Frost's answer when the station has none of those observations
            return {}
        obs.raise_for_status()
        names = {"air_temperature": "temperature_c", "sum(precipitation_amount PT1H)": "precipitation_mm",
                 "wind_speed": "wind_speed_ms", "cloud_area_fraction": "cloud_cover_pct"}
        out: dict[datetime, dict[str, float]] = {}
        for item in obs.json()["data"]:
            hour = datetime.fromisoformat(item["referenceTime"].replace("Z", "+00:00")).replace(minute=0, second=0,
                                                                                               microsecond=0)
            row = out.setdefault(hour, dict.fromkeys(COLUMNS))
            for o in item["observations"]:
                col = names.get(o["elementId"])
                if col and row[col] is None:
                    value = o["value"]
                    row[col] = value * 12.5 if col == "cloud_cover_pct" else value  # oktas -> percent
        return out


PROVIDERS = {"open-meteo": OpenMeteo, "met-frost": Frost}


def _cell(lat: float, lon: float, grid: float) -> tuple[float, float]:
    return round(round(lat / grid) * grid, 4), round(round(lon / grid) * grid, 4)


def _ranges(days: set[date]) -> list[tuple[date, date]]:
    out: list[tuple[date, date]] = []
    for d in sorted(days):
        if out and (d - out[-1][1]).days <= MAX_RANGE_GAP_DAYS:
            out[-1] = (out[-1][0], d)
        else:
            out.append((d, d))
    return out


def enrich(
    events: list[dict[str, Any]], coords: dict[str, tuple[float, float]], provider, days_back: int, http,
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Weather per event (rows keyed by ``cluster_id``) and a summary (requests, cache hits, warnings)."""
    needed: dict[tuple[float, float], set[date]] = defaultdict(set)
    for ev in events:
        if ev["deployment_id"] in coords:
            cell = _cell(*coords[ev["deployment_id"]], provider.grid)
            day = (ev["start_time"] - timedelta(days=days_back)).date()
            while day <= ev["end_time"].date():
                needed[cell].add(day)
                day += timedelta(days=1)
    series: dict[tuple[float, float], dict[datetime, dict[str, float]]] = defaultdict(dict)
    summary: dict[str, Any] = {"requests": 0, "from_cache": 0, "warnings": []}
    for cell, days in sorted(needed.items()):
        for start, end in _ranges(days):
            try:
                series[cell].update(provider.fetch(_Counting(http, summary), *cell, start, end))
            except WeatherUnavailable as exc:
                summary["warnings"].append(f"weather: {exc}")
                return _rows(events, coords, provider, days_back, {}), summary
            except Exception as exc:  # noqa: BLE001 - no network, bad answers: the run goes on without weather
                summary["warnings"].append(
                    f"weather: {provider.name} could not be reached ({type(exc).__name__}: {str(exc)[:160]}); "
                    "weather columns are left empty (answers fetched so far are cached for the next run).")
                return _rows(events, coords, provider, days_back, series), summary
    missing = sorted({ev["deployment_id"] for ev in events if ev["deployment_id"] not in coords})
    if missing:
        summary["warnings"].append(f"weather: no coordinates for deployment(s) {missing[:5]}; "
                                   "give latitude/longitude in --deployments")
    return _rows(events, coords, provider, days_back, series), summary


class _Counting:
    """Counts the requests that reached the network and the ones the cache answered."""

    def __init__(self, http, summary: dict[str, Any]):
        self.http, self.summary = http, summary

    def get(self, *args, **kwargs):
        resp = self.http.get(*args, **kwargs)
        self.summary["from_cache" if getattr(resp, "from_cache", False) else "requests"] += 1
        return resp


def _rows(events, coords, provider, days_back, series) -> list[dict[str, Any]]:
    rows = []
    for ev in events:
        row: dict[str, Any] = {"cluster_id": ev["cluster_id"], "weather_provider": provider.name,
                               "weather_time": None, **dict.fromkeys(COLUMNS)}
        if days_back:
            row.update({f"precipitation_prev_{days_back}d_mm": None, f"temperature_mean_prev_{days_back}d_c": None})
        cell_series = series.get(_cell(*coords[ev["deployment_id"]], provider.grid)) if ev["deployment_id"] in coords \
            else None
        if cell_series:
            hour = ev["start_time"].replace(minute=0, second=0, microsecond=0)
            if hour in cell_series:
                row["weather_time"] = hour
                row.update(cell_series[hour])
            if days_back:
                before = [cell_series[h] for h in cell_series if hour - timedelta(days=days_back) <= h < hour]
                rain = [b["precipitation_mm"] for b in before if b["precipitation_mm"] is not None]
                temp = [b["temperature_c"] for b in before if b["temperature_c"] is not None]
                row[f"precipitation_prev_{days_back}d_mm"] = round(math.fsum(rain), 2) if rain else None
                row[f"temperature_mean_prev_{days_back}d_c"] = round(math.fsum(temp) / len(temp), 2) if temp else None
        rows.append(row)
    return rows
